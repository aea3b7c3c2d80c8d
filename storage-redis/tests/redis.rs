//! Redis against real, private servers: the glob matcher against SCAN MATCH, a differential
//! run against the memory backend, a wrong password, namespaces with glob characters, foreign
//! data. Restarts and other faults are the conformance kit's fault cases.

use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage_core::raw::glob_match;
use storage_core::{Database, ErrorKind};
use storage_servers::{Redis, find_redis_server, skip_or_fail};

mod common;
use common::{open, private, raw};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glob_matcher_agrees_with_scan_match() {
    let Some(server) = private("glob_matcher_agrees_with_scan_match") else {
        return;
    };
    let mut conn = raw(&server.url()).await;
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let key_chars = [
        "a", "b", "c", "é", "ü", "🦀", "-", "]", "[", "^", "\\", "?", "*", "x", "A",
    ];
    let mut keys = BTreeSet::new();
    while keys.len() < 400 {
        let len = 1 + rng.next() % 5;
        let k: String = (0..len).map(|_| rng.pick(&key_chars)).collect();
        keys.insert(k);
    }
    let mut pipe = redis::pipe();
    for k in &keys {
        pipe.cmd("SET").arg(k).arg("1").ignore();
    }
    pipe.query_async::<()>(&mut conn).await.unwrap();
    let tokens = [
        "a", "b", "é", "🦀", "*", "?", "[", "]", "^", "-", "\\", "[a-c]", "[^a]", "[c-a]", "[é]",
        "x", "\\*",
    ];
    for _ in 0..3000 {
        let len = 1 + rng.next() % 6;
        let pattern: String = (0..len).map(|_| rng.pick(&tokens)).collect();
        let mut cursor = 0u64;
        let mut server_says = BTreeSet::new();
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .unwrap();
            server_says.extend(batch.into_iter().map(|b| String::from_utf8(b).unwrap()));
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let we_say: BTreeSet<String> = keys
            .iter()
            .filter(|k| glob_match(&pattern, k))
            .cloned()
            .collect();
        assert_eq!(we_say, server_says, "pattern {pattern:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_operations_match_the_memory_backend() {
    let Some(server) = private("random_operations_match_the_memory_backend") else {
        return;
    };
    let redis = open(&server.url(), "keyPrefix: 'diff:'").await;
    let memory = storage_memory::MemoryStore::new()
        .database("diff:")
        .unwrap();
    let mut rng = Rng(0xfeed_beef_0bad_cafe);
    let keys = ["k1", "k2", "k3", "list", "x*", "é"];
    let values = [
        json!(null),
        json!(1),
        json!(-0.0),
        json!("s\u{0}"),
        json!([1, {"a": 2}]),
        json!(u64::MAX),
        json!(1e18),
    ];
    fn show<T: std::fmt::Debug>(r: &storage_core::Result<T>) -> String {
        match r {
            Ok(v) => format!("Ok({v:?})"),
            Err(e) => format!("Err({:?})", e.kind()),
        }
    }
    for step in 0..3000 {
        let k = rng.pick(&keys);
        let v = values[(rng.next() % values.len() as u64) as usize].clone();
        let (a, b) = match rng.next() % 10 {
            0 => (
                show(&redis.set(k, &v).await),
                show(&memory.set(k, &v).await),
            ),
            1 => (show(&redis.get(k).await), show(&memory.get(k).await)),
            2 => (show(&redis.delete(k).await), show(&memory.delete(k).await)),
            3 | 4 => (
                show(&redis.append(k, &v).await),
                show(&memory.append(k, &v).await),
            ),
            5 => {
                let (s, e) = ((rng.next() % 9) as i64 - 4, (rng.next() % 9) as i64 - 4);
                (
                    show(&redis.get_range(k, s, e).await),
                    show(&memory.get_range(k, s, e).await),
                )
            }
            6 => (
                show(&redis.get_length(k).await),
                show(&memory.get_length(k).await),
            ),
            7 => {
                let ks: Vec<String> = (0..3).map(|_| rng.pick(&keys).to_string()).collect();
                (show(&redis.mget(&ks).await), show(&memory.mget(&ks).await))
            }
            8 => (show(&redis.kind(k).await), show(&memory.kind(k).await)),
            _ => {
                let mut a = redis.keys(Some("k*")).await.unwrap();
                let mut b = memory.keys(Some("k*")).await.unwrap();
                a.sort();
                b.sort();
                (format!("{a:?}"), format!("{b:?}"))
            }
        };
        // Floats compare by value here: both backends already pass the bit-exact kit cases.
        assert_eq!(a, b, "step {step} on {k:?}");
    }
}

/// Regression: a wrong password was a transient connection error, retried and then a reason to
/// fall back. It is a configuration error at once (the manager's test checks it does not walk
/// past it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_a_configuration_error_at_once() {
    if find_redis_server().is_none() {
        return skip_or_fail(
            "wrong_password_is_a_configuration_error",
            "redis-server not found",
        );
    }
    let server = Redis::start(&storage_servers::RedisOptions {
        password: Some("right-pw".into()),
        ..Default::default()
    })
    .unwrap();
    let port = server.port();
    let yaml = format!(
        "database: {{ type: redis, host: 127.0.0.1, port: {port}, password: wrong-pw-9, maxRetries: 3, retryDelayMillis: 500 }}\ncache: {{ type: in-memory }}"
    );
    let started = Instant::now();
    let m = storage_manager_free_open(&yaml).await;
    let e = m.expect_err("a wrong password must not connect");
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert!(e.is_authentication(), "{e}");
    assert!(!e.to_string().contains("wrong-pw-9"), "{e}");
    // Not retried: three retries would take over a second.
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    // The right password works.
    let ok = format!("redis://:right-pw@127.0.0.1:{port}");
    open(&ok, "").await.ping().await.unwrap();
}

/// Opens the database block directly through the registry (what the manager's walk calls).
async fn storage_manager_free_open(yaml: &str) -> storage_core::Result<Arc<dyn Database>> {
    let registry = common::registry();
    let config =
        storage_manager::config_file::from_yaml_str(yaml, ".".as_ref())?.resolve(&registry)?;
    registry.open_database(&config.database.primary).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_with_glob_characters_stay_apart() {
    let Some(server) = private("namespaces_with_glob_characters_stay_apart") else {
        return;
    };
    let globby = open(&server.url(), "keyPrefix: 'a*[b]:'").await;
    let plain = open(&server.url(), "keyPrefix: 'aX[b]:'").await;
    let other = open(&server.url(), "keyPrefix: 'ab]:'").await;
    for db in [&globby, &plain, &other] {
        for i in 0..700 {
            db.set(&format!("k{i}"), &json!(i)).await.unwrap();
        }
        db.append("list", &json!(1)).await.unwrap();
    }
    assert_eq!(globby.keys(None).await.unwrap().len(), 701);
    assert_eq!(globby.keys(Some("k1?")).await.unwrap().len(), 10);
    globby.clear().await.unwrap();
    assert!(globby.keys(None).await.unwrap().is_empty());
    assert_eq!(plain.keys(None).await.unwrap().len(), 701);
    assert_eq!(other.keys(None).await.unwrap().len(), 701);
    assert_eq!(plain.get_length("list").await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_data_gives_clear_errors() {
    let Some(server) = private("foreign_data_gives_clear_errors") else {
        return;
    };
    let mut conn = raw(&server.url()).await;
    redis::cmd("SET")
        .arg("f:text")
        .arg("hello, not json")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    redis::cmd("HSET")
        .arg("f:hash")
        .arg("a")
        .arg("1")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    redis::cmd("RPUSH")
        .arg("f:list")
        .arg("{\"ok\":1}")
        .arg("{broken")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let db = open(&server.url(), "keyPrefix: 'f:'").await;
    let e = db.get("text").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Other);
    assert!(e.to_string().contains("not JSON"), "{e}");
    let e = db.kind("hash").await.unwrap_err();
    assert!(e.to_string().contains("hash"), "{e}");
    let e = db.get_range("list", 0, -1).await.unwrap_err();
    assert!(e.to_string().contains("not JSON"), "{e}");
    assert_eq!(
        db.get_range("list", 0, 0).await.unwrap(),
        vec![json!({"ok": 1})]
    );
    let e = db.mget(&["text".into()]).await.unwrap_err();
    assert!(e.to_string().contains("not JSON"), "{e}");
}

/// Redis reclaims expired keys itself: 10,000 keys with a 50 ms TTL leave the server without
/// anyone reading them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_keys_are_reclaimed_without_reads() {
    let Some(server) = private("expired_keys_are_reclaimed_without_reads") else {
        return;
    };
    let yaml = format!(
        "cache: {{ type: redis, url: '{}' }}\ndatabase: {{ type: in-memory }}",
        server.url()
    );
    let registry = common::registry();
    let config = storage_manager::config_file::from_yaml_str(&yaml, ".".as_ref())
        .unwrap()
        .resolve(&registry)
        .unwrap();
    let cache = registry.open_cache(&config.cache.primary).await.unwrap();
    let ttl = Some(Duration::from_millis(50));
    let batch: Vec<storage_core::CacheEntry> = (0..10_000)
        .map(|i| storage_core::CacheEntry::new(format!("k{i}"), json!(i), ttl))
        .collect();
    cache.mset(&batch).await.unwrap();
    let mut conn = raw(&server.url()).await;
    let started = Instant::now();
    loop {
        let n: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
        // The namespace's change log stays: it is what watchers read.
        let log: u64 = redis::cmd("EXISTS")
            .arg("\0changes")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(log, 1, "the mset was filed in the change log");
        if n == log {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{n} keys still stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A write the server refuses as it queues it in a transaction (here an ACL without `SET`)
/// aborts the transaction; the error says why (permission denied, not applied), on the solo
/// connection and on the pool's, for a single write and for a batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_transaction_names_its_cause() {
    let Some(server) = private("a_refused_transaction_names_its_cause") else {
        return;
    };
    let mut admin = raw(&server.url()).await;
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "noset", "on", ">pw", "~t:*", "+@all", "-set"])
        .query_async(&mut admin)
        .await
        .unwrap();
    let url = server.url().replace("redis://", "redis://noset:pw@");
    for solo in [true, false] {
        let db = open(
            &url,
            &format!("keyPrefix: 't:', options: {{ soloConnection: {solo} }}"),
        )
        .await;
        let single = db.set("k", &serde_json::json!(1)).await.unwrap_err();
        let batch = db
            .mset(&[("a".into(), serde_json::json!(1))])
            .await
            .unwrap_err();
        for e in [single, batch] {
            assert_eq!(e.kind(), storage_core::ErrorKind::PermissionDenied, "{e}");
            assert_eq!(e.outcome(), storage_core::Outcome::NotApplied, "{e}");
            assert!(e.to_string().contains("'set'"), "{e}");
        }
        assert_eq!(db.get("k").await.unwrap(), None);
    }
}
