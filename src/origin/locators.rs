//! Which locators may serve, without a trip into the database for every fragment.
//!
//! The origin asks its locator source (the emulator's database) about a locator at most every
//! `REFRESH`, so a deleted locator stops serving within that time; start and expiry are
//! checked against the clock on every request, so an expired one stops at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::error::OriginError;

/// An OnDemandOrigin locator as the origin needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveLocator {
    /// The asset's container.
    pub container: String,
    pub start: OffsetDateTime,
    pub expiry: OffsetDateTime,
}

/// Looks a locator up by its GUID: `Ok(None)` when there is no OnDemandOrigin locator with
/// it, `Err` when the source cannot answer (the message goes to the log).
pub type LocatorSource =
    Arc<dyn Fn(&uuid::Uuid) -> Result<Option<LiveLocator>, String> + Send + Sync>;

/// How long a looked-up answer is trusted.
pub const REFRESH: Duration = Duration::from_millis(500);

/// The locator source with a short memory.
pub struct Locators {
    source: LocatorSource,
    seen: Mutex<HashMap<uuid::Uuid, (Option<LiveLocator>, Instant)>>,
}

impl Locators {
    pub fn new(source: LocatorSource) -> Self {
        Self {
            source,
            seen: Mutex::default(),
        }
    }

    /// The container a locator serves now, or why not.
    pub fn serving(&self, guid: &uuid::Uuid) -> Result<String, OriginError> {
        let cached = self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(guid)
            .filter(|(_, at)| at.elapsed() < REFRESH)
            .map(|(l, _)| l.clone());
        let found = match cached {
            Some(l) => l,
            None => {
                let l = self.lookup(guid)?;
                let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                if seen.len() > 10_000 {
                    seen.retain(|_, (_, at)| at.elapsed() < REFRESH);
                }
                seen.insert(*guid, (l.clone(), Instant::now()));
                l
            }
        };
        let now = OffsetDateTime::now_utc();
        match found {
            Some(l) if l.start <= now && now < l.expiry => Ok(l.container),
            _ => Err(OriginError::not_found(
                "no started, unexpired OnDemandOrigin locator with this id",
            )),
        }
    }

    /// Asks the source directly (health checks use it to see the database answers).
    pub fn lookup(&self, guid: &uuid::Uuid) -> Result<Option<LiveLocator>, OriginError> {
        (self.source)(guid).map_err(|detail| OriginError::Unavailable {
            what: "the locator database",
            detail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn answers_are_remembered_briefly_and_expiry_is_exact() {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let now = OffsetDateTime::now_utc();
        let locators = Locators::new(Arc::new(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
            Ok(Some(LiveLocator {
                container: "asset-1".into(),
                start: now - time::Duration::minutes(5),
                expiry: now + time::Duration::milliseconds(300),
            }))
        }));
        let g = uuid::Uuid::new_v4();
        for _ in 0..100 {
            assert_eq!(locators.serving(&g).unwrap(), "asset-1");
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "one lookup for many fragments"
        );
        std::thread::sleep(Duration::from_millis(350));
        assert!(matches!(
            locators.serving(&g),
            Err(OriginError::NotFound(_))
        ));
        std::thread::sleep(REFRESH);
        let _ = locators.serving(&g);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "looked up again after REFRESH"
        );
    }
}
