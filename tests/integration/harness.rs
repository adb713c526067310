//! The one test harness: Azurite processes with named accounts, storage clients for them, an
//! accounts file pointing at them, and a builder that runs the real `amsplay` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use amsplay::azurite::{generate_key, Azurite, AzuriteSpec};
use amsplay::config::{parse_connection_string, StorageAccount};
use amsplay::storage::Storage;

/// One Azurite process and the accounts it holds.
pub struct Env {
    pub azurite: Azurite,
    pub accounts: Vec<(String, String)>,
    pub dir: tempfile::TempDir,
}

impl Env {
    /// Azurite in memory with these accounts.
    pub async fn start(names: &[&str]) -> Env {
        Self::start_with(names, false).await
    }

    /// Azurite keeping its data on disk (so it can be killed and restarted on the same data).
    pub async fn start_persistent(names: &[&str]) -> Env {
        Self::start_with(names, true).await
    }

    async fn start_with(names: &[&str], persistent: bool) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let accounts: Vec<(String, String)> = names
            .iter()
            .map(|n| (n.to_string(), generate_key()))
            .collect();
        let azurite = Azurite::start(AzuriteSpec {
            accounts: accounts.clone(),
            location: persistent.then(|| dir.path().join("data")),
            port: 0,
            log: dir.path().join("azurite.log"),
            detach: false,
        })
        .await
        .unwrap_or_else(|e| panic!("Azurite must start for this test (run `make setup`): {e}"));
        Env {
            azurite,
            accounts,
            dir,
        }
    }

    pub fn key(&self, name: &str) -> String {
        self.accounts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| k.clone())
            .expect("known account")
    }

    pub fn account(&self, name: &str) -> StorageAccount {
        parse_connection_string(&self.connection_string(name)).expect("valid")
    }

    pub fn connection_string(&self, name: &str) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={name};AccountKey={};BlobEndpoint={};",
            self.key(name),
            self.azurite.endpoint(name)
        )
    }

    pub fn storage(&self, name: &str) -> Storage {
        Storage::open(&self.account(name)).expect("storage opens")
    }

    /// An accounts file naming `(datacenter, account)` pairs of this process, keys in files.
    pub fn accounts_file(&self, pairs: &[(&str, &str)]) -> PathBuf {
        let mut toml = String::new();
        for (dc, acct) in pairs {
            let key_path = self.dir.path().join(format!("{acct}.key"));
            std::fs::write(&key_path, self.key(acct)).expect("write key");
            toml.push_str(&format!(
                "[accounts.{dc}]\nstorage_account = \"{acct}\"\nblob_endpoint = \"{}\"\nkey_file = \"{}\"\n\n",
                self.azurite.endpoint(acct),
                key_path.display()
            ));
        }
        let path = self.dir.path().join("amsplay.toml");
        std::fs::write(&path, toml).expect("write accounts file");
        path
    }
}

/// Runs the real `amsplay` binary.
pub struct Amsplay {
    cmd: Command,
    stdin: Option<String>,
}

pub fn amsplay() -> Amsplay {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_amsplay"));
    cmd.env_remove("AMSPLAY_ACCOUNTS")
        .env("AMSPLAY_NO_PROGRESS", "1")
        .env("RUST_LOG", "warn");
    Amsplay { cmd, stdin: None }
}

impl Amsplay {
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn accounts(mut self, file: &Path) -> Self {
        self.cmd.arg("--accounts").arg(file);
        self
    }

    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(k, v);
        self
    }

    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    /// Runs a playbook given as text, written to `dir/name`.
    pub fn script(self, dir: &Path, name: &str, text: &str) -> Self {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write playbook");
        self.args(["run".as_ref(), path.as_os_str()])
    }

    /// Text fed to standard input.
    pub fn stdin(mut self, text: &str) -> Self {
        self.stdin = Some(text.to_string());
        self
    }

    pub fn output(mut self) -> Run {
        use std::io::Write;
        use std::process::Stdio;
        self.cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.cmd.spawn().expect("amsplay runs");
        let input = self.stdin.take().unwrap_or_default();
        let mut pipe = child.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
        let out = child.wait_with_output().expect("amsplay finishes");
        let _ = writer.join();
        Run(out)
    }
}

