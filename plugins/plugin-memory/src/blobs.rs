//! The plugin's blob store: the memory blob store behind a tokio timer, and streams fed by a
//! task the plugin spawns, so that both the operations and the reads need the plugin's runtime
//! (run on the host's, they would fail with "no reactor running").

use async_trait::async_trait;
use std::time::{Duration, SystemTime};
use storage_core::Result;
use storage_core::blob::{BlobId, BlobMeta, BlobReader, BlobStats, BlobStore, PutOptions};
use storage_memory::MemoryBlobStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The memory blob store behind a timer.
#[derive(Debug)]
pub(crate) struct TimedBlobs(pub(crate) MemoryBlobStore);

async fn tick() {
    tokio::time::sleep(Duration::from_micros(1)).await;
}

/// The stream `reader` yields, copied by a task on the plugin's runtime into a pipe.
fn pumped(mut reader: BlobReader) -> BlobReader {
    let (mut tx, rx) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) => return,
                Ok(n) => {
                    if tx.write_all(&buffer[..n]).await.is_err() {
                        return;
                    }
                }
                // The pipe ends short; the host's verified read reports it.
                Err(_) => return,
            }
        }
    });
    Box::pin(rx)
}

fn pumped_read(found: Option<(BlobMeta, BlobReader)>) -> Option<(BlobMeta, BlobReader)> {
    found.map(|(meta, reader)| (meta, pumped(reader)))
}

#[async_trait]
impl BlobStore for TimedBlobs {
    fn backend(&self) -> &str {
        crate::TYPE_NAME
    }
    async fn put(&self, data: BlobReader, options: &PutOptions) -> Result<BlobMeta> {
        tick().await;
        self.0.put(data, options).await
    }
    async fn get(&self, id: &BlobId) -> Result<Option<(BlobMeta, BlobReader)>> {
        tick().await;
        Ok(pumped_read(self.0.get(id).await?))
    }
    async fn get_range(
        &self,
        id: &BlobId,
        start: u64,
        end: u64,
    ) -> Result<Option<(BlobMeta, BlobReader)>> {
        tick().await;
        Ok(pumped_read(self.0.get_range(id, start, end).await?))
    }
    async fn head(&self, id: &BlobId) -> Result<Option<BlobMeta>> {
        tick().await;
        self.0.head(id).await
    }
    async fn delete(&self, id: &BlobId) -> Result<bool> {
        tick().await;
        self.0.delete(id).await
    }
    async fn list(&self, after: Option<&BlobId>, limit: usize) -> Result<Vec<BlobMeta>> {
        tick().await;
        self.0.list(after, limit).await
    }
    async fn stats(&self) -> Result<BlobStats> {
        tick().await;
        self.0.stats().await
    }
    async fn cleanup(&self, older_than: SystemTime) -> Result<u64> {
        tick().await;
        self.0.cleanup(older_than).await
    }
    async fn ping(&self) -> Result<()> {
        tick().await;
        self.0.ping().await
    }
    async fn close(&self) -> Result<()> {
        self.0.close().await
    }
}
