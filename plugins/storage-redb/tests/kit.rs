//! The conformance kit, run from the plugin's own tests the way a third-party author would:
//! the factory is called directly (no loader), through a `Registry` holding it, as a host opens it.

use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use storage_core::BackendFactory;
mod common;
use common::registry;
use storage_core::config::{BackendSpec, BlockInput};
use storage_redb::RedbFactory;
use storage_testkit::{SuiteOptions, run_cache_suite, run_database_suite};

/// Parses `options` the way the manager does at load, before anything opens.
fn parse(dir: &Path, options: serde_json::Value) -> storage_core::Result<BackendSpec> {
    let fields = json!({ "options": options }).as_object().unwrap().clone();
    let mut block = BlockInput::new("storage.database", fields, dir);
    let config = RedbFactory::new().parse(&mut block)?;
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
            async move { registry().open_database(&spec).await }
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
            async move { registry().open_cache(&spec).await }
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
    let schema = RedbFactory::new().schema().to_string();
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
    let cache = registry().open_cache(&spec).await.unwrap();
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

/// Rows of a raw table of the file at `path`, read after the backend let go of it.
fn raw_len(path: &Path, table: &str) -> u64 {
    use redb::{ReadableDatabase, ReadableTableMetadata, TableHandle, UntypedTableHandle};
    let db = redb::Database::open(path).unwrap();
    let tx = db.begin_read().unwrap();
    let handle: Option<UntypedTableHandle> = tx.list_tables().unwrap().find(|t| t.name() == table);
    match (handle, table) {
        (None, _) => 0,
        (Some(_), "storage_keys") => tx
            .open_table(redb::TableDefinition::<(&str, &str), &[u8]>::new(table))
            .unwrap()
            .len()
            .unwrap(),
        (Some(_), _) => tx
            .open_table(redb::TableDefinition::<(&str, i64, &str), ()>::new(table))
            .unwrap()
            .len()
            .unwrap(),
    }
}

/// A file written before the expiry index existed gets its deadlines indexed when first opened,
/// so its expired keys are reclaimed too; and a key rewritten after its deadline (here, a list
/// appended to an expired value) is never reclaimed by the stale index entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_of_an_older_file_are_indexed_and_rewritten_keys_survive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.redb");
    let spec = spec(
        dir.path(),
        json!({ "path": "old.redb", "durability": "none" }),
    );
    let ttl = Some(std::time::Duration::from_millis(50));
    {
        let cache = registry().open_cache(&spec).await.unwrap();
        let batch: Vec<storage_core::CacheEntry> = (0..1000)
            .map(|i| storage_core::CacheEntry::new(format!("k{i}"), json!(i), ttl))
            .collect();
        cache.mset(&batch).await.unwrap();
        cache.close().await.unwrap();
    }
    assert_eq!(raw_len(&path, "storage_expiry"), 1000);
    // Make it a file from before the index.
    {
        let db = redb::Database::open(&path).unwrap();
        let tx = db.begin_write().unwrap();
        let expiry = redb::TableDefinition::<(&str, i64, &str), ()>::new("storage_expiry");
        assert!(tx.delete_table(expiry).unwrap());
        tx.commit().unwrap();
    }
    assert_eq!(raw_len(&path, "storage_expiry"), 0);

    let cache = registry().open_cache(&spec).await.unwrap();
    let db = registry().open_database(&spec).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    // k0 expired; appending makes it a list with no deadline, its old index entry left behind.
    db.append("k0", &json!("kept")).await.unwrap();
    for i in 0..256 {
        cache
            .set(&format!("later{i}"), &json!(i), None)
            .await
            .unwrap();
    }
    assert_eq!(
        db.get_range("k0", 0, -1).await.unwrap(),
        vec![json!("kept")]
    );
    cache.close().await.unwrap();
    db.close().await.unwrap();
    drop((cache, db));
    assert_eq!(
        raw_len(&path, "storage_keys"),
        257,
        "999 expired keys reclaimed, k0 kept"
    );
    assert_eq!(
        raw_len(&path, "storage_expiry"),
        0,
        "the index holds nothing due"
    );
}
