//! The connection side of [`PostgresBackend`]: the struct, connecting (first connection,
//! migration, pool), running an operation on a pooled connection under the operation timeout
//! with the retry rule, and the driver's errors mapped to the contract's kinds. Not the
//! operations themselves (`backend.rs`), the pool's connection rules (`pool.rs`) nor the block's
//! fields (`config.rs`).

use crate::config::{PostgresConfig, TYPE_NAME};
use crate::pool::{self, LastError, PgManager, breaks_connection};
use crate::schema::{Statements, migrate};
use crate::tls;
use serde_json::Value;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use storage_core::config::BackendSpec;
use storage_core::{Error, Result};
pub(crate) use storage_pool::Resend;
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

pub(crate) const KIND_LIST: i16 = 1;
const RECLAIM_EVERY: u64 = 128;
/// Retries of an idempotent operation after a transient error.
const RETRIES: u32 = 2;

pub(crate) type Pool = bb8::Pool<PgManager>;

/// Maps a driver error to the contract's kinds; transient ones are those a retry may fix.
pub(crate) fn pg_error(e: tokio_postgres::Error, what: &str) -> Error {
    if let Some(code) = e.code() {
        // A failover shows as a shutting-down server or a read-only one (the old primary, now
        // a standby): transient, and the connection is discarded, so the retry reaches the
        // new primary.
        let transient = [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::READ_ONLY_SQL_TRANSACTION,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
        ];
        if transient.contains(code) {
            return Error::connection(format!(
                "{what}: {}",
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_string())
            ));
        }
        if *code == SqlState::QUERY_CANCELED {
            return Error::timeout(format!("{what}: statement timeout")).with_source(e);
        }
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return Error::authentication(what).with_source(e);
        }
        if *code == SqlState::INVALID_CATALOG_NAME {
            return Error::config(format!("{what}: the database does not exist")).with_source(e);
        }
        // The server's own words and SQLSTATE say why (a constraint, a read-only server).
        let said = e
            .as_db_error()
            .map(|d| format!("{what}: {} (SQLSTATE {})", d.message(), code.code()))
            .unwrap_or_else(|| what.to_string());
        return Error::other(said).with_source(e);
    }
    // No SQLSTATE: the connection failed or closed (transient), or the client side refused
    // something (not transient).
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io {
        Error::connection(what.to_string()).with_source(e)
    } else {
        Error::other(what.to_string()).with_source(e)
    }
}

pub(crate) fn decode(key: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        Error::other(format!(
            "the value stored at {key:?} is not valid JSON: {e}"
        ))
    })
}

pub(crate) fn ttl_ms(ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|t| t.as_millis().min(i64::MAX as u128) as i64)
}

/// A namespace of one PostgreSQL database; serves both roles.
pub struct PostgresBackend {
    pub(crate) pool: RwLock<Option<Pool>>,
    pub(crate) ns: String,
    stmts: Arc<Statements>,
    describe: String,
    operation_timeout: Duration,
    writes: AtomicU64,
    last_error: LastError,
    /// For cancel requests.
    tls: MakeRustlsConnect,
    pool_metrics: storage_core::telemetry::PoolReporter,
}

impl fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("server", &self.describe)
            .field("key_prefix", &self.ns)
            .finish()
    }
}

