//! The local environment: two datacenters on loopback, the embedded default.
//!
//! One Azurite process holds two storage accounts, `dca` and `dcb`, each with its own
//! generated key (Azurite copies between accounts only inside one process, as two accounts in
//! one Azure region would); one Media Services emulator per datacenter (`amsdca`, `amsdcb`,
//! `amsplay serve`) stores its assets in its datacenter's account and is that datacenter's
//! streaming origin; one front door (`amsplay front`) stands in front of both origins. Data lives
//! under `.amsplay/local/`; keys are generated once into `keys/`;
//! each datacenter's paths run through fault points (`amsplay faults`, one process for the
//! environment): its emulator reaches storage through one, and players and the front door
//! reach its origin through another, so `fail`/`heal` can break either path on demand
//! (playbooks reach storage directly, so their copies keep working); ports are kept from run to run
//! (`ports.json`) because the emulators store URLs; the accounts file `amsplay.toml` there names
//! the datacenters `dc-a` and `dc-b`. `up` leaves everything running in the background (state in
//! `state.json`); `run`/`repl` without an accounts file reuse it, or bring it up for the length of
//! the command and take it down afterwards.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::azurite::{self, Azurite, AzuriteError, AzuriteSpec};
use crate::config::{AccountEntry, AccountsFile, StorageAccount};
use crate::faults::{DatacenterFaults, Mode};
use crate::process::Owned;

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
    #[error("{0}")]
    Usage(String),
    #[error("fault points: {0}")]
    Faults(String),
}

fn unknown_datacenter(name: &str) -> LocalEnvError {
    LocalEnvError::Usage(format!(
        "no datacenter '{name}'; the local environment has dc-a and dc-b"
    ))
}

/// A background process of the environment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MediaProcess {
    /// `dc-a`, `dc-b`, or `front`.
    pub datacenter: String,
    /// Its PID and start time (`pid`, `start` in the file).
    #[serde(flatten)]
    pub process: Owned,
    pub port: u16,
}

/// What `state.json` records about a running environment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LocalState {
    pub azurite_pid: u32,
    /// Azurite's start time (see `process::Owned`).
    #[serde(default)]
    pub azurite_start: u64,
    pub blob_port: u16,
    pub started: String,
    /// The Media Services emulators (origins), one per datacenter.
    #[serde(default)]
    pub media: Vec<MediaProcess>,
    /// The front door before both origins.
    #[serde(default)]
    pub front: Option<MediaProcess>,
    /// The operations console.
    #[serde(default)]
    pub console: Option<MediaProcess>,
    /// The fault points of every datacenter.
    #[serde(default)]
    pub faults: Option<FaultsProcess>,
}

/// The fault points' process and where each datacenter's paths go through it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FaultsProcess {
    #[serde(flatten)]
    pub process: Owned,
    /// The control API's port.
    pub port: u16,
    pub points: Vec<DatacenterPoints>,
}

/// A datacenter's two fault points.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DatacenterPoints {
    pub datacenter: String,
    /// Where its emulator reaches storage.
    pub storage: u16,
    /// Where players and the front door reach its origin.
    pub origin: u16,
}

impl FaultsProcess {
    fn points(&self, datacenter: &str) -> Option<&DatacenterPoints> {
        self.points.iter().find(|p| p.datacenter == datacenter)
    }

    pub fn control(&self) -> crate::faults::Control {
        crate::faults::Control::new(std::net::SocketAddr::from(([127, 0, 0, 1], self.port)))
    }
}

impl LocalState {
    fn media_ports(&self) -> Vec<(String, u16)> {
        self.media
            .iter()
            .map(|m| (m.datacenter.clone(), m.port))
            .collect()
    }

    /// The front door's URL.
    pub fn front_url(&self) -> Option<String> {
        self.front
            .as_ref()
            .map(|f| format!("http://127.0.0.1:{}", f.port))
    }

