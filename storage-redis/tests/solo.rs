//! The solo connection against a real, private server: one task's operations all run on one
//! connection (seen by `MONITOR`), the same one after concurrent tasks have run, a command cut
//! off by the operation timeout leaves no reply behind for the next one (which fails if the
//! solo connection were reused or not used), the database index is selected, and polling can
//! be turned off.

use futures::StreamExt;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;
use storage_core::ErrorKind;

mod common;
use common::{open, open_cache, private};

/// The client address of every command naming a key that starts with `prefix` the server
/// runs while `work` runs (from `MONITOR`: `<time> [<db> <addr>] "<COMMAND>" "<arg>" ...`;
/// what a script runs is listed as from `lua` and left out: the script's call is counted).
async fn set_senders<F: Future<Output = ()>>(url: &str, prefix: &str, work: F) -> Vec<String> {
    let client = redis::Client::open(url).unwrap();
    let mut lines = client
        .get_async_monitor()
        .await
        .unwrap()
        .into_on_message::<String>();
    work.await;
    // A marker after the work: every line before it belongs to the work.
    let mut marker = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("ECHO")
        .arg("solo-test-end")
        .query_async(&mut marker)
        .await
        .unwrap();
    let quoted = format!(" \"{prefix}");
    let mut senders = Vec::new();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(5), lines.next())
        .await
        .expect("the monitor goes on")
    {
        if line.contains("solo-test-end") {
            break;
        }
        if line.contains(&quoted) {
            let addr = line
                .split_once(" [")
                .and_then(|(_, rest)| rest.split_once(']'))
                .and_then(|(inside, _)| inside.split_whitespace().nth(1))
                .expect("a monitor line names its client");
            if addr != "lua" {
                senders.push(addr.to_string());
            }
        }
    }
    senders
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_task_runs_on_one_connection_before_and_after_concurrent_tasks() {
    let Some(server) = private("one_task_runs_on_one_connection") else {
        return;
    };
    let url = server.url();
    let db = open_cache(&url, "maxConnections: 8").await;
    let alone = set_senders(&url, "alone:", async {
        for i in 0..50 {
            db.set(&format!("alone:{i}"), &json!(i), None)
                .await
                .unwrap();
        }
    })
    .await;
    assert!(alone.len() >= 50, "every set was seen: {}", alone.len());
    let one: BTreeSet<_> = alone.iter().collect();
    assert_eq!(one.len(), 1, "one task used one connection: {one:?}");

    let together = set_senders(&url, "together:", async {
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let db = db.clone();
                tokio::spawn(async move {
                    for i in 0..40 {
                        db.set(&format!("together:{t}:{i}"), &json!(i), None)
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await;
    assert!(
        together.len() >= 16 * 40,
        "every set was seen: {}",
        together.len()
    );
    // With others in flight an operation takes the pool; alone again, the solo connection.
    let after = set_senders(&url, "after:", async {
        for i in 0..20 {
            db.set(&format!("after:{i}"), &json!(i), None)
                .await
                .unwrap();
        }
    })
    .await;
    let again: BTreeSet<_> = after.iter().collect();
    assert_eq!(again, one, "one task is back on the solo connection");
    for t in 0..16 {
        for i in 0..40 {
            assert_eq!(
                db.get(&format!("together:{t}:{i}")).await.unwrap(),
                Some(json!(i))
            );
        }
    }
}

/// A command the operation timeout cut off still has its reply coming; the connection it was
/// sent on is not used again, so the next operation reads its own reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_cut_off_by_the_timeout_leaves_no_reply_for_the_next() {
    let Some(server) = private("a_command_cut_off_by_the_timeout") else {
        return;
    };
    let url = server.url();
    let db = open(&url, "operationTimeoutMillis: 200").await;
    db.set("kept", &json!("mine")).await.unwrap();
    let mut admin = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // Writes wait for 600 ms; reads do not.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(600)
        .arg("WRITE")
        .query_async(&mut admin)
        .await
        .unwrap();
    let e = db.set("late", &json!("applied later")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    // The pause ends and the set's reply arrives on the connection it was sent on.
    tokio::time::sleep(Duration::from_millis(700)).await;
    for _ in 0..5 {
        assert_eq!(db.get("kept").await.unwrap(), Some(json!("mine")));
    }
    assert_eq!(db.get("late").await.unwrap(), Some(json!("applied later")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_index_is_selected_and_polling_can_be_off() {
    let Some(server) = private("the_database_index_is_selected") else {
        return;
    };
    let url = server.url();
    let db = open(&format!("{url}/3"), "options: { replySpinMicros: 0 }").await;
    db.set("in-three", &json!(3)).await.unwrap();
    assert_eq!(db.get("in-three").await.unwrap(), Some(json!(3)));
    let mut raw = redis::Client::open(format!("{url}/3").as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let found: i64 = redis::cmd("EXISTS")
        .arg("in-three")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(found, 1, "the key is in database 3");
    let mut zero = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let found: i64 = redis::cmd("EXISTS")
        .arg("in-three")
        .query_async(&mut zero)
        .await
        .unwrap();
    assert_eq!(found, 0, "not in database 0");
}
