//! A hostile or careless client against the real emulator: every finding of the hardening
//! issue that a request can reach, each answered without harm.

use serde_json::json;

use crate::emulator::{enc, Raw};
use crate::harness::Media;

/// PUTs `data` as a blob whose name is exactly `name` (percent-encoded into one path segment,
/// so `..` and `/` reach the storage as they are), through a write SAS.
async fn put_blob_named(m: &Media, container: &str, name: &str, data: Vec<u8>) {
    let perms = "rwl".parse().unwrap();
    let expiry = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let sas = m
        .env
        .storage("dca")
        .container_sas_url(container, perms, None, expiry)
        .await
        .unwrap();
    let segment: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
    let url = format!(
        "{}/{}?{}",
        sas.as_str().split('?').next().unwrap(),
        segment.replace('+', "%20"),
        sas.query().unwrap()
    );
    let r = reqwest::Client::new()
        .put(url)
        .header("x-ms-blob-type", "BlockBlob")
        .body(data)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

/// A job encoding asset `aid` with one task whose output is `JobOutputAsset(output)`.
fn encode_job(m: &Media, aid: &str, output: &str) -> serde_json::Value {
    json!({
        "Name": "hostile job",
        "InputMediaAssets": [{"__metadata": {"uri": m.url(&format!("/api/Assets('{}')", enc(aid)))}}],
        "Tasks": [{
            "Configuration": "Adaptive Streaming",
            "MediaProcessorId": "nb:mpid:UUID:ff4df607-d419-42f0-bc17-a481b1331e56",
            "TaskBody": format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><taskBody><inputAsset>JobInputAsset(0)</inputAsset><outputAsset assetCreationOptions=\"0\" assetName=\"out\">JobOutputAsset({output})</outputAsset></taskBody>")
        }]
    })
}

/// A blob named like a path, registered and encoded, never writes outside the data folder:
/// CreateFileInfos skips (and names) it, File names that are paths are refused, and the
/// encoder names its input itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_names_that_are_paths_never_reach_the_disk() {
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let dir = tempfile::tempdir().unwrap();
    let clip = crate::encoding::sample(dir.path(), "clip.mp4", 320, 180, 2);
    let aid = raw.create("/api/Assets", r#"{"Name":"hostile"}"#).await;
    let container = amsplay::ams::model::asset_container(&aid);
    let escape = format!("escape-{}.mp4", uuid::Uuid::new_v4());
    let evil = format!("../../../../{escape}");
    put_blob_named(&m, &container, &evil, std::fs::read(&clip).unwrap()).await;

    // CreateFileInfos skips the blob and says so.
    let (status, headers, _) = raw
        .send(
            "GET",
            &format!("/api/CreateFileInfos?assetid='{}'", enc(&aid)),
            None,
            false,
        )
        .await;
    assert_eq!(status, 204);
    let skipped = headers["x-amsplay-skipped-blobs"].to_str().unwrap();
    assert!(skipped.contains(&escape), "{skipped}");
    let files = raw
        .ok("GET", &format!("/api/Assets('{}')/Files", enc(&aid)), None)
        .await;
    assert_eq!(files["value"].as_array().unwrap().len(), 0, "{files}");

    // A File whose Name is a path is refused, on POST and on MERGE.
    for name in [
        evil.as_str(),
        "..",
        "a\\b.mp4",
        "sub/clip.mp4",
        &"x".repeat(261),
    ] {
        let body = json!({"Name": name, "ParentAssetId": aid}).to_string();
        let (status, _, v) = raw.send("POST", "/api/Files", Some(&body), false).await;
        assert_eq!(status, 400, "{name:?} was accepted: {v}");
        assert!(
            v.to_string().contains("Name"),
            "the error names the field: {v}"
        );
    }
    let ok = json!({"Name": "clip.mp4", "ParentAssetId": aid}).to_string();
    let fid = raw.create("/api/Files", &ok).await;
    let merge = json!({"Name": evil}).to_string();
    let (status, _, _) = raw
        .send(
            "MERGE",
            &format!("/api/Files('{}')", enc(&fid)),
            Some(&merge),
            false,
        )
        .await;
    assert_eq!(status, 400);
    raw.ok("DELETE", &format!("/api/Files('{}')", enc(&fid)), None)
        .await;

    // Encoding an asset whose only blob has that name: the encoder never uses it (it names its
    // input itself, and ignores blobs that cannot be files); nothing appears outside the data
    // folder.
    let jid = raw
        .create("/api/Jobs", &encode_job(&m, &aid, "0").to_string())
        .await;
    let (state, tasks) = raw.job_end(&jid).await;
    assert_eq!(state, 4, "no usable input: the job ends in error: {tasks}");
    assert!(
        tasks.contains("cannot be file names"),
        "the error says why: {tasks}"
    );
    for ancestor in m.data.path().ancestors() {
        assert!(
            !ancestor.join(&escape).exists(),
            "{} was written outside the data folder",
            ancestor.join(&escape).display()
        );
    }
}

