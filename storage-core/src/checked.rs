//! The layer that gives every backend the same rules, errors and tracing.

use crate::backend::{Cache, CacheEntry, Database, KeyKind, KeyTtl, Store};
use crate::config::Role;
use crate::error::{Error, Result};
use crate::limits::{normalize_ttl, validate_key, validate_value};
use crate::telemetry::OperationLabels;
use async_trait::async_trait;
use serde_json::Value;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// Wraps any backend so that it keeps the contract's input rules.
///
/// Before any I/O it validates keys, values and TTLs (a TTL reaches the backend already
/// normalised to whole milliseconds); it runs each operation in a `tracing` span with the
/// backend and operation names; and it names both in every error. The registry wraps every
/// backend it builds, built in or plugin, so a backend author writes only the storage logic.
///
/// ```
/// # use std::sync::Arc;
/// # fn wrap(raw: Arc<dyn storage_core::Database>) -> Arc<dyn storage_core::Database> {
/// Arc::new(storage_core::Checked::new(raw))
/// # }
/// ```
pub struct Checked<B: ?Sized> {
    inner: Arc<B>,
    labels: OperationLabels,
}

impl<B: Store + ?Sized> Checked<B> {
    /// Wraps `inner`, whose role is not known (metrics label it `unknown`).
    pub fn new(inner: Arc<B>) -> Self {
        let labels = OperationLabels::new(inner.backend(), None);
        Checked { inner, labels }
    }

    /// Wraps `inner`, serving `role`: its metrics and spans carry the role.
    pub fn for_role(inner: Arc<B>, role: Role) -> Self {
        let labels = OperationLabels::new(inner.backend(), Some(role.as_str()));
        Checked { inner, labels }
    }
}

impl<B: ?Sized> Checked<B> {
    /// The wrapped backend.
    pub fn inner(&self) -> &Arc<B> {
        &self.inner
    }
}

impl<B: fmt::Debug + ?Sized> fmt::Debug for Checked<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl<B: Store + ?Sized> Checked<B> {
    /// Runs `fut` in a span named after the operation, records its duration
    /// (`db.client.operation.duration`), and names backend and op in its error.
    async fn run<T>(&self, op: &'static str, fut: impl Future<Output = Result<T>>) -> Result<T> {
        let backend = self.inner.backend();
        let span = tracing::debug_span!(
            "db.client.operation",
            db.system.name = %backend,
            db.operation.name = op,
            storage.role = %self.labels.role(),
        );
        let started = Instant::now();
        let out = fut.instrument(span).await;
        let ended = Instant::now();
        let error = out.as_ref().err().map(Error::kind);
        self.labels.record(op, ended - started, ended, error);
        out.map_err(|e| {
            let e = e.at(backend.to_string(), op);
            tracing::debug!(error = %e, "storage operation failed");
            e
        })
    }

    fn check_key(&self, op: &'static str, key: &str) -> Result<()> {
        validate_key(key).map_err(|e| self.ctx(e, op))
    }

    fn check_value(&self, op: &'static str, key: &str, value: &Value) -> Result<()> {
        validate_value(value).map_err(|e| {
            self.ctx(
                Error::invalid_value(format!("{} (key {key:?})", e.message())),
                op,
            )
        })
    }

    fn ctx(&self, e: Error, op: &'static str) -> Error {
        e.at(self.inner.backend().to_string(), op)
    }
}

fn normalized(ttl: Option<Duration>) -> Result<Option<Duration>> {
    ttl.map(|t| normalize_ttl(t).map(Duration::from_millis))
        .transpose()
}

#[async_trait]
impl<B: Store + ?Sized> Store for Checked<B> {
    fn backend(&self) -> &str {
        self.inner.backend()
    }

