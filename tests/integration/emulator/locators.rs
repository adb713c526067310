//! Access policies, files and locators: their errors, SAS paths the SDK can use, and which
//! origin locators the origin serves.

use reqwest::StatusCode;
use serde_json::json;

use super::{enc, Raw};
use crate::harness::Media;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_files_locators_and_their_errors() {
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let asset = raw.ok("POST", "/api/Assets", Some(r#"{"Name":"a"}"#)).await;
    let aid = asset["Id"].as_str().unwrap().to_string();

    // AccessPolicies: numbers as strings; DurationInMinutes required.
    let (s, _, p) = raw
        .send(
            "POST",
            "/api/AccessPolicies",
            Some(r#"{"Name":"NewUploadPolicy", "DurationInMinutes":"440", "Permissions":"2"}"#),
            false,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        (p["DurationInMinutes"].as_f64(), p["Permissions"].as_i64()),
        (Some(440.0), Some(2))
    );
    let write = p["Id"].as_str().unwrap().to_string();
    assert!(raw
        .expect(
            "POST",
            "/api/AccessPolicies",
            Some(r#"{"Name":"x","Permissions":1}"#),
            400
        )
        .await
        .message()
        .contains("DurationInMinutes"));
    let read = raw
        .create(
            "/api/AccessPolicies",
            r#"{"Name":"r","DurationInMinutes":60,"Permissions":1}"#,
        )
        .await;
    assert_eq!(
        raw.ok("GET", "/api/AccessPolicies", None).await["value"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Files: ContentFileSize travels as a string.
    let f = raw.ok("POST", "/api/Files", Some(&json!({"IsEncrypted":"false","IsPrimary":"false","MimeType":"video/mp4","Name":"BigBuckBunny.mp4","ParentAssetId": aid}).to_string())).await;
    assert_eq!(f["ContentFileSize"], "0");
    let fid = f["Id"].as_str().unwrap().to_string();
    raw.expect(
        "MERGE",
        &format!("/api/Files('{}')", enc(&fid)),
        Some(r#"{"ContentFileSize":"3186542","IsPrimary":true}"#),
        204,
    )
    .await;
    let files = raw
        .ok("GET", &format!("/api/Assets('{}')/Files", enc(&aid)), None)
        .await;
    assert_eq!(files["value"][0]["ContentFileSize"], "3186542");
    assert_eq!(files["value"][0]["IsPrimary"], true);

    // Locators: an origin locator with a caller-supplied Id (upper case normalized).
    let lid = "nb:lid:UUID:AF57BDD8-6751-4E84-B403-F3C140444B54";
    let body = |policy: &str, kind: &str, id: Option<&str>| {
        let mut v = json!({"AssetId": aid, "AccessPolicyId": policy, "Type": kind, "StartTime": "11/21/2026 10:40:00 PM"});
        if let Some(id) = id {
            v["Id"] = json!(id);
        }
        v.to_string()
    };
    let (s, _, l) = raw
        .send(
            "POST",
            "/api/Locators",
            Some(&body(&read, "2", Some(lid))),
            false,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{l}");
    assert_eq!(
        l["Id"],
        lid.to_ascii_lowercase()
            .replace("nb:lid:uuid:", "nb:lid:UUID:")
    );
    assert_eq!(
        l["Path"],
        m.url("/af57bdd8-6751-4e84-b403-f3c140444b54/").as_str()
    );
    assert_eq!(
        l["ContentAccessComponent"],
        "af57bdd8-6751-4e84-b403-f3c140444b54"
    );
    assert_eq!(l["StartTime"], "2026-11-21T22:40:00.0000000Z");
    assert_eq!(l["ExpirationDateTime"], "2026-11-21T23:40:00.0000000Z");

    assert!(raw
        .expect(
            "POST",
            "/api/Locators",
            Some(&body(&read, "2", Some(lid))),
            409
        )
        .await
        .message()
        .contains("already exists"));
    assert!(raw
        .expect("POST", "/api/Locators", Some(&body(&write, "2", None)), 400)
        .await
        .message()
        .contains("read-only"));
    for _ in 0..4 {
        raw.ok("POST", "/api/Locators", Some(&body(&read, "1", None)))
            .await;
    }
    assert!(raw
        .expect("POST", "/api/Locators", Some(&body(&read, "1", None)), 400)
        .await
        .message()
        .contains("5 locators"));
    raw.expect(
        "GET",
        "/api/Locators('nb%3Alid%3AUUID%3A00000000-0000-0000-0000-000000000000')",
        None,
        404,
    )
    .await;
    assert!(raw.expect("POST", "/api/Locators", Some(&json!({"AssetId": "nb:cid:UUID:00000000-0000-0000-0000-000000000000", "AccessPolicyId": read, "Type": 1}).to_string()), 400)
        .await
        .message()
        .contains("AssetId"));
    let locs = raw
        .ok(
            "GET",
            &format!("/api/Assets('{}')/Locators?$filter=Type eq 2", enc(&aid)),
            None,
        )
        .await;
    assert_eq!(locs["value"].as_array().unwrap().len(), 1);
    raw.expect(
        "DELETE",
        &format!("/api/Locators('{}')", enc(lid)),
        None,
        204,
    )
    .await;

    // MediaProcessors.
    let p = raw
        .ok(
            "GET",
            "/api/MediaProcessors?$filter=Name eq 'Media Encoder Standard'",
            None,
        )
        .await;
    assert_eq!(
        p["value"][0]["Id"],
        "nb:mpid:UUID:ff4df607-d419-42f0-bc17-a481b1331e56"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sas_locator_paths_work_with_the_sdk_and_expire() {
    use amsplay::storage::{Storage, TransferOptions};
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let aid = raw.create("/api/Assets", r#"{"Name":"sas"}"#).await;
    // A locator that only reads needs something to read (CreateFileInfos below brings this
    // record up to date once the blob is there).
    let file = json!({"Name": "f.mp4", "ParentAssetId": aid}).to_string();
    raw.create("/api/Files", &file).await;
    let policy = |perm: i32, minutes: i32| {
        let raw = &raw;
        async move {
            raw.create(
                "/api/AccessPolicies",
                &json!({"Name":"p","DurationInMinutes":minutes,"Permissions":perm}).to_string(),
            )
            .await
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let start = amsplay::ams::model::format_date(now - time::Duration::minutes(5));
    let loc = |pid: String, start: String| {
        let raw = &raw;
        let aid = aid.clone();
        async move {
            let l = raw.ok("POST", "/api/Locators", Some(&json!({"AssetId": aid, "AccessPolicyId": pid, "Type": 1, "StartTime": start}).to_string())).await;
            assert_eq!(
                format!(
                    "{}{}",
                    l["BaseUri"].as_str().unwrap(),
                    l["ContentAccessComponent"].as_str().unwrap()
                ),
                l["Path"].as_str().unwrap()
            );
            url::Url::parse(l["Path"].as_str().unwrap()).unwrap()
        }
    };
    // A write SAS uploads.
    let w = loc(policy(2, 60).await, start.clone()).await;
    let (ws, container) = Storage::from_container_sas(&w).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.mp4"), vec![7u8; 200_000]).unwrap();
    ws.upload_file(
        &container,
        &dir.path().join("f.mp4"),
        "f.mp4",
        &TransferOptions::default(),
        None,
    )
    .await
    .unwrap();
    // A read SAS lists and downloads.
    let r = loc(policy(1 | 8, 60).await, start.clone()).await;
    let (rs, container) = Storage::from_container_sas(&r).unwrap();
    let blobs = rs.blobs(&container).await.unwrap();
    assert_eq!(
        blobs.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
        ["f.mp4"]
    );
    rs.download_file(
        &container,
        "f.mp4",
        &dir.path().join("back"),
        &TransferOptions::default(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("back")).unwrap().len(),
        200_000
    );
    // A read SAS does not write.
    assert!(rs
        .upload_file(
            &container,
            &dir.path().join("f.mp4"),
            "g.mp4",
            &TransferOptions::default(),
            None
        )
        .await
        .is_err());
    // One that expired (started 10 minutes ago for 1 minute) is refused by Azurite.
    let old = amsplay::ams::model::format_date(now - time::Duration::minutes(10));
    let e = loc(policy(1 | 8, 1).await, old).await;
    let (es, container) = Storage::from_container_sas(&e).unwrap();
    let err = es.blobs(&container).await.unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");

    // CreateFileInfos registers the blob, idempotently; quoted id, encoded or not.
    for q in [format!("'{}'", enc(&aid)), format!("'{aid}'")] {
        raw.expect(
            "GET",
            &format!("/api/CreateFileInfos?assetid={q}"),
            None,
            204,
        )
        .await;
    }
    let files = raw
        .ok("GET", &format!("/api/Assets('{}')/Files", enc(&aid)), None)
        .await;
    let files = files["value"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(
        (
            files[0]["Name"].as_str(),
            files[0]["ContentFileSize"].as_str()
        ),
        (Some("f.mp4"), Some("200000"))
    );
    assert_eq!(files[0]["MimeType"], "video/mp4");
    assert!(!files[0]["ContentChecksum"].as_str().unwrap().is_empty());
    raw.expect(
        "GET",
        "/api/CreateFileInfos?assetid='nb%3Acid%3AUUID%3A00000000-0000-0000-0000-000000000000'",
        None,
        404,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_serves_only_started_unexpired_origin_locators() {
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let aid = raw.create("/api/Assets", r#"{"Name":"gate"}"#).await;
    let file = json!({"Name": "clip.ism", "ParentAssetId": aid}).to_string();
    raw.create("/api/Files", &file).await;
    let policy = |minutes: i32| {
        let raw = &raw;
        async move {
            raw.create(
                "/api/AccessPolicies",
                &json!({"Name":"r","DurationInMinutes":minutes,"Permissions":1}).to_string(),
            )
            .await
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let at = |d: time::Duration| amsplay::ams::model::format_date(now + d);
    let cases = [
        (
            "SAS locator",
            1,
            policy(60).await,
            at(time::Duration::minutes(-5)),
        ),
        (
            "not started yet",
            2,
            policy(60).await,
            at(time::Duration::hours(1)),
        ),
        (
            "expired",
            2,
            policy(1).await,
            at(time::Duration::minutes(-10)),
        ),
        (
            "valid, but the asset has no such .ism",
            2,
            policy(60).await,
            at(time::Duration::minutes(-5)),
        ),
    ];
    let http = reqwest::Client::new();
    for (what, kind, pid, start) in cases {
        let l = raw
            .ok("POST", "/api/Locators", Some(&json!({"AssetId": aid, "AccessPolicyId": pid, "Type": kind, "StartTime": start}).to_string()))
            .await;
        let guid = l["Id"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .to_string();
        let r = http
            .get(m.url(&format!("/{guid}/clip.ism/manifest(format=m3u8-aapl)")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{what}");
        assert_eq!(r.headers()["access-control-allow-origin"], "*", "{what}");
        let text = r.text().await.unwrap();
        let refused = text.contains("no started, unexpired OnDemandOrigin locator");
        assert_eq!(refused, !what.starts_with("valid"), "{what}: {text}");
    }
    let r = http
        .get(m.url("/00000000-0000-0000-0000-000000000000/clip.ism/manifest"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// A locator that only reads (streaming, or a SAS without write) needs files to open; a write
/// SAS on an empty asset is how files arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locators_that_only_read_need_files() {
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let aid = raw.create("/api/Assets", r#"{"Name":"empty"}"#).await;
    let policy =
        |perm: i32| json!({"Name": "p", "DurationInMinutes": 60, "Permissions": perm}).to_string();
    let read = raw.create("/api/AccessPolicies", &policy(1)).await;
    let write = raw.create("/api/AccessPolicies", &policy(2)).await;
    let locator = |pid: &str, kind: i32| {
        json!({"AssetId": aid, "AccessPolicyId": pid, "Type": kind}).to_string()
    };
    for kind in [1, 2] {
        let e = raw
            .expect("POST", "/api/Locators", Some(&locator(&read, kind)), 400)
            .await;
        assert!(e.message().contains("has no files"), "{}", e.message());
    }
    raw.create("/api/Locators", &locator(&write, 1)).await;
    let file = json!({"Name": "clip.mp4", "ParentAssetId": aid}).to_string();
    raw.create("/api/Files", &file).await;
    raw.create("/api/Locators", &locator(&read, 2)).await;
}
