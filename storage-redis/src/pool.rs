//! The connection pool: bb8 over redis-rs multiplexed connections (built by `storage-pool` with
//! the configured timeouts), a broken flag set by I/O errors, and how its connect errors read.
//! Not the retry policy (that is `RedisBackend::with_conn`).

use crate::core::{Sent, redis_error};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use storage_pool::ConnectFailure;

/// A pooled connection, whether an I/O error has broken it, and when it last carried a command.
pub struct Conn {
    pub(crate) inner: MultiplexedConnection,
    pub(crate) broken: Arc<AtomicBool>,
    pub(crate) last_used: Arc<std::sync::Mutex<std::time::Instant>>,
}

/// A connection idle longer than this answers a `PING` before it carries a command, so that a
/// write is never sent on a connection the server closed (a restart while the client was idle).
pub(crate) const IDLE_CHECK: Duration = Duration::from_millis(250);

/// Builds connections with the configured timeouts; never pings on checkout.
pub struct Manager {
    pub(crate) client: Client,
    pub(crate) config: AsyncConnectionConfig,
}

/// A connect that failed, begun at `started`; or a check that failed (`started` is then the
/// check's time, which fails no waiting checkout: the runner checks connections itself).
#[derive(Debug)]
pub struct ConnectError {
    error: RedisError,
    started: std::time::Instant,
}

impl bb8::ManageConnection for Manager {
    type Connection = Conn;
    type Error = ConnectError;

    async fn connect(&self) -> std::result::Result<Conn, ConnectError> {
        let started = std::time::Instant::now();
        self.open()
            .await
            .map_err(|error| ConnectError { error, started })
    }

    async fn is_valid(&self, conn: &mut Conn) -> std::result::Result<(), ConnectError> {
        redis::cmd("PING")
            .query_async::<()>(&mut conn.inner)
            .await
            .map_err(|error| ConnectError {
                error,
                started: std::time::Instant::now(),
            })
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken.load(Ordering::Relaxed)
    }
}

impl Manager {
    /// One connection, with a PING when no password proves the server's consent.
    pub(crate) async fn open(&self) -> std::result::Result<Conn, RedisError> {
        let mut inner = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        // Without a password nothing in the handshake needs the server's consent: a server
        // with `requirepass` accepted the connection and refused every command after it. A
        // PING proves the credentials (or their absence) before the connection is used.
        if self
            .client
            .get_connection_info()
            .redis_settings()
            .password()
            .is_none()
        {
            redis::cmd("PING").query_async::<()>(&mut inner).await?;
        }
        Ok(Conn {
            inner,
            broken: Arc::new(AtomicBool::new(false)),
            last_used: Arc::new(std::sync::Mutex::new(std::time::Instant::now())),
        })
    }
}

pub(crate) type Pool = bb8::Pool<Manager>;

/// How the pool's failures read: every one is a failed connect (the check on checkout is the
/// runner's own, so bb8 reports no stale connection here).
pub(crate) fn classify(error: ConnectError) -> Option<ConnectFailure> {
    Some(ConnectFailure {
        error: redis_error(error.error, "connecting", Sent::No),
        started: error.started,
    })
}

/// The pool's connect failures, read by [`classify`].
pub(crate) type LastError = storage_pool::ConnectFailures<ConnectError>;
