//! The streaming origin: dynamic packaging of the encoder's progressive MP4s behind
//! OnDemandOrigin locators. `/{locator guid}/{name}.ism/manifest` (Smooth, `smooth.rs`),
//! `…/manifest(format=m3u8-aapl)` (HLS with fMP4 segments) and `…/manifest(format=mpd-time-csf)`
//! (DASH, SegmentTimeline), fragments at `QualityLevels(bitrate)/Fragments(video=t[,format=…])`.
//!
//! Each MP4's index is read once with ranged reads (`index.rs`) and cached with its
//! presentation; a fragment is one ranged read of the bytes its samples span, repackaged as
//! `moof` + `mdat` (`fmp4.rs`). Only started, unexpired OnDemandOrigin locators serve; anything
//! else is 404. What is served depends only on the blobs, so two datacenters holding the same
//! blobs answer byte for byte alike.

pub mod fmp4;
pub mod index;
mod manifests;
pub mod smooth;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::ams::model::{locator_type, Asset, IdKind, Locator};
use crate::emulator::AppState;
use crate::storage::Storage;
use index::{Mp4Index, Track};

/// One rendition: a track of one of the MP4s, cut into fragments.
pub struct Rendition {
    pub bitrate: u32,
    pub blob: String,
    pub index: Arc<Mp4Index>,
    video: bool,
    pub fragments: Vec<Range<usize>>,
}

impl Rendition {
    pub fn track(&self) -> &Track {
        let t = if self.video {
            self.index.video()
        } else {
            self.index.audio()
        };
        t.expect("checked when the presentation was loaded")
    }

    pub fn kind(&self) -> &'static str {
        if self.video {
            "video"
        } else {
            "audio"
        }
    }
}

/// What an `.ism` describes, indexed.
pub struct Presentation {
    pub container: String,
    pub video: Vec<Rendition>,
    pub audio: Option<Rendition>,
}

impl Presentation {
    pub fn duration_secs(&self) -> f64 {
        self.video
            .first()
            .map(|v| {
                let t = v.track();
                t.samples.iter().map(|s| s.duration as u64).sum::<u64>() as f64
                    / t.timescale.max(1) as f64
            })
            .unwrap_or(0.0)
    }

    /// Reads the `.ism` and indexes every file it names.
    pub async fn load(storage: &Storage, container: &str, ism: &str) -> Result<Self, String> {
        let info = storage
            .blob(container, ism)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{ism} not found"))?;
        let text = storage
            .get_range(container, ism, 0..info.size)
            .await
            .map_err(|e| e.to_string())?;
        let mut indexes: HashMap<String, Arc<Mp4Index>> = HashMap::new();
        let mut video = Vec::new();
        let mut audio = None;
        for (kind, src, bitrate) in smil_entries(&String::from_utf8_lossy(&text)) {
            let index = match indexes.get(&src) {
                Some(i) => i.clone(),
                None => {
                    let i = Arc::new(
                        Mp4Index::load(storage, container, &src)
                            .await
                            .map_err(|e| e.to_string())?,
                    );
                    indexes.insert(src.clone(), i.clone());
                    i
                }
            };
            if kind == "video" {
                let fragments = index
                    .video()
                    .ok_or_else(|| format!("{src} has no video track"))?
                    .video_fragments();
                video.push(Rendition {
                    bitrate,
                    blob: src,
                    index,
                    video: true,
                    fragments,
                });
            } else if audio.is_none() && index.audio().is_some() {
                audio = Some(Rendition {
                    bitrate,
                    blob: src,
                    index,
                    video: false,
                    fragments: Vec::new(),
                });
            }
        }
        let first = video.first().ok_or("the .ism lists no video")?;
        let vt = first.track();
        let cuts: Vec<f64> = first
            .fragments
            .iter()
            .map(|f| vt.start(f) as f64 / vt.timescale as f64)
            .collect();
        if let Some(a) = &mut audio {
            a.fragments = a.track().fragments_at(&cuts);
        }
        Ok(Self {
            container: container.to_string(),
            video,
            audio,
        })
    }

