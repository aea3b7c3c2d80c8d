//! The `in-memory` block and the factory: each backend gets a store of its own, unless its
//! block names a shared one (`store: <name>`), which every backend of the process naming it
//! shares, for tests and tools that need two handles on one store.

use crate::{MemoryBackend, MemoryStore, TYPE_NAME};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;
use storage_core::Result;
use storage_core::config::{BackendConfig, BackendSpec, BlockInput, Role, ServerIdentity};

/// The fields of a `type: in-memory` block besides the common ones.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(description = "A store in the process's memory: fast, lost at exit.")]
pub struct MemoryBlock {
    /// A store shared by every `in-memory` backend of this process that names it. Without it,
    /// each backend has a store of its own.
    #[serde(default)]
    pub store: Option<String>,
    /// The blob role: the largest blob accepted, in bytes.
    #[serde(default, rename = "maxBlobBytes")]
    pub max_blob_bytes: Option<u64>,
    /// The blob role: the most bytes held in all.
    #[serde(default, rename = "maxTotalBytes")]
    pub max_total_bytes: Option<u64>,
}

/// The settings of an `in-memory` backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryConfig {
    /// The shared store's name, if any (the key-value roles).
    pub store: Option<String>,
    /// The blob role's limits.
    pub limits: storage_core::blob::BlobLimits,
}

impl BackendConfig for MemoryConfig {
    fn type_name(&self) -> &str {
        TYPE_NAME
    }
    fn describe(&self) -> String {
        self.store
            .as_ref()
            .map(|s| format!("store {s:?}"))
            .unwrap_or_default()
    }
    /// None for a store of its own; a shared store is reachable from every backend naming it.
    fn identity(&self) -> Option<ServerIdentity> {
        self.store.as_ref().map(|name| ServerIdentity {
            scheme: TYPE_NAME.to_string(),
            endpoints: [name.clone()].into(),
            scope: String::new(),
            // Namespaces are exact keys of the store's map.
            prefixes_nest: false,
        })
    }
}

/// The process's named stores.
fn named(name: &str) -> MemoryStore {
    static STORES: Mutex<BTreeMap<String, MemoryStore>> = Mutex::new(BTreeMap::new());
    STORES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(name.to_string())
        .or_default()
        .clone()
}

/// The factory the registry holds: [`MemoryBackend`], erased by storage-core.
pub type MemoryFactory = storage_core::Typed<MemoryBackend>;

#[async_trait]
impl storage_core::Backend for MemoryBackend {
    type Config = MemoryConfig;
    const TYPE_NAMES: &'static [&'static str] = &[TYPE_NAME, "memory"];

    fn schema() -> Value {
        serde_json::to_value(schemars::schema_for!(MemoryBlock)).unwrap_or_default()
    }

    fn parse(block: &mut BlockInput<'_>) -> Result<MemoryConfig> {
        let b: MemoryBlock = block.typed()?;
        if b.store.as_deref() == Some("") {
            return Err(block.error("store", "must not be empty"));
        }
        let limits =
            storage_core::blob::BlobLimits::of_block(block, b.max_blob_bytes, b.max_total_bytes)?;
        Ok(MemoryConfig {
            store: b.store,
            limits,
        })
    }

    async fn open(config: &MemoryConfig, spec: &BackendSpec, _role: Role) -> Result<Self> {
        let store = match &config.store {
            Some(name) => named(name),
            None => MemoryStore::new(),
        };
        store.handle(&spec.common.key_prefix)
    }

    const SERVES_BLOBS: bool = true;

    /// A blob store of its own (blobs are not shared through `store`).
    async fn open_blob(
        config: &MemoryConfig,
        _spec: &BackendSpec,
    ) -> Result<std::sync::Arc<dyn storage_core::blob::BlobStore>> {
        Ok(std::sync::Arc::new(crate::MemoryBlobStore::new(
            config.limits,
        )))
    }
}

#[cfg(test)]
#[path = "factory_tests.rs"]
mod tests;
