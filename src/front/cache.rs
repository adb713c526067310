//! The front door's memory: streaming bodies an origin marked cacheable (`public, max-age`),
//! kept for that long, the least recently used dropped first once over the byte budget
//! (`amsplay front --cache-mb`; `--no-cache` turns it off).
//!
//! A body is filled while it streams to the first client who asked for it (one fill per path
//! at a time, all fills together within half the budget), so no client ever waits for a
//! whole fragment and memory stays bounded. Hits are answered here, `Range`, `If-None-Match`
//! and HEAD included, even while every origin is down: the datacenters serve identical bytes
//! for a path, and a fragment never changes under its URL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::lru::Lru;

/// Response headers kept with a body and sent again with every hit.
/// (`x-served-by` says which origin filled it.)
const KEPT: [&str; 6] = [
    "content-type",
    "cache-control",
    "etag",
    "last-modified",
    "access-control-allow-origin",
    "access-control-expose-headers",
];

/// A body and the headers it was served with.
#[derive(Clone)]
pub struct Entry {
    headers: HeaderMap,
    body: Bytes,
    stored: Instant,
    expires: Instant,
}

/// Bodies by path (with the query).
pub struct Cache {
    budget: usize,
    entries: Mutex<Lru<Arc<Entry>>>,
    /// Paths being filled, with their lengths.
    filling: Mutex<HashMap<String, usize>>,
}

impl Cache {
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            entries: Mutex::default(),
            filling: Mutex::default(),
        }
    }

    fn get(&self, key: &str) -> Option<Arc<Entry>> {
        let mut entries = lock(&self.entries);
        let e = entries.get(key)?;
        if e.expires <= Instant::now() {
            entries.remove(key);
            return None;
        }
        Some(e)
    }

    /// The answer from memory to a GET or HEAD of `key`, if it is held.
    pub fn answer(&self, key: &str, headers: &HeaderMap) -> Option<Response> {
        let e = self.get(key)?;
        let etag = e.headers.get("etag");
        let unchanged = etag.is_some_and(|etag| {
            headers
                .get("if-none-match")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|asked| {
                    asked.trim() == "*"
                        || asked.split(',').any(|t| {
                            t.trim().trim_start_matches("W/").as_bytes() == etag.as_bytes()
                        })
                })
        });
        let mut r = if unchanged {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            // An If-Range that names another version asks for the whole body.
            let range = headers
                .get("range")
                .and_then(|v| v.to_str().ok())
                .filter(|_| {
                    headers
                        .get("if-range")
                        .is_none_or(|v| Some(v) == e.headers.get("etag"))
                });
            crate::origin::ranged(&e.body, range)
        };
        let h = r.headers_mut();
        for (k, v) in &e.headers {
            h.insert(k, v.clone());
        }
        h.insert("x-cache", HeaderValue::from_static("HIT"));
        h.insert("age", HeaderValue::from(e.stored.elapsed().as_secs()));
        // (The server itself leaves out a HEAD's body, keeping its length.)
        Some(r)
    }

    /// A filler for `resp`, the answer to a plain GET of `key`, when it may be kept: a 200
    /// of known length within a quarter of the budget, `public` with a `max-age`, and no other
    /// fill of `key` under way.
    pub fn fill(
        self: &Arc<Self>,
        key: &str,
        resp: &reqwest::Response,
        served_by: &HeaderValue,
    ) -> Option<Filler> {
        if resp.status() != reqwest::StatusCode::OK {
            return None;
        }
        let len = usize::try_from(resp.content_length()?).ok()?;
        let max_age = freshness(resp.headers().get("cache-control")?.to_str().ok()?)?;
        if len > self.budget / 4 {
            return None;
        }
        {
            let mut filling = lock(&self.filling);
            let busy: usize = filling.values().sum();
            if filling.contains_key(key) || busy + len > self.budget / 2 {
                return None;
            }
            filling.insert(key.to_string(), len);
        }
        let mut headers = HeaderMap::new();
        for k in KEPT {
            if let Some(v) = resp.headers().get(k) {
                headers.insert(k, v.clone());
            }
        }
        headers.insert("x-served-by", served_by.clone());
        Some(Filler {
            cache: self.clone(),
            key: key.to_string(),
            len,
            buf: Vec::with_capacity(len),
            headers,
            max_age,
        })
    }
}

/// `max-age` of a `Cache-Control` that allows a shared cache to keep the body.
fn freshness(cache_control: &str) -> Option<Duration> {
    let directives: Vec<String> = cache_control
        .split(',')
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    if !directives.iter().any(|d| d == "public")
        || directives
            .iter()
            .any(|d| d == "no-store" || d == "private" || d == "no-cache")
    {
        return None;
    }
    let secs: u64 = directives
        .iter()
        .find_map(|d| d.strip_prefix("s-maxage=").or(d.strip_prefix("max-age=")))?
        .parse()
        .ok()?;
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// A body being kept as it streams; kept only if it arrives whole.
pub struct Filler {
    cache: Arc<Cache>,
    key: String,
    len: usize,
    buf: Vec<u8>,
    headers: HeaderMap,
    max_age: Duration,
}

impl Filler {
    /// Adds a chunk; true once the body is whole (then `finish` keeps it: a server may send
    /// the last byte and never ask the body for its end).
    pub fn push(&mut self, chunk: &[u8]) -> bool {
        if self.buf.len() + chunk.len() <= self.len {
            self.buf.extend_from_slice(chunk);
        } else {
            // More than announced: not a body to keep.
            self.len = 0;
            self.buf = Vec::new();
        }
        self.len > 0 && self.buf.len() == self.len
    }

    /// Keeps the body if it is whole.
    pub fn finish(mut self) {
        if self.len == 0 || self.buf.len() != self.len {
            return;
        }
        let now = Instant::now();
        let entry = Entry {
            headers: std::mem::take(&mut self.headers),
            body: Bytes::from(std::mem::take(&mut self.buf)),
            stored: now,
            expires: now + self.max_age,
        };
        let budget = self.cache.budget;
        lock(&self.cache.entries).put(
            self.key.clone(),
            Arc::new(entry),
            self.len,
            budget,
            budget / 4,
        );
    }
}

impl Drop for Filler {
    fn drop(&mut self) {
        lock(&self.cache.filling).remove(&self.key);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::freshness;
    use std::time::Duration;

    #[test]
    fn only_public_bodies_with_a_max_age_are_kept() {
        assert_eq!(
            freshness("public, max-age=86400"),
            Some(Duration::from_secs(86400))
        );
        assert_eq!(
            freshness("Public, s-maxage=5, max-age=60"),
            Some(Duration::from_secs(5))
        );
        for no in [
            "max-age=60",
            "public",
            "public, max-age=0",
            "public, no-store, max-age=60",
            "private, max-age=60",
            "public, max-age=x",
        ] {
            assert_eq!(freshness(no), None, "{no}");
        }
    }
}