    fn rendition(&self, kind: &str, bitrate: u32) -> Option<&Rendition> {
        match kind {
            "video" => self.video.iter().find(|v| v.bitrate == bitrate),
            "audio" => self.audio.as_ref().filter(|a| a.bitrate == bitrate),
            _ => None,
        }
    }
}

/// `(kind, src, systemBitrate)` of each `<video>` / `<audio>` of a SMIL server manifest.
fn smil_entries(text: &str) -> Vec<(String, String, u32)> {
    let attr = |tag: &str, name: &str| {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        Some(tag[start..].split('"').next()?.to_string())
    };
    let mut out = Vec::new();
    for kind in ["video", "audio"] {
        for part in text.split(&format!("<{kind} ")).skip(1) {
            let tag = part.split('>').next().unwrap_or_default();
            if let (Some(src), Some(b)) = (
                attr(tag, "src"),
                attr(tag, "systemBitrate").and_then(|b| b.parse().ok()),
            ) {
                out.push((kind.to_string(), src, b));
            }
        }
    }
    out
}

/// Presentations already indexed, and recently served fragments (an origin shield).
#[derive(Default)]
pub struct Cache {
    presentations: Mutex<HashMap<String, Arc<Presentation>>>,
    fragments: Mutex<FragmentCache>,
}

/// Bytes of fragments kept in memory.
pub const FRAGMENT_CACHE_BYTES: usize = 256 << 20;

/// Fragments by key, the least recently used evicted first once over the byte budget.
#[derive(Default)]
struct FragmentCache {
    entries: HashMap<String, (Body, u64)>,
    order: std::collections::BTreeMap<u64, String>,
    tick: u64,
    bytes: usize,
}

/// A packaged body and its ETag.
#[derive(Clone)]
struct Body {
    data: bytes::Bytes,
    etag: String,
}

impl Body {
    fn new(data: Vec<u8>) -> Self {
        use md5::{Digest, Md5};
        let etag = format!("\"{}\"", hex::encode(Md5::digest(&data)));
        Self {
            data: data.into(),
            etag,
        }
    }
}

impl FragmentCache {
    fn get(&mut self, key: &str) -> Option<Body> {
        self.tick += 1;
        let tick = self.tick;
        let (body, old) = self.entries.get_mut(key)?;
        self.order.remove(old);
        *old = tick;
        self.order.insert(tick, key.to_string());
        Some(body.clone())
    }

    fn put(&mut self, key: String, body: Body) {
        if body.data.len() > FRAGMENT_CACHE_BYTES / 4 {
            return;
        }
        self.tick += 1;
        self.bytes += body.data.len();
        if let Some((old, t)) = self.entries.insert(key.clone(), (body, self.tick)) {
            self.bytes -= old.data.len();
            self.order.remove(&t);
        }
        self.order.insert(self.tick, key);
        while self.bytes > FRAGMENT_CACHE_BYTES {
            let Some((_, k)) = self.order.pop_first() else {
                break;
            };
            if let Some((b, _)) = self.entries.remove(&k) {
                self.bytes -= b.data.len();
            }
        }
    }
}

fn plain(status: StatusCode, message: &str) -> Response {
    let mut r = (status, message.to_string()).into_response();
    r.headers_mut()
        .insert("access-control-allow-origin", HeaderValue::from_static("*"));
    r
}

