//! The bb8 pool that the network backends (PostgreSQL, Redis) share: one builder from the
//! common configuration fields, one checkout that fails with the connect error that stopped
//! it, and the pool's state for the `db.client.connection.*` metrics.
//!
//! It is not a backend and knows no driver: each backend gives its own connection manager and
//! a function that turns its driver's connect error into a storage [`Error`]. Nor is it the
//! retry policy (that is each backend's command runner), though [`Resend`], how an operation
//! says whether it may be sent again, is here, shared by both runners.

#![warn(missing_docs)]

use std::fmt;
use std::sync::{Arc, Mutex};
use storage_core::config::CommonSettings;
use storage_core::telemetry::PoolState;
use storage_core::{Error, Result};

pub use bb8;

/// Whether an operation may be sent again after a transient error: a property of the
/// operation, decided where the operation is written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Resend {
    /// Idempotent (a read, `set`, `delete`): sending it twice leaves what sending it once does.
    Allowed,
    /// Not idempotent (`append`, `trim`): an error is returned as it is, never re-sent.
    Never,
}

/// How a backend reads its pool's connect errors: a storage [`Error`] for a connect that
/// failed, or `None` for a pooled connection found stale on checkout (bb8 reports both the
/// same way, but a stale connection is replaced, not a reason to fail the waiting operation).
pub type Classify<E> = fn(E) -> Option<Error>;

/// The pool's connect failures: keeps the last one, so that a checkout timeout can say why, and
/// wakes the checkouts waiting for a connection when a connect fails, so that they fail at once
/// with that error instead of waiting out the acquire timeout.
pub struct ConnectFailures<E> {
    last: Arc<Mutex<Option<Error>>>,
    failed: Arc<tokio::sync::Notify>,
    classify: Classify<E>,
    system: &'static str,
}

impl<E> Clone for ConnectFailures<E> {
    fn clone(&self) -> Self {
        ConnectFailures {
            last: self.last.clone(),
            failed: self.failed.clone(),
            classify: self.classify,
            system: self.system,
        }
    }
}

impl<E> fmt::Debug for ConnectFailures<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectFailures")
            .field("system", &self.system)
            .field("last", &self.last_error())
            .finish()
    }
}

impl<E: Send + 'static> bb8::ErrorSink<E> for ConnectFailures<E> {
    fn sink(&self, error: E) {
        let Some(error) = (self.classify)(error) else {
            tracing::debug!(
                db.system.name = self.system,
                "replacing a stale pooled connection"
            );
            return;
        };
        tracing::debug!(db.system.name = self.system, %error, "connecting failed");
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
        self.failed.notify_waiters();
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<E>> {
        Box::new(self.clone())
    }
}

impl<E> ConnectFailures<E> {
    /// Failures of a pool of `system` (its `db.system.name`), read with `classify`.
    pub fn new(system: &'static str, classify: Classify<E>) -> Self {
        ConnectFailures {
            last: Arc::default(),
            failed: Arc::default(),
            classify,
            system,
        }
    }

    /// The last connect error, as an error of its own (the same kind and message).
    pub fn last_error(&self) -> Option<Error> {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|e| Error::new(e.kind(), e.message().to_string()))
    }
}

impl<E: Send + 'static> ConnectFailures<E> {
    /// The storage error for a failed checkout: the connect error itself, or a checkout
    /// timeout that names the last connect error.
    pub fn run_error(&self, error: bb8::RunError<E>) -> Error {
        match error {
            bb8::RunError::User(e) => (self.classify)(e)
                .unwrap_or_else(|| Error::connection("a pooled connection went stale")),
            bb8::RunError::TimedOut => {
                let last = self.last_error().map(|e| e.to_string());
                Error::checkout_timeout(last.as_deref())
            }
        }
    }

    /// A connection from `pool`, or the error of a connect that failed while waiting for one.
    pub async fn checkout<'p, M>(
        &self,
        pool: &'p bb8::Pool<M>,
    ) -> Result<bb8::PooledConnection<'p, M>>
    where
        M: bb8::ManageConnection<Error = E>,
    {
        self.first_of(pool.get()).await
    }

    /// As [`ConnectFailures::checkout`], for a connection that outlives the borrow of `pool`.
    pub async fn checkout_owned<M>(
        &self,
        pool: &bb8::Pool<M>,
    ) -> Result<bb8::PooledConnection<'static, M>>
    where
        M: bb8::ManageConnection<Error = E>,
    {
        self.first_of(pool.get_owned()).await
    }

    async fn first_of<T>(
        &self,
        got: impl Future<Output = std::result::Result<T, bb8::RunError<E>>>,
    ) -> Result<T> {
        let failed = self.failed.notified();
        tokio::pin!(failed);
        failed.as_mut().enable();
        tokio::select! {
            got = got => got.map_err(|e| self.run_error(e)),
            () = failed => Err(self
                .last_error()
                .unwrap_or_else(|| Error::connection("connecting failed"))),
        }
    }
}

