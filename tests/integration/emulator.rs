//! The Media Services v2 emulator at the HTTP level, with a raw HTTP client (not ours),
//! following the REST reference's request samples; and its state across a kill.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::Media;

/// Raw requests with the headers the reference's samples send.
pub(crate) struct Raw {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Raw {
    pub(crate) async fn new(m: &Media) -> Raw {
        Raw {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: m.url(""),
            token: m.token().await,
        }
    }

    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        verbose: bool,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let accept = if verbose {
            "application/json;odata=verbose"
        } else {
            "application/json"
        };
        let mut r = self
            .http
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", self.base),
            )
            .header("Authorization", format!("Bearer {}", self.token))
            .header("x-ms-version", "2.11")
            .header("DataServiceVersion", "3.0")
            .header("MaxDataServiceVersion", "3.0")
            .header("Accept", accept);
        if let Some(b) = body {
            r = r.header("Content-Type", accept).body(b.to_string());
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, headers, v)
    }

    /// POSTs an entity and returns its Id.
    pub(crate) async fn create(&self, path: &str, body: &str) -> String {
        self.ok("POST", path, Some(body)).await["Id"]
            .as_str()
            .unwrap_or_else(|| panic!("POST {path} returned no Id"))
            .to_string()
    }

    pub(crate) async fn ok(&self, method: &str, path: &str, body: Option<&str>) -> Value {
        let (s, _, v) = self.send(method, path, body, false).await;
        assert!(s.is_success(), "{method} {path}: {s} {v}");
        v
    }
}

pub(crate) fn enc(id: &str) -> String {
    id.replace(':', "%3A")
}

