//! Browsers as clients: what a page on another site needs of our streams (CORS preflights,
//! HEAD answered like GET), packaging exact enough for strict players (checked against the
//! media itself with ffprobe), and real players in Debian's Chromium (`tests/browser/`).

use std::process::Command;

use crate::harness::{FrontDoor, LocalUp};
use crate::origin::send;
use crate::outages::{first_segment, published, streamed};

/// The base URLs a browser plays from: origin A, origin B, the local front door.
fn sources(env: &LocalUp) -> Vec<String> {
    let v = env.status();
    let mut out: Vec<String> = (0..2)
        .map(|i| v["datacenters"][i]["origin"].as_str().unwrap().to_string())
        .collect();
    out.push(v["front_door"].as_str().unwrap().to_string());
    out
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

/// A page embedding our streams adds headers (hls.js `xhrSetup` with `Authorization`, a
/// `CMCD-Request` header): the browser preflights, and the origins and the front door (with
/// and without its cache) answer the preflight themselves. HEAD answers as GET does, with no
/// body.
#[test]
fn preflights_are_answered_and_head_matches_get_on_origins_and_front_doors() {
    let env = LocalUp::start();
    let master = streamed(&env);
    let mut bases = sources(&env);
    let caching = FrontDoor::start(&[&bases[0], &bases[1]], &["--cache-mb", "16"]);
    bases.push(caching.url.clone());
    let paths = [master.clone(), first_segment(&bases[0], &master)];
    for base in &bases {
        for path in &paths {
            let url = format!("{base}{path}");
            let (status, head, body) = send(
                "OPTIONS",
                &url,
                "Origin: http://player.example\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: authorization,cmcd-request\r\n",
            );
            assert!(status == 204 || status == 200, "{url}: {status}\n{head}");
            assert!(body.is_empty(), "{url}");
            assert_eq!(
                header(&head, "access-control-allow-origin"),
                Some("*"),
                "{url}\n{head}"
            );
            assert_eq!(
                header(&head, "access-control-allow-headers"),
                Some("authorization,cmcd-request"),
                "{url}\n{head}"
            );
            let methods = header(&head, "access-control-allow-methods").unwrap_or_default();
            assert!(
                methods.contains("get") && methods.contains("head"),
                "{url}\n{head}"
            );
            assert!(
                header(&head, "access-control-max-age").is_some(),
                "{url}\n{head}"
            );
            // The real request after it: readable, with the headers a player reads exposed.
            let (status, head, body) = send(
                "GET",
                &url,
                "Origin: http://player.example\r\nAuthorization: Bearer x\r\n",
            );
            assert_eq!(status, 200, "{url}\n{head}");
            assert_eq!(
                header(&head, "access-control-allow-origin"),
                Some("*"),
                "{url}"
            );
            let exposed = header(&head, "access-control-expose-headers").unwrap_or_default();
            for h in ["content-length", "content-range", "etag"] {
                assert!(
                    exposed.to_lowercase().contains(h),
                    "{url}: {h} not exposed\n{head}"
                );
            }
            // HEAD: the same status, type, length and ETag, and no body (twice, so a caching
            // front door answers it from memory too).
            for _ in 0..2 {
                let (hs, hhead, hbody) = send("HEAD", &url, "");
                assert_eq!(hs, status, "{url}");
                assert!(hbody.is_empty(), "{url}: a HEAD with a body");
                let len = body.len().to_string();
                assert_eq!(
                    header(&hhead, "content-length"),
                    Some(len.as_str()),
                    "HEAD {url}\n{hhead}"
                );
                for h in ["content-type", "etag"] {
                    assert_eq!(header(&hhead, h), header(&head, h), "HEAD {url}: {h}");
                }
            }
        }
    }
    // A preflight never counts against an origin: both still up, nothing ejected.
    let (_, _, status) = send("GET", &format!("{}/status", caching.url), "");
    let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
    for o in status["origins"].as_array().unwrap() {
        assert_eq!(
            (&o["available"], &o["ejected"]),
            (&true.into(), &false.into()),
            "{status}"
        );
    }
}

/// `ffprobe -show_packets` of a stream: (pts, duration) in seconds of each packet.
fn packets(url: &str, stream: &str) -> Vec<(f64, f64)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream, "-show_entries"])
        .args(["packet=pts_time,duration_time", "-of", "csv=p=0", url])
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (p, d) = l.split_once(',')?;
            Some((p.parse().ok()?, d.parse().ok()?))
        })
        .collect()
}

