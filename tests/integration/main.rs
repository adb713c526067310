//! amsplay's integration tests: one binary, real Azurite processes, the real `amsplay` executable.
//! Every test starts what it needs on ephemeral loopback ports through `harness` and stops it.

mod browsers;
mod cli;
mod console;
mod copy;
mod emulator;
mod encoding;
mod harness;
mod hostile;
mod limits;
mod origin;
mod outages;
mod scripts;
mod storage;
mod sync;
