//! The origin's memory: presentations already indexed, and recently served bodies (an origin
//! shield), the least recently used evicted first once over the byte budget.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::presentation::Presentation;

/// Bytes of fragments kept in memory.
pub const FRAGMENT_CACHE_BYTES: usize = 256 << 20;

/// A packaged body and its ETag (the MD5 of its bytes, so both datacenters give the same).
#[derive(Clone)]
pub struct Body {
    pub data: bytes::Bytes,
    pub etag: String,
}

impl Body {
    pub fn new(data: Vec<u8>) -> Self {
        use md5::{Digest, Md5};
        let etag = format!("\"{}\"", hex::encode(Md5::digest(&data)));
        Self {
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
#[derive(Default)]
pub struct Cache {
    presentations: Mutex<HashMap<String, Arc<Presentation>>>,
    fragments: Mutex<FragmentCache>,
    failures: Mutex<HashMap<String, (std::time::Instant, String)>>,
}

impl Cache {
    pub fn presentation(&self, key: &str) -> Option<Arc<Presentation>> {
        lock(&self.presentations).get(key).cloned()
    }

    pub fn put_presentation(&self, key: String, p: Arc<Presentation>) {
        lock(&self.presentations).insert(key, p);
    }

    pub fn fragment(&self, key: &str) -> Option<Body> {
        lock(&self.fragments).get(key)
    }

    pub fn has_fragment(&self, key: &str) -> bool {
        lock(&self.fragments).entries.contains_key(key)
    }

    pub fn put_fragment(&self, key: String, body: Body) {
        lock(&self.fragments).put(key, body)
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

#[derive(Default)]
struct FragmentCache {
    entries: HashMap<String, (Body, u64)>,
    order: BTreeMap<u64, String>,
    tick: u64,
    bytes: usize,
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
