//! `storage migrate` when it cannot finish: a target that runs out of memory part way, and a
//! source key it cannot copy. Each must say so plainly, never "identical".

mod support;
use support::{migrate, write_config};

use serde_json::json;
use std::sync::Arc;
use storage_core::Database;
use storage_manager::StorageManager;
use storage_servers::{Redis, find_redis_server, skip_or_fail};

const KEYS: usize = 20_000;

async fn database(config: &std::path::Path) -> Arc<dyn Database> {
    let m = StorageManager::from_file(config)
        .unwrap()
        .without_fallback();
    m.connect_database().await.unwrap().0
}

async fn raw(server: &Redis) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Regression: a target that died after 1,000 of 20,000 keys left only
/// `error: redis mset: connection error: ...`, and one out of memory printed a 39 KB line (an
/// entry per failed command). The report says the migration stopped, how much was copied, that
/// the source is unchanged and the target holds a partial copy, and how to finish: in one
/// bounded summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_out_of_memory_stops_with_a_bounded_report() {
    if find_redis_server().is_none() {
        return skip_or_fail(
            "a_target_out_of_memory_stops_with_a_bounded_report",
            "redis-server not found",
        );
    }
    let server = Redis::start(&Default::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = write_config(
        dir.path(),
        "sqlite.yml",
        "{ type: sqlite, path: data/src.db }",
    );
    let target = write_config(
        dir.path(),
        "redis.yml",
        &format!(
            "{{ type: redis, url: '{}', keyPrefix: 'dst:' }}",
            server.url()
        ),
    );
    let source = database(&sqlite).await;
    let entries: Vec<(String, serde_json::Value)> = (0..KEYS)
        .map(|i| {
            (
                format!("key:{i:06}"),
                json!({"i": i, "pad": "x".repeat(100)}),
            )
        })
        .collect();
    for chunk in entries.chunks(5000) {
        source.mset(chunk).await.unwrap();
    }
    // Room for a few thousand keys, then every write is refused (OOM). A batch of 1,000 is one
    // transaction, which the server holds whole (about 1 MB here) before it runs it.
    let mut conn = raw(&server).await;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .unwrap();
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(used + 3_000_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query_async(&mut conn)
        .await
        .unwrap();

    let o = migrate(&sqlite, &target, &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(2), "{stdout}{stderr}");
    assert!(!stdout.contains("identical"), "{stdout}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(line.len() < 1500, "{} bytes: {line}", line.len());
    assert!(
        line.contains("the migration stopped after copying ")
            && line.contains(&format!("values and 0 lists of the source's {KEYS} keys")),
        "{line}"
    );
    assert!(line.contains("The source is unchanged"), "{line}");
    assert!(
        line.contains("holds a partial copy") && line.contains("--overwrite"),
        "{line}"
    );
    let copied: usize = line["error: ".len()..]
        .split("copying ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line}"));
    assert!(copied > 0 && copied < KEYS, "{line}");
    // The source is whole.
    assert_eq!(source.keys(None).await.unwrap().len(), KEYS);
}

/// Regression: a source key that is not UTF-8 was skipped by the listing, and migrate reported
/// `verification: identical`, exit 0, without it. It is now an error naming the key, escaped,
/// before anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_key_that_is_not_utf8_is_named_not_left_behind() {
    if find_redis_server().is_none() {
        return skip_or_fail(
            "a_source_key_that_is_not_utf8_is_named_not_left_behind",
            "redis-server not found",
        );
    }
    let server = Redis::start(&Default::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = write_config(
        dir.path(),
        "redis.yml",
        &format!(
            "{{ type: redis, url: '{}', keyPrefix: 'src:' }}",
            server.url()
        ),
    );
    let target = write_config(
        dir.path(),
        "sqlite.yml",
        "{ type: sqlite, path: data/dst.db }",
    );
    let db = database(&source).await;
    db.set("fine", &json!(1)).await.unwrap();
    let mut conn = raw(&server).await;
    let _: () = redis::cmd("SET")
        .arg(&b"src:bad\xff\xfe\x1b[31m"[..])
        .arg("\"x\"")
        .query_async(&mut conn)
        .await
        .unwrap();

    let o = migrate(&source, &target, &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(2), "{stdout}{stderr}");
    assert!(!stdout.contains("identical"), "{stdout}");
    assert!(stderr.contains("not UTF-8"), "{stderr}");
    assert!(stderr.contains(r"src:bad\xff\xfe\x1b[31m"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
    assert!(database(&target).await.keys(None).await.unwrap().is_empty());
    // `keys` names it, and `clear` removes it with the rest of the namespace: what is left is
    // the namespace's change log, which watchers read (and which filed the clear), and its
    // key index (which the clear completed, empty).
    let e = db.keys(None).await.unwrap_err();
    assert!(e.to_string().contains(r"src:bad\xff\xfe"), "{e}");
    db.clear().await.unwrap();
    let mut left: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    left.sort();
    assert_eq!(
        left,
        [b"src:\0changes".to_vec(), b"src:\0keys".to_vec()],
        "clear left a key behind"
    );
}
