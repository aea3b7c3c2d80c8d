//! [`CacheAside`] as a [`storage_core::Database`]: a layer over its database that reads through
//! its cache and keeps the cache from outliving a write. Not the cache-aside logic itself
//! (lazy loading, write-through, write-behind): that is `cache_aside.rs`, whose methods these
//! call.
//!
//! Lists are never cached (a list key's `get` is a wrong-type error, which is not cached), so
//! list operations, `mget`, `keys`, `exists` and `kind` go to the database unchanged, by the
//! forwarding traits' defaults.

use crate::cache_aside::CacheAside;
use serde_json::Value;
use storage_core::async_trait;
use storage_core::layer::{ForwardDatabase, ForwardStore};
use storage_core::{Condition, Database, Result, Store, Version};

#[async_trait]
impl ForwardStore for CacheAside {
    fn inner_store(&self) -> &dyn Store {
        self.parts().1
    }

    async fn get(&self, key: &str) -> Result<Option<Value>> {
        CacheAside::get(self, key).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        CacheAside::delete(self, key).await
    }

    /// The database's namespace, then the cache's: a cached value must not outlive the
    /// database's copy. The cache is this layer's own, so all of it goes.
    async fn clear(&self) -> Result<()> {
        let (cache, database) = self.parts();
        database.clear().await?;
        if let Err(e) = cache.clear().await {
            self.cache_failed("clear", "*", &e);
        }
        Ok(())
    }
}

#[async_trait]
impl ForwardDatabase for CacheAside {
    fn inner_database(&self) -> &dyn Database {
        self.parts().1
    }

    async fn set(&self, key: &str, value: &Value) -> Result<()> {
        CacheAside::set(self, key, value).await
    }

    async fn set_owned(&self, key: &str, value: Value) -> Result<()> {
        CacheAside::set(self, key, &value).await
    }

    /// The database's conditional write, then the key out of the cache (the next `get` reads
    /// it through). Versions live in the database only; a write-behind `set` still queued for
    /// the key is not seen by the condition.
    async fn set_if(&self, key: &str, value: &Value, condition: &Condition) -> Result<Version> {
        let version = self.parts().1.set_if(key, value, condition).await?;
        self.invalidate("set_if", key).await;
        Ok(version)
    }

    /// As [`CacheAside`]'s `set_if`: the database, then the key out of the cache.
    async fn delete_if(&self, key: &str, condition: &Condition) -> Result<bool> {
        let removed = self.parts().1.delete_if(key, condition).await?;
        if removed {
            self.invalidate("delete_if", key).await;
        }
        Ok(removed)
    }

    /// The database in one transaction, then each key out of the cache (the next `get` reads
    /// it through).
    async fn mset(&self, entries: &[(String, Value)]) -> Result<()> {
        self.parts().1.mset(entries).await?;
        for (key, _) in entries {
            self.invalidate("mset", key).await;
        }
        Ok(())
    }
}
