//! Outages as they really happen, on the local environment: each datacenter's paths run
//! through fault points, and `scripts/drill.rhai` plays through the front door while one mode
//! of outage is injected. While one datacenter can serve, no request fails, nothing waits a
//! second once the outage is detected and a player with three segments buffered never stalls;
//! with both down the answers are fast 503s.

use std::path::Path;

use crate::encoding::sample;
use crate::harness::{FrontDoor, LocalUp, Nginx};
use crate::origin::send;

fn number(out: &str, prefix: &str) -> f64 {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|l| l.split([',', ' ']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no '{prefix}' in the drill's report:\n{out}"))
}

/// Publishes a `seconds`-long clip in both datacenters with the walkthrough; returns its
/// presentation's path, `/{locator}/{name}.ism`, the same on both origins and through any edge.
pub(crate) fn published(env: &LocalUp, name: &str, seconds: u32) -> String {
    let url = published_at(env, name, (320, 180), seconds);
    let path = &url[url.find("//").unwrap() + 2..];
    path[path.find('/').unwrap()..].to_string()
}

/// Publishes a `seconds`-long clip of `size` in both datacenters with the walkthrough; returns
/// its presentation's URL on datacenter A's origin, `http://…/{locator}/{name}.ism`.
pub(crate) fn published_at(env: &LocalUp, name: &str, size: (u32, u32), seconds: u32) -> String {
    let mezz = sample(
        env.dir.path(),
        &format!("{name}.mp4"),
        size.0,
        size.1,
        seconds,
    );
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = env
        .amsplay()
        .args([
            "run".as_ref(),
            repo.join("scripts/failover.rhai").as_os_str(),
            mezz.as_os_str(),
        ])
        .output()
        .success()
        .stdout();
    out.lines()
        .find_map(|l| l.strip_prefix("Original Locator Path: "))
        .expect("the walkthrough prints the locator path")
        .trim()
        .trim_end_matches("/manifest")
        .to_string()
}

/// The path of the first segment of the master playlist's last variant, read from `base`.
pub(crate) fn first_segment(base: &str, master: &str) -> String {
    let (_, _, text) = send("GET", &format!("{base}{master}"), "");
    let text = String::from_utf8(text).unwrap();
    let variant = text.lines().rfind(|l| !l.starts_with('#')).unwrap();
    let dir = &master[..master.rfind('/').unwrap() + 1];
    let (_, _, media) = send("GET", &format!("{base}{dir}{variant}"), "");
    let media = String::from_utf8(media).unwrap();
    let segment = media
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .unwrap();
    let sub = &variant[..variant.rfind('/').map_or(0, |i| i + 1)];
    format!("{dir}{sub}{segment}")
}

/// A short clip published with the walkthrough; its HLS master playlist's path.
pub(crate) fn streamed(env: &LocalUp) -> String {
    format!("{}/manifest(format=m3u8-aapl)", published(env, "drill", 4))
}

fn drill(env: &LocalUp, mode: &str, seconds: &str, edge: Option<&str>) -> crate::harness::Run {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = repo.join("scripts/drill.rhai");
    let mut args = vec!["run", script.to_str().unwrap(), mode, seconds];
    args.extend(edge);
    env.amsplay().args(&args).output()
}

/// How an edge must behave in the drills.
struct Expect {
    /// Longest request once the outage is detected, in ms.
    worst_after_ms: f64,
    /// Whether traffic must be back on A before the drill ends (an edge with only passive
    /// health tries A again only after its cool-down).
    returns: bool,
    /// Longest spell without answers after B returns from a both-down outage, in s.
    served_again_s: f64,
}

const MODES: [&str; 7] = [
    "datacenter",
    "storage-down",
    "storage-hang",
    "origin-503",
    "origin-slow",
    "flapping",
    "endpoint-stopped",
];

fn every_mode(env: &LocalUp, edge: Option<&str>, expect: Expect) {
    let who = edge.unwrap_or("front door");
    for mode in MODES {
        // Flapping ends with A's last failure about when the outage does: traffic returns
        // after the cool-down (3 s) that failure started, so it needs a longer drill.
        let seconds = if mode == "flapping" { "10" } else { "6" };
        let out = drill(env, mode, seconds, edge).success().stdout();
        assert!(
            number(&out, "requests: ") > 40.0,
            "{who} {mode}: the player kept requesting:\n{out}"
        );
        assert!(out.contains("failed: 0"), "{who} {mode}:\n{out}");
        let worst = number(&out, "worst latency: ");
        let worst_after = out
            .lines()
            .find_map(|l| l.split("after detection: ").nth(1))
            .and_then(|l| l.trim_end_matches(" ms").parse::<f64>().ok())
            .unwrap();
        assert!(
            worst_after < expect.worst_after_ms,
            "{who} {mode}: {worst_after} ms after detection (worst {worst} ms):\n{out}"
        );
        assert!(
            number(&out, "longest stall (3-segment buffer): ") == 0.0,
            "{who} {mode}: a player would have stalled:\n{out}"
        );
        if mode != "storage-hang" && mode != "storage-down" {
            // A's origin may serve the fragments it holds until its health check fails (the
            // front door) or for ever (nginx); the other modes move traffic at once.
            assert!(
                out.contains("traffic moved"),
                "{who} {mode}: traffic must move to B:\n{out}"
            );
            if expect.returns {
                assert!(
                    out.contains("traffic came back"),
                    "{who} {mode}: and come back to A:\n{out}"
                );
            }
        }
    }
    // Both down: fast failures, then B serves again.
    let out = drill(env, "both-down", "8", edge).success().stdout();
    assert!(number(&out, "slowest failure: ") < 200.0, "{who}: {out}");
    let failed = out
        .lines()
        .find_map(|l| l.split("failed: ").nth(1))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap();
    assert!(
        failed > 0,
        "{who}: both down must show in the report: {out}"
    );
    let again = number(&out, "served again ");
    assert!(
        again < expect.served_again_s,
        "{who}: served again only {again} s after B returned:\n{out}"
    );
}

#[test]
fn every_outage_mode_is_drilled_without_a_failed_request_while_one_datacenter_serves() {
    let env = LocalUp::start();
    streamed(&env);
    // B serves again once its probes pass (two, half a second apart), even though the
    // failed requests had ejected it.
    let expect = Expect {
        worst_after_ms: 1000.0,
        returns: true,
        served_again_s: 2.0,
    };
    every_mode(&env, None, expect);
}

/// The same drills through real nginx running `amsplay front --emit nginx`: the origins'
/// failure answers (fast 503s) suit an edge that is not ours. nginx has passive health only:
/// after its cool-down (3 s) one request tries A again and may wait the timeout (1 s), and
/// after a both-down outage B is tried again only once its cool-down is over.
#[test]
fn every_outage_mode_is_drilled_through_nginx_too() {
    let env = LocalUp::start();
    streamed(&env);
    let nginx = Nginx::start(&env, &["--no-cache"]);
    let expect = Expect {
        worst_after_ms: 1500.0,
        returns: false,
        served_again_s: 4.0,
    };
    every_mode(&env, Some(&nginx.url), expect);
}

/// With its cache, nginx asks an origin once per object and keeps serving what it holds
/// while both datacenters are down; it answers preflights and refuses other methods itself.
#[test]
fn the_nginx_edge_caches_and_answers_for_the_origins() {
    let env = LocalUp::start();
    let master = streamed(&env);
    let nginx = Nginx::start(&env, &[]);
    let url = format!("{}{master}", nginx.url);
    let (status, head, body) = send("GET", &url, "");
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("x-cache: miss"), "{head}");
    let (_, head, again) = send("GET", &url, "");
    assert!(head.contains("x-cache: hit"), "{head}");
    assert_eq!(again, body);
    // Both datacenters down: what the edge holds is still served...
    for dc in ["dc-a", "dc-b"] {
        env.amsplay()
            .args(["local", "fail", dc, "--origin", "down"])
            .output()
            .success();
    }
    let (status, _, held) = send("GET", &url, "");
    assert_eq!((status, held), (200, body));
    // ...and what it does not hold is a fast 503 players retry.
    let (status, head, _) = send("GET", &format!("{url}?uncached"), "");
    assert_eq!(status, 503, "{head}");
    assert!(head.contains("retry-after: 1"), "{head}");
    // Preflights are answered here; other methods are refused.
    let ask = "Origin: https://player.example\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: authorization\r\n";
    let (status, head, _) = send("OPTIONS", &url, ask);
    assert_eq!(status, 204, "{head}");
    assert!(
        head.contains("access-control-allow-headers: authorization"),
        "{head}"
    );
    let (status, _, _) = send("DELETE", &url, "");
    assert_eq!(status, 405);
}

