//! The design's caching patterns over a cache and a database: [`CacheAside`], its options and
//! its writes. Not its read path (`cache_aside_read.rs`: no stale warm, no stampede) nor the
//! write-behind queue and worker (`cache_aside_behind.rs`).

use crate::cache_aside_behind::{Op, Queue, drain};
use crate::status::CacheStats;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use storage_core::telemetry;
use storage_core::{Cache, Database, Error, Result};
use tokio::sync::{Notify, Semaphore};

/// A write-behind operation the database refused for a reason a retry cannot fix (a read-only
/// server, a constraint): kept, with its error, until [`CacheAside::retry_failed`] or
/// [`CacheAside::acknowledge_failed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedWrite {
    /// The key.
    pub key: String,
    /// `set` or `delete`.
    pub op: &'static str,
    /// Why the database refused it (no password).
    pub error: String,
}

/// What [`CacheAside::shutdown`] could not write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBehindReport {
    /// Keys whose set or delete never reached the database: the refused ones first, then the
    /// queue, each in order.
    pub unwritten: Vec<String>,
    /// The refused ones, with their errors.
    pub failed: Vec<FailedWrite>,
}

/// Cache-aside reads, write-through and write-behind writes over a cache and a database.
///
/// It is a [`Database`] itself, a layer over its database: `get` reads through the cache,
/// `set` and `delete` write through it, `mset` and `clear` write the database and drop what
/// the cache held for them, and every other operation (lists, `mget`, `keys`) goes to the
/// database as it is. So an application that takes an `Arc<dyn Database>` can be given one.
///
/// A failing cache never fails a request: its errors are logged, counted in [`CacheStats`],
/// and degrade to misses. Write-behind covers set and delete only (a replayed append would
/// duplicate), its queue is bounded, and [`CacheAside::shutdown`] flushes it within a timeout
/// and names exactly the keys it could not write.
pub struct CacheAside {
    pub(crate) cache: Arc<dyn Cache>,
    pub(crate) database: Arc<dyn Database>,
    pub(crate) ttl: Option<Duration>,
    /// How long an invalidation marker holds a key, and the longest load that may warm.
    pub(crate) hold: Duration,
    pub(crate) stampede_lease: bool,
    ttl_jitter: f64,
    pub(crate) loads: crate::cache_aside_read::Loads,
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) leases_lost: AtomicU64,
    cache_errors: AtomicU64,
    queue: Arc<Queue>,
    enqueue_timeout: Duration,
    worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Keeps the queue's order and the cache's in step: a write-behind call enqueues and then
    /// writes the cache under it, so the cache never ends with an older value than the queue.
    order: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for CacheAside {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheAside")
            .field("cache", &self.cache)
            .field("database", &self.database)
            .field("stats", &self.stats())
            .finish()
    }
}

/// How a [`CacheAside`] behaves; every field has a default.
///
/// ```
/// use std::time::Duration;
/// use storage_manager::CacheAsideOptions;
///
/// let options = CacheAsideOptions {
///     ttl: Some(Duration::from_secs(600)),
///     ..CacheAsideOptions::default()
/// };
/// assert_eq!(options.write_behind_capacity, 1024);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CacheAsideOptions {
    /// How long an entry the layer puts in the cache lives; `None` (the default) for as long
    /// as the cache keeps it.
    pub ttl: Option<Duration>,
    /// How many write-behind operations may wait for the database (default 1024; at least 1).
    pub write_behind_capacity: usize,
    /// How long a write-behind call waits for queue space before it fails (default 10 s).
    pub enqueue_timeout: Duration,
    /// How long an invalidation (a delete, a conditional write, a batch) keeps a key from
    /// being warmed, and the longest a load may take and still warm the cache (default 1 s).
    /// Longer protects slower loads; shorter sends fewer reads to the database after a write.
    /// Kept within 1 ms ..= 1 day.
    pub invalidation_hold: Duration,
    /// Instances agree on one loader per missed key (a lease in the cache), and the others
    /// wait up to `invalidation_hold` for its warm (default off: each instance loads once).
    pub stampede_lease: bool,
    /// Spreads entries' lifetimes: each entry lives `ttl` times a random factor in
    /// `1 ± ttl_jitter` (default 0: exactly `ttl`), so that entries written together do not
    /// all expire, and reload, together. Clamped to 0..=0.5.
    pub ttl_jitter: f64,
}

impl Default for CacheAsideOptions {
    fn default() -> Self {
        CacheAsideOptions {
            ttl: None,
            write_behind_capacity: 1024,
            enqueue_timeout: Duration::from_secs(10),
            invalidation_hold: Duration::from_secs(1),
            stampede_lease: false,
            ttl_jitter: 0.0,
        }
    }
}

impl CacheAsideOptions {
    /// The defaults, with what a `cacheAside:` block settles (entry TTL and jitter, the
    /// invalidation hold, the stampede lease).
    pub fn from_settings(settings: &storage_core::config::CacheAsideSettings) -> Self {
        CacheAsideOptions {
            ttl: settings.ttl,
            ttl_jitter: settings.ttl_jitter,
            invalidation_hold: settings.invalidation_hold,
            stampede_lease: settings.stampede_lease,
            ..Self::default()
        }
    }

