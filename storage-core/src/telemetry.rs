//! The names of every metric and span attribute the project emits, and the helpers that emit
//! them through the [`metrics`] facade.
//!
//! Names and attributes follow OpenTelemetry's semantic conventions for database clients
//! (`db.client.operation.duration`, `db.system.name`, `db.operation.name`, `error.type`, the
//! `db.client.connection.*` pool metrics); what those conventions do not cover (the role,
//! cache-aside, write-behind, fallback) is under `storage.`. Without an installed recorder the
//! facade drops everything: an operation then pays two clock reads, a read lock and a no-op
//! record on a cached handle.
//!
//! This module emits nothing by itself and installs no recorder or exporter: the application
//! chooses one (for Prometheus, `metrics-exporter-prometheus`).
//!
//! ```
//! use storage_core::telemetry;
//! // Describe every series once, so an exporter can print help text and units.
//! telemetry::describe();
//! assert_eq!(telemetry::OPERATION_DURATION, "db.client.operation.duration");
//! ```

use crate::error::ErrorKind;
use metrics::{Label, SharedString, Unit};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Histogram, seconds: the duration of each operation, as the application sees it (validation,
/// retries and pool waits included). Labels: [`SYSTEM`], [`OPERATION`], [`ROLE`], and
/// [`ERROR_TYPE`] on failure.
pub const OPERATION_DURATION: &str = "db.client.operation.duration";
/// Gauge: the connections of a pool, by [`CONNECTION_STATE`] (`idle` or `used`). Labels:
/// [`SYSTEM`], [`POOL_NAME`], [`CONNECTION_STATE`].
pub const CONNECTION_COUNT: &str = "db.client.connection.count";
/// Gauge: the largest number of connections a pool may open. Labels: [`SYSTEM`], [`POOL_NAME`].
pub const CONNECTION_MAX: &str = "db.client.connection.max";
/// Counter: checkouts that had to wait for a connection. Labels: [`SYSTEM`], [`POOL_NAME`].
pub const CONNECTION_WAITS: &str = "db.client.connection.waits";
/// Counter: checkouts that gave up after the acquire timeout. Labels: [`SYSTEM`], [`POOL_NAME`].
pub const CONNECTION_TIMEOUTS: &str = "db.client.connection.timeouts";

/// Counter: cache-aside reads answered by the cache.
pub const CACHE_HITS: &str = "storage.cache_aside.hits";
/// Counter: cache-aside reads the cache could not answer (missing, or a cache error).
pub const CACHE_MISSES: &str = "storage.cache_aside.misses";
/// Counter: cache-aside misses that shared another read's database load (in this process, or
/// through another instance's stampede lease) instead of loading themselves.
pub const CACHE_COALESCED_LOADS: &str = "storage.cache_aside.coalesced_loads";
/// Counter: stampede leases taken (this instance loaded for every instance).
pub const CACHE_LEASES_TAKEN: &str = "storage.cache_aside.leases_taken";
/// Counter: warms given up because a write or an invalidation came first, or the load took
/// longer than the invalidation hold (what would have been a stale warm).
pub const CACHE_LEASES_LOST: &str = "storage.cache_aside.leases_lost";
/// Counter: near-cache reads served in process.
pub const NEAR_CACHE_HITS: &str = "storage.near_cache.hits";
/// Counter: near-cache reads that went to the store (missing, or the level out of sync).
pub const NEAR_CACHE_MISSES: &str = "storage.near_cache.misses";
/// Counter: changes received from the store's log.
pub const NEAR_CACHE_INVALIDATIONS: &str = "storage.near_cache.invalidations";
/// Counter: times the whole level was dropped.
pub const NEAR_CACHE_FLUSHES: &str = "storage.near_cache.flushes";
/// Histogram, seconds: how long after a write elsewhere a near cache applied its change (the
/// change's time by the clock that filed it against this process's clock: exact on one host,
/// skewed by the clocks' difference across hosts).
pub const NEAR_CACHE_STALENESS: &str = "storage.near_cache.staleness";
/// Counter: fail-safe values served while the store failed.
pub const NEAR_CACHE_STALE_SERVED: &str = "storage.near_cache.stale_served";
/// Counter: background reloads of entries read near the end of their life (eager refresh).
pub const NEAR_CACHE_REFRESHES: &str = "storage.near_cache.refreshes";
/// Gauge: writes queued by write-behind and not yet in the database.
pub const WRITE_BEHIND_DEPTH: &str = "storage.write_behind.queue_depth";
/// Counter: write-behind writes the database refused (kept and reported until retried).
pub const WRITE_BEHIND_FAILED: &str = "storage.write_behind.failed_writes";

/// Gauge, per role: 1 while the role is served by a fallback or by nothing, 0 while its
/// primary serves. Labels: [`ROLE`], [`SYSTEM`] (the serving backend's type, or `none`).
pub const ROLE_DEGRADED: &str = "storage.role.degraded";
/// Counter: walks of a role's fallback chain (a connect that did not end on the primary).
/// Labels: [`ROLE`].
pub const FALLBACK_WALKS: &str = "storage.fallback.walks";
/// Counter: connect attempts repeated after a transient failure. Labels: [`ROLE`], [`SYSTEM`].
pub const CONNECT_RETRIES: &str = "storage.connect.retries";

/// Label: the backend's type name as in configuration (a built-in type or a plugin's).
pub const SYSTEM: &str = "db.system.name";
/// Label: the operation (`get`, `mset`, `append`, ...).
pub const OPERATION: &str = "db.operation.name";
/// Label: the error's kind (`connection`, `timeout`, ...), on failed operations only.
pub const ERROR_TYPE: &str = "error.type";
/// Label: `cache` or `database`.
pub const ROLE: &str = "storage.role";
/// Label: a pool's name: the backend's redacted description.
pub const POOL_NAME: &str = "db.client.connection.pool.name";
/// Label: `idle` or `used`.
pub const CONNECTION_STATE: &str = "db.client.connection.state";

/// Describes every series (help text and unit) to the installed recorder. Call it once after
/// installing one; without a recorder it does nothing.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        OPERATION_DURATION,
        Unit::Seconds,
        "Duration of storage operations"
    );
    describe_gauge!(CONNECTION_COUNT, "Connections of a pool, by state");
    describe_gauge!(
        CONNECTION_MAX,
        "Largest number of connections a pool may open"
    );
    describe_counter!(
        CONNECTION_WAITS,
        "Pool checkouts that waited for a connection"
    );
    describe_counter!(CONNECTION_TIMEOUTS, "Pool checkouts that timed out");
    describe_counter!(CACHE_HITS, "Cache-aside reads answered by the cache");
    describe_counter!(CACHE_MISSES, "Cache-aside reads the cache could not answer");
    describe_counter!(
        CACHE_COALESCED_LOADS,
        "Cache-aside misses that shared another read's load"
    );
    describe_counter!(CACHE_LEASES_TAKEN, "Cache-aside stampede leases taken");
    describe_counter!(NEAR_CACHE_HITS, "Near-cache reads served in process");
    describe_counter!(NEAR_CACHE_MISSES, "Near-cache reads that went to the store");
    describe_counter!(
        NEAR_CACHE_INVALIDATIONS,
        "Changes a near cache received from its store's log"
    );
    describe_counter!(NEAR_CACHE_FLUSHES, "Times a near cache dropped everything");
    describe_histogram!(
        NEAR_CACHE_STALENESS,
        Unit::Seconds,
        "How long after a write elsewhere a near cache applied its change"
    );
    describe_counter!(
        NEAR_CACHE_STALE_SERVED,
        "Fail-safe values a near cache served while its store failed"
    );
    describe_counter!(
        NEAR_CACHE_REFRESHES,
        "Near-cache entries reloaded in the background before they expired"
    );
    describe_counter!(
        CACHE_LEASES_LOST,
        "Cache-aside warms given up for a newer write or a slow load"
    );
    describe_gauge!(
        WRITE_BEHIND_DEPTH,
        "Write-behind writes not yet in the database"
    );
    describe_counter!(
        WRITE_BEHIND_FAILED,
        "Write-behind writes the database refused"
    );
    describe_gauge!(ROLE_DEGRADED, "1 while a role is not served by its primary");
    describe_counter!(FALLBACK_WALKS, "Connects that did not end on the primary");
    describe_counter!(
        CONNECT_RETRIES,
        "Connect attempts repeated after a transient failure"
    );
}

