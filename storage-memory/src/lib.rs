//! The in-memory backend, registered as `in-memory` (alias `memory`).
//!
//! It serves both roles from one thread-safe [`MemoryStore`]. Several handles with different
//! `keyPrefix`es can share one store, and each sees only its own namespace, exactly (a namespace
//! is a map of its own, not a string prefix). Values are kept as they are, not serialized, but
//! the [`storage_core::layer::Validate`] layer applies the same key and value rules as every other
//! backend, so that what works here works in production.
//!
//! TTL'd entries sit in an expiry index ordered by deadline; every write first reclaims what has
//! expired, so a cache that only ever writes TTL'd keys stays bounded without a background task
//! and without anyone reading the dead keys. Lists are vectors: append is amortised O(1), a range
//! of m items O(m). `keys` with a literal prefix (`"session:*"`) reads the keys that start with
//! it from an ordered index of the namespace, which the first such call builds (one pass) and
//! every later new key and removal keeps: a namespace never listed by prefix pays nothing for it.
//!
//! It is not durable and not shared between processes: data lives as long as the store.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use storage_memory::MemoryStore;
//! use serde_json::json;
//!
//! let store = MemoryStore::new();
//! let a = store.database("a:").unwrap();
//! let b = store.database("b:").unwrap();
//! a.append("history", &json!({"role": "user"})).await.unwrap();
//! assert_eq!(a.get_length("history").await.unwrap(), 1);
//! assert_eq!(b.get_length("history").await.unwrap(), 0);
//! # });
//! ```

#![warn(missing_docs)]

use async_trait::async_trait;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;
use storage_core::raw::{
    checked_cache, checked_database, glob_match, literal_prefix, lrange_window, validate_key_prefix,
};
use storage_core::watch::{ChangeKind, ChangeWindow};
use storage_core::{
    Cache, CacheEntry, Condition, Database, Error, KeyKind, KeyTtl, ListWindow, Result, Store,
    Version,
};

/// The type name this crate registers.
pub const TYPE_NAME: &str = "in-memory";

/// A thread-safe store that any number of namespaced handles share.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<RwLock<State>>,
    /// Woken on every append and trim, for followers of a list.
    changed: Arc<tokio::sync::Notify>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A raw handle on this store for the namespace `key_prefix`, without the input checks;
    /// see [`MemoryStore::cache`] and [`MemoryStore::database`] for checked handles.
    pub fn handle(&self, key_prefix: &str) -> Result<MemoryBackend> {
        validate_key_prefix(key_prefix).map_err(|e| e.at(TYPE_NAME, "connect"))?;
        Ok(MemoryBackend {
            store: self.clone(),
            ns: key_prefix.to_string(),
            closed: AtomicBool::new(false),
        })
    }

    /// A checked cache handle for the namespace `key_prefix`.
    pub fn cache(&self, key_prefix: &str) -> Result<Arc<dyn Cache>> {
        Ok(checked_cache(Arc::new(self.handle(key_prefix)?)))
    }

    /// A checked database handle for the namespace `key_prefix`.
    pub fn database(&self, key_prefix: &str) -> Result<Arc<dyn Database>> {
        Ok(checked_database(Arc::new(self.handle(key_prefix)?)))
    }

    /// How many entries the store holds, expired ones not yet reclaimed included.
    pub fn entry_count(&self) -> usize {
        self.read().entry_count()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // Nothing panics while holding the lock; should it ever, the state is still consistent
        // (every mutation is a single map operation), so poisoning is ignored.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        let mut guard = self.state.write().unwrap_or_else(|e| e.into_inner());
        guard.reclaim(&Now::default());
        guard
    }
}

/// One namespace of a [`MemoryStore`]; serves both roles.
#[derive(Debug)]
pub struct MemoryBackend {
    store: MemoryStore,
    ns: String,
    closed: AtomicBool,
}

