//! `CacheAside` as a `Database`: the conformance kit's database cases pass through it (reads
//! through the cache, writes through it, lists and batches to the database), and a read that
//! the cache served is counted as a hit.

use serde_json::json;
use std::sync::Arc;
use storage_core::Database;
use storage_manager::{CacheAside, CacheAsideOptions};
use storage_memory::MemoryStore;
use storage_testkit::{SuiteOptions, run_database_suite};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_aside_over_memory_passes_the_database_kit() {
    let caches = MemoryStore::new();
    let databases = MemoryStore::new();
    let report = run_database_suite(
        Arc::new(move |prefix: String| {
            let (caches, databases) = (caches.clone(), databases.clone());
            async move {
                let layer = CacheAside::new(
                    caches.cache(&prefix)?,
                    databases.database(&prefix)?,
                    CacheAsideOptions::with_capacity(8),
                );
                Ok(Arc::new(layer) as Arc<dyn Database>)
            }
        }),
        &SuiteOptions::default(),
    )
    .await;
    report.assert_passed();
    assert!(report.cases.len() >= 40, "{} cases", report.cases.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_through_the_cache_and_writes_keep_it_fresh() {
    let store = MemoryStore::new();
    let cache = store.cache("c:").unwrap();
    let inner = store.database("d:").unwrap();
    let hold = std::time::Duration::from_millis(200);
    let layer = Arc::new(CacheAside::new(
        cache.clone(),
        inner.clone(),
        CacheAsideOptions {
            invalidation_hold: hold,
            ..CacheAsideOptions::with_capacity(8)
        },
    ));
    let db: Arc<dyn Database> = layer.clone();
    db.set("k", &json!(1)).await.unwrap();
    assert_eq!(db.get("k").await.unwrap(), Some(json!(1)));
    assert_eq!(
        layer.stats().hits,
        1,
        "a write-through value is read from the cache"
    );
    // A batch reaches the database and marks the cached copy invalidated; reads go through,
    // and do not warm while the mark holds (a slow read of the old value could be among them).
    db.mset(&[("k".into(), json!(2))]).await.unwrap();
    let marked = cache
        .get("k")
        .await
        .unwrap()
        .expect("the invalidation marker");
    assert_ne!(marked, json!(1));
    assert_eq!(db.get("k").await.unwrap(), Some(json!(2)));
    assert_eq!(cache.get("k").await.unwrap(), Some(marked));
    assert_eq!(
        layer.stats().leases_lost,
        1,
        "the warm during the hold gave way"
    );
    // After the hold, a read warms the cache again.
    tokio::time::sleep(hold + hold / 2).await;
    assert_eq!(db.get("k").await.unwrap(), Some(json!(2)));
    assert_eq!(cache.get("k").await.unwrap(), Some(json!(2)));
    // Lists pass through to the database.
    db.append("chat", &json!("hi")).await.unwrap();
    assert_eq!(inner.get_length("chat").await.unwrap(), 1);
    db.clear().await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), None);
    assert!(inner.keys(None).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_jitter_spreads_lifetimes_within_its_bounds() {
    let store = MemoryStore::new();
    let cache = store.cache("c:").unwrap();
    let layer = CacheAside::new(
        cache.clone(),
        store.database("d:").unwrap(),
        CacheAsideOptions {
            ttl: Some(std::time::Duration::from_secs(100)),
            ttl_jitter: 0.2,
            ..CacheAsideOptions::default()
        },
    );
    let mut lifetimes = std::collections::BTreeSet::new();
    for i in 0..50 {
        let key = format!("k{i}");
        layer.set(&key, &json!(i)).await.unwrap();
        let storage_core::KeyTtl::ExpiresIn(left) = cache.ttl(&key).await.unwrap() else {
            panic!("{key} has no TTL");
        };
        assert!(
            (79..=120).contains(&left.as_secs()),
            "{key} lives {left:?}, outside 100 s ± 20%"
        );
        lifetimes.insert(left.as_secs());
    }
    assert!(lifetimes.len() > 10, "lifetimes spread: {lifetimes:?}");
}
