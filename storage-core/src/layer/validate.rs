//! The validation layer: the contract's input rules, applied before any I/O, and the one
//! check of what a backend answers (an `mget` with a slot per key). Not observation (that is
//! [`super::Observe`], inside this one).

use super::{AsStore, ForwardCache, ForwardDatabase, ForwardStore};
use crate::backend::{Cache, CacheEntry, Database, KeyKind, KeyTtl, Store};
use crate::error::{Error, Result};
use crate::limits::{normalize_ttl, validate_key, validate_value};
use crate::version::{Condition, Version};
use async_trait::async_trait;
use serde_json::Value;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Keeps the contract's input rules in front of the store it wraps: keys, values and TTLs are
/// checked before the call reaches it (a TTL arrives normalised to whole milliseconds), empty
/// batches never reach it, `keys("*")` reaches it as no pattern, and each error names the
/// backend and the operation.
///
/// ```
/// use std::sync::Arc;
/// use storage_core::layer::Validate;
/// # fn wrap(raw: Arc<dyn storage_core::Cache>) -> Arc<dyn storage_core::Cache> {
/// Arc::new(Validate::new(raw))
/// # }
/// ```
pub struct Validate<R: ?Sized> {
    inner: Arc<R>,
}

impl<R: AsStore + ?Sized> Validate<R> {
    /// Validates the calls to `inner` (a cache or a database).
    pub fn new(inner: Arc<R>) -> Self {
        Validate { inner }
    }

    fn ctx(&self, e: Error, op: &'static str) -> Error {
        e.at(self.inner.as_store().backend().to_string(), op)
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

    fn check_entry(&self, op: &'static str, key: &str, value: &Value) -> Result<()> {
        self.check_key(op, key)?;
        self.check_value(op, key, value)
    }
}

impl<R: fmt::Debug + ?Sized> fmt::Debug for Validate<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

fn normalized(ttl: Option<Duration>) -> Result<Option<Duration>> {
    ttl.map(|t| normalize_ttl(t).map(Duration::from_millis))
        .transpose()
}

#[async_trait]
impl<R: AsStore + ?Sized> ForwardStore for Validate<R> {
    fn inner_store(&self) -> &dyn Store {
        self.inner.as_store()
    }

    async fn get(&self, key: &str) -> Result<Option<Value>> {
        self.check_key("get", key)?;
        self.inner_store().get(key).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.check_key("delete", key)?;
        self.inner_store().delete(key).await
    }

    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Value>>> {
        for key in keys {
            self.check_key("mget", key)?;
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let out = self.inner_store().mget(keys).await?;
        if out.len() != keys.len() {
            let e = Error::other(format!(
                "backend returned {} slots for {} keys",
                out.len(),
                keys.len()
            ));
            return Err(self.ctx(e, "mget"));
        }
        Ok(out)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        self.check_key("exists", key)?;
        self.inner_store().exists(key).await
    }

    async fn kind(&self, key: &str) -> Result<KeyKind> {
        self.check_key("kind", key)?;
        self.inner_store().kind(key).await
    }

    async fn keys(&self, pattern: Option<&str>) -> Result<Vec<String>> {
        // `*` is the same as no pattern; backends get one spelling of "everything".
        let pattern = pattern.filter(|p| *p != "*");
        self.inner_store().keys(pattern).await
    }
}

#[async_trait]
impl ForwardCache for Validate<dyn Cache> {
    fn inner_cache(&self) -> &dyn Cache {
        &*self.inner
    }

    async fn set(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<()> {
        self.check_entry("set", key, value)?;
        let ttl = normalized(ttl).map_err(|e| self.ctx(e, "set"))?;
        self.inner.set(key, value, ttl).await
    }

    async fn mset(&self, entries: &[CacheEntry]) -> Result<()> {
        let mut checked = Vec::with_capacity(entries.len());
        for e in entries {
            self.check_entry("mset", &e.key, &e.value)?;
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
        self.inner.mset(&checked).await
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        self.check_key("ttl", key)?;
        self.inner.ttl(key).await
    }

    async fn set_if_absent(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<bool> {
        self.check_entry("set_if_absent", key, value)?;
        let ttl = normalized(ttl).map_err(|e| self.ctx(e, "set_if_absent"))?;
        self.inner.set_if_absent(key, value, ttl).await
    }
}

#[async_trait]
impl ForwardDatabase for Validate<dyn Database> {
    fn inner_database(&self) -> &dyn Database {
        &*self.inner
    }

    async fn set(&self, key: &str, value: &Value) -> Result<()> {
        self.check_entry("set", key, value)?;
        self.inner.set(key, value).await
    }

    async fn set_owned(&self, key: &str, value: Value) -> Result<()> {
        self.check_entry("set", key, &value)?;
        self.inner.set_owned(key, value).await
    }

    async fn mset(&self, entries: &[(String, Value)]) -> Result<()> {
        for (key, value) in entries {
            self.check_entry("mset", key, value)?;
        }
        if entries.is_empty() {
            return Ok(());
        }
        self.inner.mset(entries).await
    }

    async fn get_versioned(&self, key: &str) -> Result<Option<(Value, Version)>> {
        self.check_key("get_versioned", key)?;
        self.inner.get_versioned(key).await
    }

    async fn set_if(&self, key: &str, value: &Value, condition: &Condition) -> Result<Version> {
        self.check_entry("set_if", key, value)?;
        self.inner.set_if(key, value, condition).await
    }

    async fn delete_if(&self, key: &str, condition: &Condition) -> Result<bool> {
        self.check_key("delete_if", key)?;
        self.inner.delete_if(key, condition).await
    }

    async fn append(&self, key: &str, value: &Value) -> Result<()> {
        self.check_entry("append", key, value)?;
        self.inner.append(key, value).await
    }

    async fn append_many(&self, key: &str, values: &[Value]) -> Result<()> {
        self.check_key("append_many", key)?;
        for v in values {
            self.check_value("append_many", key, v)?;
        }
        if values.is_empty() {
            return Ok(());
        }
        self.inner.append_many(key, values).await
    }

    async fn get_range(&self, key: &str, start: i64, end: i64) -> Result<Vec<Value>> {
        self.check_key("get_range", key)?;
        self.inner.get_range(key, start, end).await
    }

    async fn get_length(&self, key: &str) -> Result<u64> {
        self.check_key("get_length", key)?;
        self.inner.get_length(key).await
    }

    async fn trim(&self, key: &str, start: i64, end: i64) -> Result<()> {
        self.check_key("trim", key)?;
        self.inner.trim(key, start, end).await
    }

    async fn list_window(&self, key: &str, from: u64, max: usize) -> Result<crate::ListWindow> {
        self.check_key("list_window", key)?;
        self.inner.list_window(key, from, max).await
    }
}
