//! The streaming origin: dynamic packaging of the encoder's progressive MP4s behind
//! OnDemandOrigin locators, a component of its own that the emulator serves beside its API.
//!
//! Paths: `/{locator guid}/{name}.ism/manifest` (Smooth, `smooth.rs`),
//! `…/manifest(format=m3u8-aapl)` (HLS with fMP4 segments) and `…/manifest(format=mpd-time-csf)`
//! (DASH, SegmentTimeline), fragments at `QualityLevels(bitrate)/Fragments(video=t[,format=…])`;
//! `/health` is the deep health check edges probe (`health.rs`).
//!
//! - `presentation.rs`: an `.ism` and the indexes of its MP4s (`index.rs`), read in two rounds
//!   of storage requests (the container's listing beside the `.ism`, then every MP4's head at
//!   once), cached; each rendition's fragments cut into fixed runs of up to 8 MiB;
//! - a fragment asked for the first time is read with the rest of its run in one ranged read
//!   (storage answers a few large reads far faster than many small ones, and fixed runs make
//!   a crowd arriving in any order read each once), repackaged as `moof`+`mdat` (`fmp4.rs`,
//!   `smooth.rs`); the same bytes also give the fragments of the file's other track (an MP4
//!   interleaves audio with video); all are kept in a size-bounded cache (`cache.rs`) under an
//!   XXH3 ETag; serving fragment n reads up to 24 MiB further ahead in the background, and the
//!   run at the same time of every other rendition (players switch rungs), so a standby that
//!   just took over warms up at the speed players ask;
//! - `locators.rs`: which locators may serve, looked up in the emulator's database at most
//!   every 500 ms per locator;
//! - `warm.rs`: a client's side, asking an origin for every manifest of a presentation so
//!   a standby has read its indexes before players arrive (the walkthrough's last step);
//! - `error.rs`: 404 only for what does not exist, 400 for malformed paths, 503 with
//!   `Retry-After` when storage cannot answer within `storage_timeout`.
//!
//! What is served depends only on the blobs, so two datacenters holding the same blobs answer
//! byte for byte alike (same ETags too).

mod backlog;
mod cache;
pub mod error;
pub mod fmp4;
mod health;
pub mod index;
pub mod locators;
mod manifests;
pub mod presentation;
pub mod smooth;
pub mod warm;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::retry::RetryPolicy;
use crate::storage::Storage;
use cache::{Body, Cache};
pub use error::OriginError;
pub use health::Health;
use health::HealthCache;
pub use locators::{LiveLocator, LocatorSource, Locators};
pub use presentation::{Presentation, Rendition};

/// How an origin treats its storage.
#[derive(Debug, Clone, Copy)]
pub struct OriginConfig {
    /// Longest wait for one storage read (retries included); past it the request is a 503.
    pub storage_timeout: Duration,
    /// Fragments of a rendition read ahead of the one asked for (at most
    /// `READ_AHEAD_WINDOW` bytes of them, a run of at most `presentation::run_bytes` a read);
    /// 0 reads only what is asked, a fragment at a time.
    pub read_ahead: usize,
    /// Bytes of packaged fragments kept in memory (presentation indexes: a quarter of it).
    pub cache_bytes: usize,
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            storage_timeout: Duration::from_secs(3),
            read_ahead: 32,
            cache_bytes: cache::FRAGMENT_CACHE_BYTES,
        }
    }
}

/// Reads under way at once, clients' included, past which read-ahead waits (`backlog.rs`;
/// a client's read always starts). Each is a run of at most `presentation::RUN_BYTES`: this
/// bounds what read-ahead holds at once. Storage serves a few reads at once a little faster
/// than one at a time (Azurite: three at once about 1.4 times one).
const READS_AT_ONCE: usize = 3;

/// Runs waiting to be read ahead at most.
const MOST_WAITING: usize = 64;

/// Bytes of a rendition read ahead of the fragment asked for: a cold origin reads what
/// players will ask next in a few large reads (about half a minute of a 1080p rung).
const READ_AHEAD_WINDOW: u64 = 24 << 20;

/// The smallest fragment cache that reads ahead across the ladder too: what that reads (a run
/// of every other rendition) must not evict what players are being served.
const LADDER_MIN_CACHE: usize = 64 << 20;

