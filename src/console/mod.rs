//! The operations console (`amsplay console`, started by `amsplay local up` too): one web page
//! showing both datacenters side by side, the replication between them, the front door's view
//! of the origins, a player through the front door, and the drill controls.
//!
//! - The page (`page/`: HTML, CSS and plain JavaScript, no build step) and hls.js (`vendor/`,
//!   the npm package's file, checked identical by a test) are compiled into the binary: it
//!   works offline, nothing comes from a CDN.
//! - `overview.rs` gathers what the page shows; while a page watches, a background loop
//!   gathers it every second (or at once after an action) and `GET /api/events` pushes each
//!   change as a server-sent event, so the page updates without reloading. `GET /api/overview`
//!   is the same, once. Nobody watching, the console asks the datacenters nothing.
//! - Actions: `POST /api/replicate {"asset_id"}` replicates an asset of A to B (the
//!   walkthrough's seven steps), `POST /api/fault {"datacenter", "action"}` breaks or heals a
//!   datacenter through the local environment's fault points (`stop`: its origin refuses
//!   connections, `hang`: it accepts and never answers, `storage`: its storage unreachable,
//!   `heal`).
//! - Access: on a loopback address no token is needed; on any other address (or with
//!   `--token`) every request needs the token (`Authorization: Bearer`, or `?token=` once, which
//!   sets a cookie). Nothing it serves contains a key.

mod overview;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::{watch, Notify};

pub use overview::Datacenter;

/// What a console serves and reaches.
pub struct ConsoleConfig {
    pub a: Datacenter,
    pub b: Datacenter,
    /// The front door (for its health and the player).
    pub front: Option<String>,
    /// The local environment's fault points' control address.
    pub faults: Option<SocketAddr>,
    /// Required on every request when set.
    pub token: Option<String>,
    /// Pause between two gatherings of the overview.
    pub refresh: Duration,
}

struct Console {
    config: ConsoleConfig,
    http: reqwest::Client,
    /// The latest overview, as JSON.
    latest: watch::Sender<Option<Arc<str>>>,
    /// Gather again now (after an action, or a page arriving while idle).
    wake: Notify,
    /// When a page last asked for the overview without a live stream.
    polled: Mutex<Option<std::time::Instant>>,
    replicating: Mutex<BTreeSet<String>>,
}

const INDEX: &str = include_str!("page/index.html");
const APP_JS: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/style.css");
/// hls.js as npm ships it (`node_modules/hls.js/dist/hls.min.js`; a test keeps them equal).
pub const HLS_JS: &[u8] = include_bytes!("vendor/hls.min.js");

/// The cookie a `?token=` sets.
const COOKIE: &str = "amsplay_console";

/// Serves the console on `listener` until `shutdown`.
pub async fn serve(
    config: ConsoleConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let loopback = listener.local_addr()?.ip().is_loopback();
    anyhow::ensure!(
        loopback || config.token.is_some(),
        "the console listens on a non-loopback address only with a token (--token or AMSPLAY_CONSOLE_TOKEN)"
    );
    let console = Arc::new(Console {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?,
        config,
        latest: watch::channel(None).0,
        wake: Notify::new(),
        polled: Mutex::new(None),
        replicating: Mutex::new(BTreeSet::new()),
    });
    let gatherer = tokio::spawn(gather_loop(console.clone()));
    let r = crate::server::serve(
        listener,
        router(console),
        crate::server::Limits::default(),
        shutdown,
    )
    .await;
    gatherer.abort();
    Ok(r?)
}

fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { page("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/app.js",
            get(|| async { page("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { page("text/css; charset=utf-8", STYLE) }),
        )
        .route(
            "/lib/hls.min.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    HLS_JS,
                )
            }),
        )
        .route("/api/overview", get(overview))
        .route("/api/events", get(events))
        .route("/api/replicate", post(replicate))
        .route("/api/fault", post(fault))
        .layer(axum::middleware::from_fn_with_state(console.clone(), guard))
        .with_state(console)
}

fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Constant-time equality (a token is compared without telling how much of it matched).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Lets a request through when no token is needed or it carries the token.
async fn guard(
    State(console): State<Arc<Console>>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(token) = console.config.token.as_deref() else {
        return next.run(req).await;
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_string)
        });
    if bearer.is_some_and(|b| same(b, token)) || cookie.is_some_and(|c| same(&c, token)) {
        return next.run(req).await;
    }
    if q.token.as_deref().is_some_and(|t| same(t, token)) {
        let mut r = next.run(req).await;
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
        )) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        return r;
    }
    (
        StatusCode::UNAUTHORIZED,
        "this console needs its token: open the URL `amsplay console` printed (with ?token=…), or send Authorization: Bearer TOKEN\n",
    )
        .into_response()
}

/// How long a page that asked for the overview once keeps the gathering going.
const WATCHED_FOR: Duration = Duration::from_secs(30);

