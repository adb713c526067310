//! Azurite, Microsoft's Blob Storage emulator, run as a real child process.
//!
//! Used by the local environment and by the tests. Azurite comes from the project's
//! `node_modules` (`npm ci`); its accounts come from `AZURITE_ACCOUNTS`; it listens on the port
//! asked for, or an ephemeral one, and says which on its standard output, which goes to a log
//! file we watch. One process can hold several accounts, and only within one process can it copy
//! between them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable naming Azurite's blob entry point (`…/azurite/dist/src/blob/main.js`).
pub const AZURITE_ENV: &str = "AMSPLAY_AZURITE";

#[derive(Debug, thiserror::Error)]
pub enum AzuriteError {
    #[error("Azurite is not installed: no node_modules/azurite found from {searched}. Run `make setup` (it runs `npm ci`) in the amsplay checkout, or set ${AZURITE_ENV} to azurite's dist/src/blob/main.js")]
    NotInstalled { searched: String },
    #[error("cannot start Azurite with `node`: {0}. Install Node.js (apt-get install nodejs) and run `make setup`")]
    Spawn(std::io::Error),
    #[error("Azurite did not start within {secs} s; its log ({log}) ends with:\n{tail}")]
    NotReady {
        secs: u64,
        log: PathBuf,
        tail: String,
    },
    #[error("Azurite: {0}")]
    Io(#[from] std::io::Error),
}

/// What to start.
#[derive(Debug, Clone)]
pub struct AzuriteSpec {
    /// `(account name, base64 key)` pairs.
    pub accounts: Vec<(String, String)>,
    /// Data folder; `None` keeps everything in memory.
    pub location: Option<PathBuf>,
    /// Port to listen on; 0 for an ephemeral one.
    pub port: u16,
    /// Where Azurite's output goes.
    pub log: PathBuf,
    /// Keep running after this handle is dropped (the `local up` daemon).
    pub detach: bool,
}

/// A running Azurite. Dropping an attached one stops it.
#[derive(Debug)]
pub struct Azurite {
    child: Option<Child>,
    pub pid: u32,
    pub port: u16,
    spec: AzuriteSpec,
}

/// Finds Azurite's blob entry point: `$AMSPLAY_AZURITE`, then `node_modules` in the current
/// folder or any parent, then beside the running executable's checkout.
pub fn locate() -> Result<PathBuf, AzuriteError> {
    if let Some(p) = std::env::var_os(AZURITE_ENV) {
        return Ok(PathBuf::from(p));
    }
    let rel = Path::new("node_modules/azurite/dist/src/blob/main.js");
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    roots.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    for root in &roots {
        let candidate = root.join(rel);
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    Err(AzuriteError::NotInstalled {
        searched: std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    })
}

impl Azurite {
    /// Starts Azurite and waits until it listens.
    pub async fn start(spec: AzuriteSpec) -> Result<Self, AzuriteError> {
        let (child, port) = launch(&spec).await?;
        Ok(Azurite {
            pid: child.id(),
            child: Some(child),
            port,
            spec,
        })
    }

    /// Blob endpoint of one of its accounts: `http://127.0.0.1:PORT/ACCOUNT`.
    pub fn endpoint(&self, account: &str) -> String {
        format!("http://127.0.0.1:{}/{account}", self.port)
    }

    /// Kills it at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        } else {
            signal(self.pid, Signal::Kill);
        }
    }

