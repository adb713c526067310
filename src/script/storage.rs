//! Blob Storage in scripts: `account("dc-a").storage` and `copy_blobs(…)`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rhai::{Array, Dynamic, Engine, Map};
use time::OffsetDateTime;

use super::errors::{invalid, IntoScript, RhaiResult};
use super::host::{func, getter, Host};
use crate::progress::{bars_enabled, Progress};
use crate::storage::{
    copy_blobs, BlobInfo, CopyMode, CopyOptions, CopyReport, SasPerms, Storage, TransferOptions,
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

pub fn register(engine: &mut Engine, host: &Arc<Host>) {
    engine.register_type_with_name::<Storage>("Storage");
    engine.register_fn("to_string", |s: &mut Storage| format!("{s:?}"));
    engine.register_fn("to_debug", |s: &mut Storage| format!("{s:?}"));
    getter(
        "Storage",
        "name",
        "String",
        "The storage account name.\nExample: print(a.storage.name);",
    )
    .register_into_engine(engine, |s: &mut Storage| s.account().to_string());
    getter(
        "Storage",
        "endpoint",
        "String",
        "The account's blob endpoint URL.\nExample: print(a.storage.endpoint);",
    )
    .register_into_engine(engine, |s: &mut Storage| s.endpoint().to_string());

    let h = host.clone();
    func(
        "containers",
        &["storage: Storage", "Array"],
        r#"Names of the containers in a storage account, sorted.
Example: print(account("dc-a").storage.containers());"#,
    )
    .register_into_engine(engine, move |s: &mut Storage| -> RhaiResult<Array> {
        let names = h.call(s.containers())?;
        Ok(names.into_iter().map(Dynamic::from).collect())
    });

    let h = host.clone();
    func(
        "create_container",
        &["storage: Storage", "name: String", "bool"],
        r#"Creates a container; returns false when it already existed.
Example: a.storage.create_container("media");"#,
    )
    .register_into_engine(engine, move |s: &mut Storage, name: &str| {
        h.call(s.create_container(name))
    });

    let h = host.clone();
    func(
        "delete_container",
        &["storage: Storage", "name: String", "bool"],
        r#"Deletes a container and all its blobs; returns false when there was none.
Example: a.storage.delete_container("scratch");"#,
    )
    .register_into_engine(engine, move |s: &mut Storage, name: &str| {
        h.call(s.delete_container(name))
    });

    let h = host.clone();
    func(
        "blobs",
        &["storage: Storage", "container: String", "Array"],
        r#"The blobs of a container: maps #{name, size, md5, etag, last_modified, content_type},
md5 as lowercase hex (as md5sum prints it), sorted by name.
Example: for b in a.storage.blobs("media") { print(`${b.name} ${b.size} ${b.md5}`); }"#,
    )
    .register_into_engine(
        engine,
        move |s: &mut Storage, c: &str| -> RhaiResult<Array> {
            let blobs = h.call(s.blobs(c))?;
            Ok(blobs.iter().map(|b| blob_map(b).into()).collect())
        },
    );

    for with_name in [false, true] {
        let h = host.clone();
        let upload = move |s: &mut Storage, c: &str, path: &str, name: Option<&str>| {
            let path = PathBuf::from(path);
            let name = match name {
                Some(n) => n.to_string(),
                None => path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .ok_or_else(|| invalid(format!("'{}' has no file name", path.display())))?,
            };
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let progress = progress_for(format!("upload {name}"), size);
            let info = h.call(s.upload_file(
                c,
                &path,
                &name,
                &TransferOptions::default(),
                progress.as_ref(),
            ))?;
            if let Some(p) = progress {
                p.finish();
            }
            Ok::<_, Box<rhai::EvalAltResult>>(blob_map(&info))
        };
        const DOC: &str = r#"Uploads a local file as a block blob (parallel blocks, Content-MD5 set, progress bar)
and returns its listing map. The blob is named after the file unless a name is given.
Example: let b = a.storage.upload("media", "clip.mp4"); print(b.md5);"#;
        if with_name {
            func(
                "upload",
                &[
                    "storage: Storage",
                    "container: String",
                    "path: String",
                    "name: String",
                    "Map",
                ],
                DOC,
            )
            .register_into_engine(engine, move |s: &mut Storage, c: &str, p: &str, n: &str| {
                upload(s, c, p, Some(n))
            });
        } else {
            func(
                "upload",
                &[
                    "storage: Storage",
                    "container: String",
                    "path: String",
                    "Map",
                ],
                DOC,
            )
            .register_into_engine(engine, move |s: &mut Storage, c: &str, p: &str| {
                upload(s, c, p, None)
            });
        }
    }

    let h = host.clone();
    func(
        "download",
        &[
            "storage: Storage",
            "container: String",
            "blob: String",
            "path: String",
            "Map",
        ],
        r#"Downloads a blob to a local file (parallel ranges), checking its MD5. The file appears
only once the download is complete and verified.
Example: a.storage.download("media", "clip.mp4", "/tmp/clip.mp4");"#,
    )
    .register_into_engine(
        engine,
        move |s: &mut Storage, c: &str, blob: &str, path: &str| -> RhaiResult<Map> {
            let progress = progress_for(format!("download {blob}"), 0);
            let info = h.call(s.download_file(
                c,
                blob,
                &PathBuf::from(path),
                &TransferOptions::default(),
                progress.as_ref(),
            ))?;
            Ok(blob_map(&info))
        },
    );

    let h = host.clone();
    func(
        "delete_blob",
        &[
            "storage: Storage",
            "container: String",
            "name: String",
            "bool",
        ],
        r#"Deletes a blob; returns false when it was not there.
Example: a.storage.delete_blob("media", "old.mp4");"#,
    )
    .register_into_engine(engine, move |s: &mut Storage, c: &str, n: &str| {
        h.call(s.delete_blob(c, n))
    });

    let h = host.clone();
    func(
        "container_sas",
        &[
            "storage: Storage",
            "container: String",
            "perms: String",
            "days: number",
            "String",
        ],
        r#"A container URL with a service SAS signed by the account key. perms are letters:
r read, w write, d delete, l list, c create, a add. Valid from 5 minutes ago for `days`
(a number, or hours(n)/minutes(n)).
Example: let url = a.storage.container_sas("media", "rl", hours(12));"#,
    )
    .register_into_engine(
        engine,
        move |s: &mut Storage, c: &str, perms: &str, days: Dynamic| -> RhaiResult<String> {
            let perms = perms.parse::<SasPerms>().script()?;
            let now = OffsetDateTime::now_utc();
            let expiry = now + days_to_duration(super::media::days_of(&days)?)?;
            let url = h.call(s.container_sas_url(
                c,
                perms,
                Some(now - time::Duration::minutes(5)),
                expiry,
            ))?;
            Ok(url.to_string())
        },
    );

    const COPY_DOC: &str = r#"Copies every blob of a container to another account's container (created if missing),
verified (length and MD5) and resumable: blobs already identical at the destination are skipped.
Server-side with a source SAS, or streamed through amsplay when the destination cannot reach the
source. Returns #{copied, skipped, failed, bytes, seconds, mode, failures}.
Options: mode ("auto", "server", "stream"), concurrency (16), attempts (3), prefix,
sas_hours (24), block_size (16 MiB), window (4 blocks per blob), memory (64 MiB), progress (true).
Example: let r = copy_blobs(a.storage, "media", b.storage, "media", #{ concurrency: 32 });"#;
    for with_opts in [false, true] {
        let h = host.clone();
        let copy = move |src: Storage, sc: &str, dst: Storage, dc: &str, opts: Option<Map>| {
            let o = copy_options(&opts.unwrap_or_default())?;
            let r = h.call(copy_blobs(&src, sc, &dst, dc, &o))?;
            Ok::<_, Box<rhai::EvalAltResult>>(report_map(&r))
        };
        if with_opts {
            func(
                "copy_blobs",
                &[
                    "src: Storage",
                    "src_container: String",
                    "dst: Storage",
                    "dst_container: String",
                    "options: Map",
                    "Map",
                ],
                COPY_DOC,
            )
            .register_into_engine(
                engine,
                move |s: Storage, sc: &str, d: Storage, dc: &str, o: Map| {
                    copy(s, sc, d, dc, Some(o))
                },
            );
        } else {
            func(
                "copy_blobs",
                &[
                    "src: Storage",
                    "src_container: String",
                    "dst: Storage",
                    "dst_container: String",
                    "Map",
                ],
                COPY_DOC,
            )
            .register_into_engine(engine, move |s: Storage, sc: &str, d: Storage, dc: &str| {
                copy(s, sc, d, dc, None)
            });
        }
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
