//! Moving bytes: upload from a file, download to a file, and stream one blob from one account
//! to another. All three cut large blobs into blocks that travel in parallel (see `blocks.rs`),
//! carry a per-block MD5 the service checks, and end with a whole-blob MD5 that is checked too.
//! A block blob only appears once its block list is committed, so a transfer that dies halfway
//! leaves nothing that looks finished.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use azure_storage_blobs::blob::{BlobBlockType, BlockList};
use bytes::Bytes;
use futures::StreamExt;
use md5::{Digest, Md5};

use super::blocks::{self, block_count, block_id, block_range, Budget};
use super::{classify, md5_of, BlobInfo, Storage, StorageError};
use crate::progress::Progress;

/// How large transfers are cut and how much of them may be in memory at once.
#[derive(Debug, Clone)]
pub struct TransferOptions {
    /// Block size; blobs up to this size move in one request.
    pub block_size: u64,
    /// Blocks of one blob in flight at once.
    pub window: usize,
    /// Bytes in flight across every transfer sharing these options.
    pub budget: Budget,
    /// Blobs up to this size are copied in stream mode as one GET piped into one Put Blob
    /// (`pipe.rs`); larger ones block by block.
    pub pipe_max: u64,
}

impl Default for TransferOptions {
    /// 16 MiB blocks, 4 in flight per blob, 64 MiB in flight in all: measured against Azurite
    /// (docs/bench.md) as fast as larger budgets, with peak memory near 100 MB.
    fn default() -> Self {
        Self::new(16 << 20, 4, 64 << 20)
    }
}

impl TransferOptions {
    /// Bytes in flight allowed across transfers sharing these options.
    pub fn budget_bytes(&self) -> u64 {
        self.budget.bytes()
    }

    pub fn new(block_size: u64, window: usize, budget_bytes: u64) -> Self {
        Self {
            block_size: block_size.max(64 << 10),
            window: window.max(1),
            budget: Budget::new(budget_bytes.max(block_size)),
            pipe_max: super::pipe::PIPE_MAX,
        }
    }
}

/// The MIME type a blob should carry, from its name.
pub(crate) fn content_type_for(name: &str) -> String {
    let ext = name
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match ext.as_str() {
        "ism" | "ismc" | "xml" => "application/xml",
        "m3u8" => "application/vnd.apple.mpegurl",
        "mpd" => "application/dash+xml",
        _ => {
            return mime_guess::from_path(name)
                .first_or_octet_stream()
                .to_string()
        }
    }
    .to_string()
}

fn local_err(op: &str, path: &Path) -> impl FnOnce(std::io::Error) -> StorageError {
    let (op, path) = (op.to_string(), path.to_path_buf());
    move |source| StorageError::LocalFile { op, path, source }
}

