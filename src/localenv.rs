//! The local environment: two datacenters on loopback, the embedded default.
//!
//! One Azurite process holds two storage accounts, `dca` and `dcb`, each with its own
//! generated key (Azurite copies between accounts only inside one process, as two accounts in
//! one Azure region would), and one Media Services emulator per datacenter (`amsdca`, `amsdcb`)
//! stores its assets in its datacenter's account. Data lives under `.amsplay/local/`; keys are
//! generated once and kept in `keys/`; the accounts file `amsplay.toml` there names the
//! datacenters `dc-a` and `dc-b`. `up` leaves it all running as background processes (state in
//! `state.json`); `run`/`repl` without an accounts file reuse a running one or start one for the
//! length of the command (the emulators then run inside the command itself).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::azurite::{self, Azurite, AzuriteError, AzuriteSpec};
use crate::config::{AccountEntry, AccountsFile};

/// Where the local environment lives unless `AMSPLAY_LOCAL_DIR` says otherwise.
pub const DEFAULT_DIR: &str = ".amsplay/local";

/// The datacenters of the local environment: playbook name and storage account name.
pub const DATACENTERS: [(&str, &str); 2] = [("dc-a", "dca"), ("dc-b", "dcb")];

/// The Media Services account of a local datacenter's storage account.
fn media_account(storage: &str) -> String {
    format!("ams{storage}")
}

#[derive(Debug, thiserror::Error)]
pub enum LocalEnvError {
    #[error(transparent)]
    Azurite(#[from] AzuriteError),
    #[error("local environment in {dir}: {source}")]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("local environment state {path} is damaged ({message}); run `amsplay local down` and `amsplay local up`")]
    State { path: PathBuf, message: String },
}

/// What `state.json` records about a running environment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LocalState {
    pub azurite_pid: u32,
    pub blob_port: u16,
    pub started: String,
    /// The Media Services emulators, one per datacenter.
    #[serde(default)]
    pub media: Vec<MediaProcess>,
}

/// One background Media Services emulator.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MediaProcess {
    pub datacenter: String,
    pub pid: u32,
    pub port: u16,
}

/// A datacenter as `local status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DatacenterInfo {
    pub name: String,
    pub storage_account: String,
    pub blob_endpoint: String,
    pub account_key: String,
    pub connection_string: String,
    pub media_account: String,
    pub media_api: String,
    pub media_token_endpoint: String,
    pub media_aad_token_endpoint: String,
    pub media_key: String,
}

/// The local environment, rooted at a folder.
#[derive(Debug, Clone)]
pub struct LocalEnv {
    root: PathBuf,
}

/// A local environment in use by one command; stops Azurite on drop if the command started it.
pub struct LocalSession {
    pub accounts: AccountsFile,
    pub accounts_path: PathBuf,
    _media: Vec<InProcess>,
    _owned: Option<Azurite>,
}

