//! Layers: a store that wraps another and changes only some of its operations, and the
//! [`Layer`] that wraps every store of a role with one. The contract's own two, [`Validate`]
//! and [`Observe`], are here too: every backend the registry opens already has them
//! ([`checked_cache`], [`checked_database`]), inside any layer an application adds.
//!
//! A layer implements [`ForwardStore`], and [`ForwardCache`] or [`ForwardDatabase`] for the
//! role it wraps; every method it does not write passes the call to the inner store unchanged.
//! Implementing those traits makes the type a [`Store`], [`Cache`] or [`Database`] itself, so
//! layers nest in any order, and an operation added to the contract reaches every layer through
//! the default, without an edit to any of them.
//!
//! ```
//! use std::sync::Arc;
//! use storage_core::layer::{ForwardDatabase, ForwardStore};
//! use storage_core::async_trait;
//! use storage_core::prelude::*;
//!
//! /// Refuses every write to the database it wraps.
//! #[derive(Debug)]
//! struct NoAppends(Arc<dyn Database>);
//!
//! #[async_trait]
//! impl ForwardStore for NoAppends {
//!     fn inner_store(&self) -> &dyn Store {
//!         &*self.0
//!     }
//! }
//!
//! #[async_trait]
//! impl ForwardDatabase for NoAppends {
//!     fn inner_database(&self) -> &dyn Database {
//!         &*self.0
//!     }
//!     async fn append(&self, key: &str, _: &Value) -> Result<()> {
//!         Err(Error::unsupported(format!("appending to {key:?} is not allowed here")))
//!     }
//! }
//!
//! /// Wraps a database: the result is a `Database`, and nests in any other layer.
//! fn no_appends(inner: Arc<dyn Database>) -> Arc<dyn Database> {
//!     Arc::new(NoAppends(inner))
//! }
//! ```

mod observe;
mod observe_blob;
mod validate;

pub use observe::Observe;
pub use observe_blob::ObserveBlobs;
pub use validate::Validate;

use crate::backend::{Cache, CacheEntry, Database, KeyKind, KeyTtl, ListWindow, Store};
use crate::error::Result;
use crate::version::{Condition, Version};
use crate::watch::ChangeWindow;
use async_trait::async_trait;
use serde_json::Value;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// An operation in flight, as [`ForwardStore::around`] receives and returns it (the boxed
/// future every `async_trait` method already is).
pub type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// A role's store seen as the [`Store`] it extends: lets one layer type wrap either role.
pub trait AsStore: Send + Sync + fmt::Debug {
    /// Itself, as a [`Store`].
    fn as_store(&self) -> &dyn Store;
}

impl AsStore for dyn Cache {
    fn as_store(&self) -> &dyn Store {
        self
    }
}

impl AsStore for dyn Database {
    fn as_store(&self) -> &dyn Store {
        self
    }
}

/// The contract's layers around a cache a backend built: [`Validate`] outside [`Observe`], so
/// refused input never reaches the backend and is neither timed nor counted.
pub fn checked_cache(raw: Arc<dyn Cache>) -> Arc<dyn Cache> {
    let observed: Arc<dyn Cache> = Arc::new(Observe::cache(raw));
    Arc::new(Validate::new(observed))
}

/// The contract's layers around a database a backend built; see [`checked_cache`].
pub fn checked_database(raw: Arc<dyn Database>) -> Arc<dyn Database> {
    let observed: Arc<dyn Database> = Arc::new(Observe::database(raw));
    Arc::new(Validate::new(observed))
}

/// Wraps every store of a role. A layer given to the manager wraps each role it serves, once,
/// outside the contract's checks; the default of each method leaves that role unwrapped.
pub trait Layer: Send + Sync {
    /// The cache, wrapped.
    fn layer_cache(&self, inner: Arc<dyn Cache>) -> Arc<dyn Cache> {
        inner
    }

    /// The database, wrapped.
    fn layer_database(&self, inner: Arc<dyn Database>) -> Arc<dyn Database> {
        inner
    }
}

/// The operations both roles share, each forwarded to [`ForwardStore::inner_store`] unless
/// the layer writes its own. Implementing it makes the type a [`Store`].
#[async_trait]
pub trait ForwardStore: Send + Sync + fmt::Debug {
    /// The store this one wraps.
    fn inner_store(&self) -> &dyn Store;