impl Storage {
    /// Reads `range` of a blob into memory.
    pub(crate) async fn get_range(
        &self,
        container: &str,
        blob: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, StorageError> {
        let len = range.end - range.start;
        if len == 0 {
            return Ok(Bytes::new());
        }
        self.retry()
            .run("read blob", || {
                let range = range.clone();
                async move {
                    let t = self.target(container, Some(blob));
                    let mut body = self.open_range(container, blob, range).await?;
                    // Read into a buffer of the known size: growing one by doubling would
                    // hold up to twice the block in memory.
                    let mut buf = bytes::BytesMut::with_capacity(len as usize);
                    crate::memory::prefer_huge_pages(buf.spare_capacity_mut());
                    while let Some(chunk) = body.next().await {
                        buf.extend_from_slice(&chunk.map_err(|e| classify("read blob", t, e))?);
                    }
                    let data = buf.freeze();
                    if data.len() as u64 != len {
                        return Err(StorageError::Integrity {
                            blob: blob.to_string(),
                            message: format!("asked for {len} bytes, got {}", data.len()),
                        });
                    }
                    Ok(data)
                }
            })
            .await
    }

    /// The first `max` bytes of a blob, or all of it when it is shorter (one ranged read: the
    /// service answers a range reaching past the end with the bytes there are).
    pub(crate) async fn get_prefix(
        &self,
        container: &str,
        blob: &str,
        max: u64,
    ) -> Result<Bytes, StorageError> {
        self.retry()
            .run("read blob", || async move {
                let t = self.target(container, Some(blob));
                let mut body = self.open_range(container, blob, 0..max).await?;
                let mut buf = bytes::BytesMut::new();
                while let Some(chunk) = body.next().await {
                    buf.extend_from_slice(&chunk.map_err(|e| classify("read blob", t, e))?);
                    if buf.len() as u64 > max {
                        return Err(StorageError::Integrity {
                            blob: blob.to_string(),
                            message: format!("asked for at most {max} bytes, got more"),
                        });
                    }
                }
                Ok(buf.freeze())
            })
            .await
    }

    /// Starts reading `range` of a blob (one request, once); the body arrives as a stream.
    pub(crate) async fn open_range(
        &self,
        container: &str,
        blob: &str,
        range: std::ops::Range<u64>,
    ) -> Result<azure_core::ResponseBody, StorageError> {
        let t = self.target(container, Some(blob));
        let len = range.end - range.start;
        let mut pages = self
            .blob_client(container, blob)
            .get()
            .range(range)
            .chunk_size(len)
            .into_stream();
        let resp = pages
            .next()
            .await
            .ok_or_else(|| StorageError::Other {
                op: "read blob".into(),
                message: "empty response".into(),
            })?
            .map_err(|e| classify("read blob", t, e))?;
        Ok(resp.data)
    }

    /// Writes a whole blob in one request, with its MD5 checked by the service.
    async fn put_whole(
        &self,
        container: &str,
        blob: &str,
        data: Bytes,
        md5: [u8; 16],
        content_type: &str,
    ) -> Result<(), StorageError> {
        self.call("write blob", self.target(container, Some(blob)), || {
            self.blob_client(container, blob)
                .put_block_blob(data.clone())
                .hash(md5)
                .content_type(content_type.to_string())
                .into_future()
        })
        .await
        .map(|_| ())
    }

    /// Stages one block, its MD5 checked by the service.
    async fn put_block(
        &self,
        container: &str,
        blob: &str,
        i: u64,
        data: Bytes,
    ) -> Result<(), StorageError> {
        let md5 = md5_of(&data);
        self.call("write block", self.target(container, Some(blob)), || {
            self.blob_client(container, blob)
                .put_block(block_id(i), data.clone())
                .hash(md5)
                .into_future()
        })
        .await
        .map(|_| ())
    }

    /// Commits blocks `0..count` as the blob's content, with its whole MD5 and content type.
    async fn commit_blocks(
        &self,
        container: &str,
        blob: &str,
        count: u64,
        md5: [u8; 16],
        content_type: &str,
    ) -> Result<(), StorageError> {
        let list = BlockList {
            blocks: (0..count)
                .map(|i| BlobBlockType::Latest(block_id(i)))
                .collect(),
        };
        self.call("commit blocks", self.target(container, Some(blob)), || {
            self.blob_client(container, blob)
                .put_block_list(list.clone())
                .content_md5(md5)
                .content_type(content_type.to_string())
                .into_future()
        })
        .await
        .map(|_| ())
    }

    /// Uploads a local file as a block blob with its Content-MD5 set; returns the new blob.
    #[tracing::instrument(skip(self, opts, progress), fields(account = self.account()))]
    pub async fn upload_file(
        &self,
        container: &str,
        path: &Path,
        name: &str,
        opts: &TransferOptions,
        progress: Option<&Progress>,
    ) -> Result<BlobInfo, StorageError> {
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(local_err("upload", path))?;
        if !meta.is_file() {
            return Err(StorageError::LocalFile {
                op: "upload".into(),
                path: path.into(),
                source: std::io::Error::other("not a regular file"),
            });
        }
        let size = meta.len();
        let ct = content_type_for(name);
        let uploaded_md5: [u8; 16];
        if size <= opts.block_size {
            let data = Bytes::from(
                tokio::fs::read(path)
                    .await
                    .map_err(local_err("upload", path))?,
            );
            let md5 = md5_of(&data);
            self.put_whole(container, name, data, md5, &ct).await?;
            uploaded_md5 = md5;
            if let Some(p) = progress {
                p.inc(size);
            }
        } else {
            let file = Arc::new(std::fs::File::open(path).map_err(local_err("upload", path))?);
            let count = block_count(size, opts.block_size);
            let mut hasher = Md5::new();
            let bs = opts.block_size;
            blocks::ordered(
                count,
                opts.window,
                &opts.budget,
                |i| block_range(i, bs, size).end - block_range(i, bs, size).start,
                |i| {
                    let (me, file, container, name) = (
                        self.clone(),
                        file.clone(),
                        container.to_string(),
                        name.to_string(),
                    );
                    let path = path.to_path_buf();
                    async move {
                        let data = read_at(file, block_range(i, bs, size), path).await?;
                        me.put_block(&container, &name, i, data.clone()).await?;
                        Ok(data)
                    }
                },
                |_, data: Bytes| {
                    hasher.update(&data);
                    if let Some(p) = progress {
                        p.inc(data.len() as u64);
                    }
                    Ok(())
                },
            )
            .await?;
            let md5: [u8; 16] = hasher.finalize().into();
            self.commit_blocks(container, name, count, md5, &ct).await?;
            uploaded_md5 = md5;
        }
        match self.blob(container, name).await {
            Ok(Some(info)) => Ok(info),
            Ok(None) => Err(StorageError::Integrity {
                blob: name.into(),
                message: "the blob is missing right after its upload".into(),
            }),
            // A write-only SAS (an upload locator) may not read what it wrote: describe the
            // blob from what was sent, which the service checked block by block.
            Err(StorageError::Service { status: 403, .. }) => Ok(BlobInfo {
                name: name.to_string(),
                size,
                md5: Some(uploaded_md5),
                etag: String::new(),
                last_modified: time::OffsetDateTime::now_utc(),
                content_type: ct,
            }),
            Err(e) => Err(e),
        }
    }

    /// Downloads a blob to a local file, checking its MD5 when it has one. The file appears
    /// only when the download is complete and verified.
    #[tracing::instrument(skip(self, opts, progress), fields(account = self.account()))]
    pub async fn download_file(
        &self,
        container: &str,
        blob: &str,
        path: &Path,
        opts: &TransferOptions,
        progress: Option<&Progress>,
    ) -> Result<BlobInfo, StorageError> {
        let info = self
            .blob(container, blob)
            .await?
            .ok_or_else(|| StorageError::BlobNotFound {
                account: self.account().into(),
                container: container.into(),
                blob: blob.into(),
            })?;
        if let Some(p) = progress {
            p.add_total(0);
        }
        let part = part_path(path);
        let result = self
            .download_into(&info, container, &part, opts, progress)
            .await;
        match result {
            Ok(md5) => {
                if let Some(expected) = info.md5 {
                    if expected != md5 {
                        let _ = std::fs::remove_file(&part);
                        return Err(StorageError::Integrity {
                            blob: blob.into(),
                            message: format!(
                                "downloaded MD5 {} differs from the blob's Content-MD5 {}",
                                hex::encode(md5),
                                hex::encode(expected)
                            ),
                        });
                    }
                }
                std::fs::rename(&part, path).map_err(local_err("download", path))?;
                Ok(info)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                Err(e)
            }
        }
    }

    async fn download_into(
        &self,
        info: &BlobInfo,
        container: &str,
        part: &Path,
        opts: &TransferOptions,
        progress: Option<&Progress>,
    ) -> Result<[u8; 16], StorageError> {
        let file = std::fs::File::create(part).map_err(local_err("download", part))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut hasher = Md5::new();
        let (size, bs) = (info.size, opts.block_size);
        blocks::ordered(
            block_count(size, bs),
            opts.window,
            &opts.budget,
            |i| bs.min(size - i * bs),
            |i| {
                let (me, container, blob) =
                    (self.clone(), container.to_string(), info.name.clone());
                async move {
                    me.get_range(&container, &blob, block_range(i, bs, size))
                        .await
                }
            },
            |_, data: Bytes| {
                hasher.update(&data);
                out.write_all(&data).map_err(local_err("download", part))?;
                if let Some(p) = progress {
                    p.inc(data.len() as u64);
                }
                Ok(())
            },
        )
        .await?;
        out.flush().map_err(local_err("download", part))?;
        out.into_inner()
            .map_err(|e| local_err("download", part)(e.into_error()))?
            .sync_all()
            .map_err(local_err("download", part))?;
        Ok(hasher.finalize().into())
    }
}

/// Streams one blob from `src` to `dst` through this process (ranged reads, block writes),
/// for when the destination cannot reach the source. Returns the MD5 of the bytes moved; the
/// block list is committed only when that MD5 equals the source's Content-MD5 (if it has one).
pub(crate) async fn stream_blob(
    src: &Storage,
    src_container: &str,
    dst: &Storage,
    dst_container: &str,
    blob: &BlobInfo,
    opts: &TransferOptions,
    progress: Option<&Progress>,
) -> Result<[u8; 16], StorageError> {
    let (size, bs) = (blob.size, opts.block_size);
    let ct = if blob.content_type.is_empty() {
        content_type_for(&blob.name)
    } else {
        blob.content_type.clone()
    };
    let check = |md5: [u8; 16]| {
        match blob.md5 {
        Some(expected) if expected != md5 => Err(StorageError::Integrity {
            blob: blob.name.clone(),
            message: format!(
                "bytes read from the source hash to {} but its Content-MD5 is {} (changed while copying?)",
                hex::encode(md5),
                hex::encode(expected)
            ),
        }),
        _ => Ok(md5),
    }
    };
    if size <= bs {
        let _permit = opts.budget.reserve(size).await;
        let data = src.get_range(src_container, &blob.name, 0..size).await?;
        let md5 = check(md5_of(&data))?;
        dst.put_whole(dst_container, &blob.name, data, md5, &ct)
            .await?;
        if let Some(p) = progress {
            p.inc(size);
        }
        return Ok(md5);
    }
    let count = block_count(size, bs);
    let mut hasher = Md5::new();
    blocks::ordered(
        count,
        opts.window,
        &opts.budget,
        |i| bs.min(size - i * bs),
        |i| {
            let (src, dst) = (src.clone(), dst.clone());
            let (sc, dc, name) = (
                src_container.to_string(),
                dst_container.to_string(),
                blob.name.clone(),
            );
            async move {
                let data = src.get_range(&sc, &name, block_range(i, bs, size)).await?;
                dst.put_block(&dc, &name, i, data.clone()).await?;
                Ok(data)
            }
        },
        |_, data: Bytes| {
            hasher.update(&data);
            if let Some(p) = progress {
                p.inc(data.len() as u64);
            }
            Ok(())
        },
    )
    .await?;
    let md5 = check(hasher.finalize().into())?;
    dst.commit_blocks(dst_container, &blob.name, count, md5, &ct)
        .await?;
    Ok(md5)
}

async fn read_at(
    file: Arc<std::fs::File>,
    range: std::ops::Range<u64>,
    path: PathBuf,
) -> Result<Bytes, StorageError> {
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; (range.end - range.start) as usize];
        file.read_exact_at(&mut buf, range.start)
            .map_err(local_err("upload", &path))?;
        Ok(Bytes::from(buf))
    })
    .await
    .map_err(|e| StorageError::Other {
        op: "upload".into(),
        message: e.to_string(),
    })?
}

fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".amsplay-part");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(content_type_for("a_1280x720_3400.mp4"), "video/mp4");
        assert_eq!(content_type_for("a.ism"), "application/xml");
        assert_eq!(content_type_for("noext"), "application/octet-stream");
    }
}