/// An emulator running inside this process; stopped when dropped.
struct InProcess {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl LocalEnv {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `$AMSPLAY_LOCAL_DIR`, or `.amsplay/local` in the current folder.
    pub fn default_location() -> Self {
        match std::env::var_os("AMSPLAY_LOCAL_DIR").filter(|v| !v.is_empty()) {
            Some(dir) => Self::new(dir),
            None => Self::new(DEFAULT_DIR),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn state_path(&self) -> PathBuf {
        self.root.join("state.json")
    }

    /// The accounts file this environment writes.
    pub fn accounts_path(&self) -> PathBuf {
        self.root.join("amsplay.toml")
    }

    fn key_path(&self, account: &str) -> PathBuf {
        self.root.join("keys").join(format!("{account}.key"))
    }

    fn io(&self) -> impl Fn(std::io::Error) -> LocalEnvError + '_ {
        move |source| LocalEnvError::Io {
            dir: self.root.clone(),
            source,
        }
    }

    /// The key of a local account, generated on first use and kept.
    fn key(&self, account: &str) -> Result<String, LocalEnvError> {
        let path = self.key_path(account);
        if let Ok(k) = std::fs::read_to_string(&path) {
            if !k.trim().is_empty() {
                return Ok(k.trim().to_string());
            }
        }
        std::fs::create_dir_all(path.parent().expect("has parent")).map_err(self.io())?;
        let key = azurite::generate_key();
        write_private(&path, &key).map_err(self.io())?;
        Ok(key)
    }

    /// The port this part of the environment had last time, if it is free now (else 0). Stable
    /// ports keep the URLs the emulators stored (asset URIs, locator paths) valid across runs.
    fn preferred_port(&self, part: &str) -> u16 {
        let ports: std::collections::BTreeMap<String, u16> =
            std::fs::read_to_string(self.root.join("ports.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
        match ports.get(part) {
            Some(&p) if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() => p,
            _ => 0,
        }
    }

    fn remember_ports(&self, blob: u16, media: &[(String, u16)]) {
        let mut ports: std::collections::BTreeMap<String, u16> = media.iter().cloned().collect();
        ports.insert("blob".into(), blob);
        let _ = std::fs::write(
            self.root.join("ports.json"),
            serde_json::to_string_pretty(&ports).unwrap_or_default(),
        );
    }

    /// The running environment's state, if it is running.
    pub fn running(&self) -> Result<Option<LocalState>, LocalEnvError> {
        let path = self.state_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io()(e)),
        };
        let state: LocalState = serde_json::from_str(&text).map_err(|e| LocalEnvError::State {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let listening = std::net::TcpStream::connect(("127.0.0.1", state.blob_port)).is_ok();
        Ok((azurite::alive(state.azurite_pid) && listening).then_some(state))
    }

    fn spec(&self, detach: bool) -> Result<AzuriteSpec, LocalEnvError> {
        let accounts = DATACENTERS
            .iter()
            .map(|(_, acct)| Ok((acct.to_string(), self.key(acct)?)))
            .collect::<Result<Vec<_>, LocalEnvError>>()?;
        Ok(AzuriteSpec {
            accounts,
            location: Some(self.root.join("azurite")),
            port: self.preferred_port("blob"),
            log: self.root.join("azurite.log"),
            detach,
        })
    }

    fn write_accounts(
        &self,
        port: u16,
        media: &[(String, u16)],
    ) -> Result<AccountsFile, LocalEnvError> {
        let mut file = AccountsFile::default();
        for (name, acct) in DATACENTERS {
            self.key(acct)?;
            let ams = media_account(acct);
            self.key(&ams)?;
            let media_port = media.iter().find(|(dc, _)| dc == name).map(|(_, p)| *p);
            file.accounts.insert(
                name.to_string(),
                AccountEntry {
                    storage_account: Some(acct.to_string()),
                    blob_endpoint: Some(format!("http://127.0.0.1:{port}/{acct}")),
                    key_file: Some(PathBuf::from(format!("keys/{acct}.key"))),
                    media_account: media_port.map(|_| ams.clone()),
                    media_api: media_port.map(|p| format!("http://127.0.0.1:{p}/api/")),
                    media_key_file: media_port.map(|_| PathBuf::from(format!("keys/{ams}.key"))),
                    ..Default::default()
                },
            );
        }
        file.save(&self.accounts_path()).map_err(self.io())?;
        AccountsFile::load(&self.accounts_path()).map_err(|e| LocalEnvError::State {
            path: self.accounts_path(),
            message: e.to_string(),
        })
    }

    fn storage_account(
        &self,
        acct: &str,
        port: u16,
    ) -> Result<crate::config::StorageAccount, LocalEnvError> {
        Ok(crate::config::StorageAccount {
            account: acct.to_string(),
            endpoint: url::Url::parse(&format!("http://127.0.0.1:{port}/{acct}"))
                .expect("valid URL"),
            key: self.key(acct)?,
        })
    }

    /// Starts one emulator per datacenter inside this process.
    async fn start_in_process(
        &self,
        blob_port: u16,
    ) -> Result<(Vec<InProcess>, Vec<(String, u16)>), LocalEnvError> {
        let mut handles = Vec::new();
        let mut ports = Vec::new();
        for (name, acct) in DATACENTERS {
            let storage = crate::storage::Storage::open(&self.storage_account(acct, blob_port)?)
                .map_err(|e| LocalEnvError::State {
                    path: self.root.clone(),
                    message: e.to_string(),
                })?;
            let listener =
                match tokio::net::TcpListener::bind(("127.0.0.1", self.preferred_port(name))).await
                {
                    Ok(l) => l,
                    Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .map_err(self.io())?,
                };
            let port = listener.local_addr().map_err(self.io())?.port();
            let config = crate::emulator::EmulatorConfig {
                account: media_account(acct),
                key: self.key(&media_account(acct))?,
                data_dir: self.root.join("media").join(name),
                streaming_base: format!("http://127.0.0.1:{port}"),
                token_lifetime: None,
                ffmpeg: None,
                job_concurrency: 1,
            };
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(async move {
                if let Err(e) = crate::emulator::serve(config, storage, listener, async {
                    let _ = rx.await;
                })
                .await
                {
                    tracing::error!(%e, "Media Services emulator stopped");
                }
            });
            handles.push(InProcess { stop: Some(tx) });
            ports.push((name.to_string(), port));
        }
        Ok((handles, ports))
    }

    /// Starts one background `amsplay serve` per datacenter.
    async fn spawn_media(&self, blob_port: u16) -> Result<Vec<MediaProcess>, LocalEnvError> {
        let exe = std::env::current_exe().map_err(self.io())?;
        let mut out = Vec::new();
        for (name, acct) in DATACENTERS {
            let sa = self.storage_account(acct, blob_port)?;
            let cs = format!(
                "DefaultEndpointsProtocol=http;AccountName={};AccountKey={};BlobEndpoint={};",
                sa.account, sa.key, sa.endpoint
            );
            let log_path = self.root.join(format!("media-{name}.log"));
            let log = std::fs::File::create(&log_path).map_err(self.io())?;
            let mut cmd = std::process::Command::new(&exe);
            cmd.args([
                "serve",
                "--account",
                &media_account(acct),
                "--storage",
                "AMSPLAY_LOCAL_STORAGE",
                "--listen",
                &format!("127.0.0.1:{}", self.preferred_port(name)),
                "--data-dir",
            ])
            .arg(self.root.join("media").join(name))
            .env("AMSPLAY_MEDIA_KEY", self.key(&media_account(acct))?)
            .env("AMSPLAY_LOCAL_STORAGE", cs)
            .env_remove("AMSPLAY_ACCOUNTS")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(self.io())?)
            .stderr(log);
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
            let mut child = cmd.spawn().map_err(self.io())?;
            let started = std::time::Instant::now();
            let port = loop {
                let text = std::fs::read_to_string(&log_path).unwrap_or_default();
                if let Some(p) = text
                    .split("listening on http://127.0.0.1:")
                    .nth(1)
                    .and_then(|r| {
                        r.chars()
                            .take_while(char::is_ascii_digit)
                            .collect::<String>()
                            .parse::<u16>()
                            .ok()
                    })
                {
                    break p;
                }
                if child.try_wait().map_err(self.io())?.is_some()
                    || started.elapsed().as_secs() > 20
                {
                    let _ = child.kill();
                    return Err(LocalEnvError::State {
                        path: log_path,
                        message: format!(
                            "the Media Services emulator for {name} did not start: {text}"
                        ),
                    });
                }
                tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            };
            out.push(MediaProcess {
                datacenter: name.to_string(),
                pid: child.id(),
                port,
            });
        }
        Ok(out)
    }

    /// Starts the environment in the background (if it is not running) and writes its accounts file.
    pub async fn up(&self) -> Result<LocalState, LocalEnvError> {
        if let Some(state) = self.running()? {
            self.write_accounts(state.blob_port, &media_ports(&state))?;
            return Ok(state);
        }
        self.down().await?;
        std::fs::create_dir_all(&self.root).map_err(self.io())?;
        let az = Azurite::start(self.spec(true)?).await?;
        let (pid, port) = (az.pid, az.port);
        az.detach();
        let media = match self.spawn_media(port).await {
            Ok(m) => m,
            Err(e) => {
                azurite::stop_pid(pid).await;
                return Err(e);
            }
        };
        let state = LocalState {
            azurite_pid: pid,
            blob_port: port,
            started: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            media,
        };
        std::fs::write(
            self.state_path(),
            serde_json::to_string_pretty(&state).expect("serializable"),
        )
        .map_err(self.io())?;
        self.write_accounts(state.blob_port, &media_ports(&state))?;
        self.remember_ports(state.blob_port, &media_ports(&state));
        Ok(state)
    }

    /// Stops a running environment; its data stays. False when nothing was running.
    pub async fn down(&self) -> Result<bool, LocalEnvError> {
        let path = self.state_path();
        let state = match std::fs::read_to_string(&path) {
            Ok(t) => serde_json::from_str::<LocalState>(&t).ok(),
            Err(_) => None,
        };
        let Some(state) = state else {
            return Ok(false);
        };
        let was_running = azurite::alive(state.azurite_pid);
        for m in &state.media {
            azurite::stop_pid(m.pid).await;
        }
        azurite::stop_pid(state.azurite_pid).await;
        let _ = std::fs::remove_file(&path);
        Ok(was_running)
    }

    /// Accounts for one command: the running environment's, or a fresh Azurite owned by the
    /// returned session (stopped when it drops).
    pub async fn session(&self) -> Result<LocalSession, LocalEnvError> {
        if let Some(state) = self.running()? {
            tracing::info!(
                port = state.blob_port,
                "using the running local environment"
            );
            let accounts = self.write_accounts(state.blob_port, &media_ports(&state))?;
            return Ok(LocalSession {
                accounts,
                accounts_path: self.accounts_path(),
                _media: Vec::new(),
                _owned: None,
            });
        }
        std::fs::create_dir_all(&self.root).map_err(self.io())?;
        tracing::info!(dir = %self.root.display(), "starting the local environment for this command");
        let az = Azurite::start(self.spec(false)?).await?;
        let (media, ports) = self.start_in_process(az.port).await?;
        let accounts = self.write_accounts(az.port, &ports)?;
        self.remember_ports(az.port, &ports);
        Ok(LocalSession {
            accounts,
            accounts_path: self.accounts_path(),
            _media: media,
            _owned: Some(az),
        })
    }

    /// Endpoints, names and keys of each datacenter, for pointing other tools at it.
    pub fn datacenters(&self, state: &LocalState) -> Result<Vec<DatacenterInfo>, LocalEnvError> {
        DATACENTERS
            .iter()
            .map(|(name, acct)| {
                let key = self.key(acct)?;
                let endpoint = format!("http://127.0.0.1:{}/{acct}", state.blob_port);
                let media = state
                    .media
                    .iter()
                    .find(|m| m.datacenter == *name)
                    .map(|m| format!("http://127.0.0.1:{}", m.port))
                    .unwrap_or_default();
                Ok(DatacenterInfo {
                    name: name.to_string(),
                    storage_account: acct.to_string(),
                    connection_string: format!(
                        "DefaultEndpointsProtocol=http;AccountName={acct};AccountKey={key};BlobEndpoint={endpoint};"
                    ),
                    blob_endpoint: endpoint,
                    account_key: key,
                    media_account: media_account(acct),
                    media_api: format!("{media}/api/"),
                    media_token_endpoint: format!("{media}/v2/OAuth2-13"),
                    media_aad_token_endpoint: format!("{media}/common/oauth2/token"),
                    media_key: self.key(&media_account(acct))?,
                })
            })
            .collect()
    }
}

fn media_ports(state: &LocalState) -> Vec<(String, u16)> {
    state
        .media
        .iter()
        .map(|m| (m.datacenter.clone(), m.port))
        .collect()
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}
