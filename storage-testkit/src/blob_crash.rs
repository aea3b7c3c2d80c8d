//! Blob writers killed mid-`put`: the writer's side (slow uploads in a loop, until it is
//! killed) and the check afterwards (every blob the store lists is whole and reads back through
//! its hash check; nothing half-written is visible). The harness that starts and kills the
//! writer processes is the caller's (the runner, a backend's own test).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use storage_core::blob::{BlobReader, BlobStore, PutOptions};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// The size of each blob a writer stores.
pub const CRASH_BLOB_BYTES: usize = 1 << 20;

/// `left` bytes of a seeded pattern, 64 KiB at a time with a 2 ms pause between: a slow upload,
/// so that a kill lands in the middle of one.
struct Slow {
    left: usize,
    seed: u64,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl AsyncRead for Slow {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(p) = self.pause.as_mut() {
            if p.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.pause = None;
        }
        let n = self.left.min(buf.remaining()).min(64 * 1024);
        let seed = self.seed;
        let chunk: Vec<u8> = (0..n)
            .map(|i| (i as u64).wrapping_mul(seed) as u8)
            .collect();
        buf.put_slice(&chunk);
        self.left -= n;
        self.seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        self.pause = Some(Box::pin(tokio::time::sleep(Duration::from_millis(2))));
        Poll::Ready(Ok(()))
    }
}

/// A slow upload of `len` bytes, different for each `seed`.
pub fn slow_upload(len: usize, seed: u64) -> BlobReader {
    Box::pin(Slow {
        left: len,
        seed,
        pause: None,
    })
}

/// The writer's side: stores slow 1 MiB blobs, different each time, until the process is
/// killed (or a put fails, which it returns).
pub async fn write_until_killed(store: &dyn BlobStore) -> storage_core::Result<()> {
    let base = u64::from(std::process::id()) << 20;
    for i in 0.. {
        store
            .put(
                slow_upload(CRASH_BLOB_BYTES, base + i),
                &PutOptions::default(),
            )
            .await?;
    }
    Ok(())
}

/// The check after the kills: every listed blob has the writers' size and reads back whole
/// through its hash check, and `stats` agrees with the listing. Returns how many blobs were
/// complete; none is an error (the kills proved nothing).
pub async fn check_after_kills(store: &dyn BlobStore) -> Result<usize, String> {
    let listed = store
        .list(None, usize::MAX)
        .await
        .map_err(|e| format!("list: {e}"))?;
    if listed.is_empty() {
        return Err("no writer finished a blob before its kill: the check proves nothing".into());
    }
    for meta in &listed {
        if meta.size != CRASH_BLOB_BYTES as u64 {
            return Err(format!(
                "{}: a partial blob is visible ({} bytes)",
                meta.id, meta.size
            ));
        }
        let Some((_, mut reader)) = store.get(&meta.id).await.map_err(|e| format!("get: {e}"))?
        else {
            return Err(format!("{}: listed, but not there", meta.id));
        };
        let mut out = Vec::new();
        reader
            .read_to_end(&mut out)
            .await
            .map_err(|e| format!("{}: {e}", meta.id))?;
    }
    let stats = store.stats().await.map_err(|e| format!("stats: {e}"))?;
    if stats.count != listed.len() as u64 {
        return Err(format!(
            "stats counts {} blobs, the listing {}",
            stats.count,
            listed.len()
        ));
    }
    Ok(listed.len())
}
