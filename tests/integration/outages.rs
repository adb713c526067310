//! Outages as they really happen, on the local environment: each datacenter's paths run
//! through fault points, and `scripts/drill.rhai` plays through the front door while one mode
//! of outage is injected. While one datacenter can serve, no request fails, nothing waits a
//! second once the outage is detected and a player with three segments buffered never stalls;
//! with both down the answers are fast 503s.

use std::path::Path;

use crate::encoding::sample;
use crate::harness::LocalUp;

fn number(out: &str, prefix: &str) -> f64 {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|l| l.split([',', ' ']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no '{prefix}' in the drill's report:\n{out}"))
}

fn streamed(env: &LocalUp) {
    let mezz = sample(env.dir.path(), "drill.mp4", 320, 180, 4);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    env.amsplay()
        .args([
            "run".as_ref(),
            repo.join("scripts/failover.rhai").as_os_str(),
            mezz.as_os_str(),
        ])
        .output()
        .success();
}

fn drill(env: &LocalUp, mode: &str, seconds: &str) -> crate::harness::Run {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    env.amsplay()
        .args([
            "run".as_ref(),
            repo.join("scripts/drill.rhai").as_os_str(),
            mode.as_ref(),
            seconds.as_ref(),
        ])
        .output()
}

#[test]
fn every_outage_mode_is_drilled_without_a_failed_request_while_one_datacenter_serves() {
    let env = LocalUp::start();
    streamed(&env);
    for mode in [
        "datacenter",
        "storage-down",
        "storage-hang",
        "origin-503",
        "origin-slow",
        "flapping",
    ] {
        let out = drill(&env, mode, "6").success().stdout();
        assert!(
            number(&out, "requests: ") > 40.0,
            "{mode}: the player kept requesting:\n{out}"
        );
        assert!(out.contains("failed: 0"), "{mode}:\n{out}");
        let worst = number(&out, "worst latency: ");
        let worst_after = out
            .lines()
            .find_map(|l| l.split("after detection: ").nth(1))
            .and_then(|l| l.trim_end_matches(" ms").parse::<f64>().ok())
            .unwrap();
        assert!(
            worst_after < 1000.0,
            "{mode}: {worst_after} ms after detection (worst {worst} ms):\n{out}"
        );
        assert!(
            number(&out, "longest stall (3-segment buffer): ") == 0.0,
            "{mode}: a player would have stalled:\n{out}"
        );
        if mode != "storage-hang" && mode != "storage-down" {
            // Cached fragments may keep A serving until its health check fails; the others
            // move at once.
            assert!(
                out.contains("traffic moved"),
                "{mode}: traffic must move to B:\n{out}"
            );
        }
        assert!(
            out.contains("traffic came back"),
            "{mode}: and come back to A:\n{out}"
        );
    }
    // Both down: fast 503s, then B serves again.
    let out = drill(&env, "both-down", "6").success().stdout();
    assert!(number(&out, "slowest failure: ") < 200.0, "{out}");
    let failed = out
        .lines()
        .find_map(|l| l.split("failed: ").nth(1))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap();
    assert!(failed > 0, "both down must show in the report: {out}");
    // Recovery: B serves again once its probes pass (two probes half a second apart), even
    // though the failed requests had ejected it.
    let again = number(&out, "served again ");
    assert!(
        again < 2.0,
        "B served again only {again} s after it returned:\n{out}"
    );
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
