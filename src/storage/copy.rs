//! The copy engine: replicate a container's blobs from one storage account to another.
//!
//! The walkthrough copied one blob at a time and polled each copy every second. This engine:
//! - lists both sides once and skips blobs already identical at the destination (same length
//!   and MD5), so a rerun after a crash only finishes what is missing;
//! - copies many blobs at once (bounded), server-side with a source SAS (Copy Blob, then polls
//!   a pending copy with backoff), or in `stream` mode through this process when the
//!   destination cannot reach the source (chosen automatically when the service says so);
//! - verifies every destination blob against the source before counting it, copies again on a
//!   mismatch or a `failed`/`aborted` copy, and reports by name what still failed;
//! - retries transient failures with exponential backoff and jitter (`retry.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_storage_blobs::blob::CopyStatus;
use futures::StreamExt;
use md5::{Digest, Md5};
use time::OffsetDateTime;

use super::pipe::pipe_blob;
use super::transfer::{content_type_for, stream_blob, TransferOptions};
use super::{BlobInfo, SasPerms, Storage, StorageError};
use crate::progress::Progress;
use crate::retry::Backoff;

/// How blobs travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMode {
    /// Server-side, falling back to `Stream` when the destination cannot reach the source.
    Auto,
    /// Server-side only (Copy Blob with a source SAS).
    Server,
    /// Through this process: ranged reads from the source, block writes to the destination.
    Stream,
}

impl std::str::FromStr for CopyMode {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "server" => Ok(Self::Server),
            "stream" => Ok(Self::Stream),
            _ => Err(StorageError::Invalid(format!(
                "copy mode '{s}' is not one of \"auto\", \"server\", \"stream\""
            ))),
        }
    }
}

/// Knobs of `copy_blobs`; the defaults suit both Azurite and real accounts.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    pub mode: CopyMode,
    /// Blobs in flight at once.
    pub concurrency: usize,
    /// Copies of one blob before it is reported as failed (verification mismatch, failed copy).
    pub attempts: u32,
    /// Only blobs whose names start with this.
    pub prefix: Option<String>,
    /// Lifetime of the source SAS for server-side copies.
    pub sas_lifetime: Duration,
    /// First and longest wait between polls of a pending copy.
    pub poll_first: Duration,
    pub poll_max: Duration,
    /// Block size, window and memory budget of stream mode.
    pub transfer: TransferOptions,
    /// Draw a progress bar (or log progress) while copying.
    pub progress: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            mode: CopyMode::Auto,
            concurrency: 16,
            attempts: 3,
            prefix: None,
            sas_lifetime: Duration::from_secs(24 * 3600),
            poll_first: Duration::from_millis(50),
            poll_max: Duration::from_secs(2),
            transfer: TransferOptions::default(),
            progress: true,
        }
    }
}

/// A blob that could not be copied, and why.
#[derive(Debug, Clone)]
pub struct CopyFailure {
    pub name: String,
    pub error: String,
}

/// What a copy did.
#[derive(Debug, Clone, Default)]
pub struct CopyReport {
    pub copied: usize,
    pub skipped: usize,
    pub failed: usize,
    /// Bytes of the blobs copied (not of the skipped ones).
    pub bytes: u64,
    pub seconds: f64,
    /// "server", "stream", or "server+stream" when the engine had to fall back.
    pub mode: String,
    pub failures: Vec<CopyFailure>,
}

enum Outcome {
    Copied(u64),
    Failed(CopyFailure),
}

/// Why one attempt at one blob did not succeed.
enum AttemptError {
    /// The destination cannot read the source: switch to stream mode.
    SourceUnreachable(StorageError),
    /// Worth another attempt (verification mismatch, failed or aborted copy, transient error).
    Retry(StorageError),
    /// No point trying again.
    Fatal(StorageError),
}

impl From<StorageError> for AttemptError {
    fn from(e: StorageError) -> Self {
        if crate::retry::Transient::is_transient(&e) || matches!(e, StorageError::Integrity { .. })
        {
            AttemptError::Retry(e)
        } else {
            AttemptError::Fatal(e)
        }
    }
}

struct Job<'a> {
    src: &'a Storage,
    src_container: &'a str,
    dst: &'a Storage,
    dst_container: &'a str,
    opts: &'a CopyOptions,
    source_sas: Option<url::Url>,
    /// Write SAS on the destination container, for streamed Put Blobs.
    dest_sas: Option<url::Url>,
    stream: AtomicBool,
    fell_back: AtomicBool,
    progress: Arc<Progress>,
}

/// How long each account has to answer its first request before a copy gives up on it.
pub const REACHABLE_WITHIN: Duration = Duration::from_secs(5);

