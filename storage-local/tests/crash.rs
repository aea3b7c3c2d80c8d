//! Writers killed with SIGKILL in the middle of `put`, in a loop: afterwards every blob the
//! store lists reads back whole and matches its id, and nothing half-written is visible.
//!
//! The writer is this test binary itself, started again with `STORAGE_LOCAL_CRASH_CHILD` set
//! to the store's directory and the filter `writer_child`.

use std::process::Command;
use std::time::Duration;
use storage_core::blob::BlobLimits;
use storage_local::LocalBlobStore;
use storage_testkit::blob_crash::{check_after_kills, write_until_killed};

const CHILD: &str = "STORAGE_LOCAL_CRASH_CHILD";

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
        write_until_killed(&store).await.unwrap();
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
        let complete = check_after_kills(&store).await.unwrap();
        let leftovers = std::fs::read_dir(dir.path().join("tmp")).unwrap().count();
        println!(
            "{complete} complete blobs after 12 kills; {leftovers} temporary files left for cleanup"
        );
    });
}
