//! The blob role across the boundary: every operation of a plugin's blob store runs like the
//! key-value ones (polled where it is awaited, with the plugin's runtime entered, panics caught),
//! and so does every read of a stream the plugin returns. A stream the host hands to `put` is
//! read inside the plugin's `put` future, on the host's thread: a plugin reads it there (not
//! from a task it spawns, whose thread the host's own runtime does not know).

use crate::{on_plugin_runtime, panicked, runtime};
use async_trait::async_trait;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;
use storage_core::Result;
use storage_core::blob::{BlobId, BlobMeta, BlobReader, BlobStats, BlobStore, PutOptions};
use tokio::io::{AsyncRead, ReadBuf};

/// A plugin's blob store, every operation run on the plugin's runtime.
pub(crate) struct BridgedBlobs(pub(crate) Arc<dyn BlobStore>);

impl fmt::Debug for BridgedBlobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A plugin's stream, each read polled with the plugin's runtime entered; a panic in it is an
/// I/O error, and dropping it happens in the plugin's context too.
struct PluginReader(Option<BlobReader>);

impl AsyncRead for PluginReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let Some(inner) = self.0.as_mut() else {
            return Poll::Ready(Err(std::io::Error::other(
                "the plugin's stream failed before",
            )));
        };
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let _entered = runtime().enter();
            inner.as_mut().poll_read(cx, buf)
        }));
        match polled {
            Ok(p) => p,
            Err(p) => {
                self.drop_inner();
                Poll::Ready(Err(std::io::Error::other(panicked(p))))
            }
        }
    }
}

impl PluginReader {
    fn drop_inner(&mut self) {
        if let Some(inner) = self.0.take() {
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let _entered = runtime().enter();
                drop(inner);
            }));
        }
    }
}

impl Drop for PluginReader {
    fn drop(&mut self) {
        self.drop_inner();
    }
}

fn bridged_read(found: Option<(BlobMeta, BlobReader)>) -> Option<(BlobMeta, BlobReader)> {
    found.map(|(meta, reader)| (meta, Box::pin(PluginReader(Some(reader))) as BlobReader))
}

#[async_trait]
impl BlobStore for BridgedBlobs {
    fn backend(&self) -> &str {
        self.0.backend()
    }
    async fn put(&self, data: BlobReader, options: &PutOptions) -> Result<BlobMeta> {
        on_plugin_runtime(self.0.put(data, options)).await
    }
    async fn put_bytes(&self, data: &[u8], options: &PutOptions) -> Result<BlobMeta> {
        on_plugin_runtime(self.0.put_bytes(data, options)).await
    }
    async fn get(&self, id: &BlobId) -> Result<Option<(BlobMeta, BlobReader)>> {
        on_plugin_runtime(self.0.get(id)).await.map(bridged_read)
    }
    async fn get_range(
        &self,
        id: &BlobId,
        start: u64,
        end: u64,
    ) -> Result<Option<(BlobMeta, BlobReader)>> {
        on_plugin_runtime(self.0.get_range(id, start, end))
            .await
            .map(bridged_read)
    }
    async fn head(&self, id: &BlobId) -> Result<Option<BlobMeta>> {
        on_plugin_runtime(self.0.head(id)).await
    }
    async fn exists(&self, id: &BlobId) -> Result<bool> {
        on_plugin_runtime(self.0.exists(id)).await
    }
    async fn delete(&self, id: &BlobId) -> Result<bool> {
        on_plugin_runtime(self.0.delete(id)).await
    }
    async fn list(&self, after: Option<&BlobId>, limit: usize) -> Result<Vec<BlobMeta>> {
        on_plugin_runtime(self.0.list(after, limit)).await
    }
    async fn stats(&self) -> Result<BlobStats> {
        on_plugin_runtime(self.0.stats()).await
    }
    async fn cleanup(&self, older_than: SystemTime) -> Result<u64> {
        on_plugin_runtime(self.0.cleanup(older_than)).await
    }
    async fn ping(&self) -> Result<()> {
        on_plugin_runtime(self.0.ping()).await
    }
    async fn close(&self) -> Result<()> {
        on_plugin_runtime(self.0.close()).await
    }
}
