//! Small helpers every playbook needs: durations, the environment, files, waiting.

use std::sync::Arc;

use rhai::{Dynamic, Engine};

use super::errors::{host_error, invalid, RhaiResult};
use super::host::{func, Host};

pub fn register(engine: &mut Engine, host: &Arc<Host>) {
    func(
        "env",
        &["name: String", "Dynamic"],
        r#"The value of an environment variable, or () when it is not set.
Example: let who = env("USER") ?? "nobody";"#,
    )
    .register_into_engine(engine, |name: &str| -> Dynamic {
        std::env::var(name)
            .map(Dynamic::from)
            .unwrap_or(Dynamic::UNIT)
    });

    for (name, per_day, doc) in [
        ("days", 1.0, "A duration in days (durations in amsplay are numbers of days).\nExample: let lifetime = days(30);"),
        ("hours", 24.0, "A duration in hours, as days.\nExample: let lifetime = hours(12); // 0.5"),
        ("minutes", 1440.0, "A duration in minutes, as days.\nExample: let lifetime = minutes(90);"),
    ] {
        func(name, &["n: f64", "f64"], doc)
            .register_into_engine(engine, move |n: f64| n / per_day);
        func(name, &["n: i64", "f64"], doc)
            .register_into_engine(engine, move |n: i64| n as f64 / per_day);
    }

    func(
        "sleep",
        &["seconds: f64", "()"],
        "Waits this many seconds.\nExample: sleep(0.5);",
    )
    .register_into_engine(engine, {
        let h = host.clone();
        move |s: f64| -> RhaiResult<()> {
            if !(0.0..=86400.0).contains(&s) {
                return Err(invalid(format!(
                    "sleep({s}): seconds must be between 0 and 86400"
                )));
            }
            h.bridge().wait(async move {
                tokio::time::sleep(std::time::Duration::from_secs_f64(s)).await
            })
        }
    });
    func(
        "sleep",
        &["seconds: i64", "()"],
        "Waits this many seconds.\nExample: sleep(1);",
    )
    .register_into_engine(engine, {
        let h = host.clone();
        move |s: i64| -> RhaiResult<()> {
            if !(0..=86400).contains(&s) {
                return Err(invalid(format!(
                    "sleep({s}): seconds must be between 0 and 86400"
                )));
            }
            h.bridge().wait(async move {
                tokio::time::sleep(std::time::Duration::from_secs(s as u64)).await
            })
        }
    });

    func(
        "make_sample_file",
        &["path: String", "bytes: i64", "String"],
        r#"Writes a file of `bytes` pseudo-random bytes (the same for the same path and size) and
returns its MD5 as hex. Handy for trying storage and replication without media at hand.
Example: make_sample_file("/tmp/sample.bin", 10 * 1024 * 1024);"#,
    )
    .register_into_engine(engine, |path: &str, bytes: i64| -> RhaiResult<String> {
        if bytes < 0 {
            return Err(invalid("make_sample_file: bytes must not be negative"));
        }
        write_sample(std::path::Path::new(path), bytes as u64).map_err(|e| {
            host_error(
                "local_file",
                format!("cannot write {path}: {e}"),
                None,
                None,
            )
        })
    });

    func(
        "temp_dir",
        &["String"],
        r#"Creates a fresh, empty temporary folder and returns its path.
Example: let dir = temp_dir(); make_sample_file(`${dir}/a.bin`, 1024);"#,
    )
    .register_into_engine(engine, || -> RhaiResult<String> {
        let base = std::env::temp_dir();
        for _ in 0..100 {
            let p = base.join(format!("amsplay-{:08x}", rand::random::<u32>()));
            if std::fs::create_dir(&p).is_ok() {
                return Ok(p.display().to_string());
            }
        }
        Err(host_error(
            "local_file",
            format!("cannot create a folder in {}", base.display()),
            None,
            None,
        ))
    });

    func(
        "make_sample_video",
        &["path: String", "seconds: i64", "height: i64", "String"],
        r#"Writes a test-pattern MP4 with a tone (H.264 + AAC, 30 fps, 16:9) with ffmpeg; returns the path.
Example: let clip = make_sample_video(`${temp_dir()}/sample.mp4`, 30, 1080);"#,
    )
    .register_into_engine(engine, |path: &str, seconds: i64, height: i64| -> RhaiResult<String> {
        if !(1..=3600).contains(&seconds) || !(90..=2160).contains(&height) {
            return Err(invalid("make_sample_video: seconds must be 1..3600 and height 90..2160"));
        }
        let width = (height * 16 / 9 + 1) / 2 * 2;
        let mut ffmpeg = std::process::Command::new("ffmpeg");
        crate::memory::unlimit_child(&mut ffmpeg);
        let out = ffmpeg
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size={width}x{height}:rate=30:duration={seconds}"))
            .args(["-f", "lavfi", "-i"])
            .arg(format!("sine=frequency=1000:sample_rate=48000:duration={seconds}"))
            .args(["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", path])
            .output()
            .map_err(|e| host_error("local_file", format!("cannot run ffmpeg: {e}"), Some("install it with `apt-get install -y ffmpeg`".into()), None))?;
        if !out.status.success() {
            return Err(host_error("local_file", format!("ffmpeg could not write {path}: {}", String::from_utf8_lossy(&out.stderr).trim()), None, None));
        }
        Ok(path.to_string())
    });

    func(
        "local_files",
        &["dir: String", "Array"],
        r#"Paths of the regular files directly inside a local folder, sorted.
Example: for f in local_files("out") { a.storage.upload("media", f); }"#,
    )
    .register_into_engine(engine, |dir: &str| -> RhaiResult<rhai::Array> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| host_error("local_file", format!("cannot list {dir}: {e}"), None, None))?;
        let mut files: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path().display().to_string())
            .collect();
        files.sort();
        Ok(files.into_iter().map(Dynamic::from).collect())
    });

    func(
        "md5_file",
        &["path: String", "String"],
        r#"MD5 of a local file as lowercase hex, as md5sum prints it.
Example: assert(md5_file("/tmp/a.bin") == blob.md5);"#,
    )
    .register_into_engine(engine, |path: &str| -> RhaiResult<String> {
        md5_path(std::path::Path::new(path))
            .map_err(|e| host_error("local_file", format!("cannot read {path}: {e}"), None, None))
    });
}

/// Deterministic pseudo-random content (xorshift seeded by path and size), written in 1 MiB steps.
pub fn write_sample(path: &std::path::Path, bytes: u64) -> std::io::Result<String> {
    use md5::{Digest, Md5};
    use std::io::Write;
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15 ^ bytes;
    for b in path.to_string_lossy().bytes() {
        seed = seed.rotate_left(5) ^ b as u64;
    }
    let mut state = seed | 1;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut hasher = Md5::new();
    let mut left = bytes;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let bytes = state.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(hex::encode(hasher.finalize()))
}

/// MD5 of a local file as hex.
pub fn md5_path(path: &std::path::Path) -> std::io::Result<String> {
    use md5::{Digest, Md5};
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
