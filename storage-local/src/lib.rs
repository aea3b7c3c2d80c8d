//! The blob role on the local filesystem (`local`): one file per blob, named by its SHA-256,
//! in two levels of shard directories, with its metadata in a JSON file beside it.
//!
//! Writes are atomic and durable: the bytes go to `tmp/` while they are hashed, the file is
//! synced, the metadata is written (synced, renamed) first, then the data file is renamed into
//! place and its directory synced. A blob is visible once its data file exists, and that file
//! is only ever complete; a crash mid-`put` leaves a temporary file (removed by `cleanup` once
//! stale) or a metadata file without data (invisible, removed the same way). Memory stays
//! bounded by one copy buffer whatever the blob's size. Not a database: `list` and `stats` walk
//! the directories.

#![warn(missing_docs)]

mod factory;
mod layout;

pub use factory::{LocalBlock, LocalConfig, LocalFactory};

use layout::{Layout, Stored};
use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use storage_core::blob::{
    BlobId, BlobLimits, BlobMeta, BlobReader, BlobStats, BlobStore, PutOptions,
};
use storage_core::raw::{Verified, check_total, copy_hashed};
use storage_core::{Error, Result, async_trait};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// The type name this crate's store reports.
pub const TYPE_NAME: &str = "local";

/// How old a temporary file must be before `cleanup` takes it for a crashed write's.
const STALE_TEMPORARY: Duration = Duration::from_secs(3600);

/// Blobs in a directory of the local filesystem.
#[derive(Debug)]
pub struct LocalBlobStore {
    layout: Layout,
    limits: BlobLimits,
    /// The bytes held, once counted (this process's view: another process writing to the same
    /// directory is seen at the next count, after a restart).
    held: Mutex<Option<u64>>,
    closed: AtomicBool,
}

fn io_error(what: &str, e: std::io::Error) -> Error {
    let kind = e.kind();
    let error = Error::other(format!("{what}: {e}"));
    match kind {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
            Error::config(format!("{what}: {e}")).with_source(e)
        }
        _ => error.with_source(e),
    }
}

impl LocalBlobStore {
    /// Opens (creating it) the store in `root`.
    pub async fn open(root: impl Into<PathBuf>, limits: BlobLimits) -> Result<LocalBlobStore> {
        let layout = Layout::new(root.into());
        layout.create().await?;
        Ok(LocalBlobStore {
            layout,
            limits,
            held: Mutex::new(None),
            closed: AtomicBool::new(false),
        })
    }

    fn open_check(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::closed())
        } else {
            Ok(())
        }
    }

    /// The bytes held, counting once.
    async fn held(&self) -> Result<u64> {
        if let Some(n) = *self.held.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(n);
        }
        let counted: u64 = self.layout.all().await?.iter().map(|s| s.size).sum();
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(counted);
        Ok(counted)
    }

    fn adjust_held(&self, added: i64) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.as_mut() {
            *n = n.saturating_add_signed(added);
        }
    }
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    fn backend(&self) -> &str {
        TYPE_NAME
    }

    async fn put(&self, mut data: BlobReader, options: &PutOptions) -> Result<BlobMeta> {
        self.open_check()?;
        let (temp_path, mut temp) = self.layout.temporary().await?;
        let hashed = copy_hashed(&mut data, &mut temp, self.limits.max_blob_bytes).await;
        let done = async {
            let hashed = hashed?;
            temp.sync_all()
                .await
                .map_err(|e| io_error("syncing the blob", e))?;
            drop(temp);
            if let Some(meta) = self.layout.meta(&hashed.id).await? {
                // The same bytes are stored already: keep the first.
                return Ok((meta, false));
            }
            if self.limits.max_total_bytes.is_some() {
                check_total(&self.limits, self.held().await?, hashed.size)?;
            }
            let meta = hashed.meta(options);
            self.layout.commit(&temp_path, &meta).await?;
            Ok((meta, true))
        }
        .await;
        // Whatever happened, the temporary file is not left behind (after a commit it is gone).
        let _ = tokio::fs::remove_file(&temp_path).await;
        let (meta, added) = done?;
        if added {
            self.adjust_held(meta.size as i64);
        }
        Ok(meta)
    }

    async fn get(&self, id: &BlobId) -> Result<Option<(BlobMeta, BlobReader)>> {
        self.open_check()?;
        let Some((meta, file)) = self.layout.open(id).await? else {
            return Ok(None);
        };
        Ok(Some((meta.clone(), Verified::boxed(Box::pin(file), &meta))))
    }

    async fn get_range(
        &self,
        id: &BlobId,
        start: u64,
        end: u64,
    ) -> Result<Option<(BlobMeta, BlobReader)>> {
        self.open_check()?;
        let Some((meta, mut file)) = self.layout.open(id).await? else {
            return Ok(None);
        };
        // A part cannot be hashed against the id; the size is checked when the file is opened.
        let from = start.min(meta.size);
        let to = end.min(meta.size).max(from);
        file.seek(SeekFrom::Start(from))
            .await
            .map_err(|e| io_error("seeking in the blob", e))?;
        Ok(Some((meta, Box::pin(file.take(to - from)))))
    }

    async fn head(&self, id: &BlobId) -> Result<Option<BlobMeta>> {
        self.open_check()?;
        self.layout.meta(id).await
    }

    async fn delete(&self, id: &BlobId) -> Result<bool> {
        self.open_check()?;
        let removed = self.layout.remove(id).await?;
        if let Some(size) = removed {
            self.adjust_held(-(size as i64));
        }
        Ok(removed.is_some())
    }

    async fn list(&self, after: Option<&BlobId>, limit: usize) -> Result<Vec<BlobMeta>> {
        self.open_check()?;
        let mut out = Vec::new();
        for Stored { id, .. } in self.layout.all().await? {
            if after.is_some_and(|a| id <= *a) {
                continue;
            }
            if out.len() == limit {
                break;
            }
            if let Some(meta) = self.layout.meta(&id).await? {
                out.push(meta);
            }
        }
        Ok(out)
    }

    async fn stats(&self) -> Result<BlobStats> {
        self.open_check()?;
        let all = self.layout.all().await?;
        let bytes = all.iter().map(|s| s.size).sum();
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(bytes);
        Ok(BlobStats {
            count: all.len() as u64,
            bytes,
        })
    }

    async fn cleanup(&self, older_than: SystemTime) -> Result<u64> {
        self.open_check()?;
        let mut removed = 0;
        for Stored { id, .. } in self.layout.all().await? {
            let old = self
                .layout
                .meta(&id)
                .await?
                .is_some_and(|m| m.created() < older_than);
            if old && self.delete(&id).await? {
                removed += 1;
            }
        }
        self.layout.remove_stale(STALE_TEMPORARY).await?;
        Ok(removed)
    }

    async fn ping(&self) -> Result<()> {
        self.open_check()?;
        self.layout.check().await
    }

    async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}
