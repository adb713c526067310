//! Media Services in scripts: assets, files, access policies and locators on `account(name)`,
//! the steps of the failover walkthrough.

use rhai::{Array, Dynamic, Engine, Map};
use serde_json::json;
use time::OffsetDateTime;

use super::account::Account;
use super::errors::{invalid, IntoScript, RhaiResult};
use super::host::Days;
use crate::ams::model::{self, requests, AssetFile, LocatorType, Permissions};
use crate::storage::{Storage, TransferOptions};

/// An asset, with the account it lives in.
#[derive(Debug, Clone)]
pub struct Asset {
    pub account: Account,
    pub asset: model::Asset,
}

/// A locator, with the account it lives in.
#[derive(Debug, Clone)]
pub struct Locator {
    pub account: Account,
    pub locator: model::Locator,
}

fn file_map(f: &AssetFile) -> Map {
    let mut m = Map::new();
    m.insert("id".into(), f.id.clone().into());
    m.insert("name".into(), f.name.clone().into());
    m.insert("size".into(), f.content_file_size.into());
    m.insert("is_primary".into(), f.is_primary.into());
    m.insert(
        "mime_type".into(),
        f.mime_type.clone().unwrap_or_default().into(),
    );
    m.insert(
        "checksum".into(),
        f.content_checksum.clone().unwrap_or_default().into(),
    );
    m
}

fn policy_map(p: &model::AccessPolicy) -> Map {
    let mut m = Map::new();
    m.insert("id".into(), p.id.clone().into());
    m.insert("name".into(), p.name.clone().into());
    m.insert("minutes".into(), p.duration_in_minutes.into());
    m.insert("permissions".into(), (p.permissions.bits() as i64).into());
    m
}

fn date(d: OffsetDateTime) -> String {
    model::format_date(d)
}

/// "r", "w", "rw", "rwdl" → permission flags.
fn perms(s: &str) -> RhaiResult<Permissions> {
    let mut p = Permissions::NONE;
    for c in s.chars() {
        p |= match c {
            'r' => Permissions::READ,
            'w' => Permissions::WRITE,
            'd' => Permissions::DELETE,
            'l' => Permissions::LIST,
            _ => {
                return Err(invalid(format!(
                    "permissions '{s}': '{c}' is not one of r, w, d, l"
                )))
            }
        };
    }
    Ok(p)
}

/// `{path}{name}/manifest` with the format's suffix, for an origin locator and a file map.
fn manifest_url(l: &Locator, f: &Map, format: &str) -> RhaiResult<String> {
    let name = f
        .get("name")
        .map(|n| n.to_string())
        .ok_or_else(|| invalid("url(file): the map has no name"))?;
    let suffix = match format {
        "smooth" => "",
        "hls" => "(format=m3u8-aapl)",
        "dash" => "(format=mpd-time-csf)",
        other => {
            return Err(invalid(format!(
                "url(file, format): format is \"smooth\", \"hls\" or \"dash\", not {other:?}"
            )))
        }
    };
    Ok(format!("{}{name}/manifest{suffix}", l.locator.path))
}

/// A duration in days as playbooks give it: a whole number (`30`) or what `days()`,
/// `hours()` and `minutes()` return (`hours(12)` is 0.5).
pub(super) fn days_of(v: &Dynamic) -> RhaiResult<f64> {
    if let Ok(n) = v.as_int() {
        return Ok(n as f64);
    }
    v.as_float().map_err(|t| {
        invalid(format!(
            "a duration is a number of days (30, days(30), hours(12), minutes(90)), not {t}"
        ))
    })
}

fn minutes(days: f64) -> RhaiResult<f64> {
    if !(days > 0.0 && days < 36500.0) {
        return Err(invalid(format!(
            "{days} days is not a usable duration (more than 0, less than 100 years)"
        )));
    }
    Ok(days * 1440.0)
}

