//! A 1 GiB blob moves through the store both ways with memory bounded by a buffer: the
//! process's peak resident memory (`VmHWM`) grows by less than 64 MiB. Its own test binary, so
//! no other test's allocations count. Also: a stored file changed on disk is an error on read.

use std::pin::Pin;
use std::task::{Context, Poll};
use storage_core::blob::{BlobLimits, BlobStore, PutOptions};
use storage_local::LocalBlobStore;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// `left` bytes of a pattern, made as they are read.
struct Generated {
    left: u64,
}

impl AsyncRead for Generated {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = (self.left.min(buf.remaining() as u64)) as usize;
        let start = self.left;
        let chunk: Vec<u8> = (0..n).map(|i| ((start - i as u64) % 251) as u8).collect();
        buf.put_slice(&chunk);
        self.left -= n as u64;
        Poll::Ready(Ok(()))
    }
}

fn peak_resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gigabyte_moves_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open(dir.path(), BlobLimits::default())
        .await
        .unwrap();
    let size = 1u64 << 30;
    let before = peak_resident_kib();
    let meta = store
        .put(Box::pin(Generated { left: size }), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(meta.size, size);
    let (_, mut reader) = store.get(&meta.id).await.unwrap().unwrap();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut read = 0u64;
    loop {
        let n = reader.read(&mut buffer).await.unwrap();
        if n == 0 {
            break;
        }
        read += n as u64;
    }
    assert_eq!(read, size, "the verified read");
    let grown = peak_resident_kib().saturating_sub(before);
    println!("peak resident memory grew by {grown} KiB for a 1 GiB put and get");
    assert!(
        grown < 64 * 1024,
        "peak resident memory grew by {grown} KiB"
    );
}

#[tokio::test]
async fn a_file_changed_on_disk_is_an_error_not_wrong_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open(dir.path(), BlobLimits::default())
        .await
        .unwrap();
    let meta = store
        .put_bytes(b"the original bytes", &PutOptions::default())
        .await
        .unwrap();
    let hex = meta.id.hex();
    let path = dir.path().join(&hex[..2]).join(&hex[2..4]).join(&hex);
    std::fs::write(&path, b"the 0riginal bytes").unwrap();
    let (_, mut reader) = store.get(&meta.id).await.unwrap().unwrap();
    let mut out = Vec::new();
    let e = reader.read_to_end(&mut out).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("does not match its id"), "{e}");
    // A file cut short is caught by its size before any byte is read.
    std::fs::write(&path, b"short").unwrap();
    match store.get(&meta.id).await {
        Err(e) => assert!(e.to_string().contains("corrupt"), "{e}"),
        Ok(_) => panic!("a file cut short was read"),
    }
}