impl MemoryBackend {
    fn open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::closed())
        } else {
            Ok(())
        }
    }

    fn set_slot(&self, key: &str, slot: Slot, ttl: Option<Duration>) -> Result<()> {
        self.open()?;
        let replaced = self
            .store
            .write()
            .put(&self.ns, key, slot, ttl, &Now::default());
        drop(replaced);
        Ok(())
    }

    fn list_of<'a>(entry: Option<&'a Entry>, key: &str) -> Result<Option<&'a ListItems>> {
        match entry.map(|e| &e.slot) {
            None => Ok(None),
            Some(Slot::List(items)) => Ok(Some(items)),
            Some(Slot::Value(_)) => Err(Error::holds_value(key)),
        }
    }
}

#[async_trait]
impl Store for MemoryBackend {
    fn backend(&self) -> &str {
        TYPE_NAME
    }

    async fn get(&self, key: &str) -> Result<Option<Value>> {
        self.open()?;
        let state = self.store.read();
        match state.live(&self.ns, key, &Now::default()).map(|e| &e.slot) {
            None => Ok(None),
            Some(Slot::Value(v)) => Ok(Some(v.clone())),
            Some(Slot::List(_)) => Err(Error::holds_list(key)),
        }
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.open()?;
        let now = Now::default();
        Ok(self.store.write().remove(&self.ns, key, &now).is_some())
    }

    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Value>>> {
        self.open()?;
        let state = self.store.read();
        let now = Now::default();
        Ok(keys
            .iter()
            .map(|k| match state.live(&self.ns, k, &now).map(|e| &e.slot) {
                Some(Slot::Value(v)) => Some(v.clone()),
                _ => None,
            })
            .collect())
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        self.open()?;
        Ok(self
            .store
            .read()
            .live(&self.ns, key, &Now::default())
            .is_some())
    }

    async fn kind(&self, key: &str) -> Result<KeyKind> {
        self.open()?;
        let state = self.store.read();
        Ok(
            match state.live(&self.ns, key, &Now::default()).map(|e| &e.slot) {
                None => KeyKind::None,
                Some(Slot::Value(_)) => KeyKind::Value,
                Some(Slot::List(_)) => KeyKind::List,
            },
        )
    }

    async fn keys(&self, pattern: Option<&str>) -> Result<Vec<String>> {
        self.open()?;
        // Every match starts with the pattern's literal prefix: with one, only the keys that
        // start with it are visited, through the namespace's ordered index (built here the
        // first time, under the write lock); without one, every key is a candidate.
        let (prefix, _) = pattern.map(literal_prefix).unwrap_or_default();
        let mut state = self.store.read();
        if !prefix.is_empty()
            && state
                .namespaces
                .get(&self.ns)
                .is_some_and(|map| !map.is_ordered())
        {
            drop(state);
            if let Some(map) = self.store.write().namespaces.get_mut(&self.ns) {
                map.keep_ordered();
            }
            state = self.store.read();
        }
        let now = Now::default();
        let Some(map) = state.namespaces.get(&self.ns) else {
            return Ok(Vec::new());
        };
        let matches = |k: &str| pattern.is_none_or(|p| glob_match(p, k));
        Ok(match map.ordered_from(&prefix) {
            Some(keys) => {
                // With no deadline anywhere in the store every key is live, and the entries
                // (scattered in memory, unlike the index) need not be visited at all.
                let may_expire = !state.expiry.is_empty();
                keys.filter(|k| !may_expire || map.get(k).is_some_and(|e| e.live(&now)))
                    .filter(|k| matches(k))
                    .cloned()
                    .collect()
            }
            None => map
                .iter()
                .filter(|(k, e)| k.starts_with(&prefix) && e.live(&now) && matches(k))
                .map(|(k, _)| k.clone())
                .collect(),
        })
    }