    /// Wraps each operation this trait and its role traits forward: `call` is the inner
    /// store's own, named `op` (`"get"`, `"append"`, ...). The default returns it unchanged. A
    /// layer that treats every operation alike (a span, a timer, a deadline) writes only this,
    /// so an operation added to the contract reaches it without an edit. An operation the
    /// layer writes itself does not pass through here unless it calls `around`.
    fn around<'a, T: Send + 'a>(&'a self, op: &'static str, call: Call<'a, T>) -> Call<'a, T> {
        let _ = op;
        call
    }

    /// As [`Store::backend`]: the wrapped backend's name.
    fn backend(&self) -> &str {
        self.inner_store().backend()
    }
    /// As [`Store::get`].
    async fn get(&self, key: &str) -> Result<Option<Value>> {
        self.around("get", self.inner_store().get(key)).await
    }
    /// As [`Store::delete`].
    async fn delete(&self, key: &str) -> Result<bool> {
        self.around("delete", self.inner_store().delete(key)).await
    }
    /// As [`Store::mget`].
    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Value>>> {
        self.around("mget", self.inner_store().mget(keys)).await
    }
    /// As [`Store::exists`].
    async fn exists(&self, key: &str) -> Result<bool> {
        self.around("exists", self.inner_store().exists(key)).await
    }
    /// As [`Store::kind`].
    async fn kind(&self, key: &str) -> Result<KeyKind> {
        self.around("kind", self.inner_store().kind(key)).await
    }
    /// As [`Store::keys`].
    async fn keys(&self, pattern: Option<&str>) -> Result<Vec<String>> {
        self.around("keys", self.inner_store().keys(pattern)).await
    }
    /// As [`Store::clear`].
    async fn clear(&self) -> Result<()> {
        self.around("clear", self.inner_store().clear()).await
    }
    /// As [`Store::ping`].
    async fn ping(&self) -> Result<()> {
        self.around("ping", self.inner_store().ping()).await
    }
    /// As [`Store::close`].
    async fn close(&self) -> Result<()> {
        self.around("close", self.inner_store().close()).await
    }
    /// As [`Store::changes`].
    async fn changes(&self, from: Option<u64>, max: usize) -> Result<ChangeWindow> {
        self.around("changes", self.inner_store().changes(from, max))
            .await
    }
    /// As [`Store::wait_for_changes`].
    async fn wait_for_changes(&self, from: u64, limit: Duration) -> Result<()> {
        self.around(
            "wait_for_changes",
            self.inner_store().wait_for_changes(from, limit),
        )
        .await
    }
}

/// The cache's own operations, forwarded to [`ForwardCache::inner_cache`] unless the layer
/// writes its own. With [`ForwardStore`], makes the type a [`Cache`].
#[async_trait]
pub trait ForwardCache: ForwardStore {
    /// The cache this one wraps (the same store as [`ForwardStore::inner_store`]).
    fn inner_cache(&self) -> &dyn Cache;

    /// As [`Cache::set`].
    async fn set(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<()> {
        self.around("set", self.inner_cache().set(key, value, ttl))
            .await
    }
    /// As [`Cache::mset`].
    async fn mset(&self, entries: &[CacheEntry]) -> Result<()> {
        self.around("mset", self.inner_cache().mset(entries)).await
    }
    /// As [`Cache::ttl`].
    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        self.around("ttl", self.inner_cache().ttl(key)).await
    }
    /// As [`Cache::set_if_absent`].
    async fn set_if_absent(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<bool> {
        self.around(
            "set_if_absent",
            self.inner_cache().set_if_absent(key, value, ttl),
        )
        .await
    }
}

/// The database's own operations, forwarded to [`ForwardDatabase::inner_database`] unless the
/// layer writes its own. With [`ForwardStore`], makes the type a [`Database`].
#[async_trait]
pub trait ForwardDatabase: ForwardStore {
    /// The database this one wraps (the same store as [`ForwardStore::inner_store`]).
    fn inner_database(&self) -> &dyn Database;