/// The labels every operation of one backend shares, built once when it is wrapped, and the
/// histogram handle of each operation's successes, looked up again at most once a second (so
/// that a recorder installed after the backend was opened is picked up). With no recorder, an
/// operation costs a read lock and a no-op record, not a key built and hashed per call.
#[derive(Debug)]
pub(crate) struct OperationLabels {
    system: SharedString,
    role: SharedString,
    /// One entry per operation name used so far (a few dozen at most): a scan of short names
    /// costs less than hashing one.
    handles: std::sync::RwLock<Vec<(&'static str, metrics::Histogram, Instant)>>,
}

/// How long a cached histogram handle is used before it is looked up again.
const HANDLE_REFRESH: Duration = Duration::from_secs(1);

impl OperationLabels {
    pub(crate) fn new(system: &str, role: Option<&str>) -> Self {
        OperationLabels {
            system: SharedString::from(Arc::<str>::from(system)),
            role: SharedString::from(Arc::<str>::from(role.unwrap_or("unknown"))),
            handles: Default::default(),
        }
    }

    pub(crate) fn role(&self) -> &str {
        &self.role
    }

    fn labels(&self, op: &'static str, error: Option<ErrorKind>) -> Vec<Label> {
        let mut labels = Vec::with_capacity(4);
        labels.push(Label::new(SYSTEM, self.system.clone()));
        labels.push(Label::new(ROLE, self.role.clone()));
        labels.push(Label::from_static_parts(OPERATION, op));
        if let Some(kind) = error {
            labels.push(Label::from_static_parts(ERROR_TYPE, kind.code()));
        }
        labels
    }

