//! The fallback chain and write-behind against real failures: closed ports, a server that drops
//! connections during the handshake, and a PostgreSQL that stops mid-stream.
#![cfg(all(
    feature = "postgres",
    feature = "redis",
    feature = "sqlite",
    feature = "memory"
))]

use serde_json::json;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;
use storage_manager::{CacheAside, CacheAsideOptions, StorageManager};
use storage_servers::{Postgres, find_postgres_bin, skip_or_fail};

fn manager(dir: &Path, yaml: &str) -> StorageManager {
    StorageManager::from_source(&storage_manager::config_file::from_yaml_str(yaml, dir).unwrap())
        .unwrap()
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

const FAST: &str = "maxRetries: 2, retryDelayMillis: 10, connectionTimeoutMillis: 500, pool: { acquireTimeoutMillis: 500 }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_postgres_port_falls_back_to_sqlite_without_showing_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let m = manager(
        dir.path(),
        &format!(
            "database: {{ type: postgres, url: 'postgresql://app:hunter2secret@127.0.0.1:{port}/app', {FAST} }}"
        ),
    );
    let b = m.connect().await.unwrap();
    let s = b.status(storage_core::config::Role::Database).unwrap();
    assert_eq!(s.serving.as_deref(), Some("sqlite"));
    assert!(s.degraded());
    assert_eq!(s.failed[0].attempts, 3, "{:?}", s.failed);
    let shown = format!("{s:?} {}", s.degraded_note());
    assert!(shown.contains("postgresql"), "{shown}");
    assert!(!shown.contains("hunter2secret"), "{shown}");
    b.database.append("h", &json!(1)).await.unwrap();
    assert!(dir.path().join(".storage/storage.db").is_file());

    let off = manager(
        dir.path(),
        &format!(
            "database: {{ type: postgres, url: 'postgresql://app:hunter2secret@127.0.0.1:{port}/app', {FAST}, fallback: [] }}"
        ),
    );
    let err = off.connect_database().await.expect_err("fallback is off");
    let text = err.to_string();
    assert!(
        text.contains("storage.database") && !text.contains("hunter2secret"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_redis_port_falls_back_to_memory() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let m = manager(
        dir.path(),
        &format!(
            "cache: {{ type: redis, host: 127.0.0.1, port: {port}, password: s3cr3tpw, {FAST} }}"
        ),
    );
    let b = m.connect().await.unwrap();
    let s = b.status(storage_core::config::Role::Cache).unwrap();
    assert_eq!(s.serving.as_deref(), Some("in-memory"));
    assert!(s.degraded());
    assert!(!format!("{s:?}").contains("s3cr3tpw"));
    let health = m.health_check().await;
    assert!(
        health[0].ok && health[0].to_string().contains("degraded"),
        "{}",
        health[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_drops_connections_during_the_handshake_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept every connection and close it at once, as a server dying mid-connect would.
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    for (role, block) in [
        (
            storage_core::config::Role::Database,
            format!("database: {{ type: postgres, host: 127.0.0.1, port: {port}, {FAST} }}"),
        ),
        (
            storage_core::config::Role::Cache,
            format!("cache: {{ type: redis, host: 127.0.0.1, port: {port}, {FAST} }}"),
        ),
    ] {
        let m = manager(dir.path(), &block);
        let b = m.connect().await.unwrap();
        let s = b.status(role).expect("a key-value role");
        assert!(s.degraded(), "{s:?}");
        assert_ne!(s.serving.as_deref(), Some("postgresql"));
        assert_ne!(s.serving.as_deref(), Some("redis"));
        m.disconnect().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn write_behind_survives_a_database_restart_and_reports_on_shutdown() {
    if find_postgres_bin().is_none() {
        return skip_or_fail(
            "write_behind_survives_a_database_restart",
            "PostgreSQL binaries not found",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let mut pg = Postgres::start(&Default::default()).unwrap();
    let m = manager(
        dir.path(),
        &format!(
            "database: {{ type: postgres, url: '{}', operationTimeoutMillis: 1000, pool: {{ acquireTimeoutMillis: 500 }}, fallback: [] }}",
            pg.url()
        ),
    );
    let b = m.connect().await.unwrap();
    let layer = CacheAside::new(
        b.cache.clone(),
        b.database.clone(),
        CacheAsideOptions::with_capacity(1000),
    );
    for i in 0..50 {
        layer
            .set_behind(&format!("wb:{i}"), &json!(i))
            .await
            .unwrap();
    }
    pg.stop();
    for i in 50..100 {
        layer
            .set_behind(&format!("wb:{i}"), &json!(i))
            .await
            .unwrap();
    }
    layer.delete_behind("wb:7").await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    pg.restart().unwrap();
    let report = layer.shutdown(Duration::from_secs(30)).await;
    assert!(report.unwritten.is_empty(), "{report:?}");
    // Every acknowledged write arrived.
    let keys: Vec<String> = (0..100).map(|i| format!("wb:{i}")).collect();
    let values = b.database.mget(&keys).await.unwrap();
    for (i, v) in values.iter().enumerate() {
        if i == 7 {
            assert_eq!(v, &None);
        } else {
            assert_eq!(v, &Some(json!(i)), "wb:{i}");
        }
    }

    // A graceful shutdown with the database down names exactly what it could not write.
    let layer = CacheAside::new(
        b.cache.clone(),
        b.database.clone(),
        CacheAsideOptions::with_capacity(100),
    );
    pg.stop();
    layer.set_behind("late:1", &json!(1)).await.unwrap();
    layer.set_behind("late:2", &json!(2)).await.unwrap();
    layer.delete_behind("late:3").await.unwrap();
    let report = layer.shutdown(Duration::from_millis(1500)).await;
    assert_eq!(
        report.unwritten,
        vec![
            "late:1".to_string(),
            "late:2".to_string(),
            "late:3".to_string()
        ]
    );
}