/// A presentation being indexed: every request for it awaits the same indexing (and its
/// failure: with storage hung, a crowd of requests answers 503 together within the deadline).
type Indexing = futures::future::Shared<
    futures::future::BoxFuture<'static, Result<Arc<Presentation>, OriginError>>,
>;

/// A fragment being packaged: every request for it (and read-ahead) awaits the same one.
type Pending =
    futures::future::Shared<futures::future::BoxFuture<'static, Result<Body, OriginError>>>;

/// An origin: where its locators come from, its storage, its caches.
pub struct Origin {
    config: OriginConfig,
    storage: Storage,
    locators: Locators,
    cache: Cache,
    health: HealthCache,
    backlog: backlog::Backlog,
    /// Fragments being packaged, so concurrent requests (and read-ahead) share one read.
    inflight: Mutex<HashMap<String, Pending>>,
    /// Presentations being indexed, so the first requests after a start (a crowd of players
    /// failing over) share one indexing instead of each reading every index.
    indexing: Mutex<HashMap<String, Indexing>>,
    /// Whether its streaming endpoint runs; a stopped one answers 503 (and its health too).
    serving: std::sync::atomic::AtomicBool,
}

impl Origin {
    pub fn new(storage: &Storage, locators: LocatorSource, config: OriginConfig) -> Arc<Self> {
        // Retries must fit in the deadline: quick ones, and few.
        let storage = storage.with_retry(RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(400),
        });
        Arc::new(Self {
            config,
            storage,
            locators: Locators::new(locators),
            cache: Cache::new(config.cache_bytes),
            health: HealthCache::default(),
            backlog: backlog::Backlog::new(READS_AT_ONCE, MOST_WAITING),
            inflight: Mutex::default(),
            indexing: Mutex::default(),
            serving: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// Starts or stops serving (the streaming endpoint's state).
    pub fn set_serving(&self, on: bool) {
        self.serving.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_serving(&self) -> bool {
        self.serving.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A storage operation under the deadline.
    async fn within<T, E: Into<OriginError>>(
        &self,
        what: &str,
        op: impl Future<Output = Result<T, E>>,
    ) -> Result<T, OriginError> {
        match tokio::time::timeout(self.config.storage_timeout, op).await {
            Ok(r) => r.map_err(Into::into),
            Err(_) => Err(OriginError::storage(format!(
                "{what}: no answer within {} ms",
                self.config.storage_timeout.as_millis()
            ))),
        }
    }

    async fn presentation(
        self: &Arc<Self>,
        container: &str,
        ism: &str,
    ) -> Result<Arc<Presentation>, OriginError> {
        let key = format!("{container}/{ism}");
        if let Some(p) = self.cache.presentation(&key) {
            return Ok(p);
        }
        // A damaged file fails once per FAILURE_TTL, not once per request.
        if let Some(why) = self.cache.failure(&key) {
            return Err(OriginError::Unpackageable(why));
        }
        let pending = {
            let mut indexing = lock(&self.indexing);
            match indexing.get(&key) {
                Some(p) => p.clone(),
                None => {
                    let p = self.index(key.clone(), container.to_string(), ism.to_string());
                    indexing.insert(key, p.clone());
                    p
                }
            }
        };
        pending.await
    }

    /// Indexes a presentation in a task of its own (finished even if every request asking
    /// gives up); the result is cached and the presentation no longer being indexed. Call with
    /// `indexing` locked, and put the answer there before unlocking.
    fn index(self: &Arc<Self>, key: String, container: String, ism: String) -> Indexing {
        use futures::FutureExt;
        let me = self.clone();
        tokio::spawn(async move {
            me.cache.count_indexing();
            let began = std::time::Instant::now();
            let loaded = me
                .within(
                    "index the presentation",
                    Presentation::load(
                        &me.storage,
                        &container,
                        &ism,
                        presentation::run_bytes(me.config.cache_bytes),
                    ),
                )
                .await;
            tracing::debug!(presentation = %key, ms = began.elapsed().as_secs_f64() * 1e3, ok = loaded.is_ok(), "indexed");
            let r = match loaded {
                Ok(p) => {
                    let p = Arc::new(p);
                    me.cache.put_presentation(key.clone(), p.clone());
                    Ok(p)
                }
                Err(OriginError::Unpackageable(why)) => {
                    me.cache.put_failure(key.clone(), why.clone());
                    Err(OriginError::Unpackageable(why))
                }
                Err(e) => Err(e),
            };
            lock(&me.indexing).remove(&key);
            r
        })
        .map(|joined| {
            joined.unwrap_or_else(|e| Err(OriginError::storage(format!("indexing stopped: {e}"))))
        })
        .boxed()
        .shared()
    }

    /// Whether this origin can serve now: its database and its storage answer.
    pub async fn check_health(&self) -> Health {
        self.health
            .get(async {
                let database = self.locators.lookup(&uuid::Uuid::nil()).is_ok();
                let storage = self
                    .within("reach storage", self.storage.ping())
                    .await
                    .map_err(|e| tracing::warn!(error = ?e, "health: storage does not answer"))
                    .is_ok();
                Health::of(database, storage)
            })
            .await
    }

    /// A fragment from the cache, or packaged (once, however many ask at the same time);
    /// counted as a hit or a miss when a client `asked` for it. A miss reads the whole run
    /// holding it (`Rendition::run_of`: its neighbours, up to `presentation::RUN_BYTES`) in one
    /// ranged read, one large read instead of one per fragment. Returns at once: the answer
    /// is the future's.
    fn fragment(
        self: &Arc<Self>,
        f: &Fragment,
        asked: bool,
    ) -> futures::future::Either<futures::future::Ready<Result<Body, OriginError>>, Pending> {
        use futures::future::{ready, Either};
        let key = f.key();
        let cached = self.cache.fragment(&key);
        if asked {
            self.cache.count(cached.is_some());
        }
        if let Some(b) = cached {
            return Either::Left(ready(Ok(b)));
        }
        let mut inflight = lock(&self.inflight);
        if let Some(p) = inflight.get(&key) {
            // Read-ahead may hold it, waiting: a client wants it now.
            self.backlog.hurry(&key);
            return Either::Right(p.clone());
        }
        // A run may have cached it since (a run caches before it leaves `inflight`), and so
        // may the packaging of another track's read, at any time.
        if let Some(b) = self.cache.fragment(&key) {
            return Either::Left(ready(Ok(b)));
        }
        let run = if self.config.read_ahead == 0 {
            vec![f.clone()]
        } else {
            let mut run = self.uncached(f.rendition().run_of(f.seq), f, &inflight);
            if !run.iter().any(|x| x.seq == f.seq) {
                let at = run.partition_point(|x| x.seq < f.seq);
                run.insert(at, f.clone());
            }
            run
        };
        let pending = self.pending_run(run, Ahead::No);
        let mine = pending
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, p)| p.clone())
            .expect("the run holds the fragment asked for");
        inflight.extend(pending);
        Either::Right(mine)
    }

    /// The fragments `seqs` of `like`'s rendition (in its format) that are neither cached nor
    /// in flight.
    fn uncached(
        &self,
        seqs: std::ops::Range<usize>,
        like: &Fragment,
        inflight: &HashMap<String, Pending>,
    ) -> Vec<Fragment> {
        seqs.map(|seq| Fragment {
            seq,
            ..like.clone()
        })
        .filter(|f| {
            let key = f.key();
            !self.cache.has_fragment(&key) && !inflight.contains_key(&key)
        })
        .collect()
    }

    /// Packages `run` (fragments of one rendition, in order) with one ranged read, in a task
    /// of its own (finished even if every client asking gives up); one pending answer per
    /// fragment. A client's read starts at once; read `ahead`, it waits its turn in the
    /// backlog (none when the backlog is full). When done, the bodies are cached and no longer
    /// in flight. Call with `inflight` locked, and put the answers there before unlocking.
    fn pending_run(self: &Arc<Self>, run: Vec<Fragment>, ahead: Ahead) -> Vec<(String, Pending)> {
        use futures::FutureExt;
        let me = self.clone();
        let keys: Vec<String> = run.iter().map(Fragment::key).collect();
        let turn = match ahead {
            Ahead::No => {
                self.backlog.start();
                None
            }
            Ahead::Next | Ahead::Later => {
                match self.backlog.wait(keys.clone(), ahead == Ahead::Next) {
                    Some(turn) => Some(turn),
                    None => return Vec::new(),
                }
            }
        };
        let task_keys = keys.clone();
        let task = tokio::spawn(async move {
            // Whatever happens to this task (a panic included), its keys leave `inflight` and
            // a read it started is counted as ended.
            let mut guard = RunGuard {
                origin: me.clone(),
                keys: task_keys,
                reading: turn.is_none(),
            };
            if let Some(turn) = turn {
                // The other requests woken with this one (a crowd after one indexing) take
                // their readers first.
                tokio::task::yield_now().await;
                me.backlog.dispatch();
                if turn.await.is_err() {
                    return Err(OriginError::storage("read-ahead stopped".to_string()));
                }
                guard.reading = true;
            }
            let r = me.package_run(&run).await;
            if let Ok(bodies) = &r {
                for (k, b) in guard.keys.iter().zip(bodies) {
                    if let Ok(b) = b {
                        me.cache.put_fragment(k.clone(), b.clone());
                    }
                }
            }
            drop(guard);
            r
        });
        let all = task
            .map(|joined| {
                joined.unwrap_or_else(|e| {
                    Err(OriginError::storage(format!("packaging stopped: {e}")))
                })
            })
            .boxed()
            .shared();
        keys.into_iter()
            .enumerate()
            .map(|(i, k)| {
                let one = all
                    .clone()
                    .map(move |r| r.and_then(|bodies| bodies[i].clone()))
                    .boxed()
                    .shared();
                (k, one)
            })
            .collect()
    }

    /// `run`'s fragments from one ranged read of the bytes they span, and, from the same
    /// bytes, the fragments of the file's other track that lie wholly inside them, cached
    /// (an MP4 interleaves its audio with its video: the audio of a span of video costs no
    /// read of its own, where reading it alone would read the video around it).
    async fn package_run(
        &self,
        run: &[Fragment],
    ) -> Result<Vec<Result<Body, OriginError>>, OriginError> {
        let Some(first) = run.first() else {
            return Ok(Vec::new());
        };
        let r = first.rendition();
        let track = r.track();
        let spans: Vec<_> = run
            .iter()
            .map(|f| fmp4::span(track, r.fragments[f.seq].clone()))
            .collect();
        let mut start = spans.iter().map(|s| s.start).min().unwrap_or(0);
        let mut end = spans.iter().map(|s| s.end).max().unwrap_or(0);
        // A read leaving little of the file unread (its index, a last fragment) reads it all:
        // a whole blob is answered with the MD5 stored for it, where Azurite computes one for
        // a range of up to 4 MiB, reading it twice (about twice the cost).
        if start + r.size.saturating_sub(end) <= (end - start) / 8 {
            (start, end) = (0, r.size.max(end));
        }
        // The other track's fragments that begin in these bytes end a little after them:
        // read to their end, so that they come with this read.
        for other in first.p.in_file_of(r) {
            for frag in &other.fragments {
                let s = fmp4::span(other.track(), frag.clone());
                if s.start >= start && s.start < end && s.end > end {
                    end = s.end;
                }
            }
        }
        let what = if run.len() == 1 {
            "read a fragment"
        } else {
            "read fragments"
        };
        let began = std::time::Instant::now();
        let data = self
            .within(
                what,
                self.storage
                    .get_range(&first.p.container, &r.blob, start..end),
            )
            .await?;
        self.cache.count_read(end - start);
        tracing::debug!(blob = %r.blob, fragments = run.len(), bytes = end - start, ms = began.elapsed().as_secs_f64() * 1e3, "{what}");
        let bodies = self.package_read(run, &data, start);
        tracing::debug!(blob = %r.blob, ms = began.elapsed().as_secs_f64() * 1e3, "packaged");
        Ok(bodies)
    }

    /// `run`'s fragments from `data`, the file's bytes from `start` on, each packaged or not on
    /// its own (a damaged one fails alone), and the other track's fragments that lie wholly
    /// inside them (cached).
    fn package_read(
        &self,
        run: &[Fragment],
        data: &[u8],
        start: u64,
    ) -> Vec<Result<Body, OriginError>> {
        let Some(first) = run.first() else {
            return Vec::new();
        };
        let (r, p) = (first.rendition(), &first.p);
        let end = start + data.len() as u64;
        let package = |r: &Rendition, f: &Fragment| {
            let frag = r.fragments[f.seq].clone();
            let seq = f.seq as u32 + 1;
            let packaged = if f.smooth {
                smooth::fragment(r.track(), frag, seq, data, start)
            } else {
                fmp4::media_segment(r.track(), frag, seq, data, start)
            };
            packaged.map(Body::new).map_err(OriginError::Unpackageable)
        };
        let bodies = run.iter().map(|f| package(r, f)).collect();
        for other in p.in_file_of(r) {
            for (seq, frag) in other.fragments.iter().enumerate() {
                let s = fmp4::span(other.track(), frag.clone());
                if s.start < start || s.end > end {
                    continue;
                }
                let f = Fragment {
                    p: p.clone(),
                    kind: other.kind(),
                    bitrate: other.bitrate,
                    smooth: first.smooth,
                    seq,
                };
                let key = f.key();
                if !self.cache.has_fragment(&key) {
                    if let Ok(body) = package(other, &f) {
                        self.cache.put_fragment(key, body);
                    }
                }
            }
        }
        bodies
    }

    /// Reads into the cache in the background what players will ask for next, in this order
    /// (`backlog.rs`: behind what clients ask for now): first the runs after `f`'s in its own rendition, up to
    /// `read_ahead` fragments and `READ_AHEAD_WINDOW` bytes ahead, then the run at the same
    /// time in each other rendition (`ladder`), nearest in the ladder first. Only fragments
    /// neither cached nor in flight are read; each run with one ranged read.
    fn read_ahead(self: &Arc<Self>, f: &Fragment) {
        if self.config.read_ahead == 0 {
            return;
        }
        let r = f.rendition();
        let end = (f.seq + 1 + self.config.read_ahead).min(r.fragments.len());
        let mut inflight = lock(&self.inflight);
        let mut wanted = Vec::new();
        let (mut seq, mut ahead) = (r.run_of(f.seq).end, 0u64);
        let next = seq;
        while seq < end && ahead <= READ_AHEAD_WINDOW {
            let run = r.run_of(seq);
            let span = r.span(run.clone());
            ahead += span.end - span.start;
            seq = run.end;
            let first = if run.start == next {
                Ahead::Next
            } else {
                Ahead::Later
            };
            wanted.push((self.uncached(run, f, &inflight), first));
        }
        // The run after this one is what this client asks for next: if it waits, sooner.
        if next < r.fragments.len() {
            self.backlog.sooner(
                &Fragment {
                    seq: next,
                    ..f.clone()
                }
                .key(),
            );
        }
        if self.config.cache_bytes >= LADDER_MIN_CACHE {
            for other in ladder(f) {
                let run = other.rendition().run_of(other.seq);
                wanted.push((self.uncached(run, &other, &inflight), Ahead::Later));
            }
        }
        for (run, ahead) in wanted.into_iter().filter(|(r, _)| !r.is_empty()) {
            let pending = self.pending_run(run, ahead);
            if pending.is_empty() {
                return;
            }
            inflight.extend(pending);
        }
    }
}

/// The fragment of every other rendition of `f`'s presentation that holds `f`'s start time
/// (in the same format), the nearest in bit rate first, lower before higher: where an
/// adaptive player goes when it switches (and after a failover its measured bandwidth drops,
/// so it goes down first). The audio comes first when it has a file of its own (every player
/// asks for it); audio in a video file comes with that file's reads.
fn ladder(f: &Fragment) -> Vec<Fragment> {
    let r = f.rendition();
    let track = r.track();
    let t = track.start(&r.fragments[f.seq]);
    let at = |o: &Rendition| -> Option<Fragment> {
        let ot = o.track();
        // The last fragment starting at or before t (times compared across timescales).
        let seq = o.fragments.iter().rposition(|x| {
            ot.start(x) as u128 * track.timescale as u128 <= t as u128 * ot.timescale as u128
        })?;
        Some(Fragment {
            p: f.p.clone(),
            kind: o.kind(),
            bitrate: o.bitrate,
            smooth: f.smooth,
            seq,
        })
    };
    let p = &f.p;
    let mut out = Vec::new();
    if let Some(a) = p.audio.as_ref() {
        let own_file = p.video.iter().all(|v| v.blob != a.blob);
        if !std::ptr::eq(a, r) && own_file {
            out.extend(at(a));
        }
    }
    // Only renditions their kind and bit rate name alone (how a fragment finds its rendition).
    let named = |o: &Rendition| {
        p.rendition(o.kind(), o.bitrate)
            .is_some_and(|x| std::ptr::eq(x, o))
    };
    let mut videos: Vec<&Rendition> = p
        .video
        .iter()
        .filter(|v| !std::ptr::eq(*v, r) && named(v))
        .collect();
    videos.sort_by_key(|v| (v.bitrate.abs_diff(r.bitrate), v.bitrate > r.bitrate));
    out.extend(videos.into_iter().filter_map(at));
    out
}

/// A run's task's hold on the origin: when dropped, the run's fragments are no longer in
/// flight and, if it was reading, the backlog counts one read fewer.
struct RunGuard {
    origin: Arc<Origin>,
    keys: Vec<String>,
    reading: bool,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        let mut inflight = lock(&self.origin.inflight);
        for k in &self.keys {
            inflight.remove(k);
        }
        drop(inflight);
        if self.reading {
            self.origin.backlog.done();
        }
    }
}

/// Whether a run is read for a client now, or ahead: the run after the one a client is
/// reading (`Next`, before what else waits), or any other (`Later`, in turn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ahead {
    No,
    Next,
    Later,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One media fragment of a rendition.
#[derive(Clone)]
struct Fragment {
    p: Arc<Presentation>,
    kind: &'static str,
    bitrate: u32,
    /// Smooth (PIFF, 10 MHz times) or fMP4 (HLS and DASH).
    smooth: bool,
    seq: usize,
}

impl Fragment {
    fn rendition(&self) -> &Rendition {
        self.p
            .rendition(self.kind, self.bitrate)
            .expect("made from an existing rendition")
    }

