//! The local environment: two datacenters on loopback, the embedded default.
//!
//! One Azurite process holds two storage accounts, `dca` and `dcb`, each with its own
//! generated key (Azurite copies between accounts only inside one process, as two accounts in
//! one Azure region would). Data lives under `.amsplay/local/`; keys are generated once and
//! kept in `keys/`; the accounts file `amsplay.toml` there names the datacenters `dc-a` and
//! `dc-b`. `up` leaves it running (state in `state.json`); `run`/`repl` without an accounts file
//! reuse a running one or start one for the length of the command.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::azurite::{self, Azurite, AzuriteError, AzuriteSpec};
use crate::config::{AccountEntry, AccountsFile};

/// Where the local environment lives unless `AMSPLAY_LOCAL_DIR` says otherwise.
pub const DEFAULT_DIR: &str = ".amsplay/local";

/// The datacenters of the local environment: playbook name and storage account name.
pub const DATACENTERS: [(&str, &str); 2] = [("dc-a", "dca"), ("dc-b", "dcb")];

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
}

/// A datacenter as `local status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DatacenterInfo {
    pub name: String,
    pub storage_account: String,
    pub blob_endpoint: String,
    pub account_key: String,
    pub connection_string: String,
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
    _owned: Option<Azurite>,
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
            port: 0,
            log: self.root.join("azurite.log"),
            detach,
        })
    }

    fn write_accounts(&self, port: u16) -> Result<AccountsFile, LocalEnvError> {
        let mut file = AccountsFile::default();
        for (name, acct) in DATACENTERS {
            self.key(acct)?;
            file.accounts.insert(
                name.to_string(),
                AccountEntry {
                    storage_account: Some(acct.to_string()),
                    blob_endpoint: Some(format!("http://127.0.0.1:{port}/{acct}")),
                    key_file: Some(PathBuf::from(format!("keys/{acct}.key"))),
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

    /// Starts the environment in the background (if it is not running) and writes its accounts file.
    pub async fn up(&self) -> Result<LocalState, LocalEnvError> {
        if let Some(state) = self.running()? {
            self.write_accounts(state.blob_port)?;
            return Ok(state);
        }
        std::fs::create_dir_all(&self.root).map_err(self.io())?;
        let az = Azurite::start(self.spec(true)?).await?;
        let state = LocalState {
            azurite_pid: az.pid,
            blob_port: az.port,
            started: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        };
        az.detach();
        std::fs::write(
            self.state_path(),
            serde_json::to_string_pretty(&state).expect("serializable"),
        )
        .map_err(self.io())?;
        self.write_accounts(state.blob_port)?;
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
            let accounts = self.write_accounts(state.blob_port)?;
            return Ok(LocalSession {
                accounts,
                accounts_path: self.accounts_path(),
                _owned: None,
            });
        }
        std::fs::create_dir_all(&self.root).map_err(self.io())?;
        tracing::info!(dir = %self.root.display(), "starting the local environment for this command");
        let az = Azurite::start(self.spec(false)?).await?;
        let accounts = self.write_accounts(az.port)?;
        Ok(LocalSession {
            accounts,
            accounts_path: self.accounts_path(),
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
                Ok(DatacenterInfo {
                    name: name.to_string(),
                    storage_account: acct.to_string(),
                    connection_string: format!(
                        "DefaultEndpointsProtocol=http;AccountName={acct};AccountKey={key};BlobEndpoint={endpoint};"
                    ),
                    blob_endpoint: endpoint,
                    account_key: key,
                })
            })
            .collect()
    }
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
