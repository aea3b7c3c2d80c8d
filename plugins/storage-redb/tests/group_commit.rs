//! Group commit: concurrent writes share transactions, each keeps its own outcome, and a
//! write that fails inside a group fails alone. The backend is opened directly (no loader) so
//! that its commit count can be read.

use serde_json::json;
use std::sync::Arc;
use storage_core::config::{BackendSpec, BlockInput};
use storage_core::{BackendFactory, Database, ErrorKind, Store};
use storage_redb::{RedbBackend, RedbFactory};

fn spec(dir: &std::path::Path) -> BackendSpec {
    let fields = json!({ "options": { "path": "group.redb" } })
        .as_object()
        .unwrap()
        .clone();
    let mut block = BlockInput::new("storage.database", fields, dir);
    BackendSpec::from_arc(RedbFactory::new().parse(&mut block).unwrap()).with_key_prefix("g:")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_commits_and_a_failing_write_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    let db = Arc::new(RedbBackend::open(spec.settings().unwrap(), &spec).unwrap());
    Database::set(&*db, "scalar", &json!("kept")).await.unwrap();
    let before = db.commits();

    // 300 writes at once: sets of distinct keys, appends to one list, and appends to a key
    // that holds a value, which must fail with nothing of theirs applied.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300u64 {
        let db = db.clone();
        tasks.spawn(async move {
            let outcome = match i % 3 {
                0 => Database::set(&*db, &format!("k{i}"), &json!(i)).await,
                1 => db.append("chat", &json!(i)).await,
                _ => db.append_many("scalar", &[json!(i), json!(-1)]).await,
            };
            (i, outcome)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (i, outcome) = joined.unwrap();
        match i % 3 {
            2 => assert_eq!(
                outcome.unwrap_err().kind(),
                ErrorKind::WrongType,
                "write {i}"
            ),
            _ => outcome.unwrap_or_else(|e| panic!("write {i}: {e}")),
        }
    }
    let commits = db.commits() - before;
    // 200 of them succeed; one commit each would be 200. Here they typically take 3 or 4.
    assert!(
        (1..=50).contains(&commits),
        "200 concurrent successful writes took {commits} commits: they did not share transactions"
    );

    // Every successful write is there once; the failed ones left nothing behind.
    for i in (0..300u64).filter(|i| i % 3 == 0) {
        assert_eq!(db.get(&format!("k{i}")).await.unwrap(), Some(json!(i)));
    }
    assert_eq!(db.get("scalar").await.unwrap(), Some(json!("kept")));
    let mut chat: Vec<u64> = db
        .get_range("chat", 0, -1)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    chat.sort_unstable();
    assert_eq!(chat, (0..300).filter(|i| i % 3 == 1).collect::<Vec<_>>());

    // And all of it was committed to the file: a fresh opener sees the same.
    db.close().await.unwrap();
    drop(db);
    let reopened = RedbBackend::open(spec.settings().unwrap(), &spec).unwrap();
    assert_eq!(reopened.get_length("chat").await.unwrap(), 100);
    assert_eq!(reopened.keys(Some("k*")).await.unwrap().len(), 100);
}
