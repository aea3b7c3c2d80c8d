//! PostgreSQL's change log under concurrent batch writes: the trigger that files each change
//! also prunes the log every 1,000th change, and that prune must never make writers wait on
//! each other in a cycle.
//!
//! A private server, always: the test reads the server's own count of deadlocks, which no
//! other test may add to.

use serde_json::json;
use std::sync::Arc;
use storage_core::Database;

mod common;

/// Writers at once, batches each, keys per batch, and the keys they share.
const WRITERS: usize = 64;
const BATCHES: usize = 20;
const BATCH: usize = 100;
const KEYS: usize = 5_000;

/// The database role on `url`.
async fn open(url: &str) -> Arc<dyn Database> {
    let (registry, config) = common::resolved(&format!(
        "database: {{ type: postgresql, url: '{url}', maxConnections: {WRITERS} }}\ncache: {{ type: postgresql, url: '{url}', keyPrefix: 'c:' }}"
    ))
    .unwrap();
    registry
        .open_database(&config.database.primary)
        .await
        .unwrap()
}

/// A plain connection to `url`, for reading what the server holds.
async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// The deadlocks the server has detected in its database (each broken by failing one of the
/// transactions, which the backend's retry then hides from its caller).
async fn deadlocks(url: &str) -> i64 {
    connect(url)
        .await
        .query_one(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// 64 writers each store 20 batches of 100 keys of the same 5,000, every value new: 128,000
/// changes filed, so about 128 prunes run while other batches hold keys. With the prune waiting
/// for the horizon row, writers deadlocked (one held the row and wanted a key another held),
/// which the server counts; with it skipped while another prune runs, none does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_batches_that_prune_the_log_never_deadlock() {
    let test = "overlapping_batches_that_prune_the_log_never_deadlock";
    let Some(server) = common::private(test, &Default::default()) else {
        return;
    };
    let url = server.url();
    let db = open(&url).await;
    let before = deadlocks(&url).await;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let db = db.clone();
        writers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for b in 0..BATCHES {
                // As the benchmark's `mset100`: 100 consecutive keys of the 5,000, each
                // batch further on, so that concurrent batches overlap in part.
                let start = (w * BATCHES + b) * BATCH;
                let entries: Vec<(String, serde_json::Value)> = (0..BATCH)
                    .map(|i| {
                        let key = format!("k{}", (start + i) % KEYS);
                        (key, json!({"writer": w, "batch": b, "i": i}))
                    })
                    .collect();
                if let Err(e) = db.mset(&entries).await {
                    failures.push(e.to_string());
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for writer in writers {
        failures.extend(writer.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} of {} batches failed, the first: {}",
        failures.len(),
        WRITERS * BATCHES,
        failures[0]
    );
    // Every key holds one of the values written to it, readable as such.
    let keys: Vec<String> = (0..KEYS).map(|k| format!("k{k}")).collect();
    for (key, value) in keys.iter().zip(db.mget(&keys).await.unwrap()) {
        let value = value.unwrap_or_else(|| panic!("{key} was written and is missing"));
        assert!(
            value["writer"].as_u64().unwrap() < WRITERS as u64,
            "{key}: {value}"
        );
    }
    // A backend reports its statistics when it exits: close every connection, and give the
    // server's processes a moment to end.
    db.close().await.unwrap();
    drop(db);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let after = deadlocks(&url).await;
    assert_eq!(
        after - before,
        0,
        "the server broke {} deadlocks",
        after - before
    );
}

/// A schema at version 5 (the change log with the prune that waits) is taken to version 6 by
/// the next backend that opens it: the function is replaced, the version stamped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_5_schema_gets_the_prune_that_does_not_wait() {
    let test = "a_version_5_schema_gets_the_prune_that_does_not_wait";
    let Some(server) = common::private(test, &Default::default()) else {
        return;
    };
    let url = server.url();
    open(&url).await.close().await.unwrap();
    let client = connect(&url).await;
    let source = "SELECT prosrc FROM pg_proc WHERE proname = 'storage_log_change'";
    // Back to version 5's function (the prune waits for the horizon row) and version.
    client
        .batch_execute(
            "DO $$ BEGIN EXECUTE replace(pg_get_functiondef('storage_log_change'::regproc), \
             'FOR UPDATE SKIP LOCKED', 'FOR UPDATE'); END $$; \
             UPDATE storage_meta SET version = 5;",
        )
        .await
        .unwrap();
    let old: String = client.query_one(source, &[]).await.unwrap().get(0);
    assert!(!old.contains("SKIP LOCKED"), "{old}");

    let db = open(&url).await;
    let new: String = client.query_one(source, &[]).await.unwrap().get(0);
    assert!(new.contains("FOR UPDATE SKIP LOCKED"), "{new}");
    let version: i32 = client
        .query_one("SELECT version FROM storage_meta", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, storage_postgres::sql::SCHEMA_VERSION);
    assert_eq!(version, 6);
    // The migrated log still files changes.
    let from = db.changes(None, 0).await.unwrap().next;
    db.set("k", &json!(1)).await.unwrap();
    let mut filed = Vec::new();
    for _ in 0..100 {
        filed = db.changes(Some(from), 10).await.unwrap().changes;
        if !filed.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(filed.len(), 1, "{filed:?}");
    assert_eq!(filed[0].key, "k");
    db.close().await.unwrap();
}
