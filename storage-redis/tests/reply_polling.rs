//! `storage_redis::reply_polling` against a real, private server: operations alone on the
//! backend are counted once each, a reply the server holds back past the polling window is
//! counted as slept for, and with polling off nothing is counted. Its own test binary, with
//! one test: the counts are process-wide, and another test running beside it would move them.

use serde_json::json;
use std::time::Duration;
use storage_redis::reply_polling;

mod common;
use common::{open, private, raw};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_are_counted_as_polled_or_slept() {
    let Some(server) = private("replies_are_counted_as_polled_or_slept") else {
        return;
    };
    let url = server.url();
    // The longest window: on a loaded machine a loopback reply still comes within it.
    let db = open(&url, "options: { replySpinMicros: 1000 }").await;
    db.set("k", &json!("v")).await.unwrap();

    let before = reply_polling();
    for _ in 0..200 {
        assert_eq!(db.get("k").await.unwrap(), Some(json!("v")));
    }
    let after = reply_polling();
    let counted = (after.polled - before.polled) + (after.slept - before.slept);
    assert!(
        counted >= 200,
        "every get alone is counted: {before:?} → {after:?}"
    );
    assert!(
        after.polled > before.polled,
        "loopback replies come while polling: {after:?}"
    );

    // Writes held by the server for 100 ms: the set polls out and sleeps for its reply.
    let mut admin = raw(&url).await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(100)
        .arg("WRITE")
        .query_async(&mut admin)
        .await
        .unwrap();
    let before = reply_polling();
    db.set("held", &json!(1)).await.unwrap();
    let after = reply_polling();
    assert!(
        after.slept > before.slept,
        "a held reply is slept for: {before:?} → {after:?}"
    );
    assert_eq!(db.get("held").await.unwrap(), Some(json!(1)));

    // Polling off: an operation alone takes the solo connection but never polls, and is not
    // counted.
    let quiet = open(&url, "keyPrefix: 'q:', options: { replySpinMicros: 0 }").await;
    quiet.set("k", &json!(2)).await.unwrap();
    let before = reply_polling();
    for _ in 0..50 {
        assert_eq!(quiet.get("k").await.unwrap(), Some(json!(2)));
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        reply_polling(),
        before,
        "nothing is counted without polling"
    );
}
