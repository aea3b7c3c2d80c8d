//! A near cache: an in-process level in front of a cache or a database, kept coherent with
//! every other instance through the store's change log ([`storage_core::watch`]). Not the
//! trait impls that route each operation (`near_cache_ops.rs`).
//!
//! **Coherence.** A task reads the store's change log and drops each changed key from this
//! level (the whole level on a clear, or when it fell behind the log). Before each read of the
//! log it notes the time; once it has applied everything that read returned, that time is the
//! level's *sync point*: every write acknowledged before it has been applied here. The level
//! serves a value only while its sync point is within [`NearCacheOptions::max_staleness`] of
//! now; otherwise (the log unreachable, the task behind) every read goes to the store. So a
//! value served here is never staler than that bound, and in practice as stale as the log's
//! delivery (milliseconds; see `BENCHMARKS.md`).
//!
//! A read that misses and fills the level from the store may race a write: it notes the
//! invalidations of its key's stripe before reading and fills only if none was applied since,
//! so a fill never puts back a value an applied invalidation removed; a write applied after
//! the fill removes it when its change arrives.
//!
//! **Eager refresh** (opt-in, [`NearCacheOptions::refresh_after`]): a hit on an entry at least
//! that old is served and its key reloaded in the background (one reload per key at a time),
//! so a key read often is replaced before it expires instead of missing when it does.
//!
//! **Fail-safe** (opt-in, [`NearCacheOptions::fail_safe`]): the last value read for each key
//! is kept for that long; when the store fails with a temporary error, a read serves it,
//! counted as stale ([`NearCacheStats::stale_served`]) and marked in
//! [`NearCache::get_with_freshness`].

use moka::sync::Cache as Level;
use serde_json::Value;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use storage_core::Store;
use storage_core::telemetry::{NEAR_CACHE_FLUSHES, NEAR_CACHE_INVALIDATIONS, NEAR_CACHE_STALENESS};
use storage_core::watch::ChangeKind;

/// Stripes of invalidation counters: a fill checks its key's stripe only.
const STRIPES: usize = 256;

/// Changes read from the log per request.
const BATCH: usize = 512;

pub use storage_core::config::NearCacheOptions;

/// What a [`NearCache`] has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NearCacheStats {
    /// Reads served by this level.
    pub hits: u64,
    /// Reads that went to the store while this level was in sync.
    pub misses: u64,
    /// Reads that went to the store because this level was out of sync.
    pub bypassed: u64,
    /// Changes received from the log (each dropped a key or the level).
    pub invalidations: u64,
    /// Times the whole level was dropped (a clear, a watcher behind the log).
    pub flushes: u64,
    /// Reads answered with a fail-safe value while the store failed.
    pub stale_served: u64,
    /// Entries reloaded in the background before they expired (eager refresh).
    pub refreshes: u64,
}

/// How fresh a value [`NearCache::get_with_freshness`] returned is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Read from the store, or from this level while in sync.
    Fresh,
    /// The store failed; this is the last value read, `age` ago.
    Stale {
        /// How long ago it was read from the store.
        age: Duration,
    },
}

/// The state the operations and the sync task share.
pub(crate) struct Shared {
    /// Each value with when it was filled (for eager refresh).
    pub(crate) entries: Level<String, (Arc<Value>, Instant)>,
    pub(crate) last_known: Option<Level<String, (Arc<Value>, Instant)>>,
    pub(crate) fail_safe: Option<Duration>,
    max_staleness: Duration,
    refresh_after: Option<Duration>,
    /// Keys being reloaded in the background.
    refreshing: Mutex<HashSet<String>>,
    /// What the sync point is measured from.
    origin: Instant,
    /// The sync point: when the last fully applied read of the log started, in nanoseconds
    /// after `origin` plus one (0: never). An atomic, as every hit reads it.
    synced_at: AtomicU64,
    stripes: Vec<AtomicU64>,
    /// Bumped by every flush: a fill checks it with its stripe.
    epoch: AtomicU64,
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) bypassed: AtomicU64,
    invalidations: AtomicU64,
    flushes: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    pub(crate) refreshes: AtomicU64,
}

/// A fill's ticket: the invalidations of its key's stripe when its read started.
#[derive(Clone, Copy)]
pub(crate) struct Ticket {
    stripe: usize,
    seen: u64,
    epoch: u64,
}

