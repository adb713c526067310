//! The front door (`amsplay front`): a failover reverse proxy for players, in front of
//! origins in priority order.
//!
//! Rules, each there because an outage mode broke without it:
//! - **Health** (`origins.rs`): active probes of each origin's deep health endpoint
//!   (`/health`: 200 only when the origin's database and storage answer), and outlier
//!   ejection: a timeout, reset or 5xx on a streaming path takes an origin out for a
//!   cool-down even while its probe passes. A client's bad request (a 4xx, `OPTIONS *`, an
//!   API path) never counts against an origin. Origins known to be out are skipped without
//!   waiting; with none available the answer is an immediate 503 with `Retry-After`.
//! - **Only GET and HEAD** are proxied. A CORS preflight is answered here, never forwarded;
//!   other methods get 405. Credentials (`Authorization`, `Cookie`) are never forwarded, so
//!   nothing meant for one datacenter reaches another.
//! - **Failover before the first byte**: connect + response headers must come within
//!   `timeout`, else the next available origin is asked. API paths go to the first available
//!   origin only, never retried elsewhere.
//! - **Streaming with resume** (`body.rs`): bodies stream through (a few chunks in memory per
//!   connection, whatever the fragment size); if the origin fails mid-body, the rest is asked
//!   of the next origin with a `Range` request guarded by the ETag (both datacenters serve
//!   identical bytes), so the player sees one complete response.
//! - **A cache** (`cache.rs`, on by default, `--cache-mb`/`--no-cache`): bodies the origins
//!   mark `public, max-age` (fragments a day, manifests a minute) are kept as they stream
//!   through and answered from memory (`x-cache: HIT`), also while every origin is down.
//! - `GET /status` shows each origin's health; responses carry `x-served-by`.

mod body;
mod cache;
pub mod nginx;
mod origins;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use origins::Origins;
#[cfg(test)]
use origins::EJECT_FOR;

/// How the front door probes and fails over.
#[derive(Debug, Clone)]
pub struct FrontConfig {
    /// Origins in priority order, e.g. `http://127.0.0.1:7001`.
    pub origins: Vec<url::Url>,
    pub probe_interval: Duration,
    /// The path probed on each origin.
    pub probe_path: String,
    /// Failed probes in a row before an origin is down.
    pub fall: u32,
    /// Good probes in a row before it is up again.
    pub rise: u32,
    /// Longest wait for an origin's response headers (connect included), and for each chunk
    /// of its body.
    pub timeout: Duration,
    /// How long an origin that failed a streaming request stays out.
    pub eject_for: Duration,
    /// Bytes of streaming bodies kept in memory; 0: no cache.
    pub cache_bytes: usize,
    pub limits: crate::server::Limits,
}

impl FrontConfig {
    /// The defaults the tests start from (the CLI sets every field from its flags).
    #[cfg(test)]
    pub fn new(origins: Vec<url::Url>) -> Self {
        Self {
            origins,
            probe_interval: Duration::from_millis(500),
            probe_path: "/health".into(),
            fall: 2,
            rise: 2,
            timeout: Duration::from_secs(2),
            eject_for: EJECT_FOR,
            cache_bytes: 0,
            limits: crate::server::Limits::default(),
        }
    }
}

struct Front {
    origins: Arc<Origins>,
    http: reqwest::Client,
    timeout: Duration,
    cache: Option<Arc<cache::Cache>>,
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
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .build()?;
    let origins = Arc::new(Origins::new(&config));
    let probes = tokio::spawn(origins::probe_loop(origins.clone(), http.clone()));
    let front = Arc::new(Front {
        origins,
        http,
        timeout: config.timeout,
        cache: (config.cache_bytes > 0).then(|| Arc::new(cache::Cache::new(config.cache_bytes))),
    });
    let app = axum::Router::new().fallback(handle).with_state(front);
    tracing::info!(addr = %listener.local_addr()?, "front door listening");
    let r = crate::server::serve(listener, app, config.limits, shutdown).await;
    probes.abort();
    r?;
    Ok(())
}

/// Request headers passed to origins; credentials are not among them.
const FORWARDED: [&str; 7] = [
    "range",
    "if-range",
    "if-none-match",
    "if-modified-since",
    "accept",
    "accept-language",
    "user-agent",
];

/// Response headers not passed back (hop by hop).
const HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
];

fn plain(status: StatusCode, message: &str) -> Response {
    let mut r = (status, format!("{message}\n")).into_response();
    let h = r.headers_mut();
    crate::cors::allow(h);
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    r
}