    async fn clear(&self) -> Result<()> {
        self.open()?;
        let mut state = self.store.write();
        if let Some(map) = state.namespaces.remove(&self.ns) {
            for entry in map.into_entries() {
                if let Some(exp) = entry.expiry {
                    state.expiry.remove(&exp);
                }
            }
        }
        state
            .changes
            .record(&self.ns, "", ChangeKind::Cleared, None);
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        self.open()
    }

    async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }

    /// The namespace's log in this store; kept from the first call on.
    async fn changes(&self, from: Option<u64>, max: usize) -> Result<ChangeWindow> {
        self.open()?;
        Ok(self.store.write().changes.window(&self.ns, from, max))
    }

    /// Woken by every change filed in this store (any watched namespace); the log's end says
    /// whether it was this one.
    async fn wait_for_changes(&self, from: u64, limit: Duration) -> Result<()> {
        self.open()?;
        let deadline = tokio::time::Instant::now() + limit;
        let filed = self.store.read().changes.filed.clone();
        loop {
            let woken = filed.notified();
            tokio::pin!(woken);
            // Registered before the look at the end: a change filed after it wakes this one.
            woken.as_mut().enable();
            if self.store.read().changes.end(&self.ns) > from {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                return Ok(());
            }
        }
    }
}

#[async_trait]
impl Cache for MemoryBackend {
    async fn set(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<()> {
        self.set_slot(key, Slot::Value(value.clone()), ttl)
    }

    async fn mset(&self, entries: &[CacheEntry]) -> Result<()> {
        self.open()?;
        // Copies are made, and replaced values freed, outside the lock.
        let slots: Vec<Slot> = entries
            .iter()
            .map(|e| Slot::Value(e.value.clone()))
            .collect();
        let mut replaced = Vec::with_capacity(entries.len());
        let mut state = self.store.write();
        let now = Now::default();
        for (e, slot) in entries.iter().zip(slots) {
            replaced.push(state.put(&self.ns, &e.key, slot, e.ttl, &now));
        }
        drop(state);
        drop(replaced);
        Ok(())
    }

    async fn set_if_absent(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<bool> {
        self.put_if_absent(key, value, ttl)
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        self.open()?;
        let state = self.store.read();
        let now = Now::default();
        Ok(match state.live(&self.ns, key, &now) {
            None => KeyTtl::Missing,
            Some(Entry { expiry: None, .. }) => KeyTtl::Persistent,
            Some(Entry {
                expiry: Some((deadline, _)),
                ..
            }) => KeyTtl::ExpiresIn(deadline.saturating_duration_since(now.get())),
        })
    }
}

#[async_trait]
impl Database for MemoryBackend {
    async fn set(&self, key: &str, value: &Value) -> Result<()> {
        self.set_slot(key, Slot::Value(value.clone()), None)
    }

    async fn set_owned(&self, key: &str, value: Value) -> Result<()> {
        self.set_slot(key, Slot::Value(value), None)
    }

    async fn mset(&self, entries: &[(String, Value)]) -> Result<()> {
        self.open()?;
        // One lock for the whole batch: all entries become visible together. Copies are made,
        // and replaced values freed, outside it.
        let slots: Vec<Slot> = entries
            .iter()
            .map(|(_, v)| Slot::Value(v.clone()))
            .collect();
        let mut replaced = Vec::with_capacity(entries.len());
        let mut state = self.store.write();
        let now = Now::default();
        for ((k, _), slot) in entries.iter().zip(slots) {
            replaced.push(state.put(&self.ns, k, slot, None, &now));
        }
        drop(state);
        drop(replaced);
        Ok(())
    }

    async fn get_versioned(&self, key: &str) -> Result<Option<(Value, Version)>> {
        self.versioned(key)
    }

    async fn set_if(&self, key: &str, value: &Value, condition: &Condition) -> Result<Version> {
        self.put_if(key, value, condition)
    }

    async fn delete_if(&self, key: &str, condition: &Condition) -> Result<bool> {
        self.remove_if(key, condition)
    }

    async fn append(&self, key: &str, value: &Value) -> Result<()> {
        self.append_many(key, std::slice::from_ref(value)).await
    }

    async fn append_many(&self, key: &str, values: &[Value]) -> Result<()> {
        self.open()?;
        let mut state = self.store.write();
        let now = Now::default();
        if state.live(&self.ns, key, &now).is_none() {
            // Nothing live was there: what it replaces is an expired entry at most.
            let _expired = state.put(&self.ns, key, Slot::List(ListItems::default()), None, &now);
        }
        let entry = state
            .ns_mut(&self.ns)
            .get_mut(key)
            .expect("live or just created");
        match &mut entry.slot {
            Slot::List(items) => {
                items.extend(values.iter().cloned());
                drop(state);
                self.store.changed.notify_waiters();
                Ok(())
            }
            Slot::Value(_) => Err(Error::holds_value(key)),
        }
    }

    async fn trim(&self, key: &str, start: i64, end: i64) -> Result<()> {
        self.open()?;
        let mut state = self.store.write();
        let now = Now::default();
        let len = match Self::list_of(state.live(&self.ns, key, &now), key)? {
            None => return Ok(()),
            Some(items) => items.len() as u64,
        };
        match lrange_window(len, start, end) {
            None => {
                state.ns_mut(&self.ns).remove(key);
                state
                    .changes
                    .record(&self.ns, key, ChangeKind::Delete, None);
            }
            Some((first, last)) => {
                if let Some(Entry {
                    slot: Slot::List(items),
                    ..
                }) = state.ns_mut(&self.ns).get_mut(key)
                {
                    // Both ends in O(removed): a VecDeque drops from the front without moving
                    // the rest.
                    items.truncate(last as usize + 1);
                    items.drain(..first as usize);
                    items.head += first;
                }
            }
        }
        Ok(())
    }

    async fn get_range(&self, key: &str, start: i64, end: i64) -> Result<Vec<Value>> {
        self.open()?;
        let state = self.store.read();
        let Some(items) = Self::list_of(state.live(&self.ns, key, &Now::default()), key)? else {
            return Ok(Vec::new());
        };
        Ok(match lrange_window(items.len() as u64, start, end) {
            Some((first, last)) => items
                .range(first as usize..=last as usize)
                .cloned()
                .collect(),
            None => Vec::new(),
        })
    }

    async fn get_length(&self, key: &str) -> Result<u64> {
        self.open()?;
        let state = self.store.read();
        Ok(
            Self::list_of(state.live(&self.ns, key, &Now::default()), key)?
                .map_or(0, |items| items.len() as u64),
        )
    }

    async fn list_window(&self, key: &str, from: u64, max: usize) -> Result<ListWindow> {
        self.open()?;
        let state = self.store.read();
        let entry = state.live(&self.ns, key, &Now::default());
        let generation = entry.map_or(0, |e| e.version);
        let Some(list) = Self::list_of(entry, key)? else {
            return Ok(ListWindow::default());
        };
        let start = from.saturating_sub(list.head) as usize;
        Ok(ListWindow {
            generation,
            first: list.head,
            next: list.head + list.len() as u64,
            items: list.iter().skip(start).take(max).cloned().collect(),
        })
    }

    /// Woken by any append or trim in this store (any namespace): a follower reads again.
    async fn wait_for_change(&self, _key: &str, limit: Duration) -> Result<()> {
        self.open()?;
        let _ = tokio::time::timeout(limit, self.store.changed.notified()).await;
        Ok(())
    }
}

mod blob;
mod changes;
mod conditional;
mod namespace;
mod state;
use state::{Entry, ListItems, Now, Slot, State};
mod factory;
pub use blob::MemoryBlobStore;
pub use factory::{MemoryConfig, MemoryFactory};

#[cfg(test)]
mod namespace_tests;
#[cfg(test)]
mod tests;
