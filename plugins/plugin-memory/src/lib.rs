//! `plugin-memory`: the memory backend as a runtime plugin, for the loader's tests.
//!
//! Every operation first awaits a tokio timer, so the runtime bridge is really exercised: run on
//! the host's runtime, that timer would fail with "no reactor running". All backends of the
//! process share one store, so that the conformance kit can put namespaces side by side.
//! `options: { panicOn: <op> }` makes that operation panic, to test panic containment. It also
//! serves the blob role (`blobs.rs`).

mod blobs;

use async_trait::async_trait;
use serde_json::Value;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use storage_core::config::{BackendConfig, BackendSpec, BlockInput, Role};
use storage_core::plugin::PluginRegistrar;
use storage_core::{
    BackendFactory, Cache, CacheEntry, Condition, Database, KeyKind, KeyTtl, Result, Store, Version,
};
use storage_memory::{MemoryBackend, MemoryStore};

/// The type name this plugin registers.
pub const TYPE_NAME: &str = "plugin-memory";

fn store() -> &'static MemoryStore {
    static STORE: OnceLock<MemoryStore> = OnceLock::new();
    STORE.get_or_init(MemoryStore::new)
}

/// The plugin's backend: the memory backend behind a tokio timer.
#[derive(Debug)]
struct TimedMemory {
    inner: MemoryBackend,
    panic_on: Option<String>,
}

impl TimedMemory {
    async fn enter(&self, op: &str) {
        // A tokio timer: needs the plugin's own reactor.
        tokio::time::sleep(Duration::from_micros(1)).await;
        if self.panic_on.as_deref() == Some(op) {
            panic!("plugin-memory was told to panic on {op}");
        }
    }
}

#[async_trait]
impl Store for TimedMemory {
    fn backend(&self) -> &str {
        TYPE_NAME
    }
    async fn get(&self, key: &str) -> Result<Option<Value>> {
        self.enter("get").await;
        self.inner.get(key).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.enter("delete").await;
        self.inner.delete(key).await
    }
    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Value>>> {
        self.enter("mget").await;
        self.inner.mget(keys).await
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        self.enter("exists").await;
        self.inner.exists(key).await
    }
    async fn kind(&self, key: &str) -> Result<KeyKind> {
        self.enter("kind").await;
        self.inner.kind(key).await
    }
    async fn keys(&self, pattern: Option<&str>) -> Result<Vec<String>> {
        self.enter("keys").await;
        self.inner.keys(pattern).await
    }
    async fn clear(&self) -> Result<()> {
        self.enter("clear").await;
        self.inner.clear().await
    }
    async fn ping(&self) -> Result<()> {
        self.enter("ping").await;
        self.inner.ping().await
    }
    async fn close(&self) -> Result<()> {
        self.inner.close().await
    }
    async fn changes(
        &self,
        from: Option<u64>,
        max: usize,
    ) -> Result<storage_core::watch::ChangeWindow> {
        self.enter("changes").await;
        self.inner.changes(from, max).await
    }
    async fn wait_for_changes(&self, from: u64, limit: Duration) -> Result<()> {
        self.inner.wait_for_changes(from, limit).await
    }
}

