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

/// A real `amsplay serve` process over an Azurite account, for the emulator's tests.
pub struct Media {
    pub env: Env,
    child: Option<std::process::Child>,
    pub port: u16,
    pub data: tempfile::TempDir,
    pub account: String,
    pub key: String,
    extra: Vec<String>,
    /// The data folder is a tmpfs of this many KiB, in a mount namespace of the emulator's own.
    disk_kib: Option<u64>,
}

impl Media {
    /// Azurite with account `dca`, and an emulator `amstest` storing assets there.
    pub async fn start(extra: &[&str]) -> Media {
        let env = Env::start(&["dca"]).await;
        let mut m = Media {
            env,
            child: None,
            port: 0,
            data: tempfile::tempdir().unwrap(),
            account: "amstest".into(),
            key: amsplay::azurite::generate_key(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            disk_kib: None,
        };
        m.spawn(0);
        m
    }

    /// As `start`, with a data folder that holds only `kib` KiB (a real full disk: a tmpfs
    /// mounted in the emulator's own mount namespace, gone with it).
    pub async fn start_on_small_disk(kib: u64) -> Media {
        let env = Env::start(&["dca"]).await;
        let mut m = Media {
            env,
            child: None,
            port: 0,
            data: tempfile::tempdir().unwrap(),
            account: "amstest".into(),
            key: amsplay::azurite::generate_key(),
            extra: Vec::new(),
            disk_kib: Some(kib),
        };
        m.spawn(0);
        m
    }

    /// Where the emulator's data folder is, as seen from outside its mount namespace.
    pub fn data_path(&self) -> PathBuf {
        match (&self.disk_kib, &self.child) {
            (Some(_), Some(c)) => PathBuf::from(format!("/proc/{}/root", c.id()))
                .join(self.data.path().strip_prefix("/").unwrap()),
            _ => self.data.path().to_path_buf(),
        }
    }

    fn spawn(&mut self, port: u16) {
        use std::io::BufRead;
        let exe = env!("CARGO_BIN_EXE_amsplay");
        let mut cmd = match self.disk_kib {
            None => Command::new(exe),
            Some(kib) => {
                let mut c = Command::new("unshare");
                c.args(["--map-root-user", "--mount", "--propagation", "private"])
                    .args([
                        "sh",
                        "-c",
                        "mount -t tmpfs -o size=\"$1\"k tmpfs \"$2\" && shift 2 && exec \"$@\"",
                        "sh",
                    ])
                    .arg(kib.to_string())
                    .arg(self.data.path())
                    .arg(exe);
                c
            }
        };
        let mut child = cmd
            .args([
                "serve",
                "--account",
                &self.account,
                "--storage",
                "AMSPLAY_TEST_STORAGE",
            ])
            .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(self.data.path())
            .args(&self.extra)
            .env("AMSPLAY_MEDIA_KEY", &self.key)
            .env("AMSPLAY_TEST_STORAGE", self.env.connection_string("dca"))
            .env_remove("AMSPLAY_ACCOUNTS")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("amsplay serve starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        self.port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("amsplay serve said {line:?}"));
        self.child = Some(child);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Kills the emulator (SIGKILL) and starts it again on the same port and data.
    pub fn kill_and_restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
        let port = self.port;
        self.spawn(port);
    }

    /// An ACS token.
    pub async fn token(&self) -> String {
        let r = reqwest::Client::new()
            .post(self.url("/v2/OAuth2-13"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.account.as_str()),
                ("client_secret", self.key.as_str()),
                ("scope", "urn:WindowsAzureMediaServices"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_string()
    }

    /// A client of ours pointed at it.
    pub fn client(&self, api: &str) -> amsplay::ams::client::MediaClient {
        amsplay::ams::client::MediaClient::new(amsplay::config::MediaAccount {
            account: self.account.clone(),
            key: self.key.clone(),
            api: url::Url::parse(&self.url(api)).unwrap(),
            token_endpoint: url::Url::parse(&self.url("/v2/OAuth2-13")).unwrap(),
            aad: false,
        })
    }
}

impl Drop for Media {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A local environment brought up with `amsplay local up` in a temporary folder, and taken
/// down when dropped (also when the test panics).
pub struct LocalUp {
    pub dir: tempfile::TempDir,
}

impl LocalUp {
    pub fn start() -> Self {
        let me = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        me.amsplay().args(["local", "up"]).output().success();
        me
    }

    /// `amsplay local status --json`.
    pub fn status(&self) -> serde_json::Value {
        let out = self.amsplay().args(["local", "status", "--json"]).output();
        serde_json::from_str(&out.success().stdout()).unwrap()
    }

    /// The binary, pointed at this environment.
    pub fn amsplay(&self) -> Amsplay {
        amsplay()
            .cwd(self.dir.path())
            .env("AMSPLAY_LOCAL_DIR", self.dir.path().join("local"))
    }
}

impl Drop for LocalUp {
    fn drop(&mut self) {
        let _ = self.amsplay().args(["local", "down"]).output();
    }
}

/// Real nginx (Debian's package) running the configuration `amsplay front --emit nginx`
/// writes for a local environment's two origins; stopped when dropped.
pub struct Nginx {
    pub url: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx in front of `env`'s origins, with `extra` arguments for `--emit nginx`.
    pub fn start(env: &LocalUp, extra: &[&str]) -> Self {
        let v = env.status();
        let dir = tempfile::tempdir().unwrap();
        // nginx cannot listen on port 0: take a free port below the ephemeral range (where
        // no outgoing connection can take it before nginx binds it) and hand it over.
        static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
        let base = 20000 + (std::process::id() % 6000) as u16;
        let port = (0..64)
            .map(|_| base + NEXT.fetch_add(101, std::sync::atomic::Ordering::Relaxed) % 6000)
            .find(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
            .expect("a free port");
        let listen = format!("127.0.0.1:{port}");
        let nginx_dir = dir.path().display().to_string();
        let mut args = vec!["front", "--emit", "nginx", "--listen", &listen];
        args.extend(["--nginx-dir", &nginx_dir, "--timeout-ms", "1000"]);
        let origins: Vec<String> = v["datacenters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["origin"].as_str().unwrap().to_string())
            .collect();
        for o in &origins {
            args.extend(["--origin", o]);
        }
        args.extend(extra);
        let conf = env.amsplay().args(&args).output().success().stdout();
        let file = dir.path().join("nginx.conf");
        std::fs::write(&file, conf).unwrap();
        // As root, workers would switch to an unprivileged user that cannot enter the
        // temporary folder; elsewhere nginx ignores the directive with a warning.
        let child = std::process::Command::new("nginx")
            .arg("-c")
            .arg(&file)
            .arg("-p")
            .arg(dir.path())
            .args(["-g", "daemon off; user root;"])
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("nginx is installed by `make setup` (Debian's nginx package)");
        let url = format!("http://{listen}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(&listen).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Nginx {
            url,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: nginx's fast shutdown (its workers follow the master).
        let _ = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// An `amsplay front` process of its own before `origins`, with `extra` arguments; stopped
/// when dropped.
pub struct FrontDoor {
    pub port: u16,
    pub url: String,
    child: std::process::Child,
}

impl FrontDoor {
    pub fn start(origins: &[&str], extra: &[&str]) -> Self {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_amsplay"));
        cmd.arg("front");
        for o in origins {
            cmd.args(["--origin", o]);
        }
        let mut child = cmd
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the front door did not start: {line:?}"));
        FrontDoor {
            port,
            url: format!("http://127.0.0.1:{port}"),
            child,
        }
    }
}

impl Drop for FrontDoor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
