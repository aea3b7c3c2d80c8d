//! The caching rows: a near cache's `get` (a hit, coherence checked on every read) against
//! moka's, the in-process cache Rust users pick, from 1 and 64 tasks; and the stampede rows,
//! how many loads reach the database when many readers miss one key at once: 1,000 misses in
//! one instance, and 4 instances × 250 without and with the cross-instance lease. Not the
//! staleness across instances (that is a feed row, `set_seen_by_near_cache`).

use crate::harness::{RUNS, Row, Stats};
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use storage_core::layer::{ForwardDatabase, ForwardStore};
use storage_core::{Cache, Database, Result, Store, async_trait};
use storage_manager::{CacheAside, CacheAsideOptions, NearCache, NearCacheOptions};

/// Keys read by the near-cache rows (all held by the level).
const KEYS: usize = 1000;

/// How long the stampede rows' database takes to answer a read (a round trip and a query).
const READ_DELAY: Duration = Duration::from_millis(2);

/// Runs `total` calls of `op(i)` from `concurrency` tasks, timing each.
async fn timed<F, Fut>(concurrency: usize, total: usize, op: F) -> Stats
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let per_task = total.div_ceil(concurrency);
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|t| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_task);
                for k in 0..per_task {
                    let begun = Instant::now();
                    op(t * per_task + k).await;
                    latencies.push(begun.elapsed().as_nanos() as u64);
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("a benchmark task"));
    }
    Stats::of(all, started.elapsed())
}

/// The near-cache rows: `get` of held keys through a `NearCache` over an in-memory database,
/// against `moka::sync::Cache::get` of the same values, alternating runs.
pub async fn near_cache_rows(ops_scale: usize, rows: &mut Vec<Row>) {
    let store = storage_memory::MemoryStore::new();
    let database = store.database("near:").expect("an in-memory database");
    let level = Arc::new(NearCache::database(database, NearCacheOptions::default()));
    // Read as an application reads it: through the `Database` trait.
    let near: Arc<dyn Database> = level.clone();
    let moka: moka::sync::Cache<String, Value> = moka::sync::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(Duration::from_secs(60))
        .build();
    let keys: Arc<Vec<String>> = Arc::new((0..KEYS).map(|i| format!("k{i}")).collect());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !level.in_sync() {
        assert!(
            Instant::now() < deadline,
            "the near cache never got in sync"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for key in keys.iter() {
        let value = json!({"role": "user", "content": format!("the value of {key}")});
        near.set(key, &value).await.expect("a set");
        moka.insert(key.clone(), value);
    }
    // Let the writes' own changes arrive (each drops its key once), then fill the level.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for key in keys.iter() {
        near.get(key).await.expect("a fill");
    }
    let total = ops_scale * 50;
    for c in [1, 64] {
        let near_get = {
            let (near, keys) = (near.clone(), keys.clone());
            move |i: usize| {
                let (near, keys) = (near.clone(), keys.clone());
                async move {
                    let v = near.get(&keys[i % KEYS]).await.expect("a near-cache get");
                    assert!(v.is_some(), "a held key");
                }
            }
        };
        let moka_get = {
            let (moka, keys) = (moka.clone(), keys.clone());
            move |i: usize| {
                let (moka, keys) = (moka.clone(), keys.clone());
                async move {
                    let v = moka.get(&keys[i % KEYS]);
                    assert!(v.is_some(), "a held key");
                }
            }
        };
        timed(c, total / 10, near_get.clone()).await;
        timed(c, total / 10, moka_get.clone()).await;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            ours.push(timed(c, total, near_get.clone()).await);
            theirs.push(timed(c, total, moka_get.clone()).await);
        }
        let (p, b) = (Stats::median(ours), Stats::median(theirs));
        let before = level.stats();
        eprintln!(
            "bench: near cache get c={c:<3} {:>10.0} ops/s  p50 {:>6.2} µs  p99 {:>6.2} µs  vs moka {:.0} ops/s, ratio {:.2} (hits {}, misses {})",
            p.ops_per_sec,
            p.p50_us,
            p.p99_us,
            b.ops_per_sec,
            p.ops_per_sec / b.ops_per_sec,
            before.hits,
            before.misses + before.bypassed,
        );
        rows.push(Row::measured(
            "near cache (over in-memory)",
            "near_cache_get_vs_moka",
            c,
            p,
            Some(b),
        ));
    }
}

