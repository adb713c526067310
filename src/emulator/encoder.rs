//! Media Encoder Standard, emulated with ffmpeg: a bitrate ladder chosen from the source and the
//! preset, every rung encoded in one ffmpeg pass (decode once, split, scale, encode), H.264 with
//! closed 2 s GOPs at the same timestamps in every rung, AAC audio, MP4s named as MES named them
//! (`{name}_{width}x{height}_{kbps}.mp4`).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// GOP length in seconds, the same in every rung so that players can switch at any fragment.
pub const GOP_SECONDS: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("{tool} is not installed or not runnable ({message}); install it with `apt-get install -y ffmpeg`, or pass --ffmpeg PATH")]
    NotInstalled { tool: String, message: String },
    #[error("the input is not a video ffmpeg can read: {0}")]
    NotVideo(String),
    #[error("unknown preset '{0}': use a Media Encoder Standard preset name (\"Adaptive Streaming\", \"H264 Multiple Bitrate 720p\", \"H264 Single Bitrate 1080p\", …), a preset in MES's JSON or XML schema (H264Layers with Width, Height, Bitrate), or a JSON ladder {{\"rungs\":[{{\"width\":1280,\"height\":720,\"kbps\":3000}}]}}")]
    UnknownPreset(String),
    #[error("ffmpeg failed: {0}")]
    Ffmpeg(String),
    /// Reading the input or writing the output in storage failed (not ffmpeg's doing).
    #[error("storage: {0}")]
    Storage(String),
    /// The emulator's own records could not be read or written.
    #[error("{0}")]
    State(String),
    /// The work folder's disk has no room (for the input, ffmpeg's outputs or the records).
    #[error("the emulator's disk is full ({0}); free space in its data folder (--data-dir)")]
    DiskFull(String),
    #[error("canceled")]
    Canceled,
    #[error("encoder i/o: {0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for EncodeError {
    fn from(e: std::io::Error) -> Self {
        if e.raw_os_error() == Some(libc::ENOSPC) {
            Self::DiskFull(e.to_string())
        } else {
            Self::Io(e)
        }
    }
}

/// Where ffmpeg and ffprobe are.
#[derive(Debug, Clone)]
pub struct Tools {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
}

impl Default for Tools {
    fn default() -> Self {
        Self {
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
        }
    }
}

impl Tools {
    /// ffmpeg given by path; ffprobe is looked for beside it.
    pub fn with_ffmpeg(ffmpeg: PathBuf) -> Self {
        let ffprobe = ffmpeg
            .parent()
            .map(|d| d.join("ffprobe"))
            .filter(|p| p.exists())
            .unwrap_or_else(|| "ffprobe".into());
        Self { ffmpeg, ffprobe }
    }
}

/// What ffprobe says about a source.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub duration: f64,
    pub has_audio: bool,
}

/// One rung of a ladder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Rung {
    pub width: u32,
    pub height: u32,
    pub kbps: u32,
    /// The preset's `FileName` pattern, if it gave one.
    #[serde(skip)]
    pub file_pattern: Option<String>,
}

impl Rung {
    /// The rung's file name: the preset's `FileName` pattern with its macros filled in, or
    /// MES's default `{name}_{width}x{height}_{kbps}.mp4`.
    pub fn file_name(&self, name: &str) -> String {
        let Some(p) = &self.file_pattern else {
            return format!("{name}_{}x{}_{}.mp4", self.width, self.height, self.kbps);
        };
        // {Basename}: the first 32 characters of the source's name, as MES took them.
        let base: String = name.chars().take(32).collect();
        let out = p
            .replace("{Basename}", &base)
            .replace("{Resolution}", &format!("{}x{}", self.width, self.height))
            .replace("{Width}", &self.width.to_string())
            .replace("{Height}", &self.height.to_string())
            .replace("{VideoBitrate}", &self.kbps.to_string())
            .replace("{Bitrate}", &self.kbps.to_string())
            .replace("{Codec}", "H264")
            .replace("{Extension}", ".mp4");
        if out.to_ascii_lowercase().ends_with(".mp4") {
            out
        } else {
            format!("{out}.mp4")
        }
    }
}

/// The AAC track of every file of an encoding: channels and kbps (MES's default, stereo at
/// 128 kbps, unless the preset says otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Audio {
    pub channels: u32,
    pub kbps: u32,
}