/// Durations cover the longest track (rounded up, never down), HLS bandwidths are the
/// measured peak (and average) segment bit rates, and Smooth's video and audio start together
/// as the source's do: each checked against the media, not against fixed numbers.
#[test]
fn packaging_is_exact_for_strict_players() {
    let env = LocalUp::start();
    let master = streamed(&env);
    let base = &sources(&env)[0];
    let root = format!("{base}{}", &master[..master.rfind('/').unwrap()]);
    let get = |url: &str| {
        let (status, head, body) = send("GET", url, "");
        assert_eq!(status, 200, "{url}\n{head}");
        body
    };

    // DASH: mediaPresentationDuration ≥ the end of every track, by less than a millisecond.
    let mpd = String::from_utf8(get(&format!("{root}/manifest(format=mpd-time-csf)"))).unwrap();
    let declared: f64 = mpd
        .split("mediaPresentationDuration=\"PT")
        .nth(1)
        .and_then(|r| r.split('S').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    let mpd_url = format!("{root}/manifest(format=mpd-time-csf)");
    for stream in ["v:0", "a:0"] {
        let p = packets(&mpd_url, stream);
        assert!(!p.is_empty(), "{stream}: no packets");
        let end = p.iter().map(|(t, d)| t + d).fold(0.0, f64::max);
        assert!(
            declared >= end - 1e-6 && declared < end + 0.05,
            "{stream} ends at {end} s, the MPD says {declared} s"
        );
    }

    // HLS: BANDWIDTH ≥ the peak of (video + audio) segment bits over seconds;
    // AVERAGE-BANDWIDTH their average; FRAME-RATE the source's.
    let text = String::from_utf8(get(&format!("{root}/manifest(format=m3u8-aapl)"))).unwrap();
    let rates = |playlist: &str| -> (f64, f64) {
        let url = format!("{root}/{playlist}");
        let dir = &url[..url.rfind('/').unwrap() + 1];
        let text = String::from_utf8(get(&url)).unwrap();
        let (mut peak, mut bits, mut secs) = (0.0f64, 0.0, 0.0);
        let mut duration = 0.0;
        for l in text.lines() {
            if let Some(d) = l.strip_prefix("#EXTINF:") {
                duration = d.trim_end_matches(',').parse().unwrap();
            } else if !l.starts_with('#') && !l.is_empty() {
                let size = get(&format!("{dir}{l}")).len() as f64 * 8.0;
                peak = peak.max(size / duration);
                bits += size;
                secs += duration;
            }
        }
        (peak, bits / secs)
    };
    let audio_playlist = text
        .split("TYPE=AUDIO")
        .nth(1)
        .and_then(|r| r.split("URI=\"").nth(1))
        .and_then(|r| r.split('"').next())
        .unwrap();
    let (audio_peak, audio_avg) = rates(audio_playlist);
    let fps: Vec<f64> = {
        let mezz = env.dir.path().join("drill.mp4");
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
            .args(["stream=avg_frame_rate", "-of", "csv=p=0"])
            .arg(&mezz)
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let (n, d) = s.split_once('/').unwrap();
        vec![n.parse::<f64>().unwrap() / d.parse::<f64>().unwrap()]
    };
    let mut variants = 0;
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        let Some(attrs) = l.strip_prefix("#EXT-X-STREAM-INF:") else {
            continue;
        };
        let attr = |name: &str| -> f64 {
            attrs
                .split(',')
                .find_map(|a| a.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("{name} missing: {l}"))
                .parse()
                .unwrap()
        };
        let (video_peak, video_avg) = rates(lines.next().unwrap());
        let measured_peak = video_peak + audio_peak;
        let measured_avg = video_avg + audio_avg;
        let (bandwidth, average) = (attr("BANDWIDTH"), attr("AVERAGE-BANDWIDTH"));
        assert!(
            bandwidth >= measured_peak && bandwidth <= measured_peak * 1.01 + 1.0,
            "BANDWIDTH {bandwidth} against a measured peak of {measured_peak}: {l}"
        );
        assert!(
            (average - measured_avg).abs() <= measured_avg * 0.01 + 1.0,
            "AVERAGE-BANDWIDTH {average} against a measured {measured_avg}: {l}"
        );
        assert!((attr("FRAME-RATE") - fps[0]).abs() < 0.01, "{l}");
        variants += 1;
    }
    assert!(variants >= 1, "{text}");

    // Smooth: the first presented sample of each track, from the fragments themselves, is
    // where the source MP4 starts that track (ffprobe applies its edit lists).
    let output_mp4 = smooth_first_presented(&root, get);
    let source = packets(&env.dir.path().join("drill.mp4").to_string_lossy(), "v:0");
    let source_audio = packets(&env.dir.path().join("drill.mp4").to_string_lossy(), "a:0");
    let first = |p: &[(f64, f64)]| p.iter().map(|(t, _)| *t).fold(f64::MAX, f64::min);
    let (video, audio) = output_mp4;
    let skew = (video - audio) - (first(&source) - first(&source_audio).max(0.0));
    assert!(
        video.abs() < 0.001 && skew.abs() < 0.002,
        "Smooth video starts at {video} s, audio at {audio} s (A/V skew {skew} s)"
    );
}