    async fn get(&self, key: &str) -> Result<Option<Value>> {
        self.check_key("get", key)?;
        self.run("get", self.inner.get(key)).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.check_key("delete", key)?;
        self.run("delete", self.inner.delete(key)).await
    }

    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Value>>> {
        for key in keys {
            self.check_key("mget", key)?;
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let out = self.run("mget", self.inner.mget(keys)).await?;
        if out.len() != keys.len() {
            return Err(self.ctx(
                Error::other(format!(
                    "backend returned {} slots for {} keys",
                    out.len(),
                    keys.len()
                )),
                "mget",
            ));
        }
        Ok(out)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        self.check_key("exists", key)?;
        self.run("exists", self.inner.exists(key)).await
    }

    async fn kind(&self, key: &str) -> Result<KeyKind> {
        self.check_key("kind", key)?;
        self.run("kind", self.inner.kind(key)).await
    }

    async fn keys(&self, pattern: Option<&str>) -> Result<Vec<String>> {
        // `*` is the same as no pattern; backends get one spelling of "everything".
        let pattern = pattern.filter(|p| *p != "*");
        self.run("keys", self.inner.keys(pattern)).await
    }

    async fn clear(&self) -> Result<()> {
        self.run("clear", self.inner.clear()).await
    }

    async fn ping(&self) -> Result<()> {
        self.run("ping", self.inner.ping()).await
    }

    async fn close(&self) -> Result<()> {
        self.run("close", self.inner.close()).await
    }
}

#[async_trait]
impl<B: Cache + ?Sized> Cache for Checked<B> {
    async fn set(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<()> {
        self.check_key("set", key)?;
        self.check_value("set", key, value)?;
        let ttl = normalized(ttl).map_err(|e| self.ctx(e, "set"))?;
        self.run("set", self.inner.set(key, value, ttl)).await
    }

    async fn mset(&self, entries: &[CacheEntry]) -> Result<()> {
        let mut checked = Vec::with_capacity(entries.len());
        for e in entries {
            self.check_key("mset", &e.key)?;
            self.check_value("mset", &e.key, &e.value)?;
            let ttl = normalized(e.ttl).map_err(|err| self.ctx(err, "mset"))?;
            checked.push(CacheEntry {
                key: e.key.clone(),
                value: e.value.clone(),
                ttl,
            });
        }
        if checked.is_empty() {
            return Ok(());
        }
        self.run("mset", self.inner.mset(&checked)).await
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        self.check_key("ttl", key)?;
        self.run("ttl", self.inner.ttl(key)).await
    }
}

#[async_trait]
impl<B: Database + ?Sized> Database for Checked<B> {
    async fn set(&self, key: &str, value: &Value) -> Result<()> {
        self.check_key("set", key)?;
        self.check_value("set", key, value)?;
        self.run("set", self.inner.set(key, value)).await
    }

    async fn set_owned(&self, key: &str, value: Value) -> Result<()> {
        self.check_key("set", key)?;
        self.check_value("set", key, &value)?;
        self.run("set", self.inner.set_owned(key, value)).await
    }

    async fn mset(&self, entries: &[(String, Value)]) -> Result<()> {
        for (key, value) in entries {
            self.check_key("mset", key)?;
            self.check_value("mset", key, value)?;
        }
        if entries.is_empty() {
            return Ok(());
        }
        self.run("mset", self.inner.mset(entries)).await
    }

    async fn append(&self, key: &str, value: &Value) -> Result<()> {
        self.check_key("append", key)?;
        self.check_value("append", key, value)?;
        self.run("append", self.inner.append(key, value)).await
    }

    async fn append_many(&self, key: &str, values: &[Value]) -> Result<()> {
        self.check_key("append_many", key)?;
        for v in values {
            self.check_value("append_many", key, v)?;
        }
        if values.is_empty() {
            return Ok(());
        }
        self.run("append_many", self.inner.append_many(key, values))
            .await
    }

    async fn get_range(&self, key: &str, start: i64, end: i64) -> Result<Vec<Value>> {
        self.check_key("get_range", key)?;
        self.run("get_range", self.inner.get_range(key, start, end))
            .await
    }

    async fn get_length(&self, key: &str) -> Result<u64> {
        self.check_key("get_length", key)?;
        self.run("get_length", self.inner.get_length(key)).await
    }

    async fn trim(&self, key: &str, start: i64, end: i64) -> Result<()> {
        self.check_key("trim", key)?;
        self.run("trim", self.inner.trim(key, start, end)).await
    }
}

#[cfg(test)]
#[path = "checked_tests.rs"]
mod tests;
