//! The kit's blob cases against the local filesystem store, each in a fresh directory.

use std::sync::Arc;
use storage_core::blob::{BlobLimits, BlobStore};
use storage_local::LocalBlobStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_blob_store_passes_the_blob_cases() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let report =
        storage_testkit::blob::run_blob_suite(
            Arc::new(move |limits: BlobLimits| {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let root = dir.path().join(format!("store{n}"));
                async move {
                    Ok(Arc::new(LocalBlobStore::open(root, limits).await?) as Arc<dyn BlobStore>)
                }
            }),
            None,
        )
        .await;
    println!("{report}");
    assert_eq!(
        report.cases.len(),
        storage_testkit::blob::blob_case_names().len()
    );
    report.assert_passed();
}
