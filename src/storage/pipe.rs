//! Streaming one blob straight through: the body of a GET on the source becomes the body of a
//! single Put Blob on the destination, chunk by chunk, never held in memory whole.
//!
//! The Put Blob carries the source's Content-MD5, so the destination service checks the bytes
//! it received end to end and refuses (400 `Md5Mismatch`) rather than store a damaged blob; a
//! failure half-way leaves nothing behind, since a Put Blob is all or nothing. The SDK cannot
//! send a body it cannot replay, so this one request goes out on the SDK's own HTTP client with
//! a container SAS for the destination.

use std::sync::Arc;

use base64::Engine as _;
use futures::StreamExt;

use super::{BlobInfo, Storage, StorageError};
use crate::progress::Progress;

/// Default largest blob sent as one streamed Put Blob (`TransferOptions::pipe_max`).
pub const PIPE_MAX: u64 = 256 << 20;

/// The service version that allows Put Blob bodies up to 5,000 MiB.
const VERSION: &str = "2021-12-02";

/// Copies `blob` from `src`/`src_container` to `dst_url` (a blob URL carrying a write SAS),
/// once; the caller retries.
pub(crate) async fn pipe_blob(
    src: &Storage,
    src_container: &str,
    blob: &BlobInfo,
    dst: &Storage,
    dst_url: &url::Url,
    content_type: &str,
    progress: Option<Arc<Progress>>,
) -> Result<(), StorageError> {
    let md5 = blob.md5.ok_or_else(|| {
        StorageError::Invalid(format!("blob '{}' has no MD5 to stream against", blob.name))
    })?;
    let body = if blob.size == 0 {
        reqwest::Body::from(Vec::new())
    } else {
        let data = src
            .open_range(src_container, &blob.name, 0..blob.size)
            .await?;
        reqwest::Body::wrap_stream(data.map(move |chunk| {
            let chunk = chunk.map_err(std::io::Error::other)?;
            if let Some(p) = &progress {
                p.inc(chunk.len() as u64);
            }
            Ok::<_, std::io::Error>(chunk)
        }))
    };
    let resp = dst
        .http()
        .put(dst_url.clone())
        .header("x-ms-blob-type", "BlockBlob")
        .header("x-ms-version", VERSION)
        .header(
            "Content-MD5",
            base64::engine::general_purpose::STANDARD.encode(md5),
        )
        .header("Content-Type", content_type)
        .header("Content-Length", blob.size)
        .body(body)
        .send()
        .await
        .map_err(|e| StorageError::Unreachable {
            account: dst.account().into(),
            endpoint: dst.endpoint().into(),
            op: "stream a blob".into(),
            message: error_chain(&e),
        })?;
    let status = resp.status().as_u16();
    if resp.status().is_success() {
        return Ok(());
    }
    let code = resp
        .headers()
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Err(match (status, code.as_str()) {
        (400, "Md5Mismatch") => StorageError::Integrity {
            blob: blob.name.clone(),
            message: "the destination received bytes whose MD5 differs from the source's".into(),
        },
        (404, "ContainerNotFound") => StorageError::ContainerNotFound {
            account: dst.account().into(),
            container: dst_url
                .path_segments()
                .and_then(|mut s| s.nth(1))
                .unwrap_or_default()
                .into(),
        },
        (403, _) => StorageError::AuthenticationFailed {
            account: dst.account().into(),
            op: "stream a blob".into(),
            code,
        },
        _ => StorageError::Service {
            account: dst.account().into(),
            op: "stream a blob".into(),
            status,
            code,
        },
    })
}

/// An error and its sources, joined: what went wrong down to the socket.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut cur = err.source();
    while let Some(e) = cur {
        parts.push(e.to_string());
        cur = e.source();
    }
    parts.join(": ")
}