#[async_trait]
impl Cache for TimedMemory {
    async fn set(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<()> {
        self.enter("set").await;
        Cache::set(&self.inner, key, value, ttl).await
    }
    async fn mset(&self, entries: &[CacheEntry]) -> Result<()> {
        self.enter("mset").await;
        Cache::mset(&self.inner, entries).await
    }
    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        self.enter("ttl").await;
        self.inner.ttl(key).await
    }
    async fn set_if_absent(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<bool> {
        self.enter("set_if_absent").await;
        self.inner.set_if_absent(key, value, ttl).await
    }
}

#[async_trait]
impl Database for TimedMemory {
    async fn set(&self, key: &str, value: &Value) -> Result<()> {
        self.enter("set").await;
        Database::set(&self.inner, key, value).await
    }
    async fn mset(&self, entries: &[(String, Value)]) -> Result<()> {
        self.enter("mset").await;
        Database::mset(&self.inner, entries).await
    }
    async fn get_versioned(&self, key: &str) -> Result<Option<(Value, Version)>> {
        self.enter("get_versioned").await;
        self.inner.get_versioned(key).await
    }
    async fn set_if(&self, key: &str, value: &Value, condition: &Condition) -> Result<Version> {
        self.enter("set_if").await;
        self.inner.set_if(key, value, condition).await
    }
    async fn delete_if(&self, key: &str, condition: &Condition) -> Result<bool> {
        self.enter("delete_if").await;
        self.inner.delete_if(key, condition).await
    }
    async fn append(&self, key: &str, value: &Value) -> Result<()> {
        self.enter("append").await;
        self.inner.append(key, value).await
    }
    async fn append_many(&self, key: &str, values: &[Value]) -> Result<()> {
        self.enter("append_many").await;
        self.inner.append_many(key, values).await
    }
    async fn get_range(&self, key: &str, start: i64, end: i64) -> Result<Vec<Value>> {
        self.enter("get_range").await;
        self.inner.get_range(key, start, end).await
    }
    async fn get_length(&self, key: &str) -> Result<u64> {
        self.enter("get_length").await;
        self.inner.get_length(key).await
    }
    async fn trim(&self, key: &str, start: i64, end: i64) -> Result<()> {
        self.enter("trim").await;
        self.inner.trim(key, start, end).await
    }
    async fn list_window(
        &self,
        key: &str,
        from: u64,
        max: usize,
    ) -> Result<storage_core::ListWindow> {
        self.enter("list_window").await;
        self.inner.list_window(key, from, max).await
    }
    async fn wait_for_change(&self, key: &str, limit: Duration) -> Result<()> {
        self.inner.wait_for_change(key, limit).await
    }
}

/// The block's own fields: only `options.panicOn`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginMemoryBlock {
    #[serde(default)]
    options: Option<PluginMemoryOptions>,
    /// The blob role: the largest blob accepted.
    #[serde(default, rename = "maxBlobBytes")]
    max_blob_bytes: Option<u64>,
    /// The blob role: the most bytes held.
    #[serde(default, rename = "maxTotalBytes")]
    max_total_bytes: Option<u64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PluginMemoryOptions {
    /// An operation name (or `parse`) that panics, for the containment tests.
    #[serde(default)]
    panic_on: Option<String>,
}

/// The settings: which operation panics, if any.
#[derive(Debug)]
pub struct PluginMemoryConfig {
    panic_on: Option<String>,
    limits: storage_core::blob::BlobLimits,
}

impl BackendConfig for PluginMemoryConfig {
    fn type_name(&self) -> &str {
        TYPE_NAME
    }
    fn describe(&self) -> String {
        String::new()
    }
    /// Every plugin-memory backend in a process shares one store of exact namespaces.
    fn identity(&self) -> Option<storage_core::config::ServerIdentity> {
        Some(storage_core::config::ServerIdentity {
            scheme: TYPE_NAME.to_string(),
            endpoints: ["this process".to_string()].into(),
            scope: String::new(),
            prefixes_nest: false,
        })
    }
}

/// The factory.
pub struct PluginMemoryFactory;

impl PluginMemoryFactory {
    async fn open(&self, spec: &BackendSpec) -> Result<TimedMemory> {
        // Opening uses tokio too.
        tokio::time::sleep(Duration::from_micros(1)).await;
        let panic_on = spec.settings::<PluginMemoryConfig>()?.panic_on.clone();
        Ok(TimedMemory {
            inner: store().handle(&spec.common.key_prefix)?,
            panic_on,
        })
    }
}

#[async_trait]
impl BackendFactory for PluginMemoryFactory {
    fn type_names(&self) -> Vec<String> {
        vec![TYPE_NAME.to_string()]
    }
    fn roles(&self) -> Vec<Role> {
        vec![Role::Cache, Role::Database, Role::Blob]
    }
    fn parse(&self, block: &mut BlockInput<'_>) -> Result<Arc<dyn BackendConfig>> {
        let b: PluginMemoryBlock = block.typed()?;
        let panic_on = b.options.and_then(|o| o.panic_on);
        if panic_on.as_deref() == Some("parse") {
            panic!("plugin-memory was asked to panic in parse");
        }
        let limits =
            storage_core::blob::BlobLimits::of_block(block, b.max_blob_bytes, b.max_total_bytes)?;
        Ok(Arc::new(PluginMemoryConfig { panic_on, limits }))
    }
    fn schema(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "properties": {
                "options": {
                    "type": "object",
                    "properties": { "panicOn": { "type": "string" } },
                    "additionalProperties": false
                }
            }
        })
    }
    async fn open_cache(&self, spec: &BackendSpec) -> Result<Arc<dyn Cache>> {
        Ok(Arc::new(self.open(spec).await?))
    }
    async fn open_database(&self, spec: &BackendSpec) -> Result<Arc<dyn Database>> {
        Ok(Arc::new(self.open(spec).await?))
    }
    /// A blob store of its own, behind a timer, its streams fed by the plugin's tasks.
    async fn open_blob(
        &self,
        spec: &BackendSpec,
    ) -> Result<Arc<dyn storage_core::blob::BlobStore>> {
        tokio::time::sleep(Duration::from_micros(1)).await;
        let limits = spec.settings::<PluginMemoryConfig>()?.limits;
        Ok(Arc::new(blobs::TimedBlobs(
            storage_memory::MemoryBlobStore::new(limits),
        )))
    }
}

fn register(registrar: &mut PluginRegistrar) {
    registrar.add(storage_plugin::bridged(PluginMemoryFactory));
}

storage_core::declare_plugin!(register);
