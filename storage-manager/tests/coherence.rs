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
        assert_eq!(layer.stats().coalesced_loads, 999, "{name}");

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
