//! The conformance kit, run from the plugin's own tests the way a third-party author would:
//! the factory is called directly (no loader), through storage-core's checked `open_*`.

use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use storage_core::BackendFactory;
use storage_core::config::{BackendSpec, BlockInput};
use storage_redb::RedbFactory;
use storage_testkit::{SuiteOptions, run_cache_suite, run_database_suite};

/// Parses `options` the way the manager does at load, before anything opens.
fn parse(dir: &Path, options: serde_json::Value) -> storage_core::Result<BackendSpec> {
    let fields = json!({ "options": options }).as_object().unwrap().clone();
    let mut block = BlockInput::new("storage.database", fields, dir);
    let config = RedbFactory.parse(&mut block)?;
    let mut spec = BackendSpec::from_arc(config);
    spec.path = "storage.database".into();
    Ok(spec)
}

fn spec(dir: &Path, options: serde_json::Value) -> BackendSpec {
    parse(dir, options).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redb_database_passes_the_kit() {
    let dir = tempfile::tempdir().unwrap();
    let base = spec(dir.path(), json!({ "path": "kit.redb" }));
    let report = run_database_suite(
        Arc::new(move |prefix: String| {
            let spec = base.clone().with_key_prefix(prefix);
            async move { storage_core::open_database(&RedbFactory, &spec).await }
        }),
        &SuiteOptions::default(),
    )
    .await;
    report.assert_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redb_cache_passes_the_kit() {
    let dir = tempfile::tempdir().unwrap();
    let base = spec(
        dir.path(),
        json!({ "path": "cache.redb", "durability": "none" }),
    );
    let report = run_cache_suite(
        Arc::new(move |prefix: String| {
            let spec = base.clone().with_key_prefix(prefix);
            async move { storage_core::open_cache(&RedbFactory, &spec).await }
        }),
        &SuiteOptions::default(),
    )
    .await;
    report.assert_passed();
}

#[test]
fn options_are_validated_with_their_path_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let e = parse(
        dir.path(),
        json!({ "path": "x.redb", "durability": "sometimes" }),
    )
    .unwrap_err();
    assert!(
        e.message()
            .starts_with("storage.database.options.durability"),
        "{e}"
    );
    let e = parse(dir.path(), json!({ "path": "x.redb", "paht": "y" })).unwrap_err();
    assert!(
        e.message()
            .starts_with("storage.database.options.paht: unknown field"),
        "{e}"
    );
    let e = parse(dir.path(), json!({})).unwrap_err();
    assert!(e.message().contains("path"), "{e}");
    // Nothing was created: the options were refused before anything opened.
    assert!(!dir.path().join("x.redb").exists());
    // Relative paths are relative to the config file's directory.
    let spec = spec(dir.path(), json!({ "path": "sub/y.redb" }));
    assert_eq!(
        spec.to_string(),
        format!("redb ({})", dir.path().join("sub/y.redb").display())
    );
    // The schema describes the options.
    let schema = RedbFactory.schema().to_string();
    assert!(
        schema.contains("durability") && schema.contains("path"),
        "{schema}"
    );
}

/// A cache that only writes TTL'd keys stays bounded: 10,000 entries with a 50 ms TTL are gone
/// from the file once later writes run, without anyone reading them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_entries_are_reclaimed_without_reads() {
    use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition};
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(
        dir.path(),
        json!({ "path": "ttl.redb", "durability": "none" }),
    );
    let cache = storage_core::open_cache(&RedbFactory, &spec).await.unwrap();
    let ttl = Some(std::time::Duration::from_millis(50));
    let batch: Vec<storage_core::CacheEntry> = (0..10_000)
        .map(|i| storage_core::CacheEntry::new(format!("k{i}"), json!(i), ttl))
        .collect();
    cache.mset(&batch).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    // Later writes of other TTL'd keys reclaim (every 128th write sweeps).
    for i in 0..256 {
        cache
            .set(&format!("later{i}"), &json!(i), ttl)
            .await
            .unwrap();
    }
    cache.close().await.unwrap();
    drop(cache);
    let db = redb::Database::open(dir.path().join("ttl.redb")).unwrap();
    let table: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("storage_keys");
    let rows = db
        .begin_read()
        .unwrap()
        .open_table(table)
        .unwrap()
        .len()
        .unwrap();
    assert!(rows <= 256, "{rows} entries left of 10,256 written");
}