/// A state file whose PIDs now belong to other processes (PIDs wrap within minutes): `local
/// down`, `status` and `up` never signal them; the stale entries are dropped.
#[test]
fn stale_pids_in_the_state_file_are_never_signalled() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let mut bystander = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let pid = bystander.id();
    // What an earlier environment left: its processes' PIDs, now the bystander's, with the
    // start times they had then (and an entry from before start times were recorded).
    let state = json!({
        "azurite_pid": pid, "azurite_start": 1, "blob_port": 1, "started": "2026-01-01T00:00:00Z",
        "media": [{"datacenter": "dc-a", "pid": pid, "start": 2, "port": 1},
                  {"datacenter": "dc-b", "pid": pid, "port": 1}],
        "front": {"datacenter": "front", "pid": pid, "start": 3, "port": 1},
        "faults": {"pid": pid, "start": 4, "port": 1, "points": []}
    });
    std::fs::write(local.join("state.json"), state.to_string()).unwrap();
    let amsplay = || {
        crate::harness::amsplay()
            .cwd(dir.path())
            .env("AMSPLAY_LOCAL_DIR", &local)
    };
    amsplay().args(["local", "status"]).output();
    amsplay().args(["local", "down"]).output();
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "local down signalled a process it did not start"
    );
    assert!(
        !local.join("state.json").exists(),
        "the stale state is dropped"
    );
    let _ = bystander.kill();
    let _ = bystander.wait();
}

