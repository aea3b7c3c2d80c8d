//! The `in-memory` block and the factory: each backend gets a store of its own, unless its
//! block names a shared one (`store: <name>`), which every backend of the process naming it
//! shares, for tests and tools that need two handles on one store.

use crate::{MemoryStore, TYPE_NAME};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use storage_core::config::{BackendConfig, BackendSpec, BlockInput, Role, ServerIdentity};
use storage_core::{BackendFactory, Cache, Database, Result};

/// The fields of a `type: in-memory` block besides the common ones.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(description = "A store in the process's memory: fast, lost at exit.")]
pub struct MemoryBlock {
    /// A store shared by every `in-memory` backend of this process that names it. Without it,
    /// each backend has a store of its own.
    #[serde(default)]
    pub store: Option<String>,
}

/// The settings of an `in-memory` backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryConfig {
    /// The shared store's name, if any.
    pub store: Option<String>,
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
    fn as_any(&self) -> &dyn std::any::Any {
        self
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

fn store_for(spec: &BackendSpec) -> Result<MemoryStore> {
    Ok(match &spec.settings::<MemoryConfig>()?.store {
        Some(name) => named(name),
        None => MemoryStore::new(),
    })
}

/// The factory for the registry.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryFactory;

#[async_trait]
impl BackendFactory for MemoryFactory {
    fn type_names(&self) -> Vec<String> {
        vec![TYPE_NAME.to_string(), "memory".to_string()]
    }

    fn roles(&self) -> Vec<Role> {
        vec![Role::Cache, Role::Database]
    }

    fn parse(&self, block: &mut BlockInput<'_>) -> Result<Arc<dyn BackendConfig>> {
        let b: MemoryBlock = block.typed()?;
        if b.store.as_deref() == Some("") {
            return Err(block.error("store", "must not be empty"));
        }
        Ok(Arc::new(MemoryConfig { store: b.store }))
    }

    fn schema(&self) -> Value {
        serde_json::to_value(schemars::schema_for!(MemoryBlock)).unwrap_or_default()
    }

    async fn open_cache(&self, spec: &BackendSpec) -> Result<Arc<dyn Cache>> {
        Ok(Arc::new(store_for(spec)?.handle(&spec.common.key_prefix)?))
    }

    async fn open_database(&self, spec: &BackendSpec) -> Result<Arc<dyn Database>> {
        Ok(Arc::new(store_for(spec)?.handle(&spec.common.key_prefix)?))
    }
}

#[cfg(test)]
#[path = "factory_tests.rs"]
mod tests;
