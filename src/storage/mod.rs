//! Blob Storage on the Azure SDK: one storage account, its containers and blobs, SAS, transfers
//! and the copy engine.
//!
//! Everything outside this folder sees `Storage`, `BlobInfo` and `StorageError`, never SDK types,
//! so moving from the legacy `azure_storage_blobs` crate to its successor stays a change in here.
//! Retries are ours (see `retry.rs`), so the SDK's own retry policy is switched off.

mod blocks;
pub(crate) mod copy;
mod error;
mod pipe;
mod policies;
mod transfer;

use std::sync::Arc;
use std::time::Duration;

use azure_storage::prelude::*;
use azure_storage::CloudLocation;
use azure_storage_blobs::prelude::*;
use futures::StreamExt;
use time::OffsetDateTime;

pub use crate::retry::RetryPolicy;
pub use copy::{copy_blobs, CopyMode, CopyOptions, CopyReport};
pub use error::StorageError;
use error::{classify, Target};
pub use pipe::error_chain;
pub use policies::{StoredPolicy, MAX_POLICIES};
pub use transfer::TransferOptions;

use crate::config::StorageAccount;

/// One blob as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub name: String,
    pub size: u64,
    /// Content-MD5 as the service stores it, when it has one.
    pub md5: Option<[u8; 16]>,
    pub etag: String,
    pub last_modified: OffsetDateTime,
    pub content_type: String,
}

impl BlobInfo {
    /// MD5 as lowercase hex (as `md5sum` prints it), or "" when the blob has none.
    pub fn md5_hex(&self) -> String {
        self.md5.map(hex::encode).unwrap_or_default()
    }
}

/// Permissions of a shared access signature, parsed from letters like "rl" or "rwdl".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SasPerms {
    pub read: bool,
    pub write: bool,
    pub delete: bool,
    pub list: bool,
    pub create: bool,
    pub add: bool,
}

impl SasPerms {
    /// The SDK's form (whose `to_string` gives the letters in the service's order).
    pub(crate) fn sdk(self) -> BlobSasPermissions {
        BlobSasPermissions {
            read: self.read,
            write: self.write,
            delete: self.delete,
            list: self.list,
            create: self.create,
            add: self.add,
            ..Default::default()
        }
    }
}

impl std::str::FromStr for SasPerms {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut p = SasPerms::default();
        for c in s.chars() {
            match c {
                'r' => p.read = true,
                'w' => p.write = true,
                'd' => p.delete = true,
                'l' => p.list = true,
                'c' => p.create = true,
                'a' => p.add = true,
                _ => {
                    return Err(StorageError::Invalid(format!(
                    "SAS permissions '{s}': '{c}' is not one of r (read), w (write), d (delete), l (list), c (create), a (add)"
                )))
                }
            }
        }
        if s.is_empty() {
            return Err(StorageError::Invalid(
                "SAS permissions are empty; use letters such as \"rl\" or \"rw\"".into(),
            ));
        }
        Ok(p)
    }
}

/// A storage account: cheap to clone, safe to share between tasks.
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

struct Inner {
    account: StorageAccount,
    service: BlobServiceClient,
    /// The same client the SDK uses, for the one request the SDK cannot make: a Put Blob whose
    /// body streams from another request (see `transfer::pipe_blob`).
    http: reqwest::Client,
    retry: RetryPolicy,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Storage({} at {})", self.account(), self.endpoint())
    }
}

/// The HTTP client every storage request goes through: pooled, with timeouts that turn a dead
/// peer into an error we retry instead of a hang.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .build()
        .unwrap_or_default()
}

impl Storage {
    /// Opens a storage account. No request is made until the first operation.
    pub fn open(account: &StorageAccount) -> Result<Self, StorageError> {
        Self::open_via(account, None)
    }

