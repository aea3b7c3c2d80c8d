//! The in-memory blob store: blobs by id in a map, each kept once however often it is stored.
//! Not durable and not shared between processes; for tests and for the blob role's last
//! fallback. Not the key-value store (`lib.rs`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;
use storage_core::blob::{
    BlobId, BlobLimits, BlobMeta, BlobReader, BlobStats, BlobStore, PutOptions,
};
use storage_core::raw::{Verified, check_total, copy_hashed};
use storage_core::{Error, Result, async_trait};

/// The type name the blob store reports.
const TYPE_NAME: &str = "in-memory";

/// A blob's bytes, shared by the map and the readers handed out.
#[derive(Debug, Clone)]
struct Shared(Arc<Vec<u8>>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Blobs in process memory.
#[derive(Debug, Default)]
pub struct MemoryBlobStore {
    blobs: RwLock<BTreeMap<BlobId, (BlobMeta, Shared)>>,
    limits: BlobLimits,
    closed: AtomicBool,
}

impl MemoryBlobStore {
    /// An empty store with `limits`.
    pub fn new(limits: BlobLimits) -> MemoryBlobStore {
        MemoryBlobStore {
            limits,
            ..MemoryBlobStore::default()
        }
    }

    fn open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::closed())
        } else {
            Ok(())
        }
    }

    fn found(&self, id: &BlobId) -> Option<(BlobMeta, Shared)> {
        self.blobs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    fn backend(&self) -> &str {
        TYPE_NAME
    }

    async fn put(&self, mut data: BlobReader, options: &PutOptions) -> Result<BlobMeta> {
        self.open()?;
        let mut bytes = Vec::new();
        let hashed = copy_hashed(&mut data, &mut bytes, self.limits.max_blob_bytes).await?;
        let mut blobs = self.blobs.write().unwrap_or_else(|e| e.into_inner());
        if let Some((meta, _)) = blobs.get(&hashed.id) {
            return Ok(meta.clone());
        }
        if self.limits.max_total_bytes.is_some() {
            let held: u64 = blobs.values().map(|(m, _)| m.size).sum();
            check_total(&self.limits, held, hashed.size)?;
        }
        let meta = hashed.meta(options);
        blobs.insert(hashed.id, (meta.clone(), Shared(Arc::new(bytes))));
        Ok(meta)
    }

    async fn get(&self, id: &BlobId) -> Result<Option<(BlobMeta, BlobReader)>> {
        self.open()?;
        Ok(self.found(id).map(|(meta, bytes)| {
            let reader = Verified::boxed(Box::pin(std::io::Cursor::new(bytes)), &meta);
            (meta, reader)
        }))
    }

    async fn get_range(
        &self,
        id: &BlobId,
        start: u64,
        end: u64,
    ) -> Result<Option<(BlobMeta, BlobReader)>> {
        self.open()?;
        Ok(self.found(id).map(|(meta, bytes)| {
            let len = bytes.0.len();
            let from = (start.min(len as u64)) as usize;
            let to = (end.min(len as u64) as usize).max(from);
            let part = bytes.0[from..to].to_vec();
            (meta, Box::pin(std::io::Cursor::new(part)) as BlobReader)
        }))
    }

    async fn head(&self, id: &BlobId) -> Result<Option<BlobMeta>> {
        self.open()?;
        Ok(self.found(id).map(|(meta, _)| meta))
    }

    async fn delete(&self, id: &BlobId) -> Result<bool> {
        self.open()?;
        let mut blobs = self.blobs.write().unwrap_or_else(|e| e.into_inner());
        Ok(blobs.remove(id).is_some())
    }

    async fn list(&self, after: Option<&BlobId>, limit: usize) -> Result<Vec<BlobMeta>> {
        self.open()?;
        let blobs = self.blobs.read().unwrap_or_else(|e| e.into_inner());
        let range = match after {
            Some(id) => blobs.range((std::ops::Bound::Excluded(id), std::ops::Bound::Unbounded)),
            None => blobs.range(..),
        };
        Ok(range.take(limit).map(|(_, (m, _))| m.clone()).collect())
    }

    async fn stats(&self) -> Result<BlobStats> {
        self.open()?;
        let blobs = self.blobs.read().unwrap_or_else(|e| e.into_inner());
        Ok(BlobStats {
            count: blobs.len() as u64,
            bytes: blobs.values().map(|(m, _)| m.size).sum(),
        })
    }

    async fn cleanup(&self, older_than: SystemTime) -> Result<u64> {
        self.open()?;
        let mut blobs = self.blobs.write().unwrap_or_else(|e| e.into_inner());
        let before = blobs.len();
        blobs.retain(|_, (m, _)| m.created() >= older_than);
        Ok((before - blobs.len()) as u64)
    }

    async fn ping(&self) -> Result<()> {
        self.open()
    }

    async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}
