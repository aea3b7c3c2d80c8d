//! The connection pool: bb8 over redis-rs multiplexed connections (built by `storage-pool` with
//! the configured timeouts), a broken flag set by I/O errors, and how its connect errors read.
//! Not the retry policy (that is `RedisBackend::with_conn`).

use crate::core::redis_error;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use storage_core::Error;

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

/// How the pool's failures read: every one is a failed connect (the check on checkout is the
/// runner's own, so bb8 reports no stale connection here).
pub(crate) fn classify(error: RedisError) -> Option<Error> {
    Some(redis_error(error, "connecting"))
}

/// The pool's connect failures, read by [`classify`].
pub(crate) type LastError = storage_pool::ConnectFailures<RedisError>;
