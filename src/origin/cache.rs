//! The origin's memory: presentations already indexed, and recently served bodies (an origin
//! shield), the least recently used evicted first once over the byte budget.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::presentation::Presentation;
use crate::lru::Lru;

/// Bytes of fragments kept in memory by default (`serve --origin-cache-mb`).
pub const FRAGMENT_CACHE_BYTES: usize = 256 << 20;

/// A packaged body and its ETag (the MD5 of its bytes, so both datacenters give the same).
#[derive(Clone)]
pub struct Body {
    pub data: bytes::Bytes,
    pub etag: String,
    /// Bytes of its allocation: what the cache's budget counts.
    held: usize,
}

impl Body {
    /// A body and its strong ETag: a 128-bit XXH3 of its bytes (the same bytes give the same
    /// ETag in every datacenter; a cryptographic hash would cost a cold origin a tenth of its
    /// rate for nothing an ETag needs).
    pub fn new(mut data: Vec<u8>) -> Self {
        let etag = format!("\"{:032x}\"", xxhash_rust::xxh3::xxh3_128(&data));
        // The cache counts bytes by length: no spare capacity may hide behind them.
        data.shrink_to_fit();
        Self {
            held: data.capacity(),
            data: data.into(),
            etag,
        }
    }
}

/// How long a presentation that could not be indexed (a damaged or hostile file) is answered
/// from memory instead of being read and parsed again for every request.
pub const FAILURE_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// Failures remembered at most (the oldest go first).
const MAX_FAILURES: usize = 1024;

/// Presentations by `container/name.ism`, fragments by key, and recent indexing failures.
/// Presentation indexes (sample tables) are bounded by their bytes too, a quarter of the
/// fragments' budget: a hostile file's index can be large (up to `index::MAX_SAMPLES`
/// samples), so their count alone bounds nothing.
pub struct Cache {
    fragment_budget: usize,
    presentations: Mutex<Lru<Arc<Presentation>>>,
    fragments: Mutex<Lru<Body>>,
    failures: Mutex<HashMap<String, (std::time::Instant, String)>>,
    hits: AtomicU64,
    misses: AtomicU64,
    indexings: AtomicU64,
    reads: AtomicU64,
    read_bytes: AtomicU64,
}

/// What the fragment cache holds and how it has done, as `/health` reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CacheStats {
    /// Fragments held.
    pub fragments: usize,
    /// Bytes of their allocations.
    pub held: usize,
    /// The most `held` may be (`serve --origin-cache-mb`).
    pub budget: usize,
    /// Requests answered from the cache, and those that packaged (or waited for) a fragment.
    pub hits: u64,
    pub misses: u64,
    /// Fragments dropped to stay within the budget.
    pub evictions: u64,
    /// Presentations indexed and held, and the bytes of their indexes.
    pub presentations: usize,
    pub presentation_bytes: usize,
    /// Times a presentation was indexed (read from storage) since the start.
    pub indexings: u64,
    /// Ranged reads of media from storage since the start (one a run of fragments, for a
    /// client or read-ahead), and their bytes.
    pub reads: u64,
    pub read_bytes: u64,
}

impl Default for Cache {
    fn default() -> Self {
        Self::new(FRAGMENT_CACHE_BYTES)
    }
}