fn odata_error(v: &Value, key: &str) -> String {
    v[key]["message"]["value"]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} body in {v}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_required_signed_and_expire() {
    let m = Media::start(&["--token-lifetime", "1"]).await;
    let http = reqwest::Client::new();
    let form = |secret: &str, scope: &str| {
        vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", m.account.clone()),
            ("client_secret", secret.to_string()),
            ("scope", scope.to_string()),
        ]
    };
    let r = http
        .post(m.url("/v2/OAuth2-13"))
        .form(&form(&m.key, "urn:WindowsAzureMediaServices"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert!(t["expires_in"].is_string(), "expires_in is a string: {t}");
    assert_eq!(t["scope"], "urn:WindowsAzureMediaServices");
    let token = t["access_token"].as_str().unwrap().to_string();

    let r = http
        .post(m.url("/v2/OAuth2-13"))
        .form(&form("wrong", "urn:WindowsAzureMediaServices"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");

    let aad = http
        .post(m.url("/mytenant.onmicrosoft.com/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &m.account),
            ("client_secret", &m.key),
            ("resource", "https://rest.media.azure.net"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(aad.status(), 200);
    assert_eq!(aad.json::<Value>().await.unwrap()["token_type"], "Bearer");

    let assets = m.url("/api/Assets");
    let r = http.get(&assets).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(odata_error(&r.json().await.unwrap(), "odata.error").contains("Authorization"));
    let r = http
        .get(&assets)
        .bearer_auth("forged&HMACSHA256=abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http.get(&assets).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = http.get(&assets).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 401, "an expired token is refused");
    assert!(odata_error(&r.json().await.unwrap(), "odata.error").contains("expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_root_redirects_and_clients_reissue_the_request() {
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    for path in ["/", "/global/api/", "/global/api/Assets"] {
        let (s, h, _) = raw.send("GET", path, None, false).await;
        assert_eq!(s, StatusCode::MOVED_PERMANENTLY, "{path}");
        assert_eq!(h["location"], m.url("/api/").as_str(), "{path}");
    }
    // Our client, pointed at the global root, follows the 301 with the same verb and body.
    let client = m.client("/global/api/");
    let asset = client.create_asset("through the redirect").await.unwrap();
    assert_eq!(asset.name.as_deref(), Some("through the redirect"));
    assert_eq!(client.asset(&asset.id).await.unwrap().id, asset.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_in_minimal_and_verbose_json_with_keys_and_query_options() {
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let (s, h, a) = raw
        .send(
            "POST",
            "/api/Assets",
            Some(r#"{"Name":"BigBuckBunny.mp4", "Options":"0"}"#),
            false,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let id = a["Id"].as_str().unwrap().to_string();
    assert!(id.starts_with("nb:cid:UUID:"));
    assert_eq!(
        h["location"].to_str().unwrap(),
        m.url(&format!("/api/Assets('{}')", enc(&id)))
    );
    assert_eq!(
        a["odata.metadata"],
        m.url("/api/$metadata#Assets/@Element").as_str()
    );
    assert_eq!(a["Options"], 0);
    assert_eq!(a["State"], 0);
    let guid = id.rsplit(':').next().unwrap();
    assert!(a["Uri"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/dca/asset-{guid}")));
    assert!(m
        .env
        .storage("dca")
        .containers()
        .await
        .unwrap()
        .contains(&format!("asset-{guid}")));

    for path in [
        format!("/api/Assets('{id}')"),
        format!("/api/Assets('{}')", enc(&id)),
        format!("/API/Assets('{}')", enc(&id)),
    ] {
        assert_eq!(
            raw.ok("GET", &path, None).await["Id"],
            id.as_str(),
            "{path}"
        );
    }
    let (s, _, v) = raw
        .send("GET", &format!("/api/Assets('{}')", enc(&id)), None, true)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["d"]["Id"], id.as_str());
    assert_eq!(
        v["d"]["__metadata"]["type"],
        "Microsoft.Cloud.Media.Vod.Rest.Data.Models.Asset"
    );
    assert!(v["d"]["Files"]["__deferred"]["uri"]
        .as_str()
        .unwrap()
        .ends_with("/Files"));

    raw.ok("POST", "/api/Assets", Some(r#"{"Name":"second"}"#))
        .await;
    raw.ok(
        "POST",
        "/api/Assets",
        Some(r#"{"d":{"Name":"third","Options":0}}"#),
    )
    .await;
    let (_, _, list) = raw.send("GET", "/api/Assets", None, true).await;
    assert_eq!(list["d"]["results"].as_array().unwrap().len(), 3);
    let v = raw
        .ok("GET", "/api/Assets?$filter=Name%20eq%20'second'", None)
        .await;
    assert_eq!(v["value"].as_array().unwrap().len(), 1);
    assert_eq!(v["value"][0]["Name"], "second");
    let v = raw
        .ok(
            "GET",
            "/api/Assets?$orderby=Name%20desc&$top=2&$skip=1",
            None,
        )
        .await;
    let names: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["second", "BigBuckBunny.mp4"]);

    let (s, _, _) = raw
        .send(
            "MERGE",
            &format!("/api/Assets('{}')", enc(&id)),
            Some(r#"{"Name":"renamed"}"#),
            false,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = raw
        .send(
            "PATCH",
            &format!("/api/Assets('{}')", enc(&id)),
            Some(r#"{"AlternateId":"alt-1"}"#),
            false,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let a = raw
        .ok("GET", &format!("/api/Assets('{}')", enc(&id)), None)
        .await;
    assert_eq!(
        (a["Name"].as_str(), a["AlternateId"].as_str()),
        (Some("renamed"), Some("alt-1"))
    );

    let (s, _, _) = raw
        .send(
            "DELETE",
            &format!("/api/Assets('{}')", enc(&id)),
            None,
            false,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(!m
        .env
        .storage("dca")
        .containers()
        .await
        .unwrap()
        .contains(&format!("asset-{guid}")));
    let (s, _, v) = raw
        .send("GET", &format!("/api/Assets('{}')", enc(&id)), None, false)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(odata_error(&v, "odata.error").contains(&id));
    let (s, _, v) = raw
        .send("GET", &format!("/api/Assets('{}')", enc(&id)), None, true)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        odata_error(&v, "error").contains(&id),
        "verbose error body: {v}"
    );

    let (s, _, v) = raw
        .send("POST", "/api/Assets", Some("{not json"), false)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(odata_error(&v, "odata.error").contains("not valid JSON"));
    let (s, _, v) = raw
        .send("POST", "/api/Assets", Some(r#"{"Options":"many"}"#), false)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(odata_error(&v, "odata.error").contains("'Options'"));
}

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
    let (s, _, v) = raw
        .send(
            "POST",
            "/api/AccessPolicies",
            Some(r#"{"Name":"x","Permissions":1}"#),
            false,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(odata_error(&v, "odata.error").contains("DurationInMinutes"));
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
    let (s, _, _) = raw
        .send(
            "MERGE",
            &format!("/api/Files('{}')", enc(&fid)),
            Some(r#"{"ContentFileSize":"3186542","IsPrimary":true}"#),
            false,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
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

    let (s, _, v) = raw
        .send(
            "POST",
            "/api/Locators",
            Some(&body(&read, "2", Some(lid))),
            false,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "duplicate locator Id: {v}");
    assert!(odata_error(&v, "odata.error").contains("already exists"));
    let (s, _, v) = raw
        .send(
            "POST",
            "/api/Locators",
            Some(&body(&write, "2", None)),
            false,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(odata_error(&v, "odata.error").contains("read-only"));
    for _ in 0..4 {
        raw.ok("POST", "/api/Locators", Some(&body(&read, "1", None)))
            .await;
    }
    let (s, _, v) = raw
        .send(
            "POST",
            "/api/Locators",
            Some(&body(&read, "1", None)),
            false,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "a sixth locator: {v}");
    assert!(odata_error(&v, "odata.error").contains("5 locators"));
    let (s, _, _) = raw
        .send(
            "GET",
            "/api/Locators('nb%3Alid%3AUUID%3A00000000-0000-0000-0000-000000000000')",
            None,
            false,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, v) = raw.send("POST", "/api/Locators", Some(&json!({"AssetId": "nb:cid:UUID:00000000-0000-0000-0000-000000000000", "AccessPolicyId": read, "Type": 1}).to_string()), false).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(odata_error(&v, "odata.error").contains("AssetId"));
    let locs = raw
        .ok(
            "GET",
            &format!("/api/Assets('{}')/Locators?$filter=Type eq 2", enc(&aid)),
            None,
        )
        .await;
    assert_eq!(locs["value"].as_array().unwrap().len(), 1);
    let (s, _, _) = raw
        .send(
            "DELETE",
            &format!("/api/Locators('{}')", enc(lid)),
            None,
            false,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

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
        let (s, _, _) = raw
            .send(
                "GET",
                &format!("/api/CreateFileInfos?assetid={q}"),
                None,
                false,
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
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
    let (s, _, _) = raw
        .send(
            "GET",
            "/api/CreateFileInfos?assetid='nb%3Acid%3AUUID%3A00000000-0000-0000-0000-000000000000'",
            None,
            false,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_emulator_restarts_with_every_entity() {
    let mut m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let aid = raw.create("/api/Assets", r#"{"Name":"kept"}"#).await;
    let pid = raw
        .create(
            "/api/AccessPolicies",
            r#"{"Name":"r","DurationInMinutes":60,"Permissions":1}"#,
        )
        .await;
    let lid = raw
        .create(
            "/api/Locators",
            &json!({"AssetId": aid, "AccessPolicyId": pid, "Type": 2}).to_string(),
        )
        .await;
    let fid = raw
        .create(
            "/api/Files",
            &json!({"Name":"a.ism","ParentAssetId": aid}).to_string(),
        )
        .await;
    m.kill_and_restart();
    let raw = Raw::new(&m).await;
    assert_eq!(
        raw.ok("GET", &format!("/api/Assets('{}')", enc(&aid)), None)
            .await["Name"],
        "kept"
    );
    assert_eq!(
        raw.ok(
            "GET",
            &format!("/api/AccessPolicies('{}')", enc(&pid)),
            None
        )
        .await["Id"],
        pid.as_str()
    );
    assert_eq!(
        raw.ok("GET", &format!("/api/Locators('{}')", enc(&lid)), None)
            .await["AssetId"],
        aid.as_str()
    );
    assert_eq!(
        raw.ok("GET", &format!("/api/Files('{}')", enc(&fid)), None)
            .await["ParentAssetId"],
        aid.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entity_set_in_verbose_json_and_deleting_an_asset_cascades() {
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let v = |s: &str| s.to_string();
    let (s, h, a) = raw
        .send("POST", "/api/Assets", Some(r#"{"Name":"verbose"}"#), true)
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(h["location"]
        .to_str()
        .unwrap()
        .contains("/api/Assets('nb%3Acid%3AUUID%3A"));
    let aid = a["d"]["Id"].as_str().unwrap().to_string();
    let (_, _, p) = raw
        .send(
            "POST",
            "/api/AccessPolicies",
            Some(r#"{"Name":"r","DurationInMinutes":"30","Permissions":"1"}"#),
            true,
        )
        .await;
    let pid = p["d"]["Id"].as_str().unwrap().to_string();
    assert_eq!(
        p["d"]["__metadata"]["type"],
        "Microsoft.Cloud.Media.Vod.Rest.Data.Models.AccessPolicy"
    );
    let (_, _, f) = raw
        .send(
            "POST",
            "/api/Files",
            Some(&json!({"Name":"v.ism","ParentAssetId":aid,"ContentFileSize":"12"}).to_string()),
            true,
        )
        .await;
    let fid = f["d"]["Id"].as_str().unwrap().to_string();
    assert_eq!(f["d"]["ContentFileSize"], "12");
    let (_, _, l) = raw
        .send(
            "POST",
            "/api/Locators",
            Some(&json!({"AssetId":aid,"AccessPolicyId":pid,"Type":"2"}).to_string()),
            true,
        )
        .await;
    let lid = l["d"]["Id"].as_str().unwrap().to_string();
    assert!(l["d"]["Asset"]["__deferred"]["uri"]
        .as_str()
        .unwrap()
        .ends_with("/Asset"));

    for (set, id, field, value) in [
        ("AccessPolicies", &pid, "Name", v("renamed")),
        ("Files", &fid, "MimeType", v("application/xml")),
        ("Locators", &lid, "Name", v("named")),
    ] {
        let (s, _, _) = raw
            .send(
                "MERGE",
                &format!("/api/{set}('{}')", enc(id)),
                Some(&json!({ field: value }).to_string()),
                true,
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{set}");
        let (s, _, e) = raw
            .send("GET", &format!("/api/{set}('{}')", enc(id)), None, true)
            .await;
        assert_eq!(
            (s, e["d"][field].as_str()),
            (StatusCode::OK, Some(value.as_str())),
            "{set}"
        );
        let (_, _, list) = raw.send("GET", &format!("/api/{set}"), None, true).await;
        assert_eq!(list["d"]["results"].as_array().unwrap().len(), 1, "{set}");
    }
    let (_, _, nav) = raw
        .send(
            "GET",
            &format!("/api/Locators('{}')/Asset", enc(&lid)),
            None,
            true,
        )
        .await;
    assert_eq!(nav["d"]["Id"], aid.as_str());
    let (_, _, jobs) = raw.send("GET", "/api/Jobs", None, true).await;
    assert_eq!(jobs["d"]["results"].as_array().unwrap().len(), 0);

    let (s, _, _) = raw
        .send(
            "DELETE",
            &format!("/api/Assets('{}')", enc(&aid)),
            None,
            true,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    for (set, id) in [("Files", &fid), ("Locators", &lid)] {
        let (s, _, e) = raw
            .send("GET", &format!("/api/{set}('{}')", enc(id)), None, true)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{set} deleted with its asset");
        assert!(e["error"]["message"]["value"].is_string());
    }
    let (s, _, _) = raw
        .send(
            "DELETE",
            &format!("/api/AccessPolicies('{}')", enc(&pid)),
            None,
            true,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_with_azure_ad_tokens() {
    let m = Media::start(&[]).await;
    let client = amsplay::ams::client::MediaClient::new(amsplay::config::MediaAccount {
        account: m.account.clone(),
        key: m.key.clone(),
        api: url::Url::parse(&m.url("/api/")).unwrap(),
        token_endpoint: url::Url::parse(&m.url("/contoso.onmicrosoft.com/oauth2/token")).unwrap(),
        aad: true,
    });
    let a = client.create_asset("aad").await.unwrap();
    assert_eq!(client.assets().await.unwrap().len(), 1);
    client.delete_asset(&a.id).await.unwrap();
    let err = client.asset(&a.id).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    let wrong = amsplay::ams::client::MediaClient::new(amsplay::config::MediaAccount {
        account: m.account.clone(),
        key: "d3Jvbmc=".into(),
        api: url::Url::parse(&m.url("/api/")).unwrap(),
        token_endpoint: url::Url::parse(&m.url("/v2/OAuth2-13")).unwrap(),
        aad: false,
    });
    let err = wrong.assets().await.unwrap_err();
    assert_eq!(err.kind(), "auth", "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_running_when_the_emulator_dies_runs_again_after_restart() {
    use amsplay::storage::TransferOptions;
    let mut m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let dir = tempfile::tempdir().unwrap();
    let mezz = crate::encoding::sample(dir.path(), "long.mp4", 1280, 720, 10);
    let asset = raw
        .ok("POST", "/api/Assets", Some(r#"{"Name":"mezzanine"}"#))
        .await;
    let aid = asset["Id"].as_str().unwrap().to_string();
    let container = amsplay::ams::model::asset_container(&aid);
    m.env
        .storage("dca")
        .upload_file(
            &container,
            &mezz,
            "long.mp4",
            &TransferOptions::default(),
            None,
        )
        .await
        .unwrap();
    let body = json!({
        "Name": "restart test",
        "InputMediaAssets": [{"__metadata": {"uri": m.url(&format!("/api/Assets('{}')", enc(&aid)))}}],
        "Tasks": [{
            "Configuration": "Adaptive Streaming",
            "MediaProcessorId": "nb:mpid:UUID:ff4df607-d419-42f0-bc17-a481b1331e56",
            "TaskBody": "<?xml version=\"1.0\" encoding=\"utf-8\"?><taskBody><inputAsset>JobInputAsset(0)</inputAsset><outputAsset assetCreationOptions=\"0\" assetName=\"out\">JobOutputAsset(0)</outputAsset></taskBody>"
        }]
    });
    let (s, _, job) = raw
        .send("POST", "/api/Jobs", Some(&body.to_string()), true)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    let jid = job["d"]["Id"].as_str().unwrap().to_string();
    let outputs = raw
        .ok(
            "GET",
            &format!("/api/Jobs('{}')/OutputMediaAssets", enc(&jid)),
            None,
        )
        .await;
    assert_eq!(
        outputs["value"][0]["Name"], "out",
        "the output asset exists from submission"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let tasks = raw
            .ok("GET", &format!("/api/Jobs('{}')/Tasks", enc(&jid)), None)
            .await;
        if tasks["value"][0]["Progress"].as_f64().unwrap_or(0.0) > 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the job never made progress: {tasks}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    m.kill_and_restart();
    let raw = Raw::new(&m).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let j = raw
            .ok("GET", &format!("/api/Jobs('{}')", enc(&jid)), None)
            .await;
        match j["State"].as_i64() {
            Some(3) => break,
            Some(4) | Some(5) => panic!("the job ended {j}"),
            _ => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the job never finished after the restart: {j}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let out_id = outputs["value"][0]["Id"].as_str().unwrap().to_string();
    let files = raw
        .ok(
            "GET",
            &format!("/api/Assets('{}')/Files", enc(&out_id)),
            None,
        )
        .await;
    let files = files["value"].as_array().unwrap();
    assert_eq!(files.len(), 5 + 2, "five rungs, .ism and .ismc: {files:?}");
    let primary: Vec<&str> = files
        .iter()
        .filter(|f| f["IsPrimary"] == true)
        .map(|f| f["Name"].as_str().unwrap())
        .collect();
    assert_eq!(primary, ["long.ism"]);
    let (_, _, state) = raw
        .send(
            "GET",
            &format!("/api/Jobs('{}')/State", enc(&jid)),
            None,
            false,
        )
        .await;
    assert_eq!(state["value"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_serves_only_started_unexpired_origin_locators() {
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let aid = raw.create("/api/Assets", r#"{"Name":"gate"}"#).await;
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
