//! Files the backend must refuse without touching them, paths, `:memory:`, and index use.

use r2d2_sqlite::rusqlite::Connection;
use serde_json::json;
use std::path::Path;
use storage_core::ErrorKind;
use storage_core::config::BackendSpec;
use storage_sqlite::SqliteConfig;
mod common;
use common::open_database;
use storage_sqlite::sql;

fn spec(path: &Path) -> BackendSpec {
    BackendSpec::new(SqliteConfig::file(path))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Opening `path` fails with `kind`, a message containing `needle`, and leaves the bytes alone.
fn refused(path: &Path, kind: ErrorKind, needle: &str) {
    let before = std::fs::read(path).unwrap();
    let err = rt()
        .block_on(open_database(&spec(path)))
        .expect_err("open must fail");
    assert_eq!(err.kind(), kind, "{err}");
    assert!(err.to_string().contains(needle), "{err}");
    assert_eq!(
        std::fs::read(path).unwrap(),
        before,
        "the file was modified"
    );
    let wal = path.with_extension("db-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "a WAL appeared"
    );
}

#[test]
fn non_sqlite_file_is_refused_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    std::fs::write(&path, "These are my notes, not a database.\n".repeat(200)).unwrap();
    refused(&path, ErrorKind::Configuration, "not a SQLite database");
}

#[test]
fn another_applications_database_is_refused_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('ada');")
        .unwrap();
    drop(conn);
    refused(&path, ErrorKind::Configuration, "another application");
}

#[test]
fn newer_schema_is_refused_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    rt().block_on(async {
        let db = open_database(&spec(&path)).await.unwrap();
        db.set("k", &json!(1)).await.unwrap();
        db.close().await.unwrap();
    });
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA user_version = 99;")
        .unwrap();
    drop(conn);
    refused(
        &path,
        ErrorKind::Configuration,
        "newer than this build supports",
    );
}

#[test]
fn corrupt_file_is_refused_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.db");
    rt().block_on(async {
        let db = open_database(&spec(&path)).await.unwrap();
        for i in 0..100 {
            db.append("h", &json!(i)).await.unwrap();
        }
        db.close().await.unwrap();
    });
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA journal_mode = DELETE;").unwrap();
    drop(conn);
    // Keep the 100-byte header, garble the schema page behind it.
    let mut bytes = std::fs::read(&path).unwrap();
    for b in &mut bytes[100..4096] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let before = std::fs::read(&path).unwrap();
    let err = rt()
        .block_on(open_database(&spec(&path)))
        .expect_err("open must fail");
    assert!(
        err.to_string().contains("corrupt") || err.to_string().contains("malformed"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the file was modified"
    );
}

#[test]
fn parent_directories_are_created_and_data_persists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c/store.db");
    rt().block_on(async {
        let db = open_database(&spec(&path)).await.unwrap();
        db.append("h", &json!("first")).await.unwrap();
        db.close().await.unwrap();
        let again = open_database(&spec(&path)).await.unwrap();
        assert_eq!(
            again.get_range("h", 0, -1).await.unwrap(),
            vec![json!("first")]
        );
    });
    let conn = Connection::open(&path).unwrap();
    let app: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    assert_eq!(app, i64::from(storage_sqlite::APPLICATION_ID));
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn memory_database_is_shared_by_the_whole_pool() {
    rt().block_on(async {
        let mut spec = BackendSpec::new(SqliteConfig::memory());
        spec.common.pool_max = 4;
        let db = open_database(&spec).await.unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move { db.set(&format!("k{i}"), &json!(i)).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        // Every connection of the pool sees every write.
        let reads: Vec<_> = (0..16)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move { db.get(&format!("k{i}")).await })
            })
            .collect();
        for (i, t) in reads.into_iter().enumerate() {
            assert_eq!(t.await.unwrap().unwrap(), Some(json!(i)));
        }
        // A second :memory: backend is a database of its own.
        let other = open_database(&spec).await.unwrap();
        assert_eq!(other.get("k1").await.unwrap(), None);
    });
}

fn plan(conn: &Connection, stmt: &str, params: &[&dyn r2d2_sqlite::rusqlite::ToSql]) -> String {
    let mut s = conn.prepare(&format!("EXPLAIN QUERY PLAN {stmt}")).unwrap();
    let rows = s
        .query_map(params, |r| r.get::<_, String>(3))
        .unwrap()
        .map(Result::unwrap)
        .collect::<Vec<_>>();
    rows.join("; ")
}

