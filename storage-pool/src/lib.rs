//! The bb8 pool that the network backends (PostgreSQL, Redis) share: one builder from the
//! common configuration fields, one checkout that fails with the connect error that stopped
//! it, and the pool's state for the `db.client.connection.*` metrics.
//!
//! It is not a backend and knows no driver: each backend gives its own connection manager and
//! a function that turns its driver's connect error into a storage [`Error`]. Nor is it the
//! retry policy (that is storage-core's `raw::RetryPolicy`, which each runner loops through).

#![warn(missing_docs)]

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use storage_core::config::CommonSettings;
use storage_core::telemetry::PoolState;
use storage_core::{Error, Result};

pub use bb8;

/// A connect that failed: its error, and when the attempt began.
#[derive(Debug)]
pub struct ConnectFailure {
    /// Why it failed.
    pub error: Error,
    /// When the attempt began: a checkout that began later did not wait for it, and is not
    /// failed by it.
    pub started: Instant,
}

/// How a backend reads its pool's errors: a [`ConnectFailure`] for a connect that failed, or
/// `None` for a pooled connection found stale on checkout (bb8 reports both the same way, but
/// a stale connection is replaced, not a reason to fail the waiting operation).
pub type Classify<E> = fn(E) -> Option<ConnectFailure>;

/// The pool's connect failures: keeps the last one, so that a checkout timeout can say why, and
/// wakes the checkouts waiting for a connection when a connect fails, so that they fail at once
/// with that error instead of waiting out the acquire timeout.
pub struct ConnectFailures<E> {
    last: Arc<Mutex<Option<ConnectFailure>>>,
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
        self.sink_failure(error);
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

    /// The last connect error, as an error of its own ([`Error::duplicate`]: its cause kept).
    pub fn last_error(&self) -> Option<Error> {
        self.last_since(None)
    }

    /// The last connect error, if that connect began at `since` or later.
    fn last_since(&self, since: Option<Instant>) -> Option<Error> {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|f| since.is_none_or(|since| f.started >= since))
            .map(|f| f.error.duplicate())
    }
}

impl<E> ConnectFailures<E> {
    /// Records a failed connect and wakes the checkouts waiting (what the error sink does with
    /// a failure its classifier read).
    fn sink_failure(&self, failure: ConnectFailure) {
        tracing::debug!(db.system.name = self.system, error = %failure.error, "connecting failed");
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(failure);
        self.failed.notify_waiters();
    }
}

impl<E: Send + 'static> ConnectFailures<E> {
    /// The storage error for a failed checkout: the connect error itself, or a checkout
    /// timeout that names the last connect error.
    pub fn run_error(&self, error: bb8::RunError<E>) -> Error {
        match error {
            bb8::RunError::User(e) => (self.classify)(e)
                .map(|f| f.error)
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

    /// The connection `got` gives, or the error of a connect that began while this checkout
    /// waited and failed. A connect that began earlier (for another operation, or before the
    /// network came back) does not fail it: its error is another attempt's.
    async fn first_of<T>(
        &self,
        got: impl Future<Output = std::result::Result<T, bb8::RunError<E>>>,
    ) -> Result<T> {
        let began = Instant::now();
        tokio::pin!(got);
        loop {
            let failed = self.failed.notified();
            tokio::pin!(failed);
            failed.as_mut().enable();
            tokio::select! {
                got = &mut got => return got.map_err(|e| self.run_error(e)),
                () = failed => {
                    if let Some(error) = self.last_since(Some(began)) {
                        return Err(error);
                    }
                }
            }
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
    use super::{ConnectFailure, ConnectFailures, builder};
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

    fn classify(e: &'static str) -> Option<ConnectFailure> {
        (e != "stale").then(|| ConnectFailure {
            error: Error::connection(e),
            started: Instant::now(),
        })
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

    /// A server that never answers a connect.
    struct Silent;

    impl bb8::ManageConnection for Silent {
        type Connection = ();
        type Error = &'static str;
        async fn connect(&self) -> Result<(), &'static str> {
            std::future::pending().await
        }
        async fn is_valid(&self, _: &mut ()) -> Result<(), &'static str> {
            Ok(())
        }
        fn has_broken(&self, _: &mut ()) -> bool {
            false
        }
    }

    fn failure(error: &str, started: Instant) -> ConnectFailure {
        ConnectFailure {
            error: Error::connection(error.to_string()),
            started,
        }
    }

    /// Regression: an operation failed with the error of a connect that began before it (17
    /// operations in an 8 s stall said "connecting took longer than 5s" after 0 to 997 ms,
    /// and after the network came back, such errors kept failing new operations). Only a
    /// connect that began while the checkout waited fails it.
    #[tokio::test]
    async fn a_checkout_is_failed_only_by_a_connect_that_began_after_it() {
        let failures = ConnectFailures::new("test", classify);
        let common = CommonSettings {
            pool_min: 0,
            acquire_timeout: Duration::from_millis(400),
            ..CommonSettings::default()
        };
        let pool = builder(&common, &failures).build_unchecked(Silent);
        let (sink, earlier) = (failures.clone(), Instant::now());
        let stale = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            sink.sink_failure(failure("an older connect's error", earlier));
        });
        let Err(e) = failures.checkout(&pool).await else {
            panic!("a silent server lent a connection");
        };
        stale.await.unwrap();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        let sink = failures.clone();
        let fresh = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            sink.sink_failure(failure("this connect's error", Instant::now()));
        });
        let Err(e) = failures.checkout(&pool).await else {
            panic!("a silent server lent a connection");
        };
        fresh.await.unwrap();
        assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
        assert!(e.to_string().contains("this connect's error"), "{e}");
    }

    /// A server that accepts every connection.
    struct Accepting;

    impl bb8::ManageConnection for Accepting {
        type Connection = ();
        type Error = &'static str;
        async fn connect(&self) -> Result<(), &'static str> {
            Ok(())
        }
        async fn is_valid(&self, _: &mut ()) -> Result<(), &'static str> {
            Ok(())
        }
        fn has_broken(&self, _: &mut ()) -> bool {
            false
        }
    }

    #[tokio::test]
    async fn the_state_counts_open_and_idle_connections() {
        let failures = ConnectFailures::new("test", classify);
        let common = CommonSettings {
            pool_min: 0,
            ..CommonSettings::default()
        };
        let pool = builder(&common, &failures).build_unchecked(Accepting);
        let lent = failures.checkout(&pool).await.expect("a connection");
        let state = super::state(&pool);
        assert_eq!((state.open, state.idle), (1, 0));
        drop(lent);
        let state = super::state(&pool);
        assert_eq!((state.open, state.idle), (1, 1));
        let shown = format!("{failures:?}");
        assert!(
            shown.contains("\"test\"") && shown.contains("last: None"),
            "{shown}"
        );
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
