//! The Rhai host: the one engine that playbooks, the REPL, the tests and the examples share.
//!
//! - `engine.rs` builds the `Engine` (and is the only place that does);
//! - `host.rs` is what host functions stand on: `Host` (the accounts a playbook names), the one
//!   bridge into async code (`Bridge`, stopped by `Stop`), `func`/`getter` registration;
//! - one file per API area registers its functions with their docs: `account.rs` (accounts,
//!   assets, locators, replication), `storage.rs` (Blob Storage), `media.rs` (Media Services
//!   entities' getters), `jobs.rs` (encoding jobs), `sync.rs` (continuous replication),
//!   `drill.rs` (players, faults, drills),
//!   `util.rs` (files, time, durations);
//! - `errors.rs` turns host errors into catchable script maps (`kind`, `message`, `hint`);
//! - `help.rs` turns the engine's own metadata into `help()`, REPL completion and the README's
//!   API table; `diagnostic.rs` prints errors as `file:line:col: message` with a caret;
//! - `runner.rs` runs a playbook file, `repl.rs` is the interactive loop.
//!
//! Rhai is blocking, so the engine runs on its own thread and host functions cross into async
//! code through one bridge, `host.rs`'s `Bridge::call`, which a `Stop` (Ctrl-C, SIGTERM,
//! SIGHUP) ends: the script stops at the call it was in, or between two operations.

mod account;
pub(crate) mod diagnostic;
mod drill;
mod engine;
mod errors;
pub mod help;
mod host;
mod jobs;
mod media;
pub(crate) mod repl;
pub mod runner;
mod storage;
pub mod sync;
mod util;

pub use account::Account;
pub use engine::{build_engine, limit_data};
pub use host::{Bridge, Host, Stop};