impl Cache {
    /// A cache holding at most `fragment_budget` bytes of fragments.
    pub fn new(fragment_budget: usize) -> Self {
        Self {
            fragment_budget,
            presentations: Mutex::default(),
            fragments: Mutex::default(),
            failures: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            indexings: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            read_bytes: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> CacheStats {
        let (fragments, held, evictions) = {
            let f = lock(&self.fragments);
            (f.len(), f.bytes(), f.evictions())
        };
        let (presentations, presentation_bytes) = {
            let p = lock(&self.presentations);
            (p.len(), p.bytes())
        };
        CacheStats {
            fragments,
            held,
            budget: self.fragment_budget,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions,
            presentations,
            presentation_bytes,
            indexings: self.indexings.load(Ordering::Relaxed),
            reads: self.reads.load(Ordering::Relaxed),
            read_bytes: self.read_bytes.load(Ordering::Relaxed),
        }
    }

    pub fn presentation(&self, key: &str) -> Option<Arc<Presentation>> {
        lock(&self.presentations).get(key)
    }

    pub fn put_presentation(&self, key: String, p: Arc<Presentation>) {
        let bytes = p.approx_bytes();
        // One presentation may take all of theirs: one not kept is indexed again per request.
        let budget = self.fragment_budget / 4;
        lock(&self.presentations).put(key, p, bytes, budget, budget)
    }

    pub fn fragment(&self, key: &str) -> Option<Body> {
        lock(&self.fragments).get(key)
    }

    /// Counts one indexing of a presentation.
    pub fn count_indexing(&self) {
        self.indexings.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one ranged read of media of `bytes`.
    pub fn count_read(&self, bytes: u64) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.read_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts a client's request for a fragment (read-ahead is not counted).
    pub fn count(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn has_fragment(&self, key: &str) -> bool {
        lock(&self.fragments).contains(key)
    }

    pub fn put_fragment(&self, key: String, body: Body) {
        let bytes = body.held;
        let budget = self.fragment_budget;
        lock(&self.fragments).put(key, body, bytes, budget, budget / 4)
    }

    /// Why `key` could not be indexed, if that was less than `FAILURE_TTL` ago.
    pub fn failure(&self, key: &str) -> Option<String> {
        let mut f = lock(&self.failures);
        match f.get(key) {
            Some((at, why)) if at.elapsed() < FAILURE_TTL => Some(why.clone()),
            Some(_) => {
                f.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn put_failure(&self, key: String, why: String) {
        let mut f = lock(&self.failures);
        if f.len() >= MAX_FAILURES {
            if let Some(oldest) = f
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone())
            {
                f.remove(&oldest);
            }
        }
        f.insert(key, (std::time::Instant::now(), why));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexing_failures_are_remembered_for_a_while_and_bounded() {
        let c = Cache::default();
        assert_eq!(c.failure("a"), None);
        c.put_failure("a".into(), "stsz claims too many samples".into());
        assert_eq!(
            c.failure("a").as_deref(),
            Some("stsz claims too many samples")
        );
        for i in 0..MAX_FAILURES + 10 {
            c.put_failure(format!("k{i}"), "x".into());
        }
        assert!(lock(&c.failures).len() <= MAX_FAILURES);
    }

    #[test]
    fn the_fragment_cache_keeps_to_its_budget() {
        let c = Cache::default();
        let chunk = FRAGMENT_CACHE_BYTES / 8;
        for i in 0..20 {
            c.put_fragment(format!("k{i}"), Body::new(vec![0u8; chunk]));
        }
        assert!(lock(&c.fragments).bytes() <= FRAGMENT_CACHE_BYTES);
        assert!(c.fragment("k0").is_none(), "the oldest went first");
        assert!(c.fragment("k19").is_some());
    }

    /// The budget counts what is held: a body built in a buffer grown by doubling holds no
    /// spare capacity once cached (490 MB of RSS under a 256 MiB budget came from that).
    #[test]
    fn cached_bodies_hold_no_spare_capacity() {
        let mut grown = Vec::new();
        for i in 0..100_000u32 {
            grown.extend_from_slice(&i.to_be_bytes());
        }
        assert!(grown.capacity() > grown.len());
        let len = grown.len();
        let Body { data, held, .. } = Body::new(grown);
        assert_eq!(held, len, "what the budget counts is the allocation");
        // Back into a Vec (the only owner: no copy), the allocation shows: exactly the length.
        let v: Vec<u8> = data.into();
        assert_eq!((v.len(), v.capacity()), (len, len));
    }
}
