//! Continuous replication (`amsplay sync`, `sync(a, b, #{…})` in playbooks): keeps datacenter
//! B in step with A, pass after pass.
//!
//! A pass:
//! 1. asks A for its OnDemandOrigin locators (`$filter=Type eq 2`) and the assets modified since
//!    the last pass began (`$filter=LastModified gt datetime'…'`, the cheap change marker): two
//!    calls, whatever the size of the account. The assets to keep in B are those with an origin
//!    locator and a primary `.ism`; an asset is read (with its files) only when first seen;
//! 2. an asset new to the sync, or not yet identical in B, is replicated with
//!    [`crate::replicate::replicate`] (same locator Id; copies only blobs B lacks or holds
//!    differently, by MD5): `copying`, then `identical` only once every step succeeded;
//! 3. an identical asset whose `LastModified` in A changed, or whose last check is older than
//!    `verify_every`, is verified: A's and B's blob listings compared (names, sizes, MD5s), a
//!    difference is `differs` and is replicated again;
//! 4. an asset whose origin locator is gone is looked up: gone from A, it is `deleted_in_a`
//!    (its replica in B deleted only with `delete`); still there, unpublished, it is no longer
//!    followed.
//!
//! Jobs ending in A are watched too (a third call, `Jobs?$filter=State lt 3`): when one ends,
//! its output is about to be published, so for `HOT_FOR` the next passes come every
//! `HOT_INTERVAL` instead of every `interval`, and while one runs at least every second (see
//! [`Syncer::next_wait`]): its output is seen within a tenth of a second of its locator.
//!
//! Either datacenter down: the pass records why (`a_error`, or the asset's `error`) and the
//! next pass tries again; nothing half-done is ever `identical`. The state is kept in memory
//! and, with `state_file`, written (atomically) after every pass, where the console reads it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ams::client::AmsError;
use crate::ams::model::{Asset, LocatorType};
use crate::replicate::{replicate, Side};
use crate::storage::{BlobInfo, CopyOptions};

/// How a sync runs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Pause between passes.
    pub interval: Duration,
    /// Check an identical asset's blobs again after this long even if A says nothing changed.
    pub verify_every: Duration,
    /// Delete B's replica of an asset deleted in A.
    pub delete: bool,
    /// Where the state is written after every pass (JSON).
    pub state_file: Option<PathBuf>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            verify_every: Duration::from_secs(300),
            delete: false,
            state_file: None,
        }
    }
}

/// Where an asset of A stands in B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Seen in A, not (yet) in B.
    OnlyInA,
    /// Being replicated.
    Copying,
    /// In both, every blob verified identical.
    Identical,
    /// B's blobs differ from A's (being replicated again).
    Differs,
    /// Gone from A; its replica in B kept.
    DeletedInA,
    /// Gone from A; its replica in B deleted too.
    Deleted,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::OnlyInA => "only_in_a",
            State::Copying => "copying",
            State::Identical => "identical",
            State::Differs => "differs",
            State::DeletedInA => "deleted_in_a",
            State::Deleted => "deleted",
        }
    }
}

/// One asset of A, as the sync knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetSync {
    pub asset_id: String,
    pub name: String,
    /// The origin locator's Id (the same in both datacenters).
    pub locator_id: String,
    pub state: State,
    /// When it entered its state (RFC 3339).
    pub since: String,
    /// When its blobs were last found identical in both.
    pub verified: Option<String>,
    /// B's replica asset.
    pub replica_id: Option<String>,
    /// Blobs copied by the last replication.
    pub copied: usize,
    /// Why the last attempt failed (it is tried again next pass).
    pub error: Option<String>,
    /// A's `LastModified` when it was last verified: a change means "verify again".
    pub marker: String,
}

/// Everything the sync knows, as written to the state file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncState {
    pub passes: u64,
    pub last_pass: Option<String>,
    /// When the last pass that listed A began: the next asks for changes since then.
    #[serde(default)]
    pub listed_since: Option<String>,
    /// Why A could not be listed in the last pass (nothing changed then).
    pub a_error: Option<String>,
    pub assets: BTreeMap<String, AssetSync>,
    /// Assets of A that cannot be streamed (no primary `.ism`), by their marker, so their
    /// files are not read every pass.
    #[serde(default)]
    pub ignored: BTreeMap<String, String>,
}

impl SyncState {
    /// How many assets are in `state`.
    pub fn count(&self, state: State) -> usize {
        self.assets.values().filter(|a| a.state == state).count()
    }

    /// Every asset identical and none failing: B can take over for all of A.
    pub fn settled(&self) -> bool {
        self.a_error.is_none()
            && self.assets.values().all(|a| {
                a.error.is_none()
                    && matches!(
                        a.state,
                        State::Identical | State::Deleted | State::DeletedInA
                    )
            })
    }
}

