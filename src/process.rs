//! Processes amsplay started and signals later, from another command: recognised by their PID
//! *and* the kernel's start time (`/proc/PID/stat`, field 22, clock ticks since boot), taken
//! when they were started. PIDs wrap within minutes on a busy machine; a saved PID that now
//! names another process (a different start time) is stale: it is never signalled.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A process we started: its PID and start time.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Owned {
    pub pid: u32,
    /// Start time in clock ticks since boot; 0 when unknown (an entry written before this
    /// was recorded), which is never taken for ours.
    #[serde(default)]
    pub start: u64,
}

/// The state letter and start time of a live process, from `/proc/PID/stat`.
fn stat(pid: u32) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields resume after the
    // last ')'. There, index 0 is field 3 (state) and index 19 is field 22 (start time).
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.first()?.to_string(), fields.get(19)?.parse().ok()?))
}

impl Owned {
    /// The process `pid`, just started by us: its start time is read now.
    pub fn of(pid: u32) -> Self {
        Self {
            pid,
            start: stat(pid).map_or(0, |(_, start)| start),
        }
    }

    /// Whether this very process is still running (not a zombie, not another process that
    /// got its PID).
    pub fn is_running(&self) -> bool {
        self.start != 0
            && matches!(stat(self.pid), Some((state, start))
                if start == self.start && state != "Z" && state != "X")
    }

    fn signal(&self, sig: libc::c_int) -> bool {
        // Checked right before the signal: the window left is the one between two syscalls.
        if !self.is_running() {
            return false;
        }
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(self.pid as libc::pid_t, sig) == 0 }
    }

    /// SIGTERM, up to 5 s to go, then SIGKILL; nothing at all if the process is not ours.
    pub async fn stop(&self) {
        if !self.signal(libc::SIGTERM) {
            return;
        }
        let began = Instant::now();
        while self.is_running() && began.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.signal(libc::SIGKILL);
    }

    /// `stop` for callers without a runtime (destructors).
    pub fn stop_blocking(&self) {
        if !self.signal(libc::SIGTERM) {
            return;
        }
        let began = Instant::now();
        while self.is_running() && began.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal(libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_pid_is_not_ours() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let ours = Owned::of(child.id());
        assert!(ours.start > 0 && ours.is_running());
        let impostor = Owned {
            start: ours.start + 1,
            ..ours
        };
        assert!(
            !impostor.is_running(),
            "another start time is another process"
        );
        impostor.stop_blocking();
        assert!(ours.is_running(), "a stale entry is never signalled");
        assert!(
            !Owned { start: 0, ..ours }.is_running(),
            "unknown is not ours"
        );
        ours.stop_blocking();
        let _ = child.wait();
        assert!(!ours.is_running());
    }
}
