//! The real `amsplay` binary: playbooks, error reports with positions, the local environment.

use crate::harness::{amsplay, Env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_playbook_runs_with_its_arguments_and_its_output() {
    let env = Env::start(&["dca", "dcb"]).await;
    let accounts = env.accounts_file(&[("dc-a", "dca"), ("dc-b", "dcb")]);
    let dir = tempfile::tempdir().unwrap();
    let out = amsplay()
        .accounts(&accounts)
        .script(
            dir.path(),
            "p.rhai",
            r#"
            let a = account("dc-a");
            a.storage.create_container(ARGS[0]);
            print(`containers: ${a.storage.containers()}`);
            print(`args: ${ARGS.len()} ${ARGS[1]}`);
            "#,
        )
        .args(["media", "--second"])
        .output()
        .success();
    assert!(
        out.stdout().contains(r#"containers: ["media"]"#),
        "{}",
        out.stdout()
    );
    assert!(
        out.stdout().contains("args: 2 --second"),
        "{}",
        out.stdout()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gives_a_located_error_a_nonzero_exit_and_changes_nothing() {
    let env = Env::start(&["dca", "dcb"]).await;
    let accounts = env.accounts_file(&[("dc-a", "dca"), ("dc-b", "dcb")]);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let before = env.storage("dca").containers().await.unwrap();

    // Syntax error: reported before anything runs.
    amsplay()
        .accounts(&accounts)
        .script(
            p,
            "syntax.rhai",
            "account(\"dc-a\").storage.create_container(\"x1\");\nlet x = (1 + ;\n",
        )
        .output()
        .failure()
        .stderr_has("syntax.rhai:2:")
        .stderr_has("2 | let x = (1 + ;")
        .stderr_has("^");

    // Unknown account: lists the known ones, points at the call.
    amsplay()
        .accounts(&accounts)
        .script(
            p,
            "unknown.rhai",
            "let ok = 1;\nlet a = account(\"dc-x\");\n",
        )
        .output()
        .failure()
        .stderr_has(
            "unknown.rhai:2:9: no account named 'dc-x'; the accounts file knows: dc-a, dc-b",
        );

    // Missing container: the hint says what to do.
    amsplay()
        .accounts(&accounts)
        .script(
            p,
            "missing.rhai",
            "let s = account(\"dc-a\").storage;\ns.blobs(\"nope\");\n",
        )
        .output()
        .failure()
        .stderr_has("missing.rhai:2:3: container 'nope' not found in storage account 'dca'")
        .stderr_has("hint: check the name with storage.containers()");

    // Unreadable local file.
    amsplay()
        .accounts(&accounts)
        .script(
            p,
            "upload.rhai",
            "let s = account(\"dc-a\").storage;\ns.create_container(\"uploads\");\ns.upload(\"uploads\", \"/nonexistent/clip.mp4\");\n",
        )
        .output()
        .failure()
        .stderr_has("upload.rhai:3:3: upload: local file /nonexistent/clip.mp4");
    assert!(env
        .storage("dca")
        .blobs("uploads")
        .await
        .unwrap()
        .is_empty());

    // Wrong key.
    let wrong = p.join("wrong.toml");
    let bad_key = p.join("bad.key");
    std::fs::write(&bad_key, amsplay::azurite::generate_key()).unwrap();
    std::fs::write(
        &wrong,
        format!(
            "[accounts.dc-a]\nstorage_account = \"dca\"\nblob_endpoint = \"{}\"\nkey_file = \"{}\"\n",
            env.azurite.endpoint("dca"),
            bad_key.display()
        ),
    )
    .unwrap();
    amsplay()
        .accounts(&wrong)
        .script(
            p,
            "wrongkey.rhai",
            "account(\"dc-a\").storage.create_container(\"never\");\n",
        )
        .output()
        .failure()
        .stderr_has("wrongkey.rhai:1:25: storage account 'dca' refused the credentials")
        .stderr_has("hint: check the account key");

    // A key variable that is not set.
    let unset = p.join("unset.toml");
    std::fs::write(
        &unset,
        "[accounts.dc-a]\nstorage_account = \"dca\"\nkey_env = \"AMSPLAY_TEST_UNSET_KEY\"\n",
    )
    .unwrap();
    amsplay()
        .accounts(&unset)
        .script(p, "unset.rhai", "account(\"dc-a\");\n")
        .output()
        .failure()
        .stderr_has("$AMSPLAY_TEST_UNSET_KEY (key_env) is not set");

    // A missing playbook, and a thrown error with a custom message.
    amsplay()
        .accounts(&accounts)
        .args(["run", "/nonexistent/play.rhai"])
        .output()
        .failure()
        .stderr_has("cannot read playbook /nonexistent/play.rhai");
    amsplay()
        .accounts(&accounts)
        .script(
            p,
            "throw.rhai",
            "fn check(n) {\n  if n > 1 { throw `too many: ${n}`; }\n}\ncheck(3);\n",
        )
        .output()
        .failure()
        .stderr_has("throw.rhai:2:14: too many: 3 (in check())");

    assert_eq!(env.storage("dca").containers().await.unwrap(), {
        let mut after = before.clone();
        after.push("uploads".into());
        after.sort();
        after
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_catch_errors_as_maps() {
    let env = Env::start(&["dca"]).await;
    let accounts = env.accounts_file(&[("dc-a", "dca")]);
    let dir = tempfile::tempdir().unwrap();
    amsplay()
        .accounts(&accounts)
        .script(
            dir.path(),
            "catch.rhai",
            r#"
            try { account("dc-a").storage.blobs("none"); }
            catch (e) { print(`${e.kind} ${e.status}`); }
            "#,
        )
        .output()
        .success()
        .stdout_has("not_found 404");
}

mod raw_http {
    /// Asks a datacenter of `local status --json` for a token, over a plain TCP stream.
    pub fn blocking_token(dc: &serde_json::Value) -> String {
        use std::io::{Read, Write};
        let url = url::Url::parse(dc["media_token_endpoint"].as_str().unwrap()).unwrap();
        let body = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope=urn%3AWindowsAzureMediaServices",
            dc["media_account"].as_str().unwrap(),
            amsplay::ams::auth::urlencode(dc["media_key"].as_str().unwrap())
        );
        let mut s =
            std::net::TcpStream::connect((url.host_str().unwrap(), url.port().unwrap())).unwrap();
        write!(
            s,
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            url.path(),
            url.host_str().unwrap(),
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }
}

#[test]
fn local_environment_up_status_run_down() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    let run = |args: &[&str]| {
        amsplay()
            .cwd(dir.path())
            .env("AMSPLAY_LOCAL_DIR", &local)
            .args(args)
            .output()
    };
    run(&["local", "status"])
        .failure()
        .stdout_has("not running");
    run(&["local", "up"])
        .success()
        .stdout_has("local environment up");
    let status = run(&["local", "status", "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(&status.stdout()).unwrap();
    assert_eq!(v["datacenters"][0]["name"], "dc-a");
    assert_eq!(v["datacenters"][1]["storage_account"], "dcb");
    let pid = v["azurite_pid"].as_u64().unwrap() as u32;
    assert!(v["datacenters"][0]["connection_string"]
        .as_str()
        .unwrap()
        .contains("AccountKey="));
    // Each datacenter's Media Services emulator answers its token endpoint.
    for dc in v["datacenters"].as_array().unwrap() {
        let r = raw_http::blocking_token(dc);
        assert!(r.contains("access_token"), "{r}");
    }

    // `run` without an accounts file uses the running environment, and leaves it running.
    std::fs::write(
        dir.path().join("p.rhai"),
        "let a = account(\"dc-a\"); a.storage.create_container(\"kept\"); print(account(\"dc-b\").storage.name);",
    )
    .unwrap();
    amsplay()
        .cwd(dir.path())
        .env("AMSPLAY_LOCAL_DIR", &local)
        .args(["run", "p.rhai"])
        .output()
        .success()
        .stdout_has("dcb");
    assert!(amsplay::azurite::alive(pid));

    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(local.join("state.json")).unwrap()).unwrap();
    let media_pids: Vec<u32> = state["media"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["pid"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(media_pids.len(), 2);
    run(&["local", "down"]).success().stdout_has("stopped");
    assert!(!amsplay::azurite::alive(pid));
    for p in media_pids {
        assert!(!amsplay::azurite::alive(p), "emulator {p} stopped");
    }

    // With nothing running, `run` starts the environment for itself (same data) and stops it.
    std::fs::write(
        dir.path().join("q.rhai"),
        "print(account(\"dc-a\").storage.containers()); print(account(\"dc-a\").storage.endpoint);",
    )
    .unwrap();
    let out = amsplay()
        .cwd(dir.path())
        .env("AMSPLAY_LOCAL_DIR", &local)
        .args(["run", "q.rhai"])
        .output()
        .success()
        .stdout_has("[\"kept\"]");
    let endpoint = out.stdout().lines().last().unwrap().to_string();
    let port: u16 = endpoint
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the command's own Azurite is stopped when it ends"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repl_evaluates_keeps_state_and_explains_functions() {
    let env = Env::start(&["dca"]).await;
    let accounts = env.accounts_file(&[("dc-a", "dca")]);
    let dir = tempfile::tempdir().unwrap();
    let out = amsplay()
        .accounts(&accounts)
        .env("AMSPLAY_HISTORY", dir.path().join("history"))
        .args(["repl"])
        .stdin("help(\"copy_blobs\")\nlet x = 40 + 2;\nfn double(n) { n * 2 }\ndouble(x)\nlet broken = ;\naccount(\"dc-a\").storage.name\n")
        .output()
        .success();
    let stdout = out.stdout();
    assert!(
        stdout.contains("copy_blobs(src: Storage, src_container: String"),
        "{stdout}"
    );
    assert!(stdout.contains("Example: let r = copy_blobs("), "{stdout}");
    assert!(
        stdout.contains("=> 84"),
        "state and functions persist between inputs: {stdout}"
    );
    assert!(stdout.contains("=> \"dca\""), "{stdout}");
    assert!(
        out.stderr().contains("<repl>:1:14: Unexpected ';'"),
        "{}",
        out.stderr()
    );
}

fn state(local: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(local.join("state.json")).unwrap()).unwrap()
}

fn pid_alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// `amsplay run` while one emulator of a running environment is dead starts that emulator
/// again and leaves the rest, and the environment, running after it.
#[test]
fn a_run_revives_a_dead_emulator_and_stops_nothing() {
    let env = crate::harness::LocalUp::start();
    let local = env.dir.path().join("local");
    let before = state(&local);
    let dead = before["media"][1]["pid"].as_u64().unwrap();
    std::process::Command::new("kill")
        .args(["-KILL", &dead.to_string()])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pid_alive(dead) {
        assert!(
            std::time::Instant::now() < deadline,
            "the emulator did not die"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    env.amsplay()
        .script(
            env.dir.path(),
            "hi.rhai",
            r#"print(account("dc-b").assets().len());"#,
        )
        .output()
        .success()
        .stdout_has("0");
    let after = state(&local);
    assert_eq!(after["azurite_pid"], before["azurite_pid"]);
    assert_eq!(
        after["media"][0]["pid"], before["media"][0]["pid"],
        "dc-a was left alone"
    );
    assert_eq!(after["front"]["pid"], before["front"]["pid"]);
    let revived = after["media"][1]["pid"].as_u64().unwrap();
    assert_ne!(revived, dead);
    for pid in [
        &after["azurite_pid"],
        &after["media"][0]["pid"],
        &after["media"][1]["pid"],
        &after["front"]["pid"],
    ] {
        assert!(
            pid_alive(pid.as_u64().unwrap()),
            "the environment keeps running: {after}"
        );
    }
}

/// SIGTERM (and SIGHUP) of a run that started the environment takes it down, as Ctrl-C does.
#[test]
fn sigterm_of_a_run_stops_the_environment_it_started() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    let script = dir.path().join("wait.rhai");
    std::fs::write(&script, r#"print("ready"); sleep(60.0);"#).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_amsplay"))
        .arg("run")
        .arg(&script)
        .current_dir(dir.path())
        .env("AMSPLAY_LOCAL_DIR", &local)
        .env("AMSPLAY_NO_PROGRESS", "1")
        .env_remove("AMSPLAY_ACCOUNTS")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    let s = state(&local);
    let pids: Vec<u64> = [
        &s["azurite_pid"],
        &s["media"][0]["pid"],
        &s["media"][1]["pid"],
        &s["front"]["pid"],
        &s["faults"]["pid"],
    ]
    .iter()
    .map(|p| p.as_u64().unwrap())
    .collect();
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(143),
        "the exit code a shell gives SIGTERM"
    );
    for pid in pids {
        assert!(
            !pid_alive(pid),
            "process {pid} of the environment was left running"
        );
    }
    assert!(!local.join("state.json").exists());
}

/// Logs survive restarts (appended, not truncated), so a crash's evidence is still there.
#[test]
fn logs_are_kept_across_restarts() {
    let env = crate::harness::LocalUp::start();
    env.amsplay().args(["local", "down"]).output().success();
    env.amsplay().args(["local", "up"]).output().success();
    let local = env.dir.path().join("local");
    for log in ["dc-a.log", "front.log", "azurite.log"] {
        let text = std::fs::read_to_string(local.join(log)).unwrap();
        assert!(
            text.matches("listen").count() >= 2,
            "{log} holds both runs:\n{text}"
        );
    }
}

/// `--max-operations` stops a runaway playbook with an error at the line it was running.
#[test]
fn a_runaway_playbook_stops_at_its_operations_limit() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = dir.path().join("none.toml");
    std::fs::write(&accounts, "").unwrap();
    let script = dir.path().join("loop.rhai");
    std::fs::write(&script, "let i = 0;\nloop {\n  i += 1;\n}\n").unwrap();
    amsplay()
        .accounts(&accounts)
        .args([
            "run".as_ref(),
            "--max-operations".as_ref(),
            "10000".as_ref(),
            script.as_os_str(),
        ])
        .output()
        .failure()
        .stderr_has("loop.rhai:3:")
        .stderr_has("Too many operations");
}

/// `--max-memory` ends a playbook whose data keeps growing: at the line that grew it while
/// Rhai can tell, and with one clear line (exit 71, no abort) when an allocation fails anyway.
#[test]
fn a_playbook_that_outgrows_its_memory_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = dir.path().join("none.toml");
    std::fs::write(&accounts, "").unwrap();
    let run = |name: &str, source: &str| {
        let script = dir.path().join(name);
        std::fs::write(&script, source).unwrap();
        amsplay().accounts(&accounts).args([
            "run".as_ref(),
            "--max-memory".as_ref(),
            "64".as_ref(),
            script.as_os_str(),
        ])
    };
    run("grow.rhai", "let s = \"x\";\nloop {\n    s += s;\n}\n")
        .output()
        .failure()
        .stderr_has("grow.rhai:3:")
        .stderr_has("--max-memory");
    // Each string within Rhai's limit, together past the process's.
    let mut many = String::from("let s = \"\";\ns.pad(8000000, \"x\");\n");
    for i in 0..12 {
        many += &format!("let v{i} = s + \"{i}\";\n");
    }
    many += "print(\"all held\");\n";
    let out = run("many.rhai", &many).output();
    assert_eq!(out.0.status.code(), Some(71), "{}", out.stderr());
    assert!(!out.stdout().contains("all held"));
    out.stderr_has("out of memory")
        .stderr_has("under --max-memory 64 MiB");
}

/// A signal stops a playbook through the one bridge into async code, wherever it is: inside a
/// host call (no `catch` holds it back) or in a loop that never calls the host. The run then
/// leaves with the signal's exit code and says where it stopped.
#[test]
fn a_signal_stops_the_playbook_where_it_is_and_no_catch_holds_it() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let accounts = dir.path().join("none.toml");
    std::fs::write(&accounts, "").unwrap();
    for (name, source, signal, code) in [
        (
            "wait.rhai",
            "print(\"ready\");\ntry { sleep(60.0); } catch (e) { print(\"caught\"); }\nprint(\"after\");\n",
            "-TERM",
            143,
        ),
        (
            "spin.rhai",
            "print(\"ready\");\nlet i = 0;\nloop { i += 1; }\n",
            "-INT",
            130,
        ),
    ] {
        let script = dir.path().join(name);
        std::fs::write(&script, source).unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_amsplay"))
            .arg("--accounts")
            .arg(&accounts)
            .arg("run")
            .arg(&script)
            .env_remove("AMSPLAY_ACCOUNTS")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        std::thread::sleep(std::time::Duration::from_millis(200));
        std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        let started = std::time::Instant::now();
        let status = child.wait().unwrap();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{name} did not stop"
        );
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(code), "{name}: {err}");
        assert!(!rest.contains("caught") && !rest.contains("after"), "{rest}");
        assert!(err.contains(&format!("{name}:")) && err.contains("stopped"), "{err}");
    }
}