/// What one pass changed: `(asset name, from, to)` and the errors it met.
#[derive(Debug, Clone, Default)]
pub struct Pass {
    pub changes: Vec<(String, Option<State>, State)>,
    pub copied: usize,
    pub verified: usize,
    pub errors: Vec<String>,
}

fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn age(at: &Option<String>) -> Duration {
    at.as_deref()
        .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        .map(|t| (OffsetDateTime::now_utc() - t).unsigned_abs())
        .unwrap_or(Duration::MAX)
}

fn marker(asset: &Asset) -> String {
    asset
        .last_modified
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Names, sizes and MD5s of a container's blobs, sorted: two equal listings hold the same
/// bytes.
fn fingerprint(blobs: &[BlobInfo]) -> Vec<(&str, u64, Option<[u8; 16]>)> {
    let mut out: Vec<_> = blobs
        .iter()
        .map(|b| (b.name.as_str(), b.size, b.md5))
        .collect();
    out.sort();
    out
}

/// Where one of A's streamed assets stands in B, found by looking (not by a sync's memory).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Surveyed {
    pub asset_id: String,
    pub name: String,
    pub locator_id: String,
    pub state: State,
    pub replica_id: Option<String>,
    /// Why it could not be compared.
    pub error: Option<String>,
}

/// Compares every asset of A that has an origin locator with B's asset behind a locator of
/// the same Id: `only_in_a` (no such locator in B), `identical` or `differs` (blob listings,
/// names, sizes and MD5s, compared). The lists are the caller's (it has them already).
pub async fn survey(
    a: &crate::storage::Storage,
    b: &crate::storage::Storage,
    a_assets: &[Asset],
    a_locators: &[crate::ams::model::Locator],
    b_locators: &[crate::ams::model::Locator],
) -> Vec<Surveyed> {
    let mut out = Vec::new();
    for asset in a_assets {
        let Some(l) = a_locators
            .iter()
            .find(|l| l.asset_id == asset.id && l.kind == LocatorType::OnDemandOrigin)
        else {
            continue;
        };
        let replica = b_locators
            .iter()
            .find(|r| r.id.eq_ignore_ascii_case(&l.id))
            .map(|r| r.asset_id.clone());
        let (state, error) = match &replica {
            None => (State::OnlyInA, None),
            Some(r) => {
                let (ca, cb) = (
                    crate::ams::model::asset_container(&asset.id),
                    crate::ams::model::asset_container(r),
                );
                match tokio::try_join!(a.blobs(&ca), b.blobs(&cb)) {
                    Ok((la, lb)) if fingerprint(&la) == fingerprint(&lb) => {
                        (State::Identical, None)
                    }
                    Ok(_) => (State::Differs, None),
                    Err(e) => (State::Differs, Some(e.to_string())),
                }
            }
        };
        out.push(Surveyed {
            asset_id: asset.id.clone(),
            name: asset.name.clone().unwrap_or_else(|| asset.id.clone()),
            locator_id: l.id.clone(),
            state,
            replica_id: replica,
            error,
        });
    }
    out
}

/// How long passes come quickly after a job in A ended.
const HOT_FOR: Duration = Duration::from_secs(15);

/// The pause between passes while hot.
const HOT_INTERVAL: Duration = Duration::from_millis(100);

/// The longest pause between passes while a job runs in A.
const ACTIVE_INTERVAL: Duration = Duration::from_secs(1);

/// Keeps B in step with A (see the module docs).
pub struct Syncer {
    pub options: SyncOptions,
    pub state: SyncState,
    /// A's jobs not yet ended, as the last pass saw them.
    active: BTreeSet<String>,
    /// Passes come every `HOT_INTERVAL` until then (a job just ended).
    hot_until: Option<Instant>,
}

impl Syncer {
    /// A sync starting from the state file's last state, if there is one.
    pub fn new(options: SyncOptions) -> Self {
        let state = options
            .state_file
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self {
            options,
            state,
            active: BTreeSet::new(),
            hot_until: None,
        }
    }

    /// The pause before the next pass: `interval`, or `HOT_INTERVAL` for a while after a job
    /// in A ended (its output is about to be published).
    pub fn next_wait(&self) -> Duration {
        match self.hot_until {
            Some(t) if Instant::now() < t => HOT_INTERVAL.min(self.options.interval),
            // A job running: its end is seen within a second.
            _ if !self.active.is_empty() => ACTIVE_INTERVAL.min(self.options.interval),
            _ => self.options.interval,
        }
    }

