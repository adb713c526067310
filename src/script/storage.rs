//! Blob Storage in scripts: `account("dc-a").storage` and `copy_blobs(…)`.

use std::path::PathBuf;
use std::time::Duration;

use rhai::{Array, Dynamic, Engine, Map};
use time::OffsetDateTime;

use super::errors::{invalid, IntoScript, RhaiResult};
use super::host::{host, Days};
use crate::progress::{bars_enabled, Progress};
use crate::storage::{
    BlobInfo, CopyMode, CopyOptions, CopyReport, SasPerms, Storage, TransferOptions,
};

/// A blob listing entry as scripts see it.
pub fn blob_map(b: &BlobInfo) -> Map {
    let mut m = Map::new();
    m.insert("name".into(), b.name.clone().into());
    m.insert("size".into(), (b.size as i64).into());
    m.insert("md5".into(), b.md5_hex().into());
    m.insert("etag".into(), b.etag.clone().into());
    m.insert(
        "last_modified".into(),
        b.last_modified
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
            .into(),
    );
    m.insert("content_type".into(), b.content_type.clone().into());
    m
}

fn report_map(r: &CopyReport) -> Map {
    let mut m = Map::new();
    m.insert("copied".into(), (r.copied as i64).into());
    m.insert("skipped".into(), (r.skipped as i64).into());
    m.insert("failed".into(), (r.failed as i64).into());
    m.insert("bytes".into(), (r.bytes as i64).into());
    m.insert("seconds".into(), r.seconds.into());
    m.insert("mode".into(), r.mode.clone().into());
    let failures: Array = r
        .failures
        .iter()
        .map(|f| {
            let mut e = Map::new();
            e.insert("name".into(), f.name.clone().into());
            e.insert("error".into(), f.error.clone().into());
            e.into()
        })
        .collect();
    m.insert("failures".into(), failures.into());
    m
}

/// Reads `copy_blobs` options, refusing keys it does not know (a typo should not be ignored).
fn copy_options(opts: &Map) -> RhaiResult<CopyOptions> {
    let mut o = CopyOptions::default();
    let int = |k: &str, v: &Dynamic| -> RhaiResult<i64> {
        v.as_int()
            .map_err(|_| invalid(format!("copy_blobs option '{k}' must be an integer")))
            .and_then(|n| {
                if n > 0 {
                    Ok(n)
                } else {
                    Err(invalid(format!("copy_blobs option '{k}' must be positive")))
                }
            })
    };
    let d = TransferOptions::default();
    let (mut block, mut window, mut budget) = (
        d.block_size as i64,
        d.window as i64,
        d.budget_bytes() as i64,
    );
    for (k, v) in opts {
        match k.as_str() {
            "mode" => o.mode = v.to_string().parse::<CopyMode>().script()?,
            "concurrency" => o.concurrency = int(k, v)? as usize,
            "attempts" => o.attempts = int(k, v)? as u32,
            "prefix" => o.prefix = Some(v.to_string()),
            "sas_hours" => {
                let h = int(k, v)?;
                if !(1..=24 * 366).contains(&h) {
                    return Err(invalid(format!(
                        "sas_hours must be between 1 and {} (a year), not {h}",
                        24 * 366
                    )));
                }
                o.sas_lifetime = Duration::from_secs(h as u64 * 3600);
            }
            "block_size" => block = int(k, v)?,
            "window" => window = int(k, v)?,
            "memory" => budget = int(k, v)?,
            "progress" => {
                o.progress = v
                    .as_bool()
                    .map_err(|_| invalid("copy_blobs option 'progress' must be true or false"))?
            }
            other => {
                return Err(invalid(format!(
                "copy_blobs has no option '{other}'; known: mode, concurrency, attempts, prefix, sas_hours, block_size, window, memory, progress"
            )))
            }
        }
    }
    o.transfer = TransferOptions::new(block as u64, window as usize, budget as u64);
    Ok(o)
}

fn days_to_duration(days: f64) -> RhaiResult<time::Duration> {
    if !(days > 0.0 && days < 36500.0) {
        return Err(invalid(format!(
            "{days} days is not a usable lifetime (more than 0, less than 100 years)"
        )));
    }
    Ok(time::Duration::seconds_f64(days * 86400.0))
}

