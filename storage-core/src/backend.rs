//! The cache and database traits.

use crate::error::{Error, Result};
use crate::update::UpdatePolicy;
use crate::version::{Condition, Version};
use crate::watch::ChangeWindow;
use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt;
use std::future::Future;
use std::time::Duration;

/// What a key holds (Redis `TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// Nothing (or the key expired).
    None,
    /// A JSON value.
    Value,
    /// A list of JSON values.
    List,
}

/// A key's remaining time to live (Redis `PTTL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyTtl {
    /// The key does not exist (or expired).
    Missing,
    /// The key exists and never expires.
    Persistent,
    /// The key expires after this long.
    ExpiresIn(Duration),
}

/// One entry of a cache [`Cache::mset`]: each entry carries its own TTL.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Value,
    /// Expire after this long; `None` for never.
    pub ttl: Option<Duration>,
}

impl CacheEntry {
    /// An entry with an optional TTL.
    pub fn new(key: impl Into<String>, value: Value, ttl: Option<Duration>) -> Self {
        CacheEntry {
            key: key.into(),
            value,
            ttl,
        }
    }
}

/// The operations both roles share.
///
/// Keys are checked ([`crate::raw::validate_key`]) before any I/O; every method may be called
/// concurrently from many tasks. A backend is built connected by its factory and stays usable
/// until [`Store::close`].
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// The backend's type name, as in configuration (`kv`, a plugin's type, ...).
    fn backend(&self) -> &str;

    /// The value stored at `key`, or `None`. A list key is a wrong-type error.
    async fn get(&self, key: &str) -> Result<Option<Value>>;

    /// Removes `key`, either kind. True exactly when it existed.
    async fn delete(&self, key: &str) -> Result<bool>;

    /// One slot per key, in order: `None` where missing, expired, or holding a list.
    ///
    /// Through [`crate::layer::Validate`] (every backend the registry builds), `keys` is never empty
    /// and every key is valid; the same holds for the batches of `mset` and `append_many`.
    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Value>>>;

    /// Whether `key` holds anything, either kind.
    async fn exists(&self, key: &str) -> Result<bool>;

    /// What `key` holds.
    async fn kind(&self, key: &str) -> Result<KeyKind>;

    /// Every key of this namespace that matches the Redis glob `pattern` (all of them when
    /// `None`), without the namespace prefix, without duplicates, in no particular order.
    async fn keys(&self, pattern: Option<&str>) -> Result<Vec<String>>;

    /// Removes every key of this namespace, both kinds, and nothing outside it.
    async fn clear(&self) -> Result<()>;

    /// A cheap round trip to the server, writing nothing. For health checks.
    async fn ping(&self) -> Result<()>;

    /// Releases connections. Later operations fail. Calling it twice is fine.
    async fn close(&self) -> Result<()>;

    /// About `max` changes of this namespace's log from position `from` on, with the oldest
    /// position the log still holds ([`ChangeWindow`]); `from: None` reads none and says where
    /// the log ends. What [`crate::watch::Watch`] reads. The default refuses (`Unsupported`).
    async fn changes(&self, from: Option<u64>, max: usize) -> Result<ChangeWindow> {
        let _ = (from, max);
        Err(Error::unsupported(
            "this backend keeps no change log: its keys cannot be watched",
        ))
    }

    /// Returns when the log may hold a change at or after `from`, or once `limit` has passed,
    /// whichever comes first. Waking for nothing is allowed, and missing a change loses nothing
    /// (the watcher reads again from where it stands): this only sets how soon it sees a
    /// change. The default waits `limit`, so a watcher polls.
    async fn wait_for_changes(&self, from: u64, limit: Duration) -> Result<()> {
        let _ = from;
        tokio::time::sleep(limit).await;
        Ok(())
    }
}