fn stripe(key: &str) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() as usize) % STRIPES
}

impl Shared {
    fn new(options: &NearCacheOptions) -> Shared {
        // Options built in code are not checked like a config file's: a lifetime past what the
        // level can represent is capped, not a panic.
        let longest = Duration::from_millis(storage_core::config::NEAR_CACHE_MAX_MILLIS);
        // One capacity bounds both: an entry weighs its bytes, and at least an equal share of
        // the bytes, so that no more than `max_entries` fit.
        let share = (options.max_bytes / options.max_entries.max(1)).max(1);
        let entries = Level::builder()
            .max_capacity(options.max_bytes)
            .weigher(move |k: &String, (v, _): &(Arc<Value>, Instant)| {
                let bytes =
                    k.len() as u64 + serde_json::to_string(&**v).map_or(0, |t| t.len() as u64);
                u32::try_from(bytes.max(share)).unwrap_or(u32::MAX)
            })
            .time_to_live(options.ttl.clamp(Duration::from_millis(1), longest))
            .build();
        Shared {
            entries,
            last_known: options.fail_safe.map(|keep| {
                Level::builder()
                    .max_capacity(options.max_entries)
                    .time_to_live(keep.clamp(Duration::from_millis(1), longest))
                    .build()
            }),
            fail_safe: options.fail_safe,
            max_staleness: options.max_staleness,
            refresh_after: options.refresh_after.filter(|after| *after < options.ttl),
            refreshing: Mutex::new(HashSet::new()),
            origin: Instant::now(),
            synced_at: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            epoch: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            bypassed: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            stale_served: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
        }
    }

    /// Whether this level may serve: its sync point is within the bound.
    pub(crate) fn in_sync(&self) -> bool {
        match self.synced_at.load(Ordering::Acquire) {
            0 => false,
            at => {
                let now = self.origin.elapsed().as_nanos() as u64 + 1;
                let bound = u64::try_from(self.max_staleness.as_nanos()).unwrap_or(u64::MAX);
                now.saturating_sub(at) <= bound
            }
        }
    }

    /// Records a sync point: everything written before `read_at` has been applied.
    fn synced(&self, read_at: Instant) {
        let at = read_at.saturating_duration_since(self.origin).as_nanos() as u64 + 1;
        self.synced_at.fetch_max(at, Ordering::AcqRel);
    }

    /// Whether an entry filled at `filled` is due for an eager refresh, and if so claims the
    /// key's reload (false when another is under way).
    pub(crate) fn claim_refresh(&self, key: &str, filled: Instant) -> bool {
        let due = self
            .refresh_after
            .is_some_and(|after| filled.elapsed() >= after);
        due && self
            .refreshing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string())
    }

    /// Ends the reload of `key` claimed by [`Shared::claim_refresh`].
    pub(crate) fn refreshed(&self, key: &str) {
        self.refreshing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    pub(crate) fn ticket(&self, key: &str) -> Ticket {
        let stripe = stripe(key);
        Ticket {
            stripe,
            seen: self.stripes[stripe].load(Ordering::Acquire),
            epoch: self.epoch.load(Ordering::Acquire),
        }
    }

    /// Fills `key` with what a read under `ticket` returned (and keeps it for the fail-safe),
    /// unless `keep` is false, an invalidation of its stripe (or a flush) was applied since the
    /// read started, or the level is out of sync.
    pub(crate) fn fill(&self, key: &str, value: &Value, ticket: Ticket, keep: bool) {
        let value = Arc::new(value.clone());
        if let Some(last) = &self.last_known {
            last.insert(key.to_string(), (value.clone(), Instant::now()));
        }
        if keep
            && self.in_sync()
            && self.stripes[ticket.stripe].load(Ordering::Acquire) == ticket.seen
            && self.epoch.load(Ordering::Acquire) == ticket.epoch
        {
            self.entries
                .insert(key.to_string(), (value, Instant::now()));
        }
    }

    /// Drops `key` (a change arrived, or this instance wrote it).
    pub(crate) fn invalidate(&self, key: &str) {
        self.stripes[stripe(key)].fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate(key);
    }

    /// Drops everything.
    pub(crate) fn flush(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate_all();
        self.flushes.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(NEAR_CACHE_FLUSHES).increment(1);
    }

    pub(crate) fn stats(&self) -> NearCacheStats {
        NearCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bypassed: self.bypassed.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
            stale_served: self.stale_served.load(Ordering::Relaxed),
            refreshes: self.refreshes.load(Ordering::Relaxed),
        }
    }
}

