//! The coherence cases, run on every cache and database line of the matrix (plugins too): the
//! backend under test plays its role and an in-memory store the other, with two instances of
//! the backend in each case (separate connections). `CacheAside` never warms a value older than
//! a write that raced its load; concurrent misses share one load (and, with the stampede lease,
//! one across instances); a `NearCache` over the backend sees another instance's writes through
//! the change log and never reads an older value once it has seen the new one (where the
//! backend keeps a log; the runner notes where it does not). They live here, not in the kit,
//! because the layers they check are storage-manager's, which the kit does not depend on.

use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use storage_core::config::{BackendSpec, Role};
use storage_core::layer::{ForwardDatabase, ForwardStore};
use storage_core::{Cache, Database, Registry, Result, Store, async_trait};
use storage_manager::{CacheAside, CacheAsideOptions, NearCache, NearCacheOptions};
use tokio::sync::{Notify, Semaphore};

/// The cases that need no change log.
const CASES: [&str; 2] = [
    "coherence_no_stale_warm_after_a_racing_write",
    "coherence_concurrent_misses_share_one_load",
];

/// The case that needs the backend's change log.
const NEAR_CACHE_CASE: &str = "coherence_near_cache_sees_another_instances_writes";

/// The cases `filter` selects for `role`; the near-cache case only where `watch` (the backend
/// keeps a change log).
pub(crate) fn names(role: Role, filter: Option<&str>, watch: bool) -> Vec<&'static str> {
    if role == Role::Blob {
        return Vec::new();
    }
    CASES
        .into_iter()
        .chain(watch.then_some(NEAR_CACHE_CASE))
        .filter(|n| filter.is_none_or(|f| n.contains(f)))
        .collect()
}

/// Whether `filter` may select a coherence case.
pub(crate) fn may_match(role: Role, filter: Option<&str>) -> bool {
    !names(role, filter, true).is_empty()
}

/// A database whose `get` reads, counts, announces it has read, then waits at the gate.
#[derive(Debug)]
struct GatedReads {
    inner: Arc<dyn Database>,
    gate: Arc<Semaphore>,
    read: Arc<Notify>,
    reads: Arc<AtomicUsize>,
}

