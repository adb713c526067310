//! Retrying transient failures with exponential backoff and jitter, for any error that says
//! whether it is worth trying again (storage and Media Services alike), and the polling
//! intervals of long operations.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

/// An error that knows whether trying again may help: network failures, timeouts,
/// throttling and server errors are; refusals and bad input are not.
pub trait Transient {
    fn is_transient(&self) -> bool;
}

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Ceiling of the first wait; it doubles each time up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(4),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `n` (1-based): uniformly random up to the exponential ceiling.
    pub fn delay(&self, n: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << n.saturating_sub(1).min(16))
            .min(self.max_delay);
        let ms = ceiling.as_millis().max(1) as u64;
        Duration::from_millis(rand::thread_rng().gen_range(ms / 4..=ms))
    }

    /// Runs `op` until it succeeds, fails permanently, or runs out of attempts.
    pub async fn run<T, E, F, Fut>(&self, what: &str, mut op: F) -> Result<T, E>
    where
        E: Transient + std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() && attempt < self.attempts => {
                    let wait = self.delay(attempt);
                    tracing::debug!(%e, attempt, ?wait, "{what}: transient failure, retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Polling intervals that start short and grow: 50 ms, 100 ms, … up to `max`, with jitter.
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self { next: first, max }
    }

    pub async fn wait(&mut self) {
        let ms = self.next.as_millis().max(1) as u64;
        let jittered = rand::thread_rng().gen_range(ms / 2..=ms);
        tokio::time::sleep(Duration::from_millis(jittered)).await;
        self.next = (self.next * 2).min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        let p = RetryPolicy {
            attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(800),
        };
        for n in 1..10 {
            let d = p.delay(n);
            let ceiling = (100u64 << (n - 1)).min(800);
            assert!(d.as_millis() as u64 <= ceiling, "{n}: {d:?}");
            assert!(d.as_millis() as u64 >= ceiling / 4, "{n}: {d:?}");
        }
    }

    #[derive(Debug)]
    struct Flaky(bool);
    impl Transient for Flaky {
        fn is_transient(&self) -> bool {
            self.0
        }
    }
    impl std::fmt::Display for Flaky {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "flaky({})", self.0)
        }
    }

    #[tokio::test]
    async fn transient_errors_are_retried_and_others_are_not() {
        let p = RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let mut calls = 0;
        let r: Result<(), Flaky> = p
            .run("op", || {
                calls += 1;
                async { Err(Flaky(true)) }
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls, 3, "every attempt used");
        let mut calls = 0;
        let r: Result<(), Flaky> = p
            .run("op", || {
                calls += 1;
                async { Err(Flaky(false)) }
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls, 1, "a permanent failure is not retried");
    }
}
