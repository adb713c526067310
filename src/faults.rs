//! Fault points: the network paths of a datacenter, made to fail on demand.
//!
//! A fault point is a TCP relay between a client and the address it would otherwise reach. The
//! local environment puts one on each datacenter's path to storage (the emulator and its origin
//! reach Azurite through it) and one before each origin (players and the front door reach the
//! origin through it), so an outage can be injected where real ones happen, in the network,
//! with every part above it running unchanged. Playbooks reach storage directly, so their
//! server-side copies keep working while a datacenter's own path to storage is broken.
//!
//! Modes, switchable at any time (live connections follow the new mode at once):
//! - `ok`: bytes pass;
//! - `down`: connections are refused (the listener is closed) and live ones are cut;
//! - `hang`: connections are accepted and never answered; live ones stall;
//! - `slow`: every chunk a client sends waits `latency_ms` before it is passed on (so every
//!   request's first byte comes that much later);
//! - `503`: every request is answered `503 Service Unavailable` by the fault point itself;
//! - `cut`: answers pass until `cut_bytes` bytes have gone to the client on a connection, then
//!   the connection is cut (a datacenter dying in the middle of a response).
//!
//! `amsplay faults --config FILE` runs a set of fault points with a control API: `GET /faults`
//! shows each datacenter's modes, `PUT /faults/{datacenter}` sets them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What a fault point does with traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Ok,
    Down,
    Hang,
    Slow,
    #[serde(rename = "503")]
    Unavailable,
    Cut,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(s.to_ascii_lowercase()))
            .map_err(|_| format!("'{s}' is not a fault mode; use ok, down, hang, slow, 503 or cut"))
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Ok => "ok",
            Mode::Down => "down",
            Mode::Hang => "hang",
            Mode::Slow => "slow",
            Mode::Unavailable => "503",
            Mode::Cut => "cut",
        })
    }
}

/// The faults of one datacenter: its path to storage and its origin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatacenterFaults {
    pub storage: Mode,
    pub origin: Mode,
    /// Added to every request in `slow` mode.
    pub latency_ms: u64,
    /// Bytes a connection passes to its client in `cut` mode before it is cut (0: 64 KiB).
    pub cut_bytes: u64,
}

/// Which link of a datacenter a fault point sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    Storage,
    Origin,
}

/// One fault point as the configuration file names it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PointSpec {
    pub datacenter: String,
    pub link: Link,
    pub listen: SocketAddr,
    pub upstream: SocketAddr,
}

/// `amsplay faults --config FILE`: where the control API listens and the fault points.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultsConfig {
    pub control: SocketAddr,
    pub points: Vec<PointSpec>,
}

/// A mode and its latency, as one fault point sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Setting {
    mode: Mode,
    latency: Duration,
    cut_bytes: u64,
}

/// Runs a set of fault points until `shutdown`; prints nothing, serves the control API on the
/// already bound `control` listener.
pub async fn run(
    config: FaultsConfig,
    control: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut datacenters: BTreeMap<String, watch::Sender<DatacenterFaults>> = BTreeMap::new();
    for p in &config.points {
        let tx = datacenters
            .entry(p.datacenter.clone())
            .or_insert_with(|| watch::channel(DatacenterFaults::default()).0);
        let link = p.link;
        let setting = watch_setting(tx.subscribe(), link);
        tokio::spawn(point(p.clone(), setting));
    }
    let app = axum::Router::new()
        .route("/faults", axum::routing::get(list))
        .route(
            "/faults/{datacenter}",
            axum::routing::get(get_one).put(set_one),
        )
        .with_state(Arc::new(datacenters));
    crate::server::serve(control, app, crate::server::Limits::default(), shutdown).await
}

/// The setting of one path, following the datacenter's faults.
fn watch_setting(
    mut dc: watch::Receiver<DatacenterFaults>,
    link: Link,
) -> watch::Receiver<Setting> {
    let pick = move |f: &DatacenterFaults| Setting {
        mode: match link {
            Link::Storage => f.storage,
            Link::Origin => f.origin,
        },
        latency: Duration::from_millis(f.latency_ms),
        cut_bytes: if f.cut_bytes == 0 {
            64 << 10
        } else {
            f.cut_bytes
        },
    };
    let (tx, rx) = watch::channel(pick(&dc.borrow()));
    tokio::spawn(async move {
        while dc.changed().await.is_ok() {
            let s = pick(&dc.borrow_and_update());
            tx.send_if_modified(|old| std::mem::replace(old, s) != s);
        }
    });
    rx
}

type Datacenters = Arc<BTreeMap<String, watch::Sender<DatacenterFaults>>>;

async fn list(State(dcs): State<Datacenters>) -> Json<BTreeMap<String, DatacenterFaults>> {
    Json(dcs.iter().map(|(k, v)| (k.clone(), *v.borrow())).collect())
}

fn unknown(dcs: &Datacenters, name: &str) -> Response {
    let known: Vec<&str> = dcs.keys().map(String::as_str).collect();
    (
        StatusCode::NOT_FOUND,
        format!("no datacenter '{name}'; known: {}", known.join(", ")),
    )
        .into_response()
}

async fn get_one(State(dcs): State<Datacenters>, Path(name): Path<String>) -> Response {
    match dcs.get(&name) {
        Some(tx) => Json(*tx.borrow()).into_response(),
        None => unknown(&dcs, &name),
    }
}

