//! Continuous replication: `amsplay sync` keeps datacenter B in step with A while assets are
//! published in A, through B's storage and B's emulator failing and coming back; a rerun on a
//! synced pair does nothing.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::encoding::sample;
use crate::harness::LocalUp;
use crate::origin::get;

/// Publishes a clip in A only (upload, encode, origin locator); returns the path of its HLS
/// master playlist, `/{locator}/{name}.ism/manifest(format=m3u8-aapl)`. Through the local
/// environment's accounts file, so that B is not brought back (as the embedded default does).
pub(crate) fn publish_in_a(env: &LocalUp, name: &str) -> String {
    let mezz = sample(env.dir.path(), &format!("{name}.mp4"), 320, 180, 3);
    let out = env
        .amsplay()
        .accounts(&env.dir.path().join("local/amsplay.toml"))
        .script(
            env.dir.path(),
            "publish.rhai",
            r#"
let a = account("dc-a");
let src = a.upload(ARGS[0], ARGS[1]);
let job = a.encode(src, "Adaptive Streaming", `Encoded_${ARGS[1]}`);
if job.state != "Finished" { throw `${job.errors}`; }
let l = a.origin_locator(job.output, 30);
print(`URL ${l.url(job.output.primary_file)}`);
"#,
        )
        .args([mezz.to_str().unwrap(), name])
        .output()
        .success()
        .stdout();
    let url = out
        .lines()
        .find_map(|l| l.strip_prefix("URL "))
        .expect("the playbook prints the URL")
        .trim();
    let path = &url[url.find("//").unwrap() + 2..];
    format!("{}(format=m3u8-aapl)", &path[path.find('/').unwrap()..])
}

