//! Storage errors by meaning, and the one function that maps a service answer to them.

use std::path::PathBuf;

/// What went wrong talking to Blob Storage, named by meaning so callers (and scripts) can branch.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("container '{container}' not found in storage account '{account}'")]
    ContainerNotFound { account: String, container: String },
    #[error("blob '{blob}' not found in container '{container}' of storage account '{account}'")]
    BlobNotFound {
        account: String,
        container: String,
        blob: String,
    },
    #[error("storage account '{account}' refused the credentials while trying to {op} ({code})")]
    AuthenticationFailed {
        account: String,
        op: String,
        code: String,
    },
    #[error("storage account '{account}' at {endpoint} cannot be reached while trying to {op}: {message}")]
    Unreachable {
        account: String,
        endpoint: String,
        op: String,
        message: String,
    },
    #[error("storage account '{account}' answered {status} {code} while trying to {op}")]
    Service {
        account: String,
        op: String,
        status: u16,
        code: String,
    },
    #[error("{op}: local file {path}: {source}")]
    LocalFile {
        op: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("blob '{blob}' failed verification: {message}")]
    Integrity { blob: String, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{op}: {message}")]
    Other { op: String, message: String },
}

impl StorageError {
    /// A short machine-readable kind, used as `kind` in script errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ContainerNotFound { .. } | Self::BlobNotFound { .. } => "not_found",
            Self::AuthenticationFailed { .. } => "auth",
            Self::Unreachable { .. } => "unreachable",
            Self::Service { .. } => "service",
            Self::LocalFile { .. } => "local_file",
            Self::Integrity { .. } => "integrity",
            Self::Invalid(_) => "invalid",
            Self::Other { .. } => "other",
        }
    }

    /// The HTTP status the service answered, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::ContainerNotFound { .. } | Self::BlobNotFound { .. } => Some(404),
            Self::AuthenticationFailed { .. } => Some(403),
            Self::Service { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Self::ContainerNotFound { container, .. } => format!(
                "check the name with storage.containers(), or create it with storage.create_container(\"{container}\")"
            ),
            Self::BlobNotFound { container, .. } => {
                format!("list what is there with storage.blobs(\"{container}\")")
            }
            Self::AuthenticationFailed { .. } => {
                "check the account key (key_env / connection_string_env in the accounts file) and the account name".into()
            }
            Self::Unreachable { .. } => {
                "is the storage service running? For the local environment run `amsplay local status`".into()
            }
            Self::LocalFile { .. } => "check the path and its permissions".into(),
            _ => return None,
        })
    }
}

impl crate::retry::Transient for StorageError {
    /// Worth trying again: network failures, timeouts, throttling and server errors.
    fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Service { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
            _ => false,
        }
    }
}

/// Where an operation was pointed, so an error can name it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub account: &'a str,
    pub endpoint: &'a str,
    pub container: &'a str,
    pub blob: Option<&'a str>,
}

/// Maps an SDK error to its meaning. `op` says what was being done, in words.
pub(crate) fn classify(op: &str, t: Target<'_>, err: azure_core::Error) -> StorageError {
    use azure_core::error::ErrorKind;
    match err.kind() {
        ErrorKind::HttpResponse { status, error_code } => {
            let status = *status as u16;
            let code = error_code.clone().unwrap_or_default();
            match (status, code.as_str()) {
                (404, "ContainerNotFound") => StorageError::ContainerNotFound {
                    account: t.account.into(),
                    container: t.container.into(),
                },
                (404, "BlobNotFound") | (404, "") if t.blob.is_some() => {
                    StorageError::BlobNotFound {
                        account: t.account.into(),
                        container: t.container.into(),
                        blob: t.blob.unwrap_or_default().into(),
                    }
                }
                // A refused copy source is not about our credentials (the copy engine falls
                // back to streaming on it), nor is a SAS that lacks a permission.
                (403, c)
                    if c != "CannotVerifyCopySource" && c != "AuthorizationPermissionMismatch" =>
                {
                    StorageError::AuthenticationFailed {
                        account: t.account.into(),
                        op: op.into(),
                        code: if c.is_empty() { "403".into() } else { c.into() },
                    }
                }
                _ => StorageError::Service {
                    account: t.account.into(),
                    op: op.into(),
                    status,
                    code: if code.is_empty() {
                        "(no error code)".into()
                    } else {
                        code
                    },
                },
            }
        }
        ErrorKind::Io => StorageError::Unreachable {
            account: t.account.into(),
            endpoint: t.endpoint.into(),
            op: op.into(),
            message: root_message(&err),
        },
        ErrorKind::Credential => StorageError::AuthenticationFailed {
            account: t.account.into(),
            op: op.into(),
            code: root_message(&err),
        },
        _ => StorageError::Other {
            op: op.into(),
            message: root_message(&err),
        },
    }
}

/// The innermost cause of an error chain, which is usually the one that says what happened.
fn root_message(err: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        msg = e.to_string();
        cur = e.source();
    }
    msg
}
