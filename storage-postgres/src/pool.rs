//! The connection pool's rules: what a connection is worth keeping, and how long a connect may
//! take.
//!
//! bb8 and bb8-postgres build and lend the connections; this module wraps them so that:
//!
//! - a whole connect (TCP, TLS, startup, authentication) has one time limit, not only its TCP
//!   part, so a server that accepts and then says nothing cannot hold a pool slot;
//! - a connection whose operation timed out, failed on I/O, or hit a server that is shutting
//!   down or read-only (after a failover) is marked broken and never lent again;
//! - a connection is checked before it is lent: a closed one (the server restarted while the
//!   client was idle) is discarded at no cost, and one idle for a while answers an empty query
//!   first, so that a write is never sent on a connection that is already dead.
//!
//! It is not the retry policy (that is `PostgresBackend::run`).

use crate::core::{Pool, pg_error};
use bb8_postgres::PostgresConnectionManager;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use storage_core::{Error, Result};
use tokio_postgres_rustls::MakeRustlsConnect;

/// A connection idle longer than this is checked with a round trip before it is lent.
pub(crate) const IDLE_CHECK: Duration = Duration::from_millis(250);

/// How the checks on checkout word their errors: bb8 hands them to the error sink like a failed
/// connect, but a stale connection is replaced, not a reason to fail the waiting operation.
const STALE: &str = "stale pooled connection: ";

/// A pooled client and what the pool needs to know about it.
pub(crate) struct PgConn {
    pub(crate) client: tokio_postgres::Client,
    /// Set by an operation that left the connection in an unknown state.
    pub(crate) broken: Arc<AtomicBool>,
    last_used: Instant,
    /// Statements prepared on this connection, by their SQL text: a hot operation is parsed
    /// and planned once per connection instead of once per call (tokio-postgres prepares SQL
    /// text given as a string on every call, a round trip of its own).
    statements: std::collections::HashMap<String, tokio_postgres::Statement>,
}

impl PgConn {
    /// `sql` prepared on this connection, once.
    pub(crate) async fn cached(&mut self, sql: &str) -> Result<tokio_postgres::Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self
            .client
            .prepare(sql)
            .await
            .map_err(|e| pg_error(e, "preparing a statement"))?;
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

impl std::ops::Deref for PgConn {
    type Target = tokio_postgres::Client;
    fn deref(&self) -> &tokio_postgres::Client {
        &self.client
    }
}

impl std::ops::DerefMut for PgConn {
    fn deref_mut(&mut self) -> &mut tokio_postgres::Client {
        &mut self.client
    }
}

/// bb8-postgres's manager with a whole-connect time limit and the checks above.
pub(crate) struct PgManager {
    inner: PostgresConnectionManager<MakeRustlsConnect>,
    connect_timeout: Duration,
    /// Whether the configuration gives a password.
    has_password: bool,
}

impl PgManager {
    pub(crate) fn new(
        mut config: tokio_postgres::Config,
        tls: MakeRustlsConnect,
        connect_timeout: Duration,
    ) -> Self {
        // Without a password, the driver refuses a server that asks for one on its own side,
        // in an error with no SQLSTATE that reads as "invalid configuration", and the manager
        // fell back past it. With an empty one, the server itself refuses it (SQLSTATE 28P01):
        // an authentication error, which never falls back. A server that asks for none never
        // sees it.
        let has_password = config.get_password().is_some();
        if !has_password {
            config.password("");
        }
        PgManager {
            inner: PostgresConnectionManager::new(config, tls),
            connect_timeout,
            has_password,
        }
    }
}

impl bb8::ManageConnection for PgManager {
    type Connection = PgConn;
    type Error = Error;