    /// Stops it politely (SIGTERM), then kills it if it has not gone within a few seconds.
    pub async fn stop(&mut self) {
        stop_pid(self.pid).await;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again with the same accounts, data and port (after `kill` or `stop`).
    pub async fn restart(&mut self) -> Result<(), AzuriteError> {
        self.spec.port = self.port;
        let (child, port) = launch(&self.spec).await?;
        self.pid = child.id();
        self.child = Some(child);
        self.port = port;
        Ok(())
    }

    /// Lets an attached process outlive this handle.
    pub fn detach(mut self) -> u32 {
        self.child = None;
        self.spec.detach = true;
        self.pid
    }
}

impl Drop for Azurite {
    /// An attached Azurite is stopped politely, so that it saves its state to disk: a killed
    /// one loses the writes of its last seconds.
    fn drop(&mut self) {
        if self.spec.detach {
            return;
        }
        if let Some(mut c) = self.child.take() {
            if matches!(c.try_wait(), Ok(None)) {
                signal(self.pid, Signal::Term);
                let started = Instant::now();
                while started.elapsed() < Duration::from_secs(5) {
                    if matches!(c.try_wait(), Ok(Some(_))) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Node's first old-generation collection waits until the heap reaches 128 MiB. Without it,
/// once Azurite has idled a few seconds V8's memory reducer shrinks its heap to about its live
/// size (47 MB), and under load every few MB promoted from the young generation (the objects
/// of requests in flight) then costs a full mark-compact of that heap: a cold origin's burst
/// of reads cost Azurite 2.5–3× the CPU (over half of it marking), on the same two cores as
/// everything else. With it the burst costs what it does on a fresh Azurite (its RSS stayed
/// near 160 MB). `bench/origin` runs the baseline's Azurite with it too, and this checkout's
/// once without it (docs/bench.md).
const NODE_HEAP: &str = "--initial-old-space-size=128";

/// Spawns the process and waits until it listens; returns it and its port.
async fn launch(spec: &AzuriteSpec) -> Result<(Child, u16), AzuriteError> {
    let main = locate()?;
    if let Some(dir) = spec.log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let (log, log_start) = crate::logfile::open_append(&spec.log)?;
    let accounts = spec
        .accounts
        .iter()
        .map(|(n, k)| format!("{n}:{k}"))
        .collect::<Vec<_>>()
        .join(";");
    let mut cmd = Command::new("node");
    cmd.arg(NODE_HEAP)
        .arg(&main)
        .args(["--blobHost", "127.0.0.1", "--blobPort"])
        .arg(spec.port.to_string())
        .args([
            "--silent",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--loose",
        ])
        .env("AZURITE_ACCOUNTS", accounts)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    match &spec.location {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            cmd.arg("--location").arg(dir);
        }
        None => {
            cmd.arg("--inMemoryPersistence");
        }
    }
    if spec.detach {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    crate::memory::unlimit_child(&mut cmd);
    let mut child = cmd.spawn().map_err(AzuriteError::Spawn)?;
    match wait_ready(&mut child, &spec.log, log_start, Duration::from_secs(30)).await {
        Ok(port) => {
            tracing::info!(pid = child.id(), port, "Azurite is listening");
            Ok((child, port))
        }
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// Waits for Azurite's "listens on" line in its log and a successful connect to that port.
async fn wait_ready(
    child: &mut Child,
    log: &Path,
    log_start: u64,
    limit: Duration,
) -> Result<u16, AzuriteError> {
    const MARK: &str = "successfully listens on http://127.0.0.1:";
    let started = Instant::now();
    loop {
        let text = crate::logfile::read_since(log, log_start);
        let port = text.split(MARK).nth(1).and_then(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<u16>()
                .ok()
        });
        if let Some(port) = port {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(port);
            }
        }
        if child.try_wait()?.is_some() || started.elapsed() > limit {
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            return Err(AzuriteError::NotReady {
                secs: started.elapsed().as_secs(),
                log: log.to_path_buf(),
                tail,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(Clone, Copy)]
enum Signal {
    Term,
    Kill,
}

fn signal(pid: u32, sig: Signal) -> bool {
    let s = match sig {
        Signal::Term => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, s) == 0 }
}

/// Whether a process with this id is alive (and not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// SIGTERM, wait up to 5 s, then SIGKILL.
pub async fn stop_pid(pid: u32) {
    if !alive(pid) {
        return;
    }
    signal(pid, Signal::Term);
    let started = Instant::now();
    while alive(pid) && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if alive(pid) {
        signal(pid, Signal::Kill);
    }
}

/// `stop_pid` for callers without a runtime (destructors).
pub fn stop_pid_blocking(pid: u32) {
    if !alive(pid) {
        return;
    }
    signal(pid, Signal::Term);
    let started = Instant::now();
    while alive(pid) && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if alive(pid) {
        signal(pid, Signal::Kill);
    }
}

/// A fresh random account key, base64, as Azure issues them (64 bytes).
pub fn generate_key() -> String {
    use base64::Engine as _;
    use rand::RngCore;
    let mut key = [0u8; 64];
    rand::thread_rng().fill_bytes(&mut key);
    base64::engine::general_purpose::STANDARD.encode(key)
}