/// A pool builder with the common settings every network backend shares: its size, its
/// timeouts, its error sink, the connection given back last lent first (a light load stays on
/// a few warm connections and the rest idle out), and a failed connect reported to the
/// operation at once (a refused server fails within the connect timeout) rather than retried
/// until the acquire timeout. The backend adds what is its own (the check on checkout).
pub fn builder<M: bb8::ManageConnection>(
    common: &CommonSettings,
    failures: &ConnectFailures<M::Error>,
) -> bb8::Builder<M> {
    bb8::Pool::builder()
        .max_size(common.pool_max)
        .min_idle(Some(common.pool_min))
        .connection_timeout(common.acquire_timeout)
        .idle_timeout(Some(common.idle_timeout))
        .error_sink(Box::new(failures.clone()))
        .queue_strategy(bb8::QueueStrategy::Lifo)
        .retry_connection(false)
}

/// The pool's state for the `db.client.connection.*` series.
pub fn state<M: bb8::ManageConnection>(pool: &bb8::Pool<M>) -> PoolState {
    let state = pool.state();
    PoolState {
        open: state.connections,
        idle: state.idle_connections,
        waited_total: state.statistics.get_waited,
        timed_out_total: state.statistics.get_timed_out,
    }
}

#[cfg(test)]
mod tests {
    use super::{ConnectFailures, builder};
    use bb8::ErrorSink;
    use std::time::{Duration, Instant};
    use storage_core::config::CommonSettings;
    use storage_core::{Error, ErrorKind};

    /// A server that refuses every connection.
    struct Refusing;

    impl bb8::ManageConnection for Refusing {
        type Connection = ();
        type Error = &'static str;
        async fn connect(&self) -> Result<(), &'static str> {
            Err("refused")
        }
        async fn is_valid(&self, _: &mut ()) -> Result<(), &'static str> {
            Ok(())
        }
        fn has_broken(&self, _: &mut ()) -> bool {
            false
        }
    }

    fn classify(e: &'static str) -> Option<Error> {
        (e != "stale").then(|| Error::connection(e))
    }

    #[tokio::test]
    async fn a_failed_connect_fails_the_waiting_checkout_at_once_with_its_error() {
        let failures = ConnectFailures::new("test", classify);
        let common = CommonSettings {
            pool_min: 0,
            acquire_timeout: Duration::from_secs(30),
            ..CommonSettings::default()
        };
        let pool = builder(&common, &failures).build_unchecked(Refusing);
        let started = Instant::now();
        let Err(e) = failures.checkout(&pool).await else {
            panic!("a refusing server lent a connection");
        };
        assert!(started.elapsed() < Duration::from_secs(10), "{e}");
        assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
        assert!(e.to_string().contains("refused"), "{e}");
        assert_eq!(super::state(&pool).open, 0);
    }

    #[test]
    fn a_stale_connection_is_not_a_failure_and_a_timeout_names_the_last_one() {
        let failures = ConnectFailures::new("test", classify);
        failures.sink("stale");
        assert!(failures.last_error().is_none());
        let e = failures.run_error(bb8::RunError::TimedOut);
        assert!(!e.to_string().contains("refused"), "{e}");
        failures.sink("refused");
        assert_eq!(
            failures.last_error().map(|e| e.kind()),
            Some(ErrorKind::Connection)
        );
        let e = failures.run_error(bb8::RunError::TimedOut);
        assert!(e.to_string().contains("refused"), "{e}");
        let e = failures.run_error(bb8::RunError::User("stale"));
        assert_eq!(e.kind(), ErrorKind::Connection);
    }
}
