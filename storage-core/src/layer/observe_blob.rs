//! The observation layer for the blob role: the same span, duration metric and error context
//! as [`super::Observe`] gives the key-value roles, with the role `blob`. A `get` is timed until
//! its reader is returned (the bytes stream afterwards, at the caller's pace); a `put` until
//! the blob is stored, stream included.

use crate::blob::{BlobId, BlobMeta, BlobReader, BlobStats, BlobStore, PutOptions};
use crate::config::Role;
use crate::error::Result;
use crate::telemetry::OperationLabels;
use async_trait::async_trait;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

/// Observes the blob store it wraps.
///
/// ```
/// use std::sync::Arc;
/// use storage_core::layer::ObserveBlobs;
/// # fn wrap(raw: Arc<dyn storage_core::blob::BlobStore>) -> Arc<dyn storage_core::blob::BlobStore> {
/// Arc::new(ObserveBlobs::new(raw))
/// # }
/// ```
pub struct ObserveBlobs {
    inner: Arc<dyn BlobStore>,
    labels: OperationLabels,
}

impl ObserveBlobs {
    /// Observes `inner`: its metrics and spans carry the role `blob`.
    pub fn new(inner: Arc<dyn BlobStore>) -> ObserveBlobs {
        let labels = OperationLabels::new(inner.backend(), Some(Role::Blob.as_str()));
        ObserveBlobs { inner, labels }
    }

    async fn around<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        super::observe::observed(&self.labels, self.inner.backend(), op, call).await
    }
}

impl fmt::Debug for ObserveBlobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait]
impl BlobStore for ObserveBlobs {
    fn backend(&self) -> &str {
        self.inner.backend()
    }
    async fn put(&self, data: BlobReader, options: &PutOptions) -> Result<BlobMeta> {
        self.around("blob_put", self.inner.put(data, options)).await
    }
    async fn put_bytes(&self, data: &[u8], options: &PutOptions) -> Result<BlobMeta> {
        self.around("blob_put", self.inner.put_bytes(data, options))
            .await
    }
    async fn get(&self, id: &BlobId) -> Result<Option<(BlobMeta, BlobReader)>> {
        self.around("blob_get", self.inner.get(id)).await
    }
    async fn get_range(
        &self,
        id: &BlobId,
        start: u64,
        end: u64,
    ) -> Result<Option<(BlobMeta, BlobReader)>> {
        self.around("blob_get_range", self.inner.get_range(id, start, end))
            .await
    }
    async fn head(&self, id: &BlobId) -> Result<Option<BlobMeta>> {
        self.around("blob_head", self.inner.head(id)).await
    }
    async fn exists(&self, id: &BlobId) -> Result<bool> {
        self.around("blob_exists", self.inner.exists(id)).await
    }
    async fn delete(&self, id: &BlobId) -> Result<bool> {
        self.around("blob_delete", self.inner.delete(id)).await
    }
    async fn list(&self, after: Option<&BlobId>, limit: usize) -> Result<Vec<BlobMeta>> {
        self.around("blob_list", self.inner.list(after, limit))
            .await
    }
    async fn stats(&self) -> Result<BlobStats> {
        self.around("blob_stats", self.inner.stats()).await
    }
    async fn cleanup(&self, older_than: SystemTime) -> Result<u64> {
        self.around("blob_cleanup", self.inner.cleanup(older_than))
            .await
    }
    async fn ping(&self) -> Result<()> {
        self.around("ping", self.inner.ping()).await
    }
    async fn close(&self) -> Result<()> {
        self.around("close", self.inner.close()).await
    }
}
