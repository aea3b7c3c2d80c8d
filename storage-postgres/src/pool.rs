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

use crate::core::pg_error;
use bb8::ManageConnection;
use bb8_postgres::PostgresConnectionManager;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use storage_core::{Error, Result};
use storage_pool::ConnectFailure;
use tokio_postgres_rustls::MakeRustlsConnect;

/// A connection idle longer than this is checked with a round trip before it is lent.
pub(crate) const IDLE_CHECK: Duration = Duration::from_millis(250);

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
            // A statement prepared is not the operation's: whatever failed, it did not run.
            .map_err(|e| pg_error(e, "preparing a statement").not_applied())?;
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
    type Error = PgPoolError;

    async fn connect(&self) -> std::result::Result<PgConn, PgPoolError> {
        let started = Instant::now();
        self.open()
            .await
            .map_err(|error| PgPoolError::Connect { error, started })
    }

    async fn is_valid(&self, conn: &mut PgConn) -> std::result::Result<(), PgPoolError> {
        if conn.broken.load(Ordering::Relaxed) || conn.client.is_closed() {
            return Err(PgPoolError::Stale("closed"));
        }
        if conn.last_used.elapsed() > IDLE_CHECK {
            let answered = tokio::time::timeout(self.connect_timeout, conn.client.simple_query(""))
                .await
                .is_ok_and(|r| r.is_ok());
            if !answered {
                return Err(PgPoolError::Stale("no answer to a check"));
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

impl PgManager {
    /// One connection: TCP, TLS, startup and authentication under one time limit.
    pub(crate) async fn open(&self) -> Result<PgConn> {
        let client = tokio::time::timeout(self.connect_timeout, self.inner.connect())
            .await
            .map_err(|_| {
                Error::timeout(format!(
                    "connecting (TCP, TLS, startup and authentication) took longer than {:?}",
                    self.connect_timeout
                ))
                .not_applied()
            })?
            .map_err(|e| {
                let error = pg_error(e, "connecting");
                if error.is_authentication() && !self.has_password {
                    Error::authentication(
                        "connecting: the server asks for a password and the configuration gives none",
                    )
                } else {
                    // No operation had been sent on a connection still connecting.
                    error.not_applied()
                }
            })?;
        Ok(PgConn {
            client,
            broken: Arc::new(AtomicBool::new(false)),
            last_used: Instant::now(),
            statements: std::collections::HashMap::new(),
        })
    }
}

/// What the pool's manager reports: a connect that failed, or a pooled connection found stale
/// on checkout (bb8 hands both to the error sink; only the first fails an operation).
#[derive(Debug)]
pub(crate) enum PgPoolError {
    /// Connecting, begun at `started`, failed.
    Connect { error: Error, started: Instant },
    /// A pooled connection was closed, or did not answer a check; it is replaced.
    Stale(&'static str),
}

/// How the pool's failures read: a failed connect is the operation's error, a stale
/// connection is replaced.
pub(crate) fn classify(error: PgPoolError) -> Option<ConnectFailure> {
    match error {
        PgPoolError::Connect { error, started } => Some(ConnectFailure { error, started }),
        PgPoolError::Stale(why) => {
            tracing::debug!(why, "postgresql: a pooled connection went stale");
            None
        }
    }
}

/// The pool's connect failures, read by [`classify`].
pub(crate) type LastError = storage_pool::ConnectFailures<PgPoolError>;

/// Whether an error leaves the connection it happened on unfit for the next operation.
pub(crate) fn breaks_connection(e: &Error) -> bool {
    matches!(
        e.kind(),
        storage_core::ErrorKind::Connection | storage_core::ErrorKind::Timeout
    )
}
