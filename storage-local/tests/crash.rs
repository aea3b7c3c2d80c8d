//! Writers killed with SIGKILL in the middle of `put`, in a loop: afterwards every blob the
//! store lists reads back whole and matches its id, and nothing half-written is visible.
//!
//! The writer is this test binary itself, started again with `STORAGE_LOCAL_CRASH_CHILD` set
//! to the store's directory and the filter `writer_child`.

use std::pin::Pin;
use std::process::Command;
use std::task::{Context, Poll};
use std::time::Duration;
use storage_core::blob::{BlobLimits, BlobStore, PutOptions};
use storage_local::LocalBlobStore;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

const CHILD: &str = "STORAGE_LOCAL_CRASH_CHILD";

/// `left` bytes of a seeded pattern, 64 KiB at a time with a pause between: a slow upload.
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
        for i in 0..n {
            buf.put_slice(&[(i as u64).wrapping_mul(seed) as u8]);
        }
        self.left -= n;
        self.seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        self.pause = Some(Box::pin(tokio::time::sleep(Duration::from_millis(2))));
        Poll::Ready(Ok(()))
    }
}

use std::future::Future;

#[test]
fn writer_child() {
    let Ok(root) = std::env::var(CHILD) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = LocalBlobStore::open(root, BlobLimits::default())
            .await
            .unwrap();
        let base = u64::from(std::process::id()) << 20;
        for i in 0.. {
            let data = Slow {
                left: 1 << 20,
                seed: base + i,
                pause: None,
            };
            store
                .put(Box::pin(data), &PutOptions::default())
                .await
                .unwrap();
        }
    });
}

#[test]
fn writers_killed_mid_put_leave_no_readable_partial_blob() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    for round in 0..12u64 {
        let mut child = Command::new(&exe)
            .args(["--exact", "writer_child", "--test-threads=1"])
            .env(CHILD, dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150 + (round * 97) % 400));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = LocalBlobStore::open(dir.path(), BlobLimits::default())
            .await
            .unwrap();
        let listed = store.list(None, usize::MAX).await.unwrap();
        assert!(
            !listed.is_empty(),
            "no writer finished a blob: the test proves nothing"
        );
        for meta in &listed {
            assert_eq!(meta.size, 1 << 20, "{}: a partial blob is visible", meta.id);
            let (_, mut reader) = store.get(&meta.id).await.unwrap().unwrap();
            let mut out = Vec::new();
            reader
                .read_to_end(&mut out)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", meta.id));
        }
        let leftovers = std::fs::read_dir(dir.path().join("tmp")).unwrap().count();
        println!(
            "{} complete blobs after 12 kills; {leftovers} temporary files left for cleanup",
            listed.len()
        );
    });
}