    async fn connect(&self) -> Result<PgConn> {
        let client = tokio::time::timeout(self.connect_timeout, self.inner.connect())
            .await
            .map_err(|_| {
                Error::timeout(format!(
                    "connecting (TCP, TLS, startup and authentication) took longer than {:?}",
                    self.connect_timeout
                ))
            })?
            .map_err(|e| {
                let error = pg_error(e, "connecting");
                if error.is_authentication() && !self.has_password {
                    Error::authentication(
                        "connecting: the server asks for a password and the configuration gives none",
                    )
                } else {
                    error
                }
            })?;
        Ok(PgConn {
            client,
            broken: Arc::new(AtomicBool::new(false)),
            last_used: Instant::now(),
            statements: std::collections::HashMap::new(),
        })
    }

    async fn is_valid(&self, conn: &mut PgConn) -> Result<()> {
        if conn.broken.load(Ordering::Relaxed) || conn.client.is_closed() {
            return Err(Error::connection(format!("{STALE}closed")));
        }
        if conn.last_used.elapsed() > IDLE_CHECK {
            let answered = tokio::time::timeout(self.connect_timeout, conn.client.simple_query(""))
                .await
                .is_ok_and(|r| r.is_ok());
            if !answered {
                return Err(Error::connection(format!("{STALE}no answer to a check")));
            }
        }
        conn.last_used = Instant::now();
        Ok(())
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.last_used = Instant::now();
        conn.broken.load(Ordering::Relaxed) || conn.client.is_closed()
    }
}

/// Keeps the pool's last connection error, so that a checkout timeout can say why, and wakes
/// the checkouts waiting for a connection when a connect fails, so that they fail at once with
/// that error instead of waiting out the acquire timeout.
#[derive(Debug, Clone, Default)]
pub(crate) struct LastError(Arc<Mutex<Option<Error>>>, Arc<tokio::sync::Notify>);

impl bb8::ErrorSink<Error> for LastError {
    fn sink(&self, e: Error) {
        if e.message().starts_with(STALE) {
            tracing::debug!(error = %e, "postgresql: replacing a stale pooled connection");
            return;
        }
        tracing::debug!(error = %e, "postgresql connection failed");
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        self.1.notify_waiters();
    }
    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<Error>> {
        Box::new(self.clone())
    }
}

impl LastError {
    pub(crate) fn pool_error(&self, e: bb8::RunError<Error>) -> Error {
        match e {
            bb8::RunError::User(e) => e,
            bb8::RunError::TimedOut => {
                let last = self.last_text();
                Error::checkout_timeout(last.as_deref())
            }
        }
    }

    fn last_text(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(ToString::to_string)
    }

    /// A connection from `pool`, or the error of a connect that failed while waiting for one.
    pub(crate) async fn checkout(
        &self,
        pool: &Pool,
    ) -> Result<bb8::PooledConnection<'static, PgManager>> {
        let failed = self.1.notified();
        tokio::pin!(failed);
        failed.as_mut().enable();
        tokio::select! {
            got = pool.get_owned() => got.map_err(|e| self.pool_error(e)),
            () = failed => {
                let last = self.0.lock().unwrap_or_else(|p| p.into_inner());
                Err(match last.as_ref() {
                    Some(e) => Error::new(e.kind(), e.message().to_string()),
                    None => Error::connection("connecting failed"),
                })
            }
        }
    }
}

/// Whether an error leaves the connection it happened on unfit for the next operation.
pub(crate) fn breaks_connection(e: &Error) -> bool {
    matches!(
        e.kind(),
        storage_core::ErrorKind::Connection | storage_core::ErrorKind::Timeout
    )
}

/// The pool's state for the `db.client.connection.*` series (a function per crate: storage-core
/// knows no pool library).
pub(crate) fn state(pool: &Pool) -> storage_core::telemetry::PoolState {
    let state = pool.state();
    storage_core::telemetry::PoolState {
        open: state.connections,
        idle: state.idle_connections,
        waited_total: state.statistics.get_waited,
        timed_out_total: state.statistics.get_timed_out,
    }
}