impl Asset {
    fn files(&self) -> RhaiResult<Vec<AssetFile>> {
        let m = self.account.media()?;
        self.account.call(m.files(&self.asset.id))
    }
}

impl Locator {
    /// The container name of a SAS locator's path (the walkthrough's `Segments[1]`, made
    /// right for path-style URLs too).
    fn container(&self) -> String {
        self.locator.container()
    }
}

fn locator(a: &Account, new: requests::NewLocator) -> RhaiResult<Locator> {
    let m = a.media()?;
    let l = a.call(m.create_locator(&new))?;
    Ok(Locator {
        account: a.clone(),
        locator: l,
    })
}

fn new_locator(
    a: &Account,
    asset: &Asset,
    kind: LocatorType,
    p: &str,
    days: f64,
    id: Option<String>,
) -> RhaiResult<Locator> {
    let m = a.media()?;
    let name = if kind == LocatorType::Sas {
        "amsplay SAS policy"
    } else {
        "amsplay streaming policy"
    };
    let policy = a.call(m.create_access_policy(name, minutes(days)?, perms(p)?))?;
    let start = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    locator(
        a,
        requests::NewLocator {
            id,
            asset_id: asset.asset.id.clone(),
            access_policy_id: policy.id,
            kind,
            start_time: Some(start),
            name: None,
        },
    )
}

fn origin_locator(
    a: &Account,
    asset: &Asset,
    days: f64,
    id: Option<String>,
) -> RhaiResult<Locator> {
    if let Some(id) = &id {
        // Idempotent: the same Id on the same asset is the locator we want already.
        let m = a.media()?;
        if let Ok(existing) = a.bridge.wait(m.locator(id))? {
            if existing.asset_id == asset.asset.id {
                return Ok(Locator {
                    account: a.clone(),
                    locator: existing,
                });
            }
            return Err(super::errors::host_error(
                "conflict",
                format!(
                    "locator '{id}' already exists in '{}' on another asset ({})",
                    a.name, existing.asset_id
                ),
                Some("delete it first, or replicate onto that asset".into()),
                Some(409),
            ));
        }
    }
    new_locator(a, asset, LocatorType::OnDemandOrigin, "r", days, id)
}

fn upload(a: &Account, path: &str, asset_name: Option<&str>) -> RhaiResult<Asset> {
    let m = a.media()?;
    let path = std::path::PathBuf::from(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| invalid(format!("'{}' has no file name", path.display())))?;
    std::fs::metadata(&path).map_err(|e| {
        super::errors::host_error(
            "local_file",
            format!("upload: local file {}: {e}", path.display()),
            None,
            None,
        )
    })?;
    let stamp = model::format_date(OffsetDateTime::now_utc());
    let asset_name = asset_name
        .map(str::to_string)
        .unwrap_or_else(|| format!("UploadSingleFile_{stamp}"));
    let asset = a.call(m.create_asset(&asset_name))?;
    let file = a.call(m.create_file(&requests::NewFile {
        name: name.clone(),
        parent_asset_id: asset.id.clone(),
        ..Default::default()
    }))?;
    let wrapped = Asset {
        account: a.clone(),
        asset: asset.clone(),
    };
    let write = new_locator(a, &wrapped, LocatorType::Sas, "w", 1.0 / 24.0, None)?;
    let sas = url::Url::parse(&write.locator.path).map_err(|e| invalid(e.to_string()))?;
    let (storage, container) = Storage::from_container_sas(&sas).script()?;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let progress = crate::progress::bars_enabled()
        .then(|| crate::progress::Progress::bytes(format!("upload {name}"), size));
    let blob = a.call(storage.upload_file(
        &container,
        &path,
        &name,
        &TransferOptions::default(),
        progress.as_ref(),
    ))?;
    if let Some(p) = progress {
        p.finish();
    }
    let checksum = blob.md5.map(|d| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(d)
    });
    a.call(m.update_file(
        &file.id,
        &json!({"ContentFileSize": blob.size.to_string(), "MimeType": blob.content_type, "ContentChecksum": checksum}),
    ))?;
    a.call(m.delete_locator(&write.locator.id))?;
    Ok(wrapped)
}

pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Asset>("Asset");
    engine.register_type_with_name::<Locator>("Locator");
    engine.register_fn("to_string", |a: &mut Asset| a.to_string());
    engine.register_fn("to_debug", |a: &mut Asset| a.to_string());
    engine.register_fn("to_string", |l: &mut Locator| l.to_string());
    engine.register_fn("to_debug", |l: &mut Locator| l.to_string());
    engine.register_global_module(rhai::exported_module!(api).into());
}

impl std::fmt::Display for Asset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.asset.name.as_deref().unwrap_or_default();
        write!(f, "Asset({} '{name}')", self.asset.id)
    }
}

impl std::fmt::Display for Locator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Locator({} {})", self.locator.id, self.locator.path)
    }
}

/// Assets, files, access policies and locators as playbooks call them.
#[rhai::plugin::export_module]
mod api {
    use super::*;
    use super::{Array, Map, RhaiResult};

    /// The asset's Id (nb:cid:UUID:…).
    /// Example: print(x.id);
    #[rhai_fn(get = "id", pure)]
    pub fn asset_id(asset: &mut Asset) -> String {
        asset.asset.id.clone()
    }

    /// The asset's name (empty when it has none).
    /// Example: print(x.name);
    #[rhai_fn(get = "name", pure)]
    pub fn asset_name(asset: &mut Asset) -> String {
        asset.asset.name.clone().unwrap_or_default()
    }

    /// The asset's blob container (asset-GUID) in the account's storage.
    /// Example: print(a.storage.blobs(x.container));
    #[rhai_fn(get = "container", pure)]
    pub fn asset_container(asset: &mut Asset) -> String {
        asset.asset.container()
    }

    /// The container's URL, as Media Services gives it.
    /// Example: print(x.uri);
    #[rhai_fn(get = "uri", pure)]
    pub fn asset_uri(asset: &mut Asset) -> String {
        asset.asset.uri.clone()
    }

    /// When the asset was created (RFC 3339, UTC).
    /// Example: print(x.created);
    #[rhai_fn(get = "created", pure)]
    pub fn asset_created(asset: &mut Asset) -> String {
        date(asset.asset.created)
    }

    /// The asset's files (asked of the service): maps #{id, name, size, is_primary,
    /// mime_type, checksum}.
    /// Example: for f in x.files { print(f.name); }
    #[rhai_fn(get = "files", pure, return_raw)]
    pub fn asset_files(asset: &mut Asset) -> RhaiResult<Array> {
        Ok(asset.files()?.iter().map(|f| file_map(f).into()).collect())
    }

    /// The primary file as a map, or () when none is primary.
    /// Example: print(x.primary_file?.name);
    #[rhai_fn(get = "primary_file", pure, return_raw)]
    pub fn asset_primary_file(asset: &mut Asset) -> RhaiResult<Dynamic> {
        Ok(asset
            .files()?
            .iter()
            .find(|f| f.is_primary)
            .map(|f| file_map(f).into())
            .unwrap_or(Dynamic::UNIT))
    }

    /// The locator's Id (nb:lid:UUID:…): the same in both datacenters after a failover replica.
    /// Example: print(origin.id);
    #[rhai_fn(get = "id", pure)]
    pub fn locator_id(locator: &mut Locator) -> String {
        locator.locator.id.clone()
    }

    /// The URL the locator hands out: the streaming base of an OnDemandOrigin locator, the
    /// container URL with a SAS of a SAS locator.
    /// Example: print(`${origin.path}clip.ism/manifest`);
    #[rhai_fn(get = "path", pure)]
    pub fn locator_path(locator: &mut Locator) -> String {
        locator.locator.path.clone()
    }