/// The fast, ephemeral role: values with an optional TTL.
#[async_trait]
pub trait Cache: Store {
    /// Stores `value` at `key`, replacing whatever it held (a list included) and its TTL.
    async fn set(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<()>;

    /// Stores every entry, each with its own TTL. The last of repeated keys wins.
    async fn mset(&self, entries: &[CacheEntry]) -> Result<()>;

    /// The remaining time to live of `key`.
    async fn ttl(&self, key: &str) -> Result<KeyTtl>;

    /// Stores `value` at `key` only when the key holds nothing (an expired key holds nothing),
    /// atomically: of concurrent callers on one key, exactly one gets `true`. The primitive of
    /// leases and locks (Redis `SET NX PX`): the holder's claim ends with the TTL. `false`
    /// when the key was taken; nothing was written. The default refuses (`Unsupported`).
    async fn set_if_absent(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<bool> {
        let _ = (value, ttl);
        Err(Error::unsupported(format!(
            "this backend cannot store {key:?} only if absent"
        )))
    }
}

/// The durable role: values and lists, no TTL.
#[async_trait]
pub trait Database: Store {
    /// Stores `value` at `key`, replacing whatever it held, a list included.
    async fn set(&self, key: &str, value: &Value) -> Result<()>;

    /// [`Database::set`] of a value the caller hands over: a backend that keeps values as they
    /// are (one that holds them in process memory) stores it without copying it. The default
    /// calls `set`.
    async fn set_owned(&self, key: &str, value: Value) -> Result<()> {
        self.set(key, &value).await
    }

    /// Stores all entries in one transaction, or none. The last of repeated keys wins.
    async fn mset(&self, entries: &[(String, Value)]) -> Result<()>;

    /// The value stored at `key` with its [`Version`], or `None`. A list key is a wrong-type
    /// error (a list has no version). The default refuses (`Unsupported`).
    async fn get_versioned(&self, key: &str) -> Result<Option<(Value, Version)>> {
        Err(Error::unsupported(format!(
            "this backend keeps no versions (key {key:?})"
        )))
    }

    /// Stores `value` at `key` when `condition` holds, checked and written atomically, and
    /// returns the value's new version. When it does not hold, nothing is written and the
    /// error is an [`crate::ErrorKind::Conflict`] carrying the key's current version
    /// ([`Error::as_conflict`]). `Condition::Version` on a list key is a wrong-type error;
    /// `Condition::Any` replaces a list, as `set` does. The default refuses (`Unsupported`).
    async fn set_if(&self, key: &str, value: &Value, condition: &Condition) -> Result<Version> {
        let _ = (value, condition);
        Err(Error::unsupported(format!(
            "this backend cannot write {key:?} conditionally"
        )))
    }

    /// Removes `key` when `condition` holds, atomically; true when something was removed.
    /// `Condition::Absent` removes nothing and succeeds only when the key holds nothing;
    /// otherwise as [`Database::set_if`]. The default refuses (`Unsupported`).
    async fn delete_if(&self, key: &str, condition: &Condition) -> Result<bool> {
        let _ = condition;
        Err(Error::unsupported(format!(
            "this backend cannot delete {key:?} conditionally"
        )))
    }

    /// Adds `value` at the tail of the list at `key`, creating it. Never retried blindly.
    async fn append(&self, key: &str, value: &Value) -> Result<()>;

    /// Appends every value, in order, as one operation: all or none of them land (for bulk
    /// loads and migrations). The default appends one at a time; backends override it with a
    /// single transaction or command.
    async fn append_many(&self, key: &str, values: &[Value]) -> Result<()> {
        for v in values {
            self.append(key, v).await?;
        }
        Ok(())
    }

    /// Redis `LRANGE`: both ends inclusive, negative indices count from the tail.
    /// See [`crate::raw::lrange_window`].
    async fn get_range(&self, key: &str, start: i64, end: i64) -> Result<Vec<Value>>;

    /// The number of items in the list at `key`; 0 when missing.
    async fn get_length(&self, key: &str) -> Result<u64>;

    /// Redis `LTRIM`: keeps the items `get_range(key, start, end)` would return and drops the
    /// rest; an empty window deletes the key; a missing key stays missing; a value is a
    /// wrong-type error. Built-in backends do it in O(removed), from either end, so a long chat
    /// history is bounded without being rewritten. The default refuses (`Unsupported`).
    async fn trim(&self, key: &str, start: i64, end: i64) -> Result<()> {
        let _ = (start, end);
        Err(Error::unsupported(format!(
            "this backend cannot trim lists (key {key:?})"
        )))
    }

    /// Up to `max` items of the list at `key` from the absolute index `from` on, with where
    /// the list starts and ends ([`ListWindow`]), read at one point in time. An item's absolute
    /// index counts the appends since the list was created: trimming the head does not move
    /// it. What [`crate::feed::Tail`] reads. The default refuses (`Unsupported`).
    async fn list_window(&self, key: &str, from: u64, max: usize) -> Result<ListWindow> {
        let _ = (from, max);
        Err(Error::unsupported(format!(
            "this backend cannot follow lists (key {key:?})"
        )))
    }

    /// Returns when the list at `key` may have changed, or once `limit` has passed, whichever
    /// comes first. Waking for nothing is allowed and missing a change loses nothing (the
    /// reader reads again from where it stands): this only sets how soon a follower sees an
    /// append. The default waits `limit`, so a follower polls.
    async fn wait_for_change(&self, key: &str, limit: Duration) -> Result<()> {
        let _ = key;
        tokio::time::sleep(limit).await;
        Ok(())
    }
}

/// A part of a list, by absolute index: what [`Database::list_window`] returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListWindow {
    /// Which incarnation of the list this is: drawn when the list is created, so that a list
    /// deleted and created again under the same key is told apart; 0 when there is no list
    /// (or the backend does not tell).
    pub generation: u64,
    /// The absolute index of the list's first item (the number of items trimmed from its head).
    pub first: u64,
    /// The absolute index the next append will take (`first` + the length).
    pub next: u64,
    /// The items from `max(from, first)` on, in order.
    pub items: Vec<Value>,
}

fn decode<T: DeserializeOwned>(key: &str, value: Value) -> Result<T> {
    serde_json::from_value(value).map_err(|e| {
        Error::invalid_value(format!(
            "value at {key:?} does not decode as {}: {e}",
            std::any::type_name::<T>()
        ))
    })
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
    serde_json::to_value(value)
        .map_err(|e| Error::invalid_value(format!("value does not encode as JSON: {e}")))
}

/// Typed reads for any serde type, on either role.
///
/// ```
/// # async fn demo(db: &dyn storage_core::Database) -> storage_core::Result<()> {
/// use storage_core::{DatabaseExt, StoreExt};
/// db.set_as("n", &42u32).await?;
/// let n: Option<u32> = db.get_as("n").await?;
/// # Ok(()) }
/// ```
pub trait StoreExt: Store {
    /// [`Store::get`], decoded as `T`.
    fn get_as<'a, T: DeserializeOwned + 'a>(
        &'a self,
        key: &'a str,
    ) -> impl Future<Output = Result<Option<T>>> + Send + 'a {
        async move {
            match self.get(key).await? {
                Some(v) => decode(key, v).map(Some),
                None => Ok(None),
            }
        }
    }
}
impl<S: Store + ?Sized> StoreExt for S {}