    fn key(&self) -> String {
        let r = self.rendition();
        format!(
            "{}/{}/{}/{}{}",
            self.p.container,
            r.blob,
            r.track().id,
            if self.smooth { "smooth/" } else { "" },
            self.seq
        )
    }
}

/// Whether a path is the origin's (a locator GUID first, or the health check), not the API's.
pub fn owns(path: &str) -> bool {
    if path == "/health" {
        return true;
    }
    path.strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .is_some_and(|(first, _)| uuid::Uuid::parse_str(first).is_ok())
}

/// The origin's routes: `GET`/`HEAD` of `/health` and `/{locator}/…`.
pub fn router(origin: Arc<Origin>) -> axum::Router {
    axum::Router::new()
        .route("/health", axum::routing::get(health))
        .fallback(stream)
        .with_state(origin)
}

/// The deep health check, with what the cache holds (live, not cached with the check).
async fn health(State(origin): State<Arc<Origin>>) -> Health {
    let health = if origin.is_serving() {
        origin.check_health().await
    } else {
        Health::stopped()
    };
    Health {
        cache: Some(origin.cache.stats()),
        ..health
    }
}

async fn stream(
    State(origin): State<Arc<Origin>>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if crate::cors::is_preflight(&method, &headers) {
        return crate::cors::preflight(&headers);
    }
    if method != axum::http::Method::GET && method != axum::http::Method::HEAD {
        let mut r = (
            StatusCode::METHOD_NOT_ALLOWED,
            "the origin serves GET and HEAD (and answers CORS preflights)\n",
        )
            .into_response();
        r.headers_mut()
            .insert("allow", HeaderValue::from_static(crate::cors::METHODS));
        return r;
    }
    if !origin.is_serving() {
        return OriginError::Unavailable {
            what: "the streaming endpoint",
            detail: "stopped".into(),
        }
        .into_response();
    }
    let range = headers.get("range").and_then(|v| v.to_str().ok());
    match answer(&origin, uri.path(), range).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn answer(
    origin: &Arc<Origin>,
    path: &str,
    range: Option<&str>,
) -> Result<Response, OriginError> {
    let (first, rest) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .ok_or_else(|| OriginError::bad_path("expected /{locator}/{name}.ism/…"))?;
    let guid = uuid::Uuid::parse_str(first)
        .map_err(|_| OriginError::bad_path("the first segment is not a locator id"))?;
    let container = origin.locators.serving(&guid)?;
    let rest = crate::ams::auth::urldecode(rest);
    let split = rest.to_ascii_lowercase().find(".ism/").ok_or_else(|| {
        OriginError::bad_path("expected /{locator}/{name}.ism/manifest(format=…)")
    })?;
    let (ism, tail) = (&rest[..split + 4], &rest[split + 5..]);
    let p = origin.presentation(&container, ism).await?;
    serve(origin, p, tail, range).await
}

async fn serve(
    origin: &Arc<Origin>,
    p: Arc<Presentation>,
    tail: &str,
    range: Option<&str>,
) -> Result<Response, OriginError> {
    match tail {
        "manifest(format=m3u8-aapl)" => {
            let body = Body::new(manifests::hls_master(&p).into_bytes());
            return Ok(reply("application/vnd.apple.mpegurl", 60, body, range));
        }
        "manifest(format=mpd-time-csf)" => {
            let body = Body::new(manifests::dash(&p).into_bytes());
            return Ok(reply("application/dash+xml", 60, body, range));
        }
        "manifest" => {
            let body = Body::new(smooth::manifest(&p).into_bytes());
            return Ok(reply("application/vnd.ms-sstr+xml", 60, body, range));
        }
        _ => {}
    }
    let (ql, what) = tail
        .split_once('/')
        .ok_or_else(|| OriginError::not_found("unknown path"))?;
    let bitrate: u32 = ql
        .strip_prefix("QualityLevels(")
        .and_then(|r| r.strip_suffix(')'))
        .and_then(|b| b.parse().ok())
        .ok_or_else(|| OriginError::bad_path("expected QualityLevels(bitrate)"))?;
    let no_level = || OriginError::not_found("no such quality level");
    if let Some(args) = what
        .strip_prefix("Manifest(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let kind = args.split(',').next().unwrap_or_default();
        let r = p.rendition(kind, bitrate).ok_or_else(no_level)?;
        let body = Body::new(manifests::hls_media(r).into_bytes());
        return Ok(reply("application/vnd.apple.mpegurl", 60, body, range));
    }
    let what = what
        .strip_suffix(".m4s")
        .or_else(|| what.strip_suffix(".mp4"))
        .unwrap_or(what);
    let args = what
        .strip_prefix("Fragments(")
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| OriginError::bad_path("expected Fragments(kind=time,format=…)"))?;
    let (kind, t) = args
        .split(',')
        .next()
        .unwrap_or_default()
        .split_once('=')
        .ok_or_else(|| OriginError::bad_path("expected Fragments(kind=time)"))?;
    let r = p.rendition(kind, bitrate).ok_or_else(no_level)?;
    let kind = r.kind();
    let mime = if r.video { "video/mp4" } else { "audio/mp4" };
    // Without a format it is a Smooth fragment, its time in 10 MHz ticks; with one, fMP4.
    let smooth = !args.contains("format=");
    if t == "i" && !smooth {
        let body = fmp4::init_segment(&r.index, r.track()).map_err(OriginError::Unpackageable)?;
        return Ok(reply(mime, 86400, Body::new(body), range));
    }
    let start: u64 = t
        .parse()
        .map_err(|_| OriginError::bad_path("the fragment time is not a number"))?;
    let track = r.track();
    let seq = if smooth {
        smooth::fragment_at(r, start).map(|(i, _)| i)
    } else {
        r.fragments.iter().position(|f| track.start(f) == start)
    }
    .ok_or_else(|| OriginError::not_found("no fragment starts at that time"))?;
    let fragment = Fragment {
        kind,
        bitrate,
        smooth,
        seq,
        p: p.clone(),
    };
    // The fragment (with those after it in the same read), then read-ahead beyond them.
    let body = origin.fragment(&fragment, true);
    origin.read_ahead(&fragment);
    let body = body.await?;
    Ok(reply(mime, 86400, body, range))
}

/// A 200 (or a 206 for a satisfiable `Range`) with the caching and CORS headers players need.
fn reply(content_type: &'static str, max_age: u32, body: Body, range: Option<&str>) -> Response {
    let mut r = ranged(&body.data, range);
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(content_type));
    crate::cors::allow(h);
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        h.insert("cache-control", v);
    }
    if let Ok(v) = HeaderValue::from_str(&body.etag) {
        h.insert("etag", v);
    }
    r
}

