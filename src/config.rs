//! The accounts file: names for datacenters, and where their secrets live.
//!
//! A playbook says `account("dc-a")`; this module turns that name into a storage account name,
//! a blob endpoint and a key. The file never holds a secret itself: each account names the
//! environment variable (or, for generated local keys, the file) that holds its key or
//! connection string. `amsplay.example.toml` at the repository root documents every field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use url::Url;

/// Where the accounts file is looked for when `--accounts` is not given.
pub const ACCOUNTS_ENV: &str = "AMSPLAY_ACCOUNTS";
/// The accounts file in the current directory, used when neither `--accounts` nor the variable is set.
pub const DEFAULT_ACCOUNTS_FILE: &str = "amsplay.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the accounts file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the accounts file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("no account named '{name}'; the accounts file knows: {known}")]
    UnknownAccount { name: String, known: String },
    #[error("account '{account}': {message}")]
    Secret { account: String, message: String },
    #[error("account '{account}': the connection string in ${var} is not valid: {source}")]
    ConnectionString {
        account: String,
        var: String,
        source: ConnectionStringError,
    },
    #[error("account '{account}': {source}")]
    Endpoint {
        account: String,
        source: ConnectionStringError,
    },
}

/// The whole accounts file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsFile {
    /// Datacenters by the name playbooks use (`dc-a`, `dc-b`, …).
    #[serde(default)]
    pub accounts: BTreeMap<String, AccountEntry>,
}

/// One datacenter as the accounts file describes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountEntry {
    /// Storage account name (3–24 lowercase letters and digits). Optional with a connection string.
    pub storage_account: Option<String>,
    /// Blob endpoint; defaults to `https://{storage_account}.blob.core.windows.net`.
    /// For Azurite it is path-style: `http://127.0.0.1:10000/{storage_account}`.
    pub blob_endpoint: Option<String>,
    /// Environment variable holding the base64 account key.
    pub key_env: Option<String>,
    /// Environment variable holding a full connection string (`AccountName=…;AccountKey=…;BlobEndpoint=…`).
    pub connection_string_env: Option<String>,
    /// File holding the account key; meant for the generated keys of the local environment.
    pub key_file: Option<PathBuf>,
    /// Media Services account name (optional: storage-only datacenters have none).
    pub media_account: Option<String>,
    /// Media Services API root, e.g. `http://127.0.0.1:7001/api/` (or a global endpoint that
    /// answers 301).
    pub media_api: Option<String>,
    /// Token endpoint; default: `/v2/OAuth2-13` on the API's host.
    pub media_token_endpoint: Option<String>,
    /// Environment variable holding the Media Services account key.
    pub media_key_env: Option<String>,
    /// File holding the Media Services account key (local environment).
    pub media_key_file: Option<PathBuf>,
    /// "acs" (default) or "aad": which kind of token endpoint.
    pub media_auth: Option<String>,
}

/// How a client reaches and proves itself to a Media Services account.
#[derive(Debug, Clone)]
pub struct MediaAccount {
    pub account: String,
    pub key: String,
    /// The API root, e.g. `http://127.0.0.1:7001/api/` (or the global endpoint that redirects).
    pub api: url::Url,
    /// The token endpoint.
    pub token_endpoint: url::Url,
    /// Azure AD style (`resource=`) instead of ACS (`scope=`).
    pub aad: bool,
}

/// A storage account with everything needed to talk to it.
#[derive(Clone, PartialEq, Eq)]
pub struct StorageAccount {
    pub account: String,
    pub endpoint: Url,
    pub key: String,
}

