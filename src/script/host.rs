//! What host functions stand on: the [`Host`] they share, the one bridge from Rhai's thread
//! into async code ([`Bridge`], cancelled by [`Stop`]), and documented registration
//! ([`func`], [`getter`]). Below `engine.rs` and the area files, which all use it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rhai::{Dynamic, EvalAltResult, Position};
use tokio::runtime::Handle;
use tokio::sync::Notify;

use super::errors::{IntoScript, RhaiResult};
use super::Account;
use crate::config::AccountsFile;

/// A request to stop the scripts of a host: Ctrl-C, SIGTERM or SIGHUP, with its name and the
/// exit code a shell gives it. Cheap to clone; every clone sees the same request.
#[derive(Clone, Default)]
pub struct Stop(Arc<StopInner>);

#[derive(Default)]
struct StopInner {
    set: AtomicBool,
    reason: Mutex<Option<(&'static str, i32)>>,
    notify: Notify,
}

impl Stop {
    /// Asks every script of this host to stop now (the first reason given is kept).
    pub fn request(&self, name: &'static str, exit_code: i32) {
        let mut reason = self.0.reason.lock().unwrap_or_else(|e| e.into_inner());
        reason.get_or_insert((name, exit_code));
        self.0.set.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    /// The request, if one was made: the signal's name and its exit code.
    pub fn requested(&self) -> Option<(&'static str, i32)> {
        if !self.0.set.load(Ordering::Relaxed) {
            return None;
        }
        *self.0.reason.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets a request (the REPL's next line runs again).
    pub fn reset(&self) {
        *self.0.reason.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.0.set.store(false, Ordering::SeqCst);
    }

    /// Completes once a stop is requested.
    pub async fn wait(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.0.set.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    /// The error a stopped script ends with: Rhai's own termination, which `try`/`catch`
    /// cannot hold back.
    pub fn terminated(&self) -> Box<EvalAltResult> {
        let name = self.requested().map(|(n, _)| n).unwrap_or("stopped");
        EvalAltResult::ErrorTerminated(Dynamic::from(name), Position::NONE).into()
    }
}

/// The one bridge from Rhai's (blocking) thread into async code: a future runs to completion
/// on the runtime, unless a stop is requested first, and then the script ends at the call it
/// was in. The engine never runs on a runtime worker, so blocking here cannot starve one.
#[derive(Clone)]
pub struct Bridge {
    rt: Handle,
    stop: Stop,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bridge")
    }
}

impl Bridge {
    /// Runs a fallible call; its error becomes a catchable script error.
    pub fn call<T, E>(&self, f: impl Future<Output = Result<T, E>>) -> RhaiResult<T>
    where
        Result<T, E>: IntoScript<T>,
    {
        self.wait(f)?.script()
    }

    /// Runs a future whose output is not an error of ours (a join handle, a report).
    pub fn wait<F: Future>(&self, f: F) -> RhaiResult<F::Output> {
        if self.stop.requested().is_some() {
            return Err(self.stop.terminated());
        }
        self.rt.block_on(async {
            tokio::select! {
                out = f => Ok(out),
                _ = self.stop.wait() => Err(self.stop.terminated()),
            }
        })
    }

    /// Starts background work on the runtime (a player that plays while the script goes on).
    pub fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.rt.spawn(f)
    }

    /// What stops the scripts that use this bridge.
    pub fn stop(&self) -> &Stop {
        &self.stop
    }
}

/// What host functions share: the bridge into async code, the accounts, and accounts already
/// opened.
pub struct Host {
    bridge: Bridge,
    accounts: AccountsFile,
    /// Where the accounts came from, for messages ("amsplay.toml", "the local environment").
    pub accounts_origin: String,
    opened: Mutex<HashMap<String, Account>>,
}

impl Host {
    /// A host on runtime `rt`; `stop` ends the scripts it runs (see [`Stop`]).
    pub fn new(
        rt: Handle,
        stop: Stop,
        accounts: AccountsFile,
        accounts_origin: impl Into<String>,
    ) -> Arc<Self> {
        Arc::new(Self {
            bridge: Bridge { rt, stop },
            accounts,
            accounts_origin: accounts_origin.into(),
            opened: Mutex::new(HashMap::new()),
        })
    }

    /// Runs a fallible async call from the engine's thread (see [`Bridge::call`]).
    pub fn call<T, E>(&self, f: impl Future<Output = Result<T, E>>) -> RhaiResult<T>
    where
        Result<T, E>: IntoScript<T>,
    {
        self.bridge.call(f)
    }

    /// The bridge, for values that cross into async code later (accounts, players).
    pub fn bridge(&self) -> &Bridge {
        &self.bridge
    }

    pub fn accounts(&self) -> &AccountsFile {
        &self.accounts
    }

    /// The account a playbook names, opened once and reused.
    pub fn account(&self, name: &str) -> RhaiResult<Account> {
        let mut opened = self.opened.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = opened.get(name) {
            return Ok(a.clone());
        }
        let storage_account = self.accounts.storage(name).script()?;
        let media = self.accounts.media(name).script()?;
        let a = Account::open(name, &storage_account, media, self.bridge.clone()).script()?;
        opened.insert(name.to_string(), a.clone());
        Ok(a)
    }
}

/// A duration in days as playbooks pass it: a whole number or what `days()`, `hours()` and
/// `minutes()` return (the help shows it as `number`).
pub type Days = rhai::Dynamic;

/// The host of the engine a plugin function runs in (set as the engine's default tag).
pub(crate) fn host(ctx: &rhai::NativeCallContext) -> RhaiResult<Arc<Host>> {
    ctx.tag()
        .and_then(|t| t.clone().try_cast::<Arc<Host>>())
        .ok_or_else(|| {
            super::errors::host_error("internal", "this engine has no amsplay host", None, None)
        })
}

/// Starts a documented function registration. `params` are `"name: Type"` with the return type
/// last; `doc` is what `help("name")` prints (an example included).
pub(crate) fn func(name: &str, params: &[&str], doc: &str) -> rhai::FuncRegistration {
    rhai::FuncRegistration::new(name)
        .with_params_info(params)
        .with_comments([comments(doc)])
}

/// A doc as Rhai's metadata keeps it: `///` lines.
fn comments(doc: &str) -> String {
    doc.trim()
        .lines()
        .map(|l| format!("/// {}", l.trim()))
        .collect::<Vec<_>>()
        .join("\n")
}
