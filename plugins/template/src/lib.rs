//! A runtime plugin to copy: registers the type `template-memory`, a backend for both roles.
//!
//! It stores data in an in-memory store shared by the process (so that the conformance kit can
//! put namespaces side by side), which is where your own backend goes: replace `open` with a
//! connection to your storage and implement `Store`, `Cache` and `Database` for it (see
//! `plugins/storage-redb` for a complete one). What stays as it is: the block's own fields
//! parsed with unknown keys refused, the factory, `storage_plugin::bridged` (your futures run on
//! a runtime the plugin owns, and your panics become errors) and `declare_plugin!`.

use serde::Deserialize;
use serde_json::Value;
use std::sync::{Arc, OnceLock};
use storage_core::config::{BackendConfig, BackendSpec, BlockInput, Role};
use storage_core::plugin::PluginRegistrar;
use storage_core::{BackendFactory, Cache, Database, Result, async_trait};
use storage_memory::MemoryStore;

/// The type name this plugin registers: what a config's `type:` says.
pub const TYPE_NAME: &str = "template-memory";

/// The block's own fields. `deny_unknown_fields`: a typo is an error with its path.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TemplateBlock {
    #[serde(default)]
    options: Option<TemplateOptions>,
}

/// `options` of a `template-memory` block.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TemplateOptions {
    /// A label shown in descriptions (an example of a field of your own).
    #[serde(default)]
    label: Option<String>,
}

/// The parsed settings.
#[derive(Debug, Clone)]
struct TemplateConfig {
    label: Option<String>,
}

impl BackendConfig for TemplateConfig {
    fn type_name(&self) -> &str {
        TYPE_NAME
    }
    fn describe(&self) -> String {
        self.label.clone().unwrap_or_default()
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn store() -> &'static MemoryStore {
    static STORE: OnceLock<MemoryStore> = OnceLock::new();
    STORE.get_or_init(MemoryStore::new)
}

/// The factory the host's registry calls.
#[derive(Debug, Default, Clone, Copy)]
struct TemplateFactory;

#[async_trait]
impl BackendFactory for TemplateFactory {
    fn type_names(&self) -> Vec<String> {
        vec![TYPE_NAME.to_string()]
    }
    fn roles(&self) -> Vec<Role> {
        vec![Role::Cache, Role::Database]
    }
    fn parse(&self, block: &mut BlockInput<'_>) -> Result<Arc<dyn BackendConfig>> {
        let b: TemplateBlock = block.typed()?;
        Ok(Arc::new(TemplateConfig {
            label: b.options.and_then(|o| o.label),
        }))
    }
    fn schema(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "properties": {
                "options": {
                    "type": "object",
                    "properties": { "label": { "type": "string" } },
                    "additionalProperties": false
                }
            }
        })
    }
    async fn open_cache(&self, spec: &BackendSpec) -> Result<Arc<dyn Cache>> {
        Ok(Arc::new(store().handle(&spec.common.key_prefix)?))
    }
    async fn open_database(&self, spec: &BackendSpec) -> Result<Arc<dyn Database>> {
        Ok(Arc::new(store().handle(&spec.common.key_prefix)?))
    }
}

fn register(registrar: &mut PluginRegistrar) {
    registrar.add(storage_plugin::bridged(TemplateFactory));
}

storage_core::declare_plugin!(register);
