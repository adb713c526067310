//! The one place that builds the Rhai `Engine`, and the `Host` its functions share.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use rhai::Engine;
use tokio::runtime::Handle;

use super::errors::{IntoScript, RhaiResult};
use super::{account, drill, help, jobs, media, storage, util, Account};
use crate::config::AccountsFile;

/// What host functions share: the async runtime, the accounts, and accounts already opened.
pub struct Host {
    rt: Handle,
    accounts: AccountsFile,
    /// Where the accounts came from, for messages ("amsplay.toml", "the local environment").
    pub accounts_origin: String,
    opened: Mutex<HashMap<String, Account>>,
}

impl Host {
    pub fn new(
        rt: Handle,
        accounts: AccountsFile,
        accounts_origin: impl Into<String>,
    ) -> Arc<Self> {
        Arc::new(Self {
            rt,
            accounts,
            accounts_origin: accounts_origin.into(),
            opened: Mutex::new(HashMap::new()),
        })
    }

    /// Runs async work to completion from the engine's thread: the single sync/async bridge.
    /// The engine never runs on a runtime worker, so this cannot block one.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The runtime, for host functions that start background work.
    pub fn handle(&self) -> Handle {
        self.rt.clone()
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
        let a = Account::open(name, &storage_account, media, self.rt.clone()).script()?;
        opened.insert(name.to_string(), a.clone());
        Ok(a)
    }
}

/// What a playbook may hold by default (strings, arrays and maps sized from it).
pub const DEFAULT_DATA_BYTES: u64 = 1 << 30;

/// Sizes Rhai's data limits from a memory budget: a string a quarter of it, arrays and maps
/// by a rough per-element cost. Growth past them is a script error at the line that grew.
pub fn limit_data(engine: &mut Engine, bytes: u64) {
    let usize_of = |n: u64| usize::try_from(n).unwrap_or(usize::MAX).max(1);
    engine.set_max_string_size(usize_of(bytes / 4));
    engine.set_max_array_size(usize_of(bytes / 64));
    engine.set_max_map_size(usize_of(bytes / 256));
}

/// Builds the engine with every amsplay function registered and documented.
pub fn build_engine(host: Arc<Host>) -> Engine {
    let mut engine = Engine::new();
    engine.set_max_call_levels(256);
    limit_data(&mut engine, DEFAULT_DATA_BYTES);
    engine.on_debug(|text, source, pos| {
        let src = source.unwrap_or("script");
        eprintln!(
            "{src}:{}:{}: debug: {text}",
            pos.line().unwrap_or(0),
            pos.position().unwrap_or(0)
        );
    });
    account::register(&mut engine, &host);
    storage::register(&mut engine, &host);
    media::register(&mut engine);
    jobs::register(&mut engine);
    drill::register(&mut engine, &host);
    util::register(&mut engine, &host);
    help::install(&mut engine);
    engine
}

/// Starts a documented property registration: `value.prop` on values of `type_name`,
/// returning `returns`; `help()` lists it as `Type.prop`.
pub(crate) fn getter(
    type_name: &str,
    prop: &str,
    returns: &str,
    doc: &str,
) -> rhai::FuncRegistration {
    let this = format!("{}: {type_name}", type_name.to_lowercase());
    rhai::FuncRegistration::new_getter(prop)
        .with_params_info([this.as_str(), returns])
        .with_comments([comments(doc)])
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
