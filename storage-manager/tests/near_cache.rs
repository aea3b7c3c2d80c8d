//! `NearCache` across instances, on every built-in database (in-memory, SQLite, PostgreSQL,
//! Redis) against real servers the test starts: two instances, each with its own near cache
//! and its own connections; a write on one is seen on the other within the staleness bound
//! (measured: p99 ≤ 50 ms on loopback) and never stale once seen; a near cache whose change log
//! is unreachable stops serving past the bound; the fail-safe serves the last value, marked
//! stale, while the store fails; a cache entry with a TTL is never kept past it.

use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use storage_core::{Database, Store};
use storage_manager::{Freshness, NearCache, NearCacheOptions};

#[path = "support/backends.rs"]
mod backends;
use backends::{connect, servers};

mod flaky {
    //! The store wrapper: its own imports, so that the forwarding traits' methods do not
    //! shadow the store's in the tests.
    use serde_json::Value;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use storage_core::layer::{ForwardDatabase, ForwardStore};
    use storage_core::watch::ChangeWindow;
    use storage_core::{Database, Error, Result, Store, async_trait};

    /// A database whose change log and reads can be made to fail (a temporary error), as when its
    /// server is unreachable.
    #[derive(Debug)]
    pub struct Flaky {
        pub inner: Arc<dyn Database>,
        pub log_down: AtomicBool,
        pub reads_down: AtomicBool,
    }

    fn down() -> Error {
        Error::connection("the test cut the server off").temporary()
    }

    #[async_trait]
    impl ForwardStore for Flaky {
        fn inner_store(&self) -> &dyn Store {
            &*self.inner
        }
        async fn get(&self, key: &str) -> Result<Option<Value>> {
            if self.reads_down.load(Ordering::SeqCst) {
                return Err(down());
            }
            self.inner.get(key).await
        }
        async fn changes(&self, from: Option<u64>, max: usize) -> Result<ChangeWindow> {
            if self.log_down.load(Ordering::SeqCst) {
                return Err(down());
            }
            self.inner.changes(from, max).await
        }
    }

    #[async_trait]
    impl ForwardDatabase for Flaky {
        fn inner_database(&self) -> &dyn Database {
            &*self.inner
        }
    }
}
use flaky::Flaky;