    fn set(&mut self, pass: &mut Pass, id: &str, to: State) {
        if let Some(a) = self.state.assets.get_mut(id) {
            if a.state != to {
                pass.changes.push((a.name.clone(), Some(a.state), to));
                a.state = to;
                a.since = now();
            }
        }
    }

    /// One pass (see the module docs); errors are in the state and the pass, not returned.
    pub async fn pass(&mut self, a: &Side<'_>, b: &Side<'_>) -> Pass {
        let mut pass = Pass::default();
        self.state.passes += 1;
        let began = OffsetDateTime::now_utc();
        self.state.last_pass = Some(now());
        match self.listing(a).await {
            Ok((streamed, changed, active)) => {
                self.state.a_error = None;
                if self.active.iter().any(|j| !active.contains(j)) {
                    self.hot_until = Some(Instant::now() + HOT_FOR);
                }
                self.active = active;
                // Changes are asked from a little before this pass began: clocks round to
                // the second, and a change during the pass is seen again, harmlessly.
                self.state.listed_since = (began - time::Duration::seconds(2))
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok();
                for (id, locator_id) in &streamed {
                    self.one(a, b, id, locator_id, changed.get(id), &mut pass)
                        .await;
                }
                self.gone(a, b, &streamed, &mut pass).await;
            }
            Err(e) => {
                let e = format!("dc-a cannot be listed: {e}");
                tracing::warn!(error = %e, "sync pass skipped");
                pass.errors.push(e.clone());
                self.state.a_error = Some(e);
            }
        }
        self.save();
        pass
    }

    /// A's streamed assets (asset Id → its oldest origin locator's Id, in publishing order),
    /// the assets modified since the last listing (all of them the first time), and the Ids
    /// of its jobs not yet ended.
    #[allow(clippy::type_complexity)]
    async fn listing(
        &self,
        a: &Side<'_>,
    ) -> Result<
        (
            Vec<(String, String)>,
            BTreeMap<String, Asset>,
            BTreeSet<String>,
        ),
        AmsError,
    > {
        let since = self.state.listed_since.as_deref().and_then(|t| {
            OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        });
        let changed = async {
            match since {
                Some(t) => a.media.assets_modified_since(t).await,
                None => a.media.assets().await,
            }
        };
        let (mut locators, changed, active) =
            tokio::try_join!(a.media.origin_locators(), changed, a.media.active_jobs())?;
        locators.sort_by_key(|l| l.start_time);
        let mut streamed: Vec<(String, String)> = Vec::new();
        for l in locators {
            if l.kind == LocatorType::OnDemandOrigin
                && !streamed.iter().any(|(id, _)| *id == l.asset_id)
            {
                streamed.push((l.asset_id, l.id));
            }
        }
        Ok((
            streamed,
            changed.into_iter().map(|x| (x.id.clone(), x)).collect(),
            active.into_iter().map(|j| j.id).collect(),
        ))
    }

    async fn one(
        &mut self,
        a: &Side<'_>,
        b: &Side<'_>,
        id: &str,
        locator_id: &str,
        changed: Option<&Asset>,
        pass: &mut Pass,
    ) {
        let known = self.state.assets.get(id).cloned();
        let ignored = self.state.ignored.get(id).cloned();
        if known.is_none() && ignored.is_some() && changed.is_none() {
            return;
        }
        let mark = match (changed, &known) {
            (Some(x), _) => marker(x),
            (None, Some(k)) => k.marker.clone(),
            (None, None) => String::new(),
        };
        if known.is_none() {
            // First seen (or changed since it was found unstreamable): is it streamable?
            let asset = match changed {
                Some(x) => Ok(x.clone()),
                None => a.media.asset(id).await,
            };
            let files = match asset {
                Ok(x) => a.media.files(id).await.map(|f| (x, f)),
                Err(e) => Err(e),
            };
            let (asset, files) = match files {
                Ok(v) => v,
                Err(e) => {
                    pass.errors.push(format!("{id}: {e}"));
                    return;
                }
            };
            let mark = marker(&asset);
            let streamable = files
                .iter()
                .any(|f| f.is_primary && f.name.to_ascii_lowercase().ends_with(".ism"));
            if !streamable {
                self.state.ignored.insert(id.to_string(), mark);
                return;
            }
            self.state.ignored.remove(id);
            let name = asset.name.clone().unwrap_or_else(|| asset.id.clone());
            self.state.assets.insert(
                id.to_string(),
                AssetSync {
                    asset_id: id.to_string(),
                    name: name.clone(),
                    locator_id: locator_id.to_string(),
                    state: State::OnlyInA,
                    since: now(),
                    verified: None,
                    replica_id: None,
                    copied: 0,
                    error: None,
                    marker: mark,
                },
            );
            pass.changes.push((name, None, State::OnlyInA));
        }
        let entry = self.state.assets[id].clone();
        let name = entry.name.clone();
        let mark = if mark.is_empty() {
            entry.marker.clone()
        } else {
            mark
        };
        let due = entry.marker != mark || age(&entry.verified) >= self.options.verify_every;
        if entry.state == State::Identical && entry.error.is_none() && !due {
            return;
        }
        if entry.state == State::Identical {
            // Verify: the two listings, compared.
            match self.same_blobs(a, b, &entry).await {
                Ok(true) => {
                    let e = self.state.assets.get_mut(id).expect("known");
                    e.verified = Some(now());
                    e.marker = mark;
                    e.error = None;
                    pass.verified += 1;
                    return;
                }
                Ok(false) => self.set(pass, id, State::Differs),
                Err(e) => {
                    let msg = format!("{name}: cannot verify: {e}");
                    pass.errors.push(msg.clone());
                    self.state.assets.get_mut(id).expect("known").error = Some(msg);
                    return;
                }
            }
        }
        if self.state.assets[id].state != State::Differs {
            self.set(pass, id, State::Copying);
        }
        let copy = CopyOptions::default();
        let result = replicate(a, b, id, Some(locator_id.to_string()), &copy).await;
        let e = self.state.assets.get_mut(id).expect("known");
        match result {
            Ok(r) => {
                e.replica_id = Some(r.target.id.clone());
                e.copied = r.copy.copied;
                e.verified = Some(now());
                e.marker = mark;
                e.error = None;
                pass.copied += r.copy.copied;
                self.set(pass, id, State::Identical);
            }
            Err(err) => {
                let msg = format!("{name}: {err}");
                tracing::warn!(error = %msg, "replication failed; tried again next pass");
                pass.errors.push(msg.clone());
                e.error = Some(msg);
            }
        }
    }

