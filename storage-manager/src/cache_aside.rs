//! The design's caching patterns over a cache and a database.

use crate::status::CacheStats;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use storage_core::{Cache, Database, Error, Result};
use tokio::sync::{Notify, Semaphore};

/// A queued write-behind operation.
#[derive(Debug, Clone)]
enum Op {
    Set(String, Value),
    Delete(String),
}

impl Op {
    fn key(&self) -> &str {
        match self {
            Op::Set(k, _) | Op::Delete(k) => k,
        }
    }
}

struct Queue {
    ops: Mutex<VecDeque<Op>>,
    /// Free slots: the queue is bounded.
    space: Semaphore,
    wake: Notify,
    stop: AtomicBool,
    idle: Notify,
}

/// What [`CacheAside::shutdown`] could not write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBehindReport {
    /// Keys whose queued set or delete never reached the database, in queue order.
    pub unwritten: Vec<String>,
}

/// Cache-aside reads, write-through and write-behind writes over a cache and a database.
///
/// A failing cache never fails a request: its errors are logged, counted in [`CacheStats`],
/// and degrade to misses. Write-behind covers set and delete only (a replayed append would
/// duplicate), its queue is bounded, and [`CacheAside::shutdown`] flushes it within a timeout
/// and names exactly the keys it could not write.
pub struct CacheAside {
    cache: Arc<dyn Cache>,
    database: Arc<dyn Database>,
    ttl: Option<Duration>,
    hits: AtomicU64,
    misses: AtomicU64,
    cache_errors: AtomicU64,
    queue: Arc<Queue>,
    enqueue_timeout: Duration,
    worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
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

impl CacheAside {
    /// A layer whose cache entries live `ttl`, with a write-behind queue of `capacity` operations.
    /// Must be created inside a tokio runtime (it spawns the write-behind worker).
    pub fn new(
        cache: Arc<dyn Cache>,
        database: Arc<dyn Database>,
        ttl: Option<Duration>,
        capacity: usize,
    ) -> Self {
        let queue = Arc::new(Queue {
            ops: Mutex::new(VecDeque::new()),
            space: Semaphore::new(capacity.max(1)),
            wake: Notify::new(),
            stop: AtomicBool::new(false),
            idle: Notify::new(),
        });
        let worker = tokio::spawn(drain(queue.clone(), database.clone()));
        CacheAside {
            cache,
            database,
            ttl,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            cache_errors: AtomicU64::new(0),
            queue,
            enqueue_timeout: Duration::from_secs(10),
            worker: Mutex::new(Some(worker)),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            cache_errors: self.cache_errors.load(Ordering::Relaxed),
            write_behind_pending: self
                .queue
                .ops
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len() as u64,
        }
    }

    fn cache_failed(&self, op: &str, key: &str, e: &Error) {
        self.cache_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(op, key, error = %e, "cache failed; serving from the database");
    }

    /// Lazy loading: the cache, else the database, warming the cache on the way back.
    pub async fn get(&self, key: &str) -> Result<Option<Value>> {
        match self.cache.get(key).await {
            Ok(Some(v)) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(v));
            }
            Ok(None) => {}
            Err(e) => self.cache_failed("get", key, &e),
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let value = self.database.get(key).await?;
        if let Some(v) = &value
            && let Err(e) = self.cache.set(key, v, self.ttl).await
        {
            self.cache_failed("warm", key, &e);
        }
        Ok(value)
    }

    /// Write-through: the database, then the cache.
    pub async fn set(&self, key: &str, value: &Value) -> Result<()> {
        self.database.set(key, value).await?;
        if let Err(e) = self.cache.set(key, value, self.ttl).await {
            self.cache_failed("set", key, &e);
            // A stale entry would outlive the write; drop it if we can.
            let _ = self.cache.delete(key).await;
        }
        Ok(())
    }

    /// Write-through delete: the database, then the cache.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let existed = self.database.delete(key).await?;
        if let Err(e) = self.cache.delete(key).await {
            self.cache_failed("delete", key, &e);
        }
        Ok(existed)
    }

    /// Write-behind set: the cache now, the database soon. Waits for queue space up to a limit.
    pub async fn set_behind(&self, key: &str, value: &Value) -> Result<()> {
        storage_core::validate_key(key)?;
        storage_core::validate_value(value)?;
        if let Err(e) = self.cache.set(key, value, self.ttl).await {
            self.cache_failed("set", key, &e);
        }
        self.enqueue(Op::Set(key.to_string(), value.clone())).await
    }

    /// Write-behind delete.
    pub async fn delete_behind(&self, key: &str) -> Result<()> {
        storage_core::validate_key(key)?;
        if let Err(e) = self.cache.delete(key).await {
            self.cache_failed("delete", key, &e);
        }
        self.enqueue(Op::Delete(key.to_string())).await
    }

    async fn enqueue(&self, op: Op) -> Result<()> {
        if self.queue.stop.load(Ordering::Acquire) {
            return Err(Error::unsupported("write-behind is shut down"));
        }
        let permit = tokio::time::timeout(self.enqueue_timeout, self.queue.space.acquire())
            .await
            .map_err(|_| Error::timeout("write-behind queue stayed full"))?
            .map_err(|_| Error::unsupported("write-behind is shut down"))?;
        // The slot is returned by the worker once the operation is written.
        permit.forget();
        self.queue
            .ops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(op);
        self.queue.wake.notify_one();
        Ok(())
    }

    /// Flushes the write-behind queue for up to `timeout`, then stops it. Returns the keys that
    /// were not written. Later write-behind calls fail.
    pub async fn shutdown(&self, timeout: Duration) -> WriteBehindReport {
        let flushed = tokio::time::timeout(timeout, async {
            loop {
                let idle = self.queue.idle.notified();
                if self
                    .queue
                    .ops
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_empty()
                {
                    return;
                }
                idle.await;
            }
        })
        .await;
        self.queue.stop.store(true, Ordering::Release);
        self.queue.space.close();
        self.queue.wake.notify_one();
        let worker = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(worker) = worker {
            if flushed.is_err() {
                // The operation in flight may or may not land; it stays in the report.
                worker.abort();
            }
            let _ = worker.await;
        }
        let unwritten = self
            .queue
            .ops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|op| op.key().to_string())
            .collect();
        WriteBehindReport { unwritten }
    }
}

/// Writes queued operations in order, retrying transient failures until shutdown.
async fn drain(queue: Arc<Queue>, database: Arc<dyn Database>) {
    let mut failures = 0u32;
    loop {
        let next = queue
            .ops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .front()
            .cloned();
        let Some(op) = next else {
            queue.idle.notify_waiters();
            if queue.stop.load(Ordering::Acquire) {
                return;
            }
            queue.wake.notified().await;
            continue;
        };
        let result = match &op {
            Op::Set(k, v) => database.set(k, v).await,
            Op::Delete(k) => database.delete(k).await.map(|_| ()),
        };
        match result {
            Err(e) if e.is_transient() => {
                if queue.stop.load(Ordering::Acquire) {
                    return;
                }
                failures += 1;
                let delay = crate::backoff(Duration::from_millis(50), failures.min(6));
                tracing::warn!(key = op.key(), error = %e, ?delay, "write-behind failed; will retry");
                tokio::time::sleep(delay).await;
            }
            other => {
                if let Err(e) = other {
                    // Not transient: retrying cannot help. Keep it in the log, not the queue.
                    tracing::error!(key = op.key(), error = %e, "write-behind operation dropped");
                }
                failures = 0;
                queue
                    .ops
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pop_front();
                queue.space.add_permits(1);
            }
        }
    }
}
