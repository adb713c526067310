//! The streaming endpoint: listed, stopped, started and scaled through asynchronous
//! operations, and a stopped endpoint takes its origin out of service (503), across restarts.

use super::{enc, Raw};
use crate::harness::Media;

async fn operate(m: &Media, raw: &Raw, id: &str, action: &str, body: &str) -> String {
    let r = reqwest::Client::new()
        .post(m.url(&format!("/api/StreamingEndpoints('{}')/{action}", enc(id))))
        .bearer_auth(m.token().await)
        .header("x-ms-version", "2.19")
        .header("content-type", "application/json;odata=verbose")
        .header("x-ms-client-request-id", "op-1")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{action}");
    assert_eq!(r.headers()["x-ms-client-request-id"], "op-1");
    let op = r.headers()["operation-id"].to_str().unwrap().to_string();
    let o = raw
        .ok("GET", &format!("/api/Operations('{}')", enc(&op)), None)
        .await;
    assert_eq!(
        (o["State"].as_str(), o["TargetEntityId"].as_str()),
        (Some("Succeeded"), Some(id))
    );
    op
}

async fn origin_status(m: &Media, path: &str) -> (u16, Option<String>) {
    let r = reqwest::get(m.url(path)).await.unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), retry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_streaming_endpoint_takes_its_origin_out() {
    let mut m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    let list = raw
        .ok("GET", "/api/StreamingEndpoints()?$top=1", None)
        .await;
    let e = &list["value"][0];
    assert_eq!(
        (e["Name"].as_str(), e["State"].as_str()),
        (Some("default"), Some("Running")),
        "{list}"
    );
    let id = e["Id"].as_str().unwrap().to_string();
    let stream = "/0b6d2c9e-5a34-4f0c-9c55-8d3a0e6b1a11/clip.ism/manifest";
    assert_eq!(origin_status(&m, "/health").await.0, 200);
    assert_eq!(
        origin_status(&m, stream).await.0,
        404,
        "no such locator: 404 while running"
    );

    operate(&m, &raw, &id, "Stop", "").await;
    let e = raw
        .ok(
            "GET",
            &format!("/api/StreamingEndpoints('{}')", enc(&id)),
            None,
        )
        .await;
    assert_eq!(e["State"], "Stopped");
    assert_eq!(origin_status(&m, "/health").await.0, 503);
    let (status, retry) = origin_status(&m, stream).await;
    assert_eq!(
        (status, retry.is_some()),
        (503, true),
        "a stopped endpoint answers 503 with Retry-After"
    );

    // The state survives a restart of the emulator.
    m.kill_and_restart();
    let raw = Raw::new(&m).await;
    assert_eq!(origin_status(&m, "/health").await.0, 503);

    operate(&m, &raw, &id, "Start", "").await;
    assert_eq!(origin_status(&m, "/health").await.0, 200);
    operate(&m, &raw, &id, "Scale", r#"{"scaleUnits":2}"#).await;
    let e = raw
        .ok(
            "GET",
            &format!("/api/StreamingEndpoints('{}')", enc(&id)),
            None,
        )
        .await;
    assert_eq!(e["ScaleUnits"], 2);
    let scale = format!("/api/StreamingEndpoints('{}')/Scale", enc(&id));
    let refused = raw
        .expect("POST", &scale, Some(r#"{"scaleUnits":99}"#), 400)
        .await;
    assert!(
        refused.message().contains("scaleUnits"),
        "{}",
        refused.message()
    );
}
