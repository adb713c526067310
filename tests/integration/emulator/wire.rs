//! The .NET SDK's own addressing and the query options clients of the era sent: `Set()` with
//! empty parentheses, percent-encoded key segments, and `$filter` beyond `eq`/`and`.

use super::{enc, Raw};
use crate::harness::Media;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdks_addressing_and_filters() {
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let mes = raw
        .ok(
            "GET",
            "/api/MediaProcessors()?$filter=Name%20eq%20'Media%20Encoder%20Standard'",
            None,
        )
        .await;
    assert_eq!(mes["value"].as_array().unwrap().len(), 1, "{mes}");
    let a = raw
        .create("/api/Assets()", r#"{"Name":"Big Buck Bunny"}"#)
        .await;
    let b = raw.create("/api/Assets", r#"{"Name":"Sintel"}"#).await;

    // Keys: raw, percent-encoded whole, with a leading %2F; navigation with ().
    let encoded = format!("Assets%28%27{}%27%29", enc(&a).replace('\'', "%27"));
    for path in [
        format!("/api/Assets('{}')", enc(&a)),
        format!("/api/{encoded}"),
        format!("/api/%2F{encoded}"),
    ] {
        assert_eq!(raw.ok("GET", &path, None).await["Id"], a.as_str(), "{path}");
    }
    let files = raw
        .ok("GET", &format!("/api/Assets('{}')/Files()", enc(&a)), None)
        .await;
    assert_eq!(files["value"].as_array().unwrap().len(), 0);

    let names = |v: serde_json::Value| -> Vec<String> {
        let mut n: Vec<String> = v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["Name"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    for (filter, want) in [
        (format!("Id eq '{a}'&$top=1"), vec!["Big Buck Bunny"]),
        (
            format!("Id eq '{a}' or Id eq '{b}'"),
            vec!["Big Buck Bunny", "Sintel"],
        ),
        ("startswith(Name,'Big')".to_string(), vec!["Big Buck Bunny"]),
        ("substringof('int', Name)".to_string(), vec!["Sintel"]),
        ("not (Name eq 'Sintel')".to_string(), vec!["Big Buck Bunny"]),
        (
            "Created gt datetime'2020-01-01T00:00:00'".to_string(),
            vec!["Big Buck Bunny", "Sintel"],
        ),
        (
            "Created lt datetime'2020-01-01T00:00:00'".to_string(),
            vec![],
        ),
    ] {
        let v = raw
            .ok("GET", &format!("/api/Assets()?$filter={filter}"), None)
            .await;
        assert_eq!(names(v), want, "$filter={filter}");
    }
    let e = raw
        .expect("GET", "/api/Assets?$filter=tolower(Name) eq 'x'", None, 400)
        .await;
    assert!(e.message().contains("tolower"), "{}", e.message());
}

/// `$inlinecount`, `$select` and `/$count`, in both JSON formats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_and_selections() {
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    for name in ["a", "b", "c"] {
        raw.create("/api/Assets", &format!(r#"{{"Name":"{name}"}}"#))
            .await;
    }
    let v = raw
        .ok(
            "GET",
            "/api/Assets?$inlinecount=allpages&$top=1&$select=Name,Id",
            None,
        )
        .await;
    assert_eq!(v["odata.count"], "3", "{v}");
    let first = v["value"][0].as_object().unwrap();
    let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["Id", "Name"], "{v}");
    let (s, _, verbose) = raw
        .send(
            "GET",
            "/api/Assets?$inlinecount=allpages&$filter=Name ne 'a'&$select=Name",
            None,
            true,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(verbose["d"]["__count"], "2", "{verbose}");
    let r = &verbose["d"]["results"][0];
    assert!(
        r["__metadata"]["uri"].is_string() && r.get("Id").is_none(),
        "{r}"
    );
    let text = reqwest::Client::new()
        .get(m.url("/api/Assets/$count?$filter=Name ne 'a'"))
        .bearer_auth(m.token().await)
        .header("x-ms-version", "2.19")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "2");
    raw.expect("GET", "/api/Assets?$inlinecount=some", None, 400)
        .await;
}

/// The service surface: every set served is listed, answers carry request ids (the client's
/// echoed), `X-HTTP-Method` tunnels a MERGE through POST, and HEAD answers as GET does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_surface() {
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let doc = raw.ok("GET", "/api/", None).await;
    let sets: Vec<&str> = doc["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for set in [
        "Assets",
        "Files",
        "AccessPolicies",
        "Locators",
        "MediaProcessors",
        "Jobs",
        "Tasks",
    ] {
        assert!(sets.contains(&set), "{set} missing from {doc}");
    }
    let token = m.token().await;
    let http = reqwest::Client::new();
    let r = http
        .get(m.url("/api/Assets"))
        .bearer_auth(&token)
        .header("x-ms-version", "2.19")
        .header("client-request-id", "my-id-1")
        .send()
        .await
        .unwrap();
    let id = r.headers()["request-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    assert_eq!(r.headers()["x-ms-request-id"].to_str().unwrap(), id);
    assert_eq!(r.headers()["client-request-id"], "my-id-1");

    let aid = raw.create("/api/Assets", r#"{"Name":"before"}"#).await;
    let r = http
        .post(m.url(&format!("/api/Assets('{}')", enc(&aid))))
        .bearer_auth(&token)
        .header("x-ms-version", "2.19")
        .header("X-HTTP-Method", "MERGE")
        .header("content-type", "application/json")
        .body(r#"{"Name":"after"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let a = raw
        .ok("GET", &format!("/api/Assets('{}')", enc(&aid)), None)
        .await;
    assert_eq!(a["Name"], "after");

    let head = http
        .head(m.url(&format!("/api/Assets('{}')", enc(&aid))))
        .bearer_auth(&token)
        .header("x-ms-version", "2.19")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.bytes().await.unwrap().is_empty());
}

/// `DELETE Assets('…')?keepcontainer=true` removes the asset and keeps its blobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_asset_can_keep_its_container() {
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let storage = m.env.storage("dca");
    for (query, kept) in [("?keepcontainer=true", true), ("", false)] {
        let aid = raw.create("/api/Assets", r#"{"Name":"x"}"#).await;
        let container = amsplay::ams::model::asset_container(&aid);
        raw.expect(
            "DELETE",
            &format!("/api/Assets('{}'){query}", enc(&aid)),
            None,
            204,
        )
        .await;
        raw.expect("GET", &format!("/api/Assets('{}')", enc(&aid)), None, 404)
            .await;
        let there = storage.containers().await.unwrap().contains(&container);
        assert_eq!(there, kept, "DELETE{query}");
    }
}

/// A property the entity type does not have is refused by name, as the service did (a typo is
/// not silently dropped); annotations pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_properties_are_refused_by_name() {
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let e = raw
        .expect(
            "POST",
            "/api/Assets",
            Some(r#"{"Name":"x","Nmae":"y"}"#),
            400,
        )
        .await;
    assert!(
        e.message().contains("The property 'Nmae' does not exist on type 'Microsoft.Cloud.Media.Vod.Rest.Data.Models.Asset'"),
        "{}",
        e.message()
    );
    let aid = raw
        .create(
            "/api/Assets",
            r#"{"Name":"x","odata.type":"Microsoft.Cloud.Media.Vod.Rest.Data.Models.Asset","__metadata":{"type":"x"}}"#,
        )
        .await;
    raw.expect(
        "MERGE",
        &format!("/api/Assets('{}')", enc(&aid)),
        Some(r#"{"Colour":"red"}"#),
        400,
    )
    .await;
    let job = serde_json::json!({
        "Name": "j",
        "InputMediaAssets": [{"__metadata": {"uri": m.url(&format!("/api/Assets('{}')", enc(&aid)))}}],
        "Tasks": [{"MediaProcessorId": "nb:mpid:UUID:ff4df607-d419-42f0-bc17-a481b1331e56",
                   "TaskBody": "<taskBody><inputAsset>JobInputAsset(0)</inputAsset><outputAsset>JobOutputAsset(0)</outputAsset></taskBody>",
                   "Preset": "Adaptive Streaming"}]
    });
    let e = raw
        .expect("POST", "/api/Jobs", Some(&job.to_string()), 400)
        .await;
    assert!(
        e.message().starts_with("Tasks[0]: The property 'Preset'"),
        "{}",
        e.message()
    );
}

/// A task as verbose OData wrote it: collection-valued properties wrapped with their type,
/// the task's history, the encryption fields; a job's notification subscriptions; and our own
/// client reads them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_in_verbose_json_carry_their_collections_and_history() {
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let aid = raw.create("/api/Assets", r#"{"Name":"hollow"}"#).await;
    let file = serde_json::json!({"Name": "missing.mp4", "ParentAssetId": aid, "IsPrimary": true});
    raw.create("/api/Files", &file.to_string()).await;
    let job = serde_json::json!({
        "Name": "j",
        "InputMediaAssets": [{"__metadata": {"uri": m.url(&format!("/api/Assets('{}')", enc(&aid)))}}],
        "Tasks": [{"MediaProcessorId": "nb:mpid:UUID:ff4df607-d419-42f0-bc17-a481b1331e56",
                   "TaskBody": "<taskBody><inputAsset>JobInputAsset(0)</inputAsset><outputAsset>JobOutputAsset(0)</outputAsset></taskBody>"}]
    });
    let jid = raw.create("/api/Jobs", &job.to_string()).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while raw
        .ok("GET", &format!("/api/Jobs('{}')", enc(&jid)), None)
        .await["State"]
        .as_i64()
        .unwrap_or(0)
        < 3
    {
        assert!(std::time::Instant::now() < deadline, "the job never ended");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (_, _, v) = raw
        .send(
            "GET",
            &format!("/api/Jobs('{}')/Tasks", enc(&jid)),
            None,
            true,
        )
        .await;
    let t = &v["d"]["results"][0];
    assert_eq!(
        t["ErrorDetails"]["__metadata"]["type"],
        "Collection(Microsoft.Cloud.Media.Vod.Rest.Data.Models.ErrorDetail)",
        "{t}"
    );
    assert_eq!(
        t["ErrorDetails"]["results"].as_array().unwrap().len(),
        1,
        "{t}"
    );
    let events = t["HistoricalEvents"]["results"].as_array().unwrap();
    let codes: Vec<&str> = events.iter().map(|e| e["Code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["Processing", "Error"], "{t}");
    for field in [
        "EncryptionKeyId",
        "EncryptionScheme",
        "EncryptionVersion",
        "InitializationVector",
    ] {
        assert!(t.get(field).is_some(), "{field} missing: {t}");
    }
    let (_, _, j) = raw
        .send("GET", &format!("/api/Jobs('{}')", enc(&jid)), None, true)
        .await;
    assert!(
        j["d"]["JobNotificationSubscriptions"]["results"].is_array(),
        "{j}"
    );
    // Our client reads the verbose shape.
    let tasks = m.client("/api/").job_tasks(&jid).await.unwrap();
    assert_eq!(tasks[0].error_details.len(), 1);
    assert_eq!(tasks[0].historical_events.len(), 2);
}

/// `$expand` writes navigation properties inline, in both formats, one level deep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expand_writes_navigation_inline() {
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let aid = raw.create("/api/Assets", r#"{"Name":"x"}"#).await;
    let file = serde_json::json!({"Name": "a.mp4", "ParentAssetId": aid});
    raw.create("/api/Files", &file.to_string()).await;
    let pid = raw
        .create(
            "/api/AccessPolicies",
            r#"{"Name":"r","DurationInMinutes":60,"Permissions":1}"#,
        )
        .await;
    let loc = serde_json::json!({"AssetId": aid, "AccessPolicyId": pid, "Type": 1});
    let lid = raw.create("/api/Locators", &loc.to_string()).await;

    let v = raw
        .ok(
            "GET",
            &format!("/api/Assets('{}')?$expand=Files,Locators", enc(&aid)),
            None,
        )
        .await;
    assert_eq!(v["Files"][0]["Name"], "a.mp4", "{v}");
    assert_eq!(v["Locators"][0]["Id"], lid.as_str(), "{v}");
    let (_, _, verbose) = raw
        .send(
            "GET",
            &format!("/api/Locators('{}')?$expand=AccessPolicy,Asset", enc(&lid)),
            None,
            true,
        )
        .await;
    let d = &verbose["d"];
    assert_eq!(d["AccessPolicy"]["Id"], pid.as_str(), "{verbose}");
    assert!(
        d["AccessPolicy"]["__metadata"]["uri"].is_string(),
        "{verbose}"
    );
    assert_eq!(d["Asset"]["Id"], aid.as_str());
    let (_, _, list) = raw
        .send("GET", "/api/Assets?$expand=Files", None, true)
        .await;
    assert_eq!(
        list["d"]["results"][0]["Files"]["results"][0]["Name"], "a.mp4",
        "{list}"
    );
    raw.expect("GET", "/api/Assets?$expand=Nope", None, 400)
        .await;
    raw.expect("GET", "/api/Assets?$expand=Files/ParentAsset", None, 400)
        .await;
}

/// `x-ms-version`: 2.0 to 2.19 in any form are served; another version, or none, is 400 as
/// the service answered (`?api-version=` stands in for the header, as the reference allowed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_the_service_had_are_accepted() {
    let m = Media::start(&[]).await;
    let token = m.token().await;
    let http = reqwest::Client::new();
    for (version, status) in [
        (Some("2.19"), 200),
        (Some(" 2.7 "), 200),
        (Some("2.0"), 200),
        (None, 400),
        (Some("2.20"), 400),
        (Some("3.0"), 400),
        (Some("latest"), 400),
    ] {
        let mut r = http.get(m.url("/api/Assets")).bearer_auth(&token);
        if let Some(v) = version {
            r = r.header("x-ms-version", v);
        }
        let r = r.send().await.unwrap();
        let code = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert_eq!(code, status, "{version:?}: {text}");
        if status == 400 {
            assert!(text.contains("x-ms-version"), "{text}");
        }
    }
    let r = http
        .get(m.url("/api/Assets?api-version=2.19"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