/// PUTs a small blob through a container SAS URL; the status.
async fn put_through(sas: &str, blob: &str) -> u16 {
    let (base, query) = sas.split_once('?').unwrap();
    reqwest::Client::new()
        .put(format!("{base}/{blob}?{query}"))
        .header("x-ms-blob-type", "BlockBlob")
        .body("written through a SAS")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A SAS locator is a stored access policy on the container: deleting the locator revokes
/// its URL at once (tested against Azurite), and the deleted URL is not left in the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_sas_locator_revokes_its_url_at_once() {
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let aid = raw.create("/api/Assets", r#"{"Name":"revocable"}"#).await;
    let pid = raw
        .create(
            "/api/AccessPolicies",
            r#"{"Name":"write","DurationInMinutes":43200,"Permissions":2}"#,
        )
        .await;
    let body = json!({"AccessPolicyId": pid, "AssetId": aid, "Type": 1}).to_string();
    let make = || async { raw.ok("POST", "/api/Locators", Some(&body)).await };
    let (first, second) = (make().await, make().await);
    let (url1, url2) = (
        first["Path"].as_str().unwrap().to_string(),
        second["Path"].as_str().unwrap().to_string(),
    );
    assert!(
        url1.contains("si="),
        "the SAS names a stored policy: {url1}"
    );
    assert!(
        !url1.contains("se="),
        "its lifetime is the policy's: {url1}"
    );
    assert_eq!(put_through(&url1, "a.txt").await, 201);
    assert_eq!(put_through(&url2, "b.txt").await, 201);

    let lid = first["Id"].as_str().unwrap();
    raw.ok("DELETE", &format!("/api/Locators('{}')", enc(lid)), None)
        .await;
    assert_eq!(
        put_through(&url1, "c.txt").await,
        403,
        "a deleted locator's URL is revoked at once"
    );
    assert_eq!(
        put_through(&url2, "d.txt").await,
        201,
        "the asset's other locator still works"
    );
    // An access policy a locator still uses cannot go (the locator would dangle).
    let (status, _, v) = raw
        .send(
            "DELETE",
            &format!("/api/AccessPolicies('{}')", enc(&pid)),
            None,
            false,
        )
        .await;
    assert_eq!(status, 409, "{v}");

    // At most five locators per asset, as a container holds at most five policies; each of
    // the five works.
    let pid = raw
        .create(
            "/api/AccessPolicies",
            r#"{"Name":"write","DurationInMinutes":60,"Permissions":2}"#,
        )
        .await;
    let body = json!({"AccessPolicyId": pid, "AssetId": aid, "Type": 1}).to_string();
    for i in 0..4 {
        let l = raw.ok("POST", "/api/Locators", Some(&body)).await;
        let url = l["Path"].as_str().unwrap();
        assert_eq!(put_through(url, &format!("more{i}.txt")).await, 201);
    }
    assert_eq!(put_through(&url2, "f.txt").await, 201);
    let (status, _, _) = raw.send("POST", "/api/Locators", Some(&body), false).await;
    assert_eq!(status, 400, "a sixth locator is refused");

    // Nothing deleted stays readable on disk, and the database is the user's alone.
    let sig = url1.split("sig=").nth(1).unwrap();
    for file in ["media.sqlite", "media.sqlite-wal"] {
        let path = m.data.path().join(file);
        if let Ok(bytes) = std::fs::read(&path) {
            assert!(
                !String::from_utf8_lossy(&bytes).contains(sig),
                "{file} still holds the deleted locator's URL"
            );
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&m.data.path().join("media.sqlite")), 0o600);
    assert_eq!(mode(m.data.path()), 0o700);
}

/// Raw bytes of a request, and the status line's code (None if the connection was dropped
/// without an answer).
async fn raw_request(port: u16, request: &[u8]) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(request).await.unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    String::from_utf8_lossy(&raw)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
}

/// A path that is not ASCII where the API's prefix would be is an ordinary 404, not a
/// dropped connection; the emulator answers the next request as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_with_utf8_anywhere_are_answered() {
    let m = Media::start(&[]).await;
    for path in [
        &b"/aa\xc3\xa9/x"[..],
        b"/\xc3\xa9",
        b"/ap\xc3\xa9",
        b"/api\xc3\xa9/Assets",
    ] {
        let mut req = b"GET ".to_vec();
        req.extend_from_slice(path);
        req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let status = raw_request(m.port, &req).await;
        assert!(
            matches!(status, Some(400..=499)),
            "{} got {status:?}",
            String::from_utf8_lossy(path)
        );
    }
    let status = raw_request(
        m.port,
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(status.is_some(), "the emulator still answers");
}

