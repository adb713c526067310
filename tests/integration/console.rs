//! The console's access rules over HTTP: loopback without a token, a token required off
//! loopback (and enforced when given), keys never served. (Its page is tested in Chromium in
//! `browsers.rs`.)

use std::io::BufRead;

use crate::harness::LocalUp;
use crate::origin::send;

/// `amsplay console` with `args` over the local environment; its URL and the process.
fn console(env: &LocalUp, args: &[&str]) -> (String, std::process::Child) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_amsplay"))
        .arg("console")
        .args(args)
        .current_dir(env.dir.path())
        .env("AMSPLAY_LOCAL_DIR", env.dir.path().join("local"))
        .env_remove("AMSPLAY_CONSOLE_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    // Keep reading what it prints after (a closed pipe would end it at its next line).
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("the console did not start: {line:?}"))
        .to_string();
    (url, child)
}

#[test]
fn the_console_needs_a_token_off_loopback_enforces_one_and_never_serves_keys() {
    let env = LocalUp::start();
    // Off loopback without a token: refused, saying how.
    let out = env
        .amsplay()
        .env("AMSPLAY_CONSOLE_TOKEN", "")
        .args(["console", "--listen", "0.0.0.0:0"])
        .output()
        .failure();
    assert!(out.stderr().contains("--token"), "{}", out.stderr());

    // The console `local up` started: loopback, open; its overview holds no key.
    let v = env.status();
    let open = v["console"].as_str().unwrap();
    let (status, _, body) = send("GET", &format!("{open}/api/overview"), "");
    assert_eq!(status, 200);
    let body = String::from_utf8(body).unwrap();
    assert!(
        body.contains("\"dc-a\"") && body.contains("\"dc-b\""),
        "{body}"
    );
    for dc in v["datacenters"].as_array().unwrap() {
        for key in ["account_key", "media_key"] {
            let k = dc[key].as_str().unwrap();
            assert!(!body.contains(k), "the overview shows {key}");
        }
    }

    // With a token: nothing without it; a bearer or the cookie ?token= sets lets in.
    let (url, mut child) = console(&env, &["--token", "s3cret-token"]);
    for path in ["/", "/api/overview", "/api/events", "/lib/hls.min.js"] {
        let (status, _, _) = send("GET", &format!("{url}{path}"), "");
        assert_eq!(status, 401, "{path}");
    }
    let (status, _, _) = send(
        "GET",
        &format!("{url}/api/overview"),
        "Authorization: Bearer wrong\r\n",
    );
    assert_eq!(status, 401);
    let (status, _, _) = send(
        "GET",
        &format!("{url}/api/overview"),
        "Authorization: Bearer s3cret-token\r\n",
    );
    assert_eq!(status, 200);
    let (status, head, page) = send("GET", &format!("{url}/?token=s3cret-token"), "");
    assert_eq!(status, 200, "{head}");
    assert!(String::from_utf8_lossy(&page).contains("amsplay console"));
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("a cookie");
    let (status, _, _) = send(
        "GET",
        &format!("{url}/api/overview"),
        &format!("Cookie: {cookie}\r\n"),
    );
    assert_eq!(status, 200);
    // A fault from the page goes to the environment's fault points; a bad one says what is known.
    // (`send` ends the request with CRLF: the body's last two bytes, JSON whitespace.)
    let (status, _, body) = send(
        "POST",
        &format!("{url}/api/fault"),
        "Authorization: Bearer s3cret-token\r\nContent-Type: application/json\r\nContent-Length: 43\r\n\r\n{\"datacenter\":\"dc-b\",\"action\":\"sideways\"}",
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("known: stop, hang, storage, heal"));
    let _ = child.kill();
    let _ = child.wait();
}