    /// Opens a storage account reached through another address (`host:port` of a proxy, a
    /// private endpoint, or a fault point of the local environment): requests go there, while
    /// the URLs this account hands out (SAS URLs, asset URIs) keep the account's own endpoint.
    pub fn open_via(account: &StorageAccount, via: Option<&str>) -> Result<Self, StorageError> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(account.key.trim())
            .map_err(|_| {
                StorageError::Invalid(format!(
                    "the key of storage account '{}' is not valid base64; copy it again from the portal or the local environment",
                    account.account
                ))
            })?;
        let transport_endpoint = match via {
            Some(via) => with_authority(&account.endpoint, via)?,
            None => account.endpoint.clone(),
        };
        let location = CloudLocation::Custom {
            account: account.account.clone(),
            uri: transport_endpoint
                .as_str()
                .trim_end_matches('/')
                .to_string(),
        };
        let creds = StorageCredentials::access_key(account.account.clone(), account.key.clone());
        let http = http_client();
        let transport = azure_core::TransportOptions::new(Arc::new(http.clone()));
        let mut options = azure_core::ClientOptions::default();
        options
            .per_call_policies_mut()
            .push(Arc::new(policies::TrimPolicyIds));
        // client_options replaces every option: it comes first.
        let service = ClientBuilder::with_location(location, creds)
            .client_options(options)
            .retry(azure_core::RetryOptions::none())
            .transport(transport)
            .blob_service_client();
        Ok(Self {
            inner: Arc::new(Inner {
                account: account.clone(),
                service,
                http,
                retry: RetryPolicy::default(),
            }),
        })
    }

    /// A client for one container from its SAS URL (what a SAS locator's Path is): it can do
    /// what the SAS allows. Returns the client and the container name. Both URL styles work:
    /// `https://ACCOUNT.blob.core.windows.net/CONTAINER?…` and path-style
    /// `http://127.0.0.1:10000/ACCOUNT/CONTAINER?…` (Azurite).
    pub fn from_container_sas(url: &url::Url) -> Result<(Self, String), StorageError> {
        let bad = || {
            StorageError::Invalid(format!(
                "'{}' is not a container SAS URL (…/CONTAINER?sv=…&sig=…)",
                url.as_str().split('?').next().unwrap_or_default()
            ))
        };
        let query = url.query().filter(|q| q.contains("sig=")).ok_or_else(bad)?;
        let segments: Vec<&str> = url
            .path_segments()
            .map(|s| s.filter(|p| !p.is_empty()).collect())
            .unwrap_or_default();
        let host = url.host_str().ok_or_else(bad)?;
        let origin = match url.port() {
            Some(p) => format!("{}://{host}:{p}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        };
        let (account, endpoint, container) = match segments.as_slice() {
            [account, container] => (
                account.to_string(),
                format!("{origin}/{account}"),
                container.to_string(),
            ),
            [container] => (
                host.split('.').next().unwrap_or_default().to_string(),
                origin.clone(),
                container.to_string(),
            ),
            _ => return Err(bad()),
        };
        let creds = StorageCredentials::sas_token(query)
            .map_err(|e| StorageError::Invalid(format!("the SAS in the URL is not valid: {e}")))?;
        let location = CloudLocation::Custom {
            account: account.clone(),
            uri: endpoint.clone(),
        };
        let http = http_client();
        let transport = azure_core::TransportOptions::new(Arc::new(http.clone()));
        let mut options = azure_core::ClientOptions::default();
        options
            .per_call_policies_mut()
            .push(Arc::new(policies::TrimPolicyIds));
        // client_options replaces every option: it comes first.
        let service = ClientBuilder::with_location(location, creds)
            .client_options(options)
            .retry(azure_core::RetryOptions::none())
            .transport(transport)
            .blob_service_client();
        let endpoint = url::Url::parse(&endpoint).map_err(|_| bad())?;
        Ok((
            Self {
                inner: Arc::new(Inner {
                    account: StorageAccount {
                        account,
                        endpoint,
                        key: String::new(),
                    },
                    service,
                    http,
                    retry: RetryPolicy::default(),
                }),
            },
            container,
        ))
    }

    /// The storage account name.
    pub fn account(&self) -> &str {
        &self.inner.account.account
    }

    /// The blob endpoint, e.g. `http://127.0.0.1:10000/dca`.
    pub fn endpoint(&self) -> &str {
        self.inner.account.endpoint.as_str()
    }

    /// The retry policy used by this account's operations.
    pub fn retry(&self) -> RetryPolicy {
        self.inner.retry
    }

    /// Same account, another retry policy (tests and impatient callers).
    pub fn with_retry(&self, retry: RetryPolicy) -> Self {
        Self {
            inner: Arc::new(Inner {
                account: self.inner.account.clone(),
                service: self.inner.service.clone(),
                http: self.inner.http.clone(),
                retry,
            }),
        }
    }

    pub(crate) fn target<'a>(&'a self, container: &'a str, blob: Option<&'a str>) -> Target<'a> {
        Target {
            account: self.account(),
            endpoint: self.endpoint(),
            container,
            blob,
        }
    }

    /// One storage operation: `f` runs until it succeeds, fails for good or runs out of
    /// attempts (this account's [`RetryPolicy`]); the SDK's errors are named by meaning, with
    /// what was being done (`op`) and where (`t`).
    pub(crate) async fn call<T, F, Fut>(
        &self,
        op: &str,
        t: Target<'_>,
        mut f: F,
    ) -> Result<T, StorageError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = azure_core::Result<T>>,
    {
        self.inner
            .retry
            .run(op, || {
                let attempt = f();
                async move { attempt.await.map_err(|e| classify(op, t, e)) }
            })
            .await
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    pub(crate) fn container_client(&self, container: &str) -> ContainerClient {
        self.inner.service.container_client(container)
    }

    pub(crate) fn blob_client(&self, container: &str, blob: &str) -> BlobClient {
        self.container_client(container).blob_client(blob)
    }

    /// Container names, sorted.
    #[tracing::instrument(skip(self), fields(account = self.account()))]
    pub async fn containers(&self) -> Result<Vec<String>, StorageError> {
        self.call("list containers", self.target("", None), || async {
            let mut names = Vec::new();
            let mut pages = self.inner.service.list_containers().into_stream();
            while let Some(page) = pages.next().await {
                names.extend(page?.containers.into_iter().map(|c| c.name));
            }
            names.sort();
            Ok(names)
        })
        .await
    }

    /// The cheapest request that proves the account answers (a one-item container listing);
    /// one attempt, no retries: health checks call it and want the truth now.
    pub async fn ping(&self) -> Result<(), StorageError> {
        let mut pages = self
            .inner
            .service
            .list_containers()
            .max_results(std::num::NonZeroU32::MIN)
            .into_stream();
        match pages.next().await {
            Some(Err(e)) => Err(classify("list containers", self.target("", None), e)),
            _ => Ok(()),
        }
    }

    /// Whether the account answers at all within `within` (one cheap call, no retries): an
    /// `Unreachable` error naming it and its endpoint if not. Any answer, even a refusal of
    /// the credentials, counts as reachable here.
    pub async fn reachable(&self, within: Duration) -> Result<(), StorageError> {
        let unreachable = |message: String| StorageError::Unreachable {
            account: self.account().to_string(),
            endpoint: self.endpoint().to_string(),
            op: "check that it answers".into(),
            message,
        };
        match tokio::time::timeout(within, self.ping()).await {
            Err(_) => Err(unreachable(format!(
                "no answer within {} s",
                within.as_secs()
            ))),
            Ok(Err(e @ StorageError::Unreachable { .. })) => Err(e),
            Ok(_) => Ok(()),
        }
    }

    /// Creates a container; returns false when it already existed.
    #[tracing::instrument(skip(self), fields(account = self.account()))]
    pub async fn create_container(&self, container: &str) -> Result<bool, StorageError> {
        validate_container_name(container)?;
        let created = self
            .call("create container", self.target(container, None), || {
                self.container_client(container).create().into_future()
            })
            .await;
        match created {
            Ok(_) => Ok(true),
            Err(StorageError::Service { status: 409, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes a container and everything in it; false when there was none.
    #[tracing::instrument(skip(self), fields(account = self.account()))]
    pub async fn delete_container(&self, container: &str) -> Result<bool, StorageError> {
        let deleted = self
            .call("delete container", self.target(container, None), || {
                self.container_client(container).delete().into_future()
            })
            .await;
        match deleted {
            Ok(_) => Ok(true),
            Err(StorageError::ContainerNotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every blob in a container (committed block blobs), sorted by name.
    #[tracing::instrument(skip(self), fields(account = self.account()))]
    pub async fn blobs(&self, container: &str) -> Result<Vec<BlobInfo>, StorageError> {
        self.call("list blobs", self.target(container, None), || async {
            let mut out = Vec::new();
            let mut pages = self
                .container_client(container)
                .list_blobs()
                .max_results(std::num::NonZeroU32::new(5000).expect("nonzero"))
                .into_stream();
            while let Some(page) = pages.next().await {
                out.extend(page?.blobs.blobs().map(blob_info));
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await
    }

    /// One blob's properties; `None` when it does not exist.
    pub async fn blob(
        &self,
        container: &str,
        name: &str,
    ) -> Result<Option<BlobInfo>, StorageError> {
        let props = self
            .call(
                "read blob properties",
                self.target(container, Some(name)),
                || {
                    self.blob_client(container, name)
                        .get_properties()
                        .into_future()
                },
            )
            .await;
        match props {
            Ok(p) => Ok(Some(blob_info(&p.blob))),
            Err(StorageError::BlobNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes a blob; false when it was not there.
    #[tracing::instrument(skip(self), fields(account = self.account()))]
    pub async fn delete_blob(&self, container: &str, name: &str) -> Result<bool, StorageError> {
        let deleted = self
            .call("delete blob", self.target(container, Some(name)), || {
                self.blob_client(container, name).delete().into_future()
            })
            .await;
        match deleted {
            Ok(_) => Ok(true),
            Err(StorageError::BlobNotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A container URL carrying a service SAS signed with the account key.
    pub async fn container_sas_url(
        &self,
        container: &str,
        perms: SasPerms,
        start: Option<OffsetDateTime>,
        expiry: OffsetDateTime,
    ) -> Result<url::Url, StorageError> {
        let cc = self.container_client(container);
        let sdk_perms = perms.sdk();
        let t = self.target(container, None);
        let mut sas = cc
            .shared_access_signature(sdk_perms, expiry)
            .await
            .map_err(|e| classify("sign a SAS", t, e))?;
        if let Some(start) = start {
            sas = sas.start(start);
        }
        let url = cc
            .generate_signed_container_url(&sas)
            .map_err(|e| classify("sign a SAS", t, e))?;
        // Reached through another address, the client's URL names that address: hand out the
        // account's own.
        Ok(self.public_url(url))
    }

    /// The URL of a blob with a SAS appended (for a copy source).
    pub(crate) fn blob_url_with_sas(
        &self,
        container_sas: &url::Url,
        blob: &str,
    ) -> Result<url::Url, StorageError> {
        let mut url = self
            .blob_client(container_sas_container(container_sas), blob)
            .url()
            .map_err(|e| classify("build a blob URL", self.target("", Some(blob)), e))?;
        url.set_query(container_sas.query());
        Ok(self.public_url(url))
    }

    /// A URL of the client's with the account's own host and port (they differ when the
    /// account is reached through another address, see `open_via`).
    fn public_url(&self, url: url::Url) -> url::Url {
        let public = public_authority(&self.inner.account.endpoint);
        with_authority(&url, &public).unwrap_or(url)
    }
}

/// `host:port` of a URL (the port only when it has one).
fn public_authority(url: &url::Url) -> String {
    match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    }
}

/// `url` with its host and port replaced by `authority` (`host:port`).
fn with_authority(url: &url::Url, authority: &str) -> Result<url::Url, StorageError> {
    let bad = || {
        StorageError::Invalid(format!(
            "'{authority}' is not a host:port to reach storage through"
        ))
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse::<u16>().map_err(|_| bad())?)),
        None => (authority, None),
    };
    let mut out = url.clone();
    out.set_host(Some(host)).map_err(|_| bad())?;
    out.set_port(port).map_err(|_| bad())?;
    Ok(out)
}

fn container_sas_container(url: &url::Url) -> &str {
    url.path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or_default()
}

fn blob_info(b: &azure_storage_blobs::blob::Blob) -> BlobInfo {
    let p = &b.properties;
    BlobInfo {
        name: b.name.clone(),
        size: p.content_length,
        md5: p.content_md5.as_ref().and_then(|m| {
            let bytes: &[u8] = m.as_slice();
            bytes.try_into().ok()
        }),
        etag: p.etag.to_string().trim_matches('"').to_string(),
        last_modified: p.last_modified,
        content_type: p.content_type.clone(),
    }
}

/// Azure's container naming rules, checked before a request so the error can say which rule.
pub fn validate_container_name(name: &str) -> Result<(), StorageError> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let problem = if !(3..=63).contains(&name.len()) {
        Some("it must be 3 to 63 characters long")
    } else if !ok_chars {
        Some("it may contain only lowercase letters, digits and hyphens")
    } else if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        Some("hyphens must stand between letters or digits, one at a time")
    } else {
        None
    };
    match problem {
        Some(p) => Err(StorageError::Invalid(format!(
            "'{name}' is not a valid container name: {p}"
        ))),
        None => Ok(()),
    }
}

/// MD5 of a byte slice.
pub fn md5_of(data: &[u8]) -> [u8; 16] {
    use md5::{Digest, Md5};
    Md5::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sas_perms_parse() {
        let p: SasPerms = "rl".parse().unwrap();
        assert!(p.read && p.list && !p.write);
        assert!("rx".parse::<SasPerms>().is_err());
        assert!("".parse::<SasPerms>().is_err());
    }

    #[test]
    fn container_names() {
        assert!(validate_container_name("asset-0a1b").is_ok());
        assert!(validate_container_name("Asset").is_err());
        assert!(validate_container_name("ab").is_err());
        assert!(validate_container_name("a--b").is_err());
    }
}
