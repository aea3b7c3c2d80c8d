//! The database role's key index on real, private servers: a listing by prefix and a `clear`
//! read the index (the server's own count of `SCAN` calls stays put) among many keys of other
//! namespaces; every kind of write keeps the index equal to what `SCAN` finds; a key the index
//! holds but the server does not is dropped by the next listing; plain writes start the index
//! and a listing completes it from `SCAN`; a cache keeps none.

use serde_json::json;
use std::collections::BTreeSet;
use storage_core::{CacheEntry, Condition};

mod common;
use common::{open, open_cache, private, raw};

/// How many `SCAN` commands the server has run (`INFO commandstats`).
async fn scans(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_scan:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// The namespace's caller keys as the server holds them, by `SCAN` (not through the backend).
async fn truth(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap();
        for full in batch {
            let key = String::from_utf8(full[prefix.len()..].to_vec()).unwrap();
            if !key.starts_with('\0') {
                found.insert(key);
            }
        }
        if next == 0 {
            return found;
        }
        cursor = next;
    }
}

async fn members(conn: &mut redis::aio::MultiplexedConnection, index: &str) -> BTreeSet<String> {
    let all: Vec<String> = redis::cmd("ZRANGE")
        .arg(index)
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await
        .unwrap();
    all.into_iter().filter(|m| !m.starts_with('\0')).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_and_clearing_read_the_index_not_the_server() {
    let Some(server) = private("listing_and_clearing_read_the_index_not_the_server") else {
        return;
    };
    let mut conn = raw(&server.url()).await;
    // 20,000 keys of another namespace, which a `SCAN` of the server would walk.
    let mut pipe = redis::pipe();
    for i in 0..20_000 {
        pipe.cmd("SET").arg(format!("other:{i}")).arg("1").ignore();
    }
    pipe.query_async::<()>(&mut conn).await.unwrap();
    let db = open(&server.url(), "keyPrefix: 'app:'").await;
    let entries: Vec<(String, serde_json::Value)> = (0..300)
        .map(|i| (format!("user:{i:03}"), json!(i)))
        .chain((0..50).map(|i| (format!("match:{i}"), json!(i))))
        .collect();
    db.mset(&entries).await.unwrap();

    // The first listing builds the index: one walk of the server.
    let before = scans(&mut conn).await;
    let mut found = db.keys(Some("match:*")).await.unwrap();
    found.sort();
    let mut expected: Vec<String> = (0..50).map(|i| format!("match:{i}")).collect();
    expected.sort();
    assert_eq!(found, expected);
    assert!(
        scans(&mut conn).await > before,
        "the build walks the server"
    );

    // Later listings and a clear read the index: no `SCAN` at all.
    let built = scans(&mut conn).await;
    db.set("match:new", &json!(1)).await.unwrap();
    assert_eq!(db.keys(Some("match:*")).await.unwrap().len(), 51);
    assert_eq!(db.keys(Some("user:01?")).await.unwrap().len(), 10);
    assert_eq!(db.keys(Some("user:*7")).await.unwrap().len(), 30);
    assert_eq!(db.keys(None).await.unwrap().len(), 351);
    assert_eq!(db.keys(Some("user:042")).await.unwrap(), ["user:042"]);
    // A batch larger than one `ZADD` of the index's step (500 keys) is indexed whole, and a
    // `clear` of more than one page (500) removes every key.
    let bulk: Vec<(String, serde_json::Value)> =
        (0..1234).map(|i| (format!("bulk:{i}"), json!(i))).collect();
    db.mset(&bulk).await.unwrap();
    assert_eq!(db.keys(Some("bulk:*")).await.unwrap().len(), 1234);
    assert_eq!(db.keys(None).await.unwrap().len(), 351 + 1234);
    db.clear().await.unwrap();
    assert_eq!(
        scans(&mut conn).await,
        built,
        "listing or clearing walked the server"
    );
    assert!(db.keys(None).await.unwrap().is_empty());
    assert!(truth(&mut conn, "app:").await.is_empty(), "clear left keys");
    let other: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    // The other namespace, and this one's change log and (empty) index.
    assert_eq!(other, 20_002);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_keeps_the_index_equal_to_the_namespace() {
    let Some(server) = private("every_write_keeps_the_index_equal_to_the_namespace") else {
        return;
    };
    let mut conn = raw(&server.url()).await;
    let db = open(&server.url(), "keyPrefix: 'w:'").await;
    db.set("before", &json!(1)).await.unwrap();
    assert_eq!(db.keys(None).await.unwrap(), ["before"]);
    let index = "w:\0keys";
    let writes: Vec<(&str, storage_core::Result<()>)> = vec![
        ("set", db.set("a", &json!(1)).await),
        (
            "mset",
            db.mset(&[("b".into(), json!(2)), ("c".into(), json!(3))])
                .await,
        ),
        (
            "set_if absent",
            db.set_if("d", &json!(4), &Condition::Absent)
                .await
                .map(drop),
        ),
        ("delete", db.delete("a").await.map(drop)),
        ("append", db.append("list", &json!(1)).await),
        (
            "append_many",
            db.append_many("list2", &[json!(1), json!(2)]).await,
        ),
        ("trim to nothing", db.trim("list2", 5, 9).await),
    ];
    for (what, outcome) in writes {
        outcome.unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    let version = db.get_versioned("b").await.unwrap().unwrap().1;
    db.set_if("b", &json!(5), &Condition::Version(version))
        .await
        .unwrap();
    let version = db.get_versioned("c").await.unwrap().unwrap().1;
    assert!(
        db.delete_if("c", &Condition::Version(version))
            .await
            .unwrap()
    );
    assert!(db.delete("list").await.unwrap());
    let expected: BTreeSet<String> = ["before", "b", "d"].map(String::from).into();
    assert_eq!(truth(&mut conn, "w:").await, expected);
    assert_eq!(members(&mut conn, index).await, expected);
    let listed: BTreeSet<String> = db.keys(None).await.unwrap().into_iter().collect();
    assert_eq!(listed, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_drops_what_the_server_no_longer_holds() {
    let Some(server) = private("a_listing_drops_what_the_server_no_longer_holds") else {
        return;
    };
    let mut conn = raw(&server.url()).await;
    let db = open(&server.url(), "keyPrefix: 's:'").await;
    db.set("kept", &json!(1)).await.unwrap();
    db.set("gone", &json!(1)).await.unwrap();
    assert_eq!(db.keys(None).await.unwrap().len(), 2);
    // Removed behind the backend's back (as a key deleted while the index was being built).
    let _: u64 = redis::cmd("DEL")
        .arg("s:gone")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(db.keys(Some("g*")).await.unwrap(), Vec::<String>::new());
    let score: Option<String> = redis::cmd("ZSCORE")
        .arg("s:\0keys")
        .arg("gone")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        score, None,
        "the listing dropped the missing key from the index"
    );
    assert_eq!(db.keys(None).await.unwrap(), ["kept"]);

    // A key written by another client after the build is not listed; deleting the index
    // makes the next listing build it again, with the key.
    let _: () = redis::cmd("SET")
        .arg("s:foreign")
        .arg("1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(db.keys(None).await.unwrap(), ["kept"]);
    let _: u64 = redis::cmd("DEL")
        .arg("s:\0keys")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut listed = db.keys(None).await.unwrap();
    listed.sort();
    assert_eq!(listed, ["foreign", "kept"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_writes_start_the_index_a_listing_completes_it_and_a_cache_keeps_none() {
    let Some(server) =
        private("plain_writes_start_the_index_a_listing_completes_it_and_a_cache_keeps_none")
    else {
        return;
    };
    let mut conn = raw(&server.url()).await;
    let db = open(&server.url(), "keyPrefix: 'b:'").await;
    let exists = async |conn: &mut redis::aio::MultiplexedConnection, member: &str| -> bool {
        let score: Option<f64> = redis::cmd("ZSCORE")
            .arg("b:\0keys")
            .arg(member)
            .query_async(conn)
            .await
            .unwrap();
        score.is_some()
    };
    // A scripted write keeps an index only where one exists: none yet.
    db.append("early", &json!(1)).await.unwrap();
    let found: u64 = redis::cmd("EXISTS")
        .arg("b:\0keys")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(found, 0, "a scripted write made an index");
    // A plain write adds its key whether or not the index exists: the index starts, not
    // complete (the early key is not in it).
    db.set("first", &json!(1)).await.unwrap();
    db.mset(&[("batch".into(), json!(1))]).await.unwrap();
    db.append("list", &json!(1)).await.unwrap();
    let expected: BTreeSet<String> = ["first", "batch", "list"].map(String::from).into();
    assert_eq!(members(&mut conn, "b:\0keys").await, expected);
    assert!(
        !exists(&mut conn, "\0complete").await,
        "complete before any walk"
    );
    // The first listing completes it from `SCAN`: the early key is listed, and kept.
    let mut listed = db.keys(None).await.unwrap();
    listed.sort();
    assert_eq!(listed, ["batch", "early", "first", "list"]);
    assert!(exists(&mut conn, "\0complete").await);
    assert!(
        exists(&mut conn, "early").await,
        "the walk added the early key"
    );

    // A clear of a namespace whose index plain writes started but no listing completed: the
    // keys and what the index held go, and the index is complete and empty.
    let other = open(&server.url(), "keyPrefix: 'e:'").await;
    other.set("gone", &json!(1)).await.unwrap();
    assert_eq!(members(&mut conn, "e:\0keys").await.len(), 1);
    other.clear().await.unwrap();
    assert!(
        members(&mut conn, "e:\0keys").await.is_empty(),
        "the clear left members"
    );
    assert!(
        truth(&mut conn, "e:").await.is_empty(),
        "the clear left keys"
    );
    assert_eq!(other.keys(None).await.unwrap(), Vec::<String>::new());

    // A cache lists and clears by `SCAN`, and never builds an index.
    let cache = open_cache(&server.url(), "keyPrefix: 'c:'").await;
    cache
        .mset(&[CacheEntry::new("x".to_string(), json!(1), None)])
        .await
        .unwrap();
    assert_eq!(cache.keys(None).await.unwrap(), ["x"]);
    cache.clear().await.unwrap();
    let exists: u64 = redis::cmd("EXISTS")
        .arg("c:\0keys")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 0, "a cache built an index");
}
