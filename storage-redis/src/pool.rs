//! The connection pool: bb8 over redis-rs multiplexed connections, with the configured timeouts,
//! a broken flag set by I/O errors, and the last connect error for the operations waiting on a
//! connection. Not the retry policy (that is `RedisBackend::with_conn`).

use crate::core::redis_error;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use storage_core::{Error, Result};

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

impl bb8::ManageConnection for Manager {
    type Connection = Conn;
    type Error = RedisError;

    async fn connect(&self) -> std::result::Result<Conn, RedisError> {
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

    async fn is_valid(&self, conn: &mut Conn) -> std::result::Result<(), RedisError> {
        redis::cmd("PING").query_async::<()>(&mut conn.inner).await
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken.load(Ordering::Relaxed)
    }
}

pub(crate) type Pool = bb8::Pool<Manager>;

/// Keeps the pool's last connection error, so that a checkout timeout can say why, and wakes
/// the checkouts waiting for a connection when a connect fails, so that they fail at once with
/// that error instead of waiting out the acquire timeout.
#[derive(Debug, Clone, Default)]
pub(crate) struct LastError(
    Arc<std::sync::Mutex<Option<(storage_core::ErrorKind, String)>>>,
    Arc<tokio::sync::Notify>,
);

impl bb8::ErrorSink<RedisError> for LastError {
    fn sink(&self, e: RedisError) {
        let e = redis_error(e, "connecting");
        tracing::debug!(error = %e, "redis connection failed");
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((e.kind(), e.message().to_string()));
        self.1.notify_waiters();
    }
    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<RedisError>> {
        Box::new(self.clone())
    }
}

impl LastError {
    pub(crate) fn pool_error(&self, e: bb8::RunError<RedisError>) -> Error {
        match e {
            bb8::RunError::User(e) => redis_error(e, "connecting"),
            bb8::RunError::TimedOut => {
                let last = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
                Error::checkout_timeout(last.map(|(_, m)| m).as_deref())
            }
        }
    }

    /// A connection from `pool`, or the error of a connect that failed while waiting for one.
    pub(crate) async fn checkout<'p>(
        &self,
        pool: &'p Pool,
    ) -> Result<bb8::PooledConnection<'p, Manager>> {
        let failed = self.1.notified();
        tokio::pin!(failed);
        failed.as_mut().enable();
        tokio::select! {
            got = pool.get() => got.map_err(|e| self.pool_error(e)),
            () = failed => {
                let last = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
                Err(match last {
                    Some((kind, message)) => Error::new(kind, message),
                    None => Error::connection("connecting failed"),
                })
            }
        }
    }
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
