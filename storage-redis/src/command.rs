//! How one command reaches Redis: a connection checked out (and checked after idling) from the
//! pool of one server, or a cluster connection; the operation timeout around it all; which
//! errors mark a connection broken; and which commands are re-sent after which errors.
//!
//! Not the commands themselves (`backend`) nor the connections' making (`pool`, `cluster`).

use crate::cluster::{self, ClusterLinks, Link};
use crate::core::{Links, RedisBackend, is_wrong_type, redis_error, redis_error_is_transient};
use crate::pool::IDLE_CHECK;
use redis::{Cmd, Pipeline, RedisError};
use std::sync::atomic::Ordering;
use std::time::Duration;
use storage_core::{Error, Result};
use storage_pool::Resend;

impl RedisBackend {
    /// Runs `f` on a pooled connection under the operation timeout, marking the connection
    /// broken on an I/O error and retrying idempotent work after transient errors.
    pub(crate) async fn with_conn<T, F, Fut>(&self, resend: Resend, what: &str, f: F) -> Result<T>
    where
        F: Fn(Link) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, RedisError>>,
    {
        let pool = match self.links()? {
            Links::Node(pool) => pool,
            Links::Cluster(links) => return self.on_cluster(links, resend, what, f).await,
        };
        let attempt = async {
            let mut tries = 0;
            loop {
                // A multiplexed connection serves many callers at once: take one from the pool
                // and give it back before the command, so that concurrent callers pipeline on
                // it instead of queueing for exclusive checkouts.
                self.pool_metrics
                    .maybe_report(|| storage_pool::state(&pool));
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
                        let out = f(Link::Node(inner)).await;
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
                        if resend == Resend::Allowed
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
        self.bounded(what, attempt).await
    }

    /// `attempt` under the operation timeout.
    async fn bounded<T>(&self, what: &str, attempt: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::time::timeout(self.operation_timeout, attempt)
            .await
            .map_err(|_| {
                Error::timeout(format!(
                    "{what}: no answer within {:?}; a command already sent may have been applied: the outcome is unknown",
                    self.operation_timeout
                ))
            })?
    }

    /// `with_conn` on a cluster: idempotent commands on the retrying connection (which also
    /// retries by itself), the others on the one that never re-sends; either is re-sent here
    /// only after a transient error, and a non-idempotent one only when the answer proves it
    /// did not run.
    async fn on_cluster<T, F, Fut>(
        &self,
        links: ClusterLinks,
        resend: Resend,
        what: &str,
        f: F,
    ) -> Result<T>
    where
        F: Fn(Link) -> Fut,
        Fut: Future<Output = std::result::Result<T, RedisError>>,
    {
        let conn = if resend == Resend::Allowed {
            &links.retrying
        } else {
            &links.once
        };
        let attempt = async {
            let mut tries = 0;
            loop {
                let e = match f(Link::Cluster(conn.clone())).await {
                    Ok(v) => return Ok(v),
                    Err(e) => e,
                };
                // A command the cluster refused (a redirection, a slot not served yet) did not
                // run: it is re-sent until the operation timeout while the client catches up
                // with the new topology. Other transient errors are re-sent only when the
                // command is idempotent, `maxRetriesPerRequest` times.
                let refused = cluster::not_applied(&e);
                let again = refused || (resend == Resend::Allowed && redis_error_is_transient(&e));
                if again && (refused || tries < self.retries) {
                    tries += 1;
                    let wait = (25 * u64::from(tries)).min(200);
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    continue;
                }
                return Err(if is_wrong_type(&e) {
                    Error::wrong_type(format!("{what}: the key holds the other kind"))
                } else {
                    redis_error(e, what)
                });
            }
        };
        self.bounded(what, attempt).await
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