    /// The console's URL.
    pub fn console_url(&self) -> Option<String> {
        self.console
            .as_ref()
            .map(|c| format!("http://127.0.0.1:{}", c.port))
    }

    /// A datacenter's streaming origin as players reach it (through its fault point).
    pub fn origin_url(&self, datacenter: &str) -> Option<String> {
        let p = self.faults.as_ref()?.points(datacenter)?;
        Some(format!("http://127.0.0.1:{}", p.origin))
    }
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
    pub origin: String,
}

/// The local environment, rooted at a folder.
#[derive(Debug, Clone)]
pub struct LocalEnv {
    root: PathBuf,
}

/// The environment as one command uses it; brought down on drop if the command brought it up.
pub struct LocalSession {
    pub accounts: AccountsFile,
    env: LocalEnv,
    owned: bool,
}

impl LocalSession {
    /// Whether this command brought the environment up (and will take it down).
    pub fn owned(&self) -> bool {
        self.owned
    }
}

impl Drop for LocalSession {
    fn drop(&mut self) {
        if self.owned {
            self.env.down_now();
        }
    }
}

fn alive_and_listening(process: Owned, port: u16) -> bool {
    process.is_running() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

impl LocalState {
    /// Azurite's process.
    pub fn azurite(&self) -> Owned {
        Owned {
            pid: self.azurite_pid,
            start: self.azurite_start,
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

    fn io(&self) -> impl Fn(std::io::Error) -> LocalEnvError + '_ {
        move |source| LocalEnvError::Io {
            dir: self.root.clone(),
            source,
        }
    }

    /// The key of a local account, generated on first use and kept.
    fn key(&self, account: &str) -> Result<String, LocalEnvError> {
        let path = self.root.join("keys").join(format!("{account}.key"));
        if let Ok(k) = std::fs::read_to_string(&path) {
            if !k.trim().is_empty() {
                return Ok(k.trim().to_string());
            }
        }
        let dir = path.parent().expect("has parent");
        std::fs::create_dir_all(dir).map_err(self.io())?;
        crate::config::restrict(dir, 0o700).map_err(self.io())?;
        let key = azurite::generate_key();
        write_private(&path, &key).map_err(self.io())?;
        Ok(key)
    }

    fn ports(&self) -> BTreeMap<String, u16> {
        std::fs::read_to_string(self.root.join("ports.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// The port this part had last time, if it is free now (else 0, any free port).
    fn preferred_port(&self, part: &str) -> u16 {
        match self.ports().get(part) {
            Some(&p) if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() => p,
            _ => 0,
        }
    }

    /// The port this part had last time if it is free, else a free one now. A port chosen
    /// here is bound later by another process (the fault points must know it first), so it
    /// is taken below the kernel's ephemeral range: outgoing connections, which take
    /// ephemeral ports at any moment, cannot occupy it in between.
    fn port_for(&self, part: &str) -> u16 {
        match self.preferred_port(part) {
            0 => free_port_below_ephemeral().unwrap_or_else(|| {
                std::net::TcpListener::bind(("127.0.0.1", 0))
                    .and_then(|l| l.local_addr())
                    .map(|a| a.port())
                    .unwrap_or(0)
            }),
            p => p,
        }
    }

    fn remember_ports(&self, state: &LocalState) {
        let mut ports = self.ports();
        ports.extend(state.media_ports());
        if let Some(f) = &state.faults {
            ports.insert("faults".into(), f.port);
            for p in &f.points {
                ports.insert(format!("{}.storage", p.datacenter), p.storage);
                ports.insert(format!("{}.origin", p.datacenter), p.origin);
            }
        }
        ports.insert("blob".into(), state.blob_port);
        if let Some(f) = &state.front {
            ports.insert("front".into(), f.port);
        }
        if let Some(c) = &state.console {
            ports.insert("console".into(), c.port);
        }
        let _ = std::fs::write(
            self.root.join("ports.json"),
            serde_json::to_string_pretty(&ports).unwrap_or_default(),
        );
    }

    fn load_state(&self) -> Result<Option<LocalState>, LocalEnvError> {
        let path = self.state_path();
        match std::fs::read_to_string(&path) {
            Ok(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|e| LocalEnvError::State {
                    path,
                    message: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io()(e)),
        }
    }

    fn save_state(&self, state: &LocalState) -> Result<(), LocalEnvError> {
        write_private(
            &self.state_path(),
            &serde_json::to_string_pretty(state).expect("serializable"),
        )
        .map_err(self.io())?;
        self.remember_ports(state);
        Ok(())
    }

    /// The running environment's state, if every part of it is up.
    pub fn running(&self) -> Result<Option<LocalState>, LocalEnvError> {
        let Some(state) = self.load_state()? else {
            return Ok(None);
        };
        let up = alive_and_listening(state.azurite(), state.blob_port)
            && state.media.len() == DATACENTERS.len()
            && state
                .media
                .iter()
                .all(|m| alive_and_listening(m.process, m.port))
            && state
                .front
                .as_ref()
                .is_some_and(|f| alive_and_listening(f.process, f.port))
            && state
                .console
                .as_ref()
                .is_some_and(|c| alive_and_listening(c.process, c.port))
            && state
                .faults
                .as_ref()
                .is_some_and(|f| alive_and_listening(f.process, f.port));
        Ok(up.then_some(state))
    }

    fn storage_account(&self, acct: &str, port: u16) -> Result<StorageAccount, LocalEnvError> {
        Ok(StorageAccount {
            account: acct.to_string(),
            endpoint: url::Url::parse(&format!("http://127.0.0.1:{port}/{acct}"))
                .expect("valid URL"),
            key: self.key(acct)?,
        })
    }

    fn write_accounts(&self, state: &LocalState) -> Result<AccountsFile, LocalEnvError> {
        let mut file = AccountsFile::default();
        for (name, acct) in DATACENTERS {
            self.key(acct)?;
            let ams = media_account(acct);
            self.key(&ams)?;
            let media_port = state
                .media
                .iter()
                .find(|m| m.datacenter == name)
                .map(|m| m.port);
            file.accounts.insert(
                name.to_string(),
                AccountEntry {
                    storage_account: Some(acct.to_string()),
                    blob_endpoint: Some(format!("http://127.0.0.1:{}/{acct}", state.blob_port)),
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

    /// Starts `amsplay ARGS` in the background and waits for its "listening on" line.
    async fn spawn_amsplay(
        &self,
        part: &str,
        args: &[String],
        envs: &[(&str, String)],
    ) -> Result<MediaProcess, LocalEnvError> {
        let exe = std::env::current_exe().map_err(self.io())?;
        let log_path = self.root.join(format!("{part}.log"));
        let (log, log_start) = crate::logfile::open_append(&log_path).map_err(self.io())?;
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(args)
            .env_remove("AMSPLAY_ACCOUNTS")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(self.io())?)
            .stderr(log);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        crate::memory::unlimit_child(&mut cmd);
        let mut child = cmd.spawn().map_err(self.io())?;
        let started = Instant::now();
        loop {
            let text = crate::logfile::read_since(&log_path, log_start);
            let port = text
                .split("listening on http://127.0.0.1:")
                .nth(1)
                .and_then(|r| {
                    r.chars()
                        .take_while(char::is_ascii_digit)
                        .collect::<String>()
                        .parse::<u16>()
                        .ok()
                });
            if let Some(port) = port {
                return Ok(MediaProcess {
                    datacenter: part.to_string(),
                    process: Owned::of(child.id()),
                    port,
                });
            }
            if child.try_wait().map_err(self.io())?.is_some()
                || started.elapsed() > Duration::from_secs(20)
            {
                let _ = child.kill();
                return Err(LocalEnvError::State {
                    path: log_path,
                    message: format!("{part} did not start: {text}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    fn storage_account_of(&self, name: &str) -> Result<&'static str, LocalEnvError> {
        DATACENTERS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
            .ok_or_else(|| unknown_datacenter(name))
    }

    /// Starts the emulator (origin) of one datacenter on `port`, reaching storage through its
    /// fault point and naming its origin fault point in locator paths.
    async fn spawn_media(
        &self,
        name: &str,
        state: &LocalState,
        port: u16,
    ) -> Result<MediaProcess, LocalEnvError> {
        let acct = self.storage_account_of(name)?;
        let points = state
            .faults
            .as_ref()
            .and_then(|f| f.points(name))
            .ok_or_else(|| unknown_datacenter(name))?;
        let sa = self.storage_account(acct, state.blob_port)?;
        let cs = format!(
            "DefaultEndpointsProtocol=http;AccountName={};AccountKey={};BlobEndpoint={};",
            sa.account, sa.key, sa.endpoint
        );
        let data = self.root.join("media").join(name);
        let args: Vec<String> = vec![
            "serve".into(),
            "--account".into(),
            media_account(acct),
            "--storage".into(),
            "AMSPLAY_LOCAL_STORAGE".into(),
            "--storage-via".into(),
            format!("127.0.0.1:{}", points.storage),
            "--streaming-base".into(),
            format!("http://127.0.0.1:{}", points.origin),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--data-dir".into(),
            data.display().to_string(),
        ];
        self.spawn_amsplay(
            name,
            &args,
            &[
                ("AMSPLAY_MEDIA_KEY", self.key(&media_account(acct))?),
                ("AMSPLAY_LOCAL_STORAGE", cs),
            ],
        )
        .await
    }

    /// Starts the fault points: for each datacenter one before storage and one before its
    /// emulator (whose port is chosen here, so the points know where to send traffic).
    async fn spawn_faults(
        &self,
        blob_port: u16,
        media_ports: &[(String, u16)],
    ) -> Result<FaultsProcess, LocalEnvError> {
        use crate::faults::{FaultsConfig, Link, PointSpec};
        let local = |p: u16| std::net::SocketAddr::from(([127, 0, 0, 1], p));
        let mut points = Vec::new();
        let mut specs = Vec::new();
        for (dc, media_port) in media_ports {
            let p = DatacenterPoints {
                datacenter: dc.clone(),
                storage: self.port_for(&format!("{dc}.storage")),
                origin: self.port_for(&format!("{dc}.origin")),
            };
            specs.push(PointSpec {
                datacenter: dc.clone(),
                link: Link::Storage,
                listen: local(p.storage),
                upstream: local(blob_port),
            });
            specs.push(PointSpec {
                datacenter: dc.clone(),
                link: Link::Origin,
                listen: local(p.origin),
                upstream: local(*media_port),
            });
            points.push(p);
        }
        let config = FaultsConfig {
            control: local(self.preferred_port("faults")),
            points: specs,
        };
        let path = self.root.join("faults.json");
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&config).expect("serializable"),
        )
        .map_err(self.io())?;
        let args = vec![
            "faults".to_string(),
            "--config".into(),
            path.display().to_string(),
        ];
        let p = self.spawn_amsplay("faults", &args, &[]).await?;
        Ok(FaultsProcess {
            process: p.process,
            port: p.port,
            points,
        })
    }

    async fn spawn_front(&self, state: &LocalState) -> Result<MediaProcess, LocalEnvError> {
        // Loopback origins answer in milliseconds: a second without headers is an outage.
        let mut args: Vec<String> = vec![
            "front".into(),
            "--listen".into(),
            format!("127.0.0.1:{}", self.preferred_port("front")),
            "--timeout-ms".into(),
            "1000".into(),
            // Every request reaches an origin, so drills and `local fail` show traffic move.
            "--no-cache".into(),
        ];
        for (dc, _) in DATACENTERS {
            if let Some(url) = state.origin_url(dc) {
                args.push("--origin".into());
                args.push(url);
            }
        }
        self.spawn_amsplay("front", &args, &[]).await
    }

    /// The console, on loopback, over this environment's accounts, front door and faults.
    async fn spawn_console(&self, state: &LocalState) -> Result<MediaProcess, LocalEnvError> {
        let mut args: Vec<String> = vec![
            "--accounts".into(),
            self.accounts_path().display().to_string(),
            "console".into(),
            "--listen".into(),
            format!("127.0.0.1:{}", self.preferred_port("console")),
        ];
        if let Some(front) = state.front_url() {
            args.extend(["--front".into(), front]);
        }
        if let Some(f) = &state.faults {
            args.extend(["--faults".into(), format!("127.0.0.1:{}", f.port)]);
        }
        // Loopback only: no token (one in the caller's environment would lock the page).
        self.spawn_amsplay(
            "console",
            &args,
            &[("AMSPLAY_CONSOLE_TOKEN", String::new())],
        )
        .await
    }

    /// Starts the environment in the background (if it is not running) and writes its accounts file.
    pub async fn up(&self) -> Result<LocalState, LocalEnvError> {
        if let Some(state) = self.running()? {
            self.write_accounts(&state)?;
            return Ok(state);
        }
        if let Some(state) = self.revive().await? {
            self.write_accounts(&state)?;
            return Ok(state);
        }
        // A port checked free can still be taken by another program before the part that
        // needs it binds it; then the whole start is tried again (on fresh ports).
        let mut attempt = 1;
        loop {
            match self.start_fresh().await {
                Err(e) if attempt < 3 && e.to_string().contains("Address already in use") => {
                    tracing::warn!(error = %e, "a port was taken while starting; starting again");
                    attempt += 1;
                }
                Err(e) => {
                    // Nothing half-started is left running.
                    let _ = self.down().await;
                    return Err(e);
                }
                ok => return ok,
            }
        }
    }

    /// Starts every part from nothing (after stopping whatever the state file still names).
    async fn start_fresh(&self) -> Result<LocalState, LocalEnvError> {
        self.down().await?;
        std::fs::create_dir_all(&self.root).map_err(self.io())?;
        // Keys, state and the emulators' databases live here: only the user may look.
        crate::config::restrict(&self.root, 0o700).map_err(self.io())?;
        let accounts = DATACENTERS
            .iter()
            .map(|(_, acct)| Ok((acct.to_string(), self.key(acct)?)))
            .collect::<Result<Vec<_>, LocalEnvError>>()?;
        let az = Azurite::start(AzuriteSpec {
            accounts,
            location: Some(self.root.join("azurite")),
            port: self.preferred_port("blob"),
            log: self.root.join("azurite.log"),
            detach: true,
        })
        .await?;
        let mut state = LocalState {
            azurite_pid: az.pid,
            azurite_start: Owned::of(az.pid).start,
            blob_port: az.port,
            started: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            media: Vec::new(),
            front: None,
            console: None,
            faults: None,
        };
        az.detach();
        // From here on, what has started is in the state file, so `down` can stop it.
        self.save_state(&state)?;
        let media_ports: Vec<(String, u16)> = DATACENTERS
            .iter()
            .map(|(dc, _)| (dc.to_string(), self.port_for(dc)))
            .collect();
        state.faults = Some(self.spawn_faults(state.blob_port, &media_ports).await?);
        self.save_state(&state)?;
        for (name, port) in &media_ports {
            let m = self.spawn_media(name, &state, *port).await?;
            state.media.push(m);
            self.save_state(&state)?;
        }
        state.front = Some(self.spawn_front(&state).await?);
        self.save_state(&state)?;
        // The console reads the accounts file: written before it starts.
        self.write_accounts(&state)?;
        state.console = Some(self.spawn_console(&state).await?);
        self.save_state(&state)?;
        Ok(state)
    }

    /// A partly running environment made whole: with Azurite (and so the data) up, each dead
    /// part (fault points, an emulator, the front door) is started again on its own port;
    /// the parts still running are left alone. None when there is nothing to revive.
    async fn revive(&self) -> Result<Option<LocalState>, LocalEnvError> {
        let Some(mut state) = self.load_state()? else {
            return Ok(None);
        };
        if !alive_and_listening(state.azurite(), state.blob_port)
            || state.media.len() != DATACENTERS.len()
        {
            return Ok(None);
        }
        if !state
            .faults
            .as_ref()
            .is_some_and(|f| alive_and_listening(f.process, f.port))
        {
            tracing::warn!("the fault points were not running: starting them again");
            let media_ports: Vec<(String, u16)> = state
                .media
                .iter()
                .map(|m| (m.datacenter.clone(), m.port))
                .collect();
            state.faults = Some(self.spawn_faults(state.blob_port, &media_ports).await?);
            self.save_state(&state)?;
        }
        for i in 0..state.media.len() {
            let m = &state.media[i];
            if !alive_and_listening(m.process, m.port) {
                tracing::warn!(datacenter = %m.datacenter, "its emulator was not running: starting it again");
                let (name, port) = (m.datacenter.clone(), m.port);
                state.media[i] = self.spawn_media(&name, &state, port).await?;
                self.save_state(&state)?;
            }
        }
        if !state
            .front
            .as_ref()
            .is_some_and(|f| alive_and_listening(f.process, f.port))
        {
            tracing::warn!("the front door was not running: starting it again");
            state.front = Some(self.spawn_front(&state).await?);
            self.save_state(&state)?;
        }
        if !state
            .console
            .as_ref()
            .is_some_and(|c| alive_and_listening(c.process, c.port))
        {
            tracing::warn!("the console was not running: starting it again");
            self.write_accounts(&state)?;
            state.console = Some(self.spawn_console(&state).await?);
            self.save_state(&state)?;
        }
        Ok(Some(state))
    }

    /// Every process of a state, the ones in front first.
    fn processes(state: &LocalState) -> Vec<Owned> {
        state
            .console
            .iter()
            .chain(state.front.iter())
            .chain(state.media.iter())
            .map(|p| p.process)
            .chain(state.faults.as_ref().map(|f| f.process))
            .chain([state.azurite()])
            .collect()
    }

    /// Stops a running environment; its data stays. False when nothing was running.
    pub async fn down(&self) -> Result<bool, LocalEnvError> {
        let Some(state) = self.load_state().ok().flatten() else {
            return Ok(false);
        };
        let was_running = state.azurite().is_running();
        // Only processes that are still the ones we started are signalled; stale entries
        // (their PIDs now someone else's) are dropped with the state file.
        for p in Self::processes(&state) {
            p.stop().await;
        }
        let _ = std::fs::remove_file(self.state_path());
        Ok(was_running)
    }

    /// `down` for destructors: the same, without a runtime.
    fn down_now(&self) {
        let Some(state) = self.load_state().ok().flatten() else {
            return;
        };
        for p in Self::processes(&state) {
            p.stop_blocking();
        }
        let _ = std::fs::remove_file(self.state_path());
    }

    /// Accounts for one command: the running environment's, or one brought up for it (and
    /// brought down when the session drops).
    pub async fn session(&self) -> Result<LocalSession, LocalEnvError> {
        let (state, owned) = match self.running()? {
            Some(s) => {
                tracing::info!(port = s.blob_port, "using the running local environment");
                (s, false)
            }
            // Partly up (an emulator died): the dead parts are started again, and the
            // environment stays someone else's, so this command never stops it.
            None => match self.revive().await? {
                Some(s) => (s, false),
                None => {
                    tracing::info!(dir = %self.root.display(), "starting the local environment for this command");
                    (self.up().await?, true)
                }
            },
        };
        let accounts = self.write_accounts(&state)?;
        Ok(LocalSession {
            accounts,
            env: self.clone(),
            owned,
        })
    }

    fn running_state(&self) -> Result<LocalState, LocalEnvError> {
        self.load_state()?.ok_or_else(|| {
            LocalEnvError::Usage(
                "the local environment is not running; start it with `amsplay local up`".into(),
            )
        })
    }

    fn control(state: &LocalState) -> Result<crate::faults::Control, LocalEnvError> {
        state
            .faults
            .as_ref()
            .map(FaultsProcess::control)
            .ok_or_else(|| LocalEnvError::Usage("this local environment has no fault points; restart it with `amsplay local down` and `amsplay local up`".into()))
    }

    /// Every datacenter's faults now.
    pub async fn faults(&self) -> Result<BTreeMap<String, DatacenterFaults>, LocalEnvError> {
        let state = self.running_state()?;
        Self::control(&state)?
            .all()
            .await
            .map_err(LocalEnvError::Faults)
    }

    /// Breaks a datacenter's paths as `faults` says (`heal` puts them right).
    pub async fn fail(&self, name: &str, faults: DatacenterFaults) -> Result<(), LocalEnvError> {
        self.storage_account_of(name)?;
        let state = self.running_state()?;
        Self::control(&state)?
            .set(name, faults)
            .await
            .map_err(LocalEnvError::Faults)
    }

    /// Puts a datacenter's paths right again.
    pub async fn heal(&self, name: &str) -> Result<(), LocalEnvError> {
        self.fail(name, DatacenterFaults::default()).await
    }

    /// Takes a whole datacenter down: its emulator (API and origin) stops, then its storage
    /// path and its origin refuse connections. The emulator stops gracefully while its paths
    /// are still open: it takes no new connection and finishes the answers under way, so an
    /// edge that cannot resume a body part-sent (nginx) never passes a broken one on; cutting
    /// the paths first cut those answers in the middle (a player's failed request).
    pub async fn stop_datacenter(&self, name: &str) -> Result<(), LocalEnvError> {
        let state = self.running_state()?;
        let m = state
            .media
            .iter()
            .find(|m| m.datacenter == name)
            .ok_or_else(|| unknown_datacenter(name))?;
        m.process.stop().await;
        let down = DatacenterFaults {
            storage: Mode::Down,
            origin: Mode::Down,
            ..Default::default()
        };
        self.fail(name, down).await
    }

    /// Brings a stopped datacenter back: its emulator on the same port and data, then its
    /// paths healed.
    pub async fn start_datacenter(&self, name: &str) -> Result<(), LocalEnvError> {
        let mut state = self.running_state()?;
        let pos = state
            .media
            .iter()
            .position(|m| m.datacenter == name)
            .ok_or_else(|| unknown_datacenter(name))?;
        if !alive_and_listening(state.media[pos].process, state.media[pos].port) {
            let m = self
                .spawn_media(name, &state, state.media[pos].port)
                .await?;
            state.media[pos] = m;
            self.save_state(&state)?;
        }
        self.heal(name).await
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
                    connection_string: format!("DefaultEndpointsProtocol=http;AccountName={acct};AccountKey={key};BlobEndpoint={endpoint};"),
                    blob_endpoint: endpoint,
                    account_key: key,
                    media_account: media_account(acct),
                    media_api: format!("{media}/api/"),
                    media_token_endpoint: format!("{media}/v2/OAuth2-13"),
                    media_aad_token_endpoint: format!("{media}/common/oauth2/token"),
                    media_key: self.key(&media_account(acct))?,
                    origin: state.origin_url(name).unwrap_or(media),
                })
            })
            .collect()
    }
}

/// A free loopback port between 20000 and the start of the ephemeral range (32768 unless the
/// kernel says otherwise), picked at random.
fn free_port_below_ephemeral() -> Option<u16> {
    use rand::Rng;
    let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(32768);
    if low <= 20001 {
        return None;
    }
    let mut rng = rand::thread_rng();
    (0..64)
        .map(|_| rng.gen_range(20000..low))
        .find(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
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
    // An existing file keeps its mode when opened: make it private too.
    crate::config::restrict(path, 0o600)?;
    f.write_all(text.as_bytes())
}
