//! The SQLite backend, registered as `sqlite`: the embedded default database, and a TTL cache
//! for single-machine deployments.
//!
//! It runs on an r2d2 pool of bundled-SQLite connections, and every SQLite call runs on tokio's
//! blocking threads, never on an async worker.
//!
//! - **Files.** WAL mode; writes are `BEGIN IMMEDIATE` transactions, and a writer waits up to
//!   `busyTimeoutMillis` for another process instead of failing, so several processes can share
//!   one file. `synchronous` is `full` by default (a committed write survives power loss);
//!   `normal` survives a crash of the process but may lose the last commits on power loss.
//! - **Identity.** The file carries an `application_id` and a schema version; migrations run on
//!   connect. A file of another application, a newer schema, a non-SQLite or corrupt file is
//!   refused with a clear error and never written to.
//! - **Namespaces** are a column, so they are exact.
//! - **Lists** are one row per item with a dense per-key sequence, and a header row that holds
//!   the length: append, `get_length` and tail reads are index lookups, never scans.
//! - **keys(pattern)** scans the index range of the pattern's literal prefix and filters with
//!   storage-core's Redis matcher (LIKE and GLOB would answer differently).
//! - `:memory:` is one in-memory database shared by the whole pool (the `memdb` VFS).
//!
//! It is not a server: for many machines sharing data, use PostgreSQL.
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use storage_core::config::BackendSpec;
//! use storage_sqlite::SqliteConfig;
//! use serde_json::json;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let spec = BackendSpec::new(SqliteConfig::file(dir.path().join("app.db")));
//! let db = storage_sqlite::open_database(&spec).await.unwrap();
//! db.append("history", &json!({"role": "user", "content": "hi"})).await.unwrap();
//! assert_eq!(db.get_length("history").await.unwrap(), 1);
//! # });
//! ```

#![warn(missing_docs)]

mod backend;
pub mod config;
mod open;
mod schema;
pub mod sql;

pub use config::{SqliteConfig, SqliteLocation, SqliteSync, TYPE_NAME};
pub use open::{open, open_in_memory, open_with};
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};

use async_trait::async_trait;
use r2d2_sqlite::SqliteConnectionManager;
use r2d2_sqlite::rusqlite::{self, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use schema::sql_error;
use serde_json::Value;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use storage_core::config::{BackendConfig, BackendSpec, BlockInput, Role};
use storage_core::{
    BackendFactory, Cache, CacheEntry, Checked, Database, Error, KeyKind, KeyTtl, Result, Store,
    glob_match, literal_prefix, lrange_window, prefix_upper_bound,
};

const KIND_VALUE: i64 = 0;
const KIND_LIST: i64 = 1;
/// Expired rows are reclaimed on one cache write in this many.
const RECLAIM_EVERY: u64 = 128;

type Pool = r2d2::Pool<SqliteConnectionManager>;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn encode(value: &Value) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::invalid_value(format!("cannot encode value: {e}")))
}

fn decode(key: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        Error::other(format!(
            "the value stored at {key:?} is not valid JSON: {e}"
        ))
    })
}

/// One pool-reaper thread for every pool of the process, instead of r2d2's three per pool.
fn reaper() -> Arc<scheduled_thread_pool::ScheduledThreadPool> {
    static POOL: OnceLock<Arc<scheduled_thread_pool::ScheduledThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        Arc::new(
            scheduled_thread_pool::ScheduledThreadPool::builder()
                .num_threads(1)
                .thread_name_pattern("storage-sqlite-reaper-{}")
                .build(),
        )
    })
    .clone()
}

/// A namespace of one SQLite database; serves both roles.
pub struct SqliteBackend {
    pool: RwLock<Option<Pool>>,
    ns: Arc<str>,
    location: String,
    /// For `:memory:`, a connection that keeps the shared in-memory database alive while the
    /// pool's own connections come and go.
    _anchor: Option<Mutex<Connection>>,
    writes: AtomicU64,
    pool_metrics: Arc<PoolMetrics>,
    /// How long a statement waits for another writer's lock (`options.busyTimeoutMillis`).
    busy: Duration,
    /// The whole operation's limit (`operationTimeoutMillis`): checkout and lock waits included.
    operation_timeout: Duration,
    /// The pool's checkout limit (`acquireTimeoutMillis`).
    acquire: Duration,
}

