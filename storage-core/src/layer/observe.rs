//! The observation layer: a `tracing` span around every operation, its duration recorded as a
//! metric, and the backend and operation named in its error. Not validation (that is
//! [`super::Validate`], outside this one, so refused input is neither timed nor counted).

use super::{AsStore, Call, ForwardCache, ForwardDatabase, ForwardStore};
use crate::backend::{Cache, Database, Store};
use crate::config::Role;
use crate::error::Error;
use crate::telemetry::OperationLabels;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// Observes the store it wraps. It writes only [`ForwardStore::around`], so every operation
/// of the contract, present and future, passes through the same span, timer and error context.
///
/// ```
/// use std::sync::Arc;
/// use storage_core::layer::Observe;
/// # fn wrap(raw: Arc<dyn storage_core::Database>) -> Arc<dyn storage_core::Database> {
/// Arc::new(Observe::database(raw))
/// # }
/// ```
pub struct Observe<R: ?Sized> {
    inner: Arc<R>,
    labels: OperationLabels,
}

impl Observe<dyn Cache> {
    /// Observes a cache: its metrics and spans carry the role `cache`.
    pub fn cache(inner: Arc<dyn Cache>) -> Self {
        let labels = OperationLabels::new(inner.backend(), Some(Role::Cache.as_str()));
        Observe { inner, labels }
    }
}

impl Observe<dyn Database> {
    /// Observes a database: its metrics and spans carry the role `database`.
    pub fn database(inner: Arc<dyn Database>) -> Self {
        let labels = OperationLabels::new(inner.backend(), Some(Role::Database.as_str()));
        Observe { inner, labels }
    }
}

/// `call` in a span named after the operation, its duration recorded
/// (`db.client.operation.duration`), and backend and operation named in its error: what every
/// observed role shares (the blob role's layer too).
pub(crate) async fn observed<T>(
    labels: &OperationLabels,
    backend: &str,
    op: &'static str,
    call: impl std::future::Future<Output = crate::Result<T>>,
) -> crate::Result<T> {
    let span = tracing::debug_span!(
        "db.client.operation",
        db.system.name = %backend,
        db.operation.name = op,
        storage.role = %labels.role(),
    );
    let started = Instant::now();
    let out = call.instrument(span).await;
    let ended = Instant::now();
    let error = out.as_ref().err().map(Error::kind);
    labels.record(op, ended - started, ended, error);
    out.map_err(|e| {
        let e = e.at(backend.to_string(), op);
        tracing::debug!(error = %e, "storage operation failed");
        e
    })
}

impl<R: fmt::Debug + ?Sized> fmt::Debug for Observe<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait::async_trait]
impl<R: AsStore + ?Sized> ForwardStore for Observe<R> {
    fn inner_store(&self) -> &dyn Store {
        self.inner.as_store()
    }

    /// Runs `call` in a span named after the operation, records its duration
    /// (`db.client.operation.duration`), and names backend and operation in its error.
    fn around<'a, T: Send + 'a>(&'a self, op: &'static str, call: Call<'a, T>) -> Call<'a, T> {
        Box::pin(observed(
            &self.labels,
            self.inner.as_store().backend(),
            op,
            call,
        ))
    }

    /// Not timed: a watcher's wait is not an operation, and would swamp the latency figures.
    async fn wait_for_changes(&self, from: u64, limit: std::time::Duration) -> crate::Result<()> {
        self.inner.as_store().wait_for_changes(from, limit).await
    }
}

impl ForwardCache for Observe<dyn Cache> {
    fn inner_cache(&self) -> &dyn Cache {
        &*self.inner
    }
}

#[async_trait::async_trait]
impl ForwardDatabase for Observe<dyn Database> {
    fn inner_database(&self) -> &dyn Database {
        &*self.inner
    }

    /// Not timed: a follower's wait is not an operation, and would swamp the latency figures.
    async fn wait_for_change(&self, key: &str, limit: std::time::Duration) -> crate::Result<()> {
        self.inner.wait_for_change(key, limit).await
    }
}
