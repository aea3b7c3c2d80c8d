//! The manager with real failures: a corrupt SQLite file, a closed cache, fallback off.

use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use storage_core::{ErrorKind, Store};
use storage_manager::{CacheAside, CacheAsideOptions, StorageManager};

fn manager(dir: &Path, yaml: &str) -> storage_core::Result<StorageManager> {
    StorageManager::from_source(&storage_manager::config_file::from_yaml_str(yaml, dir)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_sqlite_falls_back_to_memory_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.db"),
        "definitely not sqlite ".repeat(300),
    )
    .unwrap();
    let m = manager(dir.path(), "database: { type: sqlite, path: bad.db }").unwrap();
    let backends = m.connect().await.unwrap();
    let status = backends
        .status(storage_core::config::Role::Database)
        .unwrap();
    assert_eq!(status.serving.as_deref(), Some("in-memory"));
    assert!(status.degraded());
    assert_eq!(status.failed.len(), 1);
    assert!(
        status.failed[0].reason.contains("not a SQLite database"),
        "{:?}",
        status.failed
    );
    // A refusal that retrying cannot fix is not retried.
    assert_eq!(status.failed[0].attempts, 1);
    backends.database.set("k", &json!(1)).await.unwrap();
    m.disconnect().await.unwrap();
    m.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_off_fails_listing_every_attempt() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.db"), "x".repeat(5000)).unwrap();
    let m = manager(
        dir.path(),
        "database: { type: sqlite, path: bad.db, fallback: [] }",
    )
    .unwrap();
    let err = m.connect_database().await.expect_err("must fail");
    assert!(err.to_string().contains("storage.database"), "{err}");
    assert!(err.to_string().contains("not a SQLite database"), "{err}");
    // The declared chain, exactly: sqlite, then sqlite again at another bad path, then stop.
    std::fs::write(dir.path().join("bad2.db"), "y".repeat(5000)).unwrap();
    let m = manager(
        dir.path(),
        "database: { type: sqlite, path: bad.db, fallback: [{ type: sqlite, path: bad2.db }] }",
    )
    .unwrap();
    let err = m.connect_database().await.expect_err("must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("storage.database ") || msg.contains("storage.database after"),
        "{msg}"
    );
    assert!(msg.contains("storage.database.fallback[0]"), "{msg}");
}

#[test]
fn roles_sharing_a_namespace_on_one_server_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = manager(
        dir.path(),
        "cache: { type: sqlite, path: one.db }\ndatabase: { type: sqlite, path: one.db }",
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
    assert!(
        e.to_string().contains("storage.cache") && e.to_string().contains("storage.database"),
        "{e}"
    );
    // Distinct prefixes on one file are fine (SQL namespaces are exact).
    manager(dir.path(), "cache: { type: sqlite, path: one.db, keyPrefix: 'c:' }\ndatabase: { type: sqlite, path: one.db, keyPrefix: 'd:' }").unwrap();
    // Memory stores are per role: equal prefixes are fine.
    manager(
        dir.path(),
        "cache: { type: in-memory }\ndatabase: { type: in-memory }",
    )
    .unwrap();
}

#[test]
fn unknown_types_are_reported_at_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let e = manager(dir.path(), "cache: { type: memcached }").unwrap_err();
    assert!(e.to_string().contains("storage.cache.type"), "{e}");
    assert!(e.to_string().contains("sqlite"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let m = StorageManager::embedded_default(dir.path()).unwrap();
    let report = m.health_check().await;
    assert!(report.iter().all(|r| r.ok), "{report:?}");
    let (db, _) = m.connect_database().await.unwrap();
    assert!(db.keys(None).await.unwrap().is_empty());
    let (cache, _) = m.connect_cache().await.unwrap();
    assert!(cache.keys(None).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_aside_degrades_a_failing_cache_to_misses() {
    let dir = tempfile::tempdir().unwrap();
    let m = StorageManager::embedded_default(dir.path()).unwrap();
    let b = m.connect().await.unwrap();
    let layer = CacheAside::new(
        b.cache.clone(),
        b.database.clone(),
        CacheAsideOptions {
            ttl: Some(Duration::from_secs(60)),
            write_behind_capacity: 16,
            ..CacheAsideOptions::default()
        },
    );
    layer.set("user:1", &json!({"name": "ada"})).await.unwrap();
    assert_eq!(
        layer.get("user:1").await.unwrap(),
        Some(json!({"name": "ada"}))
    );
    assert_eq!(layer.stats().hits, 1);
    b.cache.delete("user:1").await.unwrap();
    assert_eq!(
        layer.get("user:1").await.unwrap(),
        Some(json!({"name": "ada"}))
    );
    assert_eq!(layer.stats().misses, 1);
    // Warmed: the next read hits.
    layer.get("user:1").await.unwrap();
    assert_eq!(layer.stats().hits, 2);
    // A closed cache fails every call; requests still succeed from the database.
    b.cache.close().await.unwrap();
    assert_eq!(
        layer.get("user:1").await.unwrap(),
        Some(json!({"name": "ada"}))
    );
    layer.set("user:2", &json!(2)).await.unwrap();
    let stats = layer.stats();
    assert!(stats.cache_errors >= 2, "{stats:?}");
    assert_eq!(b.database.get("user:2").await.unwrap(), Some(json!(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_behind_flushes_on_shutdown_and_reports_what_it_could_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let m = StorageManager::embedded_default(dir.path()).unwrap();
    let b = m.connect().await.unwrap();
    let layer = CacheAside::new(
        b.cache.clone(),
        b.database.clone(),
        CacheAsideOptions::with_capacity(8),
    );
    for i in 0..50 {
        layer
            .set_behind(&format!("wb:{i}"), &json!(i))
            .await
            .unwrap();
    }
    layer.delete_behind("wb:0").await.unwrap();
    let report = layer.shutdown(Duration::from_secs(10)).await;
    assert!(report.unwritten.is_empty(), "{report:?}");
    assert_eq!(b.database.get("wb:49").await.unwrap(), Some(json!(49)));
    assert_eq!(b.database.get("wb:0").await.unwrap(), None);
    assert!(layer.set_behind("late", &json!(1)).await.is_err());

    // With the database gone (closed), shutdown cannot flush and names every key it kept.
    let layer = CacheAside::new(
        b.cache.clone(),
        b.database.clone(),
        CacheAsideOptions::with_capacity(8),
    );
    b.database.close().await.unwrap();
    layer.set_behind("lost:a", &json!(1)).await.unwrap();
    layer.delete_behind("lost:b").await.unwrap();
    let report = layer.shutdown(Duration::from_millis(500)).await;
    assert_eq!(
        report.unwritten,
        vec!["lost:a".to_string(), "lost:b".to_string()]
    );
    let _: Arc<dyn Store> = b.cache.clone();
}