    /// As [`Database::set`].
    async fn set(&self, key: &str, value: &Value) -> Result<()> {
        self.around("set", self.inner_database().set(key, value))
            .await
    }
    /// As [`Database::set_owned`].
    async fn set_owned(&self, key: &str, value: Value) -> Result<()> {
        self.around("set", self.inner_database().set_owned(key, value))
            .await
    }
    /// As [`Database::mset`].
    async fn mset(&self, entries: &[(String, Value)]) -> Result<()> {
        self.around("mset", self.inner_database().mset(entries))
            .await
    }
    /// As [`Database::get_versioned`].
    async fn get_versioned(&self, key: &str) -> Result<Option<(Value, Version)>> {
        self.around("get_versioned", self.inner_database().get_versioned(key))
            .await
    }
    /// As [`Database::set_if`].
    async fn set_if(&self, key: &str, value: &Value, condition: &Condition) -> Result<Version> {
        self.around(
            "set_if",
            self.inner_database().set_if(key, value, condition),
        )
        .await
    }
    /// As [`Database::delete_if`].
    async fn delete_if(&self, key: &str, condition: &Condition) -> Result<bool> {
        self.around("delete_if", self.inner_database().delete_if(key, condition))
            .await
    }
    /// As [`Database::append`].
    async fn append(&self, key: &str, value: &Value) -> Result<()> {
        self.around("append", self.inner_database().append(key, value))
            .await
    }
    /// As [`Database::append_many`].
    async fn append_many(&self, key: &str, values: &[Value]) -> Result<()> {
        self.around(
            "append_many",
            self.inner_database().append_many(key, values),
        )
        .await
    }
    /// As [`Database::get_range`].
    async fn get_range(&self, key: &str, start: i64, end: i64) -> Result<Vec<Value>> {
        self.around(
            "get_range",
            self.inner_database().get_range(key, start, end),
        )
        .await
    }
    /// As [`Database::get_length`].
    async fn get_length(&self, key: &str) -> Result<u64> {
        self.around("get_length", self.inner_database().get_length(key))
            .await
    }
    /// As [`Database::trim`].
    async fn trim(&self, key: &str, start: i64, end: i64) -> Result<()> {
        self.around("trim", self.inner_database().trim(key, start, end))
            .await
    }
    /// As [`Database::list_window`].
    async fn list_window(&self, key: &str, from: u64, max: usize) -> Result<ListWindow> {
        self.around(
            "list_window",
            self.inner_database().list_window(key, from, max),
        )
        .await
    }
    /// As [`Database::wait_for_change`].
    async fn wait_for_change(&self, key: &str, limit: Duration) -> Result<()> {
        self.around(
            "wait_for_change",
            self.inner_database().wait_for_change(key, limit),
        )
        .await
    }
}

#[async_trait]
impl<L: ForwardStore> Store for L {
    fn backend(&self) -> &str {
        ForwardStore::backend(self)
    }
    async fn get(&self, key: &str) -> Result<Option<Value>> {
        ForwardStore::get(self, key).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        ForwardStore::delete(self, key).await
    }
    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Value>>> {
        ForwardStore::mget(self, keys).await
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        ForwardStore::exists(self, key).await
    }
    async fn kind(&self, key: &str) -> Result<KeyKind> {
        ForwardStore::kind(self, key).await
    }
    async fn keys(&self, pattern: Option<&str>) -> Result<Vec<String>> {
        ForwardStore::keys(self, pattern).await
    }
    async fn clear(&self) -> Result<()> {
        ForwardStore::clear(self).await
    }
    async fn ping(&self) -> Result<()> {
        ForwardStore::ping(self).await
    }
    async fn close(&self) -> Result<()> {
        ForwardStore::close(self).await
    }
    async fn changes(&self, from: Option<u64>, max: usize) -> Result<ChangeWindow> {
        ForwardStore::changes(self, from, max).await
    }
    async fn wait_for_changes(&self, from: u64, limit: Duration) -> Result<()> {
        ForwardStore::wait_for_changes(self, from, limit).await
    }
}

#[async_trait]
impl<L: ForwardCache> Cache for L {
    async fn set(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<()> {
        ForwardCache::set(self, key, value, ttl).await
    }
    async fn mset(&self, entries: &[CacheEntry]) -> Result<()> {
        ForwardCache::mset(self, entries).await
    }
    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        ForwardCache::ttl(self, key).await
    }
    async fn set_if_absent(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<bool> {
        ForwardCache::set_if_absent(self, key, value, ttl).await
    }
}

#[async_trait]
impl<L: ForwardDatabase> Database for L {
    async fn set(&self, key: &str, value: &Value) -> Result<()> {
        ForwardDatabase::set(self, key, value).await
    }
    async fn set_owned(&self, key: &str, value: Value) -> Result<()> {
        ForwardDatabase::set_owned(self, key, value).await
    }
    async fn mset(&self, entries: &[(String, Value)]) -> Result<()> {
        ForwardDatabase::mset(self, entries).await
    }
    async fn get_versioned(&self, key: &str) -> Result<Option<(Value, Version)>> {
        ForwardDatabase::get_versioned(self, key).await
    }
    async fn set_if(&self, key: &str, value: &Value, condition: &Condition) -> Result<Version> {
        ForwardDatabase::set_if(self, key, value, condition).await
    }
    async fn delete_if(&self, key: &str, condition: &Condition) -> Result<bool> {
        ForwardDatabase::delete_if(self, key, condition).await
    }
    async fn append(&self, key: &str, value: &Value) -> Result<()> {
        ForwardDatabase::append(self, key, value).await
    }
    async fn append_many(&self, key: &str, values: &[Value]) -> Result<()> {
        ForwardDatabase::append_many(self, key, values).await
    }
    async fn get_range(&self, key: &str, start: i64, end: i64) -> Result<Vec<Value>> {
        ForwardDatabase::get_range(self, key, start, end).await
    }
    async fn get_length(&self, key: &str) -> Result<u64> {
        ForwardDatabase::get_length(self, key).await
    }
    async fn trim(&self, key: &str, start: i64, end: i64) -> Result<()> {
        ForwardDatabase::trim(self, key, start, end).await
    }
    async fn list_window(&self, key: &str, from: u64, max: usize) -> Result<ListWindow> {
        ForwardDatabase::list_window(self, key, from, max).await
    }
    async fn wait_for_change(&self, key: &str, limit: Duration) -> Result<()> {
        ForwardDatabase::wait_for_change(self, key, limit).await
    }
}

#[cfg(test)]
#[path = "layer/tests.rs"]
mod tests;
