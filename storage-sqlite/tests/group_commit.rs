//! Group commit: concurrent writes of one backend share transactions, each keeps its own
//! outcome, and a write that fails inside a group (the wrong type, a condition not met) fails
//! alone; writes queued behind another process's lock fail at their deadline and are never
//! applied later. The backend is opened directly (not through a registry) so that its commit
//! count can be read.

use serde_json::json;
use std::sync::Arc;
use storage_core::config::{BackendSpec, Role};
use storage_core::{Backend, Condition, Database, ErrorKind, Store};
use storage_sqlite::{SqliteBackend, SqliteConfig};

async fn open(path: &std::path::Path) -> SqliteBackend {
    let config = SqliteConfig::file(path);
    let spec = BackendSpec::new(config.clone()).with_key_prefix("g:");
    SqliteBackend::open(&config, &spec, Role::Database)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_commits_and_a_failing_write_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("group.db");
    let db = Arc::new(open(&path).await);
    Database::set(&*db, "scalar", &json!("kept")).await.unwrap();
    let stale = Database::set_if(&*db, "cas", &json!(0), &Condition::Absent)
        .await
        .unwrap();
    Database::set(&*db, "cas", &json!(1)).await.unwrap();
    let before = db.commits();

    // 400 writes at once: sets of distinct keys, appends to one list, appends to a key that
    // holds a value, and conditional writes on a version already replaced; the last two kinds
    // must fail with nothing of theirs applied.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..400u64 {
        let db = db.clone();
        tasks.spawn(async move {
            let outcome = match i % 4 {
                0 => Database::set(&*db, &format!("k{i}"), &json!(i)).await,
                1 => db.append("chat", &json!(i)).await,
                2 => db.append_many("scalar", &[json!(i), json!(-1)]).await,
                _ => Database::set_if(&*db, "cas", &json!(i), &Condition::Version(stale))
                    .await
                    .map(drop),
            };
            (i, outcome)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (i, outcome) = joined.unwrap();
        match i % 4 {
            2 => assert_eq!(
                outcome.unwrap_err().kind(),
                ErrorKind::WrongType,
                "write {i}"
            ),
            3 => assert_eq!(
                outcome.unwrap_err().kind(),
                ErrorKind::Conflict,
                "write {i}"
            ),
            _ => outcome.unwrap_or_else(|e| panic!("write {i}: {e}")),
        }
    }
    let commits = db.commits() - before;
    // 200 of them succeed; one commit each would be 200 (and 400 transactions begun).
    assert!(
        (1..=100).contains(&commits),
        "200 concurrent successful writes took {commits} commits: they did not share transactions"
    );

    // Every successful write is there once; the failed ones left nothing behind.
    for i in (0..400u64).filter(|i| i % 4 == 0) {
        assert_eq!(db.get(&format!("k{i}")).await.unwrap(), Some(json!(i)));
    }
    assert_eq!(db.get("scalar").await.unwrap(), Some(json!("kept")));
    assert_eq!(db.get("cas").await.unwrap(), Some(json!(1)));
    let mut chat: Vec<u64> = db
        .get_range("chat", 0, -1)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    chat.sort_unstable();
    assert_eq!(chat, (0..400).filter(|i| i % 4 == 1).collect::<Vec<_>>());

    // And all of it was committed to the file: another opener sees the same.
    db.close().await.unwrap();
    drop(db);
    let reopened = open(&path).await;
    assert_eq!(reopened.get_length("chat").await.unwrap(), 100);
    assert_eq!(reopened.keys(Some("k*")).await.unwrap().len(), 100);
}

/// One write at a time is one transaction each, as before grouping.
#[tokio::test]
async fn a_lone_writer_commits_each_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir.path().join("lone.db")).await;
    let before = db.commits();
    for i in 0..5 {
        Database::set(&db, &format!("k{i}"), &json!(i))
            .await
            .unwrap();
    }
    assert_eq!(
        Database::append(&db, "k0", &json!(1))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::WrongType
    );
    assert_eq!(db.commits() - before, 5, "a failed write committed");
}

/// Writes queued behind another process's lock: each fails at its operation timeout, not
/// applied, and none of them is applied later when the lock is let go (a group whose deadline
/// passed is not run).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queued_writes_past_their_deadline_fail_and_stay_unapplied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let mut config = SqliteConfig::file(&path);
    config.busy_timeout = std::time::Duration::from_secs(30);
    let mut spec = BackendSpec::new(config.clone()).with_key_prefix("g:");
    spec.common.operation_timeout = std::time::Duration::from_millis(300);
    let db = Arc::new(
        SqliteBackend::open(&config, &spec, Role::Database)
            .await
            .unwrap(),
    );
    Database::set(&*db, "before", &json!(0)).await.unwrap();

    let holder = r2d2_sqlite::rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let db = db.clone();
        tasks.spawn(async move { Database::set(&*db, &format!("k{i}"), &json!(i)).await });
    }
    while let Some(joined) = tasks.join_next().await {
        let e = joined.unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert_eq!(e.outcome(), storage_core::Outcome::NotApplied, "{e}");
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "waited for the busy timeout, not the operation's"
    );
    holder.execute_batch("ROLLBACK").unwrap();

    Database::set(&*db, "after", &json!(1)).await.unwrap();
    let mut keys = db.keys(None).await.unwrap();
    keys.sort();
    assert_eq!(
        keys,
        ["after", "before"],
        "a timed-out write was applied later"
    );
}