#[test]
fn statements_use_index_searches_not_scans() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.db");
    rt().block_on(async {
        let db = open_database(&spec(&path)).await.unwrap();
        let entries: Vec<(String, serde_json::Value)> =
            (0..2000).map(|i| (format!("k{i}"), json!(i))).collect();
        db.mset(&entries).await.unwrap();
        for i in 0..500 {
            db.append("h", &json!(i)).await.unwrap();
        }
        db.close().await.unwrap();
    });
    let conn = Connection::open(&path).unwrap();
    // mget walks the JSON array of keys (a virtual table) and searches the key table once per
    // key, with statistics (below) and without them (here, as a file that was never analyzed):
    // the table itself is never scanned.
    let keys =
        serde_json::to_string(&(0..100).map(|i| format!("k{i}")).collect::<Vec<_>>()).unwrap();
    let mget_plan = |conn: &Connection| {
        plan(
            conn,
            sql::MGET,
            &[&"" as &dyn r2d2_sqlite::rusqlite::ToSql, &keys, &0i64],
        )
    };
    let unanalyzed = mget_plan(&conn);
    assert!(
        unanalyzed.contains("SEARCH kv USING PRIMARY KEY"),
        "mget: {unanalyzed}"
    );
    assert!(!unanalyzed.contains("SCAN kv"), "mget: {unanalyzed}");
    conn.execute_batch("ANALYZE;").unwrap();
    for (name, stmt, params) in [
        (
            "keys(prefix*)",
            sql::KEYS_RANGE,
            vec![
                &"" as &dyn r2d2_sqlite::rusqlite::ToSql,
                &0i64,
                &"k1",
                &"k2",
            ],
        ),
        ("get_length", sql::HEADER, vec![&"", &"h", &0i64]),
        (
            "tail of get_range",
            sql::RANGE,
            vec![&"", &"h", &480i64, &499i64],
        ),
        ("append's sequence", sql::HEADER, vec![&"", &"h", &0i64]),
        ("get", sql::GET, vec![&"", &"k5", &0i64]),
        ("trim's head", sql::TRIM_HEAD, vec![&"", &"h", &400i64]),
        ("trim's tail", sql::TRIM_TAIL, vec![&"", &"h", &100i64]),
    ] {
        let detail = plan(&conn, stmt, &params);
        assert!(detail.contains("SEARCH"), "{name}: {detail}");
        assert!(!detail.contains("SCAN"), "{name}: {detail}");
    }
    let analyzed = mget_plan(&conn);
    assert!(
        analyzed.contains("SEARCH kv USING PRIMARY KEY"),
        "mget: {analyzed}"
    );
    assert!(!analyzed.contains("SCAN kv"), "mget: {analyzed}");
}

/// A file written by schema version 1 (before lists had a head) is migrated on open: its
/// lists read and append as before, and can be trimmed.
#[test]
fn version_1_files_migrate_and_their_lists_trim() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "CREATE TABLE kv (ns TEXT NOT NULL, key TEXT NOT NULL, kind INTEGER NOT NULL, value TEXT,
                 expires_at INTEGER, list_len INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (ns, key)) WITHOUT ROWID;
             CREATE INDEX kv_expiry ON kv (expires_at) WHERE expires_at IS NOT NULL;
             CREATE TABLE list_items (ns TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL,
                 value TEXT NOT NULL, PRIMARY KEY (ns, key, seq)) WITHOUT ROWID;
             INSERT INTO kv VALUES ('', 'h', 1, NULL, NULL, 3);
             INSERT INTO list_items VALUES ('', 'h', 0, '\"a\"'), ('', 'h', 1, '\"b\"'), ('', 'h', 2, '\"c\"');
             PRAGMA application_id = {}; PRAGMA user_version = 1;",
            storage_sqlite::APPLICATION_ID
        ))
        .unwrap();
    }
    rt().block_on(async {
        let db = open_database(&spec(&path)).await.unwrap();
        assert_eq!(
            db.get_range("h", 0, -1).await.unwrap(),
            vec![json!("a"), json!("b"), json!("c")]
        );
        db.trim("h", 1, -1).await.unwrap();
        db.append("h", &json!("d")).await.unwrap();
        assert_eq!(
            db.get_range("h", 0, -1).await.unwrap(),
            vec![json!("b"), json!("c"), json!("d")]
        );
        db.close().await.unwrap();
    });
    let conn = Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, i64::from(storage_sqlite::SCHEMA_VERSION));
}

