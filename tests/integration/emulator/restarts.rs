//! State across a killed emulator: every entity, and a job that was running.

use reqwest::StatusCode;
use serde_json::json;

use super::{enc, Raw};
use crate::harness::Media;

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
    let fid = raw
        .create(
            "/api/Files",
            &json!({"Name":"a.ism","ParentAssetId": aid}).to_string(),
        )
        .await;
    let lid = raw
        .create(
            "/api/Locators",
            &json!({"AssetId": aid, "AccessPolicyId": pid, "Type": 2}).to_string(),
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
    assert_eq!(
        files.len(),
        5 + 2 + 2,
        "five rungs, .ism and .ismc, MES's two metadata files: {files:?}"
    );
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