/// The pool's `db.client.connection.*` series: r2d2 reports its connections; timed-out
/// checkouts are counted here (r2d2 does not count them, nor the checkouts that waited).
#[derive(Debug)]
struct PoolMetrics {
    reporter: storage_core::telemetry::PoolReporter,
    timeouts: AtomicU64,
}

impl PoolMetrics {
    fn report(&self, pool: &Pool) {
        self.reporter.maybe_report(|| {
            let state = pool.state();
            storage_core::telemetry::PoolState {
                open: state.connections,
                idle: state.idle_connections,
                waited_total: 0,
                timed_out_total: self.timeouts.load(Ordering::Relaxed),
            }
        });
    }
}

impl fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("location", &self.location)
            .field("key_prefix", &self.ns)
            .finish()
    }
}

/// Opens a checked SQLite database for `spec`.
pub async fn open_database(spec: &BackendSpec) -> Result<Arc<dyn Database>> {
    storage_core::open_database(&SqliteFactory, spec).await
}

/// Opens a checked SQLite cache for `spec`.
pub async fn open_cache(spec: &BackendSpec) -> Result<Arc<dyn Cache>> {
    storage_core::open_cache(&SqliteFactory, spec).await
}

impl SqliteBackend {
    /// Opens (creating if needed) the database that `spec` names, checks and migrates its
    /// schema, and builds the pool. Blocking work runs on a blocking thread.
    pub async fn open(spec: &BackendSpec) -> Result<SqliteBackend> {
        open::require_runtime()?;
        let settings = spec.settings::<SqliteConfig>()?.clone();
        let ns: Arc<str> = spec.common.key_prefix.as_str().into();
        let pool_max = spec.common.pool_max;
        let pool_min = spec.common.pool_min;
        let acquire = spec.common.acquire_timeout;
        let idle = spec.common.idle_timeout;
        let operation_timeout = spec.common.operation_timeout;
        tokio::task::spawn_blocking(move || {
            Self::open_blocking(settings, ns, pool_min, pool_max, acquire, idle).map(|mut b| {
                b.operation_timeout = operation_timeout;
                b
            })
        })
        .await
        .map_err(|e| Error::other(format!("open task failed: {e}")))?
    }