/// `data` as a 200, or as the 206 or 416 a `Range` header asks for (RFC 9110), with
/// `Accept-Ranges`; the front door's cache answers with it too.
pub(crate) fn ranged(data: &bytes::Bytes, range: Option<&str>) -> Response {
    let total = data.len() as u64;
    let mut r = match range.map_or(Ranged::Whole, |r| parse_range(r, total)) {
        Ranged::Unsatisfiable => {
            let mut r = (StatusCode::RANGE_NOT_SATISFIABLE, "").into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                r.headers_mut().insert("content-range", v);
            }
            r
        }
        Ranged::Part(a, b) => {
            let mut r = (
                StatusCode::PARTIAL_CONTENT,
                data.slice(a as usize..=b as usize),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{total}")) {
                r.headers_mut().insert("content-range", v);
            }
            r
        }
        Ranged::Whole => (StatusCode::OK, data.clone()).into_response(),
    };
    r.headers_mut()
        .insert("accept-ranges", HeaderValue::from_static("bytes"));
    r
}

/// What a `Range` header asks of a body, as RFC 9110 reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ranged {
    /// No range, or one that is not valid syntax or not a single byte range: ignored, so the
    /// whole body (200).
    Whole,
    /// Bytes `a..=b`, clamped to the body (206).
    Part(u64, u64),
    /// A valid range that no byte satisfies (416).
    Unsatisfiable,
}