async fn handle(
    State(front): State<Arc<Front>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if crate::cors::is_preflight(&method, &headers) {
        return crate::cors::preflight(&headers);
    }
    if method == Method::GET && uri.path() == "/status" {
        return (
            [("content-type", "application/json")],
            front.origins.status().to_string(),
        )
            .into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "the front door serves GET and HEAD (and answers CORS preflights)",
        );
        r.headers_mut()
            .insert("allow", HeaderValue::from_static("GET, HEAD, OPTIONS"));
        return r;
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    // Only streaming paths fail over and count against an origin.
    let streaming = crate::origin::owns(uri.path());
    if let Some(cache) = front.cache.as_ref().filter(|_| streaming) {
        if let Some(r) = cache.answer(path, &headers) {
            return r;
        }
    }
    let mut order = front.origins.order(None);
    if !streaming {
        order.truncate(1);
    }
    if order.is_empty() {
        return unavailable("no origin can serve right now");
    }
    let mut last = String::new();
    for i in order {
        let origin = &front.origins.list[i];
        match front.ask(i, &method, path, &headers, None).await {
            Ok(resp) if streaming && resp.status().is_server_error() => {
                last = format!("{} answered {}", origin.url, resp.status());
                front.origins.eject(i, &last);
            }
            Ok(resp) => return front.relay(i, &method, path, &headers, resp, streaming),
            Err(e) => {
                last = format!("{}: {e}", origin.url);
                if streaming {
                    front.origins.eject(i, &last);
                }
            }
        }
    }
    tracing::warn!(%path, error = %last, "no origin could answer");
    unavailable("no origin could answer; retry shortly")
}

/// 503 with `Retry-After: 1`: players and edges come back in a second.
fn unavailable(message: &str) -> Response {
    let mut r = plain(StatusCode::SERVICE_UNAVAILABLE, message);
    r.headers_mut()
        .insert("retry-after", HeaderValue::from_static("1"));
    r
}

impl Front {
    /// Sends a request to origin `i`: its response headers within the timeout, or an error.
    async fn ask(
        &self,
        i: usize,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        range: Option<(&str, &str)>,
    ) -> Result<reqwest::Response, String> {
        let origin = &self.origins.list[i];
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", origin.url));
        for h in FORWARDED {
            if range.is_some() && (h == "range" || h == "if-range") {
                continue;
            }
            if let Some(v) = headers.get(h) {
                req = req.header(h, v);
            }
        }
        if let Some((range, etag)) = range {
            req = req.header("range", range).header("if-range", etag);
        }
        match tokio::time::timeout(self.timeout, req.send()).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(crate::storage::error_chain(&e)),
            Err(_) => Err(format!(
                "no response within {} ms",
                self.timeout.as_millis()
            )),
        }
    }

    /// The client's response: the origin's status and headers, its body streamed through
    /// (and resumed elsewhere should the origin fail in the middle of a streaming body).
    fn relay(
        self: &Arc<Self>,
        i: usize,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        resp: reqwest::Response,
        streaming: bool,
    ) -> Response {
        if resp.status().is_success() {
            self.origins.served_by(i);
        }
        let status = resp.status();
        let mut out = Response::builder().status(status);
        for (k, v) in resp.headers() {
            if !HOP.contains(&k.as_str()) {
                out = out.header(k, v);
            }
        }
        let served_by = HeaderValue::from_str(&self.origins.list[i].url)
            .unwrap_or(HeaderValue::from_static("?"));
        out = out.header(HeaderName::from_static("x-served-by"), served_by.clone());
        let cache = self.cache.as_ref().filter(|_| streaming);
        if cache.is_some() {
            out = out.header("x-cache", "MISS");
        }
        let body = if *method == Method::HEAD {
            axum::body::Body::empty()
        } else {
            let resume = streaming
                .then(|| body::Resume::plan(&resp, path, headers))
                .flatten();
            // Only a plain GET fills the cache (a Range asks for part of the body).
            let fill = cache
                .filter(|_| !headers.contains_key("range"))
                .and_then(|c| c.fill(path, &resp, &served_by));
            axum::body::Body::from_stream(body::stream(self.clone(), i, resp, resume, fill))
        };
        out.body(body)
            .unwrap_or_else(|_| plain(StatusCode::BAD_GATEWAY, "the origin's answer was malformed"))
    }
}