    fn open_blocking(
        settings: SqliteConfig,
        ns: Arc<str>,
        pool_min: u32,
        pool_max: u32,
        acquire: Duration,
        idle: Duration,
    ) -> Result<SqliteBackend> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let (target, location, wal) = match &settings.location {
            SqliteLocation::Memory => {
                static NEXT: AtomicU64 = AtomicU64::new(0);
                let name = format!(
                    "file:/storage-sqlite-{}-{}?vfs=memdb",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                );
                (name, ":memory:".to_string(), false)
            }
            SqliteLocation::File(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        Error::connection(format!(
                            "cannot create directory {}: {e}",
                            parent.display()
                        ))
                    })?;
                }
                if path.is_dir() {
                    return Err(Error::config(format!(
                        "{} is a directory, not a database file",
                        path.display()
                    )));
                }
                let text = path.to_str().ok_or_else(|| {
                    Error::config(format!("{} is not a UTF-8 path", path.display()))
                })?;
                // A URI, so that names with `?` or `#` are taken literally: percent-encode them.
                let escaped: String = text
                    .chars()
                    .map(|c| match c {
                        '?' => "%3f".to_string(),
                        '#' => "%23".to_string(),
                        '%' => "%25".to_string(),
                        c => c.to_string(),
                    })
                    .collect();
                (format!("file:{escaped}"), path.display().to_string(), true)
            }
        };
        let busy = settings.busy_timeout;
        let synchronous = match settings.synchronous {
            SqliteSync::Full => "FULL",
            SqliteSync::Normal => "NORMAL",
        };
        let init = move |c: &mut Connection| -> rusqlite::Result<()> {
            c.busy_timeout(busy)?;
            c.execute_batch(&format!("PRAGMA synchronous = {synchronous};"))?;
            c.set_prepared_statement_cache_capacity(32);
            Ok(())
        };

        let mut first = Connection::open_with_flags(&target, flags)
            .map_err(|e| sql_error(e, &format!("opening {location}")))?;
        init(&mut first).map_err(|e| sql_error(e, &format!("configuring {location}")))?;
        schema::prepare(&mut first, wal, busy, &location)?;

        let manager = SqliteConnectionManager::file(&target)
            .with_flags(flags)
            .with_init(init);
        let pool = r2d2::Pool::builder()
            .max_size(pool_max)
            .min_idle(Some(pool_min))
            .connection_timeout(acquire)
            .idle_timeout(Some(idle))
            .thread_pool(reaper())
            // Our connections are local files: a broken one shows up as an error on use.
            .test_on_check_out(false)
            .build(manager)
            .map_err(|e| Error::connection(format!("building the pool for {location}: {e}")))?;
        let anchor = matches!(settings.location, SqliteLocation::Memory).then(|| Mutex::new(first));
        let pool_metrics = Arc::new(PoolMetrics {
            reporter: storage_core::telemetry::PoolReporter::new(TYPE_NAME, &location, pool_max),
            timeouts: AtomicU64::new(0),
        });
        Ok(SqliteBackend {
            pool: RwLock::new(Some(pool)),
            ns,
            location,
            _anchor: anchor,
            writes: AtomicU64::new(0),
            pool_metrics,
            busy,
            operation_timeout: Duration::MAX,
            acquire,
        })
    }

    fn pool(&self) -> Result<Pool> {
        self.pool
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| Error::connection("backend is closed"))
    }

    /// Runs `f` with a pooled connection on a blocking thread.
    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &str) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let pool = self.pool()?;
        let ns = self.ns.clone();
        let metrics = self.pool_metrics.clone();
        // Every wait inside the operation (the checkout, another writer's lock) ends by the
        // operation's deadline, not only by its own limit.
        let deadline = Instant::now().checked_add(self.operation_timeout);
        let (busy, acquire, operation_timeout) = (self.busy, self.acquire, self.operation_timeout);
        tokio::task::spawn_blocking(move || {
            let remaining =
                deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(Instant::now()));
            let conn = pool.get_timeout(acquire.min(remaining));
            if conn.is_err() {
                metrics.timeouts.fetch_add(1, Ordering::Relaxed);
            }
            metrics.report(&pool);
            let mut conn = conn.map_err(|e| {
                Error::timeout(format!(
                    "no pooled connection within the acquire timeout: {e}"
                ))
            })?;
            let limited = remaining < busy;
            conn.busy_timeout(busy.min(remaining))
                .map_err(|e| sql_error(e, "setting the busy timeout"))?;
            match f(&mut conn, &ns) {
                Err(e) if limited && e.kind() == storage_core::ErrorKind::Timeout => {
                    Err(Error::timeout(format!(
                        "the operation timeout ({} ms, operationTimeoutMillis) passed while another writer held the database",
                        operation_timeout.as_millis()
                    ))
                    .with_source(e))
                }
                other => other,
            }
        })
        .await
        .map_err(|e| Error::other(format!("blocking task failed: {e}")))?
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction and commits it.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, &str) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.with_conn(move |conn, ns| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| sql_error(e, "beginning a write"))?;
            let out = f(&tx, ns)?;
            tx.commit().map_err(|e| sql_error(e, "committing"))?;
            Ok(out)
        })
        .await
    }

    /// Runs `f` in a read transaction, so that what it reads is one snapshot.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, &str) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.with_conn(move |conn, ns| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Deferred)
                .map_err(|e| sql_error(e, "beginning a read"))?;
            let out = f(&tx, ns)?;
            tx.finish().map_err(|e| sql_error(e, "ending a read"))?;
            Ok(out)
        })
        .await
    }

    /// Appends items in one `BEGIN IMMEDIATE` transaction.
    async fn append_texts(&self, key: &str, texts: Vec<String>) -> Result<()> {
        let key = key.to_string();
        let n = texts.len() as i64;
        self.write(move |tx, ns| {
            let now = now_ms();
            // The header row holds the length, so the next sequence number is one index lookup.
            let first = match header(tx, ns, &key, now)? {
                Some((KIND_LIST, len, head)) => {
                    tx.prepare_cached(sql::BUMP_LIST)
                        .and_then(|mut s| s.execute((ns, &key, n)))
                        .map_err(|e| sql_error(e, "growing the list"))?;
                    head + len
                }
                Some(_) => return Err(Error::holds_value(&key)),
                None => {
                    // Missing, or an expired value that has not been reclaimed yet.
                    tx.prepare_cached(sql::NEW_LIST)
                        .and_then(|mut s| s.execute((ns, &key, n)))
                        .map_err(|e| sql_error(e, "starting the list"))?;
                    0
                }
            };
            let mut insert = tx
                .prepare_cached(sql::INSERT_ITEM)
                .map_err(|e| sql_error(e, "appending"))?;
            for (i, text) in texts.iter().enumerate() {
                insert
                    .execute((ns, &key, first + i as i64, text))
                    .map_err(|e| sql_error(e, "appending"))?;
            }
            Ok(())
        })
        .await
    }

    fn should_reclaim(&self) -> bool {
        self.writes
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(RECLAIM_EVERY)
    }

    async fn set_value(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<()> {
        let text = encode(value)?;
        let key = key.to_string();
        let reclaim = ttl.is_some() && self.should_reclaim();
        self.write(move |tx, ns| {
            let now = now_ms();
            if reclaim {
                reclaim_expired(tx, now)?;
            }
            put_value(tx, ns, &key, &text, ttl.map(|t| deadline(now, t)))
        })
        .await
    }

    async fn set_many(&self, entries: Vec<(String, String, Option<Duration>)>) -> Result<()> {
        let reclaim = entries.iter().any(|e| e.2.is_some()) && self.should_reclaim();
        self.write(move |tx, ns| {
            let now = now_ms();
            if reclaim {
                reclaim_expired(tx, now)?;
            }
            for (key, text, ttl) in &entries {
                put_value(tx, ns, key, text, ttl.map(|t| deadline(now, t)))?;
            }
            Ok(())
        })
        .await
    }
}