    /// "SAS" or "OnDemandOrigin".
    /// Example: if l.type == "OnDemandOrigin" { print(l.path); }
    #[rhai_fn(get = "type", pure)]
    pub fn locator_type(locator: &mut Locator) -> String {
        match locator.locator.kind {
            LocatorType::Sas => "SAS".into(),
            _ => "OnDemandOrigin".into(),
        }
    }

    /// The Id of the asset the locator opens.
    /// Example: print(l.asset_id);
    #[rhai_fn(get = "asset_id", pure)]
    pub fn locator_asset_id(locator: &mut Locator) -> String {
        locator.locator.asset_id.clone()
    }

    /// When the locator starts working (RFC 3339, UTC).
    /// Example: print(l.start_time);
    #[rhai_fn(get = "start_time", pure)]
    pub fn locator_start_time(locator: &mut Locator) -> String {
        date(locator.locator.start_time)
    }

    /// When the locator stops working (RFC 3339, UTC).
    /// Example: print(l.expiration);
    #[rhai_fn(get = "expiration", pure)]
    pub fn locator_expiration(locator: &mut Locator) -> String {
        date(locator.locator.expiration_date_time)
    }

    /// The blob container a SAS locator's URL opens.
    /// Example: print(read.container);
    #[rhai_fn(get = "container", pure)]
    pub fn locator_container(locator: &mut Locator) -> String {
        locator.container()
    }

    /// Creates an empty asset (and its blob container asset-{guid}).
    /// Example: let target = b.create_asset(read.container);
    #[rhai_fn(return_raw, pure)]
    pub fn create_asset(account: &mut Account, name: &str) -> RhaiResult<Asset> {
        let m = account.media()?;
        let asset = account.call(m.create_asset(name))?;
        Ok(Asset {
            account: account.clone(),
            asset,
        })
    }

    /// An asset by Id; an unknown Id is a not_found error.
    /// Example: let x = a.asset("nb:cid:UUID:…");
    #[rhai_fn(return_raw, pure)]
    pub fn asset(account: &mut Account, id: &str) -> RhaiResult<Asset> {
        let m = account.media()?;
        let asset = account.call(m.asset(id))?;
        Ok(Asset {
            account: account.clone(),
            asset,
        })
    }

    /// Every asset of the account.
    /// Example: for x in a.assets() { print(x.name); }
    #[rhai_fn(return_raw, pure)]
    pub fn assets(account: &mut Account) -> RhaiResult<Array> {
        let m = account.media()?;
        let all = account.call(m.assets())?;
        Ok(all
            .into_iter()
            .map(|asset| {
                Dynamic::from(Asset {
                    account: account.clone(),
                    asset,
                })
            })
            .collect())
    }

    /// Deletes an asset with its container, files and locators.
    /// Example: old.delete();
    #[rhai_fn(name = "delete", return_raw, pure)]
    pub fn delete_asset(asset: &mut Asset) -> RhaiResult<()> {
        let m = asset.account.media()?;
        asset.account.call(m.delete_asset(&asset.asset.id))
    }

    /// Uploads a local file into a new asset, as the walkthrough's
    /// CreateAssetAndUploadSingleFile: asset, File record, write SAS locator, block upload
    /// (progress bar), File size and MD5, SAS deleted.
    /// Example: let src = a.upload("media/clip.mp4");
    #[rhai_fn(return_raw, pure)]
    pub fn upload(account: &mut Account, path: &str) -> RhaiResult<Asset> {
        super::upload(account, path, None)
    }

    /// Uploads a local file into a new asset with that name (see upload(path)).
    /// Example: let src = a.upload("clip.mp4", "Mezzanine clip");
    #[rhai_fn(name = "upload", return_raw, pure)]
    pub fn upload_named(account: &mut Account, path: &str, asset_name: &str) -> RhaiResult<Asset> {
        super::upload(account, path, Some(asset_name))
    }