/// The presentation time (seconds) of the first video and the first audible audio sample of
/// a Smooth presentation: its first fragments' `tfxd` time plus each sample's signed
/// composition offset, priming (presented before 0) left out.
fn smooth_first_presented(root: &str, get: impl Fn(&str) -> Vec<u8>) -> (f64, f64) {
    use mp4_atom::{Decode, Moof};
    let manifest = String::from_utf8(get(&format!("{root}/manifest"))).unwrap();
    let mut out = Vec::new();
    for kind in ["video", "audio"] {
        let index = manifest.find(&format!("Type=\"{kind}\"")).unwrap();
        let rest = &manifest[index..];
        let bitrate = rest
            .split("Bitrate=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap();
        let fragment = get(&format!(
            "{root}/QualityLevels({bitrate})/Fragments({kind}=0)"
        ));
        let moof = Moof::decode(&mut &fragment[..]).expect("a moof");
        let traf = &moof.traf[0];
        let base = traf.tfdt.as_ref().map_or(0, |t| t.base_media_decode_time) as i64;
        let mut t = base;
        let mut first = i64::MAX;
        if let mp4_atom::TrunSamples::Explicit(entries) = &traf.trun[0].samples {
            for e in entries {
                let presented = t + e.cts.unwrap_or(0);
                let end = presented + e.duration.unwrap_or(0) as i64;
                // An audio frame ending before 0 is priming: players drop it.
                if end > 0 {
                    first = first.min(presented);
                }
                t += e.duration.unwrap_or(0) as i64;
            }
        }
        out.push(first.max(0) as f64 / 1e7);
    }
    (out[0], out[1])
}

/// One player on one stream, as `tests/browser/play.mjs` runs it.
#[derive(serde::Serialize)]
struct Case {
    name: String,
    player: &'static str,
    url: String,
    auth: bool,
    seek_end: bool,
    fault: bool,
}

/// The players and the formats each plays: hls.js HLS, dash.js DASH and Smooth, Shaka both.
const PLAYERS: [(&str, &str); 5] = [
    ("hls", "manifest(format=m3u8-aapl)"),
    ("dash", "manifest(format=mpd-time-csf)"),
    ("dash", "manifest"),
    ("shaka", "manifest(format=m3u8-aapl)"),
    ("shaka", "manifest(format=mpd-time-csf)"),
];

/// When `play`'s hook is called: before a case starts, and once a `fault` case is playing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moment {
    Start,
    Playing,
}