fn deadline(now: i64, ttl: Duration) -> i64 {
    now.saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64)
}

fn reclaim_expired(tx: &rusqlite::Transaction<'_>, now: i64) -> Result<()> {
    tx.prepare_cached(sql::RECLAIM)
        .and_then(|mut s| s.execute([now]))
        .map_err(|e| sql_error(e, "reclaiming expired keys"))?;
    Ok(())
}

/// Stores a value, dropping the items of a list the key held.
fn put_value(
    tx: &rusqlite::Transaction<'_>,
    ns: &str,
    key: &str,
    text: &str,
    expires: Option<i64>,
) -> Result<()> {
    let was_list = tx
        .prepare_cached(sql::HEADER)
        .and_then(|mut s| {
            s.query_row((ns, key, i64::MIN), |r| r.get::<_, i64>(0))
                .optional()
        })
        .map_err(|e| sql_error(e, "reading the key"))?
        == Some(KIND_LIST);
    if was_list {
        tx.prepare_cached(sql::DELETE_ITEMS)
            .and_then(|mut s| s.execute((ns, key)))
            .map_err(|e| sql_error(e, "dropping the list"))?;
    }
    tx.prepare_cached(sql::UPSERT_VALUE)
        .and_then(|mut s| s.execute((ns, key, text, expires)))
        .map_err(|e| sql_error(e, "storing the value"))?;
    Ok(())
}

/// The live row's kind and list length, if any.
/// A live key's kind, list length and list head (the sequence number of its first item).
fn header(tx: &Connection, ns: &str, key: &str, now: i64) -> Result<Option<(i64, i64, i64)>> {
    tx.prepare_cached(sql::HEADER)
        .and_then(|mut s| {
            s.query_row((ns, key, now), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .map_err(|e| sql_error(e, "reading the key"))
}

fn get_row(
    conn: &Connection,
    ns: &str,
    key: &str,
    now: i64,
) -> Result<Option<(i64, Option<String>)>> {
    conn.prepare_cached(sql::GET)
        .and_then(|mut s| {
            s.query_row((ns, key, now), |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(|e| sql_error(e, "reading the key"))
}

/// The factory for the registry.
#[derive(Debug, Default, Clone, Copy)]
pub struct SqliteFactory;

#[async_trait]
impl BackendFactory for SqliteFactory {
    fn type_names(&self) -> Vec<String> {
        vec![TYPE_NAME.to_string()]
    }

    fn roles(&self) -> Vec<Role> {
        vec![Role::Cache, Role::Database]
    }

    fn parse(&self, block: &mut BlockInput<'_>) -> Result<Arc<dyn BackendConfig>> {
        config::parse(block)
    }

    fn schema(&self) -> Value {
        config::schema()
    }

    fn default_fallback(&self, role: Role) -> Vec<String> {
        config::default_fallback(role)
    }

    async fn open_cache(&self, spec: &BackendSpec) -> Result<Arc<dyn Cache>> {
        Ok(Arc::new(SqliteBackend::open(spec).await?))
    }

    async fn open_database(&self, spec: &BackendSpec) -> Result<Arc<dyn Database>> {
        Ok(Arc::new(SqliteBackend::open(spec).await?))
    }
}

/// A checked backend over a concrete [`SqliteBackend`], for callers that want both roles from
/// one handle.
pub type CheckedSqlite = Checked<SqliteBackend>;
