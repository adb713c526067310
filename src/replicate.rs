//! The walkthrough's replication, as one idempotent, resumable function: given an asset in
//! datacenter A, make B hold the same files under an origin locator with the same Id, so the
//! streaming URLs differ only by host.
//!
//! The seven steps: (1) A's origin locator (reused, or created with the requested Id), (2) a read
//! SAS on A's asset and its container name, (3) B's target asset (reused by that name), (4) a
//! write SAS on it, (5) the copy (verified; blobs already there are skipped), (6) CreateFileInfos,
//! (7) B's origin locator with A's Id (reused if there). The SAS locators are deleted at the end.
//! Last, B's origin is warmed (every manifest of the primary file asked once, so every
//! rendition's index is read before a failover sends players there); a standby that cannot be
//! warmed is reported, not an error: its files are in place.
//! A run interrupted anywhere is finished by running it again.

use time::OffsetDateTime;

use crate::ams::client::{AmsError, MediaClient};
use crate::ams::model::{requests, Asset, Locator, LocatorType, Permissions};
use crate::storage::{copy_blobs, CopyOptions, CopyReport, Storage, StorageError};

/// One side of the replication: a Media Services account and its storage.
pub struct Side<'a> {
    pub media: &'a MediaClient,
    pub storage: &'a Storage,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicateError {
    #[error(transparent)]
    Media(#[from] AmsError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The copy ended with blobs that did not arrive (after its own retries).
    #[error("{failed} blob(s) not copied: {failures}")]
    NotCopied { failed: usize, failures: String },
    /// B already has a locator with A's Id, on an asset that is not the replica.
    #[error("locator '{id}' exists in B on another asset ({asset}); delete it there first")]
    LocatorTaken { id: String, asset: String },
}

/// What a replication did.
#[derive(Debug, Clone)]
pub struct Replica {
    pub origin: Locator,
    pub replica: Locator,
    pub target: Asset,
    pub copy: CopyReport,
    /// B's origin warmed, or why not.
    pub warmed: Result<crate::origin::warm::Warmed, String>,
}

async fn locator(
    side: &Side<'_>,
    asset: &str,
    kind: LocatorType,
    perms: Permissions,
    days: f64,
    id: Option<String>,
) -> Result<Locator, AmsError> {
    let name = if kind == LocatorType::Sas {
        "amsplay replication SAS"
    } else {
        "amsplay streaming policy"
    };
    let policy = side
        .media
        .create_access_policy(name, days * 1440.0, perms)
        .await?;
    side.media
        .create_locator(&requests::NewLocator {
            id,
            asset_id: asset.to_string(),
            access_policy_id: policy.id,
            kind,
            start_time: Some(OffsetDateTime::now_utc() - time::Duration::minutes(5)),
            name: None,
        })
        .await
}

/// Replicates `asset_id` from A to B (see the module docs).
pub async fn replicate(
    a: &Side<'_>,
    b: &Side<'_>,
    asset_id: &str,
    locator_id: Option<String>,
    copy: &CopyOptions,
) -> Result<Replica, ReplicateError> {
    let asset = a.media.asset(asset_id).await?;
    // 1. A's origin locator.
    let existing = a.media.asset_locators(&asset.id).await?;
    let origin = match (
        &locator_id,
        existing
            .iter()
            .find(|l| l.kind == LocatorType::OnDemandOrigin),
    ) {
        (Some(id), _) => match existing.iter().find(|l| l.id.eq_ignore_ascii_case(id)) {
            Some(l) => l.clone(),
            None => {
                locator(
                    a,
                    &asset.id,
                    LocatorType::OnDemandOrigin,
                    Permissions::READ,
                    30.0,
                    Some(id.clone()),
                )
                .await?
            }
        },
        (None, Some(l)) => l.clone(),
        (None, None) => {
            locator(
                a,
                &asset.id,
                LocatorType::OnDemandOrigin,
                Permissions::READ,
                30.0,
                None,
            )
            .await?
        }
    };
    // 2. A read SAS and the container name.
    let read = locator(
        a,
        &asset.id,
        LocatorType::Sas,
        Permissions::READ | Permissions::LIST,
        1.0,
        None,
    )
    .await?;
    let container = read.container();
    let result = async {
        // 3. B's target asset, named after the container as the walkthrough does.
        let target = match b
            .media
            .assets()
            .await?
            .into_iter()
            .find(|x| x.name.as_deref() == Some(container.as_str()))
        {
            Some(t) => t,
            None => b.media.create_asset(&container).await?,
        };
        // 4. A write SAS on it.
        let write = locator(
            b,
            &target.id,
            LocatorType::Sas,
            Permissions::WRITE,
            1.0,
            None,
        )
        .await?;
        let copied = async {
            // 5. The copy.
            let report =
                copy_blobs(a.storage, &container, b.storage, &write.container(), copy).await?;
            if report.failed > 0 {
                return Err(ReplicateError::NotCopied {
                    failed: report.failed,
                    failures: report
                        .failures
                        .iter()
                        .map(|f| format!("{} ({})", f.name, f.error))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            // 6. CreateFileInfos.
            b.media.create_file_infos(&target.id).await?;
            // 7. B's origin locator with A's Id.
            let replica = match b.media.locator(&origin.id).await {
                Ok(l) if l.asset_id == target.id => l,
                Ok(l) => {
                    return Err(ReplicateError::LocatorTaken {
                        id: l.id,
                        asset: l.asset_id,
                    })
                }
                Err(AmsError::NotFound { .. }) => {
                    locator(
                        b,
                        &target.id,
                        LocatorType::OnDemandOrigin,
                        Permissions::READ,
                        100.0,
                        Some(origin.id.clone()),
                    )
                    .await?
                }
                Err(e) => return Err(e.into()),
            };
            Ok((report, replica))
        }
        .await;
        let _ = b.media.delete_locator(&write.id).await;
        let (copy, replica) = copied?;
        // 8. Warm B's origin.
        let files = b.media.files(&target.id).await?;
        let manifest = files
            .iter()
            .find(|f| f.is_primary && f.name.to_ascii_lowercase().ends_with(".ism"));
        let warmed = match manifest {
            Some(primary) => {
                let manifest = format!("{}{}/manifest", replica.path, primary.name);
                crate::origin::warm::warm(&manifest).await
            }
            None => {
                Err("nothing to warm: the asset has no primary .ism file to stream".to_string())
            }
        };
        if let Err(e) = &warmed {
            tracing::warn!(error = %e, "B's origin could not be warmed");
        }
        Ok::<_, ReplicateError>(Replica {
            origin: origin.clone(),
            replica,
            target,
            copy,
            warmed,
        })
    }
    .await;
    let _ = a.media.delete_locator(&read.id).await;
    result
}
