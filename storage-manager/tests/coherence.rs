//! `CacheAside` never warms a stale value, and concurrent misses share their loads, on every
//! pair of a built-in cache (in-memory, SQLite, PostgreSQL, Redis) and a built-in database
//! (the same four), against real servers the test starts.
//!
//! The race is made deterministic: the reader's database is wrapped so that its `get` reads,
//! then waits at a gate before answering (a slow reader). While it waits, a writer on another
//! instance sets, deletes or batch-writes the key; then the gate opens and the reader tries to
//! warm the cache with what it read. Afterwards every instance must read the writer's value.

use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use storage_core::layer::{ForwardDatabase, ForwardStore};
use storage_core::{Cache, Database, Result, Store, async_trait};
use storage_manager::{CacheAside, CacheAsideOptions};

#[path = "support/backends.rs"]
mod backends;
use backends::{connect, servers};
use tokio::sync::{Notify, Semaphore};

/// A database whose `get` reads, announces it has read, then waits at the gate; and counts
/// its reads.
#[derive(Debug)]
struct SlowReads {
    inner: Arc<dyn Database>,
    gate: Arc<Semaphore>,
    read: Arc<Notify>,
    reads: Arc<AtomicUsize>,
}

#[async_trait]
impl ForwardStore for SlowReads {
    fn inner_store(&self) -> &dyn Store {
        &*self.inner
    }
    async fn get(&self, key: &str) -> Result<Option<Value>> {
        let value = self.inner.get(key).await;
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.read.notify_one();
        let _pass = self.gate.acquire().await;
        value
    }
}

#[async_trait]
impl ForwardDatabase for SlowReads {
    fn inner_database(&self) -> &dyn Database {
        &*self.inner
    }
}

/// What the writer does while the reader waits.
#[derive(Debug, Clone, Copy)]
enum Write {
    Set,
    SetThenDelete,
    Delete,
    Batch,
}

