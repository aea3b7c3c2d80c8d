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
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use storage_core::config::BackendSpec;
pub(crate) use storage_core::raw::Resend;
use storage_core::raw::{Closable, RetryPolicy};
use storage_core::{Error, Result};
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

pub(crate) const KIND_LIST: i16 = 1;
const RECLAIM_EVERY: u64 = 128;
/// Retries of an idempotent operation after a transient error.
const RETRIES: u32 = 2;

pub(crate) type Pool = bb8::Pool<PgManager>;

/// Maps a driver error to the contract's kind, outcome and status, from the driver's types
/// (the SQLSTATE, `is_closed`, an I/O cause), never its message.
///
/// An error the server answered with (it has a SQLSTATE) means the statement failed and its
/// transaction rolled back: not applied. A failover (a shutting-down or read-only server), a
/// serialization failure or a deadlock are temporary; a statement timeout (the server's own
/// cancel) too. An error without one is the connection failing or closing: temporary, and its
/// outcome is unknown (a statement may have been on the wire); the caller marks what it knows
/// was never sent (`connecting`, preparing) as not applied.
pub(crate) fn pg_error(e: tokio_postgres::Error, what: &str) -> Error {
    if let Some(code) = e.code() {
        // A failover shows as a shutting-down server or a read-only one (the old primary, now
        // a standby): temporary, and the connection is discarded, so the retry reaches the
        // new primary.
        let temporary = [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::READ_ONLY_SQL_TRANSACTION,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
        ];
        let said = |e: &tokio_postgres::Error| {
            e.as_db_error()
                .map(|d| format!("{what}: {} (SQLSTATE {})", d.message(), code.code()))
                .unwrap_or_else(|| what.to_string())
        };
        let error = if temporary.contains(code) {
            Error::connection(said(&e)).temporary()
        } else if *code == SqlState::QUERY_CANCELED {
            Error::timeout(format!("{what}: statement timeout")).with_source(e)
        } else if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            Error::authentication(what).with_source(e)
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            Error::new(storage_core::ErrorKind::PermissionDenied, said(&e)).permanent()
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            Error::config(format!("{what}: the database does not exist")).with_source(e)
        } else {
            // The server's own words and SQLSTATE say why (a constraint, a read-only server).
            Error::other(said(&e)).permanent().with_source(e)
        };
        return error.not_applied();
    }
    // No SQLSTATE: the connection failed or closed (temporary; a statement may have been on
    // the wire), or the client side refused something (permanent).
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io {
        Error::connection(what.to_string())
            .outcome_unknown()
            .with_source(e)
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
    pub(crate) pool: Closable<Pool>,
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
            .map_err(|_| Error::connect_timeout(&describe, connect_limit))??;
        let last_error = LastError::new(TYPE_NAME, pool::classify);
        let pool = storage_pool::builder(&spec.common, &last_error)
            // The check on checkout is free for a connection in use (a flag and `is_closed`);
            // only one idle for a while costs a round trip (see `pool`).
            .test_on_check_out(true)
            .build_unchecked(manager);
        let _ = pool.add(first);
        let backend = PostgresBackend {
            pool: Closable::new(pool),
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

    /// Runs `op` on a pooled connection under the operation timeout, sent again as
    /// [`RetryPolicy`] allows (at most [`RETRIES`] times; an `append` only when the error
    /// proves it did not run). A connection whose operation timed out or failed on I/O is
    /// marked broken and never lent again, and a timed-out statement is cancelled on the
    /// server, so it holds no lock afterwards.
    pub(crate) async fn run<T, F, Fut>(&self, resend: Resend, op: F) -> Result<T>
    where
        F: Fn(bb8::PooledConnection<'static, PgManager>, Arc<Statements>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let pool = self.pool.get()?;
        let deadline = tokio::time::Instant::now() + self.operation_timeout;
        let policy = RetryPolicy {
            max_retries: RETRIES,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
        };
        policy
            .run(
                resend,
                Some(deadline.into_std()),
                |_| self.attempt(&pool, deadline, &op),
                tokio::time::sleep,
                |e, retries, delay| tracing::debug!(error = %e, retries, ?delay, "sending again"),
            )
            .await
    }

    /// One try of `op`, by `deadline`.
    async fn attempt<T, F, Fut>(
        &self,
        pool: &Pool,
        deadline: tokio::time::Instant,
        op: &F,
    ) -> Result<T>
    where
        F: Fn(bb8::PooledConnection<'static, PgManager>, Arc<Statements>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let checkout =
            tokio::time::timeout_at(deadline, self.last_error.checkout_owned(pool)).await;
        self.pool_metrics.maybe_report(|| storage_pool::state(pool));
        let conn = match checkout {
            Err(_) => {
                return Err(Error::timeout(format!(
                    "no connection within the operation timeout ({:?}); nothing was sent",
                    self.operation_timeout
                ))
                .not_applied());
            }
            // Nothing was sent: the checkout's own error (a failed connect) says why.
            Ok(Err(e)) => return Err(e.not_applied()),
            Ok(Ok(conn)) => conn,
        };
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
                // The cancel request is sent, not confirmed: the statement may have committed
                // before it arrived, or after this error is returned.
                Err(Error::timeout(format!(
                    "no answer within {:?}; a cancel request was sent to the server, but the statement may have completed first or may still complete: the outcome is unknown",
                    self.operation_timeout
                ))
                .outcome_unknown())
            }
        }
    }

    /// The statements and table names.
    pub(crate) fn statements(&self) -> &Statements {
        &self.stmts
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