/// An in-process level over `R` (`dyn Cache` or `dyn Database`) that every instance's writes
/// invalidate. Build it with [`NearCache::database`] or [`NearCache::cache`]; it is a
/// `Database` or a `Cache` itself. Only `get` is served from the level; every other operation
/// goes to the store (writes drop the key here first).
pub struct NearCache<R: ?Sized> {
    pub(crate) inner: Arc<R>,
    pub(crate) shared: Arc<Shared>,
    /// The cache role's store, whose entries expire: a fill asks it for the key's TTL.
    pub(crate) expiring: Option<Arc<dyn storage_core::Cache>>,
    sync: tokio::task::JoinHandle<()>,
}

impl<R: ?Sized> std::fmt::Debug for NearCache<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NearCache")
            .field("stats", &self.shared.stats())
            .finish()
    }
}

impl<R: ?Sized> Drop for NearCache<R> {
    fn drop(&mut self) {
        self.sync.abort();
    }
}

impl<R: ?Sized> NearCache<R> {
    pub(crate) fn build(
        inner: Arc<R>,
        store: Arc<dyn Store>,
        expiring: Option<Arc<dyn storage_core::Cache>>,
        options: &NearCacheOptions,
    ) -> Self {
        let shared = Arc::new(Shared::new(options));
        // Waits for the log at most half the bound, so that a quiet log still moves the sync
        // point in time; never more than a second (a longer wait gains nothing).
        let limit =
            (options.max_staleness / 2).clamp(Duration::from_millis(1), Duration::from_secs(1));
        let sync = tokio::spawn(follow(store, Arc::downgrade(&shared), limit));
        NearCache {
            inner,
            shared,
            expiring,
            sync,
        }
    }

    /// What it has done so far.
    pub fn stats(&self) -> NearCacheStats {
        self.shared.stats()
    }

    /// Whether it serves from the level now (its sync point is within the bound).
    pub fn in_sync(&self) -> bool {
        self.shared.in_sync()
    }
}

/// The sync task: reads the store's change log from where it stands, drops what changed,
/// and moves the sync point; ends when the near cache is dropped.
async fn follow(store: Arc<dyn Store>, shared: Weak<Shared>, limit: Duration) {
    let mut position: Option<u64> = None;
    let mut backoff = Duration::from_millis(20);
    loop {
        let read_at = Instant::now();
        let window = store.changes(position, BATCH).await;
        let Some(level) = shared.upgrade() else {
            return;
        };
        match window {
            Ok(window) => {
                backoff = Duration::from_millis(20);
                match position {
                    // The first read says where the log ends: the level is empty, nothing to drop.
                    None => {}
                    Some(at) if window.oldest > at => level.flush(),
                    Some(_) => {}
                }
                let full = window.changes.len() >= BATCH;
                let now = storage_core::watch::now_ms();
                for change in &window.changes {
                    level.invalidations.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(NEAR_CACHE_INVALIDATIONS).increment(1);
                    if let Some(at) = change.at_ms {
                        let late = now.saturating_sub(at) as f64 / 1000.0;
                        metrics::histogram!(NEAR_CACHE_STALENESS).record(late);
                    }
                    match change.kind {
                        ChangeKind::Cleared => level.flush(),
                        _ => level.invalidate(&change.key),
                    }
                }
                position = Some(window.next);
                if full {
                    continue; // more to apply before this read counts as a sync point
                }
                level.synced(read_at);
            }
            Err(e) if e.is_temporary() => {
                tracing::debug!(error = %e, "near cache: the change log is unreachable; reads go to the store");
                drop(level);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "near cache: the store keeps no usable change log; every read goes to the store");
                return;
            }
        }
        drop(level);
        let from = position.unwrap_or(0);
        if store.wait_for_changes(from, limit).await.is_err() {
            tokio::time::sleep(limit).await;
        }
    }
}