/// A 200 (or a 206 for a satisfiable `Range`) with the caching and CORS headers players need.
fn reply(content_type: &'static str, max_age: u32, body: Body, range: Option<&str>) -> Response {
    let total = body.data.len() as u64;
    let mut r = match range.map(|r| parse_range(r, total)) {
        Some(None) => {
            let mut r = (StatusCode::RANGE_NOT_SATISFIABLE, "").into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                r.headers_mut().insert("content-range", v);
            }
            r
        }
        Some(Some((a, b))) => {
            let mut r = (
                StatusCode::PARTIAL_CONTENT,
                body.data.slice(a as usize..=b as usize),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{total}")) {
                r.headers_mut().insert("content-range", v);
            }
            r
        }
        None => (StatusCode::OK, body.data.clone()).into_response(),
    };
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(content_type));
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert("accept-ranges", HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        h.insert("cache-control", v);
    }
    if let Ok(v) = HeaderValue::from_str(&body.etag) {
        h.insert("etag", v);
    }
    r
}

/// One `bytes=a-b`, `bytes=a-` or `bytes=-n` range, clamped; None when unsatisfiable.
fn parse_range(header: &str, total: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || total == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (total.saturating_sub(n), total - 1)
        }
        (a, "") => (a.parse().ok()?, total - 1),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.min(total - 1)),
    };
    (start <= end && start < total).then_some((start, end))
}

/// The locator's asset, if the locator may serve now.
fn serving_asset(st: &AppState, guid: &uuid::Uuid) -> Option<Asset> {
    let l: Locator =
        serde_json::from_value(st.db.get("Locators", &IdKind::Locator.id(guid)).ok()??).ok()?;
    let now = time::OffsetDateTime::now_utc();
    if l.kind != locator_type::ON_DEMAND_ORIGIN
        || l.start_time > now
        || l.expiration_date_time <= now
    {
        return None;
    }
    serde_json::from_value(st.db.get("Assets", &l.asset_id).ok()??).ok()
}

/// Answers an origin request (`/{guid}/…`); None when the path is not one.
pub async fn handle(st: &AppState, path: &str, range: Option<&str>) -> Option<Response> {
    let (first, rest) = path.strip_prefix('/')?.split_once('/')?;
    let guid = uuid::Uuid::parse_str(first).ok()?;
    let Some(asset) = serving_asset(st, &guid) else {
        return Some(plain(
            StatusCode::NOT_FOUND,
            "no started, unexpired OnDemandOrigin locator with this id",
        ));
    };
    let rest = crate::ams::auth::urldecode(rest);
    let Some(split) = rest.to_ascii_lowercase().find(".ism/") else {
        return Some(plain(
            StatusCode::NOT_FOUND,
            "expected /{locator}/{name}.ism/manifest(format=…)",
        ));
    };
    let (ism, tail) = (&rest[..split + 4], &rest[split + 5..]);
    let container = asset.container();
    let key = format!("{container}/{ism}");
    let cached = st
        .origin
        .presentations
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned();
    let p = match cached {
        Some(p) => p,
        None => match Presentation::load(&st.storage, &container, ism).await {
            Ok(p) => {
                let p = Arc::new(p);
                st.origin
                    .presentations
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, p.clone());
                p
            }
            Err(e) => {
                return Some(plain(
                    StatusCode::NOT_FOUND,
                    &format!("cannot package {ism}: {e}"),
                ))
            }
        },
    };
    Some(serve(st, &p, tail, range).await.unwrap_or_else(|e| e))
}

