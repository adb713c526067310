//! The streaming origin, read by real clients: ffmpeg decodes the HLS and DASH streams, and
//! GStreamer's Smooth Streaming demuxer the Smooth one, of an encoded asset from both
//! datacenters, which serve the same bytes for the same paths.

use std::path::Path;
use std::process::Command;

use crate::encoding::sample;
use crate::harness::LocalUp;

fn decode(url: &str, map: &str) -> (bool, String) {
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-i",
            url,
            "-map",
            map,
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Buffers GStreamer's Smooth Streaming demuxer (mssdemux) delivers decoded on one of its pads.
fn gst_decoded(manifest: &str, pad: &str) -> (usize, String) {
    let out = Command::new("gst-launch-1.0")
        .args(["-v", "souphttpsrc"])
        .arg(format!("location={manifest}"))
        .args(["!", "mssdemux", "name=d", &format!("d.{pad}"), "!", "queue", "!", "decodebin", "!", "fakesink", "sync=false", "silent=false"])
        .output()
        .expect("GStreamer must be installed for these tests: apt-get install -y gstreamer1.0-tools gstreamer1.0-plugins-bad gstreamer1.0-plugins-good gstreamer1.0-libav");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let errors: String = text
        .lines()
        .filter(|l| l.contains("ERROR"))
        .collect::<Vec<_>>()
        .join("\n");
    (text.matches("last-message = chain").count(), errors)
}

fn duration(url: &str) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            url,
        ])
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0)
}

/// A plain GET over a TCP stream (HTTP/1.0, so the body ends with the connection).
pub(crate) fn get(url: &str) -> (u16, Vec<u8>) {
    get_with(url, "")
}

/// The same, with extra header lines (each ending in CRLF).
fn get_with(url: &str, extra: &str) -> (u16, Vec<u8>) {
    let (status, _, body) = send("GET", url, extra);
    (status, body)
}

