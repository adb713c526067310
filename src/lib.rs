//! amsplay: failover playbooks for video-on-demand streaming.
//!
//! # Layout
//! - `cli`: the command line; every face (`run`, `check`, `repl`, `local`, `doc`) is a function
//!   here over the library. `main.rs` only parses arguments and calls `cli::run`.
//! - `config`: the accounts file (datacenter names → storage accounts; secrets only by reference).
//! - `storage`: Blob Storage on the Azure SDK: listing, SAS, transfers (`transfer.rs` over the
//!   block pipeline in `blocks.rs`), the copy engine (`copy.rs`), retries (`retry.rs`).
//! - `script`: the Rhai host: one engine builder, one file per API area, help from metadata,
//!   the playbook runner and the REPL.
//! - `azurite`: Azurite as a supervised child process; `localenv`: the local two-datacenter
//!   environment built on it (the embedded default).
//! - `progress`: progress bars on a terminal, `tracing` events otherwise.
//! - `ams`: Media Services v2 wire model (shared), tokens and the client; `emulator`: `amsplay
//!   serve`, the v2 REST API, the job queue and the ffmpeg encoder; `replicate`: the
//!   walkthrough's seven replication steps as one idempotent function.
//! - `origin`: the streaming origin (its own router, errors, caches, deep health); `front`: the
//!   failover front door; `faults`: fault points for outage drills; `server`: serving with
//!   limits; `player`: the drill's HLS player.

pub mod ams;
pub mod azurite;
pub mod cli;
pub mod config;
pub mod emulator;
pub mod faults;
pub mod front;
pub mod localenv;
pub mod logfile;
pub mod memory;
pub mod origin;
pub mod player;
pub mod process;
pub mod progress;
pub mod replicate;
pub mod retry;
pub mod script;
pub mod server;
pub mod storage;

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
