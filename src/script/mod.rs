//! The Rhai host: the one engine that playbooks, the REPL, the tests and the examples share.
//!
//! - `engine.rs` builds the `Engine` (and is the only place that does);
//! - one file per API area registers its functions with their docs: `account.rs`,
//!   `storage.rs`, `util.rs`;
//! - `help.rs` turns the engine's own metadata into `help()`, REPL completion and the README's
//!   API table; `diagnostic.rs` prints errors as `file:line:col: message` with a caret;
//! - `runner.rs` runs a playbook file, `repl.rs` is the interactive loop.
//!
//! Rhai is blocking, so the engine runs on its own thread and host functions cross into async
//! code through `Host::block_on`, the single sync/async bridge.

mod account;
pub mod diagnostic;
mod drill;
mod engine;
mod errors;
pub mod help;
mod jobs;
mod media;
pub mod repl;
pub mod runner;
mod storage;
mod util;

pub use account::Account;
pub use engine::{build_engine, limit_data, Host};