/// Starts `play.mjs` in Debian's Chromium on `cases`, calling `hook` before each case and
/// while each `fault` case plays (it goes on when the hook returns). Returns each case's
/// result.
fn play(cases: &[Case], mut hook: impl FnMut(Moment, &Case)) -> Vec<serde_json::Value> {
    use std::io::{BufRead, Write};
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let spec = tempfile::NamedTempFile::new().unwrap();
    let interactive = cases.iter().any(|c| c.fault);
    std::fs::write(
        spec.path(),
        serde_json::json!({ "interactive": interactive, "cases": cases }).to_string(),
    )
    .unwrap();
    let mut child = Command::new("node")
        .arg(repo.join("tests/browser/play.mjs"))
        .arg(spec.path())
        .current_dir(repo)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node must be installed (make setup)");
    let mut stdin = child.stdin.take().unwrap();
    let mut results = Vec::new();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for case in cases {
        if interactive {
            hook(Moment::Start, case);
            writeln!(stdin, "go").unwrap();
        }
        loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("play.mjs ended before {}", case.name))
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["event"] == "mid" {
                hook(Moment::Playing, case);
                writeln!(stdin, "ok").unwrap();
            } else {
                results.push(v["result"].clone());
                break;
            }
        }
    }
    drop(stdin);
    assert!(child.wait().unwrap().success(), "play.mjs failed");
    results
}