impl PostgresBackend {
    /// Connects, migrates the schema, and builds the pool.
    pub(crate) async fn connect(
        settings: &PostgresConfig,
        spec: &BackendSpec,
    ) -> Result<PostgresBackend> {
        // tokio's I/O needs its runtime: say so instead of panicking inside the driver.
        tokio::runtime::Handle::try_current().map_err(|_| {
            Error::unsupported(
                "the postgresql backend needs a tokio runtime: call it from inside one (for example under #[tokio::main])",
            )
        })?;
        let cfg = settings.driver_config(&spec.common);
        let tls = tls::connector(&settings.ssl)?;
        let manager = PgManager::new(cfg, tls.clone(), spec.common.connect_timeout);
        let describe = spec.to_string();
        // The first connection is made directly, so that a refusal (a closed port, a bad
        // certificate, a wrong password) is reported as itself, at once, not as a pool timeout.
        let connect_limit = spec.common.connect_timeout.max(spec.common.acquire_timeout);
        let first = async {
            let mut client = manager.open().await?;
            migrate(&mut client, settings.schema.as_deref(), &describe).await?;
            Ok::<_, Error>(client)
        };
        let first = tokio::time::timeout(connect_limit, first)
            .await
            .map_err(|_| {
                Error::timeout(format!(
                    "connecting to {describe} took longer than {connect_limit:?}"
                ))
            })??;
        let last_error = LastError::new(TYPE_NAME, pool::classify);
        let pool = storage_pool::builder(&spec.common, &last_error)
            // The check on checkout is free for a connection in use (a flag and `is_closed`);
            // only one idle for a while costs a round trip (see `pool`).
            .test_on_check_out(true)
            .build_unchecked(manager);
        let _ = pool.add(first);
        let backend = PostgresBackend {
            pool: RwLock::new(Some(pool)),
            ns: spec.common.key_prefix.clone(),
            stmts: Arc::new(Statements::new(settings.schema.as_deref())),
            describe,
            operation_timeout: spec.common.operation_timeout,
            writes: AtomicU64::new(0),
            last_error,
            tls,
            pool_metrics: storage_core::telemetry::PoolReporter::new(
                TYPE_NAME,
                &spec.to_string(),
                spec.common.pool_max,
            ),
        };
        Ok(backend)
    }

    pub(crate) fn pool(&self) -> Result<Pool> {
        self.pool
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| Error::connection("backend is closed"))
    }

    /// Runs `op` on a pooled connection under the operation timeout. An idempotent operation is
    /// retried after a transient error; a non-idempotent one (append) never is. A connection
    /// whose operation timed out or failed on I/O is marked broken and never lent again, and a
    /// timed-out statement is cancelled on the server, so it holds no lock afterwards.
    pub(crate) async fn run<T, F, Fut>(&self, resend: Resend, op: F) -> Result<T>
    where
        F: Fn(bb8::PooledConnection<'static, PgManager>, Arc<Statements>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let pool = self.pool()?;
        let deadline = tokio::time::Instant::now() + self.operation_timeout;
        let mut tries = 0;
        loop {
            let checkout =
                tokio::time::timeout_at(deadline, self.last_error.checkout_owned(&pool)).await;
            self.pool_metrics
                .maybe_report(|| storage_pool::state(&pool));
            let result = match checkout {
                // Nothing was sent: nothing happened.
                Err(_) => {
                    return Err(Error::timeout(format!(
                        "no connection within the operation timeout ({:?}); nothing was sent",
                        self.operation_timeout
                    )));
                }
                Ok(Err(e)) => Err(e),
                Ok(Ok(conn)) => {
                    let broken = conn.broken.clone();
                    let cancel = conn.client.cancel_token();
                    match tokio::time::timeout_at(deadline, op(conn, self.stmts.clone())).await {
                        Ok(result) => {
                            if let Err(e) = &result
                                && breaks_connection(e)
                            {
                                broken.store(true, Ordering::Relaxed);
                            }
                            result
                        }
                        Err(_) => {
                            broken.store(true, Ordering::Relaxed);
                            let tls = self.tls.clone();
                            tokio::spawn(async move {
                                let limit = Duration::from_secs(5);
                                let _ = tokio::time::timeout(limit, cancel.cancel_query(tls)).await;
                            });
                            return Err(Error::timeout(format!(
                                "no answer within {:?}; the statement was cancelled on the server, but it may have completed first: the outcome is unknown",
                                self.operation_timeout
                            )));
                        }
                    }
                }
            };
            match result {
                Err(e)
                    if resend == Resend::Allowed
                        && e.kind() == storage_core::ErrorKind::Connection
                        && tries < RETRIES =>
                {
                    tries += 1;
                    tracing::debug!(error = %e, tries, "retrying an idempotent operation");
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(tries))).await;
                }
                other => return other,
            }
        }
    }

    pub(crate) fn reclaim_due(&self) -> bool {
        self.writes
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(RECLAIM_EVERY)
    }

    pub(crate) async fn reclaim(&self) {
        let r = self
            .run(Resend::Allowed, |mut conn, s| async move {
                let statement = conn.cached(&s.reclaim).await?;
                conn.execute(&statement, &[])
                    .await
                    .map_err(|e| pg_error(e, "reclaiming"))?;
                Ok(())
            })
            .await;
        if let Err(e) = r {
            tracing::debug!(error = %e, "reclaiming expired keys failed");
        }
    }
}
