//! The read path of [`CacheAside`]: lazy loading without a stale warm and without a stampede.
//! Not the writes (`cache_aside.rs`), which leave the invalidation markers read here.
//!
//! **No stale warm.** A reader that misses reads the database and puts what it read in the
//! cache (a warm). Meanwhile a writer may change the database; the warm must not then put the
//! older value back. So a warm is `set_if_absent` (it never replaces anything the cache holds),
//! and every invalidation (a delete, a conditional write, a batch) leaves an *invalidation
//! marker* in the cache instead of nothing, for [`CacheAsideOptions::invalidation_hold`]
//! (default 1 s): a warm racing it finds the key taken. A load that took longer than the hold
//! does not warm at all, since the marker of a write it raced may already be gone. This is the
//! lease of memcache's leases (Facebook, NSDI 2013) with time as its token: a reader holds the
//! right to warm for `hold` from the moment it started its read. The price: for `hold` after an
//! invalidation, reads of that key go to the database.
//!
//! **No stampede.** Concurrent misses of one key in one process share one database read
//! (single-flight). With [`CacheAsideOptions::stampede_lease`], instances also agree on one
//! loader: a miss takes a lease in the cache (`set_if_absent` on a lease key, living `hold`);
//! an instance that does not get it waits up to `hold` for the loader's warm and serves it,
//! and loads itself only if none comes.
//!
//! [`CacheAsideOptions::invalidation_hold`]: crate::CacheAsideOptions::invalidation_hold
//! [`CacheAsideOptions::stampede_lease`]: crate::CacheAsideOptions::stampede_lease

use crate::cache_aside::CacheAside;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use storage_core::telemetry;
use storage_core::{Error, Result};
use tokio::sync::watch;

/// The member of the object that marks an invalidated key: no JSON a caller stores can carry
/// it by accident (U+0000 starts it).
const MARKER: &str = "\u{0}storage:invalidated";

/// The prefix of a stampede lease's key, beside the key it guards. U+0001 starts it, so no
/// text key a person writes takes it by accident.
const LEASE_PREFIX: &str = "\u{1}lease:";

/// How often an instance without the stampede lease looks for the loader's warm.
const LEASE_POLL: Duration = Duration::from_millis(5);

/// What marks a key invalidated in the cache.
pub(crate) fn marker() -> Value {
    json!({ MARKER: true })
}

/// Whether `value` is an invalidation marker (a miss, for readers).
pub(crate) fn is_marker(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|o| o.len() == 1 && o.contains_key(MARKER))
}

/// The result of one shared load, as the waiting readers receive it.
type Shared = Option<std::result::Result<Option<Value>, (storage_core::ErrorKind, String, bool)>>;

/// The loads in flight in this process, by key: the first miss loads, the others wait for it.
#[derive(Default)]
pub(crate) struct Loads {
    in_flight: Mutex<HashMap<String, watch::Receiver<Shared>>>,
    /// Loads finished (of any key): a miss that saw this move since its cache read looks in
    /// the cache again before loading, as a load that finished meanwhile may have warmed it.
    finished: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes the key's entry when the loader is done (or dropped mid-load), so that the next
/// miss loads afresh.
struct Leader<'a> {
    loads: &'a Loads,
    key: &'a str,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        lock(&self.loads.in_flight).remove(self.key);
        self.loads.finished.fetch_add(1, Ordering::AcqRel);
    }
}

impl CacheAside {
    /// Lazy loading: the cache, else the database, warming the cache on the way back unless a
    /// write invalidated the key meanwhile (see the module docs).
    pub async fn get(&self, key: &str) -> Result<Option<Value>> {
        let finished = self.loads.finished.load(Ordering::Acquire);
        match self.cache.get(key).await {
            Ok(Some(v)) if !is_marker(&v) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(telemetry::CACHE_HITS).increment(1);
                return Ok(Some(v));
            }
            Ok(_) => {}
            Err(e) => self.cache_failed("get", key, &e),
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(telemetry::CACHE_MISSES).increment(1);
        self.load_once(key, finished).await
    }

    /// One load per key at a time in this process: the first caller loads, the others share
    /// its result. `finished` is [`Loads::finished`] from before the caller's cache read: a
    /// load that ended since may have warmed the key (a miss arriving just after a stampede
    /// would otherwise load again).
    async fn load_once(&self, key: &str, finished: u64) -> Result<Option<Value>> {
        let waiting = {
            let mut in_flight = lock(&self.loads.in_flight);
            match in_flight.get(key) {
                Some(rx) => Err(rx.clone()),
                None => {
                    let (tx, rx) = watch::channel(None);
                    in_flight.insert(key.to_string(), rx);
                    Ok(tx)
                }
            }
        };
        let tx = match waiting {
            Ok(tx) => tx,
            Err(rx) => return self.share(key, rx).await,
        };
        let _leader = Leader {
            loads: &self.loads,
            key,
        };
        let result = if self.loads.finished.load(Ordering::Acquire) != finished {
            match self.cache.get(key).await {
                Ok(Some(v)) if !is_marker(&v) => {
                    self.coalesced.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(telemetry::CACHE_COALESCED_LOADS).increment(1);
                    Ok(Some(v))
                }
                _ => self.load(key).await,
            }
        } else {
            self.load(key).await
        };
        let _ = tx.send(Some(match &result {
            Ok(v) => Ok(v.clone()),
            Err(e) => Err((e.kind(), e.to_string(), e.is_temporary())),
        }));
        result
    }