    /// The defaults, with entries living `ttl`.
    pub fn with_ttl(ttl: Duration) -> Self {
        CacheAsideOptions {
            ttl: Some(ttl),
            ..Self::default()
        }
    }

    /// The defaults, with a write-behind queue of `capacity` operations.
    pub fn with_capacity(capacity: usize) -> Self {
        CacheAsideOptions {
            write_behind_capacity: capacity,
            ..Self::default()
        }
    }
}

impl CacheAside {
    /// A layer over `cache` and `database`, behaving as `options` say. Must be created inside
    /// a tokio runtime (it spawns the write-behind worker).
    pub fn new(
        cache: Arc<dyn Cache>,
        database: Arc<dyn Database>,
        options: CacheAsideOptions,
    ) -> Self {
        let CacheAsideOptions {
            ttl,
            write_behind_capacity: capacity,
            enqueue_timeout,
            invalidation_hold,
            stampede_lease,
            ttl_jitter,
        } = options;
        // A hold of zero would let no load warm; one past a day is a mistake that the cache's
        // TTL limit could turn into failed markers, so it is capped there.
        let hold = invalidation_hold.clamp(Duration::from_millis(1), Duration::from_secs(86_400));
        let queue = Arc::new(Queue {
            ops: Mutex::new(VecDeque::new()),
            space: Semaphore::new(capacity.max(1)),
            wake: Notify::new(),
            stop: AtomicBool::new(false),
            idle: Notify::new(),
            failed: Mutex::new(VecDeque::new()),
            failed_capacity: capacity.max(1),
            failed_space: Notify::new(),
        });
        let worker = tokio::spawn(drain(queue.clone(), database.clone(), cache.clone(), hold));
        CacheAside {
            cache,
            database,
            ttl,
            hold,
            stampede_lease,
            ttl_jitter: if ttl_jitter.is_finite() {
                ttl_jitter.clamp(0.0, 0.5)
            } else {
                0.0
            },
            loads: Default::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            leases_lost: AtomicU64::new(0),
            cache_errors: AtomicU64::new(0),
            queue,
            enqueue_timeout,
            worker: Mutex::new(Some(worker)),
            order: tokio::sync::Mutex::new(()),
        }
    }

    /// The write-behind operations the database refused, oldest first, with their errors.
    pub fn failed_writes(&self) -> Vec<FailedWrite> {
        lock(&self.queue.failed)
            .iter()
            .map(|(op, e)| failed_write(op, e))
            .collect()
    }

    /// Queues every refused operation again, oldest first, and returns how many. Fails (and
    /// keeps them) once shut down.
    pub async fn retry_failed(&self) -> Result<usize> {
        let ops: Vec<Op> = lock(&self.queue.failed)
            .drain(..)
            .map(|(op, _)| op)
            .collect();
        self.queue.failed_space.notify_waiters();
        let n = ops.len();
        for (i, op) in ops.iter().enumerate() {
            if let Err(e) = self.enqueue(op.clone()).await {
                // Put back what was not queued, in order, so nothing is lost.
                let mut failed = lock(&self.queue.failed);
                for op in ops[i..].iter().rev() {
                    failed.push_front((op.clone(), e.to_string()));
                }
                return Err(e);
            }
        }
        Ok(n)
    }

