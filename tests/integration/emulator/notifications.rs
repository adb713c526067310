//! Web hooks: a notification endpoint receives its registration, and a job's and a task's
//! state changes as their subscriptions ask, each message signed with the endpoint's key.

use std::sync::{Arc, Mutex};

use super::{enc, Raw};
use crate::harness::Media;

/// A web hook receiver on a free port: every POST's signature header, account header, body.
type Received = Arc<Mutex<Vec<(String, String, serde_json::Value, Vec<u8>)>>>;

async fn receiver() -> (String, Received) {
    let got: Received = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let g = g.clone();
                async move {
                    let h = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    let v = serde_json::from_slice(&body).unwrap_or_default();
                    g.lock().unwrap().push((
                        h("ms-signature"),
                        h("ms-mediaservices-accountid"),
                        v,
                        body.to_vec(),
                    ));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_hooks_get_registrations_and_state_changes_signed() {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let (url, got) = receiver().await;
    let key = [7u8; 64];
    let endpoint = serde_json::json!({
        "Name": "hook", "EndPointType": 3, "EndPointAddress": url,
        "EncryptedEndPointCredential": base64::engine::general_purpose::STANDARD.encode(key),
    });
    let nep = raw
        .create("/api/NotificationEndPoints", &endpoint.to_string())
        .await;

    let aid = raw.create("/api/Assets", r#"{"Name":"hollow"}"#).await;
    let file = serde_json::json!({"Name": "missing.mp4", "ParentAssetId": aid, "IsPrimary": true});
    raw.create("/api/Files", &file.to_string()).await;
    let job = serde_json::json!({
        "Name": "j",
        "InputMediaAssets": [{"__metadata": {"uri": m.url(&format!("/api/Assets('{}')", enc(&aid)))}}],
        "JobNotificationSubscriptions": [{"NotificationEndPointId": nep, "TargetJobState": 2}],
        "Tasks": [{"MediaProcessorId": "nb:mpid:UUID:ff4df607-d419-42f0-bc17-a481b1331e56",
                   "TaskBody": "<taskBody><inputAsset>JobInputAsset(0)</inputAsset><outputAsset>JobOutputAsset(0)</outputAsset></taskBody>",
                   "TaskNotificationSubscriptions": [{"NotificationEndPointId": nep, "TargetJobState": 1}]}]
    });
    let jid = raw.create("/api/Jobs", &job.to_string()).await;
    let bogus = job
        .to_string()
        .replace(&nep, "nb:nepid:UUID:00000000-0000-0000-0000-000000000000");
    raw.expect("POST", "/api/Jobs", Some(&bogus), 400).await;

    // Registration, three job changes (to Scheduled, Processing, Error), one task change (final).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while got.lock().unwrap().len() < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            got.lock().unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 5, "{got:?}");
    for (signature, account, v, body) in &got {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(body);
        assert_eq!(
            signature,
            &format!("sha256={}", hex::encode_upper(mac.finalize().into_bytes()))
        );
        assert_eq!(
            v["Properties"]["AccountId"].as_str(),
            Some(account.as_str())
        );
        assert_eq!(v["Properties"]["NotificationEndPointId"], nep.as_str());
    }
    let kinds = |event: i64| -> Vec<String> {
        got.iter()
            .filter(|g| g.2["EventType"] == event)
            .map(|g| {
                format!(
                    "{}>{}",
                    g.2["Properties"]["OldState"].as_str().unwrap_or(""),
                    g.2["Properties"]["NewState"].as_str().unwrap_or("")
                )
            })
            .collect()
    };
    assert_eq!(
        got.iter().filter(|g| g.2["EventType"] == 2).count(),
        1,
        "one registration"
    );
    assert_eq!(
        kinds(1),
        [
            "Queued>Scheduled",
            "Scheduled>Processing",
            "Processing>Error"
        ]
    );
    assert_eq!(
        kinds(4),
        ["Processing>Error"],
        "the task asked for final states only"
    );
    let task_msg = got.iter().find(|g| g.2["EventType"] == 4).unwrap();
    assert_eq!(task_msg.2["Properties"]["JobId"], jid.as_str());
    assert_eq!(task_msg.2["MessageVersion"], "1.1");
}
