//! How one command reaches Redis: a connection checked out (and checked after idling) from the
//! pool of one server, or a cluster connection; the operation timeout around it all; which
//! errors mark a connection broken; and which commands are re-sent after which errors.
//!
//! Not the commands themselves (`backend`) nor the connections' making (`pool`, `cluster`).

use crate::cluster::Link;
use crate::core::{Links, RedisBackend, Sent, is_wrong_type, redis_error};
use crate::pool::{IDLE_CHECK, Pool};
use crate::solo::SoloLink;
use redis::{Cmd, Pipeline, RedisError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use storage_core::raw::Resend;
use storage_core::raw::RetryPolicy;
use storage_core::{Error, Result};

impl RedisBackend {
    /// How a command is sent again: up to `maxRetriesPerRequest` times on one server; on a
    /// cluster until the operation timeout, while the client catches up with a new topology
    /// (a refused command did not run, so even an `append` is re-sent). Either way only what
    /// [`RetryPolicy`] allows.
    fn retry_policy(&self, cluster: bool) -> RetryPolicy {
        let policy = RetryPolicy {
            max_retries: self.retries,
            base_delay: Duration::from_millis(25),
            max_delay: Duration::from_millis(200),
        };
        if cluster {
            policy.with_max_retries(u32::MAX)
        } else {
            policy
        }
    }

    /// Runs `f` under the operation timeout, sent again as [`RedisBackend::retry_policy`]
    /// allows: on a pooled connection of one server (marked broken on an I/O error), or on a
    /// cluster connection (the retrying one for idempotent commands, which also follows
    /// redirections by itself, the one that never re-sends for the others).
    pub(crate) async fn with_conn<T, F, Fut>(&self, resend: Resend, what: &str, f: F) -> Result<T>
    where
        F: Fn(Link) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, RedisError>>,
    {
        let links = self.links.get()?;
        let policy = self.retry_policy(matches!(links, Links::Cluster(_)));
        let deadline = std::time::Instant::now() + self.operation_timeout;
        // Set once a command is handed to a connection: until then, a timeout sent nothing.
        let sent = AtomicBool::new(false);
        let attempt = policy.run(
            resend,
            Some(deadline),
            |_| async {
                match &links {
                    Links::Node(pool, solo) => {
                        self.on_node(pool, solo.as_ref(), what, &f, &sent).await
                    }
                    Links::Cluster(links) => {
                        let conn = match resend {
                            Resend::Allowed => &links.retrying,
                            Resend::Never => &links.once,
                        };
                        sent.store(true, Ordering::Relaxed);
                        f(Link::Cluster(conn.clone()))
                            .await
                            .map_err(|e| command_error(e, what))
                    }
                }
            },
            tokio::time::sleep,
            |e, retries, delay| tracing::debug!(error = %e, retries, ?delay, "sending again"),
        );
        self.bounded(what, &sent, attempt).await
    }

    /// One try on one server: on its solo connection when this operation began alone on the
    /// backend, else on a pooled connection; `sent` is set when the command is.
    async fn on_node<T, F, Fut>(
        &self,
        pool: &Pool,
        solo: Option<&Arc<SoloLink>>,
        what: &str,
        f: &F,
        sent: &AtomicBool,
    ) -> Result<T>
    where
        F: Fn(Link) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, RedisError>>,
    {
        // Only an operation that began alone takes the solo connection: with others in flight
        // it could not poll, and the pool's shared connections serve them as before.
        let in_flight = solo.map(|s| s.enter());
        let solo = solo.filter(|_| in_flight.as_ref().is_some_and(|f| f.alone));
        if let Some(call) = match solo {
            Some(solo) => solo.take().await,
            None => None,
        } {
            sent.store(true, Ordering::Relaxed);
            // The connection marks itself unusable when a reply is not read whole.
            return f(Link::Solo(call))
                .await
                .map_err(|e| command_error(e, what));
        }
        self.pool_metrics.maybe_report(|| storage_pool::state(pool));
        // A multiplexed connection serves many callers at once: take one from the pool and give
        // it back before the command, so that concurrent callers pipeline on it instead of
        // queueing for exclusive checkouts. Nothing is sent until one is found.
        let (inner, broken, last_used) = loop {
            let conn = self.last_error.checkout(pool).await?;
            // A connection an earlier command found broken is discarded when its guard drops
            // here (`has_broken`); take the next one.
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
            break (
                conn.inner.clone(),
                conn.broken.clone(),
                conn.last_used.clone(),
            );
        };
        sent.store(true, Ordering::Relaxed);
        let out = f(Link::Node(inner)).await;
        *last_used.lock().unwrap_or_else(|e| e.into_inner()) = std::time::Instant::now();
        if let Err(e) = &out
            && (e.is_io_error()
                || e.is_connection_dropped()
                || e.is_unrecoverable_error()
                || e.is_timeout())
        {
            broken.store(true, Ordering::Relaxed);
        }
        out.map_err(|e| command_error(e, what))
    }

    /// `attempt` under the operation timeout. Once a command is sent (`sent`), Redis cannot
    /// cancel it, so a timeout's outcome is unknown; before, nothing happened.
    async fn bounded<T>(
        &self,
        what: &str,
        sent: &AtomicBool,
        attempt: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        tokio::time::timeout(self.operation_timeout, attempt)
            .await
            .map_err(|_| {
                let limit = self.operation_timeout;
                if sent.load(Ordering::Relaxed) {
                    Error::timeout(format!(
                        "{what}: no answer within {limit:?}; Redis cannot cancel a command, so the one sent may have run: the outcome is unknown"
                    ))
                    .outcome_unknown()
                } else {
                    Error::timeout(format!(
                        "{what}: no connection within {limit:?}; nothing was sent"
                    ))
                    .not_applied()
                }
            })?
    }

    pub(crate) async fn query<T: redis::FromRedisValue + Send>(
        &self,
        resend: Resend,
        cmd: &Cmd,
        what: &str,
    ) -> Result<T> {
        self.with_conn(resend, what, |mut c| async move {
            cmd.query_async::<T>(&mut c).await
        })
        .await
    }

    pub(crate) async fn pipeline<T: redis::FromRedisValue + Send>(
        &self,
        pipe: &Pipeline,
        what: &str,
    ) -> Result<T> {
        self.with_conn(Resend::Allowed, what, |mut c| async move {
            pipe.query_async::<T>(&mut c).await
        })
        .await
    }
}

/// The error of a command that was sent: the contract's wrong-type error for `WRONGTYPE`, the
/// rest as [`redis_error`] reads them.
fn command_error(e: RedisError, what: &str) -> Error {
    if is_wrong_type(&e) {
        Error::wrong_type(format!("{what}: the key holds the other kind"))
    } else {
        redis_error(e, what, Sent::Yes)
    }
}