/// A database that takes [`READ_DELAY`] to answer a read and counts its reads.
#[derive(Debug)]
struct SlowCountedReads {
    inner: Arc<dyn Database>,
    reads: Arc<AtomicU64>,
}

#[async_trait]
impl ForwardStore for SlowCountedReads {
    fn inner_store(&self) -> &dyn Store {
        &*self.inner
    }
    async fn get(&self, key: &str) -> Result<Option<Value>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(READ_DELAY).await;
        self.inner.get(key).await
    }
}

#[async_trait]
impl ForwardDatabase for SlowCountedReads {
    fn inner_database(&self) -> &dyn Database {
        &*self.inner
    }
}

/// The stampede rows on `cache` and `database` (named `backend`): each row's rate is the
/// misses answered per second, its latencies each miss's, and `database_loads` the reads that
/// reached the database.
pub async fn stampede_rows(
    backend: &str,
    cache: Arc<dyn Cache>,
    database: Arc<dyn Database>,
    rows: &mut Vec<Row>,
) {
    let cases: [(&'static str, usize, bool); 3] = [
        ("stampede_1000_misses_1_instance", 1, false),
        ("stampede_250_misses_x4_instances", 4, false),
        ("stampede_250_misses_x4_instances_lease", 4, true),
    ];
    for (round, (op, instances, lease)) in cases.into_iter().enumerate() {
        let key = format!("stampede-{round}-{}", std::process::id());
        database
            .set(&key, &json!({"hot": round}))
            .await
            .expect("a set");
        let reads = Arc::new(AtomicU64::new(0));
        let options = CacheAsideOptions {
            stampede_lease: lease,
            ..CacheAsideOptions::default()
        };
        let layers: Arc<Vec<CacheAside>> = Arc::new(
            (0..instances)
                .map(|_| {
                    let slow = Arc::new(SlowCountedReads {
                        inner: database.clone(),
                        reads: reads.clone(),
                    });
                    CacheAside::new(cache.clone(), slow, options.clone())
                })
                .collect(),
        );
        let miss = {
            let (layers, key) = (layers.clone(), key.clone());
            move |i: usize| {
                let (layers, key) = (layers.clone(), key.clone());
                async move {
                    let layer = &layers[i % layers.len()];
                    let v = layer.get(&key).await.expect("a cache-aside get");
                    assert!(v.is_some(), "the key is in the database");
                }
            }
        };
        // 1,000 tasks, one miss each, all at once.
        let stats = timed(1000, 1000, miss).await;
        let loads = reads.load(Ordering::SeqCst);
        eprintln!(
            "bench: {backend} {op}: {loads} database loads for 1000 misses, p50 {:.0} µs, p99 {:.0} µs",
            stats.p50_us, stats.p99_us
        );
        rows.push(Row::measured(backend, op, 1000, stats, None).with_loads(loads));
        let _ = cache.delete(&key).await;
        let _ = database.delete(&key).await;
    }
}

/// Every caching row: the near cache against moka, and the stampede rows on an in-memory
/// cache and database, and on Redis and PostgreSQL when given.
pub async fn all(
    ops_scale: usize,
    postgres: Option<String>,
    redis: Option<String>,
    rows: &mut Vec<Row>,
) {
    near_cache_rows(ops_scale, rows).await;
    let store = storage_memory::MemoryStore::new();
    stampede_rows(
        "cache-aside (in-memory cache and database)",
        store.cache("stampede-cache:").expect("an in-memory cache"),
        store
            .database("stampede-db:")
            .expect("an in-memory database"),
        rows,
    )
    .await;
    if let (Some(pg), Some(redis)) = (postgres, redis) {
        let yaml = format!(
            "cache: {{ type: redis, url: '{redis}', keyPrefix: 'stampede:', maxConnections: 64 }}\ndatabase: {{ type: postgresql, url: '{pg}', keyPrefix: 'stampede:', maxConnections: 64 }}"
        );
        let registry = storage_manager::builtin_registry();
        let source = storage_manager::config_file::from_yaml_str(&yaml, &std::env::temp_dir())
            .expect("bench config");
        let config = source.resolve(&registry).expect("bench config");
        let cache = registry
            .open_cache(&config.cache.primary)
            .await
            .expect("open Redis");
        let database = crate::open(&yaml).await;
        stampede_rows(
            "cache-aside (Redis cache, PostgreSQL database)",
            cache,
            database,
            rows,
        )
        .await;
    }
}