fn progress_for(label: String, bytes: u64) -> Option<Progress> {
    bars_enabled().then(|| Progress::bytes(label, bytes))
}

pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Storage>("Storage");
    engine.register_fn("to_string", |s: &mut Storage| format!("{s:?}"));
    engine.register_fn("to_debug", |s: &mut Storage| format!("{s:?}"));
    engine.register_global_module(rhai::exported_module!(api).into());
}

/// Blob Storage as playbooks call it.
#[rhai::plugin::export_module]
mod api {
    use super::*;
    use super::{Map, RhaiResult};
    use rhai::plugin::*;

    /// The storage account name.
    /// Example: print(a.storage.name);
    #[rhai_fn(get = "name", pure)]
    pub fn name(storage: &mut Storage) -> String {
        storage.account().to_string()
    }

    /// The account's blob endpoint URL.
    /// Example: print(a.storage.endpoint);
    #[rhai_fn(get = "endpoint", pure)]
    pub fn endpoint(storage: &mut Storage) -> String {
        storage.endpoint().to_string()
    }

    /// Names of the containers in a storage account, sorted.
    /// Example: print(account("dc-a").storage.containers());
    #[rhai_fn(return_raw, pure)]
    pub fn containers(ctx: NativeCallContext, storage: &mut Storage) -> RhaiResult<Array> {
        let names = host(&ctx)?.call(storage.containers())?;
        Ok(names.into_iter().map(Dynamic::from).collect())
    }

    /// Creates a container; returns false when it already existed.
    /// Example: a.storage.create_container("media");
    #[rhai_fn(return_raw, pure)]
    pub fn create_container(
        ctx: NativeCallContext,
        storage: &mut Storage,
        name: &str,
    ) -> RhaiResult<bool> {
        host(&ctx)?.call(storage.create_container(name))
    }

    /// Deletes a container and all its blobs; returns false when there was none.
    /// Example: a.storage.delete_container("scratch");
    #[rhai_fn(return_raw, pure)]
    pub fn delete_container(
        ctx: NativeCallContext,
        storage: &mut Storage,
        name: &str,
    ) -> RhaiResult<bool> {
        host(&ctx)?.call(storage.delete_container(name))
    }

    /// The blobs of a container: maps #{name, size, md5, etag, last_modified, content_type},
    /// md5 as lowercase hex (as md5sum prints it), sorted by name.
    /// Example: for b in a.storage.blobs("media") { print(`${b.name} ${b.size} ${b.md5}`); }
    #[rhai_fn(return_raw, pure)]
    pub fn blobs(
        ctx: NativeCallContext,
        storage: &mut Storage,
        container: &str,
    ) -> RhaiResult<Array> {
        let blobs = host(&ctx)?.call(storage.blobs(container))?;
        Ok(blobs.iter().map(|b| blob_map(b).into()).collect())
    }