/// Numbers and dates that cannot be stored or computed with are a 400 naming the field, never
/// a panic, a wrapped value or a record that breaks later reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_numbers_and_dates_are_refused_by_name() {
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let refused = |path: &'static str, body: String, field: &'static str| {
        let raw = &raw;
        async move {
            let (status, _, v) = raw.send("POST", path, Some(&body), false).await;
            assert_eq!(status, 400, "{path} {body}: {v}");
            assert!(
                v.to_string().contains(field),
                "the error names {field}: {v}"
            );
        }
    };
    for d in [r#""inf""#, r#""NaN""#, "1e15", r#""-Infinity""#, "0"] {
        let body = format!(r#"{{"Name":"p","DurationInMinutes":{d},"Permissions":1}}"#);
        refused("/api/AccessPolicies", body, "DurationInMinutes").await;
    }
    let body = r#"{"Name":"p","DurationInMinutes":60,"Permissions":4294967297}"#.to_string();
    refused("/api/AccessPolicies", body, "Permissions").await;
    let body = r#"{"Name":"a","Options":4294967297}"#.to_string();
    refused("/api/Assets", body, "Options").await;
    let aid = raw.create("/api/Assets", r#"{"Name":"dates"}"#).await;
    let pid = raw
        .create(
            "/api/AccessPolicies",
            r#"{"Name":"r","DurationInMinutes":60,"Permissions":1}"#,
        )
        .await;
    let locator =
        |extra: &str| format!(r#"{{"AccessPolicyId":"{pid}","AssetId":"{aid}",{extra}}}"#);
    refused("/api/Locators", locator(r#""Type":4294967298"#), "Type").await;
    for start in [
        "9999-12-31T23:59:59Z",
        "/Date(253402300799000)/",
        "-0001-01-01T00:00:00Z",
    ] {
        let body = locator(&format!(r#""Type":2,"StartTime":"{start}""#));
        refused("/api/Locators", body, "StartTime").await;
    }
    // Nothing half-stored broke the listing.
    let all = raw.ok("GET", "/api/AccessPolicies", None).await;
    assert_eq!(all["value"].as_array().unwrap().len(), 1, "{all}");
    raw.ok("GET", "/api/Locators", None).await;
}

/// One job request cannot create assets by the thousand: the whole job is checked first
/// (one output asset per task at most) and nothing is created when it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cannot_create_assets_by_the_thousand() {
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let aid = raw.create("/api/Assets", r#"{"Name":"input"}"#).await;
    let before = raw.ok("GET", "/api/Assets", None).await["value"]
        .as_array()
        .unwrap()
        .len();
    for n in ["300", "4000000000", "1"] {
        let body = encode_job(&m, &aid, n);
        let (status, _, v) = raw
            .send("POST", "/api/Jobs", Some(&body.to_string()), false)
            .await;
        assert_eq!(status, 400, "JobOutputAsset({n}): {v}");
        assert!(v.to_string().contains("JobOutputAsset"), "{v}");
    }
    let after = raw.ok("GET", "/api/Assets", None).await["value"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(after, before, "a refused job creates nothing");
}

/// The bearer scheme is matched in any case; tokens are issued only at the documented routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_in_any_case_and_tokens_only_where_documented() {
    let m = Media::start(&[]).await;
    let token = m.token().await;
    let http = reqwest::Client::new();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = http
            .get(m.url("/api/Assets"))
            .header("Authorization", format!("{scheme} {token}"))
            .header("x-ms-version", "2.19")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", m.account.as_str()),
        ("client_secret", m.key.as_str()),
        ("resource", "https://rest.media.azure.net"),
    ];
    for (path, issued) in [
        ("/contoso.onmicrosoft.com/oauth2/token", true),
        ("/api/Assets/oauth2/token", false),
        ("/a/b/oauth2/token", false),
        ("/oauth2/token", false),
    ] {
        let r = http.post(m.url(path)).form(&form).send().await.unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(
            body.contains("access_token"),
            issued,
            "{path}: {status} {body}"
        );
    }
}

/// String fields have the v2 service's limits: a 15 MiB asset Name is refused, not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_fields_have_the_services_limits() {
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let containers = m.env.storage("dca").containers().await.unwrap().len();
    for (field, len) in [("Name", 513), ("Name", 15 << 20), ("AlternateId", 4001)] {
        let body = json!({ field: "x".repeat(len) }).to_string();
        let (status, _, v) = raw.send("POST", "/api/Assets", Some(&body), false).await;
        assert_eq!(status, 400, "{field} of {len}");
        assert!(v.to_string().contains(field), "{v}");
    }
    assert_eq!(
        m.env.storage("dca").containers().await.unwrap().len(),
        containers,
        "a refused asset leaves no container behind"
    );
    let ok = json!({"Name": "x".repeat(512), "AlternateId": "y".repeat(4000)}).to_string();
    raw.ok("POST", "/api/Assets", Some(&ok)).await;
}

/// An update that would change a read-only field is a 400 naming it, not a silent 204;
/// sending the whole entity back with a new Name (as the SDK does) still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_fields_are_refused_by_name() {
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let aid = raw.create("/api/Assets", r#"{"Name":"before"}"#).await;
    let url = format!("/api/Assets('{}')", enc(&aid));
    let mut whole = raw.ok("GET", &url, None).await;
    whole["Name"] = json!("after");
    let (status, _, v) = raw
        .send("MERGE", &url, Some(&whole.to_string()), false)
        .await;
    assert_eq!(status, 204, "{v}");
    assert_eq!(raw.ok("GET", &url, None).await["Name"], "after");
    for (field, value) in [
        ("Created", json!("2001-01-01T00:00:00Z")),
        ("State", json!(2)),
        (
            "Id",
            json!("nb:cid:UUID:00000000-0000-0000-0000-000000000000"),
        ),
    ] {
        let body = json!({ field: value }).to_string();
        let (status, _, v) = raw.send("MERGE", &url, Some(&body), false).await;
        assert_eq!(status, 400, "{field}: {v}");
        assert!(v.to_string().contains(field), "{v}");
    }
}

/// The Host header is never reflected: redirects, Location headers and OData metadata name
/// the server's own URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_header_is_never_reflected() {
    let m = Media::start(&[]).await;
    let token = m.token().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .get(m.url("/"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 301);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&m.url("/api/")), "{location}");
    let r = http
        .post(m.url("/api/Assets"))
        .header("host", "evil.example")
        .header("authorization", format!("Bearer {token}"))
        .header("x-ms-version", "2.19")
        .header("accept", "application/json;odata=verbose")
        .header("content-type", "application/json;odata=verbose")
        .body(r#"{"Name":"h"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let body = r.text().await.unwrap();
    for text in [&location, &body] {
        assert!(!text.contains("evil.example"), "{text}");
    }
    assert!(body.contains(&m.url("/api/")), "{body}");
}

/// With storage dead, copy_blobs gives up within seconds and names the account that does
/// not answer (it took about two minutes of retries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_from_a_dead_account_fails_fast_and_names_it() {
    let mut env = crate::harness::Env::start(&["dca", "dcb"]).await;
    let (a, b) = (env.storage("dca"), env.storage("dcb"));
    a.create_container("src").await.unwrap();
    env.azurite.kill();
    let began = std::time::Instant::now();
    let err = amsplay::storage::copy_blobs(&a, "src", &b, "dst", &Default::default())
        .await
        .unwrap_err();
    assert!(
        began.elapsed() < std::time::Duration::from_secs(10),
        "gave up only after {:?}",
        began.elapsed()
    );
    let text = err.to_string();
    assert!(
        text.contains("'dca'") && text.contains("cannot be reached"),
        "{text}"
    );
}

/// A job whose input cannot be read from storage ends in error naming storage, not ffmpeg.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_failure_of_a_job_is_named_as_such() {
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let aid = raw.create("/api/Assets", r#"{"Name":"hollow"}"#).await;
    // A File record whose blob was never uploaded.
    let file = json!({"Name": "missing.mp4", "ParentAssetId": aid, "IsPrimary": true}).to_string();
    raw.create("/api/Files", &file).await;
    let jid = raw
        .create("/api/Jobs", &encode_job(&m, &aid, "0").to_string())
        .await;
    let (state, tasks) = raw.job_end(&jid).await;
    assert_eq!(state, 4, "{tasks}");
    assert!(tasks.contains("storage"), "{tasks}");
    assert!(!tasks.contains("ffmpeg failed"), "mislabelled: {tasks}");
}

/// Fills the emulator's data folder (a small tmpfs) until the disk says no more.
fn fill_disk(m: &Media) -> std::path::PathBuf {
    use std::io::Write;
    let filler = m.data_path().join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 16 << 10];
    loop {
        match f.write_all(&chunk).and_then(|_| f.sync_all()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return filler,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
}

/// A full disk (a real one: the data folder is a tmpfs that fills up): requests that would
/// write are refused with 507 naming the disk and leave no container behind; a job whose input
/// does not fit says the local disk is full (not "ffmpeg failed") and leaves no output blobs;
/// once space is back all works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_named_and_leaves_nothing_half_made() {
    let m = Media::start_on_small_disk(4096).await;
    let raw = Raw::new(&m).await;
    let storage = m.env.storage("dca");
    let dir = tempfile::tempdir().unwrap();
    let clip = std::fs::read(crate::encoding::sample(dir.path(), "clip.mp4", 640, 360, 6)).unwrap();
    assert!(
        clip.len() > 1 << 20,
        "the clip outgrows the space left below"
    );
    let aid = raw.create("/api/Assets", r#"{"Name":"mezzanine"}"#).await;
    let container = amsplay::ams::model::asset_container(&aid);
    put_blob_named(&m, &container, "clip.mp4", clip).await;
    raw.ok(
        "GET",
        &format!("/api/CreateFileInfos?assetid='{}'", enc(&aid)),
        None,
    )
    .await;
    let containers = storage.containers().await.unwrap().len();

    // Nothing fits: writes are refused by name, and leave nothing in storage.
    let filler = fill_disk(&m);
    let job = encode_job(&m, &aid, "0").to_string();
    for (path, body) in [
        ("/api/Assets", r#"{"Name":"later"}"#),
        ("/api/Jobs", job.as_str()),
    ] {
        let (status, _, v) = raw.send("POST", path, Some(body), false).await;
        assert_eq!(status, 507, "POST {path}: {v}");
        assert!(v.to_string().contains("disk is full"), "{v}");
        assert_eq!(
            storage.containers().await.unwrap().len(),
            containers,
            "POST {path} left a container behind"
        );
    }

    // Room for the records, not for the input.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(512 << 10)).unwrap();
    drop(f);
    let jid = raw.create("/api/Jobs", &job).await;
    let (state, tasks) = raw.job_end(&jid).await;
    assert_eq!(state, 4, "{tasks}");
    assert!(
        tasks.contains("disk is full"),
        "the cause is named: {tasks}"
    );
    assert!(!tasks.contains("ffmpeg failed"), "mislabelled: {tasks}");
    let outputs = raw
        .ok(
            "GET",
            &format!("/api/Jobs('{}')/OutputMediaAssets", enc(&jid)),
            None,
        )
        .await;
    for out in outputs["value"].as_array().unwrap() {
        let c = amsplay::ams::model::asset_container(out["Id"].as_str().unwrap());
        assert!(
            storage.blobs(&c).await.unwrap_or_default().is_empty(),
            "a failed job leaves no blobs in its output"
        );
    }

    std::fs::remove_file(filler).unwrap();
    raw.create("/api/Assets", r#"{"Name":"after"}"#).await;
}

/// The origin's fragment cache: one entry per fragment whatever the spelling of its time
/// (`video=0`, `video=000`), and what it holds (the allocations, not just the lengths) stays
/// within `--origin-cache-mb`, reported by `/health` so an operator sees it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_cache_holds_one_entry_per_fragment_within_its_budget() {
    let budget = 1u64 << 20;
    let m = Media::start(&["--origin-cache-mb", "1"]).await;
    let raw = Raw::new(&m).await;
    let dir = tempfile::tempdir().unwrap();
    let clip = std::fs::read(crate::encoding::sample(dir.path(), "clip.mp4", 640, 360, 6)).unwrap();
    let aid = raw.create("/api/Assets", r#"{"Name":"mezzanine"}"#).await;
    put_blob_named(
        &m,
        &amsplay::ams::model::asset_container(&aid),
        "clip.mp4",
        clip,
    )
    .await;
    raw.ok(
        "GET",
        &format!("/api/CreateFileInfos?assetid='{}'", enc(&aid)),
        None,
    )
    .await;
    let jid = raw
        .create("/api/Jobs", &encode_job(&m, &aid, "0").to_string())
        .await;
    let (state, tasks) = raw.job_end(&jid).await;
    assert_eq!(state, 3, "{tasks}");
    let out = raw
        .ok(
            "GET",
            &format!("/api/Jobs('{}')/OutputMediaAssets", enc(&jid)),
            None,
        )
        .await;
    let out = out["value"][0]["Id"].as_str().unwrap().to_string();
    let policy = raw
        .create(
            "/api/AccessPolicies",
            r#"{"Name":"read","DurationInMinutes":60,"Permissions":1}"#,
        )
        .await;
    let locator = raw
        .ok(
            "POST",
            "/api/Locators",
            Some(&json!({"AccessPolicyId": policy, "AssetId": out, "Type": 2}).to_string()),
        )
        .await;
    let base = format!("{}clip.ism", locator["Path"].as_str().unwrap());
    let stats = || async {
        let (status, body) = crate::origin::get(&m.url("/health"));
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["cache"].clone()
    };

    // A crowd of first requests (players failing over to a cold origin) indexes the
    // presentation once, not once each.
    let crowd: Vec<_> = (0..8)
        .map(|i| {
            let url = format!("{base}/QualityLevels(128000)/Fragments(audio={i}0000000)");
            std::thread::spawn(move || crate::origin::get(&url).0)
        })
        .collect();
    for c in crowd {
        let status = c.join().unwrap();
        assert!(status == 200 || status == 404, "{status}");
    }
    assert_eq!(stats().await["indexings"], 1, "indexed once");

    // One fragment, its time spelled three ways: packaged once.
    let first = format!("{base}/QualityLevels(128000)/Fragments(audio=0,format=mpd-time-csf)");
    let (s, body) = crate::origin::get(&first);
    assert_eq!(s, 200);
    let before = stats().await;
    for spelling in ["00", "000"] {
        let (s, again) =
            crate::origin::get(&first.replace("audio=0", &format!("audio={spelling}")));
        assert_eq!((s, again.len()), (200, body.len()), "audio={spelling}");
    }
    let after = stats().await;
    assert_eq!(after["misses"], before["misses"], "{before} then {after}");
    assert_eq!(
        after["hits"].as_u64().unwrap(),
        before["hits"].as_u64().unwrap() + 2,
        "{before} then {after}"
    );

    // Every segment of every rendition (more than the budget): what is held stays within it.
    let (s, master) = crate::origin::get(&format!("{base}/manifest(format=m3u8-aapl)"));
    assert_eq!(s, 200);
    let master = String::from_utf8(master).unwrap();
    let mut fetched = 0usize;
    for playlist in master
        .lines()
        .filter_map(|l| l.split("URI=\"").nth(1).map(|u| u.trim_end_matches('"')))
        .chain(
            master
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty()),
        )
    {
        let (s, text) = crate::origin::get(&format!("{base}/{playlist}"));
        assert_eq!(s, 200, "{playlist}");
        let text = String::from_utf8(text).unwrap();
        let dir = playlist.rsplit_once('/').unwrap().0;
        let uris = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty());
        let init = text
            .lines()
            .filter_map(|l| l.split("URI=\"").nth(1).map(|u| u.trim_end_matches('"')));
        for segment in uris.chain(init) {
            let (s, body) = crate::origin::get(&format!("{base}/{dir}/{segment}"));
            assert_eq!(s, 200, "{segment}");
            fetched += body.len();
        }
    }
    let cache = stats().await;
    assert!(
        fetched as u64 > budget,
        "the clip must outgrow the budget: {fetched} bytes, {cache}"
    );
    assert_eq!(cache["budget"].as_u64(), Some(budget), "{cache}");
    let held = cache["held"].as_u64().unwrap();
    assert!(
        held > 0 && held <= budget,
        "{fetched} bytes fetched, {cache}"
    );
    assert!(cache["evictions"].as_u64().unwrap() > 0, "{cache}");
    // The presentation's index is kept (a quarter of the budget is theirs), not read per request.
    assert_eq!(cache["presentations"], 1, "{cache}");
}
