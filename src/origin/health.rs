//! The origin's deep health: 200 only when this origin can serve, that is when its locator
//! database and its storage both answer; 503 otherwise. Edges probe it (`GET /health`) instead
//! of a page that touches neither, so an origin whose storage is gone is taken out of rotation
//! even though its process answers. One check runs at a time and its answer is reused for
//! `FRESH`, so a crowd of probes costs one storage call.

use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// How long one check's answer is reused.
pub const FRESH: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Health {
    pub status: &'static str,
    pub database: &'static str,
    pub storage: &'static str,
    /// What the fragment cache holds, for operators (not part of the verdict).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<super::cache::CacheStats>,
}

impl Health {
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }

    /// The answer of an origin whose streaming endpoint is stopped.
    pub fn stopped() -> Self {
        Self {
            status: "stopped",
            database: "unchecked",
            storage: "unchecked",
            cache: None,
        }
    }

    pub fn of(database: bool, storage: bool) -> Self {
        let word = |ok: bool| if ok { "ok" } else { "unavailable" };
        Self {
            status: word(database && storage),
            database: word(database),
            storage: word(storage),
            cache: None,
        }
    }
}

impl IntoResponse for Health {
    fn into_response(self) -> Response {
        let status = if self.ok() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let mut r = (status, axum::Json(&self)).into_response();
        let h = r.headers_mut();
        h.insert("cache-control", HeaderValue::from_static("no-store"));
        if !self.ok() {
            h.insert(
                "retry-after",
                HeaderValue::from(super::error::RETRY_AFTER_SECS),
            );
        }
        r
    }
}

/// The last answer, shared by concurrent probes.
#[derive(Default)]
pub struct HealthCache {
    last: tokio::sync::Mutex<Option<(Health, Instant)>>,
}

impl HealthCache {
    /// The fresh answer, or `check`'s (run by one caller while the others wait for it).
    pub async fn get<F: std::future::Future<Output = Health>>(&self, check: F) -> Health {
        let mut last = self.last.lock().await;
        if let Some((h, at)) = last.as_ref() {
            if at.elapsed() < FRESH {
                return h.clone();
            }
        }
        let h = check.await;
        *last = Some((h.clone(), Instant::now()));
        h
    }
}