/// Typed writes for caches.
pub trait CacheExt: Cache {
    /// [`Cache::set`] of any serializable value.
    fn set_as<'a, T: Serialize + Sync + ?Sized>(
        &'a self,
        key: &'a str,
        value: &'a T,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<()>> + Send + 'a {
        async move { self.set(key, &encode(value)?, ttl).await }
    }
}
impl<C: Cache + ?Sized> CacheExt for C {}

/// Typed writes and list reads for databases.
pub trait DatabaseExt: Database {
    /// [`Database::set`] of any serializable value.
    fn set_as<'a, T: Serialize + Sync + ?Sized>(
        &'a self,
        key: &'a str,
        value: &'a T,
    ) -> impl Future<Output = Result<()>> + Send + 'a {
        async move { self.set_owned(key, encode(value)?).await }
    }

    /// [`Database::append`] of any serializable value.
    fn append_as<'a, T: Serialize + Sync + ?Sized>(
        &'a self,
        key: &'a str,
        value: &'a T,
    ) -> impl Future<Output = Result<()>> + Send + 'a {
        async move { self.append(key, &encode(value)?).await }
    }

    /// Reads `key` with its version, computes its new value with `change` (given the current
    /// value, `None` when the key holds nothing), and writes it only if nobody wrote the key in
    /// between ([`Database::set_if`]); on a conflict, starts over after a random pause, as
    /// [`UpdatePolicy::default`] says. Returns what was written and its version. The helper
    /// for state several instances change: no update is lost. `change` may run more than once
    /// and should do nothing but compute; an error it returns ends the update with nothing
    /// written.
    ///
    /// ```
    /// # async fn demo(db: &dyn storage_core::Database) -> storage_core::Result<()> {
    /// use storage_core::prelude::*;
    /// let (count, _version) = db
    ///     .update("visits", |v| Ok(json!(v.and_then(Value::as_i64).unwrap_or(0) + 1)))
    ///     .await?;
    /// # let _ = count; Ok(()) }
    /// ```
    fn update<'a, F>(
        &'a self,
        key: &'a str,
        change: F,
    ) -> impl Future<Output = Result<(Value, Version)>> + Send + 'a
    where
        F: FnMut(Option<&Value>) -> Result<Value> + Send + 'a,
    {
        crate::update::update(self, key, UpdatePolicy::default(), change)
    }

    /// [`DatabaseExt::update`] with its own bound on tries and pauses.
    fn update_with<'a, F>(
        &'a self,
        key: &'a str,
        policy: UpdatePolicy,
        change: F,
    ) -> impl Future<Output = Result<(Value, Version)>> + Send + 'a
    where
        F: FnMut(Option<&Value>) -> Result<Value> + Send + 'a,
    {
        crate::update::update(self, key, policy, change)
    }

    /// [`Database::get_range`], each item decoded as `T`.
    fn get_range_as<'a, T: DeserializeOwned + 'a>(
        &'a self,
        key: &'a str,
        start: i64,
        end: i64,
    ) -> impl Future<Output = Result<Vec<T>>> + Send + 'a {
        async move {
            self.get_range(key, start, end)
                .await?
                .into_iter()
                .map(|v| decode(key, v))
                .collect()
        }
    }
}
impl<D: Database + ?Sized> DatabaseExt for D {}