impl Default for Audio {
    fn default() -> Self {
        Self {
            channels: 2,
            kbps: 128,
        }
    }
}

/// The AAC track a configuration asks for.
pub fn audio(preset: &str) -> Audio {
    let (channels, kbps) = super::presets::audio(preset);
    Audio { channels, kbps }
}

/// (height, kbps) of the "Adaptive Streaming" ladder for a 1080p source, as AMS chose it.
const ADAPTIVE: [(u32, u32); 6] = [
    (1080, 6780),
    (720, 3520),
    (540, 2210),
    (360, 1150),
    (270, 720),
    (180, 380),
];

fn even(x: f64) -> u32 {
    ((x / 2.0).round() as u32).max(1) * 2
}

/// The ladder for a configuration (an MES preset name, an MES JSON or XML preset, or a JSON
/// ladder of our own) and a source. Never upscales: layers larger than the source are left
/// out, and if none fits, the smallest is scaled down to the source's size.
pub fn ladder(preset: &str, src: &Source) -> Result<Vec<Rung>, EncodeError> {
    use super::presets::{Preset, Size};
    let aspect = src.width as f64 / src.height.max(1) as f64;
    let fits = |h: u32| h <= src.height;
    let parsed = super::presets::parse(preset)
        .map_err(|e| EncodeError::UnknownPreset(format!("{}: {e}", preset.trim())))?;
    let rungs: Vec<Rung> = match parsed {
        Some(Preset::Auto) => {
            let mut r: Vec<Rung> = ADAPTIVE
                .iter()
                .filter(|(h, _)| fits(*h))
                .map(|&(h, kbps)| Rung {
                    width: even(h as f64 * aspect),
                    height: h,
                    kbps,
                    ..Default::default()
                })
                .collect();
            if r.is_empty() {
                r.push(Rung {
                    width: even(src.width as f64),
                    height: even(src.height as f64),
                    kbps: 380,
                    ..Default::default()
                });
            }
            r
        }
        Some(Preset::Layers(layers, file_pattern)) => {
            // The audio macros are the preset's, the same in every file.
            let a = audio(preset);
            let file_pattern = file_pattern.map(|p| {
                p.replace("{AudioBitrate}", &a.kbps.to_string())
                    .replace("{Channel}", &a.channels.to_string())
            });
            let px = |s: Size, of: u32| match s {
                Size::Pixels(p) => p,
                Size::Percent(p) => even(of as f64 * p / 100.0),
            };
            let all: Vec<Rung> = layers
                .iter()
                .map(|l| Rung {
                    width: px(l.width, src.width),
                    height: px(l.height, src.height),
                    kbps: l.kbps,
                    file_pattern: file_pattern.clone(),
                })
                .collect();
            let mut r: Vec<Rung> = all.iter().filter(|r| fits(r.height)).cloned().collect();
            if r.is_empty() {
                if let Some(smallest) = all.iter().min_by_key(|r| r.height) {
                    let scale = (src.height as f64 / smallest.height.max(1) as f64)
                        .min(src.width as f64 / smallest.width.max(1) as f64);
                    r.push(Rung {
                        width: even(smallest.width as f64 * scale),
                        height: even(smallest.height as f64 * scale),
                        kbps: smallest.kbps,
                        file_pattern: smallest.file_pattern.clone(),
                    });
                }
            }
            r
        }
        None if preset.trim().starts_with('{') => {
            #[derive(Deserialize)]
            struct Custom {
                rungs: Vec<Rung>,
            }
            let json = preset.trim();
            let c: Custom = serde_json::from_str(json)
                .map_err(|e| EncodeError::UnknownPreset(format!("{json} ({e})")))?;
            c.rungs.into_iter().filter(|r| fits(r.height)).collect()
        }
        None => return Err(EncodeError::UnknownPreset(preset.trim().to_string())),
    };
    if rungs.is_empty() {
        return Err(EncodeError::UnknownPreset(format!(
            "{preset}: no rung fits a {}x{} source",
            src.width, src.height
        )));
    }
    // Every file needs a name of its own, and one a File may have.
    let mut names = std::collections::HashSet::new();
    for r in &rungs {
        let name = r.file_name("source");
        crate::ams::model::check_file_name(&name).map_err(|e| {
            EncodeError::UnknownPreset(format!("{}: FileName gives '{name}': {e}", preset.trim()))
        })?;
        if !names.insert(name.clone()) {
            return Err(EncodeError::UnknownPreset(format!(
                "{}: FileName gives two layers the same name '{name}'; add {{VideoBitrate}} or {{Width}}x{{Height}}",
                preset.trim()
            )));
        }
    }
    Ok(rungs)
}