    /// Records one operation that ended at `now` after `took`, with its error kind when it
    /// failed.
    pub(crate) fn record(
        &self,
        op: &'static str,
        took: Duration,
        now: Instant,
        error: Option<ErrorKind>,
    ) {
        let seconds = took.as_secs_f64();
        if error.is_some() {
            // Failures are rare: their series is looked up each time.
            metrics::histogram!(OPERATION_DURATION, self.labels(op, error)).record(seconds);
            return;
        }
        {
            let handles = self.handles.read().unwrap_or_else(|e| e.into_inner());
            if let Some((_, handle, at)) = handles.iter().find(|(name, ..)| *name == op)
                && now.saturating_duration_since(*at) < HANDLE_REFRESH
            {
                handle.record(seconds);
                return;
            }
        }
        let handle = metrics::histogram!(OPERATION_DURATION, self.labels(op, None));
        handle.record(seconds);
        let mut handles = self.handles.write().unwrap_or_else(|e| e.into_inner());
        match handles.iter_mut().find(|(name, ..)| *name == op) {
            Some(cached) => *cached = (op, handle, now),
            None => handles.push((op, handle, now)),
        }
    }
}

/// A pool's state, as its backend reads it from bb8 or r2d2 (both count open and idle
/// connections; the ones in use are the difference).
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolState {
    /// Connections open, in use or idle.
    pub open: u32,
    /// Connections open and waiting.
    pub idle: u32,
    /// Checkouts that had to wait for a connection, since the pool was built.
    pub waited_total: u64,
    /// Checkouts that timed out, since the pool was built.
    pub timed_out_total: u64,
}

/// Reports one pool's state as the `db.client.connection.*` series, at most ten times a
/// second whatever the rate of operations, so that a busy backend does not pay for it on
/// every call.
#[derive(Debug)]
pub struct PoolReporter {
    labels: [Label; 2],
    max: u32,
    started: std::time::Instant,
    /// Milliseconds after `started` of the last report.
    last: std::sync::atomic::AtomicU64,
}

impl PoolReporter {
    /// A reporter for the pool named `pool` (a redacted description) of backend type `system`,
    /// which opens at most `max` connections.
    pub fn new(system: &str, pool: &str, max: u32) -> Self {
        PoolReporter {
            labels: [
                Label::new(SYSTEM, system.to_string()),
                Label::new(POOL_NAME, pool.to_string()),
            ],
            max,
            started: std::time::Instant::now(),
            last: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Reports `state()` unless a report was made less than 100 ms ago.
    pub fn maybe_report(&self, state: impl FnOnce() -> PoolState) {
        use std::sync::atomic::Ordering;
        let now = self.started.elapsed().as_millis() as u64 + 100;
        let last = self.last.load(Ordering::Relaxed);
        if now < last + 100
            || self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.report(state());
    }

    /// Reports `state` now.
    pub fn report(&self, state: PoolState) {
        let with_state = |s: &'static str| {
            let mut l = self.labels.to_vec();
            l.push(Label::from_static_parts(CONNECTION_STATE, s));
            l
        };
        let used = state.open.saturating_sub(state.idle);
        metrics::gauge!(CONNECTION_COUNT, with_state("used")).set(f64::from(used));
        metrics::gauge!(CONNECTION_COUNT, with_state("idle")).set(f64::from(state.idle));
        metrics::gauge!(CONNECTION_MAX, self.labels.to_vec()).set(f64::from(self.max));
        metrics::counter!(CONNECTION_WAITS, self.labels.to_vec()).absolute(state.waited_total);
        metrics::counter!(CONNECTION_TIMEOUTS, self.labels.to_vec())
            .absolute(state.timed_out_total);
    }
}