    /// The asset's Files: maps #{id, name, size, is_primary, mime_type, checksum}.
    /// Example: for f in b.files(target) { print(`${f.name} ${f.size}`); }
    #[rhai_fn(return_raw, pure)]
    pub fn files(account: &mut Account, asset: Asset) -> RhaiResult<Array> {
        // The asset knows its account; the receiver is the walkthrough's calling style.
        let _ = account;
        Ok(asset.files()?.iter().map(|f| file_map(f).into()).collect())
    }

    /// Marks the asset's only .ism file as primary (an error unless there is exactly one),
    /// as the walkthrough's SetPrimaryFile.
    /// Example: a.set_primary(out);
    #[rhai_fn(return_raw, pure)]
    pub fn set_primary(account: &mut Account, asset: Asset) -> RhaiResult<Map> {
        let m = account.media()?;
        let files = asset.files()?;
        let ism: Vec<&AssetFile> = files
            .iter()
            .filter(|f| f.name.to_ascii_lowercase().ends_with(".ism"))
            .collect();
        if ism.len() != 1 {
            return Err(invalid(format!(
                "asset '{}' should have exactly one .ism file, it has {}",
                asset.asset.id,
                ism.len()
            )));
        }
        account.call(m.update_file(&ism[0].id, &json!({"IsPrimary": true})))?;
        let mut f = ism[0].clone();
        f.is_primary = true;
        Ok(file_map(&f))
    }

    /// Creates an access policy of `days` (a number, or hours(n)/minutes(n)): permissions are
    /// letters r (read), w (write), d (delete), l (list).
    /// Example: let p = a.access_policy("Streaming policy", 30, "r");
    #[rhai_fn(return_raw, pure)]
    pub fn access_policy(
        account: &mut Account,
        name: &str,
        days: Days,
        permissions: &str,
    ) -> RhaiResult<Map> {
        let m = account.media()?;
        let minutes = minutes(days_of(&days)?)?;
        let pol = account.call(m.create_access_policy(name, minutes, perms(permissions)?))?;
        Ok(policy_map(&pol))
    }

    /// Every access policy: maps #{id, name, minutes, permissions}.
    /// Example: print(a.access_policies().len());
    #[rhai_fn(return_raw, pure)]
    pub fn access_policies(account: &mut Account) -> RhaiResult<Array> {
        let m = account.media()?;
        Ok(account
            .call(m.access_policies())?
            .iter()
            .map(|p| policy_map(p).into())
            .collect())
    }

    /// An OnDemandOrigin (streaming) locator on a read-only policy of `days` (a number, or
    /// hours(n)/minutes(n)), starting 5 minutes ago.
    /// Example: let origin = a.origin_locator(out, 30);
    #[rhai_fn(return_raw, pure)]
    pub fn origin_locator(account: &mut Account, asset: Asset, days: Days) -> RhaiResult<Locator> {
        super::origin_locator(account, &asset, days_of(&days)?, None)
    }

    /// An OnDemandOrigin locator created with a given Id (nb:lid:UUID:…): the failover trick
    /// that gives two datacenters the same streaming paths; if that Id already exists on this
    /// asset it is returned.
    /// Example: let replica = b.origin_locator(target, 100, origin.id);
    #[rhai_fn(name = "origin_locator", return_raw, pure)]
    pub fn origin_locator_with_id(
        account: &mut Account,
        asset: Asset,
        days: Days,
        id: &str,
    ) -> RhaiResult<Locator> {
        super::origin_locator(account, &asset, days_of(&days)?, Some(id.to_string()))
    }