async fn race(
    cache: Arc<dyn Cache>,
    db: Arc<dyn Database>,
    write: Write,
) -> std::result::Result<(), String> {
    let key = "profile";
    db.set(key, &json!("v1")).await.unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let read = Arc::new(Notify::new());
    let slow = Arc::new(SlowReads {
        inner: db.clone(),
        gate: gate.clone(),
        read: read.clone(),
        reads: Arc::default(),
    });
    let options = CacheAsideOptions {
        invalidation_hold: Duration::from_secs(5),
        ..CacheAsideOptions::default()
    };
    let reader = Arc::new(CacheAside::new(cache.clone(), slow, options.clone()));
    let writer = CacheAside::new(cache.clone(), db.clone(), options);
    let slow_read = {
        let reader = reader.clone();
        tokio::spawn(async move { reader.get(key).await })
    };
    read.notified().await; // the reader has v1 and waits
    let want = match write {
        Write::Set => {
            writer.set(key, &json!("v2")).await.unwrap();
            Some(json!("v2"))
        }
        Write::SetThenDelete => {
            writer.set(key, &json!("v2")).await.unwrap();
            writer.delete(key).await.unwrap();
            None
        }
        Write::Delete => {
            writer.delete(key).await.unwrap();
            None
        }
        Write::Batch => {
            Database::mset(&writer, &[(key.to_string(), json!("v3"))])
                .await
                .unwrap();
            Some(json!("v3"))
        }
    };
    gate.add_permits(1);
    let old = slow_read.await.unwrap().unwrap();
    if old != Some(json!("v1")) {
        return Err(format!("the slow reader read {old:?}"));
    }
    // The reader's warm has run (its get returned after it). Every instance reads the write.
    gate.add_permits(100);
    let fresh = CacheAside::new(cache.clone(), db.clone(), CacheAsideOptions::default());
    for (who, got) in [
        ("the writer", writer.get(key).await.unwrap()),
        ("the reader", reader.get(key).await.unwrap()),
        ("a new instance", fresh.get(key).await.unwrap()),
    ] {
        if got != want {
            return Err(format!("{who} read {got:?} after {write:?}, want {want:?}"));
        }
    }
    if cache.get(key).await.unwrap() == Some(json!("v1")) {
        return Err(format!("the cache holds the stale v1 after {write:?}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_stale_warm_on_any_cache_and_database_pair() {
    let Some(servers) = servers("no_stale_warm_on_any_cache_and_database_pair") else {
        return;
    };
    let mut failures = Vec::new();
    let mut case = 0;
    for (cache_name, cache_block) in &servers.blocks {
        for (db_name, db_block) in &servers.blocks {
            for write in [
                Write::Set,
                Write::SetThenDelete,
                Write::Delete,
                Write::Batch,
            ] {
                case += 1;
                let prefix = format!("stale{case}:");
                let (cache, db) = connect(cache_block, db_block, &prefix).await;
                if let Err(e) = race(cache, db, write).await {
                    failures.push(format!("{cache_name} cache × {db_name} database: {e}"));
                }
            }
        }
    }
    assert_eq!(case, 64, "4 caches × 4 databases × 4 writes");
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_misses_read_the_database_once() {
    let Some(servers) = servers("a_thousand_concurrent_misses_read_the_database_once") else {
        return;
    };
    for (name, block) in &servers.blocks {
        // One process: 1,000 misses of one key, one database read.
        let (cache, db) = connect(block, block, &format!("herd:{name}:")).await;
        db.set("hot", &json!({"n": 1})).await.unwrap();
        let (gate, reads) = (Arc::new(Semaphore::new(0)), Arc::new(AtomicUsize::new(0)));
        let slow = Arc::new(SlowReads {
            inner: db.clone(),
            gate: gate.clone(),
            read: Arc::default(),
            reads: reads.clone(),
        });
        let layer = Arc::new(CacheAside::new(
            cache.clone(),
            slow,
            CacheAsideOptions::default(),
        ));
        let misses: Vec<_> = (0..1000)
            .map(|_| {
                let layer = layer.clone();
                tokio::spawn(async move { layer.get("hot").await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        gate.add_permits(10_000);
        for miss in misses {
            assert_eq!(miss.await.unwrap().unwrap(), Some(json!({"n": 1})));
        }
        assert_eq!(
            reads.load(Ordering::SeqCst),
            1,
            "{name}: one database read for 1,000 misses"
        );
        // The others shared the load, or (their cache read later than its warm) hit.
        let stats = layer.stats();
        assert_eq!(stats.coalesced_loads + stats.hits, 999, "{name}: {stats:?}");

        // Four instances × 250 misses: at most one read each without the lease, one with it.
        for (lease, most) in [(false, 4), (true, 1)] {
            let key = format!("hot-{lease}");
            db.set(&key, &json!(lease)).await.unwrap();
            let (gate, reads) = (Arc::new(Semaphore::new(0)), Arc::new(AtomicUsize::new(0)));
            let options = CacheAsideOptions {
                stampede_lease: lease,
                ..CacheAsideOptions::default()
            };
            let instances: Vec<Arc<CacheAside>> = (0..4)
                .map(|_| {
                    let slow = Arc::new(SlowReads {
                        inner: db.clone(),
                        gate: gate.clone(),
                        read: Arc::default(),
                        reads: reads.clone(),
                    });
                    Arc::new(CacheAside::new(cache.clone(), slow, options.clone()))
                })
                .collect();
            let mut misses = Vec::new();
            for instance in &instances {
                for _ in 0..250 {
                    let (instance, key) = (instance.clone(), key.clone());
                    misses.push(tokio::spawn(async move { instance.get(&key).await }));
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            gate.add_permits(10_000);
            for miss in misses {
                assert_eq!(miss.await.unwrap().unwrap(), Some(json!(lease)));
            }
            let n = reads.load(Ordering::SeqCst);
            assert!(
                (1..=most).contains(&n),
                "{name}: 4 instances × 250 misses (lease {lease}) read the database {n} times, at most {most}"
            );
        }
    }
}

/// A cache whose next `get` reads, then waits at a gate before answering: a reader that
/// missed just before another reader's load warmed the key.
#[derive(Debug)]
struct HeldRead {
    inner: Arc<dyn Cache>,
    hold_next: std::sync::atomic::AtomicBool,
    gate: Arc<Semaphore>,
    read: Arc<Notify>,
}

#[async_trait]
impl ForwardStore for HeldRead {
    fn inner_store(&self) -> &dyn Store {
        &*self.inner
    }
    async fn get(&self, key: &str) -> Result<Option<Value>> {
        let value = self.inner.get(key).await;
        if self.hold_next.swap(false, Ordering::SeqCst) {
            self.read.notify_one();
            let _pass = self.gate.acquire().await;
        }
        value
    }
}

#[async_trait]
impl storage_core::layer::ForwardCache for HeldRead {
    fn inner_cache(&self) -> &dyn Cache {
        &*self.inner
    }
}

/// A miss whose cache read came before another reader's load finished and warmed the key,
/// but which asks to load after it: it finds the warm instead of reading the database again
/// (without the second look, a stampede spread over time loaded once per straggler).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_arriving_after_a_load_finished_serves_its_warm() {
    let store = storage_memory::MemoryStore::new();
    let db = store.database("late-db:").unwrap();
    db.set("hot", &json!("v1")).await.unwrap();
    let (gate, read) = (Arc::new(Semaphore::new(0)), Arc::new(Notify::new()));
    let cache = Arc::new(HeldRead {
        inner: store.cache("late-cache:").unwrap(),
        hold_next: std::sync::atomic::AtomicBool::new(true),
        gate: gate.clone(),
        read: read.clone(),
    });
    let reads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::new(SlowReads {
        inner: db.clone(),
        gate: Arc::new(Semaphore::new(10_000)),
        read: Arc::default(),
        reads: reads.clone(),
    });
    let layer = Arc::new(CacheAside::new(
        cache,
        counted,
        CacheAsideOptions::default(),
    ));
    let late = {
        let layer = layer.clone();
        tokio::spawn(async move { layer.get("hot").await })
    };
    read.notified().await; // the straggler has missed
    assert_eq!(layer.get("hot").await.unwrap(), Some(json!("v1"))); // loads and warms
    gate.add_permits(1);
    assert_eq!(late.await.unwrap().unwrap(), Some(json!("v1")));
    assert_eq!(reads.load(Ordering::SeqCst), 1, "one database read");
    assert_eq!(layer.stats().coalesced_loads, 1);
}

/// `cacheAside:` in the cache role's block: `connect_cache_aside` builds the layer with it
/// (here: warmed entries live `ttlMillis` ± `ttlJitter`); misplaced or absurd settings are
/// refused with the field's path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_aside_from_the_config_file() {
    use storage_core::KeyTtl;
    use storage_core::config::CacheAsideSettings;
    use storage_manager::StorageManager;
    use storage_manager::config_file::from_yaml_str;

    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "cache: {{ type: in-memory, store: aside, cacheAside: {{ ttlMillis: 60000, ttlJitter: 0.1, invalidationHoldMillis: 500, stampede: {{ lease: true }} }} }}\ndatabase: {{ type: sqlite, path: '{}' }}\n",
        dir.path().join("aside.db").display()
    );
    let source = from_yaml_str(&yaml, ".".as_ref()).unwrap();
    let manager = StorageManager::from_source(&source).unwrap();
    let settings = manager.config().cache.primary.common.cache_aside.clone();
    assert_eq!(
        settings,
        Some(CacheAsideSettings {
            ttl: Some(Duration::from_secs(60)),
            ttl_jitter: 0.1,
            invalidation_hold: Duration::from_millis(500),
            stampede_lease: true,
        })
    );
    let layer = manager.connect_cache_aside().await.unwrap();
    let (cache, _) = manager.connect_cache().await.unwrap();
    let (db, _) = manager.connect_database().await.unwrap();
    db.set("profile", &json!({"name": "ada"})).await.unwrap();
    assert_eq!(
        layer.get("profile").await.unwrap(),
        Some(json!({"name": "ada"}))
    );
    assert_eq!(
        cache.get("profile").await.unwrap(),
        Some(json!({"name": "ada"})),
        "the miss warmed the cache"
    );
    match cache.ttl("profile").await.unwrap() {
        KeyTtl::ExpiresIn(left) => assert!(
            left > Duration::from_secs(50) && left <= Duration::from_secs(66),
            "60 s ± 10 %: {left:?}"
        ),
        other => panic!("a warmed entry with ttlMillis lives that long: {other:?}"),
    }
    // Without `cacheAside:`, the defaults: no TTL.
    let plain = from_yaml_str(
        "cache: { type: in-memory, store: plain }\ndatabase: { type: in-memory, store: plain-db }\n",
        ".".as_ref(),
    )
    .unwrap();
    let manager = StorageManager::from_source(&plain).unwrap();
    assert_eq!(manager.config().cache.primary.common.cache_aside, None);
    manager.connect_cache_aside().await.unwrap();

    for (yaml, want) in [
        (
            "cache: { type: in-memory }\ndatabase: { type: in-memory, cacheAside: {} }",
            "storage.database.cacheAside: only the cache role loads aside",
        ),
        (
            "cache: { type: in-memory, fallback: [ { type: in-memory, cacheAside: {} } ] }\ndatabase: { type: in-memory }",
            "cache-aside settings are the role's",
        ),
        (
            "cache: { type: in-memory, cacheAside: { ttlJitter: 0.7 } }\ndatabase: { type: in-memory }",
            "storage.cache.cacheAside.ttlJitter: 0.7 is not a fraction from 0 to 0.5",
        ),
        (
            "cache: { type: in-memory, cacheAside: { invalidationHoldMillis: 0 } }\ndatabase: { type: in-memory }",
            "storage.cache.cacheAside.invalidationHoldMillis: 0 is not between 1 and",
        ),
        (
            "cache: { type: in-memory, cacheAside: { ttlMillis: 0 } }\ndatabase: { type: in-memory }",
            "storage.cache.cacheAside.ttlMillis: must be at least 1",
        ),
        (
            "cache: { type: in-memory, cacheAside: { stampede: { leases: true } } }\ndatabase: { type: in-memory }",
            "leases",
        ),
    ] {
        let e = from_yaml_str(yaml, ".".as_ref())
            .and_then(|s| StorageManager::from_source(&s))
            .unwrap_err();
        assert!(e.to_string().contains(want), "{yaml}: {e}");
    }
}