impl std::fmt::Debug for StorageAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageAccount")
            .field("account", &self.account)
            .field("endpoint", &self.endpoint.as_str())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl AccountsFile {
    /// Reads and validates an accounts file. Relative `key_file` paths are taken from the file's folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut file: AccountsFile = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for (name, entry) in &mut file.accounts {
            let sources = [
                entry.key_env.is_some(),
                entry.connection_string_env.is_some(),
                entry.key_file.is_some(),
            ];
            if sources.iter().filter(|s| **s).count() != 1 {
                return Err(ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: format!(
                        "account '{name}' needs exactly one of key_env, connection_string_env or key_file"
                    ),
                });
            }
            if entry.connection_string_env.is_none() && entry.storage_account.is_none() {
                return Err(ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: format!("account '{name}' needs storage_account"),
                });
            }
            for kf in [&mut entry.key_file, &mut entry.media_key_file]
                .into_iter()
                .flatten()
            {
                if kf.is_relative() {
                    *kf = base.join(&*kf);
                }
            }
        }
        Ok(file)
    }

    /// Finds the accounts file: the explicit path, then `$AMSPLAY_ACCOUNTS`, then `./amsplay.toml`.
    pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
        if let Some(p) = explicit {
            return Some(p.to_path_buf());
        }
        if let Some(p) = std::env::var_os(ACCOUNTS_ENV).filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        let local = PathBuf::from(DEFAULT_ACCOUNTS_FILE);
        local.exists().then_some(local)
    }

    /// The names playbooks can use, comma separated, for error messages.
    pub fn known_names(&self) -> String {
        if self.accounts.is_empty() {
            "(none)".to_string()
        } else {
            self.accounts.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    }

    /// Resolves a datacenter name to its storage account, reading the secret it names.
    pub fn storage(&self, name: &str) -> Result<StorageAccount, ConfigError> {
        let entry = self
            .accounts
            .get(name)
            .ok_or_else(|| ConfigError::UnknownAccount {
                name: name.to_string(),
                known: self.known_names(),
            })?;
        entry.resolve(name)
    }

    /// The Media Services account of a datacenter; None when it has none configured.
    pub fn media(&self, name: &str) -> Result<Option<MediaAccount>, ConfigError> {
        let entry = self
            .accounts
            .get(name)
            .ok_or_else(|| ConfigError::UnknownAccount {
                name: name.to_string(),
                known: self.known_names(),
            })?;
        let Some(api) = &entry.media_api else {
            return Ok(None);
        };
        let err = |message: String| ConfigError::Secret {
            account: name.to_string(),
            message,
        };
        let api =
            Url::parse(api).map_err(|e| err(format!("media_api '{api}' is not a URL: {e}")))?;
        let account = entry
            .media_account
            .clone()
            .ok_or_else(|| err("media_api is set but media_account is not".into()))?;
        let key = if let Some(var) = &entry.media_key_env {
            std::env::var(var).map_err(|_| {
                err(format!("the environment variable ${var} (media_key_env) is not set; export it with the Media Services account key"))
            })?
        } else if let Some(file) = &entry.media_key_file {
            std::fs::read_to_string(file)
                .map_err(|e| {
                    err(format!(
                        "cannot read media_key_file {}: {e}",
                        file.display()
                    ))
                })?
                .trim()
                .to_string()
        } else {
            return Err(err(
                "media_api is set but neither media_key_env nor media_key_file".into(),
            ));
        };
        let token_endpoint = match &entry.media_token_endpoint {
            Some(t) => Url::parse(t)
                .map_err(|e| err(format!("media_token_endpoint '{t}' is not a URL: {e}")))?,
            None => api.join("/v2/OAuth2-13").map_err(|e| err(e.to_string()))?,
        };
        let aad = match entry.media_auth.as_deref() {
            None | Some("acs") => false,
            Some("aad") => true,
            Some(other) => {
                return Err(err(format!(
                    "media_auth must be \"acs\" or \"aad\", not '{other}'"
                )))
            }
        };
        Ok(Some(MediaAccount {
            account,
            key,
            api,
            token_endpoint,
            aad,
        }))
    }

    /// Writes the file (used by the local environment).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let body = toml::to_string_pretty(self).map_err(std::io::Error::other)?;
        let header = "# Written by `amsplay local up`: the local two-datacenter environment.\n\
                      # Keys are generated for this machine only and kept in key files beside it.\n\n";
        std::fs::write(path, format!("{header}{body}"))
    }
}

impl AccountEntry {
    fn resolve(&self, name: &str) -> Result<StorageAccount, ConfigError> {
        let secret_err = |message: String| ConfigError::Secret {
            account: name.to_string(),
            message,
        };
        let endpoint_err = |source| ConfigError::Endpoint {
            account: name.to_string(),
            source,
        };
        if let Some(var) = &self.connection_string_env {
            let cs = std::env::var(var).map_err(|_| {
                secret_err(format!(
                    "the environment variable ${var} (connection_string_env) is not set; export it with the storage account's connection string"
                ))
            })?;
            let mut parsed =
                parse_connection_string(&cs).map_err(|source| ConfigError::ConnectionString {
                    account: name.to_string(),
                    var: var.clone(),
                    source,
                })?;
            if let Some(ep) = &self.blob_endpoint {
                parsed.endpoint = parse_endpoint(ep).map_err(endpoint_err)?;
            }
            return Ok(parsed);
        }
        let account = self.storage_account.clone().unwrap_or_default();
        let key = if let Some(var) = &self.key_env {
            std::env::var(var).map_err(|_| {
                secret_err(format!(
                    "the environment variable ${var} (key_env) is not set; export it with the storage account key"
                ))
            })?
        } else if let Some(file) = &self.key_file {
            std::fs::read_to_string(file)
                .map_err(|e| secret_err(format!("cannot read key_file {}: {e}", file.display())))?
                .trim()
                .to_string()
        } else {
            return Err(secret_err("no key source configured".into()));
        };
        let endpoint = match &self.blob_endpoint {
            Some(ep) => parse_endpoint(ep).map_err(endpoint_err)?,
            None => parse_endpoint(&format!("https://{account}.blob.core.windows.net"))
                .map_err(endpoint_err)?,
        };
        Ok(StorageAccount {
            account,
            endpoint,
            key,
        })
    }
}

