//! Small helpers every playbook needs: durations, the environment, files, waiting.

use rhai::Engine;

use super::errors::{host_error, invalid, RhaiResult};
use super::host::host;

pub fn register(engine: &mut Engine) {
    engine.register_global_module(rhai::exported_module!(api).into());
}

/// Durations, the environment, local files, waiting.
#[rhai::plugin::export_module]
mod api {
    use super::{host, host_error, invalid, RhaiResult};
    use rhai::plugin::*;
    use rhai::Array;

    /// The value of an environment variable, or () when it is not set.
    /// Example: let who = env("USER") ?? "nobody";
    pub fn env(name: &str) -> Dynamic {
        std::env::var(name)
            .map(Dynamic::from)
            .unwrap_or(Dynamic::UNIT)
    }

    /// A duration in days (durations in amsplay are numbers of days).
    /// Example: let lifetime = days(30);
    pub fn days(n: f64) -> f64 {
        n
    }

    /// A duration in days (durations in amsplay are numbers of days).
    /// Example: let lifetime = days(30);
    #[rhai_fn(name = "days")]
    pub fn days_int(n: i64) -> f64 {
        n as f64
    }

    /// A duration in hours, as days.
    /// Example: let lifetime = hours(12); // 0.5
    pub fn hours(n: f64) -> f64 {
        n / 24.0
    }

    /// A duration in hours, as days.
    /// Example: let lifetime = hours(12); // 0.5
    #[rhai_fn(name = "hours")]
    pub fn hours_int(n: i64) -> f64 {
        n as f64 / 24.0
    }

    /// A duration in minutes, as days.
    /// Example: let lifetime = minutes(90);
    pub fn minutes(n: f64) -> f64 {
        n / 1440.0
    }

    /// A duration in minutes, as days.
    /// Example: let lifetime = minutes(90);
    #[rhai_fn(name = "minutes")]
    pub fn minutes_int(n: i64) -> f64 {
        n as f64 / 1440.0
    }

    /// Waits this many seconds (Ctrl-C ends the wait and the playbook).
    /// Example: sleep(0.5);
    #[rhai_fn(return_raw)]
    pub fn sleep(ctx: NativeCallContext, seconds: f64) -> RhaiResult<()> {
        if !(0.0..=86400.0).contains(&seconds) {
            return Err(invalid(format!(
                "sleep({seconds}): seconds must be between 0 and 86400"
            )));
        }
        let wait = std::time::Duration::from_secs_f64(seconds);
        host(&ctx)?
            .bridge()
            .wait(async move { tokio::time::sleep(wait).await })
    }

    /// Waits this many seconds (Ctrl-C ends the wait and the playbook).
    /// Example: sleep(1);
    #[rhai_fn(name = "sleep", return_raw)]
    pub fn sleep_int(ctx: NativeCallContext, seconds: i64) -> RhaiResult<()> {
        if !(0..=86400).contains(&seconds) {
            return Err(invalid(format!(
                "sleep({seconds}): seconds must be between 0 and 86400"
            )));
        }
        sleep(ctx, seconds as f64)
    }

    /// Writes a file of `bytes` pseudo-random bytes (the same for the same path and size) and
    /// returns its MD5 as hex. Handy for trying storage and replication without media at hand.
    /// Example: make_sample_file("/tmp/sample.bin", 10 * 1024 * 1024);
    #[rhai_fn(return_raw)]
    pub fn make_sample_file(path: &str, bytes: i64) -> RhaiResult<String> {
        if bytes < 0 {
            return Err(invalid("make_sample_file: bytes must not be negative"));
        }
        super::write_sample(std::path::Path::new(path), bytes as u64).map_err(|e| {
            host_error(
                "local_file",
                format!("cannot write {path}: {e}"),
                None,
                None,
            )
        })
    }

    /// Creates a fresh, empty temporary folder and returns its path.
    /// Example: let dir = temp_dir(); make_sample_file(`${dir}/a.bin`, 1024);
    #[rhai_fn(return_raw)]
    pub fn temp_dir() -> RhaiResult<String> {
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
    }

    /// Writes a test-pattern MP4 with a tone (H.264 + AAC, 30 fps, 16:9) with ffmpeg; returns
    /// the path.
    /// Example: let clip = make_sample_video(`${temp_dir()}/sample.mp4`, 30, 1080);
    #[rhai_fn(return_raw)]
    pub fn make_sample_video(path: &str, seconds: i64, height: i64) -> RhaiResult<String> {
        if !(1..=3600).contains(&seconds) || !(90..=2160).contains(&height) {
            return Err(invalid(
                "make_sample_video: seconds must be 1..3600 and height 90..2160",
            ));
        }
        let width = (height * 16 / 9 + 1) / 2 * 2;
        let mut ffmpeg = std::process::Command::new("ffmpeg");
        crate::memory::unlimit_child(&mut ffmpeg);
        let out = ffmpeg
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
            .args(["-f", "lavfi", "-i"])
            .arg(format!(
                "testsrc2=size={width}x{height}:rate=30:duration={seconds}"
            ))
            .args(["-f", "lavfi", "-i"])
            .arg(format!(
                "sine=frequency=1000:sample_rate=48000:duration={seconds}"
            ))
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            ])
            .args(["-c:a", "aac", "-shortest", path])
            .output()
            .map_err(|e| {
                host_error(
                    "local_file",
                    format!("cannot run ffmpeg: {e}"),
                    Some("install it with `apt-get install -y ffmpeg`".into()),
                    None,
                )
            })?;
        if !out.status.success() {
            return Err(host_error(
                "local_file",
                format!(
                    "ffmpeg could not write {path}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                None,
                None,
            ));
        }
        Ok(path.to_string())
    }

    /// Paths of the regular files directly inside a local folder, sorted.
    /// Example: for f in local_files("out") { a.storage.upload("media", f); }
    #[rhai_fn(return_raw)]
    pub fn local_files(dir: &str) -> RhaiResult<Array> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| host_error("local_file", format!("cannot list {dir}: {e}"), None, None))?;
        let mut files: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path().display().to_string())
            .collect();
        files.sort();
        Ok(files.into_iter().map(Dynamic::from).collect())
    }

    /// MD5 of a local file as lowercase hex, as md5sum prints it.
    /// Example: assert(md5_file("/tmp/a.bin") == blob.md5);
    #[rhai_fn(return_raw)]
    pub fn md5_file(path: &str) -> RhaiResult<String> {
        super::md5_path(std::path::Path::new(path))
            .map_err(|e| host_error("local_file", format!("cannot read {path}: {e}"), None, None))
    }
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
