//! Progress of long work: a bar on a terminal, `tracing` events otherwise.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// A byte counter that shows itself. Cheap to share behind an `Arc`.
pub struct Progress {
    label: String,
    total: AtomicU64,
    done: AtomicU64,
    bar: Option<ProgressBar>,
    last_event: Mutex<Instant>,
}

/// Whether bars may be drawn: stderr is a terminal and `AMSPLAY_NO_PROGRESS` is not set.
pub fn bars_enabled() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("AMSPLAY_NO_PROGRESS").is_none()
}

impl Progress {
    /// A progress display for `total` bytes of work.
    pub fn bytes(label: impl Into<String>, total: u64) -> Self {
        Self::new(label.into(), total, true)
    }

    /// Counts without showing anything.
    pub fn quiet(total: u64) -> Self {
        Self::new(String::new(), total, false)
    }

    fn new(label: String, total: u64, show: bool) -> Self {
        let bar = (show && bars_enabled()).then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(label.clone());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            label,
            total: AtomicU64::new(total),
            done: AtomicU64::new(0),
            bar,
            last_event: Mutex::new(Instant::now()),
        }
    }

    /// Adds `n` bytes of work done.
    pub fn inc(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(bar) = &self.bar {
            bar.inc(n);
        } else {
            if self.label.is_empty() {
                return;
            }
            let mut last = self.last_event.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() >= Duration::from_secs(5) {
                *last = Instant::now();
                let total = self.total.load(Ordering::Relaxed);
                tracing::info!(label = %self.label, done, total, "progress");
            }
        }
    }

    /// Grows the amount of work expected (when more is discovered).
    pub fn add_total(&self, n: u64) {
        let total = self.total.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }

    /// A short note beside the bar, e.g. "12/300 blobs".
    pub fn message(&self, msg: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(msg);
        }
    }

    /// Bytes counted so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Removes the bar and logs the total.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        tracing::debug!(label = %self.label, done = self.done(), "finished");
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            if !bar.is_finished() {
                bar.finish_and_clear();
            }
        }
    }
}
