//! The blob cases against the in-memory blob store (the local filesystem store runs them in
//! its own crate).

use std::sync::Arc;
use storage_core::blob::{BlobLimits, BlobStore};
use storage_memory::MemoryBlobStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_blob_store_passes_the_blob_cases() {
    let report = storage_testkit::blob::run_blob_suite(
        Arc::new(|limits: BlobLimits| async move {
            Ok(Arc::new(MemoryBlobStore::new(limits)) as Arc<dyn BlobStore>)
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
