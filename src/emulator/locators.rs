//! `Locators`: SAS locators and OnDemandOrigin locators (`{streaming base}/{guid}/`, optionally
//! with a caller-supplied Id: the failover trick that gives two datacenters the same paths).
//!
//! A SAS locator is what Media Services made it: a stored access policy on the asset's
//! container (Id = the locator's GUID, with its start, expiry and permissions) and a container
//! URL whose SAS names it (`si=`). Deleting the locator removes the policy, and every URL made
//! from it stops working at once. A container holds at most five policies, which is why an
//! asset holds at most five locators.

use axum::http::StatusCode;
use axum::response::Response;
use time::OffsetDateTime;

use super::odata::{ApiError, Body, SetInfo};
use super::{assets, no_content, now, policies, to_value, Ctx};
use crate::ams::model::requests::NewLocator;
use crate::ams::model::{AccessPolicy, Asset, IdKind, Locator, LocatorType, Permissions};
use crate::storage::{SasPerms, StoredPolicy};

pub const INFO: SetInfo = SetInfo {
    name: "Locators",
    type_name: "Microsoft.Cloud.Media.Vod.Rest.Data.Models.Locator",
    properties: &[
        "Id",
        "ExpirationDateTime",
        "Type",
        "Path",
        "BaseUri",
        "ContentAccessComponent",
        "AccessPolicyId",
        "AssetId",
        "StartTime",
        "Name",
    ],
    navigation: &["AccessPolicy", "Asset"],
};

/// The service allowed five locators per asset at a time.
pub const MAX_PER_ASSET: usize = 5;