async fn serve(
    st: &AppState,
    p: &Presentation,
    tail: &str,
    range: Option<&str>,
) -> Result<Response, Response> {
    let bad = |m: &str| plain(StatusCode::BAD_REQUEST, m);
    match tail {
        "manifest(format=m3u8-aapl)" => {
            let body = Body::new(manifests::hls_master(p).into_bytes());
            return Ok(reply("application/vnd.apple.mpegurl", 60, body, range));
        }
        "manifest(format=mpd-time-csf)" => {
            let body = Body::new(manifests::dash(p).into_bytes());
            return Ok(reply("application/dash+xml", 60, body, range));
        }
        "manifest" => {
            let body = Body::new(smooth::manifest(p).into_bytes());
            return Ok(reply("application/vnd.ms-sstr+xml", 60, body, range));
        }
        _ => {}
    }
    let (ql, what) = tail
        .split_once('/')
        .ok_or_else(|| plain(StatusCode::NOT_FOUND, "unknown path"))?;
    let bitrate: u32 = ql
        .strip_prefix("QualityLevels(")
        .and_then(|r| r.strip_suffix(')'))
        .and_then(|b| b.parse().ok())
        .ok_or_else(|| bad("expected QualityLevels(bitrate)"))?;
    if let Some(args) = what
        .strip_prefix("Manifest(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let kind = args.split(',').next().unwrap_or_default();
        let r = p
            .rendition(kind, bitrate)
            .ok_or_else(|| plain(StatusCode::NOT_FOUND, "no such quality level"))?;
        return Ok(reply(
            "application/vnd.apple.mpegurl",
            60,
            Body::new(manifests::hls_media(r).into_bytes()),
            range,
        ));
    }
    let what = what
        .strip_suffix(".m4s")
        .or_else(|| what.strip_suffix(".mp4"))
        .unwrap_or(what);
    let args = what
        .strip_prefix("Fragments(")
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| bad("expected Fragments(kind=time,format=…)"))?;
    let (kind, t) = args
        .split(',')
        .next()
        .unwrap_or_default()
        .split_once('=')
        .ok_or_else(|| bad("expected Fragments(kind=time)"))?;
    let r = p
        .rendition(kind, bitrate)
        .ok_or_else(|| plain(StatusCode::NOT_FOUND, "no such quality level"))?;
    let track = r.track();
    let mime = if r.video { "video/mp4" } else { "audio/mp4" };
    // Without a format it is a Smooth fragment, its time in 10 MHz ticks; with one, fMP4.
    let smooth = !args.contains("format=");
    let key = format!(
        "{}/{}/{}/{}{t}",
        p.container,
        r.blob,
        track.id,
        if smooth { "smooth/" } else { "" }
    );
    let cached = st
        .origin
        .fragments
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key);
    if let Some(body) = cached {
        return Ok(reply(mime, 86400, body, range));
    }
    let body = if t == "i" && !smooth {
        fmp4::init_segment(&r.index, track).map_err(|e| bad(&e))?
    } else {
        let start: u64 = t
            .parse()
            .map_err(|_| bad("the fragment time is not a number"))?;
        let found = if smooth {
            smooth::fragment_at(r, start)
        } else {
            r.fragments
                .iter()
                .enumerate()
                .find(|(_, f)| track.start(f) == start)
                .map(|(i, f)| (i, f.clone()))
        };
        let (seq, frag) =
            found.ok_or_else(|| plain(StatusCode::NOT_FOUND, "no fragment starts at that time"))?;
        let span = fmp4::span(track, frag.clone());
        let data = st
            .storage
            .get_range(&p.container, &r.blob, span.clone())
            .await
            .map_err(|e| plain(StatusCode::BAD_GATEWAY, &format!("storage: {e}")))?;
        let packaged = if smooth {
            smooth::fragment(track, frag, seq as u32 + 1, &data, span.start)
        } else {
            fmp4::media_segment(track, frag, seq as u32 + 1, &data, span.start)
        };
        packaged.map_err(|e| bad(&e))?
    };
    let body = Body::new(body);
    st.origin
        .fragments
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .put(key, body.clone());
    Ok(reply(mime, 86400, body, range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
    }

    #[test]
    fn the_fragment_cache_keeps_to_its_budget() {
        let mut c = FragmentCache::default();
        let chunk = FRAGMENT_CACHE_BYTES / 8;
        for i in 0..20 {
            c.put(format!("k{i}"), Body::new(vec![0u8; chunk]));
        }
        assert!(c.bytes <= FRAGMENT_CACHE_BYTES);
        assert!(c.get("k0").is_none(), "the oldest went first");
        assert!(c.get("k19").is_some());
    }
}