    async fn same_blobs(
        &self,
        a: &Side<'_>,
        b: &Side<'_>,
        entry: &AssetSync,
    ) -> Result<bool, crate::storage::StorageError> {
        let Some(replica) = &entry.replica_id else {
            return Ok(false);
        };
        let ca = crate::ams::model::asset_container(&entry.asset_id);
        let cb = crate::ams::model::asset_container(replica);
        let (la, lb) = tokio::try_join!(a.storage.blobs(&ca), b.storage.blobs(&cb))?;
        Ok(fingerprint(&la) == fingerprint(&lb))
    }

    /// Assets the sync followed whose origin locator is gone: deleted in A, or unpublished.
    async fn gone(
        &mut self,
        a: &Side<'_>,
        b: &Side<'_>,
        streamed: &[(String, String)],
        pass: &mut Pass,
    ) {
        let gone: Vec<String> = self
            .state
            .assets
            .values()
            .filter(|x| !streamed.iter().any(|(id, _)| *id == x.asset_id))
            .filter(|x| x.state != State::Deleted)
            .filter(|x| x.state != State::DeletedInA || self.options.delete)
            .map(|x| x.asset_id.clone())
            .collect();
        for id in gone {
            if self.state.assets[&id].state != State::DeletedInA {
                match a.media.asset(&id).await {
                    Err(AmsError::NotFound { .. }) => {}
                    Ok(x) => {
                        // Unpublished, not deleted: no longer followed (published again, it
                        // is verified again and nothing is copied twice).
                        let name = self.state.assets[&id].name.clone();
                        tracing::info!(asset = %name, "its origin locator is gone; no longer followed");
                        self.state.assets.remove(&id);
                        self.state.ignored.insert(id, marker(&x));
                        continue;
                    }
                    Err(e) => {
                        pass.errors.push(format!("{id}: {e}"));
                        continue;
                    }
                }
            }
            if !self.options.delete {
                self.set(pass, &id, State::DeletedInA);
                continue;
            }
            let replica = self.state.assets[&id].replica_id.clone();
            let deleted = match &replica {
                Some(r) => match b.media.delete_asset(r).await {
                    Ok(()) | Err(AmsError::NotFound { .. }) => Ok(()),
                    Err(e) => Err(e),
                },
                None => Ok(()),
            };
            match deleted {
                Ok(()) => self.set(pass, &id, State::Deleted),
                Err(e) => {
                    let msg = format!(
                        "{}: cannot delete its replica: {e}",
                        self.state.assets[&id].name
                    );
                    pass.errors.push(msg.clone());
                    self.state.assets.get_mut(&id).expect("known").error = Some(msg);
                }
            }
        }
    }

    /// Writes the state file (a temporary file renamed over it: never half-written).
    fn save(&self) {
        let Some(path) = &self.options.state_file else {
            return;
        };
        let tmp = path.with_extension("json.tmp");
        let written = serde_json::to_vec_pretty(&self.state)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the sync state");
        }
    }
}
