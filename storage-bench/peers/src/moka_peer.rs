//! moka, the in-process peer of our in-memory cache role: `get` and `set` with a TTL on every
//! entry, on both sides. Ours is the cache role as the manager opens it (its `set` takes the
//! value by reference and stores a copy); moka's `get` returns a clone, as ours returns an
//! owned value. Not OpenDAL's side of the comparison (`main.rs`).

use crate::workload::Kv;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use storage_manager::StorageManager;

/// Every entry's time to live, on both sides.
pub const TTL: Duration = Duration::from_secs(600);

/// moka's synchronous cache, every entry expiring after [`TTL`].
pub struct Moka(moka::sync::Cache<String, Value>);

impl Moka {
    pub fn new() -> Moka {
        Moka(
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(TTL)
                .build(),
        )
    }
}

impl Kv for Moka {
    async fn get(&self, key: String) -> Result<Option<Value>, String> {
        Ok(self.0.get(&key))
    }
    async fn set(&self, key: String, value: Value) -> Result<(), String> {
        self.0.insert(key, value);
        Ok(())
    }
}

/// Ours: the in-memory cache role, every `set` with [`TTL`].
pub struct OurCache(Arc<dyn storage_core::Cache>);

impl OurCache {
    pub async fn open(dir: &Path) -> OurCache {
        let yaml = "database: { type: in-memory }\ncache: { type: in-memory }";
        let source = storage_manager::config_file::from_yaml_str(yaml, dir).expect("a config");
        let manager = StorageManager::from_source(&source)
            .expect("a config")
            .without_fallback();
        let (cache, _) = manager.connect_cache().await.expect("our cache role");
        OurCache(cache)
    }
}

impl Kv for OurCache {
    async fn get(&self, key: String) -> Result<Option<Value>, String> {
        self.0.get(&key).await.map_err(|e| e.to_string())
    }
    async fn set(&self, key: String, value: Value) -> Result<(), String> {
        self.0
            .set(&key, &value, Some(TTL))
            .await
            .map_err(|e| e.to_string())
    }
}