    /// A SAS locator: its path is the asset's container URL with a SAS ("r" read+list, "w"
    /// write), for `days` (a number, or hours(n)/minutes(n)).
    /// Example: let read = a.sas_locator(out, "r", 30); print(read.container);
    #[rhai_fn(return_raw, pure)]
    pub fn sas_locator(
        account: &mut Account,
        asset: Asset,
        permissions: &str,
        days: Days,
    ) -> RhaiResult<Locator> {
        let p = if permissions == "r" {
            "rl"
        } else {
            permissions
        };
        new_locator(account, &asset, LocatorType::Sas, p, days_of(&days)?, None)
    }

    /// Every locator of the account.
    /// Example: for l in a.locators() { print(`${l.type} ${l.path}`); }
    #[rhai_fn(return_raw, pure)]
    pub fn locators(account: &mut Account) -> RhaiResult<Array> {
        let m = account.media()?;
        let all = account.call(m.locators())?;
        Ok(all
            .into_iter()
            .map(|locator| {
                Dynamic::from(Locator {
                    account: account.clone(),
                    locator,
                })
            })
            .collect())
    }

    /// Deletes a locator (a SAS URL stops working at once: its stored access policy goes too).
    /// Example: read.delete();
    #[rhai_fn(name = "delete", return_raw, pure)]
    pub fn delete_locator(locator: &mut Locator) -> RhaiResult<()> {
        let m = locator.account.media()?;
        locator.account.call(m.delete_locator(&locator.locator.id))
    }

    /// The Smooth Streaming URL of a file through an origin locator: path + name + /manifest.
    /// Example: print(origin.url(out.primary_file));
    #[rhai_fn(return_raw, pure)]
    pub fn url(locator: &mut Locator, file: Map) -> RhaiResult<String> {
        manifest_url(locator, &file, "smooth")
    }

    /// The manifest URL of a file through an origin locator in a format: "smooth", "hls"
    /// (m3u8-aapl) or "dash" (mpd-time-csf).
    /// Example: print(origin.url(out.primary_file, "hls"));
    #[rhai_fn(name = "url", return_raw, pure)]
    pub fn url_in(locator: &mut Locator, file: Map, format: &str) -> RhaiResult<String> {
        manifest_url(locator, &file, format)
    }

    /// Asks the origin behind an origin locator for the file's manifests in every format
    /// (Smooth, HLS, DASH), so it reads every rendition's index before players arrive: a
    /// standby's last step. Returns #{manifests, ms}, or #{error} when the origin did not answer.
    /// Example: let w = replica.warm(primary); print(`B warmed in ${w.ms} ms`);
    #[rhai_fn(return_raw, pure)]
    pub fn warm(locator: &mut Locator, file: Map) -> RhaiResult<Map> {
        let manifest = manifest_url(locator, &file, "smooth")?;
        let warmed = locator
            .account
            .bridge
            .wait(crate::origin::warm::warm(&manifest))?;
        Ok(warmed_map(warmed))
    }

    /// Smooth, HLS and DASH URLs of the asset's primary file through an origin locator.
    /// Example: print(replica.streaming_urls(target));
    #[rhai_fn(return_raw, pure)]
    pub fn streaming_urls(locator: &mut Locator, asset: Asset) -> RhaiResult<Map> {
        let primary = asset
            .files()?
            .into_iter()
            .find(|f| f.is_primary)
            .ok_or_else(|| {
                invalid(format!(
                    "asset '{}' has no primary file; call set_primary or create_file_infos",
                    asset.asset.id
                ))
            })?;
        let file = file_map(&primary);
        let mut m = Map::new();
        for format in ["smooth", "hls", "dash"] {
            m.insert(format.into(), manifest_url(locator, &file, format)?.into());
        }
        Ok(m)
    }

    /// Registers every blob of the asset's container as a File (REST CreateFileInfos),
    /// idempotently; returns the Files.
    /// Example: b.create_file_infos(target);
    #[rhai_fn(return_raw, pure)]
    pub fn create_file_infos(account: &mut Account, asset: Asset) -> RhaiResult<Array> {
        let m = account.media()?;
        account.call(m.create_file_infos(&asset.asset.id))?;
        Ok(asset.files()?.iter().map(|f| file_map(f).into()).collect())
    }

