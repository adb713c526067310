//! The Media Services v2 emulator at the HTTP level, with a raw HTTP client (not ours),
//! following the REST reference's request samples, one file per area; and its state across
//! a kill.

mod assets;
mod auth;
mod conformance;
mod endpoints;
mod locators;
mod notifications;
mod restarts;
mod wire;

use reqwest::{Method, StatusCode};
use serde_json::Value;

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

    /// Sends a request that must answer `status`; its body (and the OData error message).
    pub(crate) async fn expect(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        status: u16,
    ) -> Answer {
        let (s, _, v) = self.send(method, path, body, false).await;
        assert_eq!(s.as_u16(), status, "{method} {path}: {v}");
        Answer { body: v }
    }

    /// Waits (at most 90 s) for job `jid` to end; its final state and its tasks as JSON text.
    pub(crate) async fn job_end(&self, jid: &str) -> (i64, String) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        loop {
            let j = self
                .ok("GET", &format!("/api/Jobs('{}')", enc(jid)), None)
                .await;
            if let Some(state @ 3..=5) = j["State"].as_i64() {
                let tasks = self
                    .ok("GET", &format!("/api/Jobs('{}')/Tasks", enc(jid)), None)
                    .await;
                return (state, tasks.to_string());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the job never ended: {j}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Waits for job `jid` to finish (3); panics with its tasks if it ends otherwise.
    pub(crate) async fn finished(&self, jid: &str) {
        let (state, tasks) = self.job_end(jid).await;
        assert_eq!(state, 3, "job {jid} ended in state {state}: {tasks}");
    }

    /// A new asset holding `file` as its one blob, registered with CreateFileInfos; its Id.
    pub(crate) async fn asset_with(&self, m: &Media, file: &std::path::Path) -> String {
        let aid = self.create("/api/Assets", r#"{"Name":"mezzanine"}"#).await;
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        m.env
            .storage("dca")
            .upload_file(
                &amsplay::ams::model::asset_container(&aid),
                file,
                &name,
                &amsplay::storage::TransferOptions::default(),
                None,
            )
            .await
            .unwrap();
        self.ok(
            "GET",
            &format!("/api/CreateFileInfos?assetid='{}'", enc(&aid)),
            None,
        )
        .await;
        aid
    }

    pub(crate) async fn ok(&self, method: &str, path: &str, body: Option<&str>) -> Value {
        let (s, _, v) = self.send(method, path, body, false).await;
        assert!(s.is_success(), "{method} {path}: {s} {v}");
        v
    }
}

/// What `Raw::expect` got.
pub(crate) struct Answer {
    pub body: Value,
}

impl Answer {
    /// The OData error's message (minimal JSON), which the test asserts on.
    pub fn message(&self) -> String {
        odata_error(&self.body, "odata.error")
    }
}

pub(crate) fn enc(id: &str) -> String {
    id.replace(':', "%3A")
}

pub(crate) fn odata_error(v: &Value, key: &str) -> String {
    v[key]["message"]["value"]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} body in {v}"))
        .to_string()
}
