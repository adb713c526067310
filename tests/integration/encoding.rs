//! Encoding with real ffmpeg, checked with ffprobe; jobs through the real emulator; and the
//! whole failover walkthrough on the embedded default.

use std::path::{Path, PathBuf};
use std::process::Command;

use amsplay::emulator::encoder::{self, Plan, Tools};

use crate::harness::amsplay;

/// A test-pattern source with a tone.
pub fn sample(dir: &Path, name: &str, w: u32, h: u32, seconds: u32) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("testsrc2=size={w}x{h}:rate=30:duration={seconds}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:sample_rate=48000:duration={seconds}"
        ))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
        ])
        .arg(&path)
        .output()
        .expect("ffmpeg must be installed for these tests: apt-get install -y ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

fn ffprobe(path: &Path, args: &[&str]) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(path)
        .output()
        .expect("ffprobe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn keyframe_times(path: &Path) -> Vec<String> {
    ffprobe(
        path,
        &[
            "-select_streams",
            "v",
            "-skip_frame",
            "nokey",
            "-show_entries",
            "frame=pts_time",
            "-of",
            "csv=p=0",
        ],
    )
    .lines()
    .map(|l| l.trim().trim_end_matches(',').to_string())
    .filter(|l| !l.is_empty())
    .collect()
}

async fn encode_and_check(w: u32, h: u32, expect: &[(u32, u32)]) {
    let dir = tempfile::tempdir().unwrap();
    let input = sample(dir.path(), "src.mp4", w, h, 5);
    let tools = Tools::default();
    let src = encoder::probe(&tools, &input).await.unwrap();
    assert_eq!((src.width, src.height, src.has_audio), (w, h, true));
    let rungs = encoder::ladder("Adaptive Streaming", &src).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let mut last = 0.0;
    let plan = Plan {
        input: &input,
        out_dir: &out,
        name: "clip",
        src: &src,
        rungs: &rungs,
        audio: encoder::Audio::default(),
    };
    let files = encoder::encode(&tools, &plan, |p| last = p, rx)
        .await
        .unwrap();
    assert_eq!(last, 100.0);
    assert_eq!(files.len(), expect.len());
    let mut keys = Vec::new();
    for (f, (ew, eh)) in files.iter().zip(expect) {
        let dims = ffprobe(
            f,
            &[
                "-select_streams",
                "v",
                "-show_entries",
                "stream=width,height",
                "-of",
                "csv=p=0",
            ],
        );
        assert_eq!(dims.trim(), format!("{ew},{eh}"), "{}", f.display());
        let audio = ffprobe(
            f,
            &[
                "-select_streams",
                "a",
                "-show_entries",
                "stream=codec_name",
                "-of",
                "csv=p=0",
            ],
        );
        assert_eq!(audio.trim(), "aac", "audio in {}", f.display());
        keys.push(keyframe_times(f));
    }
    assert!(keys[0].len() >= 3, "a keyframe every 2 s: {:?}", keys[0]);
    assert!(
        keys.iter().all(|k| k == &keys[0]),
        "keyframes at the same times in every rung: {keys:?}"
    );
    let codecs: Vec<_> = files
        .iter()
        .map(|f| amsplay::emulator::manifest::codec_data(f).unwrap())
        .collect();
    assert!(
        codecs.iter().all(|c| c.video.starts_with("00000001")),
        "{codecs:?}"
    );
    assert_eq!(
        codecs[0].audio.as_ref().map(|a| (a.0.as_str(), a.2)),
        Some(("1190", 2)),
        "AAC-LC 48 kHz stereo"
    );
    let ism = amsplay::emulator::manifest::ism("clip", &rungs, Some(encoder::Audio::default()));
    let listed: Vec<String> = ism
        .split("src=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_string())
        .collect();
    let mut written: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    written.sort();
    let mut videos: Vec<String> = listed[..rungs.len()].to_vec();
    videos.sort();
    assert_eq!(videos, written, "the .ism lists exactly the files written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1080p_source_gets_six_rungs_with_aligned_keyframes() {
    encode_and_check(
        1920,
        1080,
        &[
            (1920, 1080),
            (1280, 720),
            (960, 540),
            (640, 360),
            (480, 270),
            (320, 180),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_720p_source_is_never_upscaled() {
    encode_and_check(
        1280,
        720,
        &[(1280, 720), (960, 540), (640, 360), (480, 270), (320, 180)],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_360p_source_gets_three_rungs() {
    encode_and_check(640, 360, &[(640, 360), (480, 270), (320, 180)]).await;
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_whole_failover_walkthrough_runs_twice_changes_nothing_the_second_time_and_leaves_a_url_to_watch(
) {
    // As `make demo` runs it: the environment up first, so it is still up afterwards.
    let env = crate::harness::LocalUp::start();
    let dir = &env.dir;
    let mezz = sample(dir.path(), "mezzanine.mp4", 640, 360, 4);
    let run = |script: &Path, args: &[&Path]| {
        let mut a: Vec<&std::ffi::OsStr> = vec!["run".as_ref(), script.as_os_str()];
        a.extend(args.iter().map(|p| p.as_os_str()));
        env.amsplay().args(a).output().success()
    };
    let failover = repo().join("scripts/failover.rhai");
    let first = run(&failover, &[&mezz]).stdout();
    let line = |out: &str, p: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(p).map(str::to_string))
            .unwrap_or_else(|| panic!("no {p:?} in {out}"))
    };
    let (orig, repl) = (
        line(&first, "Original Locator Path: "),
        line(&first, "Replicated Locator Path: "),
    );
    let path = |u: &str| u.splitn(4, '/').nth(3).unwrap().to_string();
    assert_ne!(orig, repl);
    assert_eq!(path(&orig), path(&repl), "the URLs differ only by host");
    assert!(orig.ends_with("/mezzanine.ism/manifest"), "{orig}");
    assert!(
        first.contains("B's origin warmed: 3 manifests"),
        "the walkthrough's last step warms B: {first}"
    );
    // The demo ends with a URL to watch, through the front door, that works once it ends.
    let watch = line(&first, "Watch through the front door (HLS): ");
    assert!(watch.ends_with("(format=m3u8-aapl)"), "{watch}");
    let playlist = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let r = reqwest::get(&watch).await.unwrap();
        assert_eq!(r.status(), 200, "{watch}");
        r.text().await.unwrap()
    });
    assert!(playlist.starts_with("#EXTM3U"), "{playlist}");

    // Check both datacenters with a playbook of our own.
    let check = dir.path().join("check.rhai");
    std::fs::write(&check, r#"
        let a = account("dc-a"); let b = account("dc-b");
        let out = a.assets().filter(|x| x.name.starts_with("Encoded_"))[0];
        let origin = a.locators().filter(|l| l.asset_id == out.id && l.type == "OnDemandOrigin")[0];
        let replica = b.locators().filter(|l| l.id == origin.id)[0];
        let target = b.asset(replica.asset_id);
        let blobs_a = a.storage.blobs(out.container).map(|x| `${x.name} ${x.size} ${x.md5}`);
        let blobs_b = b.storage.blobs(target.container).map(|x| `${x.name} ${x.size} ${x.md5}`);
        print(`blobs equal: ${blobs_a == blobs_b} (${blobs_a.len()})`);
        let files = |x| x.files.map(|f| `${f.name} ${f.size} ${f.is_primary}`);
        let fa = files.call(out); fa.sort(); let fb = files.call(target); fb.sort();
        print(`files equal: ${fa == fb}`);
        print(`primary: ${target.files.filter(|f| f.is_primary).map(|f| f.name)}`);
        print(`assets: ${a.assets().len()} ${b.assets().len()} locators: ${a.locators().len()} ${b.locators().len()}`);
    "#).unwrap();
    let c1 = run(&check, &[]).stdout();
    // Three rungs, .ism, .ismc and MES's two metadata files.
    assert!(c1.contains("blobs equal: true (7)"), "{c1}");
    assert!(c1.contains("files equal: true"), "{c1}");
    assert!(c1.contains(r#"primary: ["mezzanine.ism"]"#), "{c1}");

    let second = run(&failover, &[&mezz]).stdout();
    assert!(second.contains("copied 0, skipped 7"), "{second}");
    assert_eq!(line(&second, "Original Locator Path: "), orig);
    assert_eq!(line(&second, "Replicated Locator Path: "), repl);
    let c2 = run(&check, &[]).stdout();
    assert_eq!(
        line(&c1, "assets: "),
        line(&c2, "assets: "),
        "no asset or locator added by the second run"
    );
}

#[test]
fn a_non_video_input_ends_in_error_with_ffmpegs_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.mp4"), b"this is not a video").unwrap();
    let script = dir.path().join("bad.rhai");
    std::fs::write(
        &script,
        r#"
        let a = account("dc-a");
        let src = a.upload(ARGS[0]);
        let job = a.encode(src, "Adaptive Streaming");
        print(`state: ${job.state}`);
        print(`files: ${job.output.files.len()}`);
        if job.state != "Finished" { throw `encoding failed: ${job.errors}`; }
    "#,
    )
    .unwrap();
    let out = amsplay()
        .cwd(dir.path())
        .env("AMSPLAY_LOCAL_DIR", dir.path().join("local"))
        .args([
            "run".as_ref(),
            script.as_os_str(),
            dir.path().join("notes.mp4").as_os_str(),
        ])
        .output()
        .failure()
        .stdout_has("state: Error")
        .stdout_has("files: 0")
        .stderr_has("bad.rhai:7:")
        .stderr_has(
            "encoding failed: ErrorParsingConfiguration: the input is not a video ffmpeg can read",
        );
    assert!(
        out.stderr().contains("Invalid data") || out.stderr().contains("moov atom not found"),
        "{}",
        out.stderr()
    );
}

#[test]
fn cancelling_a_running_job_ends_canceled_with_nothing_registered() {
    let dir = tempfile::tempdir().unwrap();
    let mezz = sample(dir.path(), "long.mp4", 1280, 720, 12);
    let script = dir.path().join("cancel.rhai");
    std::fs::write(&script, r#"
        let a = account("dc-a");
        let src = a.upload(ARGS[0]);
        let job = a.submit_job(src, "Adaptive Streaming");
        while job.state != "Processing" { sleep(0.05); }
        while job.progress <= 0.0 && job.state == "Processing" { sleep(0.05); }
        a.cancel_job(job);
        let done = job.wait();
        print(`state: ${done.state}`);
        print(`files: ${done.output.files.len()} blobs: ${a.storage.blobs(done.output.container).len()}`);
    "#).unwrap();
    amsplay()
        .cwd(dir.path())
        .env("AMSPLAY_LOCAL_DIR", dir.path().join("local"))
        .args(["run".as_ref(), script.as_os_str(), mezz.as_os_str()])
        .output()
        .success()
        .stdout_has("state: Canceled")
        .stdout_has("files: 0 blobs: 0");
}

/// Media Encoder Standard's presets through the emulator's API: a built-in name whose layers
/// are all larger than the source (its smallest is scaled down, never up), a custom preset in
/// MES's JSON (pixels and percent) and one in its XML; an output without `assetName` is named
/// as the reference says (`JobOutputAsset(0)_{job name}`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mes_presets_by_name_and_in_mes_json_and_xml_are_encoded() {
    use crate::emulator::{enc, Raw};
    use amsplay::storage::TransferOptions;
    let m = crate::harness::Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let dir = tempfile::tempdir().unwrap();
    let clip = sample(dir.path(), "clip.mp4", 320, 180, 2);
    let aid = raw.asset_with(&m, &clip).await;
    let json_preset = r#"{"Version":1.0,"Codecs":[{"KeyFrameInterval":"00:00:02","H264Layers":[{"Profile":"Auto","Level":"auto","Bitrate":300,"MaxBitrate":300,"BufferWindow":"00:00:05","Width":320,"Height":180,"Type":"H264Layer","FrameRate":"0/1"},{"Bitrate":150,"Width":"50%","Height":"50%","Type":"H264Layer"}],"Type":"H264Video"},{"Profile":"AACLC","Channels":2,"SamplingRate":48000,"Bitrate":128,"Type":"AACAudio"}],"Outputs":[{"FileName":"{Basename}-{Resolution}-{Bitrate}k{Extension}","Format":{"Type":"MP4Format"}}]}"#;
    let xml_preset = r#"<?xml version="1.0" encoding="utf-16"?><Preset xmlns:xsd="http://www.w3.org/2001/XMLSchema" Version="1.0" xmlns="http://www.windowsazure.com/media/encoding/Preset/2014/03"><Encoding><H264Video><KeyFrameInterval>00:00:02</KeyFrameInterval><H264Layers><H264Layer><Bitrate>250</Bitrate><Width>320</Width><Height>180</Height><FrameRate>0/1</FrameRate></H264Layer></H264Layers></H264Video><AACAudio><Profile>AACLC</Profile><Channels>2</Channels><SamplingRate>48000</SamplingRate><Bitrate>128</Bitrate></AACAudio></Encoding><Outputs><Output FileName="{Basename}_{Width}x{Height}_{VideoBitrate}.mp4"><MP4Format /></Output></Outputs></Preset>"#;
    for (configuration, expect) in [
        (
            "H264 Multiple Bitrate 16x9 SD",
            vec!["clip_320x178_400.mp4"],
        ),
        (
            "H264 Single Bitrate 720p Audio 5.1",
            vec!["clip_320x180_4500.mp4"],
        ),
        (
            json_preset,
            vec!["clip-320x180-300k.mp4", "clip-160x90-150k.mp4"],
        ),
        (xml_preset, vec!["clip_320x180_250.mp4"]),
    ] {
        let job = serde_json::json!({
            "Name": "Presets",
            "InputMediaAssets": [{"__metadata": {"uri": m.url(&format!("/api/Assets('{}')", enc(&aid)))}}],
            "Tasks": [{
                "Configuration": configuration,
                "MediaProcessorId": "nb:mpid:UUID:ff4df607-d419-42f0-bc17-a481b1331e56",
                "TaskBody": "<?xml version=\"1.0\" encoding=\"utf-8\"?><taskBody><inputAsset>JobInputAsset(0)</inputAsset><outputAsset>JobOutputAsset(0)</outputAsset></taskBody>"
            }]
        });
        let jid = raw.create("/api/Jobs", &job.to_string()).await;
        raw.finished(&jid).await;
        let out = raw
            .ok(
                "GET",
                &format!("/api/Jobs('{}')/OutputMediaAssets", enc(&jid)),
                None,
            )
            .await;
        assert_eq!(out["value"][0]["Name"], "JobOutputAsset(0)_Presets");
        let files = raw
            .ok(
                "GET",
                &format!(
                    "/api/Assets('{}')/Files",
                    enc(out["value"][0]["Id"].as_str().unwrap())
                ),
                None,
            )
            .await;
        let all: Vec<String> = files["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["Name"].as_str().unwrap().to_string())
            .collect();
        // MES's metadata files beside the media: what it wrote, and what it read.
        let guid = aid.trim_start_matches("nb:cid:UUID:");
        for meta in [
            "clip_manifest.xml".to_string(),
            format!("{guid}_metadata.xml"),
        ] {
            assert!(all.contains(&meta), "{meta} in {all:?}");
        }
        let container =
            amsplay::ams::model::asset_container(out["value"][0]["Id"].as_str().unwrap());
        let local = dir.path().join("manifest.xml");
        m.env
            .storage("dca")
            .download_file(
                &container,
                "clip_manifest.xml",
                &local,
                &TransferOptions::default(),
                None,
            )
            .await
            .unwrap();
        let xml = std::fs::read_to_string(&local).unwrap();
        assert!(xml.contains("xmlns=\"http://schemas.microsoft.com/windowsazure/mediaservices/2013/05/mediaencoder/metadata\""), "{xml}");
        assert_eq!(xml.matches("<AssetFile ").count(), expect.len(), "{xml}");
        assert!(xml.contains("<Source Name=\"clip.mp4\" />"), "{xml}");
        // The preset's audio: 5.1 at 384 kbps for an "Audio 5.1" preset, else stereo 128, in
        // the files themselves (the .ismc reads the encoded MP4s).
        let (channels, kbps) = if configuration.ends_with("Audio 5.1") {
            (6, 384)
        } else {
            (2, 128)
        };
        let ismc = dir.path().join("clip.ismc");
        m.env
            .storage("dca")
            .download_file(
                &container,
                "clip.ismc",
                &ismc,
                &TransferOptions::default(),
                None,
            )
            .await
            .unwrap();
        let ismc = std::fs::read_to_string(&ismc).unwrap();
        assert!(
            ismc.contains(&format!("Channels=\"{channels}\""))
                && ismc.contains(&format!("Bitrate=\"{}\" FourCC=\"AACL\"", kbps * 1000)),
            "{configuration}: {ismc}"
        );
        let mut names: Vec<String> = all.into_iter().filter(|n| n.ends_with(".mp4")).collect();
        names.sort();
        let mut expect: Vec<String> = expect.iter().map(|s| s.to_string()).collect();
        expect.sort();
        assert_eq!(names, expect, "{configuration}");
    }
    // Audio-only presets are named, not guessed.
    let job = serde_json::json!({
        "InputMediaAssets": [{"__metadata": {"uri": m.url(&format!("/api/Assets('{}')", enc(&aid)))}}],
        "Tasks": [{
            "Configuration": "AAC Audio",
            "MediaProcessorId": "nb:mpid:UUID:ff4df607-d419-42f0-bc17-a481b1331e56",
            "TaskBody": "<taskBody><inputAsset>JobInputAsset(0)</inputAsset><outputAsset>JobOutputAsset(0)</outputAsset></taskBody>"
        }]
    });
    let a = raw
        .expect("POST", "/api/Jobs", Some(&job.to_string()), 400)
        .await;
    assert!(
        a.message().contains("audio-only presets are not emulated"),
        "{}",
        a.message()
    );
}
