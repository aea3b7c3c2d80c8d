//! [`NearCache`] as a [`Database`] and as a [`Cache`]: `get` served from the level while it is
//! in sync, every write passed to the store with its key dropped here before and after it (a
//! read racing the write cannot leave the old value behind: this instance reads its own
//! writes), everything else passed through by the forwarding traits. Not the level or its coherence (`near_cache.rs`).
//!
//! A cache's entries expire in the store, and not every store reports an expiry in its change
//! log; the level must not outlive them, so a fill on the cache role asks the store for the
//! key's TTL and keeps only keys without one.

use crate::near_cache::{Freshness, NearCache, NearCacheOptions, Shared};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use storage_core::layer::{AsStore, ForwardCache, ForwardDatabase, ForwardStore};
use storage_core::telemetry::{
    NEAR_CACHE_HITS, NEAR_CACHE_MISSES, NEAR_CACHE_REFRESHES, NEAR_CACHE_STALE_SERVED,
};
use storage_core::{
    Cache, CacheEntry, Condition, Database, KeyTtl, Result, Store, Version, async_trait,
};

impl NearCache<dyn Database> {
    /// A near cache over `database`. Must be created inside a tokio runtime (it spawns the
    /// task that follows the database's change log).
    pub fn database(database: Arc<dyn Database>, options: NearCacheOptions) -> Self {
        let store: Arc<dyn Store> = database.clone();
        NearCache::build(database, store, None, &options)
    }
}

impl NearCache<dyn Cache> {
    /// A near cache over `cache`. Must be created inside a tokio runtime.
    pub fn cache(cache: Arc<dyn Cache>, options: NearCacheOptions) -> Self {
        let store: Arc<dyn Store> = cache.clone();
        NearCache::build(cache.clone(), store, Some(cache), &options)
    }
}