async fn set_one(
    State(dcs): State<Datacenters>,
    Path(name): Path<String>,
    Json(faults): Json<DatacenterFaults>,
) -> Response {
    match dcs.get(&name) {
        Some(tx) => {
            tracing::warn!(datacenter = %name, storage = %faults.storage, origin = %faults.origin, latency_ms = faults.latency_ms, "faults set");
            tx.send_replace(faults);
            Json(faults).into_response()
        }
        None => unknown(&dcs, &name),
    }
}

/// One fault point: listens while its mode is not `down`, relays each connection.
async fn point(spec: PointSpec, mut setting: watch::Receiver<Setting>) {
    loop {
        if setting.borrow_and_update().mode == Mode::Down {
            if setting.changed().await.is_err() {
                return;
            }
            continue;
        }
        let listener = match TcpListener::bind(spec.listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(addr = %spec.listen, error = %e, "fault point cannot listen; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        loop {
            tokio::select! {
                r = listener.accept() => {
                    if let Ok((client, _)) = r {
                        let _ = client.set_nodelay(true);
                        tokio::spawn(relay(client, spec.upstream, setting.clone()));
                    }
                }
                changed = setting.changed() => {
                    if changed.is_err() { return; }
                    if setting.borrow().mode == Mode::Down { break; }
                }
            }
        }
    }
}

/// Waits until the setting is no longer `mode`.
async fn until_not(setting: &mut watch::Receiver<Setting>, mode: Mode) {
    while setting.borrow_and_update().mode == mode {
        if setting.changed().await.is_err() {
            return;
        }
    }
}

const UNAVAILABLE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain\r\nContent-Length: 28\r\nConnection: close\r\n\r\nfault point: 503 by request\n";

async fn relay(mut client: TcpStream, upstream: SocketAddr, mut setting: watch::Receiver<Setting>) {
    let mode = setting.borrow_and_update().mode;
    match mode {
        Mode::Down => return,
        Mode::Hang => return until_not(&mut setting, Mode::Hang).await,
        Mode::Unavailable => {
            // The request's head first (as a server would), then the answer.
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            let read_head = async {
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 << 10 {
                    match client.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), read_head).await;
            let _ = client.write_all(UNAVAILABLE).await;
            let _ = client.shutdown().await;
            return;
        }
        Mode::Ok | Mode::Slow | Mode::Cut => {}
    }
    let Ok(Ok(server)) =
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(upstream)).await
    else {
        return;
    };
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    // Either direction ending in error (a cut) ends both; a clean end of one is passed on as
    // a half-close and the other goes on.
    let _ = tokio::try_join!(
        pump(cr, sw, setting.clone(), true),
        pump(sr, cw, setting, false)
    );
}

/// Copies one direction, obeying the setting chunk by chunk.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut setting: watch::Receiver<Setting>,
    delay: bool,
) -> std::io::Result<()> {
    let cut = || std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "fault point");
    let mut buf = vec![0u8; 64 << 10];
    // Bytes passed to the client since the mode became `cut`.
    let mut passed_in_cut = 0u64;
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => r?,
            changed = setting.changed() => {
                if changed.is_err() { return Err(cut()); }
                match setting.borrow().mode {
                    Mode::Ok | Mode::Slow | Mode::Cut => continue,
                    Mode::Hang => {}
                    Mode::Down | Mode::Unavailable => return Err(cut()),
                }
                until_not(&mut setting, Mode::Hang).await;
                return Err(cut());
            }
        };
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        let s = *setting.borrow_and_update();
        if s.mode != Mode::Cut {
            passed_in_cut = 0;
        }
        match s.mode {
            Mode::Cut if !delay => {
                let room = s.cut_bytes.saturating_sub(passed_in_cut);
                if (n as u64) >= room {
                    to.write_all(&buf[..room as usize]).await?;
                    return Err(cut());
                }
                passed_in_cut += n as u64;
            }
            Mode::Ok | Mode::Cut => {}
            Mode::Slow if delay => tokio::time::sleep(s.latency).await,
            Mode::Slow => {}
            Mode::Hang => {
                until_not(&mut setting, Mode::Hang).await;
                return Err(cut());
            }
            Mode::Down | Mode::Unavailable => return Err(cut()),
        }
        to.write_all(&buf[..n]).await?;
    }
}

/// A client of a fault points' control API.
#[derive(Debug, Clone)]
pub struct Control {
    base: String,
    http: reqwest::Client,
}

impl Control {
    /// The control API at `http://ADDR`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
        }
    }

    async fn answer<T: serde::de::DeserializeOwned>(
        r: reqwest::Result<reqwest::Response>,
    ) -> Result<T, String> {
        let r = r.map_err(|e| format!("the fault points do not answer: {e}"))?;
        if !r.status().is_success() {
            return Err(r.text().await.unwrap_or_default());
        }
        r.json().await.map_err(|e| e.to_string())
    }

    /// Every datacenter's faults.
    pub async fn all(&self) -> Result<BTreeMap<String, DatacenterFaults>, String> {
        Self::answer(self.http.get(format!("{}/faults", self.base)).send().await).await
    }

    /// Sets a datacenter's faults.
    pub async fn set(&self, datacenter: &str, faults: DatacenterFaults) -> Result<(), String> {
        Self::answer::<DatacenterFaults>(
            self.http
                .put(format!("{}/faults/{datacenter}", self.base))
                .json(&faults)
                .send()
                .await,
        )
        .await
        .map(|_| ())
    }
}