/// A cache that only writes TTL'd keys stays bounded: 10,000 rows with a 50 ms TTL are gone
/// from the file once later writes run, without anyone reading them.
#[test]
fn expired_rows_are_reclaimed_without_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ttl.db");
    rt().block_on(async {
        let cache = common::open_cache(&spec(&path)).await.unwrap();
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
    });
    let conn = Connection::open(&path).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM kv", [], |r| r.get(0))
        .unwrap();
    assert!(rows <= 256, "{rows} rows left of 10,256 written");
}

/// A large namespace in a file never analyzed (the backend runs no `ANALYZE`): the planner
/// must still walk the batch's keys and search each, not walk the namespace and look each row
/// up in the batch (a 100-key mget then took 370 ms over 100,000 keys).
#[test]
fn mget_searches_per_key_in_a_large_unanalyzed_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("large.db");
    rt().block_on(async {
        let db = open_database(&spec(&path)).await.unwrap();
        db.set("seed", &json!(1)).await.unwrap();
        db.close().await.unwrap();
    });
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
         INSERT INTO kv (ns, key, kind, value) SELECT 'bench:', 'k:' || i, 0, '1' FROM n;",
    )
    .unwrap();
    let keys =
        serde_json::to_string(&(0..100).map(|i| format!("g:{i}")).collect::<Vec<_>>()).unwrap();
    let detail = plan(
        &conn,
        sql::MGET,
        &[&"bench:" as &dyn r2d2_sqlite::rusqlite::ToSql, &keys, &0i64],
    );
    assert!(
        detail.contains("SEARCH kv USING PRIMARY KEY (ns=? AND key=?)"),
        "mget: {detail}"
    );
    let found: i64 = conn
        .query_row(
            &format!("SELECT count(*) FROM ({})", sql::MGET),
            (&"bench:", &keys, 0i64),
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(found, 0, "none of the batch's keys exist");
}

/// Regression: SQLite ignored `operationTimeoutMillis`: with another writer holding the file, an
/// append waited the whole busy timeout. Every wait inside an operation now ends by its
/// deadline, and the error names the operation timeout; nothing is written, and once the
/// writer lets go the same append succeeds.
#[test]
fn a_locked_file_fails_an_operation_at_its_operation_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let mut config = SqliteConfig::file(&path);
    config.busy_timeout = std::time::Duration::from_secs(30);
    let mut spec = BackendSpec::new(config);
    spec.common.operation_timeout = std::time::Duration::from_millis(300);
    let rt = rt();
    let db = rt.block_on(open_database(&spec)).unwrap();
    rt.block_on(db.append("chat", &json!("first"))).unwrap();

    let holder = Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    let e = rt
        .block_on(db.append("chat", &json!("second")))
        .unwrap_err();
    let waited = started.elapsed();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("operation timeout (300 ms"), "{e}");
    // Well short of the 30 s busy timeout (the limit it used to wait for).
    assert!(waited < std::time::Duration::from_secs(10), "{waited:?}");
    holder.execute_batch("ROLLBACK").unwrap();

    rt.block_on(db.append("chat", &json!("third"))).unwrap();
    assert_eq!(
        rt.block_on(db.get_range("chat", 0, -1)).unwrap(),
        vec![json!("first"), json!("third")]
    );
}

/// A database the backend creates is its owner's alone: the file and its `-wal` and `-shm`
/// mode 0600, a directory it creates 0700. An existing file keeps its mode.
#[test]
fn new_files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("made/here/app.db");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    rt().block_on(async {
        let db = open_database(&spec(&path)).await.unwrap();
        db.set("k", &json!(1)).await.unwrap();
        for file in [
            path.clone(),
            path.with_extension("db-wal"),
            path.with_extension("db-shm"),
        ] {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
        assert_eq!(mode(&dir.path().join("made")), 0o700);
        assert_eq!(mode(&dir.path().join("made/here")), 0o700);
        db.close().await.unwrap();
    });
    let shared = dir.path().join("shared.db");
    std::fs::write(&shared, b"").unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).unwrap();
    rt().block_on(async {
        let db = open_database(&spec(&shared)).await.unwrap();
        db.set("k", &json!(1)).await.unwrap();
        db.close().await.unwrap();
    });
    assert_eq!(mode(&shared), 0o640, "an existing file keeps its mode");
}