impl<R: AsStore + ?Sized + 'static> NearCache<R> {
    /// `get`, saying whether the value is fresh or a fail-safe one served while the store
    /// failed (see [`crate::NearCacheOptions::fail_safe`]).
    pub async fn get_with_freshness(&self, key: &str) -> Result<Option<(Value, Freshness)>> {
        let shared = &self.shared;
        if shared.in_sync() {
            if let Some((v, filled)) = shared.entries.get(key) {
                shared.hits.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(NEAR_CACHE_HITS).increment(1);
                if shared.claim_refresh(key, filled) {
                    self.refresh_in_background(key);
                }
                // A hit touches no tokio resource, so a task reading in a loop would never
                // yield, and on a busy runtime the sync task would starve (the level then falls
                // out of sync and every read goes to the store): take part in tokio's
                // cooperative budget, as its own resources do.
                tokio::task::consume_budget().await;
                return Ok(Some(((*v).clone(), Freshness::Fresh)));
            }
            shared.misses.fetch_add(1, Ordering::Relaxed);
        } else {
            shared.bypassed.fetch_add(1, Ordering::Relaxed);
        }
        metrics::counter!(NEAR_CACHE_MISSES).increment(1);
        match load(&*self.inner, self.expiring.as_deref(), shared, key).await {
            Ok(found) => Ok(found.map(|v| (v, Freshness::Fresh))),
            Err(e) if e.is_temporary() => {
                let kept = shared.last_known.as_ref().and_then(|l| l.get(key));
                match (kept, shared.fail_safe) {
                    (Some((v, at)), Some(max)) if at.elapsed() <= max => {
                        shared.stale_served.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!(NEAR_CACHE_STALE_SERVED).increment(1);
                        tracing::warn!(key, error = %e, "near cache: the store failed; serving the last value read");
                        Ok(Some(((*v).clone(), Freshness::Stale { age: at.elapsed() })))
                    }
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Reloads `key` from the store in a task of its own (eager refresh); the entry keeps
    /// serving meanwhile, and a failed reload leaves it to expire.
    fn refresh_in_background(&self, key: &str) {
        let (inner, expiring, shared) = (
            self.inner.clone(),
            self.expiring.clone(),
            self.shared.clone(),
        );
        let key = key.to_string();
        tokio::spawn(async move {
            shared.refreshes.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(NEAR_CACHE_REFRESHES).increment(1);
            match load(&*inner, expiring.as_deref(), &shared, &key).await {
                Ok(Some(_)) => {}
                Ok(None) => shared.invalidate(&key),
                Err(e) => tracing::debug!(key, error = %e, "near cache: eager refresh failed"),
            }
            shared.refreshed(&key);
        });
    }
}

/// Reads `key` from the store and fills the level with it (on the cache role only a key
/// without a TTL, whose entry cannot expire under the level).
async fn load<R: AsStore + ?Sized>(
    inner: &R,
    expiring: Option<&dyn Cache>,
    shared: &Shared,
    key: &str,
) -> Result<Option<Value>> {
    let ticket = shared.ticket(key);
    let found = inner.as_store().get(key).await?;
    if let Some(v) = &found {
        let keep = match expiring {
            Some(cache) => matches!(cache.ttl(key).await, Ok(KeyTtl::Persistent)),
            None => true,
        };
        shared.fill(key, v, ticket, keep);
    }
    Ok(found)
}

#[async_trait]
impl<R: AsStore + ?Sized + 'static> ForwardStore for NearCache<R> {
    fn inner_store(&self) -> &dyn Store {
        self.inner.as_store()
    }

    async fn get(&self, key: &str) -> Result<Option<Value>> {
        Ok(self.get_with_freshness(key).await?.map(|(v, _)| v))
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.shared.invalidate(key);
        let removed = self.inner.as_store().delete(key).await;
        self.shared.invalidate(key);
        removed
    }

    async fn clear(&self) -> Result<()> {
        self.shared.flush();
        let cleared = self.inner.as_store().clear().await;
        self.shared.flush();
        cleared
    }
}

#[async_trait]
impl ForwardDatabase for NearCache<dyn Database> {
    fn inner_database(&self) -> &dyn Database {
        &*self.inner
    }
    async fn set(&self, key: &str, value: &Value) -> Result<()> {
        self.shared.invalidate(key);
        let written = self.inner.set(key, value).await;
        self.shared.invalidate(key);
        written
    }
    async fn set_owned(&self, key: &str, value: Value) -> Result<()> {
        self.shared.invalidate(key);
        let written = self.inner.set_owned(key, value).await;
        self.shared.invalidate(key);
        written
    }
    async fn mset(&self, entries: &[(String, Value)]) -> Result<()> {
        let keys = || entries.iter().map(|(k, _)| k.as_str());
        keys().for_each(|k| self.shared.invalidate(k));
        let written = self.inner.mset(entries).await;
        keys().for_each(|k| self.shared.invalidate(k));
        written
    }
    async fn set_if(&self, key: &str, value: &Value, condition: &Condition) -> Result<Version> {
        self.shared.invalidate(key);
        let written = self.inner.set_if(key, value, condition).await;
        self.shared.invalidate(key);
        written
    }
    async fn delete_if(&self, key: &str, condition: &Condition) -> Result<bool> {
        self.shared.invalidate(key);
        let written = self.inner.delete_if(key, condition).await;
        self.shared.invalidate(key);
        written
    }
}

#[async_trait]
impl ForwardCache for NearCache<dyn Cache> {
    fn inner_cache(&self) -> &dyn Cache {
        &*self.inner
    }
    async fn set(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<()> {
        self.shared.invalidate(key);
        let written = self.inner.set(key, value, ttl).await;
        self.shared.invalidate(key);
        written
    }
    async fn mset(&self, entries: &[CacheEntry]) -> Result<()> {
        let keys = || entries.iter().map(|e| e.key.as_str());
        keys().for_each(|k| self.shared.invalidate(k));
        let written = self.inner.mset(entries).await;
        keys().for_each(|k| self.shared.invalidate(k));
        written
    }
    async fn set_if_absent(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<bool> {
        self.shared.invalidate(key);
        let written = self.inner.set_if_absent(key, value, ttl).await;
        self.shared.invalidate(key);
        written
    }
}
