//! The Redis backend, registered as `redis`: the production cache, and a list-capable database.
//!
//! Redis is the reference of the contract, so the backend mostly lets the server decide:
//! values are JSON strings (`SET`/`GET`, TTLs as `PX` milliseconds after storage-core's
//! normalisation), lists are Redis lists (`RPUSH`/`LRANGE`/`LLEN`), and `mget` of a list key
//! gives `None` as `MGET` does.
//!
//! - **Connections.** A bb8 pool of multiplexed redis-rs connections, built by a connection
//!   manager of our own that applies the configured connect and response timeouts and does not
//!   ping on checkout. A multiplexed connection never reports itself broken, so an I/O error
//!   marks it broken and the pool replaces it: after a server restart the backend recovers by
//!   itself. A command takes a connection from the pool and returns it at once, so concurrent
//!   callers pipeline on shared multiplexed connections instead of queueing for one.
//! - **Batches.** `mget` is one `MGET`. `mset` is one round trip: a pipeline on a cache, and
//!   `MULTI`/`EXEC` on a database, which is all-or-nothing.
//! - **Retries.** `maxRetriesPerRequest` retries idempotent commands after transient errors;
//!   an `RPUSH` is never re-sent.
//! - **keys() and clear()** walk `SCAN` with `MATCH` (the escaped prefix plus the pattern),
//!   de-duplicate, and never call `KEYS`; `clear` removes only this namespace, in batches, with
//!   `UNLINK`, never `FLUSHDB`.
//! - **Namespaces** are string prefixes: two namespaces on one server must not nest.
//!
//! ```no_run
//! # async fn demo() -> storage_core::Result<()> {
//! use storage_core::config::ConfigSource;
//! let mut registry = storage_core::Registry::new();
//! registry.register(std::sync::Arc::new(storage_redis::RedisFactory))?;
//! registry.register(std::sync::Arc::new(storage_memory::MemoryFactory))?;
//! let source = ConfigSource::from_yaml_str(
//!     "cache: { type: redis, url: 'redis://127.0.0.1:6379', keyPrefix: 'app:cache:' }\ndatabase: { type: in-memory }",
//!     ".".as_ref(),
//! )?;
//! let config = source.resolve(&registry)?;
//! let cache = registry.open_cache(&config.cache.primary).await?;
//! cache.set("session:1", &serde_json::json!({"user": 7}), Some(std::time::Duration::from_secs(3600))).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

use async_trait::async_trait;
use bb8::ManageConnection;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisError};
use serde_json::Value;
use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use storage_core::config::{BackendConfig, BackendSpec, BlockInput, Role};
use storage_core::{
    BackendFactory, Cache, CacheEntry, Database, Error, KeyKind, KeyTtl, Result, Store, escape_glob,
};

mod backend;
pub mod config;
mod pool;

pub use config::{RedisConfig, TYPE_NAME};
pub use pool::{Conn, Manager};
use pool::{IDLE_CHECK, LastError, Pool};

/// Keys per `SCAN` step and per `UNLINK` batch.
const BATCH: usize = 500;

/// Replaces a generic wrong-type error with the contract's message for `key`.
fn wrong_type(key: &str, message: fn(&str) -> Error) -> impl FnOnce(Error) -> Error + '_ {
    move |e| {
        if e.kind() == storage_core::ErrorKind::WrongType {
            message(key)
        } else {
            e
        }
    }
}

fn is_wrong_type(e: &RedisError) -> bool {
    e.code() == Some("WRONGTYPE")
}

/// Maps a redis-rs error; connection-level failures are transient, a refused password is a
/// configuration error (retrying or falling back cannot fix it).
fn redis_error(e: RedisError, what: &str) -> Error {
    if e.kind() == redis::ErrorKind::AuthenticationFailed
        || e.code() == Some("NOAUTH")
        || e.code() == Some("WRONGPASS")
    {
        Error::authentication(what)
    } else if e.is_timeout() {
        // Redis cannot cancel a command: it may have run.
        Error::timeout(format!(
            "{what}: the server did not answer in time; the command may have been applied: the outcome is unknown"
        ))
        .with_source(e)
    } else if e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
    {
        Error::connection(format!("{what}: {e}"))
    } else if e.code() == Some("LOADING")
        || e.code() == Some("TRYAGAIN")
        || e.code() == Some("MASTERDOWN")
    {
        Error::connection(format!("{what}: server busy ({e})"))
    } else {
        Error::other(format!("{what}: {e}"))
    }
}