/// amsplay's front door caches too (by default): a body passes to the first client and is
/// kept, later requests are answered from memory (Range, If-None-Match and HEAD included),
/// also while both datacenters are down; a Range never fills it; `--no-cache` turns it off.
#[test]
fn the_front_doors_cache_answers_for_the_origins() {
    let env = LocalUp::start();
    let master = streamed(&env);
    let v = env.status();
    let origins: Vec<String> = (0..2)
        .map(|i| v["datacenters"][i]["origin"].as_str().unwrap().to_string())
        .collect();
    let front = FrontDoor::start(
        &[&origins[0], &origins[1]],
        &["--timeout-ms", "1000", "--cache-mb", "64"],
    );
    let url = format!("{}{master}", front.url);
    let (status, head, body) = send("GET", &url, "");
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("x-cache: miss"), "{head}");
    let (_, head, again) = send("GET", &url, "");
    assert!(head.contains("x-cache: hit"), "{head}");
    assert!(
        head.contains(&format!("x-served-by: {}", origins[0])),
        "{head}"
    );
    assert_eq!(again, body);

    // A fragment asked with a Range first: passed through, not kept.
    let frag = format!("{}{}", front.url, first_segment(&front.url, &master));
    let (status, head, part) = send("GET", &frag, "Range: bytes=0-99\r\n");
    assert_eq!((status, part.len()), (206, 100), "{head}");
    let (status, head, whole) = send("GET", &frag, "");
    assert_eq!(status, 200);
    assert!(head.contains("x-cache: miss"), "a Range filled it: {head}");
    assert_eq!(&whole[..100], &part[..]);
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap()
        .trim()
        .to_string();

    // Both datacenters down: what the front door holds is still served, whole or in part...
    for dc in ["dc-a", "dc-b"] {
        env.amsplay()
            .args(["local", "fail", dc, "--origin", "down"])
            .output()
            .success();
    }
    let (status, head, held) = send("GET", &frag, "");
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("x-cache: hit"), "{head}");
    assert!(held == whole, "the same bytes");
    let (status, head, tail) = send("GET", &frag, "Range: bytes=-10\r\n");
    assert_eq!(status, 206, "{head}");
    assert_eq!(&tail[..], &whole[whole.len() - 10..]);
    let (status, _, none) = send("GET", &frag, &format!("If-None-Match: {etag}\r\n"));
    assert_eq!((status, none.len()), (304, 0));
    let (status, head, none) = send("HEAD", &frag, "");
    assert_eq!((status, none.len()), (200, 0), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", whole.len())),
        "{head}"
    );
    // ...and what it does not hold is a fast 503 players retry.
    let (status, head, _) = send("GET", &format!("{url}?uncached"), "");
    assert_eq!(status, 503, "{head}");
    assert!(head.contains("retry-after: 1"), "{head}");

    // Without a cache nothing is answered while both are down.
    let plain = FrontDoor::start(&[&origins[0], &origins[1]], &["--no-cache"]);
    let (status, head, _) = send("GET", &format!("{}{master}", plain.url), "");
    assert_eq!(status, 503, "{head}");
    assert!(!head.contains("\nx-cache:"), "{head}");
}

