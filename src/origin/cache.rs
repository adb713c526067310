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

/// Presentations by `container/name.ism`, and fragments by key.
#[derive(Default)]
pub struct Cache {
    presentations: Mutex<HashMap<String, Arc<Presentation>>>,
    fragments: Mutex<FragmentCache>,
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
