//! The one-line openers: a file and memory, the checked layer around them, and an error (not a
//! panic) outside a tokio runtime.

use serde_json::json;
use storage_core::ErrorKind;

#[tokio::test]
async fn open_a_file_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("chat.db");
    let db = storage_sqlite::open(&path).await.unwrap();
    db.append("chat", &json!({"role": "user"})).await.unwrap();
    drop(db);
    // The file holds it: a second opener sees it.
    let again = storage_sqlite::open(&path).await.unwrap();
    assert_eq!(again.get_length("chat").await.unwrap(), 1);
    // The checked layer is there: an empty key is refused before SQLite.
    assert_eq!(
        again.get("").await.unwrap_err().kind(),
        ErrorKind::InvalidKey
    );

    let one = storage_sqlite::open_in_memory().await.unwrap();
    let two = storage_sqlite::open_in_memory().await.unwrap();
    one.set("k", &json!(1)).await.unwrap();
    assert_eq!(
        two.get("k").await.unwrap(),
        None,
        "each in-memory database is private"
    );
}

#[test]
fn outside_a_runtime_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let result = futures::executor::block_on(storage_sqlite::open(dir.path().join("x.db")));
    let e = result.expect_err("no runtime: an error");
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("tokio runtime"), "{e}");
}