/// Waits until the near cache has applied `n` changes from its store's log (so that a fill
/// made now is not dropped by a change of an earlier write arriving after it).
async fn until_applied<R: ?Sized>(near: &NearCache<R>, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while near.stats().invalidations < n {
        assert!(
            Instant::now() < deadline,
            "the changes never arrived: {:?}",
            near.stats()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn until_in_sync(near: &NearCache<dyn Database>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !near.in_sync() {
        assert!(
            Instant::now() < deadline,
            "the near cache never got in sync"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_on_one_instance_reaches_the_others_near_cache_within_the_bound() {
    let Some(servers) =
        servers("a_write_on_one_instance_reaches_the_others_near_cache_within_the_bound")
    else {
        return;
    };
    for (name, block) in &servers.blocks {
        let prefix = format!("near:{name}:");
        let (_, db_a) = connect(block, block, &prefix).await;
        let (_, db_b) = connect(block, block, &prefix).await;
        let a = NearCache::database(db_a, NearCacheOptions::default());
        let b = NearCache::database(db_b, NearCacheOptions::default());
        until_in_sync(&a).await;
        until_in_sync(&b).await;
        a.set("profile", &json!(0)).await.unwrap();
        let mut staleness = Vec::new();
        for round in 1..=100 {
            // B holds the current value in its level (read twice: a miss, then a hit).
            let deadline = Instant::now() + Duration::from_secs(5);
            while b.get("profile").await.unwrap() != Some(json!(round - 1)) {
                assert!(
                    Instant::now() < deadline,
                    "{name}: B never read {}",
                    round - 1
                );
            }
            b.get("profile").await.unwrap();
            let written = Instant::now();
            a.set("profile", &json!(round)).await.unwrap();
            let acknowledged = Instant::now();
            loop {
                let seen = b.get("profile").await.unwrap();
                if seen == Some(json!(round)) {
                    staleness.push(acknowledged.elapsed());
                    break;
                }
                assert_eq!(
                    seen,
                    Some(json!(round - 1)),
                    "{name}: B read something else"
                );
                assert!(
                    written.elapsed() < Duration::from_secs(5),
                    "{name}: B never saw {round}"
                );
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            // Once seen, never stale again.
            for _ in 0..5 {
                assert_eq!(
                    b.get("profile").await.unwrap(),
                    Some(json!(round)),
                    "{name}"
                );
            }
        }
        staleness.sort();
        let p99 = staleness[98];
        eprintln!(
            "near cache on {name}: write on A → seen on B: p50 {:?}, p99 {p99:?}",
            staleness[49]
        );
        assert!(
            p99 <= Duration::from_millis(50),
            "{name}: p99 staleness {p99:?}"
        );
        let stats = b.stats();
        assert!(
            stats.hits >= 100,
            "{name}: B served from its level: {stats:?}"
        );
        assert!(stats.invalidations >= 100, "{name}: {stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_its_change_log_a_near_cache_stops_serving_past_the_bound() {
    let Some(servers) = servers("without_its_change_log_a_near_cache_stops_serving_past_the_bound")
    else {
        return;
    };
    for (name, block) in &servers.blocks {
        let prefix = format!("bypass:{name}:");
        let (_, db) = connect(block, block, &prefix).await;
        let (_, writer) = connect(block, block, &prefix).await;
        let flaky = Arc::new(Flaky {
            inner: db,
            log_down: AtomicBool::new(false),
            reads_down: AtomicBool::new(false),
        });
        let options = NearCacheOptions {
            max_staleness: Duration::from_millis(100),
            fail_safe: Some(Duration::from_millis(800)),
            ..NearCacheOptions::default()
        };
        let near = NearCache::database(flaky.clone(), options);
        until_in_sync(&near).await;
        writer.set("k", &json!(1)).await.unwrap();
        until_applied(&near, 1).await;
        assert_eq!(near.get("k").await.unwrap(), Some(json!(1)));
        assert_eq!(near.get("k").await.unwrap(), Some(json!(1)));
        assert!(near.stats().hits >= 1, "{name}");

        // The log goes away; another instance writes. Past the bound, reads go to the store.
        flaky.log_down.store(true, Ordering::SeqCst);
        writer.set("k", &json!(2)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!near.in_sync(), "{name}");
        assert_eq!(
            near.get("k").await.unwrap(),
            Some(json!(2)),
            "{name}: served past the bound"
        );
        assert!(near.stats().bypassed >= 1, "{name}");

        // The log comes back: in sync again, and the write made meanwhile was applied.
        flaky.log_down.store(false, Ordering::SeqCst);
        until_in_sync(&near).await;
        assert_eq!(near.get("k").await.unwrap(), Some(json!(2)), "{name}");

        // Fail-safe: the store fails; the last value read is served, marked stale, while young.
        flaky.reads_down.store(true, Ordering::SeqCst);
        near.delete("other").await.ok();
        let served = near.get_with_freshness("k").await.unwrap();
        // Served from the level (in sync) or, once it is dropped, from the fail-safe.
        assert_eq!(
            served.as_ref().map(|(v, _)| v.clone()),
            Some(json!(2)),
            "{name}"
        );
        writer.delete("k").await.unwrap(); // drops it from the level through the log
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match near.get_with_freshness("k").await {
                Ok(Some((v, Freshness::Stale { age }))) => {
                    assert_eq!(v, json!(2), "{name}");
                    assert!(age <= Duration::from_millis(800), "{name}: {age:?}");
                    break;
                }
                Ok(other) => assert!(Instant::now() < deadline, "{name}: {other:?}"),
                Err(e) => panic!("{name}: the fail-safe did not serve: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(near.stats().stale_served >= 1, "{name}");
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert!(
            near.get("k").await.is_err(),
            "{name}: served past the fail-safe's age"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cache_entry_with_a_ttl_is_not_kept_past_it() {
    let Some(servers) = servers("a_cache_entry_with_a_ttl_is_not_kept_past_it") else {
        return;
    };
    for (name, block) in &servers.blocks {
        let (cache, _) = connect(block, block, &format!("ttl:{name}:")).await;
        let near = NearCache::cache(cache.clone(), NearCacheOptions::default());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !near.in_sync() {
            assert!(Instant::now() < deadline, "{name}: never in sync");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        cache
            .set("short", &json!("x"), Some(Duration::from_millis(300)))
            .await
            .unwrap();
        cache.set("long", &json!("y"), None).await.unwrap();
        until_applied(&near, 2).await;
        assert_eq!(near.get("short").await.unwrap(), Some(json!("x")));
        assert_eq!(near.get("long").await.unwrap(), Some(json!("y")));
        assert_eq!(near.get("long").await.unwrap(), Some(json!("y")));
        assert!(
            near.stats().hits >= 1,
            "{name}: a key without a TTL is kept"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            near.get("short").await.unwrap(),
            None,
            "{name}: kept past its TTL"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_cache_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "cache: {{ type: in-memory }}\ndatabase: {{ type: sqlite, path: '{}', nearCache: {{ maxEntries: 100, maxStalenessMillis: 150 }} }}\n",
        dir.path().join("near.db").display()
    );
    let source = storage_manager::config_file::from_yaml_str(&yaml, ".".as_ref()).unwrap();
    let options = storage_manager::StorageManager::from_source(&source)
        .unwrap()
        .config()
        .database
        .primary
        .common
        .near_cache
        .clone()
        .expect("the near cache's settings");
    assert_eq!(options.max_entries, 100);
    assert_eq!(options.max_staleness, Duration::from_millis(150));
    assert_eq!(options.fail_safe, None);
    // Two instances of the application: a write through one is read through the other.
    let a = storage_manager::StorageManager::from_source(&source).unwrap();
    let b = storage_manager::StorageManager::from_source(&source).unwrap();
    let (db_a, _) = a.connect_database().await.unwrap();
    let (db_b, _) = b.connect_database().await.unwrap();
    db_a.set("k", &json!(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(db_b.get("k").await.unwrap(), Some(json!(1)));
    db_a.set("k", &json!(2)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while db_b.get("k").await.unwrap() != Some(json!(2)) {
        assert!(Instant::now() < deadline, "B never read the new value");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    // Refused: a zero bound, a near cache on a fallback block, unknown fields.
    for (block, want) in [
        (
            "{ type: in-memory, nearCache: { ttlMillis: 0 } }",
            "storage.database.nearCache.ttlMillis: must be at least 1",
        ),
        (
            "{ type: in-memory, fallback: [ { type: in-memory, nearCache: {} } ] }",
            "a near cache is the role's",
        ),
        ("{ type: in-memory, nearCache: { size: 3 } }", "size"),
        (
            "{ type: in-memory, nearCache: { failSafeMaxMillis: 18446744073709551615 } }",
            "storage.database.nearCache.failSafeMaxMillis: 18446744073709551615 is more than a year",
        ),
        (
            "{ type: in-memory, nearCache: { maxBytes: -1 } }",
            "maxBytes",
        ),
        (
            "{ type: in-memory, nearCache: { ttlMillis: 'ten' } }",
            "ttlMillis",
        ),
        (
            "{ type: in-memory, nearCache: { eagerRefresh: 1.5 } }",
            "storage.database.nearCache.eagerRefresh: 1.5 is not a fraction of ttlMillis between 0 and 1",
        ),
        (
            "{ type: in-memory, nearCache: { eagerRefresh: 0 } }",
            "storage.database.nearCache.eagerRefresh: 0 is not a fraction",
        ),
    ] {
        let yaml = format!("cache: {{ type: in-memory }}\ndatabase: {block}\n");
        let e = storage_manager::config_file::from_yaml_str(&yaml, ".".as_ref())
            .and_then(|s| storage_manager::StorageManager::from_source(&s))
            .unwrap_err();
        assert!(e.to_string().contains(want), "{block}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_durations_built_in_code_are_capped_not_a_panic() {
    let store = storage_memory::MemoryStore::new();
    let near = NearCache::database(
        store.database("absurd:").unwrap(),
        NearCacheOptions {
            ttl: Duration::MAX,
            max_staleness: Duration::MAX,
            fail_safe: Some(Duration::MAX),
            ..NearCacheOptions::default()
        },
    );
    until_in_sync(&near).await;
    near.set("k", &json!(1)).await.unwrap();
    until_applied(&near, 1).await;
    assert_eq!(near.get("k").await.unwrap(), Some(json!(1)));
    assert_eq!(near.get("k").await.unwrap(), Some(json!(1)));
    assert!(near.stats().hits >= 1, "{:?}", near.stats());
}

/// Eager refresh: a hit on an entry past `refresh_after` reloads it in the background, so a
/// key read through the level's TTL never misses; without it the same reads miss once the
/// entry expires. From the config file: `eagerRefresh` is a fraction of `ttlMillis`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eager_refresh_reloads_a_hot_key_before_its_entry_expires() {
    let yaml = "cache: { type: in-memory }\ndatabase: { type: in-memory, store: eager, nearCache: { ttlMillis: 1000, eagerRefresh: 0.5 } }\n";
    let source = storage_manager::config_file::from_yaml_str(yaml, ".".as_ref()).unwrap();
    let options = storage_manager::StorageManager::from_source(&source)
        .unwrap()
        .config()
        .database
        .primary
        .common
        .near_cache
        .clone()
        .expect("the near cache's settings");
    assert_eq!(options.refresh_after, Some(Duration::from_millis(500)));

    for eager in [true, false] {
        let store = storage_memory::MemoryStore::new();
        let options = NearCacheOptions {
            ttl: Duration::from_millis(1000),
            refresh_after: eager.then_some(Duration::from_millis(500)),
            ..NearCacheOptions::default()
        };
        let near = NearCache::database(store.database("eager:").unwrap(), options);
        until_in_sync(&near).await;
        near.set("hot", &json!(1)).await.unwrap();
        until_applied(&near, 1).await;
        let filled = Instant::now();
        assert_eq!(near.get("hot").await.unwrap(), Some(json!(1))); // the fill
        assert_eq!(near.stats().misses, 1);
        // Halfway through the entry's life, and a little: a hit that (eagerly) reloads.
        tokio::time::sleep_until((filled + Duration::from_millis(600)).into()).await;
        assert_eq!(near.get("hot").await.unwrap(), Some(json!(1)));
        let deadline = Instant::now() + Duration::from_secs(5);
        while eager && near.stats().refreshes < 1 {
            assert!(Instant::now() < deadline, "no refresh: {:?}", near.stats());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // the reload's fill
        // Past the first fill's TTL: the refreshed entry still serves; without eager refresh
        // the entry expired and the read misses.
        tokio::time::sleep_until((filled + Duration::from_millis(1300)).into()).await;
        assert_eq!(near.get("hot").await.unwrap(), Some(json!(1)));
        let stats = near.stats();
        if eager {
            // This read may itself start a second refresh (the reloaded entry is past
            // `refresh_after` again by now), counted when its task runs: at least one.
            assert_eq!(stats.misses, 1, "{stats:?}");
            assert!(stats.refreshes >= 1, "{stats:?}");
        } else {
            assert_eq!((stats.misses, stats.refreshes), (2, 0), "{stats:?}");
        }
    }
}
