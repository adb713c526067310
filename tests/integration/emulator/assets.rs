//! Assets in both JSON formats, keys, query options, and every entity set in verbose JSON.

use reqwest::StatusCode;
use serde_json::json;

use super::{enc, odata_error, Raw};
use crate::harness::Media;

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

    raw.expect(
        "MERGE",
        &format!("/api/Assets('{}')", enc(&id)),
        Some(r#"{"Name":"renamed"}"#),
        204,
    )
    .await;
    raw.expect(
        "PATCH",
        &format!("/api/Assets('{}')", enc(&id)),
        Some(r#"{"AlternateId":"alt-1"}"#),
        204,
    )
    .await;
    let a = raw
        .ok("GET", &format!("/api/Assets('{}')", enc(&id)), None)
        .await;
    assert_eq!(
        (a["Name"].as_str(), a["AlternateId"].as_str()),
        (Some("renamed"), Some("alt-1"))
    );

    raw.expect("DELETE", &format!("/api/Assets('{}')", enc(&id)), None, 204)
        .await;
    assert!(!m
        .env
        .storage("dca")
        .containers()
        .await
        .unwrap()
        .contains(&format!("asset-{guid}")));
    assert!(raw
        .expect("GET", &format!("/api/Assets('{}')", enc(&id)), None, 404)
        .await
        .message()
        .contains(&id));
    let (s, _, v) = raw
        .send("GET", &format!("/api/Assets('{}')", enc(&id)), None, true)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        odata_error(&v, "error").contains(&id),
        "verbose error body: {v}"
    );

    assert!(raw
        .expect("POST", "/api/Assets", Some("{not json"), 400)
        .await
        .message()
        .contains("not valid JSON"));
    assert!(raw
        .expect("POST", "/api/Assets", Some(r#"{"Options":"many"}"#), 400)
        .await
        .message()
        .contains("'Options'"));
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