    /// Uploads a local file as a block blob (parallel blocks, Content-MD5 set, progress bar)
    /// and returns its listing map. The blob is named after the file.
    /// Example: let b = a.storage.upload("media", "clip.mp4"); print(b.md5);
    #[rhai_fn(return_raw, pure)]
    pub fn upload(
        ctx: NativeCallContext,
        storage: &mut Storage,
        container: &str,
        path: &str,
    ) -> RhaiResult<Map> {
        let p = PathBuf::from(path);
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| invalid(format!("'{path}' has no file name")))?;
        upload_as(ctx, storage, container, path, &name)
    }

    /// Uploads a local file as a block blob named `name` (parallel blocks, Content-MD5 set,
    /// progress bar) and returns its listing map.
    /// Example: let b = a.storage.upload("media", "/tmp/take3.mp4", "clip.mp4");
    #[rhai_fn(name = "upload", return_raw, pure)]
    pub fn upload_as(
        ctx: NativeCallContext,
        storage: &mut Storage,
        container: &str,
        path: &str,
        name: &str,
    ) -> RhaiResult<Map> {
        let path = PathBuf::from(path);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let progress = progress_for(format!("upload {name}"), size);
        let info = host(&ctx)?.call(storage.upload_file(
            container,
            &path,
            name,
            &TransferOptions::default(),
            progress.as_ref(),
        ))?;
        if let Some(p) = progress {
            p.finish();
        }
        Ok(blob_map(&info))
    }

    /// Downloads a blob to a local file (parallel ranges), checking its MD5. The file appears
    /// only once the download is complete and verified.
    /// Example: a.storage.download("media", "clip.mp4", "/tmp/clip.mp4");
    #[rhai_fn(return_raw, pure)]
    pub fn download(
        ctx: NativeCallContext,
        storage: &mut Storage,
        container: &str,
        blob: &str,
        path: &str,
    ) -> RhaiResult<Map> {
        let progress = progress_for(format!("download {blob}"), 0);
        let info = host(&ctx)?.call(storage.download_file(
            container,
            blob,
            &PathBuf::from(path),
            &TransferOptions::default(),
            progress.as_ref(),
        ))?;
        Ok(blob_map(&info))
    }

    /// Deletes a blob; returns false when it was not there.
    /// Example: a.storage.delete_blob("media", "old.mp4");
    #[rhai_fn(return_raw, pure)]
    pub fn delete_blob(
        ctx: NativeCallContext,
        storage: &mut Storage,
        container: &str,
        name: &str,
    ) -> RhaiResult<bool> {
        host(&ctx)?.call(storage.delete_blob(container, name))
    }

    /// A container URL with a service SAS signed by the account key. perms are letters:
    /// r read, w write, d delete, l list, c create, a add. Valid from 5 minutes ago for `days`
    /// (a number, or hours(n)/minutes(n)).
    /// Example: let url = a.storage.container_sas("media", "rl", hours(12));
    #[rhai_fn(return_raw, pure)]
    pub fn container_sas(
        ctx: NativeCallContext,
        storage: &mut Storage,
        container: &str,
        perms: &str,
        days: Days,
    ) -> RhaiResult<String> {
        let perms = perms.parse::<SasPerms>().script()?;
        let now = OffsetDateTime::now_utc();
        let expiry = now + days_to_duration(super::super::media::days_of(&days)?)?;
        let url = host(&ctx)?.call(storage.container_sas_url(
            container,
            perms,
            Some(now - time::Duration::minutes(5)),
            expiry,
        ))?;
        Ok(url.to_string())
    }

    /// Copies every blob of a container to another account's container (created if missing),
    /// verified (length and MD5) and resumable: blobs already identical at the destination are
    /// skipped. Server-side with a source SAS, or streamed through amsplay when the destination
    /// cannot reach the source. Returns #{copied, skipped, failed, bytes, seconds, mode, failures}.
    /// Example: let r = copy_blobs(a.storage, "media", b.storage, "media");
    #[rhai_fn(return_raw)]
    pub fn copy_blobs(
        ctx: NativeCallContext,
        src: Storage,
        src_container: &str,
        dst: Storage,
        dst_container: &str,
    ) -> RhaiResult<Map> {
        copy_blobs_with(ctx, src, src_container, dst, dst_container, Map::new())
    }

    /// copy_blobs with options: mode ("auto", "server", "stream"), concurrency (16), attempts
    /// (3), prefix, sas_hours (24), block_size (16 MiB), window (4 blocks per blob), memory
    /// (64 MiB), progress (true).
    /// Example: let r = copy_blobs(a.storage, "media", b.storage, "media", #{ concurrency: 32 });
    #[rhai_fn(name = "copy_blobs", return_raw)]
    pub fn copy_blobs_with(
        ctx: NativeCallContext,
        src: Storage,
        src_container: &str,
        dst: Storage,
        dst_container: &str,
        options: Map,
    ) -> RhaiResult<Map> {
        let o = copy_options(&options)?;
        let r = host(&ctx)?.call(crate::storage::copy_blobs(
            &src,
            src_container,
            &dst,
            dst_container,
            &o,
        ))?;
        Ok(report_map(&r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_copy_option_is_refused() {
        let mut m = Map::new();
        m.insert("concurency".into(), 4.into());
        let err = copy_options(&m).unwrap_err().to_string();
        assert!(err.contains("concurency"), "{err}");
    }

    #[test]
    fn copy_options_parse() {
        let mut m = Map::new();
        m.insert("mode".into(), "stream".into());
        m.insert("concurrency".into(), 4.into());
        let o = copy_options(&m).unwrap();
        assert_eq!(o.mode, CopyMode::Stream);
        assert_eq!(o.concurrency, 4);
    }
}
