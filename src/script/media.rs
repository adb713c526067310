//! Media Services in scripts: assets, files, access policies and locators on `account(name)`,
//! the steps of the failover walkthrough.

use rhai::{Array, Dynamic, Engine, Map};
use serde_json::json;
use time::OffsetDateTime;

use super::account::Account;
use super::errors::{invalid, IntoScript, RhaiResult};
use super::host::{func, getter};
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

fn date(d: OffsetDateTime) -> Dynamic {
    model::format_date(d).into()
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
            start_time: Some(model::format_date(start)),
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
    getter(
        "Asset",
        "id",
        "String",
        "The asset's Id (nb:cid:UUID:…).\nExample: print(x.id);",
    )
    .register_into_engine(engine, |a: &mut Asset| a.asset.id.clone());
    getter(
        "Asset",
        "name",
        "String",
        "The asset's name (empty when it has none).\nExample: print(x.name);",
    )
    .register_into_engine(engine, |a: &mut Asset| {
        a.asset.name.clone().unwrap_or_default()
    });
    getter("Asset", "container", "String", "The asset's blob container (asset-GUID) in the account's storage.\nExample: print(a.storage.blobs(x.container));").register_into_engine(engine, |a: &mut Asset| a.asset.container());
    getter(
        "Asset",
        "uri",
        "String",
        "The container's URL, as Media Services gives it.\nExample: print(x.uri);",
    )
    .register_into_engine(engine, |a: &mut Asset| a.asset.uri.clone());
    getter(
        "Asset",
        "created",
        "String",
        "When the asset was created (RFC 3339, UTC).\nExample: print(x.created);",
    )
    .register_into_engine(engine, |a: &mut Asset| date(a.asset.created));
    getter("Asset", "files", "Array", "The asset's files (asked of the service): maps #{id, name, size, is_primary, mime_type, checksum}.\nExample: for f in x.files { print(f.name); }").register_into_engine(engine, |a: &mut Asset| -> RhaiResult<Array> {
        Ok(a.files()?.iter().map(|f| file_map(f).into()).collect())
    });
    getter("Asset", "primary_file", "Map", "The primary file as a map, or () when none is primary.\nExample: print(x.primary_file?.name);").register_into_engine(engine, |a: &mut Asset| -> RhaiResult<Dynamic> {
        Ok(a.files()?
            .iter()
            .find(|f| f.is_primary)
            .map(|f| file_map(f).into())
            .unwrap_or(Dynamic::UNIT))
    });
    engine.register_fn("to_string", |a: &mut Asset| {
        format!(
            "Asset({} '{}')",
            a.asset.id,
            a.asset.name.clone().unwrap_or_default()
        )
    });
    engine.register_fn("to_debug", |a: &mut Asset| {
        format!(
            "Asset({} '{}')",
            a.asset.id,
            a.asset.name.clone().unwrap_or_default()
        )
    });

    getter("Locator", "id", "String", "The locator's Id (nb:lid:UUID:…): the same in both datacenters after a failover replica.\nExample: print(origin.id);").register_into_engine(engine, |l: &mut Locator| l.locator.id.clone());
    getter("Locator", "path", "String", "The URL the locator hands out: the streaming base of an OnDemandOrigin locator, the container URL with a SAS of a SAS locator.\nExample: print(`${origin.path}clip.ism/manifest`);").register_into_engine(engine, |l: &mut Locator| l.locator.path.clone());
    getter("Locator", "type", "String", "\"SAS\" or \"OnDemandOrigin\".\nExample: if l.type == \"OnDemandOrigin\" { print(l.path); }").register_into_engine(engine, |l: &mut Locator| {
        if l.locator.kind == LocatorType::Sas {
            "SAS".to_string()
        } else {
            "OnDemandOrigin".to_string()
        }
    });
    getter(
        "Locator",
        "asset_id",
        "String",
        "The Id of the asset the locator opens.\nExample: print(l.asset_id);",
    )
    .register_into_engine(engine, |l: &mut Locator| l.locator.asset_id.clone());
    getter("Locator", "start_time", "String", "When the locator starts working (RFC 3339, UTC), or () when at once.\nExample: print(l.start_time);").register_into_engine(engine, |l: &mut Locator| date(l.locator.start_time));
    getter(
        "Locator",
        "expiration",
        "String",
        "When the locator stops working (RFC 3339, UTC).\nExample: print(l.expiration);",
    )
    .register_into_engine(engine, |l: &mut Locator| {
        date(l.locator.expiration_date_time)
    });
    getter(
        "Locator",
        "container",
        "String",
        "The blob container a SAS locator's URL opens.\nExample: print(read.container);",
    )
    .register_into_engine(engine, |l: &mut Locator| l.container());
    engine.register_fn("to_string", |l: &mut Locator| {
        format!("Locator({} {})", l.locator.id, l.locator.path)
    });
    engine.register_fn("to_debug", |l: &mut Locator| {
        format!("Locator({} {})", l.locator.id, l.locator.path)
    });

    func("create_asset", &["account: Account", "name: String", "Asset"],
        "Creates an empty asset (and its blob container asset-{guid}).\nExample: let target = b.create_asset(read.container);")
        .register_into_engine(engine, |a: &mut Account, name: &str| -> RhaiResult<Asset> {
            let m = a.media()?;
            let asset = a.call(m.create_asset(name))?;
            Ok(Asset { account: a.clone(), asset })
        });
    func("asset", &["account: Account", "id: String", "Asset"],
        "An asset by Id; an unknown Id is a not_found error.\nExample: let x = a.asset(\"nb:cid:UUID:…\");")
        .register_into_engine(engine, |a: &mut Account, id: &str| -> RhaiResult<Asset> {
            let m = a.media()?;
            let asset = a.call(m.asset(id))?;
            Ok(Asset { account: a.clone(), asset })
        });
    func(
        "assets",
        &["account: Account", "Array"],
        "Every asset of the account.\nExample: for x in a.assets() { print(x.name); }",
    )
    .register_into_engine(engine, |a: &mut Account| -> RhaiResult<Array> {
        let m = a.media()?;
        let all = a.call(m.assets())?;
        Ok(all
            .into_iter()
            .map(|asset| {
                Dynamic::from(Asset {
                    account: a.clone(),
                    asset,
                })
            })
            .collect())
    });
    func(
        "delete",
        &["asset: Asset", "()"],
        "Deletes an asset with its container, files and locators.\nExample: old.delete();",
    )
    .register_into_engine(engine, |x: &mut Asset| -> RhaiResult<()> {
        let m = x.account.media()?;
        x.account.call(m.delete_asset(&x.asset.id))
    });
    func("upload", &["account: Account", "path: String", "Asset"],
        "Uploads a local file into a new asset, as the walkthrough's CreateAssetAndUploadSingleFile:\nasset, File record, write SAS locator, block upload (progress bar), File size and MD5, SAS deleted.\nExample: let src = a.upload(\"media/clip.mp4\");")
        .register_into_engine(engine, |a: &mut Account, path: &str| upload(a, path, None));
    func("upload", &["account: Account", "path: String", "asset_name: String", "Asset"],
        "Uploads a local file into a new asset with that name (see upload(path)).\nExample: let src = a.upload(\"clip.mp4\", \"Mezzanine clip\");")
        .register_into_engine(engine, |a: &mut Account, path: &str, name: &str| upload(a, path, Some(name)));
    func("files", &["account: Account", "asset: Asset", "Array"],
        "The asset's Files: maps #{id, name, size, is_primary, mime_type, checksum}.\nExample: for f in b.files(target) { print(`${f.name} ${f.size}`); }")
        .register_into_engine(engine, |_a: &mut Account, x: Asset| -> RhaiResult<Array> {
            Ok(x.files()?.iter().map(|f| file_map(f).into()).collect())
        });
    func("set_primary", &["account: Account", "asset: Asset", "Map"],
        "Marks the asset's only .ism file as primary (an error unless there is exactly one), as the walkthrough's SetPrimaryFile.\nExample: a.set_primary(out);")
        .register_into_engine(engine, |a: &mut Account, x: Asset| -> RhaiResult<Map> {
            let m = a.media()?;
            let files = x.files()?;
            let ism: Vec<&AssetFile> = files.iter().filter(|f| f.name.to_ascii_lowercase().ends_with(".ism")).collect();
            if ism.len() != 1 {
                return Err(invalid(format!("asset '{}' should have exactly one .ism file, it has {}", x.asset.id, ism.len())));
            }
            a.call(m.update_file(&ism[0].id, &json!({"IsPrimary": true})))?;
            let mut f = ism[0].clone();
            f.is_primary = true;
            Ok(file_map(&f))
        });
    func("access_policy", &["account: Account", "name: String", "days: number", "permissions: String", "Map"],
        "Creates an access policy: permissions are letters r (read), w (write), d (delete), l (list).\nExample: let p = a.access_policy(\"Streaming policy\", 30.0, \"r\");")
        .register_into_engine(engine, |a: &mut Account, name: &str, days: Dynamic, p: &str| -> RhaiResult<Map> {
            let m = a.media()?;
            let pol = a.call(m.create_access_policy(name, minutes(days_of(&days)?)?, perms(p)?))?;
            Ok(policy_map(&pol))
        });
    func("access_policies", &["account: Account", "Array"],
        "Every access policy: maps #{id, name, minutes, permissions}.\nExample: print(a.access_policies().len());")
        .register_into_engine(engine, |a: &mut Account| -> RhaiResult<Array> {
            let m = a.media()?;
            Ok(a.call(m.access_policies())?.iter().map(|p| policy_map(p).into()).collect())
        });
    const ORIGIN_DOC: &str = "An OnDemandOrigin (streaming) locator on a read-only policy of `days` (a number, or hours(n)/minutes(n)), starting 5 minutes ago.\nGiven an Id (nb:lid:UUID:…), it is created with that Id: the failover trick that gives two\ndatacenters the same streaming paths; if that Id already exists on this asset it is returned.\nExample: let replica = b.origin_locator(target, 100, origin.id);";
    func(
        "origin_locator",
        &[
            "account: Account",
            "asset: Asset",
            "days: number",
            "Locator",
        ],
        ORIGIN_DOC,
    )
    .register_into_engine(engine, |a: &mut Account, x: Asset, days: Dynamic| {
        origin_locator(a, &x, days_of(&days)?, None)
    });
    func(
        "origin_locator",
        &[
            "account: Account",
            "asset: Asset",
            "days: number",
            "id: String",
            "Locator",
        ],
        ORIGIN_DOC,
    )
    .register_into_engine(
        engine,
        |a: &mut Account, x: Asset, days: Dynamic, id: &str| {
            origin_locator(a, &x, days_of(&days)?, Some(id.to_string()))
        },
    );
    func("sas_locator", &["account: Account", "asset: Asset", "permissions: String", "days: number", "Locator"],
        "A SAS locator: its path is the asset's container URL with a SAS (\"r\" read+list, \"w\" write).\nExample: let read = a.sas_locator(out, \"r\", 30); print(read.container);")
        .register_into_engine(engine, |a: &mut Account, x: Asset, p: &str, days: Dynamic| {
            let p = if p == "r" { "rl" } else { p };
            new_locator(a, &x, LocatorType::Sas, p, days_of(&days)?, None)
        });
    func("locators", &["account: Account", "Array"],
        "Every locator of the account.\nExample: for l in a.locators() { print(`${l.type} ${l.path}`); }")
        .register_into_engine(engine, |a: &mut Account| -> RhaiResult<Array> {
            let m = a.media()?;
            let all = a.call(m.locators())?;
            Ok(all.into_iter().map(|locator| Dynamic::from(Locator { account: a.clone(), locator })).collect())
        });
    func("delete", &["locator: Locator", "()"],
        "Deletes a locator (a SAS URL stops being handed out; the policy stays).\nExample: read.delete();")
        .register_into_engine(engine, |l: &mut Locator| -> RhaiResult<()> {
            let m = l.account.media()?;
            l.account.call(m.delete_locator(&l.locator.id))
        });
    func("url", &["locator: Locator", "file: Map", "String"],
        "The Smooth Streaming URL of a file through an origin locator: path + name + /manifest.\nExample: print(origin.url(out.primary_file));")
        .register_into_engine(engine, |l: &mut Locator, f: Map| manifest_url(l, &f, "smooth"));
    func("url", &["locator: Locator", "file: Map", "format: String", "String"],
        "The manifest URL of a file through an origin locator in a format: \"smooth\", \"hls\" (m3u8-aapl) or \"dash\" (mpd-time-csf).\nExample: print(origin.url(out.primary_file, \"hls\"));")
        .register_into_engine(engine, |l: &mut Locator, f: Map, format: &str| manifest_url(l, &f, format));
    func("warm", &["locator: Locator", "file: Map", "Map"],
        "Asks the origin behind an origin locator for the file's manifests in every format (Smooth, HLS,\nDASH), so it reads every rendition's index before players arrive: a standby's last step.\nReturns #{manifests, ms}, or #{error} when the origin did not answer.\nExample: let w = replica.warm(primary); print(`B warmed in ${w.ms} ms`);")
        .register_into_engine(engine, |l: &mut Locator, f: Map| -> RhaiResult<Map> {
            let name = f.get("name").map(|n| n.to_string()).ok_or_else(|| invalid("warm(file): the map has no name"))?;
            let manifest = format!("{}{name}/manifest", l.locator.path);
            Ok(warmed_map(l.account.bridge.wait(crate::origin::warm::warm(&manifest))?))
        });
    func("streaming_urls", &["locator: Locator", "asset: Asset", "Map"],
        "Smooth, HLS and DASH URLs of the asset's primary file through an origin locator.\nExample: print(replica.streaming_urls(target));")
        .register_into_engine(engine, |l: &mut Locator, x: Asset| -> RhaiResult<Map> {
            let primary = x.files()?.into_iter().find(|f| f.is_primary)
                .ok_or_else(|| invalid(format!("asset '{}' has no primary file; call set_primary or create_file_infos", x.asset.id)))?;
            let base = format!("{}{}", l.locator.path, primary.name);
            let mut m = Map::new();
            m.insert("smooth".into(), format!("{base}/manifest").into());
            m.insert("hls".into(), format!("{base}/manifest(format=m3u8-aapl)").into());
            m.insert("dash".into(), format!("{base}/manifest(format=mpd-time-csf)").into());
            Ok(m)
        });
    func("create_file_infos", &["account: Account", "asset: Asset", "Array"],
        "Registers every blob of the asset's container as a File (REST CreateFileInfos), idempotently;\nreturns the Files.\nExample: b.create_file_infos(target);")
        .register_into_engine(engine, |a: &mut Account, x: Asset| -> RhaiResult<Array> {
            let m = a.media()?;
            a.call(m.create_file_infos(&x.asset.id))?;
            Ok(x.files()?.iter().map(|f| file_map(f).into()).collect())
        });
    func(
        "processors",
        &["account: Account", "Array"],
        "The media processors: maps #{id, name, version, vendor}.\nExample: print(a.processors());",
    )
    .register_into_engine(engine, |a: &mut Account| -> RhaiResult<Array> {
        let m = a.media()?;
        Ok(a.call(m.processors())?
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
    });
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