    /// Forgets the refused operations (the application has dealt with them) and returns them.
    pub fn acknowledge_failed(&self) -> Vec<FailedWrite> {
        let out = lock(&self.queue.failed)
            .drain(..)
            .map(|(op, e)| failed_write(&op, &e))
            .collect();
        self.queue.failed_space.notify_waiters();
        out
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            cache_errors: self.cache_errors.load(Ordering::Relaxed),
            write_behind_pending: lock(&self.queue.ops).len() as u64,
            write_behind_failed: lock(&self.queue.failed).len() as u64,
            coalesced_loads: self.coalesced.load(Ordering::Relaxed),
            leases_lost: self.leases_lost.load(Ordering::Relaxed),
        }
    }

    /// The cache and the database, for the `Database` this layer also is (`cache_aside_database.rs`).
    pub(crate) fn parts(&self) -> (&dyn Cache, &dyn Database) {
        (&*self.cache, &*self.database)
    }

    pub(crate) fn cache_failed(&self, op: &str, key: &str, e: &Error) {
        self.cache_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(op, key, error = %e, "cache failed; serving from the database");
    }

    /// The lifetime of an entry written now: the TTL, spread by the jitter.
    pub(crate) fn entry_ttl(&self) -> Option<Duration> {
        let ttl = self.ttl?;
        if self.ttl_jitter == 0.0 {
            return Some(ttl);
        }
        // A uniform factor in 1 ± jitter, from a fresh random version's bits.
        let unit = (storage_core::Version::fresh().raw() >> 11) as f64 / (1u64 << 53) as f64;
        let factor = 1.0 + self.ttl_jitter * (2.0 * unit - 1.0);
        Some(ttl.mul_f64(factor).max(Duration::from_millis(1)))
    }

    /// Replaces what the cache holds for `key` with an invalidation marker living the hold, so
    /// that no load that raced the write warms the old value back (`cache_aside_read.rs`).
    pub(crate) async fn invalidate(&self, op: &str, key: &str) {
        invalidate(&*self.cache, key, self.hold)
            .await
            .unwrap_or_else(|e| self.cache_failed(op, key, &e));
    }

    /// Write-through: the database, then the cache.
    pub async fn set(&self, key: &str, value: &Value) -> Result<()> {
        self.database.set(key, value).await?;
        if let Err(e) = self.cache.set(key, value, self.entry_ttl()).await {
            self.cache_failed("set", key, &e);
            // A stale entry would outlive the write; mark it if we can.
            self.invalidate("set", key).await;
        }
        Ok(())
    }

    /// Write-through delete: the database, then the cache.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let existed = self.database.delete(key).await?;
        self.invalidate("delete", key).await;
        Ok(existed)
    }

    /// Write-behind set: queued for the database, then written to the cache. Waits for queue
    /// space up to a limit; if the queue does not accept the write, the cache is not touched and
    /// the caller gets the error, so no reader sees a value the database will never receive.
    pub async fn set_behind(&self, key: &str, value: &Value) -> Result<()> {
        storage_core::raw::validate_key(key)?;
        storage_core::raw::validate_value(value)?;
        let _order = self.order.lock().await;
        self.enqueue(Op::Set(key.to_string(), value.clone()))
            .await?;
        if let Err(e) = self.cache.set(key, value, self.entry_ttl()).await {
            self.cache_failed("set", key, &e);
            self.invalidate("set", key).await;
        }
        Ok(())
    }

    /// Write-behind delete: queued, then removed from the cache.
    pub async fn delete_behind(&self, key: &str) -> Result<()> {
        storage_core::raw::validate_key(key)?;
        let _order = self.order.lock().await;
        self.enqueue(Op::Delete(key.to_string())).await?;
        self.invalidate("delete", key).await;
        Ok(())
    }

    async fn enqueue(&self, op: Op) -> Result<()> {
        let shut = || Error::unsupported("write-behind is shut down");
        if self.queue.stop.load(Ordering::Acquire) {
            return Err(shut());
        }
        let permit = tokio::time::timeout(self.enqueue_timeout, self.queue.space.acquire())
            .await
            .map_err(|_| Error::timeout("write-behind queue stayed full"))?
            .map_err(|_| shut())?;
        {
            let mut ops = lock(&self.queue.ops);
            // Checked again under the lock shutdown takes to stop the queue: an operation is
            // either in the queue before the report is taken, or refused.
            if self.queue.stop.load(Ordering::Acquire) {
                return Err(shut());
            }
            ops.push_back(op);
            metrics::gauge!(telemetry::WRITE_BEHIND_DEPTH).set(ops.len() as f64);
        }
        // The slot is returned by the worker once the operation is written.
        permit.forget();
        self.queue.wake.notify_one();
        Ok(())
    }

    /// Stops accepting write-behind calls, flushes the queue for up to `timeout`, and returns
    /// what was not written: the refused operations and whatever is still queued. Later
    /// write-behind calls fail.
    pub async fn shutdown(&self, timeout: Duration) -> WriteBehindReport {
        // Under the queue's lock, so that no enqueue lands after this point.
        {
            let _ops = lock(&self.queue.ops);
            self.queue.stop.store(true, Ordering::Release);
        }
        self.queue.space.close();
        self.queue.wake.notify_one();
        let flushed = tokio::time::timeout(timeout, async {
            loop {
                let idle = self.queue.idle.notified();
                if lock(&self.queue.ops).is_empty() {
                    return;
                }
                idle.await;
            }
        })
        .await;
        let worker = lock(&self.worker).take();
        if let Some(worker) = worker {
            if flushed.is_err() {
                // The operation in flight may or may not land; it stays in the report.
                worker.abort();
            }
            let _ = worker.await;
        }
        let failed: Vec<FailedWrite> = self.failed_writes();
        let unwritten = failed
            .iter()
            .map(|f| f.key.clone())
            .chain(lock(&self.queue.ops).iter().map(|op| op.key().to_string()))
            .collect();
        WriteBehindReport { unwritten, failed }
    }
}

/// The marker in place of `key`'s entry for `hold`; where the cache cannot store it, the
/// entry removed at least.
pub(crate) async fn invalidate(cache: &dyn Cache, key: &str, hold: Duration) -> Result<()> {
    let marked = cache
        .set(key, &crate::cache_aside_read::marker(), Some(hold))
        .await;
    if marked.is_err() {
        cache.delete(key).await?;
    }
    marked
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn failed_write(op: &Op, error: &str) -> FailedWrite {
    FailedWrite {
        key: op.key().to_string(),
        op: match op {
            Op::Set(..) => "set",
            Op::Delete(_) => "delete",
        },
        error: error.to_string(),
    }
}