    /// Waits for the load in flight and returns its result.
    async fn share(&self, key: &str, mut rx: watch::Receiver<Shared>) -> Result<Option<Value>> {
        self.coalesced.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(telemetry::CACHE_COALESCED_LOADS).increment(1);
        let shared = rx
            .wait_for(Option::is_some)
            .await
            .map(|s| s.clone())
            .unwrap_or(None);
        match shared {
            Some(Ok(value)) => Ok(value),
            Some(Err((kind, message, temporary))) => {
                let e = Error::new(
                    kind,
                    format!("the shared load of {key:?} failed: {message}"),
                );
                Err(if temporary {
                    e.temporary()
                } else {
                    e.permanent()
                })
            }
            // The loader went away without a result (its caller was cancelled): load here.
            None => self.load(key).await,
        }
    }

    /// The database read and the warm, behind the stampede lease when it is on.
    async fn load(&self, key: &str) -> Result<Option<Value>> {
        let lease = if self.stampede_lease {
            match self.take_lease(key).await {
                Lease::Held(k) => Some(k),
                Lease::Served(value) => return Ok(Some(value)),
                Lease::Absent => None,
            }
        } else {
            None
        };
        let started = Instant::now();
        let read = self.database.get(key).await;
        if let Ok(Some(v)) = &read {
            self.warm(key, v, started).await;
        }
        if let Some(lease_key) = lease {
            let _ = self.cache.delete(&lease_key).await;
        }
        read
    }

    /// Puts `value`, read by a load that started at `started`, in the cache: only where the
    /// cache holds nothing for the key, and only while the load is within the hold.
    async fn warm(&self, key: &str, value: &Value, started: Instant) {
        if started.elapsed() >= self.hold {
            self.leases_lost.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(telemetry::CACHE_LEASES_LOST).increment(1);
            return;
        }
        match self.cache.set_if_absent(key, value, self.entry_ttl()).await {
            Ok(true) => {}
            // A write or an invalidation got there first: its value or marker stays.
            Ok(false) => {
                self.leases_lost.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(telemetry::CACHE_LEASES_LOST).increment(1);
            }
            Err(e) => self.cache_failed("warm", key, &e),
        }
    }

    /// Takes the stampede lease for `key`, or waits for the instance that holds it.
    async fn take_lease(&self, key: &str) -> Lease {
        let lease_key = format!("{LEASE_PREFIX}{key}");
        match self
            .cache
            .set_if_absent(&lease_key, &json!(true), Some(self.hold))
            .await
        {
            Ok(true) => {
                metrics::counter!(telemetry::CACHE_LEASES_TAKEN).increment(1);
                return Lease::Held(lease_key);
            }
            Ok(false) => {}
            Err(e) => {
                self.cache_failed("lease", key, &e);
                return Lease::Absent;
            }
        }
        // Another instance loads: serve its warm when it lands, within the hold.
        let deadline = Instant::now() + self.hold;
        while Instant::now() < deadline {
            tokio::time::sleep(LEASE_POLL).await;
            match self.cache.get(key).await {
                Ok(Some(v)) if !is_marker(&v) => {
                    self.coalesced.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(telemetry::CACHE_COALESCED_LOADS).increment(1);
                    return Lease::Served(v);
                }
                Ok(_) => {}
                Err(_) => break,
            }
            // The lease is gone: the loader finished. Its warm may have landed between the read
            // above and now, so look once more before loading (else a straggler loads again).
            if !matches!(self.cache.exists(&lease_key).await, Ok(true)) {
                if let Ok(Some(v)) = self.cache.get(key).await
                    && !is_marker(&v)
                {
                    self.coalesced.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(telemetry::CACHE_COALESCED_LOADS).increment(1);
                    return Lease::Served(v);
                }
                break; // it finished without a warm (nothing stored, or it was invalidated)
            }
        }
        Lease::Absent
    }
}

/// What the stampede lease gave.
enum Lease {
    /// This instance loads; the lease key to release.
    Held(String),
    /// Another instance loaded and warmed: its value.
    Served(Value),
    /// No lease (its holder finished without a warm, or the cache failed): load without one.
    Absent,
}
