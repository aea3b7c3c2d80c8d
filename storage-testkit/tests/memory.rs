//! The kit run on the memory backend, the way a plugin author runs it on theirs.

use std::sync::Arc;
use storage_memory::MemoryStore;
use storage_testkit::{SuiteOptions, run_cache_suite, run_database_suite};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_cache_passes_the_kit() {
    let store = MemoryStore::new();
    let report = run_cache_suite(
        Arc::new(move |prefix: String| {
            let store = store.clone();
            async move { store.cache(&prefix) }
        }),
        &SuiteOptions::default(),
    )
    .await;
    report.assert_passed();
    assert!(report.cases.len() >= 40, "{} cases", report.cases.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_database_passes_the_kit() {
    let store = MemoryStore::new();
    let report = run_database_suite(
        Arc::new(move |prefix: String| {
            let store = store.clone();
            async move { store.database(&prefix) }
        }),
        &SuiteOptions::default(),
    )
    .await;
    report.assert_passed();
    assert!(report.cases.len() >= 40, "{} cases", report.cases.len());
}