/// Any method over HTTP/1.0: the status, the response head (lowercased) and the body.
pub(crate) fn send(method: &str, url: &str, extra: &str) -> (u16, String, Vec<u8>) {
    use std::io::{Read, Write};
    let u = url::Url::parse(url).unwrap();
    let mut s = std::net::TcpStream::connect((u.host_str().unwrap(), u.port().unwrap())).unwrap();
    // The raw path and query as given (after the authority), unnormalized.
    let after = url.find("://").map_or(0, |i| i + 3);
    let path = url[after..].find('/').map_or("/", |j| &url[after + j..]);
    // One write: a server may answer (and close) as soon as it has read the request line.
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {}\r\n{extra}\r\n",
        u.host_str().unwrap()
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

#[test]
fn smooth_hls_and_dash_decode_in_real_clients_from_both_datacenters_with_identical_bytes() {
    let env = LocalUp::start();
    let dir = &env.dir;
    let run = |args: &[&std::ffi::OsStr]| env.amsplay().args(args).output().success();
    let mezz = sample(dir.path(), "show.mp4", 640, 360, 5);
    let failover = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/failover.rhai");
    let out = run(&["run".as_ref(), failover.as_os_str(), mezz.as_os_str()]).stdout();
    let line = |p: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(p).map(str::to_string))
            .unwrap()
    };
    let a = line("Original Locator Path: ")
        .trim_end_matches("/manifest")
        .to_string();
    let b = line("Replicated Locator Path: ")
        .trim_end_matches("/manifest")
        .to_string();
    for base in [&a, &b] {
        for format in ["m3u8-aapl", "mpd-time-csf"] {
            let url = format!("{base}/manifest(format={format})");
            for map in ["0:v:0", "0:v:1", "0:v:2", "0:a:0"] {
                let (ok, err) = decode(&url, map);
                assert!(ok && err.trim().is_empty(), "{url} {map}: {err}");
            }
            let d = duration(&url);
            assert!((d - 5.0).abs() < 0.1, "{url}: duration {d}");
        }
    }
    // Smooth Streaming, read by GStreamer's demuxer: every frame of the 5 s at 30 fps, and audio.
    for base in [&a, &b] {
        let manifest = format!("{base}/manifest");
        let (frames, errors) = gst_decoded(&manifest, "video_00");
        assert!(
            frames >= 150 && errors.is_empty(),
            "{manifest}: {frames} frames, {errors}"
        );
        let (audio, errors) = gst_decoded(&manifest, "audio_00");
        assert!(
            audio > 100 && errors.is_empty(),
            "{manifest}: {audio} audio buffers, {errors}"
        );
    }
    // The same path returns the same bytes from both datacenters.
    for path in [
        "manifest",
        "QualityLevels(720000)/Fragments(video=20000000)",
        "manifest(format=m3u8-aapl)",
        "manifest(format=mpd-time-csf)",
        "QualityLevels(1150000)/Manifest(video,format=m3u8-aapl)",
        "QualityLevels(1150000)/Fragments(video=i,format=mpd-time-csf)",
        "QualityLevels(720000)/Fragments(video=30720,format=mpd-time-csf)",
        "QualityLevels(128000)/Fragments(audio=0,format=m3u8-aapl).m4s",
    ] {
        let (sa, ba) = get(&format!("{a}/{path}"));
        let (sb, bb) = get(&format!("{b}/{path}"));
        assert_eq!((sa, sb), (200, 200), "{path}");
        assert!(
            !ba.is_empty() && ba == bb,
            "{path}: {} vs {} bytes",
            ba.len(),
            bb.len()
        );
    }
    // Ranges of a fragment: 206 with the asked bytes; past the end: 416.
    let frag = format!("{a}/QualityLevels(1150000)/Fragments(video=i,format=mpd-time-csf)");
    let (_, whole) = get(&frag);
    let (s, part) = get_with(&frag, "Range: bytes=10-19\r\n");
    assert_eq!((s, part.as_slice()), (206, &whole[10..20]));
    let (s, _) = get_with(&frag, &format!("Range: bytes={}-\r\n", whole.len()));
    assert_eq!(s, 416);
    // RFC 9110: a Range that is not valid syntax is ignored (the whole body); huge numbers
    // are clamped.
    for ignored in ["bytes=9-1", "bytes=x-y", "bytes=0-1,5-6", "pages=1-2"] {
        let (s, body) = get_with(&frag, &format!("Range: {ignored}\r\n"));
        assert_eq!((s, body.len()), (200, whole.len()), "{ignored}");
    }
    let (s, body) = get_with(&frag, "Range: bytes=0-99999999999999999999999\r\n");
    assert_eq!((s, body), (206, whole.clone()));
    // Anything but a valid origin locator is 404; a malformed fragment is 400 or 404.
    let guid = a.rsplit('/').nth(1).unwrap();
    let host = a.split(guid).next().unwrap();
    let (s, _) = get(&format!(
        "{host}00000000-0000-0000-0000-000000000000/show.ism/manifest(format=m3u8-aapl)"
    ));
    assert_eq!(s, 404);
    for bad in [
        "QualityLevels(x)/Fragments(video=0,format=mpd-time-csf)",
        "QualityLevels(1150000)/Fragments(video=12345,format=mpd-time-csf)",
        "QualityLevels(999)/Manifest(video,format=m3u8-aapl)",
        "QualityLevels(1150000)/Fragments(video",
    ] {
        let (s, _) = get(&format!("{a}/{bad}"));
        assert!(s == 400 || s == 404, "{bad}: {s}");
    }
}

/// An MP4 whose `moov` lies past the head the origin reads first (a file not made with
/// `+faststart`, or a long one): the origin finds its boxes with small reads and reads the
/// `moov` in a second ranged read, and serves it like any other.
#[test]
fn an_mp4_with_its_moov_past_the_first_read_is_served() {
    let env = LocalUp::start();
    let dir = env.dir.path();
    // ffmpeg without `+faststart` writes the moov last, after the media.
    let mp4 = sample(dir, "late_1.mp4", 320, 180, 6);
    let bytes = std::fs::read(&mp4).unwrap();
    let moov = bytes.windows(4).position(|w| w == b"moov").unwrap();
    assert!(
        moov > 200 << 10,
        "the moov is at {moov}, inside the first read"
    );
    std::fs::write(
        dir.join("late.ism"),
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<smil xmlns=\"http://www.w3.org/2001/SMIL20/Language\"><body><switch>\n<video src=\"late_1.mp4\" systemBitrate=\"500000\"><param name=\"trackID\" value=\"1\" valuetype=\"data\" /></video>\n<audio src=\"late_1.mp4\" systemBitrate=\"128000\"><param name=\"trackID\" value=\"2\" valuetype=\"data\" /></audio>\n</switch></body></smil>\n",
    )
    .unwrap();
    let out = env
        .amsplay()
        .script(
            dir,
            "late.rhai",
            r#"
let a = account("dc-a");
let x = a.create_asset("late");
a.storage.upload(x.container, ARGS[0], "late.ism");
a.storage.upload(x.container, ARGS[1], "late_1.mp4");
a.create_file_infos(x);
a.set_primary(x);
let l = a.origin_locator(x, 1);
print(`URL ${l.url(x.primary_file)}`);
"#,
        )
        .args([
            dir.join("late.ism").to_str().unwrap(),
            mp4.to_str().unwrap(),
        ])
        .output()
        .success()
        .stdout();
    let url = out
        .lines()
        .find_map(|l| l.strip_prefix("URL "))
        .unwrap()
        .trim()
        .to_string();
    let hls = format!("{url}(format=m3u8-aapl)");
    let (ok, err) = decode(&hls, "0:v:0");
    assert!(ok && err.trim().is_empty(), "{hls}: {err}");
    let d = duration(&hls);
    assert!((d - 6.0).abs() < 0.2, "{hls}: duration {d}");
}