/// What is wrong with a connection string or a blob endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionStringError {
    #[error("'{0}' is not Key=Value")]
    NotKeyValue(String),
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("blob endpoint '{endpoint}' is not a URL: {message}")]
    NotAUrl { endpoint: String, message: String },
    #[error("blob endpoint '{0}' must be http or https")]
    NotHttp(String),
}

fn parse_endpoint(s: &str) -> Result<Url, ConnectionStringError> {
    let url = Url::parse(s.trim_end_matches('/')).map_err(|e| ConnectionStringError::NotAUrl {
        endpoint: s.to_string(),
        message: e.to_string(),
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(ConnectionStringError::NotHttp(s.to_string()));
    }
    Ok(url)
}

/// Parses an Azure Storage connection string (`AccountName=…;AccountKey=…;…`).
pub fn parse_connection_string(cs: &str) -> Result<StorageAccount, ConnectionStringError> {
    let mut fields = BTreeMap::new();
    for part in cs.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| ConnectionStringError::NotKeyValue(part.to_string()))?;
        fields.insert(k.to_ascii_lowercase(), v.to_string());
    }
    let account = fields
        .get("accountname")
        .cloned()
        .ok_or(ConnectionStringError::Missing("AccountName"))?;
    let key = fields
        .get("accountkey")
        .cloned()
        .ok_or(ConnectionStringError::Missing("AccountKey"))?;
    let endpoint = match fields.get("blobendpoint") {
        Some(ep) => parse_endpoint(ep)?,
        None => {
            let proto = fields
                .get("defaultendpointsprotocol")
                .map(String::as_str)
                .unwrap_or("https");
            let suffix = fields
                .get("endpointsuffix")
                .map(String::as_str)
                .unwrap_or("core.windows.net");
            parse_endpoint(&format!("{proto}://{account}.blob.{suffix}"))?
        }
    };
    Ok(StorageAccount {
        account,
        endpoint,
        key,
    })
}

/// Sets a file's or folder's mode (0600 for files holding secrets, 0700 for their folders).
pub fn restrict(path: &std::path::Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_string_with_endpoint() {
        let s = parse_connection_string(
            "DefaultEndpointsProtocol=http;AccountName=dca;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:1/dca;",
        )
        .unwrap();
        assert_eq!(s.account, "dca");
        assert_eq!(s.key, "a2V5");
        assert_eq!(s.endpoint.as_str(), "http://127.0.0.1:1/dca");
    }

    #[test]
    fn connection_string_default_endpoint() {
        let s = parse_connection_string("AccountName=acct;AccountKey=a2V5").unwrap();
        assert_eq!(s.endpoint.as_str(), "https://acct.blob.core.windows.net/");
        assert!(parse_connection_string("AccountName=acct").is_err());
    }

    #[test]
    fn unknown_account_lists_known() {
        let mut f = AccountsFile::default();
        f.accounts.insert("dc-a".into(), AccountEntry::default());
        let err = f.storage("dc-x").unwrap_err().to_string();
        assert!(err.contains("dc-a"), "{err}");
    }

    #[test]
    fn the_example_accounts_file_is_valid() {
        let f =
            AccountsFile::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("amsplay.example.toml"))
                .unwrap();
        assert_eq!(f.known_names(), "dc-a, dc-b");
        std::env::set_var("AMSPLAY_DC_A_MEDIA_KEY", "a2V5");
        let media = f.media("dc-a").unwrap().unwrap();
        assert_eq!(
            media.token_endpoint.as_str(),
            "http://127.0.0.1:7001/v2/OAuth2-13"
        );
        assert!(f.media("dc-b").unwrap().is_none());
    }

    #[test]
    fn key_debug_is_redacted() {
        let s = parse_connection_string("AccountName=acct;AccountKey=c2VjcmV0").unwrap();
        assert!(!format!("{s:?}").contains("c2VjcmV0"));
    }
}
