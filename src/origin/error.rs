//! What the origin answers when it cannot serve, and why.
//!
//! Players and edges act on the status: 404 means "this does not exist" (do not retry
//! elsewhere for it), 400 "you asked wrongly", 503 with `Retry-After` "this origin cannot
//! serve right now" (an edge fails over). The body never names internal addresses or storage
//! endpoints; those go to the log.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::index::IndexError;
use crate::storage::StorageError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum OriginError {
    /// No live OnDemandOrigin locator, no such file, fragment or track.
    #[error("{0}")]
    NotFound(String),
    /// A path that cannot be an origin request.
    #[error("{0}")]
    BadPath(String),
    /// Storage (or the database) cannot answer now; `detail` is for the log only.
    #[error("{what} is unavailable")]
    Unavailable { what: &'static str, detail: String },
    /// The file exists but cannot be packaged (a damaged or foreign MP4).
    #[error("{0}")]
    Unpackageable(String),
}

/// Seconds a client should wait before asking this origin again.
pub const RETRY_AFTER_SECS: u32 = 1;

impl OriginError {
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::NotFound(m.into())
    }

    pub fn bad_path(m: impl Into<String>) -> Self {
        Self::BadPath(m.into())
    }

    pub fn storage(detail: impl std::fmt::Display) -> Self {
        Self::Unavailable {
            what: "storage",
            detail: detail.to_string(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadPath(_) => StatusCode::BAD_REQUEST,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unpackageable(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StorageError> for OriginError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::BlobNotFound { blob, .. } => Self::NotFound(format!("{blob} not found")),
            StorageError::ContainerNotFound { .. } => {
                Self::NotFound("the asset's files are not there".into())
            }
            e => Self::storage(e),
        }
    }
}

impl From<IndexError> for OriginError {
    fn from(e: IndexError) -> Self {
        match e {
            IndexError::Storage(e) => e.into(),
            e @ IndexError::Format { .. } => Self::Unpackageable(e.to_string()),
        }
    }
}

impl IntoResponse for OriginError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Unavailable { what, detail } = &self {
            tracing::warn!(%what, %detail, "origin cannot serve");
        } else if status.is_server_error() {
            tracing::error!(error = %self, "origin cannot package");
        }
        let mut r = (status, format!("{self}\n")).into_response();
        let h = r.headers_mut();
        crate::cors::allow(h);
        h.insert("cache-control", HeaderValue::from_static("no-store"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            h.insert("retry-after", HeaderValue::from(RETRY_AFTER_SECS));
        }
        r
    }
}