/// The sync's state file, once `pred` holds for it (or a panic with the last state).
fn wait_state(
    file: &Path,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = serde_json::Value::Null;
    while Instant::now() < deadline {
        if let Some(v) = std::fs::read(file)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        {
            if pred(&v) {
                return v;
            }
            last = v;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the sync never reached: {what}\n{last:#}");
}

/// The asset named `Encoded_{name}` in the state.
fn asset<'a>(state: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    state["assets"]
        .as_object()?
        .values()
        .find(|a| a["name"] == format!("Encoded_{name}"))
}

fn state_of(state: &serde_json::Value, name: &str) -> String {
    asset(state, name)
        .and_then(|a| a["state"].as_str())
        .unwrap_or("unseen")
        .to_string()
}

/// Assets published in A while a sync runs appear in B and stream from B; B's storage down,
/// then B's emulator killed, each during the sync, leave the new asset retried (never
/// "identical" half-done) and, restored, everything ends identical; a damaged replica is found
/// by verification and mended; an asset deleted in A is reported and its replica kept; a rerun
/// copies nothing.
#[test]
fn a_running_sync_keeps_b_in_step_through_b_failing() {
    let env = LocalUp::start();
    let status = env.status();
    let origin_b = status["datacenters"][1]["origin"]
        .as_str()
        .unwrap()
        .to_string();
    let state_file = env.dir.path().join("sync.json");
    // One pass of a sync of its own over the same state, and what it printed.
    let sync_once = |extra: &[&str]| {
        env.amsplay()
            .args(["sync", "--once", "--state"])
            .args([state_file.as_os_str()])
            .args(extra)
            .output()
            .success()
            .stdout()
    };
    let mut sync = std::process::Command::new(env!("CARGO_BIN_EXE_amsplay"))
        .args(["sync", "--interval", "0.3", "--state"])
        .arg(&state_file)
        .current_dir(env.dir.path())
        .env("AMSPLAY_LOCAL_DIR", env.dir.path().join("local"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .env_remove("AMSPLAY_ACCOUNTS")
        .env("AMSPLAY_NO_PROGRESS", "1")
        .spawn()
        .unwrap();

    // 1. Published in A: identical in B, and streamed from B with the same locator.
    let first = publish_in_a(&env, "first");
    wait_state(&state_file, "first identical", |s| {
        state_of(s, "first") == "identical"
    });
    let (status, body) = get(&format!("{origin_b}{first}"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let text = String::from_utf8(body).unwrap();
    let variant = text.lines().rfind(|l| !l.starts_with('#')).unwrap();
    let dir = &first[..first.rfind('/').unwrap() + 1];
    let (status, _) = get(&format!("{origin_b}{dir}{variant}"));
    assert_eq!(status, 200);

    // 2. B's storage down while a new asset is published: retried, not done.
    let run = |args: &[&str]| env.amsplay().args(args).output().success();
    run(&["local", "fail", "dc-b", "--storage", "down"]);
    publish_in_a(&env, "second");
    let s = wait_state(&state_file, "second failing", |s| {
        asset(s, "second").is_some_and(|a| a["error"].is_string())
    });
    assert_ne!(state_of(&s, "second"), "identical", "{s:#}");
    run(&["local", "heal", "dc-b"]);
    wait_state(&state_file, "second identical", |s| {
        state_of(s, "second") == "identical" && asset(s, "second").unwrap()["error"].is_null()
    });

    // 3. B's emulator killed while a third is published; `local up` brings it back.
    let local: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.dir.path().join("local/state.json")).unwrap())
            .unwrap();
    let pid = local["media"][1]["pid"].as_i64().unwrap();
    assert!(std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    publish_in_a(&env, "third");
    wait_state(&state_file, "third failing", |s| {
        asset(s, "third").is_some_and(|a| a["error"].is_string())
    });
    run(&["local", "up"]);
    let s = wait_state(&state_file, "everything identical", |s| {
        ["first", "second", "third"]
            .iter()
            .all(|n| state_of(s, n) == "identical")
            && s["assets"]
                .as_object()
                .unwrap()
                .values()
                .all(|a| a["error"].is_null())
    });
    assert!(s["a_error"].is_null(), "{s:#}");
    let _ = sync.kill();
    let _ = sync.wait();
    let mut printed = String::new();
    sync.stdout
        .take()
        .unwrap()
        .read_to_string(&mut printed)
        .unwrap();
    for name in ["first", "second", "third"] {
        assert!(
            printed.contains(&format!("Encoded_{name}: copying -> identical")),
            "{printed}"
        );
    }
    assert!(printed.contains("retrying next pass"), "{printed}");
    let third = asset(&s, "third").unwrap()["locator_id"]
        .as_str()
        .unwrap()
        .to_string();
    let guid = third.rsplit(':').next().unwrap();
    let (status, _) = get(&format!(
        "{origin_b}/{guid}/third.ism/manifest(format=m3u8-aapl)"
    ));
    assert_eq!(status, 200);

    // 4. B's copy damaged (its manifest overwritten): a verifying pass finds it differs and
    //    copies it again; B streams again.
    let replica = asset(&s, "third").unwrap()["replica_id"]
        .as_str()
        .unwrap()
        .to_string();
    let container = format!("asset-{}", replica.rsplit(':').next().unwrap());
    let junk = env.dir.path().join("junk.ism");
    std::fs::write(&junk, "not a manifest").unwrap();
    env.amsplay()
        .accounts(&env.dir.path().join("local/amsplay.toml"))
        .script(
            env.dir.path(),
            "damage.rhai",
            r#"account("dc-b").storage.upload(ARGS[0], ARGS[1], "third.ism");"#,
        )
        .args([container.as_str(), junk.to_str().unwrap()])
        .output()
        .success();
    let out = sync_once(&["--verify-every", "0"]);
    assert!(
        out.contains("Encoded_third: identical -> differs")
            && out.contains("Encoded_third: differs -> identical"),
        "{out}"
    );
    assert!(!out.contains("Encoded_first: identical ->"), "{out}");
    let (status, _) = get(&format!(
        "{origin_b}/{guid}/third.ism/manifest(format=m3u8-aapl)"
    ));
    assert_eq!(status, 200);

    // 5. Deleted in A: reported, B's replica kept (no --delete).
    let names = |dc: &str| {
        env.amsplay()
            .accounts(&env.dir.path().join("local/amsplay.toml"))
            .script(
                env.dir.path(),
                "names.rhai",
                &format!(r#"for x in account("{dc}").assets() {{ print(`N ${{x.name}}`); }}"#),
            )
            .output()
            .success()
            .stdout()
    };
    let in_b = names("dc-b").lines().count();
    env.amsplay()
        .accounts(&env.dir.path().join("local/amsplay.toml"))
        .script(
            env.dir.path(),
            "delete.rhai",
            r#"let a = account("dc-a"); a.assets().filter(|x| x.name == "Encoded_first")[0].delete();"#,
        )
        .output()
        .success();
    let out = sync_once(&[]);
    assert!(
        out.contains("Encoded_first: identical -> deleted_in_a"),
        "{out}"
    );
    assert_eq!(names("dc-b").lines().count(), in_b, "B's replica was kept");

    // 6. A rerun on a synced pair changes nothing and says so.
    let out = sync_once(&[]);
    assert!(!out.contains("->") && !out.contains("retrying"), "{out}");
    assert!(
        out.contains("2 identical") && out.contains("1 deleted in A"),
        "{out}"
    );
}