#[test]
fn local_fail_and_heal_break_and_mend_one_datacenters_paths() {
    let env = LocalUp::start();
    let run = |args: &[&str]| env.amsplay().args(args).output();
    run(&[
        "local",
        "fail",
        "dc-a",
        "--storage",
        "down",
        "--origin",
        "503",
    ])
    .success()
    .stdout_has("dc-a: storage down, origin 503");
    run(&["local", "status"])
        .success()
        .stdout_has("faults             storage down, origin 503");
    let json = run(&["local", "status", "--json"]).success().stdout();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["faults"]["dc-a"]["storage"], "down");
    assert_eq!(v["faults"]["dc-b"]["storage"], "ok");
    // The origin's deep health tells the truth through the fault point and directly.
    let origin = v["datacenters"][0]["origin"].as_str().unwrap().to_string();
    let (status, body) = crate::origin::get(&format!("{origin}/health"));
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    run(&["local", "heal", "dc-a"]).success();
    run(&["local", "fail", "dc-x", "--storage", "down"])
        .failure()
        .stderr_has("no datacenter 'dc-x'");
    run(&["local", "fail", "dc-a", "--storage", "sideways"])
        .failure()
        .stderr_has("not a fault mode");
}

/// The front door finishes a body that A cut in the middle from B (a `Range` for the rest,
/// guarded by the ETag): the player gets one whole, correct response.
#[test]
fn a_body_cut_in_the_middle_is_finished_by_the_other_datacenter() {
    let env = LocalUp::start();
    let master = streamed(&env);
    let v = env.status();
    let front = v["front_door"]
        .as_str()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let origin = |i: usize| v["datacenters"][i]["origin"].as_str().unwrap().to_string();
    // The largest fragment: the last variant's first media segment.
    let (_, _, text) = send("GET", &format!("{}{master}", origin(1)), "");
    let text = String::from_utf8(text).unwrap();
    let variant = text.lines().rfind(|l| !l.starts_with('#')).unwrap();
    let base = format!("{}{}", origin(1), &master[..master.rfind('/').unwrap() + 1]);
    let (_, _, media) = send("GET", &format!("{base}{variant}"), "");
    let media = String::from_utf8(media).unwrap();
    let segment = media
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .unwrap();
    let dir = &variant[..variant.rfind('/').map_or(0, |i| i + 1)];
    let path = format!(
        "{}{dir}{segment}",
        &master[..master.rfind('/').unwrap() + 1]
    );
    let (status, _, whole) = send("GET", &format!("{}{path}", origin(1)), "");
    assert_eq!(status, 200);
    assert!(whole.len() > 4096, "{} bytes is no test", whole.len());
    let cut = (whole.len() / 2).to_string();
    env.amsplay()
        .args([
            "local",
            "fail",
            "dc-a",
            "--origin",
            "cut",
            "--cut-bytes",
            &cut,
        ])
        .output()
        .success();
    let (status, head, body) = send("GET", &format!("{front}{path}"), "");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains(&format!("x-served-by: {}", origin(0))),
        "A began the answer: {head}"
    );
    assert_eq!(body.len(), whole.len(), "the whole body arrived");
    assert!(body == whole, "and it is the same bytes");
    let log = std::fs::read_to_string(env.dir.path().join("local/front.log")).unwrap();
    assert!(log.contains("body resumed on the next origin"), "{log}");
}