#[async_trait]
impl ForwardStore for GatedReads {
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
impl ForwardDatabase for GatedReads {
    fn inner_database(&self) -> &dyn Database {
        &*self.inner
    }
}

/// Opens instances of the backend under test, and pairs each with the in-memory other role.
struct Pairs {
    registry: Arc<Registry>,
    spec: BackendSpec,
    role: Role,
    memory: storage_memory::MemoryStore,
}

impl Pairs {
    /// A new instance of the backend under test, with the shared in-memory other role.
    async fn pair(&self) -> std::result::Result<(Arc<dyn Cache>, Arc<dyn Database>), String> {
        let fail = |e: storage_core::Error| format!("opening an instance: {e}");
        Ok(match self.role {
            Role::Cache => (
                self.registry.open_cache(&self.spec).await.map_err(fail)?,
                self.memory.database("coherence-db:").map_err(fail)?,
            ),
            _ => (
                self.memory.cache("coherence-cache:").map_err(fail)?,
                self.registry
                    .open_database(&self.spec)
                    .await
                    .map_err(fail)?,
            ),
        })
    }
}

fn check<T: std::fmt::Debug + PartialEq>(
    what: &str,
    got: T,
    want: T,
) -> std::result::Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

fn ctx<T>(r: Result<T>, what: &str) -> std::result::Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// A reader's load holds `v1` while another instance sets `v2` (then, second round, deletes
/// the key); afterwards neither instance reads `v1`.
async fn no_stale_warm(pairs: &Pairs) -> std::result::Result<(), String> {
    for (round, delete) in [(0, false), (1, true)] {
        let key = format!("profile-{round}");
        let (reader_cache, reader_db) = pairs.pair().await?;
        let (writer_cache, writer_db) = pairs.pair().await?;
        ctx(writer_db.set(&key, &json!("v1")).await, "set v1")?;
        let (gate, read) = (Arc::new(Semaphore::new(0)), Arc::new(Notify::new()));
        let gated = Arc::new(GatedReads {
            inner: reader_db,
            gate: gate.clone(),
            read: read.clone(),
            reads: Arc::default(),
        });
        let options = CacheAsideOptions {
            invalidation_hold: Duration::from_secs(10),
            ..CacheAsideOptions::default()
        };
        let reader = Arc::new(CacheAside::new(reader_cache, gated, options.clone()));
        let writer = CacheAside::new(writer_cache, writer_db, options);
        let slow = {
            let (reader, key) = (reader.clone(), key.clone());
            tokio::spawn(async move { reader.get(&key).await })
        };
        tokio::time::timeout(Duration::from_secs(20), read.notified())
            .await
            .map_err(|_| "the reader's load never reached the database".to_string())?;
        ctx(writer.set(&key, &json!("v2")).await, "set v2")?;
        let want = if delete {
            ctx(writer.delete(&key).await, "delete")?;
            None
        } else {
            Some(json!("v2"))
        };
        gate.add_permits(1_000);
        let slow = slow
            .await
            .map_err(|e| format!("the slow read panicked: {e}"))?;
        ctx(slow, "the slow read")?;
        check(
            "the reader after the race",
            ctx(reader.get(&key).await, "get")?,
            want.clone(),
        )?;
        check(
            "the writer after the race",
            ctx(writer.get(&key).await, "get")?,
            want,
        )?;
    }
    Ok(())
}

/// 1,000 concurrent misses in one instance load once; 4 instances × 250 with the stampede
/// lease load once in all.
async fn misses_share_one_load(pairs: &Pairs) -> std::result::Result<(), String> {
    for (instances, lease) in [(1usize, false), (4, true)] {
        let key = format!("hot-{instances}");
        let (gate, reads) = (Arc::new(Semaphore::new(0)), Arc::new(AtomicUsize::new(0)));
        // A hold long enough for a loaded machine: the lease lives, and its waiters wait, that
        // long; with the default 1 s a slow server let the lease lapse mid-load and a waiter
        // loaded too. What is checked is the sharing, not a time.
        let options = CacheAsideOptions {
            stampede_lease: lease,
            invalidation_hold: Duration::from_secs(10),
            ..CacheAsideOptions::default()
        };
        let mut layers = Vec::new();
        for _ in 0..instances {
            let (cache, db) = pairs.pair().await?;
            ctx(db.set(&key, &json!({"hot": instances})).await, "set")?;
            let gated = Arc::new(GatedReads {
                inner: db,
                gate: gate.clone(),
                read: Arc::default(),
                reads: reads.clone(),
            });
            layers.push(Arc::new(CacheAside::new(cache, gated, options.clone())));
        }
        let misses: Vec<_> = (0..1000)
            .map(|i| {
                let (layer, key) = (layers[i % instances].clone(), key.clone());
                tokio::spawn(async move { layer.get(&key).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        gate.add_permits(100_000);
        for miss in misses {
            let got = miss.await.map_err(|e| format!("a miss panicked: {e}"))?;
            check("a miss", ctx(got, "get")?, Some(json!({"hot": instances})))?;
        }
        check(
            &format!("database reads for 1,000 misses over {instances} instance(s), lease {lease}"),
            reads.load(Ordering::SeqCst),
            1,
        )?;
    }
    Ok(())
}

/// Instance B writes; instance A's near cache reads each new value within 10 s and never the
/// old one after.
async fn near_cache_sees_writes(pairs: &Pairs) -> std::result::Result<(), String> {
    let (registry, spec) = (&pairs.registry, &pairs.spec);
    // (A's near cache, B as a store, B's write of `value` at `doc`)
    let (near, writer_cache, writer_db): (Arc<dyn Store>, _, _) = match pairs.role {
        Role::Cache => {
            let a = ctx(registry.open_cache(spec).await, "instance A")?;
            let b = ctx(registry.open_cache(spec).await, "instance B")?;
            (
                Arc::new(NearCache::cache(a, NearCacheOptions::default())),
                Some(b),
                None,
            )
        }
        _ => {
            let a = ctx(registry.open_database(spec).await, "instance A")?;
            let b = ctx(registry.open_database(spec).await, "instance B")?;
            (
                Arc::new(NearCache::database(a, NearCacheOptions::default())),
                None,
                Some(b),
            )
        }
    };
    let write = |value: Value| {
        let (c, d) = (writer_cache.clone(), writer_db.clone());
        async move {
            match (c, d) {
                (Some(c), _) => c.set("doc", &value, None).await,
                (_, Some(d)) => d.set("doc", &value).await,
                _ => Ok(()),
            }
        }
    };
    for round in 0..5 {
        let want = Some(json!({"round": round}));
        ctx(write(json!({"round": round})).await, "B's set")?;
        let started = Instant::now();
        while ctx(near.get("doc").await, "A's get")? != want {
            if started.elapsed() > Duration::from_secs(10) {
                return Err(format!(
                    "round {round}: A's near cache never read B's write"
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for _ in 0..20 {
            let again = ctx(near.get("doc").await, "A's get")?;
            check("a read after the new value was seen", again, want.clone())?;
        }
    }
    let deleted = match (&writer_cache, &writer_db) {
        (Some(c), _) => c.delete("doc").await,
        (_, Some(d)) => d.delete("doc").await,
        _ => Ok(true),
    };
    ctx(deleted, "B's delete")?;
    let started = Instant::now();
    while ctx(near.get("doc").await, "A's get")?.is_some() {
        if started.elapsed() > Duration::from_secs(10) {
            return Err("A's near cache never saw B's delete".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// Runs the coherence cases `filter` selects; prints a line per case; returns (passed, failed).
pub(crate) async fn run(
    role: Role,
    registry: Arc<Registry>,
    spec: &BackendSpec,
    prefix: &str,
    filter: Option<&str>,
    watch: bool,
) -> (usize, usize) {
    if role != Role::Blob && !watch && filter.is_none_or(|f| NEAR_CACHE_CASE.contains(f)) {
        println!(
            "  note: {NEAR_CACHE_CASE} does not apply to {}: it keeps no change log here",
            spec.type_name
        );
    }
    let (mut passed, mut failed) = (0, 0);
    for name in names(role, filter, watch) {
        let pairs = Pairs {
            registry: registry.clone(),
            spec: spec.clone().with_key_prefix(format!("{prefix}{name}:")),
            role,
            memory: storage_memory::MemoryStore::new(),
        };
        let outcome = tokio::time::timeout(Duration::from_secs(120), async {
            match name {
                "coherence_no_stale_warm_after_a_racing_write" => no_stale_warm(&pairs).await,
                "coherence_concurrent_misses_share_one_load" => misses_share_one_load(&pairs).await,
                _ => near_cache_sees_writes(&pairs).await,
            }
        })
        .await
        .unwrap_or_else(|_| Err("did not finish within 120 s".into()));
        // Leave nothing behind under the case's prefix.
        match role {
            Role::Cache => {
                if let Ok(c) = registry.open_cache(&pairs.spec).await {
                    let _ = c.clear().await;
                }
            }
            _ => {
                if let Ok(d) = registry.open_database(&pairs.spec).await {
                    let _ = d.clear().await;
                }
            }
        }
        match outcome {
            Ok(()) => {
                println!("  ok   {role} {name}");
                passed += 1;
            }
            Err(e) => {
                println!("  FAIL {role} {name}: {e}");
                failed += 1;
            }
        }
    }
    (passed, failed)
}
