//! The order of an origin's storage reads. A client's read starts at once; read-ahead waits in
//! a backlog, in the order it was wanted, and starts only while fewer than `readers` reads are
//! under way (clients' included). So what players ask for now never shares storage with what
//! they may ask next, and a backlog of it is read in order as fast as storage answers: a client
//! asking for a fragment of a waiting run starts that run at once.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// Runs waiting to be read ahead, and how many reads are under way.
pub struct Backlog {
    readers: usize,
    most: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    waiting: VecDeque<Waiting>,
    reading: usize,
}

impl Inner {
    fn position(&self, key: &str) -> Option<usize> {
        self.waiting
            .iter()
            .position(|w| w.keys.iter().any(|k| k == key))
    }
}

/// A run waiting: its fragments' keys, and the word to start.
struct Waiting {
    keys: Vec<String>,
    go: oneshot::Sender<()>,
}

impl Backlog {
    /// Read-ahead starts while fewer than `readers` reads are under way; at most `most` runs wait.
    pub fn new(readers: usize, most: usize) -> Self {
        Self {
            readers,
            most,
            inner: Mutex::default(),
        }
    }

    /// A client's read, starting now.
    pub fn start(&self) {
        self.lock().reading += 1;
    }

    /// Read-ahead of the run of `keys`, behind those waiting (or before them when `first`):
    /// the answer comes when it may start, once `dispatch` finds a reader free; `None` when
    /// the backlog is full. Nothing starts before the next `dispatch`, so the clients' reads
    /// that arrived together with it (a crowd woken by one indexing) go before it.
    pub fn wait(&self, keys: Vec<String>, first: bool) -> Option<oneshot::Receiver<()>> {
        let mut inner = self.lock();
        if inner.waiting.len() >= self.most {
            return None;
        }
        let (go, started) = oneshot::channel();
        let w = Waiting { keys, go };
        if first {
            inner.waiting.push_front(w);
        } else {
            inner.waiting.push_back(w);
        }
        Some(started)
    }

    /// A run holding `key` that waits goes before the others (a client is reading the run
    /// before it: it is what that client asks for next).
    pub fn sooner(&self, key: &str) {
        let mut inner = self.lock();
        if let Some(i) = inner.position(key) {
            let w = inner.waiting.remove(i).expect("found");
            inner.waiting.push_front(w);
        }
    }

    /// A client asks for `key` now: if it is in a waiting run, that run starts at once.
    pub fn hurry(&self, key: &str) {
        let mut inner = self.lock();
        if let Some(i) = inner.position(key) {
            let w = inner.waiting.remove(i).expect("found");
            if w.go.send(()).is_ok() {
                inner.reading += 1;
            }
        }
    }

    /// A read ended: the next waiting run may start.
    pub fn done(&self) {
        let mut inner = self.lock();
        inner.reading = inner.reading.saturating_sub(1);
        self.start_waiting(&mut inner);
    }

    /// Reads under way, and runs waiting.
    #[cfg(test)]
    fn load(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.reading, inner.waiting.len())
    }

    /// Starts waiting runs while fewer than `readers` reads are under way.
    pub fn dispatch(&self) {
        self.start_waiting(&mut self.lock());
    }

    fn start_waiting(&self, inner: &mut Inner) {
        while inner.reading < self.readers {
            let Some(w) = inner.waiting.pop_front() else {
                break;
            };
            if w.go.send(()).is_ok() {
                inner.reading += 1;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &str) -> Vec<String> {
        vec![k.to_string()]
    }

    #[test]
    fn read_ahead_waits_behind_clients_and_goes_in_order() {
        let b = Backlog::new(2, 4);
        b.start();
        let mut first = b.wait(keys("a"), false).unwrap();
        let mut second = b.wait(keys("b"), false).unwrap();
        assert!(
            first.try_recv().is_err(),
            "nothing starts before a dispatch"
        );
        b.dispatch();
        assert!(first.try_recv().is_ok(), "one reader was free");
        assert!(second.try_recv().is_err(), "both readers busy: it waits");
        let mut third = b.wait(keys("c"), false).unwrap();
        let mut sooner = b.wait(keys("s"), true).unwrap();
        let _d = b.wait(keys("d"), false).unwrap();
        assert!(b.wait(keys("e"), false).is_none(), "the backlog is full");
        b.done();
        assert!(sooner.try_recv().is_ok(), "one wanted first goes first");
        b.done();
        assert!(second.try_recv().is_ok(), "then in order");
        assert!(third.try_recv().is_err());
        b.sooner("d");
        b.done();
        assert!(third.try_recv().is_err(), "d went before it");
        assert_eq!(b.load(), (2, 1));
    }

    #[test]
    fn a_client_asking_for_a_waiting_run_starts_it_at_once() {
        let b = Backlog::new(1, 8);
        b.start();
        let mut waiting = b.wait(vec!["x/1".into(), "x/2".into()], false).unwrap();
        b.dispatch();
        assert!(waiting.try_recv().is_err());
        b.hurry("x/2");
        assert!(waiting.try_recv().is_ok());
        assert_eq!(b.load(), (2, 0), "counted as under way");
        b.hurry("nothing waits for this");
        assert_eq!(b.load(), (2, 0));
    }
}