/// A finished run, with assertions that print everything on failure.
pub struct Run(pub Output);

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn success(self) -> Self {
        assert!(
            self.0.status.success(),
            "amsplay failed ({:?})\n--- stdout\n{}\n--- stderr\n{}",
            self.0.status,
            self.stdout(),
            self.stderr()
        );
        self
    }
    pub fn failure(self) -> Self {
        assert!(
            !self.0.status.success(),
            "amsplay should have failed\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
    pub fn stderr_has(self, needle: &str) -> Self {
        assert!(
            self.stderr().contains(needle),
            "stderr lacks {needle:?}\n--- stderr\n{}",
            self.stderr()
        );
        self
    }
    pub fn stdout_has(self, needle: &str) -> Self {
        assert!(
            self.stdout().contains(needle),
            "stdout lacks {needle:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// MD5 of bytes as hex.
pub fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(data))
}

/// Deterministic test data of `len` bytes, different per `seed`.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

/// A small HTTP proxy in front of Azurite that produces what Azurite never does on demand:
/// Copy Blob answers that stay `pending` for a few polls, copies that end `failed`, and 503s.
/// Requests pass through with their Host header, so Azurite still copies between its accounts.
pub mod fault {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::extract::{Request, State};
    use axum::response::Response;

    #[derive(Default)]
    pub struct Faults {
        /// Polls of each copied blob that answer `pending` before the real status shows.
        pub pending_polls: u32,
        /// Copy Blob requests to refuse with 503 before letting them through.
        pub busy_copies: AtomicU32,
        /// Copies whose first poll says `failed`.
        pub failed_copies: AtomicU32,
        /// Polls answered `pending`, copies refused, copies failed: what the proxy did.
        pub served_pending: AtomicU32,
        pub served_busy: AtomicU32,
        pub served_failed: AtomicU32,
        remaining: Mutex<std::collections::HashMap<String, (u32, bool)>>,
    }

    impl Faults {
        pub fn with_pending_polls(n: u32) -> Self {
            Self {
                pending_polls: n,
                ..Default::default()
            }
        }
    }

    struct Shared {
        upstream: u16,
        faults: Arc<Faults>,
        http: reqwest::Client,
    }

    /// Starts the proxy on an ephemeral port; it lives as long as the test's runtime.
    pub async fn start(upstream: u16, faults: Arc<Faults>) -> u16 {
        let shared = Arc::new(Shared {
            upstream,
            faults,
            http: reqwest::Client::new(),
        });
        let app = axum::Router::new().fallback(handle).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        port
    }

    async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let path = parts.uri.path().to_string();
        let is_copy = parts.method == "PUT" && parts.headers.contains_key("x-ms-copy-source");
        let f = &s.faults;
        if is_copy
            && f.busy_copies
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            f.served_busy.fetch_add(1, Ordering::SeqCst);
            return Response::builder()
                .status(503)
                .header("x-ms-error-code", "ServerBusy")
                .body(Body::from("busy"))
                .unwrap();
        }
        let url = format!(
            "http://127.0.0.1:{}{}",
            s.upstream,
            parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
        );
        let mut out = s.http.request(parts.method.clone(), url).body(body);
        for (k, v) in &parts.headers {
            if k != "content-length" {
                out = out.header(k, v);
            }
        }
        let resp = out.send().await.unwrap();
        let status = resp.status();
        let mut headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let mut remaining = f.remaining.lock().unwrap();
        if is_copy && status.is_success() {
            let fail = f
                .failed_copies
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            remaining.insert(path.clone(), (f.pending_polls, fail));
            headers.insert("x-ms-copy-status", "pending".parse().unwrap());
        } else if parts.method == "HEAD" {
            if let Some((left, fail)) = remaining.get_mut(&path) {
                if *left > 0 {
                    *left -= 1;
                    f.served_pending.fetch_add(1, Ordering::SeqCst);
                    headers.insert("x-ms-copy-status", "pending".parse().unwrap());
                } else if *fail {
                    *fail = false;
                    f.served_failed.fetch_add(1, Ordering::SeqCst);
                    headers.insert("x-ms-copy-status", "failed".parse().unwrap());
                    headers.insert(
                        "x-ms-copy-status-description",
                        "500 InternalError injected by the test".parse().unwrap(),
                    );
                }
            }
        }
        let mut builder = Response::builder().status(status);
        for (k, v) in &headers {
            if k != "transfer-encoding" && k != "connection" {
                builder = builder.header(k, v);
            }
        }
        builder.body(Body::from(bytes)).unwrap()
    }
}
