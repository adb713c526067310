//! amsplay: failover playbooks for video-on-demand streaming.
//!
//! # Layout
//! (The README's layout table lists the same, file by file; a test keeps both true.) Modules
//! only amsplay itself uses are `pub(crate)`: the public surface is what the binary and the
//! integration tests need.
//! - `cli`: the command line; every face (`run`, `check`, `repl`, `local`, `serve`, `front`,
//!   `doc`) is a function here over the library. `main.rs` only parses arguments and calls
//!   `cli::run`.
//! - `config`: the accounts file (datacenter names → storage and Media Services accounts;
//!   secrets only by reference).
//! - `retry`: one retry policy for every error that says whether it is transient.
//! - `storage`: Blob Storage on the Azure SDK: listing, SAS and stored access policies,
//!   transfers (`transfer.rs` over the block pipeline in `blocks.rs`), the copy engine
//!   (`copy.rs`).
//! - `ams`: Media Services v2 wire model (shared by client and emulator), tokens and the client.
//! - `emulator`: `amsplay serve`, the v2 REST API, the job queue and the ffmpeg encoder.
//! - `origin`: the streaming origin (its own router, errors, caches, deep health).
//! - `front`: the failover front door, and the nginx edge it can write.
//! - `console`: `amsplay console`, the operations web page over both datacenters.
//! - `replicate`: the walkthrough's seven replication steps as one idempotent function;
//!   `sync`: continuous replication, pass after pass, built on it.
//! - `script`: the Rhai host: one engine builder, one file per API area, help from metadata,
//!   the playbook runner and the REPL.
//! - `player`: the drills' HLS player; `faults`: fault points for outage drills.
//! - `azurite`: Azurite as a supervised child process; `localenv`: the local two-datacenter
//!   environment built on it (the embedded default); `process`: child processes known by
//!   pid and start time, never signalled blindly.
//! - `server`: serving with a header-read timeout, a connection cap and one-line panics;
//!   `logfile`: appended, size-rotated logs; `progress`: progress bars on a terminal,
//!   `tracing` events otherwise; `memory`: `--max-memory` and a clear out-of-memory line;
//!   `lru`: the byte-bounded map behind the origin's and the front door's caches; `cors`:
//!   the CORS headers and preflight answer the origin and the front door share.

pub mod ams;
pub mod azurite;
pub mod cli;
pub mod config;
pub(crate) mod console;
pub(crate) mod cors;
pub mod emulator;
pub(crate) mod faults;
pub(crate) mod front;
pub(crate) mod localenv;
pub(crate) mod logfile;
pub(crate) mod lru;
pub mod memory;
pub(crate) mod origin;
pub(crate) mod player;
pub(crate) mod process;
pub(crate) mod progress;
pub(crate) mod replicate;
pub(crate) mod retry;
pub mod script;
pub(crate) mod server;
pub mod storage;
pub(crate) mod sync;

#[cfg(test)]
mod layout;

/// What the unit tests share.
#[cfg(test)]
pub(crate) mod testing {
    /// Property tests' budget: "no input panics" over a few hundred cases each, so that
    /// `make test` stays quick on two cores; failures are not persisted to files.
    pub fn budget() -> proptest::test_runner::Config {
        proptest::test_runner::Config {
            cases: 256,
            failure_persistence: None,
            ..Default::default()
        }
    }
}