pub async fn handle(
    ctx: &Ctx<'_>,
    method: &str,
    key: Option<String>,
    nav: Option<String>,
) -> Result<Response, ApiError> {
    match (method, key, nav.as_deref()) {
        ("GET", None, None) => ctx.list(&INFO),
        ("POST", None, None) => create(ctx).await,
        ("GET", Some(id), None) => ctx.get::<Locator>(&INFO, &normalize_id(&id).unwrap_or(id)),
        ("GET", Some(id), Some(nav)) => ctx.related(&INFO, &normalize_id(&id).unwrap_or(id), nav),
        ("MERGE" | "PATCH" | "PUT", Some(id), None) => {
            update(ctx, &normalize_id(&id).unwrap_or(id)).await
        }
        ("DELETE", Some(id), None) => {
            let id = normalize_id(&id).unwrap_or(id);
            let _guard = ctx.st.sas_lock.lock().await;
            let l: Locator = ctx.load(&INFO, &id)?;
            if l.kind == LocatorType::Sas {
                // Revoked in storage first: a locator gone from the API is gone for good.
                let asset: Result<Asset, _> = ctx.load(&assets::INFO, &l.asset_id);
                if let Ok(asset) = asset {
                    let keep = sas_policies(ctx, &asset.id, None, Some(&l.id))?;
                    match ctx
                        .st
                        .storage
                        .set_container_policies(&asset.container(), &keep)
                        .await
                    {
                        Ok(()) | Err(crate::storage::StorageError::ContainerNotFound { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            ctx.st.db.delete(INFO.name, &id)?;
            Ok(no_content())
        }
        (m, _, _) => Err(ApiError::not_allowed(m, "Locators")),
    }
}

/// `nb:lid:UUID:<guid>` with the GUID in lower case; None when it is not a locator id.
fn normalize_id(id: &str) -> Option<String> {
    IdKind::Locator.parse(id).map(|g| IdKind::Locator.id(&g))
}

fn sas_perms(p: Permissions) -> SasPerms {
    SasPerms {
        read: p.contains(Permissions::READ),
        write: p.contains(Permissions::WRITE),
        create: p.contains(Permissions::WRITE),
        add: p.contains(Permissions::WRITE),
        delete: p.contains(Permissions::DELETE),
        list: p.contains(Permissions::LIST),
    }
}

/// A SAS locator's stored access policy.
fn stored_policy(ctx: &Ctx<'_>, l: &Locator) -> Result<StoredPolicy, ApiError> {
    let p: AccessPolicy = ctx.load(&policies::INFO, &l.access_policy_id)?;
    Ok(StoredPolicy {
        id: l.guid(),
        start: l.start_time,
        expiry: l.expiration_date_time,
        perms: sas_perms(p.permissions),
    })
}

/// The stored access policies an asset's container should hold: one per SAS locator, with
/// `with` added (or in place of its stored self) and `without` left out. A locator whose
/// access policy is gone has nothing to grant and is left out.
fn sas_policies(
    ctx: &Ctx<'_>,
    asset_id: &str,
    with: Option<&Locator>,
    without: Option<&str>,
) -> Result<Vec<StoredPolicy>, ApiError> {
    let mut out = Vec::new();
    for v in ctx.st.db.list(INFO.name, Some(asset_id))? {
        let Ok(l) = serde_json::from_value::<Locator>(v) else {
            continue;
        };
        let replaced = with.is_some_and(|w| w.id == l.id);
        if l.kind != LocatorType::Sas || Some(l.id.as_str()) == without || replaced {
            continue;
        }
        match stored_policy(ctx, &l) {
            Ok(p) => out.push(p),
            Err(e) => {
                tracing::warn!(locator = %l.id, error = %e.message, "SAS locator without its access policy: not granted")
            }
        }
    }
    if let Some(w) = with {
        out.push(stored_policy(ctx, w)?);
    }
    Ok(out)
}

/// Fills in Path, BaseUri, ContentAccessComponent and ExpirationDateTime; for a SAS locator,
/// also writes the container's stored access policies (call with `sas_lock` held).
async fn publish(
    ctx: &Ctx<'_>,
    l: &mut Locator,
    asset: &Asset,
    policy: &AccessPolicy,
) -> Result<(), ApiError> {
    let expiry = l.start_time + time::Duration::seconds_f64(policy.duration_in_minutes * 60.0);
    l.expiration_date_time = expiry;
    if l.kind == LocatorType::Sas {
        let container = asset.container();
        let all = sas_policies(ctx, &asset.id, Some(l), None)?;
        ctx.st
            .storage
            .set_container_policies(&container, &all)
            .await?;
        let url = ctx
            .st
            .storage
            .container_policy_sas_url(&container, &l.guid())?;
        l.path = url.to_string();
        l.content_access_component = format!("?{}", url.query().unwrap_or_default());
        let mut base = url;
        base.set_query(None);
        l.base_uri = base.to_string();
    } else {
        let base = ctx
            .st
            .config
            .streaming_base
            .trim_end_matches('/')
            .to_string();
        let guid = l.guid();
        l.path = format!("{base}/{guid}/");
        l.base_uri = base;
        l.content_access_component = guid;
    }
    Ok(())
}

/// A `POST Locators` body as the shared request type, every field checked and named.
fn read_new_locator(body: &Body) -> Result<NewLocator, ApiError> {
    body.only_known(&INFO)?;
    let number = body.int("Type")?.ok_or_else(|| {
        ApiError::bad_request("field 'Type' is required: 1 (SAS) or 2 (OnDemandOrigin)")
    })?;
    let kind = match LocatorType::from_number(number.into()) {
        Some(k @ (LocatorType::Sas | LocatorType::OnDemandOrigin)) => k,
        _ => {
            return Err(ApiError::bad_request(format!(
                "field 'Type' must be 1 (SAS) or 2 (OnDemandOrigin), not {number}"
            )))
        }
    };
    let id = match body.str("Id")? {
        Some(given) => Some(normalize_id(&given).ok_or_else(|| {
            ApiError::bad_request(format!(
                "field 'Id' must look like nb:lid:UUID:<guid>, not '{given}'"
            ))
        })?),
        None => None,
    };
    Ok(NewLocator {
        id,
        asset_id: body.required_str("AssetId")?,
        access_policy_id: body.required_str("AccessPolicyId")?,
        kind,
        start_time: body.date("StartTime")?,
        name: body.str("Name")?,
    })
}

async fn create(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let new = read_new_locator(&Body::parse(ctx.body)?)?;
    let asset: Asset = ctx
        .load(&assets::INFO, &new.asset_id)
        .map_err(|e| ApiError::bad_request(format!("field 'AssetId': {}", e.message)))?;
    let policy: AccessPolicy = ctx
        .load(&policies::INFO, &new.access_policy_id)
        .map_err(|e| ApiError::bad_request(format!("field 'AccessPolicyId': {}", e.message)))?;
    if new.kind == LocatorType::OnDemandOrigin
        && policy
            .permissions
            .intersects(Permissions::WRITE | Permissions::DELETE)
    {
        return Err(ApiError::bad_request(format!(
            "an OnDemandOrigin locator needs a read-only access policy; '{}' grants write or delete",
            policy.id
        )));
    }
    // What a locator opens for reading must hold something: the service refused streaming
    // and read-only SAS locators on an asset without files (a write SAS is how files arrive).
    let reads_only = new.kind == LocatorType::OnDemandOrigin
        || !policy
            .permissions
            .intersects(Permissions::WRITE | Permissions::DELETE);
    if reads_only && ctx.st.db.count(super::files::INFO.name, &asset.id)? == 0 {
        return Err(ApiError::bad_request(format!(
            "Asset '{}' has no files: a locator that only reads needs files to open (upload them with a write SAS locator, then CreateFileInfos)",
            asset.id
        )));
    }
    let id = new.id.unwrap_or_else(|| IdKind::Locator.new_id());
    // From the checks to the insert, one locator change at a time (the container's policies
    // are written whole, and the sixth locator must see the fifth).
    let _guard = ctx.st.sas_lock.lock().await;
    if ctx.st.db.get(INFO.name, &id)?.is_some() {
        return Err(ApiError::conflict(format!(
            "a Locator with Id '{id}' already exists"
        )));
    }
    if ctx.st.db.count(INFO.name, &asset.id)? >= MAX_PER_ASSET {
        return Err(ApiError::bad_request(format!(
            "Asset '{}' already has {MAX_PER_ASSET} locators, the most it may have; delete one first",
            asset.id
        )));
    }
    let start: OffsetDateTime = new.start_time.unwrap_or_else(now);
    let mut l = Locator {
        id,
        expiration_date_time: start,
        kind: new.kind,
        path: String::new(),
        base_uri: String::new(),
        content_access_component: String::new(),
        access_policy_id: policy.id.clone(),
        asset_id: asset.id.clone(),
        start_time: start,
        name: new.name,
    };
    publish(ctx, &mut l, &asset, &policy).await?;
    let v = to_value(&l)?;
    ctx.st.db.insert(INFO.name, &l.id, Some(&asset.id), &v)?;
    Ok(ctx.entity(&INFO, StatusCode::CREATED, v))
}

async fn update(ctx: &Ctx<'_>, id: &str) -> Result<Response, ApiError> {
    let _guard = ctx.st.sas_lock.lock().await;
    let mut l: Locator = ctx.load(&INFO, id)?;
    let body = Body::parse(ctx.body)?;
    body.only_known(&INFO)?;
    body.read_only_unchanged(&to_value(&l)?, &["StartTime", "Name"], "Locator")?;
    if let Some(start) = body.date("StartTime")? {
        l.start_time = start;
        let asset: Asset = ctx.load(&assets::INFO, &l.asset_id)?;
        let policy: AccessPolicy = ctx.load(&policies::INFO, &l.access_policy_id)?;
        publish(ctx, &mut l, &asset, &policy).await?;
    }
    if body.has("Name") {
        l.name = body.str("Name")?;
    }
    ctx.st.db.update(INFO.name, id, &to_value(&l)?)?;
    Ok(no_content())
}

/// The streaming origin's view of this account's locators: an OnDemandOrigin locator by GUID
/// with its asset's container. A damaged record is logged and treated as absent; only a
/// database that cannot answer is an error (the origin answers 503 for it).
pub fn origin_source(db: std::sync::Arc<super::db::Db>) -> crate::origin::LocatorSource {
    std::sync::Arc::new(move |guid| {
        let read = |set: &str, id: &str| db.get(set, id).map_err(|e| e.to_string());
        let Some(v) = read("Locators", &IdKind::Locator.id(guid))? else {
            return Ok(None);
        };
        let l: Locator = match serde_json::from_value(v) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(%guid, error = %e, "a locator record is damaged");
                return Ok(None);
            }
        };
        if l.kind != LocatorType::OnDemandOrigin {
            return Ok(None);
        }
        let Some(a) = read("Assets", &l.asset_id)? else {
            return Ok(None);
        };
        let a: Asset = match serde_json::from_value(a) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(asset = %l.asset_id, error = %e, "an asset record is damaged");
                return Ok(None);
            }
        };
        Ok(Some(crate::origin::LiveLocator {
            container: a.container(),
            start: l.start_time,
            expiry: l.expiration_date_time,
        }))
    })
}