/// One `bytes=a-b`, `bytes=a-` or `bytes=-n` range. Numbers too large for 64 bits are clamped,
/// not errors.
fn parse_range(header: &str, total: u64) -> Ranged {
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().unwrap_or(u64::MAX))
    };
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ranged::Whole;
    };
    let Some((a, b)) = spec.split_once('-').filter(|_| !spec.contains(',')) else {
        return Ranged::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    match (number(a), number(b)) {
        (None, Some(n)) if a.is_empty() => {
            if n == 0 || total == 0 {
                Ranged::Unsatisfiable
            } else {
                Ranged::Part(total.saturating_sub(n), total - 1)
            }
        }
        (Some(start), None) if b.is_empty() => {
            if start >= total {
                Ranged::Unsatisfiable
            } else {
                Ranged::Part(start, total - 1)
            }
        }
        (Some(start), Some(end)) if start <= end => {
            if start >= total {
                Ranged::Unsatisfiable
            } else {
                Ranged::Part(start, end.min(total - 1))
            }
        }
        _ => Ranged::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use Ranged::*;
        assert_eq!(parse_range("bytes=0-9", 100), Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), Part(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), Part(0, 99));
        assert_eq!(parse_range("bytes=50-500", 100), Part(50, 99));
        assert_eq!(
            parse_range("bytes=0-99999999999999999999999", 100),
            Part(0, 99),
            "clamped"
        );
        // Unsatisfiable: 416.
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(
            parse_range("bytes=99999999999999999999-", 100),
            Unsatisfiable
        );
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        // Not valid syntax, or not one byte range: ignored (the whole body).
        for ignored in [
            "bytes=0-1,5-6",
            "bytes=9-1",
            "bytes=a-b",
            "bytes=-",
            "items=0-9",
            "bytes 0-9",
            "bytes=0x1-2",
        ] {
            assert_eq!(parse_range(ignored, 100), Whole, "{ignored}");
        }
    }

    #[test]
    fn origin_paths_are_told_from_api_paths() {
        assert!(owns("/health"));
        assert!(owns("/0b7c4f0e-6c59-4b0a-9d36-5d8f3f1f8d11/x.ism/manifest"));
        assert!(!owns("/api/Assets"));
        assert!(!owns("/"));
        assert!(!owns("/v2/OAuth2-13"));
    }

    proptest::proptest! {
        #![proptest_config(crate::testing::budget())]
        #[test]
        fn ranges_and_paths_never_panic(range in "\\PC{0,30}", digits in "bytes=[0-9]{0,25}-[0-9]{0,25}", total in proptest::num::u64::ANY, path in "\\PC{0,60}") {
            for r in [&range, &digits] {
                if let Ranged::Part(a, b) = parse_range(r, total) {
                    proptest::prop_assert!(a <= b && b < total);
                }
            }
            let _ = owns(&path);
        }
    }
}
