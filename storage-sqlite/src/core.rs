//! The connection side of [`SqliteBackend`]: the struct, opening a file (identity, schema,
//! pool), and running work on a pooled connection on a blocking thread within the operation's
//! deadline. Not the operations themselves (`backend.rs`) nor the block's fields (`config.rs`).

use crate::commit::{CommitSettings, Committer};
use crate::config::{SqliteConfig, SqliteLocation, SqliteSync};
use crate::schema::{self, sql_error};
use r2d2_sqlite::SqliteConnectionManager;
use r2d2_sqlite::rusqlite::{self, Connection, OpenFlags, TransactionBehavior};
use serde_json::Value;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use storage_core::config::BackendSpec;
use storage_core::raw::Closable;
use storage_core::{Error, Result};

pub(crate) const KIND_VALUE: i64 = 0;
pub(crate) const KIND_LIST: i64 = 1;
/// Expired rows are reclaimed on one cache write in this many.
pub(crate) const RECLAIM_EVERY: u64 = 128;

type Pool = r2d2::Pool<SqliteConnectionManager>;

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(crate) fn decode(key: &str, text: &str) -> Result<Value> {
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
    pub(crate) pool: Closable<Pool>,
    ns: Arc<str>,
    location: String,
    /// For `:memory:`, a connection that keeps the shared in-memory database alive while the
    /// pool's own connections come and go.
    _anchor: Option<Mutex<Connection>>,
    pub(crate) writes: AtomicU64,
    /// The queue that groups concurrent writes into shared transactions (`commit.rs`).
    committer: Arc<Committer>,
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
pub(crate) struct PoolMetrics {
    reporter: storage_core::telemetry::PoolReporter,
    timeouts: AtomicU64,
}

impl PoolMetrics {
    /// Counts a checkout that timed out, and reports the pool's state.
    pub(crate) fn checked_out(&self, pool: &Pool, ok: bool) {
        if !ok {
            self.timeouts.fetch_add(1, Ordering::Relaxed);
        }
        self.report(pool);
    }

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

impl SqliteBackend {
    /// Opens (creating if needed) the database `settings` names, checks and migrates its
    /// schema, and builds the pool, with the common settings of `spec`. Blocking work runs on
    /// a blocking thread.
    pub(crate) async fn connect(
        settings: &SqliteConfig,
        spec: &BackendSpec,
    ) -> Result<SqliteBackend> {
        crate::open::require_runtime()?;
        let settings = settings.clone();
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
                use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    // Directories made here are the owner's alone (existing ones are left as
                    // they are).
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(parent)
                        .map_err(|e| {
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
                // A new database file is the owner's alone; SQLite gives its `-wal` and `-shm`
                // the database file's mode. (An existing file keeps the mode it has.)
                match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        return Err(Error::connection(format!(
                            "cannot create database file {}: {e}",
                            path.display()
                        )));
                    }
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
            reporter: storage_core::telemetry::PoolReporter::new(
                crate::config::TYPE_NAME,
                &location,
                pool_max,
            ),
            timeouts: AtomicU64::new(0),
        });
        Ok(SqliteBackend {
            pool: Closable::new(pool),
            ns,
            location,
            _anchor: anchor,
            writes: AtomicU64::new(0),
            committer: Arc::default(),
            pool_metrics,
            busy,
            operation_timeout: Duration::MAX,
            acquire,
        })
    }

    /// Runs `f` with a pooled connection on a blocking thread.
    pub(crate) async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &str) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let pool = self.pool.get()?;
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
            metrics.checked_out(&pool, conn.is_ok());
            let mut conn = conn.map_err(|e| {
                Error::timeout(format!(
                    "no pooled connection within the acquire timeout: {e}"
                ))
                .not_applied()
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
                    .not_applied()
                    .with_source(e))
                }
                other => other,
            }
        })
        .await
        .map_err(|e| Error::other(format!("blocking task failed: {e}")))?
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction and returns once it is committed: with the
    /// other writes of this backend queued meanwhile, in one transaction (`commit.rs`).
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, &str) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let pool = self.pool.get()?;
        let settings = CommitSettings {
            ns: self.ns.clone(),
            metrics: self.pool_metrics.clone(),
            busy: self.busy,
            acquire: self.acquire,
            operation_timeout: self.operation_timeout,
        };
        self.committer.submit(pool, &settings, f).await
    }

    /// Transactions this backend has committed since it opened: fewer than its writes when
    /// concurrent writes shared them. For tests and the benchmark; not an API.
    #[doc(hidden)]
    pub fn commits(&self) -> u64 {
        self.committer.commits()
    }

    /// Runs `f` in a read transaction, so that what it reads is one snapshot.
    pub(crate) async fn read<T: Send + 'static>(
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
}