/// Copies every blob of `src_container` in `src` to `dst_container` in `dst` (created when
/// missing), verified, idempotent and resumable. See the module docs.
#[tracing::instrument(skip(src, dst, opts), fields(src = src.account(), dst = dst.account()))]
pub async fn copy_blobs(
    src: &Storage,
    src_container: &str,
    dst: &Storage,
    dst_container: &str,
    opts: &CopyOptions,
) -> Result<CopyReport, StorageError> {
    let started = Instant::now();
    // An account that does not answer at all fails the copy in seconds, naming it, rather
    // than after every request has used up its retries.
    for side in [src, dst] {
        side.reachable(REACHABLE_WITHIN).await?;
    }
    let mut sources = src.blobs(src_container).await?;
    if let Some(prefix) = &opts.prefix {
        sources.retain(|b| b.name.starts_with(prefix.as_str()));
    }
    dst.create_container(dst_container).await?;
    let existing: HashMap<String, BlobInfo> = dst
        .blobs(dst_container)
        .await?
        .into_iter()
        .map(|b| (b.name.clone(), b))
        .collect();

    // Blobs without a stored MD5 are hashed once here so that both skip and verify can use it.
    for b in sources.iter_mut().filter(|b| b.md5.is_none()) {
        b.md5 = Some(hash_blob(src, src_container, b).await?);
    }
    let (todo, skipped): (Vec<BlobInfo>, Vec<BlobInfo>) = sources
        .into_iter()
        .partition(|b| existing.get(&b.name).is_none_or(|d| !identical(b, d)));
    let total: u64 = todo.iter().map(|b| b.size).sum();
    tracing::info!(
        to_copy = todo.len(),
        skipped = skipped.len(),
        bytes = total,
        "copying {src_container} -> {dst_container}"
    );

    let now = OffsetDateTime::now_utc();
    let (start, expiry) = (
        Some(now - time::Duration::minutes(5)),
        now + opts.sas_lifetime,
    );
    let source_sas = if opts.mode == CopyMode::Stream || todo.is_empty() {
        None
    } else {
        let read = SasPerms {
            read: true,
            ..Default::default()
        };
        Some(
            src.container_sas_url(src_container, read, start, expiry)
                .await?,
        )
    };
    let dest_sas = if opts.mode == CopyMode::Server || todo.is_empty() {
        None
    } else {
        let write = SasPerms {
            write: true,
            create: true,
            ..Default::default()
        };
        Some(
            dst.container_sas_url(dst_container, write, start, expiry)
                .await?,
        )
    };
    let progress = Arc::new(if opts.progress {
        Progress::bytes(format!("copy {src_container}"), total)
    } else {
        Progress::quiet(total)
    });
    let job = Job {
        src,
        src_container,
        dst,
        dst_container,
        opts,
        source_sas,
        dest_sas,
        stream: AtomicBool::new(opts.mode == CopyMode::Stream),
        fell_back: AtomicBool::new(false),
        progress,
    };
    let n = todo.len();
    let mut report = CopyReport {
        skipped: skipped.len(),
        ..Default::default()
    };
    let job = &job;
    let mut outcomes = futures::stream::iter(todo)
        .map(|b: BlobInfo| async move { job.copy_one(&b).await })
        .buffer_unordered(opts.concurrency.max(1));
    while let Some(outcome) = outcomes.next().await {
        match outcome {
            Outcome::Copied(bytes) => {
                report.copied += 1;
                report.bytes += bytes;
            }
            Outcome::Failed(f) => {
                tracing::warn!(blob = %f.name, error = %f.error, "blob not copied");
                report.failed += 1;
                report.failures.push(f);
            }
        }
        job.progress
            .message(format!("{}/{n} blobs", report.copied + report.failed));
    }
    drop(outcomes);
    job.progress.finish();
    report.mode = match (opts.mode, job.fell_back.load(Ordering::Relaxed)) {
        (CopyMode::Stream, _) => "stream",
        (_, true) => "server+stream",
        _ => "server",
    }
    .into();
    report.failures.sort_by(|a, b| a.name.cmp(&b.name));
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Same length and same MD5; a blob without an MD5 is never taken as identical.
fn identical(src: &BlobInfo, dst: &BlobInfo) -> bool {
    src.size == dst.size && src.md5.is_some() && src.md5 == dst.md5
}

impl Job<'_> {
    async fn copy_one(&self, b: &BlobInfo) -> Outcome {
        let mut attempt = 1;
        loop {
            let stream = self.stream.load(Ordering::Relaxed);
            let result = if stream {
                self.stream_one(b).await
            } else {
                self.server_one(b).await
            };
            let err = match result {
                Ok(()) => return Outcome::Copied(b.size),
                Err(AttemptError::SourceUnreachable(e)) if self.opts.mode == CopyMode::Auto => {
                    if !self.stream.swap(true, Ordering::Relaxed) {
                        tracing::info!(%e, "the destination cannot read the source: switching to stream mode");
                    }
                    self.fell_back.store(true, Ordering::Relaxed);
                    continue;
                }
                Err(AttemptError::SourceUnreachable(e)) | Err(AttemptError::Fatal(e)) => e,
                Err(AttemptError::Retry(e)) if attempt < self.opts.attempts => {
                    tracing::warn!(blob = %b.name, attempt, %e, "copying again");
                    attempt += 1;
                    continue;
                }
                Err(AttemptError::Retry(e)) => e,
            };
            return Outcome::Failed(CopyFailure {
                name: b.name.clone(),
                error: err.to_string(),
            });
        }
    }

    async fn stream_one(&self, b: &BlobInfo) -> Result<(), AttemptError> {
        match &self.dest_sas {
            // Up to pipe_max: one GET streamed into one Put Blob, checked by its Content-MD5.
            Some(sas) if b.size <= self.opts.transfer.pipe_max => {
                let url = self.dst.blob_url_with_sas(sas, &b.name)?;
                let ct = if b.content_type.is_empty() {
                    content_type_for(&b.name)
                } else {
                    b.content_type.clone()
                };
                self.dst
                    .retry()
                    .run("stream a blob", || {
                        pipe_blob(
                            self.src,
                            self.src_container,
                            b,
                            self.dst,
                            &url,
                            &ct,
                            Some(self.progress.clone()),
                        )
                    })
                    .await?;
            }
            // Larger: block by block, in parallel, within the memory budget.
            _ => {
                stream_blob(
                    self.src,
                    self.src_container,
                    self.dst,
                    self.dst_container,
                    b,
                    &self.opts.transfer,
                    Some(&self.progress),
                )
                .await?;
            }
        }
        self.verify(b).await
    }

    async fn server_one(&self, b: &BlobInfo) -> Result<(), AttemptError> {
        let sas = self
            .source_sas
            .as_ref()
            .ok_or_else(|| StorageError::Invalid("no source SAS for a server-side copy".into()))?;
        let source = self.src.blob_url_with_sas(sas, &b.name)?;
        let client = self.dst.blob_client(self.dst_container, &b.name);
        let t = self.dst.target(self.dst_container, Some(&b.name));
        let started = self
            .dst
            .call("start a server-side copy", t, || {
                client.copy(source.clone()).into_future()
            })
            .await
            .map_err(|e| match &e {
                StorageError::Service { code, .. } if code == "CannotVerifyCopySource" => {
                    AttemptError::SourceUnreachable(e)
                }
                _ => AttemptError::from(e),
            })?;
        let mut status = started.copy_status;
        let mut description = None;
        let mut backoff = Backoff::new(self.opts.poll_first, self.opts.poll_max);
        while status == CopyStatus::Pending {
            backoff.wait().await;
            let props = self
                .dst
                .call("poll a copy", t, || client.get_properties().into_future())
                .await?;
            status = props
                .blob
                .properties
                .copy_status
                .unwrap_or(CopyStatus::Success);
            description = props.blob.properties.copy_status_description;
        }
        if status != CopyStatus::Success {
            return Err(AttemptError::Retry(StorageError::Integrity {
                blob: b.name.clone(),
                message: format!(
                    "the server-side copy ended {status:?}{}",
                    description.map(|d| format!(": {d}")).unwrap_or_default()
                ),
            }));
        }
        self.verify(b).await?;
        self.progress.inc(b.size);
        Ok(())
    }

    /// The destination blob must have the source's length and MD5 before it counts as copied.
    async fn verify(&self, b: &BlobInfo) -> Result<(), AttemptError> {
        let d = self
            .dst
            .blob(self.dst_container, &b.name)
            .await?
            .ok_or_else(|| StorageError::Integrity {
                blob: b.name.clone(),
                message: "missing at the destination after the copy".into(),
            })?;
        let dst_md5 = match d.md5 {
            Some(m) => m,
            None => hash_blob(self.dst, self.dst_container, &d).await?,
        };
        if d.size != b.size || Some(dst_md5) != b.md5 {
            return Err(AttemptError::Retry(StorageError::Integrity {
                blob: b.name.clone(),
                message: format!(
                    "destination has {} bytes, MD5 {}; source has {} bytes, MD5 {}",
                    d.size,
                    hex::encode(dst_md5),
                    b.size,
                    b.md5_hex()
                ),
            }));
        }
        Ok(())
    }
}

/// MD5 of a blob's content, read in ranges (for blobs stored without a Content-MD5).
async fn hash_blob(s: &Storage, container: &str, b: &BlobInfo) -> Result<[u8; 16], StorageError> {
    const CHUNK: u64 = 8 << 20;
    let mut hasher = Md5::new();
    let mut off = 0;
    while off < b.size {
        let end = (off + CHUNK).min(b.size);
        hasher.update(s.get_range(container, &b.name, off..end).await?);
        off = end;
    }
    Ok(hasher.finalize().into())
}
