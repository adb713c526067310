//! The front door: a failover reverse proxy in front of origins, in priority order.
//!
//! - Active health probes: every origin is asked for `/` every `probe_interval`; it goes down
//!   after `fall` failed probes in a row and up again after `rise` good ones (any answer under
//!   500 in time is good: the emulator's root answers 301).
//! - Passive failover: a request goes to the first healthy origin; if it cannot connect, times
//!   out or answers 5xx, the next origin is tried before the client sees anything, and the failed
//!   origin counts a failure.
//! - Failback: the first healthy origin in priority order always wins, so traffic returns to the
//!   primary once it is up again. Every change of the serving origin is logged.
//! - `GET /status` shows each origin's health and which one serves. Responses carry
//!   `x-served-by` naming the origin that answered.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// How the front door probes and fails over.
#[derive(Debug, Clone)]
pub struct FrontConfig {
    /// Origins in priority order, e.g. `http://127.0.0.1:7001`.
    pub origins: Vec<url::Url>,
    pub probe_interval: Duration,
    /// Failed probes in a row before an origin is down.
    pub fall: u32,
    /// Good probes in a row before it is up again.
    pub rise: u32,
    /// Longest wait for an origin's answer (probe or request).
    pub timeout: Duration,
}

impl FrontConfig {
    pub fn new(origins: Vec<url::Url>) -> Self {
        Self {
            origins,
            probe_interval: Duration::from_millis(500),
            fall: 2,
            rise: 2,
            timeout: Duration::from_secs(2),
        }
    }
}

struct Origin {
    url: String,
    healthy: AtomicBool,
    fails: AtomicU32,
    oks: AtomicU32,
}

struct Front {
    config: FrontConfig,
    origins: Vec<Origin>,
    http: reqwest::Client,
    /// Index of the origin that served last (for logging switches).
    serving: AtomicUsize,
}

impl Front {
    fn mark(&self, i: usize, ok: bool) {
        let o = &self.origins[i];
        if ok {
            o.fails.store(0, Ordering::Relaxed);
            let n = o.oks.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= self.config.rise && !o.healthy.swap(true, Ordering::Relaxed) {
                tracing::warn!(origin = %o.url, "origin is up again");
            }
        } else {
            o.oks.store(0, Ordering::Relaxed);
            let n = o.fails.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= self.config.fall && o.healthy.swap(false, Ordering::Relaxed) {
                tracing::warn!(origin = %o.url, "origin is down");
            }
        }
    }

    /// Healthy origins first (in priority order), then the others as a last resort.
    fn order(&self) -> Vec<usize> {
        let (mut up, down): (Vec<usize>, Vec<usize>) =
            (0..self.origins.len()).partition(|&i| self.origins[i].healthy.load(Ordering::Relaxed));
        up.extend(down);
        up
    }

    fn served_by(&self, i: usize) {
        let before = self.serving.swap(i, Ordering::Relaxed);
        if before != i {
            tracing::warn!(from = %self.origins[before].url, to = %self.origins[i].url, "traffic moved");
        }
    }
}

/// Serves the front door on `listener` until `shutdown`.
pub async fn serve(
    config: FrontConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !config.origins.is_empty(),
        "the front door needs at least one --origin"
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(config.timeout)
        .timeout(config.timeout * 5)
        .pool_max_idle_per_host(64)
        .build()?;
    let front = Arc::new(Front {
        origins: config
            .origins
            .iter()
            .map(|u| Origin {
                url: u.as_str().trim_end_matches('/').to_string(),
                healthy: AtomicBool::new(true),
                fails: AtomicU32::new(0),
                oks: AtomicU32::new(0),
            })
            .collect(),
        config,
        http,
        serving: AtomicUsize::new(0),
    });
    let prober = front.clone();
    let probes = tokio::spawn(async move { probe_loop(prober).await });
    let app = axum::Router::new().fallback(handle).with_state(front);
    tracing::info!(addr = %listener.local_addr()?, "front door listening");
    let r = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    probes.abort();
    r?;
    Ok(())
}

async fn probe_loop(front: Arc<Front>) {
    let mut tick = tokio::time::interval(front.config.probe_interval);
    loop {
        tick.tick().await;
        let checks = front.origins.iter().enumerate().map(|(i, o)| {
            let front = front.clone();
            let url = format!("{}/", o.url);
            async move {
                let ok = matches!(
                    tokio::time::timeout(front.config.timeout, front.http.get(&url).send()).await,
                    Ok(Ok(r)) if r.status().as_u16() < 500
                );
                front.mark(i, ok);
            }
        });
        futures::future::join_all(checks).await;
    }
}

fn status(front: &Front) -> Response {
    let serving = front.serving.load(Ordering::Relaxed);
    let origins: Vec<serde_json::Value> = front
        .origins
        .iter()
        .enumerate()
        .map(|(i, o)| {
            serde_json::json!({
                "url": o.url,
                "healthy": o.healthy.load(Ordering::Relaxed),
                "serving": i == serving,
                "failed_probes": o.fails.load(Ordering::Relaxed),
            })
        })
        .collect();
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        serde_json::json!({ "origins": origins }).to_string(),
    )
        .into_response()
}

const FORWARDED: [&str; 5] = [
    "range",
    "if-none-match",
    "if-modified-since",
    "accept",
    "authorization",
];
const RETURNED: [&str; 8] = [
    "content-type",
    "cache-control",
    "etag",
    "last-modified",
    "content-range",
    "accept-ranges",
    "access-control-allow-origin",
    "location",
];

async fn handle(
    State(front): State<Arc<Front>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path() == "/status" {
        return status(&front);
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut last_error = String::from("no origin answered");
    for i in front.order() {
        let origin = &front.origins[i];
        let mut req = front
            .http
            .request(method.clone(), format!("{}{path}", origin.url))
            .timeout(front.config.timeout * 5);
        for h in FORWARDED {
            if let Some(v) = headers.get(h) {
                req = req.header(h, v);
            }
        }
        if !body.is_empty() {
            req = req.body(body.clone());
        }
        let resp = match tokio::time::timeout(front.config.timeout * 5, req.send()).await {
            Ok(Ok(r)) if r.status().is_server_error() => {
                last_error = format!("{} answered {}", origin.url, r.status());
                front.mark(i, false);
                continue;
            }
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                last_error = format!("{}: {e}", origin.url);
                front.mark(i, false);
                continue;
            }
            Err(_) => {
                last_error = format!("{} timed out", origin.url);
                front.mark(i, false);
                continue;
            }
        };
        let status = resp.status();
        let mut out_headers = Vec::new();
        for h in RETURNED {
            if let Some(v) = resp.headers().get(h) {
                out_headers.push((h, v.clone()));
            }
        }
        // The whole body is read before answering, so a failure mid-body still fails over.
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                last_error = format!("{}: {e}", origin.url);
                front.mark(i, false);
                continue;
            }
        };
        front.served_by(i);
        let mut r = Response::new(Body::from(bytes));
        *r.status_mut() = status;
        for (h, v) in out_headers {
            r.headers_mut().insert(h, v);
        }
        if let Ok(v) = HeaderValue::from_str(&origin.url) {
            r.headers_mut().insert("x-served-by", v);
        }
        return r;
    }
    tracing::error!(%path, error = %last_error, "no origin could answer");
    (
        StatusCode::BAD_GATEWAY,
        format!("no origin could answer: {last_error}"),
    )
        .into_response()
}