/// What a viewer must not see in a result: not playing to the end, a stall while playing, a
/// player or page error, a failed request (a HEAD Shaka itself aborts once its 2xx headers
/// came is harmless and allowed).
fn assert_clean(r: &serde_json::Value) {
    let name = &r["name"];
    assert!(r["played"] == true && r["ended"] == true, "{name}: {r}");
    assert_eq!(r["waitingAfterPlaying"], 0, "{name} stalled: {r}");
    assert_eq!(r["errors"], serde_json::json!([]), "{name}: {r}");
    assert_eq!(r["consoleErrors"], serde_json::json!([]), "{name}: {r}");
    for f in r["failed"].as_array().unwrap() {
        let answered = r["heads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["url"] == f["url"] && h["status"].as_u64().is_some_and(|s| s < 300));
        assert!(
            f["method"] == "HEAD" && f["error"] == "net::ERR_ABORTED" && answered,
            "{name}: a failed request {f}\n{r}"
        );
    }
}

/// hls.js, dash.js (with its Smooth module) and Shaka play every format from A, B and the
/// front door in Chromium, from a page on another origin, with and without an `Authorization`
/// header (which makes the browser preflight): each plays, seeks near the end and ends.
#[test]
fn players_in_chromium_play_every_format_from_both_datacenters_and_the_front_door() {
    let env = LocalUp::start();
    let path = published(&env, "web", 4);
    let mut cases = Vec::new();
    for (i, base) in sources(&env).iter().enumerate() {
        let source = ["dc-a", "dc-b", "front door"][i];
        for (player, manifest) in PLAYERS {
            for auth in [false, true] {
                cases.push(Case {
                    name: format!("{player} {manifest} from {source}, auth {auth}"),
                    player,
                    url: format!("{base}{path}/{manifest}"),
                    auth,
                    seek_end: true,
                    fault: false,
                });
            }
        }
    }
    let results = play(&cases, |_, _| {});
    for (case, r) in cases.iter().zip(&results) {
        assert_clean(r);
        let media = r["media"].as_u64().unwrap();
        assert!(media >= 3, "{}: {r}", case.name);
        let with_auth = r["withAuth"].as_u64().unwrap();
        assert_eq!(
            with_auth,
            if case.auth { media } else { 0 },
            "{}: {r}",
            case.name
        );
    }
    // Preflights and aborted HEADs are harmless on our side: the front door never took an
    // origin out of rotation.
    let front = env.status()["front_door"].as_str().unwrap().to_string();
    let (_, _, status) = send("GET", &format!("{front}/status"), "");
    let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
    for o in status["origins"].as_array().unwrap() {
        assert!(o["available"] == true && o["why"] == "", "{status}");
    }
}

/// Through the front door, each player keeps playing (no `waiting` while playing, no failed
/// request) when datacenter A stops and when it hangs mid-stream, and the segments after it
/// come from B.
#[test]
fn players_in_chromium_keep_playing_through_a_datacenter_stopped_or_hung() {
    let env = LocalUp::start();
    let path = published(&env, "outage", 10);
    let v = env.status();
    let front = v["front_door"].as_str().unwrap().to_string();
    let b = v["datacenters"][1]["origin"].as_str().unwrap().to_string();
    let mut cases = Vec::new();
    for (player, manifest) in [PLAYERS[0], PLAYERS[1], PLAYERS[4]] {
        for mode in ["down", "hang"] {
            cases.push(Case {
                name: format!("{player} {manifest}, dc-a origin {mode}"),
                player,
                url: format!("{front}{path}/{manifest}"),
                auth: false,
                seek_end: false,
                fault: true,
            });
        }
    }
    let mut faults = Vec::new();
    let results = play(&cases, |moment, case| {
        if moment == Moment::Start {
            // Each case starts with A healed and back in the front door's rotation.
            env.amsplay()
                .args(["local", "heal", "dc-a"])
                .output()
                .success();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                let (_, _, body) = send("GET", &format!("{front}/status"), "");
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                if v["origins"][0]["available"] == true {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "A never came back: {v}"
                );
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            return;
        }
        let mode = case.name.rsplit(' ').next().unwrap();
        env.amsplay()
            .args(["local", "fail", "dc-a", "--origin", mode])
            .output()
            .success();
        faults.push(mode.to_string());
    });
    assert_eq!(faults.len(), cases.len(), "every case reached its fault");
    for (case, r) in cases.iter().zip(&results) {
        assert_clean(r);
        let by_b = r["servedBy"][&b].as_u64().unwrap_or(0);
        assert!(
            by_b >= 1,
            "{}: nothing came from B after A broke: {r}",
            case.name
        );
    }
}

/// The console in Chromium, as an operator uses it after `scripts/failover.rhai`: the page
/// loads without errors, lists both datacenters' assets, replicates an asset of A only from
/// its Replicate button until the row says "identical", plays through the front door, and
/// stopping dc-a from the page keeps the video playing (no stall longer than one segment) while
/// the health panel shows the switch. With AMSPLAY_SCREENSHOT set, the page is saved there
/// (`make screenshot` regenerates the README's picture this way).
#[test]
fn the_console_lists_replicates_plays_and_drills_in_chromium() {
    let env = LocalUp::start();
    let console = env.status()["console"]
        .as_str()
        .expect("local up starts the console")
        .to_string();
    published(&env, "console", 10);
    let mezz = std::fs::read(env.dir.path().join("console.mp4")).unwrap();
    let streamed = format!("Encoded_{}", crate::harness::md5_hex(&mezz));
    crate::sync::publish_in_a(&env, "aonly");
    let names = env
        .amsplay()
        .script(
            env.dir.path(),
            "names.rhai",
            r#"for x in account("dc-b").assets() { print(`B ${x.name}`); }"#,
        )
        .output()
        .success()
        .stdout();
    let in_b: Vec<&str> = names.lines().filter_map(|l| l.strip_prefix("B ")).collect();
    assert!(!in_b.is_empty(), "{names}");
    let spec = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        spec.path(),
        serde_json::json!({
            "url": format!("{console}/"),
            "in_a": [streamed, "Encoded_aonly"],
            "in_b": in_b,
            "replicate": "Encoded_aonly",
            "play": streamed,
            "screenshot": std::env::var("AMSPLAY_SCREENSHOT").ok(),
        })
        .to_string(),
    )
    .unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("node")
        .arg(repo.join("tests/browser/console.mjs"))
        .arg(spec.path())
        .current_dir(repo)
        .output()
        .expect("node must be installed (make setup)");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert!(r["error"].is_null() && r["ok"] == true, "{r:#}");
    assert_eq!(r["consoleErrors"], serde_json::json!([]), "{r:#}");
    assert_eq!(r["failed"], serde_json::json!([]), "{r:#}");
    for s in r["stalls"].as_array().unwrap() {
        assert!(s.as_f64().unwrap() < 2000.0, "a stall of {s} ms: {r:#}");
    }
    assert!(r["byDc"]["dc-b"].as_u64().unwrap_or(0) >= 1, "{r:#}");
    assert!(
        r["after"].as_f64().unwrap() > r["before"].as_f64().unwrap() + 2.5,
        "{r:#}"
    );
}
