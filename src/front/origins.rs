//! What the front door knows about its origins: active health from probes of each origin's
//! deep health endpoint, and passive health (outlier ejection) from the traffic itself.
//!
//! An origin is *available* when its probes say it is up and it is not ejected. A timeout, a
//! reset or a 5xx on a streaming path ejects it for `eject_for` even while its probe passes
//! (its storage may fail only for some files); a client's bad request never counts. Available
//! origins are tried in priority order, so traffic returns to the primary once it is back.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::FrontConfig;

pub struct Origin {
    pub url: String,
    healthy: AtomicBool,
    fails: AtomicU32,
    oks: AtomicU32,
    /// Milliseconds since `Origins::epoch` until which the origin is ejected.
    ejected_until: AtomicU64,
    /// Responses it served (successes relayed to clients).
    served: AtomicU64,
    /// Why it last went out of rotation (a failed request, or its probes).
    why: std::sync::Mutex<String>,
}

/// The origins in priority order.
pub struct Origins {
    pub list: Vec<Origin>,
    config: FrontConfig,
    epoch: Instant,
    /// The origin that served last (for logging switches).
    serving: AtomicUsize,
    /// Times traffic moved from one origin to another.
    switches: AtomicU64,
}

impl Origins {
    pub fn new(config: &FrontConfig) -> Self {
        Self {
            list: config
                .origins
                .iter()
                .map(|u| Origin {
                    url: u.as_str().trim_end_matches('/').to_string(),
                    healthy: AtomicBool::new(true),
                    fails: AtomicU32::new(0),
                    oks: AtomicU32::new(0),
                    ejected_until: AtomicU64::new(0),
                    served: AtomicU64::new(0),
                    why: std::sync::Mutex::new(String::new()),
                })
                .collect(),
            config: config.clone(),
            epoch: Instant::now(),
            serving: AtomicUsize::new(0),
            switches: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn ejected(&self, i: usize) -> bool {
        self.list[i].ejected_until.load(Ordering::Relaxed) > self.now_ms()
    }

    pub fn available(&self, i: usize) -> bool {
        self.list[i].healthy.load(Ordering::Relaxed) && !self.ejected(i)
    }

    /// Available origins in priority order, without `except`. When every origin whose probe
    /// passes is ejected, those are tried anyway (in priority order): ejection moves traffic
    /// between origins, it must never be the reason nobody is asked.
    pub fn order(&self, except: Option<usize>) -> Vec<usize> {
        let candidates = || (0..self.list.len()).filter(move |&i| Some(i) != except);
        let available: Vec<usize> = candidates().filter(|&i| self.available(i)).collect();
        if !available.is_empty() {
            return available;
        }
        candidates()
            .filter(|&i| self.list[i].healthy.load(Ordering::Relaxed))
            .collect()
    }

    /// A probe's verdict.
    pub fn probed(&self, i: usize, ok: bool) {
        let o = &self.list[i];
        if ok {
            o.fails.store(0, Ordering::Relaxed);
            let n = o.oks.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= self.config.rise && !o.healthy.swap(true, Ordering::Relaxed) {
                // Back from down: whatever ejected it belongs to the outage that is over.
                o.ejected_until.store(0, Ordering::Relaxed);
                tracing::warn!(origin = %o.url, "origin is up again");
            }
        } else {
            o.oks.store(0, Ordering::Relaxed);
            let n = o.fails.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= self.config.fall && o.healthy.swap(false, Ordering::Relaxed) {
                tracing::warn!(origin = %o.url, "origin is down");
                self.note(i, format!("{n} health probes failed in a row"));
            }
        }
    }

    /// Takes an origin out of rotation for the cool-down after it failed a request.
    pub fn eject(&self, i: usize, why: &str) {
        let until = self.now_ms() + self.config.eject_for.as_millis() as u64;
        let before = self.list[i].ejected_until.swap(until, Ordering::Relaxed);
        if before <= self.now_ms() {
            tracing::warn!(origin = %self.list[i].url, %why, cool_down_ms = self.config.eject_for.as_millis() as u64, "origin ejected");
        }
        self.note(i, format!("ejected: {why}"));
    }

    fn note(&self, i: usize, why: String) {
        *self.list[i].why.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }

    pub fn served_by(&self, i: usize) {
        self.list[i].served.fetch_add(1, Ordering::Relaxed);
        let before = self.serving.swap(i, Ordering::Relaxed);
        if before != i {
            self.switches.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(from = %self.list[before].url, to = %self.list[i].url, "traffic moved");
        }
    }

    pub fn status(&self) -> serde_json::Value {
        let serving = self.serving.load(Ordering::Relaxed);
        let origins: Vec<serde_json::Value> = self
            .list
            .iter()
            .enumerate()
            .map(|(i, o)| {
                serde_json::json!({
                    "url": o.url,
                    "healthy": o.healthy.load(Ordering::Relaxed),
                    "ejected": self.ejected(i),
                    "available": self.available(i),
                    "serving": i == serving,
                    "failed_probes": o.fails.load(Ordering::Relaxed),
                    "served": o.served.load(Ordering::Relaxed),
                    // Why it last went out of rotation (kept after it came back, for the record).
                    "why": o.why.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                })
            })
            .collect();
        serde_json::json!({
            "origins": origins,
            "switches": self.switches.load(Ordering::Relaxed),
        })
    }
}

/// Probes every origin's health endpoint every `probe_interval`, each origin on its own
/// schedule (a hung origin's probe delays no other's). A probe waits at most the smaller of
/// the request timeout and one second.
pub async fn probe_loop(origins: Arc<Origins>, http: reqwest::Client) {
    let config = origins.config.clone();
    let wait = config.timeout.min(Duration::from_secs(1));
    let loops = (0..origins.list.len()).map(|i| {
        let url = format!("{}{}", origins.list[i].url, config.probe_path);
        let (origins, http) = (origins.clone(), http.clone());
        async move {
            let mut tick = tokio::time::interval(config.probe_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let ok = matches!(
                    tokio::time::timeout(wait, http.get(&url).send()).await,
                    Ok(Ok(r)) if r.status().is_success() || r.status().is_redirection()
                );
                origins.probed(i, ok);
            }
        }
    });
    futures::future::join_all(loops).await;
}

/// Default cool-down of an ejected origin (the CLI's --eject-ms says the same).
#[cfg(test)]
pub const EJECT_FOR: Duration = Duration::from_secs(3);

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> Origins {
        let urls = ["http://a", "http://b"].map(|u| url::Url::parse(u).unwrap());
        Origins::new(&FrontConfig::new(urls.to_vec()))
    }

    #[test]
    fn ejection_moves_traffic_but_never_leaves_nobody_to_ask() {
        let o = two();
        o.eject(0, "test");
        assert_eq!(o.order(None), [1]);
        o.eject(1, "test");
        // Both ejected while their probes pass: both are still asked, in priority order.
        assert_eq!(o.order(None), [0, 1]);
        // Down by probe is down: never asked.
        o.probed(0, false);
        o.probed(0, false);
        assert_eq!(o.order(None), [1]);
    }

    #[test]
    fn an_origin_back_from_down_is_no_longer_ejected() {
        let o = two();
        o.eject(1, "test");
        o.probed(1, false);
        o.probed(1, false);
        assert!(!o.available(1));
        o.probed(1, true);
        o.probed(1, true);
        assert!(o.available(1), "probes passing again end the ejection");
    }
}