impl Console {
    /// Whether anyone is looking: a live stream open, or a recent `GET /api/overview`.
    fn watched(&self) -> bool {
        self.latest.receiver_count() > 0
            || lock(&self.polled).is_some_and(|t| t.elapsed() < WATCHED_FOR)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Gathers the overview every `refresh` (or when woken) while someone is looking, publishing
/// it when it changed; unwatched (the local environment starts a console nobody may open),
/// it asks the datacenters nothing until a page comes.
async fn gather_loop(console: Arc<Console>) {
    loop {
        if !console.watched() {
            console.wake.notified().await;
            continue;
        }
        let json = gather(&console).await;
        console.latest.send_if_modified(|v| {
            if v.as_deref() == Some(&*json) {
                false
            } else {
                *v = Some(json.clone());
                true
            }
        });
        tokio::select! {
            _ = tokio::time::sleep(console.config.refresh) => {}
            _ = console.wake.notified() => {}
        }
    }
}

async fn gather(console: &Console) -> Arc<str> {
    let c = &console.config;
    let front_status = match &c.front {
        Some(f) => match console.http.get(format!("{f}/status")).send().await {
            Ok(r) => r.json::<serde_json::Value>().await.ok(),
            Err(e) => Some(serde_json::json!({ "error": crate::storage::error_chain(&e) })),
        },
        None => None,
    };
    let faults = match c.faults {
        Some(addr) => crate::faults::Control::new(addr)
            .all()
            .await
            .ok()
            .and_then(|f| serde_json::to_value(f).ok()),
        None => None,
    };
    let replicating = lock(&console.replicating).iter().cloned().collect();
    let o = overview::gather(
        &c.a,
        &c.b,
        c.front.as_deref(),
        front_status,
        faults,
        replicating,
    )
    .await;
    serde_json::to_string(&o).unwrap_or_default().into()
}

fn json(body: Arc<str>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

async fn overview(State(console): State<Arc<Console>>) -> Response {
    let idle = !console.watched();
    *lock(&console.polled) = Some(std::time::Instant::now());
    let latest = console.latest.borrow().clone();
    match latest {
        // While idle the last overview may be old: a fresh one, and the loop woken.
        Some(j) if !idle => json(j),
        _ => {
            console.wake.notify_one();
            json(gather(&console).await)
        }
    }
}

/// Server-sent events: the overview now, then each time it changes.
async fn events(
    State(console): State<Arc<Console>>,
) -> Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let rx = console.latest.subscribe();
    // A page arriving while idle: gather now (its first event is the fresh overview).
    console.wake.notify_one();
    let stream = futures::stream::unfold((rx, true), |(mut rx, first)| async move {
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let data = rx.borrow_and_update().clone();
        let event = Event::default()
            .event("overview")
            .data(data.as_deref().unwrap_or("null"));
        Some((Ok(event), (rx, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[derive(Deserialize)]
struct ReplicateRequest {
    asset_id: String,
}

/// Replicates an asset of A to B in the background; the overview shows it `copying`, then
/// its state.
async fn replicate(
    State(console): State<Arc<Console>>,
    Json(r): Json<ReplicateRequest>,
) -> Response {
    if !lock(&console.replicating).insert(r.asset_id.clone()) {
        return (StatusCode::ACCEPTED, "already replicating\n").into_response();
    }
    console.wake.notify_one();
    let c = console.clone();
    tokio::spawn(async move {
        let (a, b) = (&c.config.a, &c.config.b);
        let result = crate::replicate::replicate(
            &crate::replicate::Side {
                media: &a.media,
                storage: &a.storage,
            },
            &crate::replicate::Side {
                media: &b.media,
                storage: &b.storage,
            },
            &r.asset_id,
            None,
            &crate::storage::CopyOptions::default(),
        )
        .await;
        if let Err(e) = result {
            tracing::warn!(asset = %r.asset_id, error = %e, "replication from the console failed");
        }
        lock(&c.replicating).remove(&r.asset_id);
        c.wake.notify_one();
    });
    (StatusCode::ACCEPTED, "replicating\n").into_response()
}

#[derive(Deserialize)]
struct FaultRequest {
    datacenter: String,
    /// stop, hang, storage or heal.
    action: String,
}

async fn fault(State(console): State<Arc<Console>>, Json(f): Json<FaultRequest>) -> Response {
    use crate::faults::{DatacenterFaults, Mode};
    let Some(addr) = console.config.faults else {
        return (
            StatusCode::CONFLICT,
            "no fault points: the drill controls work on the local environment (amsplay local up)\n",
        )
            .into_response();
    };
    let faults = match f.action.as_str() {
        "stop" => DatacenterFaults {
            origin: Mode::Down,
            ..Default::default()
        },
        "hang" => DatacenterFaults {
            origin: Mode::Hang,
            ..Default::default()
        },
        "storage" => DatacenterFaults {
            storage: Mode::Down,
            ..Default::default()
        },
        "heal" => DatacenterFaults::default(),
        other => {
            return (
                StatusCode::BAD_REQUEST,
                format!("unknown action '{other}'; known: stop, hang, storage, heal\n"),
            )
                .into_response()
        }
    };
    match crate::faults::Control::new(addr)
        .set(&f.datacenter, faults)
        .await
    {
        Ok(()) => {
            console.wake.notify_one();
            (StatusCode::OK, "done\n").into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("{e}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_vendored_hls_js_is_the_npm_packages() {
        let npm = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("node_modules/hls.js/dist/hls.min.js");
        let Ok(npm) = std::fs::read(&npm) else {
            panic!("{} missing: run make setup (npm ci)", npm.display());
        };
        assert!(
            npm == super::HLS_JS,
            "src/console/vendor/hls.min.js differs from npm's: run make console-vendor"
        );
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(super::same("abc", "abc"));
        assert!(!super::same("abc", "abd"));
        assert!(!super::same("abc", "ab"));
    }
}