    /// The account's streaming endpoints: maps #{id, name, state, host_name, scale_units}.
    /// Example: print(a.streaming_endpoints()[0].state);
    #[rhai_fn(return_raw, pure)]
    pub fn streaming_endpoints(account: &mut Account) -> RhaiResult<Array> {
        let m = account.media()?;
        Ok(account
            .call(m.streaming_endpoints())?
            .iter()
            .map(|e| endpoint_map(e).into())
            .collect())
    }

    /// Stops the account's (first) streaming endpoint and waits for the operation: its origin
    /// answers 503 until start_streaming(), a clean way to take an origin out, as the portal
    /// did. Returns the endpoint map.
    /// Example: a.stop_streaming(); sleep(5); a.start_streaming();
    #[rhai_fn(return_raw, pure)]
    pub fn stop_streaming(account: &mut Account) -> RhaiResult<Map> {
        operate_first_endpoint(account, "Stop", None)
    }

    /// Starts the account's (first) streaming endpoint and waits for the operation.
    /// Example: a.start_streaming();
    #[rhai_fn(return_raw, pure)]
    pub fn start_streaming(account: &mut Account) -> RhaiResult<Map> {
        operate_first_endpoint(account, "Start", None)
    }

    /// Scales the account's (first) streaming endpoint to `units` streaming units.
    /// Example: a.scale_streaming(2);
    #[rhai_fn(return_raw, pure)]
    pub fn scale_streaming(account: &mut Account, units: i64) -> RhaiResult<Map> {
        let body = json!({ "scaleUnits": units });
        operate_first_endpoint(account, "Scale", Some(&body))
    }

    /// The media processors: maps #{id, name, version, vendor}.
    /// Example: print(a.processors());
    #[rhai_fn(return_raw, pure)]
    pub fn processors(account: &mut Account) -> RhaiResult<Array> {
        let m = account.media()?;
        Ok(account
            .call(m.processors())?
            .iter()
            .map(|p| {
                let mut mp = Map::new();
                mp.insert("id".into(), p.id.clone().into());
                mp.insert("name".into(), p.name.clone().into());
                mp.insert("version".into(), p.version.clone().into());
                mp.insert("vendor".into(), p.vendor.clone().into());
                Dynamic::from(mp)
            })
            .collect())
    }
}

fn endpoint_map(e: &model::StreamingEndpoint) -> Map {
    let mut m = Map::new();
    m.insert("id".into(), e.id.clone().into());
    m.insert("name".into(), e.name.clone().into());
    m.insert("state".into(), e.state.clone().into());
    m.insert("host_name".into(), e.host_name.clone().into());
    m.insert("scale_units".into(), (e.scale_units as i64).into());
    m
}

fn operate_first_endpoint(
    account: &Account,
    action: &str,
    body: Option<&serde_json::Value>,
) -> RhaiResult<Map> {
    let m = account.media()?;
    let first = account
        .call(m.streaming_endpoints())?
        .into_iter()
        .next()
        .ok_or_else(|| {
            invalid(format!(
                "account '{}' has no streaming endpoint",
                account.name
            ))
        })?;
    let e = account.call(m.operate_endpoint(&first.id, action, body))?;
    Ok(endpoint_map(&e))
}

/// What warming an origin did, as a playbook sees it.
pub(crate) fn warmed_map(w: Result<crate::origin::warm::Warmed, String>) -> Map {
    let mut m = Map::new();
    match w {
        Ok(w) => {
            m.insert("manifests".into(), (w.manifests as i64).into());
            m.insert("ms".into(), w.ms.into());
        }
        Err(e) => {
            m.insert("error".into(), e.into());
        }
    }
    m
}