fn decode(key: &str, bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|_| {
        Error::other(format!(
            "the value at {key:?} is not JSON written by this library ({} bytes)",
            bytes.len()
        ))
    })
}

fn encode(value: &Value) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::invalid_value(format!("cannot encode value: {e}")))
}

/// Builds the redis-rs client: plain, or TLS with the system roots or the given CA.
fn client(settings: &RedisConfig, spec: &BackendSpec) -> Result<Client> {
    if settings.tls() {
        // redis-rs builds its rustls config from the process-wide provider. Install ring (the
        // provider this workspace compiles) unless the application already chose one.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let bad =
        |e: RedisError| Error::config(format!("{}: invalid Redis connection: {e}", spec.path));
    match &settings.ca {
        Some(ca) => {
            let pem = std::fs::read(ca)
                .map_err(|e| Error::config(format!("cannot read CA file {}: {e}", ca.display())))?;
            Client::build_with_tls(
                settings.info.clone(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
            .map_err(bad)
        }
        None => Client::open(settings.info.clone()).map_err(bad),
    }
}

/// A namespace on one Redis server; serves both roles.
pub struct RedisBackend {
    pool: RwLock<Option<Pool>>,
    prefix: String,
    /// The prefix with glob characters escaped, for `SCAN MATCH`.
    match_prefix: String,
    describe: String,
    operation_timeout: Duration,
    connect_timeout: Duration,
    retries: u32,
    last_error: LastError,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("server", &self.describe)
            .field("key_prefix", &self.prefix)
            .finish()
    }
}

impl RedisBackend {
    /// Builds the pool and checks that the server answers.
    pub async fn open(spec: &BackendSpec) -> Result<RedisBackend> {
        let settings = spec.settings::<RedisConfig>()?;
        let manager = Manager {
            client: client(settings, spec)?,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(spec.common.connect_timeout))
                .set_response_timeout(Some(spec.common.operation_timeout)),
        };
        // The first connection is made directly, so that a refusal is reported as itself, at
        // once, and the manager's fallback moves on without waiting for a pool timeout.
        let describe = spec.to_string();
        let limit = spec.common.connect_timeout.max(spec.common.acquire_timeout);
        let first = tokio::time::timeout(limit, manager.connect())
            .await
            .map_err(|_| {
                Error::timeout(format!(
                    "connecting to {describe} took longer than {limit:?}"
                ))
            })?
            .map_err(|e| redis_error(e, "connecting"))?;
        let last_error = LastError::default();
        let pool = bb8::Pool::builder()
            .max_size(spec.common.pool_max)
            .min_idle(Some(spec.common.pool_min))
            .connection_timeout(spec.common.acquire_timeout)
            .idle_timeout(Some(spec.common.idle_timeout))
            .error_sink(Box::new(last_error.clone()))
            // Checked in `with_conn` instead: a flag always, a PING only after idling.
            .test_on_check_out(false)
            // A failed connect is reported at once (a refused server fails within the connect
            // timeout), not retried until the acquire timeout.
            .retry_connection(false)
            .build_unchecked(manager);
        let _ = pool.add(first);
        let backend = RedisBackend {
            pool: RwLock::new(Some(pool)),
            prefix: spec.common.key_prefix.clone(),
            match_prefix: escape_glob(&spec.common.key_prefix),
            describe,
            operation_timeout: spec.common.operation_timeout,
            connect_timeout: spec.common.connect_timeout,
            retries: settings.max_retries_per_request,
            last_error,
        };
        Ok(backend)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn pool(&self) -> Result<Pool> {
        self.pool
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| Error::connection("backend is closed"))
    }

    /// Runs `f` on a pooled connection under the operation timeout, marking the connection
    /// broken on an I/O error and retrying idempotent work after transient errors.
    async fn with_conn<T, F, Fut>(&self, idempotent: bool, what: &str, f: F) -> Result<T>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, RedisError>>,
    {
        let pool = self.pool()?;
        let attempt = async {
            let mut tries = 0;
            loop {
                // A multiplexed connection serves many callers at once: take one from the pool
                // and give it back before the command, so that concurrent callers pipeline on
                // it instead of queueing for exclusive checkouts.
                let checkout = async {
                    loop {
                        let conn = self.last_error.checkout(&pool).await?;
                        // A connection an earlier command found broken is discarded when its
                        // guard drops here (`has_broken`); take the next one.
                        if conn.broken.load(Ordering::Relaxed) {
                            continue;
                        }
                        let idle = conn
                            .last_used
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .elapsed();
                        if idle > IDLE_CHECK {
                            let mut probe = conn.inner.clone();
                            let cmd = redis::cmd("PING");
                            let ping = cmd.query_async::<()>(&mut probe);
                            if !matches!(
                                tokio::time::timeout(self.connect_timeout, ping).await,
                                Ok(Ok(()))
                            ) {
                                conn.broken.store(true, Ordering::Relaxed);
                                continue;
                            }
                        }
                        break Ok((
                            conn.inner.clone(),
                            conn.broken.clone(),
                            conn.last_used.clone(),
                        ));
                    }
                }
                .await;
                let result = match checkout {
                    Ok((inner, broken, last_used)) => {
                        let out = f(inner).await;
                        *last_used.lock().unwrap_or_else(|e| e.into_inner()) =
                            std::time::Instant::now();
                        if let Err(e) = &out
                            && (e.is_io_error()
                                || e.is_connection_dropped()
                                || e.is_unrecoverable_error()
                                || e.is_timeout())
                        {
                            broken.store(true, Ordering::Relaxed);
                        }
                        out.map_err(|e| {
                            if is_wrong_type(&e) {
                                Error::wrong_type(format!("{what}: the key holds the other kind"))
                            } else {
                                redis_error(e, what)
                            }
                        })
                    }
                    Err(e) => Err(e),
                };
                match result {
                    Err(e)
                        if idempotent
                            && e.kind() == storage_core::ErrorKind::Connection
                            && tries < self.retries =>
                    {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(25 * u64::from(tries))).await;
                    }
                    other => return other,
                }
            }
        };
        tokio::time::timeout(self.operation_timeout, attempt)
            .await
            .map_err(|_| {
                Error::timeout(format!(
                    "{what}: no answer within {:?}; a command already sent may have been applied: the outcome is unknown",
                    self.operation_timeout
                ))
            })?
    }

    async fn query<T: redis::FromRedisValue + Send>(
        &self,
        idempotent: bool,
        cmd: &Cmd,
        what: &str,
    ) -> Result<T> {
        self.with_conn(idempotent, what, |mut c| async move {
            cmd.query_async::<T>(&mut c).await
        })
        .await
    }

    async fn pipeline<T: redis::FromRedisValue + Send>(
        &self,
        pipe: &Pipeline,
        what: &str,
    ) -> Result<T> {
        self.with_conn(true, what, |mut c| async move {
            pipe.query_async::<T>(&mut c).await
        })
        .await
    }

    /// Every full key of this namespace matching `pattern`, by `SCAN`, without duplicates.
    async fn scan(&self, pattern: Option<&str>) -> Result<Vec<String>> {
        let matcher = format!("{}{}", self.match_prefix, pattern.unwrap_or("*"));
        let mut cursor: u64 = 0;
        let mut seen = HashSet::new();
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = self
                .query(
                    true,
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&matcher)
                        .arg("COUNT")
                        .arg(BATCH),
                    "scanning keys",
                )
                .await?;
            for raw in batch {
                match String::from_utf8(raw) {
                    Ok(k) if k.starts_with(&self.prefix) => {
                        seen.insert(k);
                    }
                    // A key that is not UTF-8 was not written by this library.
                    _ => tracing::warn!(backend = TYPE_NAME, "skipping a key that is not UTF-8"),
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        Ok(seen.into_iter().collect())
    }

    async fn mset_pipe(
        &self,
        entries: Vec<(String, String, Option<Duration>)>,
        atomic: bool,
    ) -> Result<()> {
        let mut pipe = redis::pipe();
        if atomic {
            pipe.atomic();
        }
        for (k, v, ttl) in &entries {
            let mut cmd = redis::cmd("SET");
            cmd.arg(self.key(k)).arg(v);
            if let Some(t) = ttl {
                cmd.arg("PX").arg(t.as_millis() as u64);
            }
            pipe.add_command(cmd).ignore();
        }
        self.pipeline::<()>(&pipe, "storing the batch").await
    }
}

/// The factory for the registry.
#[derive(Debug, Default, Clone, Copy)]
pub struct RedisFactory;

#[async_trait]
impl BackendFactory for RedisFactory {
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
        Ok(Arc::new(RedisBackend::open(spec).await?))
    }

    async fn open_database(&self, spec: &BackendSpec) -> Result<Arc<dyn Database>> {
        Ok(Arc::new(RedisBackend::open(spec).await?))
    }
}