/// Checks a preset without a source (at job submission).
pub fn check_preset(preset: &str) -> Result<(), EncodeError> {
    let big = Source {
        width: 7680,
        height: 4320,
        fps: 30.0,
        duration: 1.0,
        has_audio: true,
    };
    ladder(preset, &big).map(|_| ())
}

/// Reads a source's video size, frame rate, duration and whether it has audio.
pub async fn probe(tools: &Tools, input: &Path) -> Result<Source, EncodeError> {
    let out = tokio::process::Command::new(&tools.ffprobe)
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,width,height,avg_frame_rate:format=duration",
            "-of",
            "json",
        ])
        .arg(input)
        .output()
        .await
        .map_err(|e| EncodeError::NotInstalled {
            tool: tools.ffprobe.display().to_string(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(EncodeError::NotVideo(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| EncodeError::NotVideo(e.to_string()))?;
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video" && s["width"].as_u64().unwrap_or(0) > 0)
        .ok_or_else(|| EncodeError::NotVideo(format!("{} has no video stream", input.display())))?;
    let fps = video["avg_frame_rate"]
        .as_str()
        .and_then(|r| r.split_once('/'))
        .and_then(|(n, d)| Some(n.parse::<f64>().ok()? / d.parse::<f64>().ok()?.max(1.0)))
        .filter(|f| f.is_finite() && *f > 0.0)
        .unwrap_or(30.0);
    Ok(Source {
        width: video["width"].as_u64().unwrap_or(0) as u32,
        height: video["height"].as_u64().unwrap_or(0) as u32,
        fps,
        duration: v["format"]["duration"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0.0),
        has_audio: streams.iter().any(|s| s["codec_type"] == "audio"),
    })
}

/// One encode: a source file, its ladder, and where the rungs go.
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    pub input: &'a Path,
    pub out_dir: &'a Path,
    /// Stem of the output names (`{name}_{w}x{h}_{kbps}.mp4`).
    pub name: &'a str,
    pub src: &'a Source,
    pub rungs: &'a [Rung],
    /// The audio every file carries (when the source has any).
    pub audio: Audio,
}

/// The ffmpeg arguments that encode every rung in one pass.
pub fn ffmpeg_args(plan: &Plan<'_>) -> Vec<String> {
    let Plan {
        input,
        out_dir,
        name,
        src,
        rungs,
        audio,
    } = *plan;
    let gop = ((src.fps * GOP_SECONDS as f64).round() as u32).max(1);
    let mut a: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-progress",
        "pipe:1",
        "-nostats",
        "-i",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push(input.display().to_string());
    let splits: String = (0..rungs.len()).map(|i| format!("[s{i}]")).collect();
    let mut graph = format!("[0:v]split={}{splits}", rungs.len());
    for (i, r) in rungs.iter().enumerate() {
        graph.push_str(&format!(
            ";[s{i}]scale={}:{}:flags=bicubic,setsar=1[v{i}]",
            r.width, r.height
        ));
    }
    a.extend(["-filter_complex".to_string(), graph]);
    for (i, r) in rungs.iter().enumerate() {
        a.extend([
            "-map".into(),
            format!("[v{i}]"),
            "-map".into(),
            "0:a:0?".into(),
            "-c:v".into(),
            "libx264".into(),
            "-preset".into(),
            "veryfast".into(),
            "-profile:v".into(),
            "high".into(),
            "-pix_fmt".into(),
            "yuv420p".into(),
            "-b:v".into(),
            format!("{}k", r.kbps),
            "-maxrate".into(),
            format!("{}k", r.kbps * 3 / 2),
            "-bufsize".into(),
            format!("{}k", r.kbps * 2),
            "-g".into(),
            gop.to_string(),
            "-keyint_min".into(),
            gop.to_string(),
            "-sc_threshold".into(),
            "0".into(),
            "-flags".into(),
            "+cgop".into(),
            "-force_key_frames".into(),
            format!("expr:gte(t,n_forced*{GOP_SECONDS})"),
            "-c:a".into(),
            "aac".into(),
            "-b:a".into(),
            format!("{}k", audio.kbps),
            "-ac".into(),
            audio.channels.to_string(),
            "-movflags".into(),
            "+faststart".into(),
            out_dir.join(r.file_name(name)).display().to_string(),
        ]);
    }
    a
}

/// Encodes every rung in one ffmpeg pass. `progress` gets 0–100; `cancel` ends it early.
pub async fn encode(
    tools: &Tools,
    plan: &Plan<'_>,
    mut progress: impl FnMut(f64),
    mut cancel: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<PathBuf>, EncodeError> {
    let Plan {
        out_dir,
        name,
        src,
        rungs,
        ..
    } = *plan;
    let mut cmd = tokio::process::Command::new(&tools.ffmpeg);
    cmd.args(ffmpeg_args(plan))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // If the emulator dies, its ffmpeg dies with it instead of encoding for nobody.
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| EncodeError::NotInstalled {
        tool: tools.ffmpeg.display().to_string(),
        message: e.to_string(),
    })?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut stderr = child.stderr.take().expect("piped");
    let errors = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let total = src.duration.max(0.001) * 1e6;
    loop {
        tokio::select! {
            line = lines.next_line() => match line? {
                Some(l) => {
                    if let Some(us) = l.strip_prefix("out_time_us=").and_then(|v| v.trim().parse::<f64>().ok()) {
                        progress((us / total * 100.0).clamp(0.0, 99.9));
                    }
                }
                None => break,
            },
            _ = cancel.changed() => {
                if *cancel.borrow() {
                    let _ = child.kill().await;
                    return Err(EncodeError::Canceled);
                }
            }
        }
    }
    let status = child.wait().await?;
    let err = errors.await.unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        let msg = tail[tail.len().saturating_sub(5)..].join("; ");
        if err.contains("No space left on device") {
            return Err(EncodeError::DiskFull(format!("ffmpeg: {msg}")));
        }
        return Err(EncodeError::Ffmpeg(if msg.is_empty() {
            format!("exit {status}")
        } else {
            msg
        }));
    }
    progress(100.0);
    Ok(rungs
        .iter()
        .map(|r| out_dir.join(r.file_name(name)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(w: u32, h: u32) -> Source {
        Source {
            width: w,
            height: h,
            fps: 30.0,
            duration: 10.0,
            has_audio: true,
        }
    }

    #[test]
    fn ladders_follow_the_source_and_never_upscale() {
        let l = ladder("Adaptive Streaming", &src(1920, 1080)).unwrap();
        assert_eq!(
            l.iter().map(|r| r.kbps).collect::<Vec<_>>(),
            [6780, 3520, 2210, 1150, 720, 380]
        );
        assert_eq!((l[1].width, l[1].height), (1280, 720));
        let l = ladder("Adaptive Streaming", &src(640, 360)).unwrap();
        assert_eq!(
            l.iter().map(|r| r.height).collect::<Vec<_>>(),
            [360, 270, 180]
        );
        assert_eq!(l[1].width, 480);
        assert_eq!(
            ladder("H264 Multiple Bitrate 1080p", &src(1920, 1080))
                .unwrap()
                .len(),
            8
        );
        assert_eq!(
            ladder("H264 Multiple Bitrate 720p", &src(1920, 1080)).unwrap()[0].kbps,
            3400
        );
        let custom = ladder(r#"{"rungs":[{"width":1280,"height":720,"kbps":3000},{"width":320,"height":180,"kbps":300}]}"#, &src(640, 360)).unwrap();
        assert_eq!(
            custom,
            vec![Rung {
                width: 320,
                height: 180,
                kbps: 300,
                ..Default::default()
            }]
        );
        assert!(ladder("Fastest", &src(640, 360)).is_err());
        assert_eq!(
            ladder("Adaptive Streaming", &src(1920, 1080)).unwrap()[0].file_name("bbb"),
            "bbb_1920x1080_6780.mp4"
        );
    }
}