/// A datacenter stopped while one of its answers is under way finishes that answer before it
/// goes (its emulator stops gracefully while its paths are still open; only then are they
/// cut), so that an edge that cannot resume a body, nginx, passes no broken one to a player.
#[test]
fn a_datacenter_stopped_mid_answer_finishes_it_first() {
    let env = LocalUp::start();
    let path = published(&env, "inflight", 2);
    let v = env.status();
    let origin = |i: usize| v["datacenters"][i]["origin"].as_str().unwrap().to_string();
    let fragment = first_segment(&origin(1), &format!("{path}/manifest(format=m3u8-aapl)"));
    let (status, _, whole) = send("GET", &format!("{}{fragment}", origin(1)), "");
    assert_eq!(status, 200);
    // A's origin cold, behind slow storage: an answer there takes a while.
    let dir = env.dir.path();
    let script = |name: &str, text: &str| env.amsplay().script(dir, name, text).output().success();
    script(
        "cold.rhai",
        r#"let e = local_env(); e.stop("dc-a"); e.start("dc-a");"#,
    );
    env.amsplay()
        .args([
            "local",
            "fail",
            "dc-a",
            "--storage",
            "slow",
            "--latency-ms",
            "700",
        ])
        .output()
        .success();
    let a = origin(0);
    let asked = format!("{a}{fragment}");
    let asking = std::thread::spawn(move || {
        let began = std::time::Instant::now();
        (send("GET", &asked, ""), began.elapsed())
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    script("stop.rhai", r#"local_env().stop("dc-a");"#);
    let ((status, head, body), took) = asking
        .join()
        .expect("the answer under way arrived (A's paths were cut under it)");
    assert!(
        took >= std::time::Duration::from_millis(700),
        "the answer was under way when the stop began: {took:?}"
    );
    assert_eq!(status, 200, "{head}");
    assert!(body == whole, "the whole answer, A's bytes as B's");
    // And then the datacenter is down.
    let addr = a.trim_start_matches("http://").trim_end_matches('/');
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "A's origin still takes connections"
    );
}