/// A cold origin reads a rendition's fragments in fixed runs, each once whoever asks first and
/// in whatever order, and reads ahead the same time of every other rendition (players switch
/// rungs): after a crowd asks for the top rung in reverse order, the first fragment of every
/// other rendition is already cached, and every fragment of every rendition has taken one
/// ranged read a file (each of this clip's files fits in one run).
#[test]
fn a_cold_origin_reads_each_run_once_and_reads_ahead_across_the_ladder() {
    let env = LocalUp::start();
    let dir = env.dir.path();
    let base = crate::outages::published_at(&env, "ladder", (640, 360), 6);
    let host = &base[..base[7..].find('/').unwrap() + 7];
    // A cold origin: dc-a restarted, its caches empty.
    env.amsplay()
        .script(
            dir,
            "cold.rhai",
            r#"let e = local_env(); e.stop("dc-a"); e.start("dc-a");"#,
        )
        .output()
        .success();
    let stats = || {
        let (status, body) = get(&format!("{host}/health"));
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let n = |k: &str| v["cache"][k].as_u64().unwrap();
        (n("reads"), n("hits"), n("misses"))
    };
    let (s, mpd) = get(&format!("{base}/manifest(format=mpd-time-csf)"));
    assert_eq!(s, 200);
    let mpd = String::from_utf8(mpd).unwrap();
    // Every rendition's fragment URLs, the top video rung first.
    let mut renditions: Vec<(bool, u64, Vec<String>)> = mpd
        .split("<Representation ")
        .skip(1)
        .map(|rep| {
            let bw: u64 = rep
                .split("bandwidth=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let video = rep.split('>').next().unwrap().contains(" width=\"");
            let kind = if video { "video" } else { "audio" };
            let urls = rep
                .split("<S t=\"")
                .skip(1)
                .map(|t| t.split('"').next().unwrap())
                .map(|t| {
                    format!("{base}/QualityLevels({bw})/Fragments({kind}={t},format=mpd-time-csf)")
                })
                .collect();
            (video, bw, urls)
        })
        .collect();
    renditions.sort_by_key(|(video, bw, _)| (!video, std::cmp::Reverse(*bw)));
    let videos = renditions.iter().filter(|r| r.0).count() as u64;
    assert!(
        videos >= 3 && renditions.len() as u64 == videos + 1,
        "{mpd}"
    );
    let (reads0, _, _) = stats();

    // A crowd on the top rung, in reverse order.
    let crowd: Vec<_> = renditions[0]
        .2
        .iter()
        .rev()
        .cloned()
        .map(|url| std::thread::spawn(move || get(&url).0))
        .collect();
    for c in crowd {
        assert_eq!(c.join().unwrap(), 200);
    }
    // Read-ahead is done when the reads stop.
    let mut last = stats();
    let mut still = 0;
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = stats();
        still = if now.0 == last.0 { still + 1 } else { 0 };
        last = now;
        if still == 3 {
            break;
        }
    }
    let (_, hits1, misses1) = last;
    for (_, bw, urls) in &renditions[1..] {
        assert_eq!(get(&urls[0]).0, 200, "{bw}");
    }
    let (_, hits2, misses2) = stats();
    assert_eq!(
        (misses2, hits2),
        (misses1, hits1 + renditions.len() as u64 - 1),
        "every other rendition's first fragment was read ahead"
    );
    for (_, bw, urls) in &renditions {
        for url in urls {
            assert_eq!(get(url).0, 200, "{bw}: {url}");
        }
    }
    let (reads, _, _) = stats();
    assert!(
        reads > reads0 && reads - reads0 <= videos,
        "{} ranged reads for {videos} files",
        reads - reads0
    );
}
