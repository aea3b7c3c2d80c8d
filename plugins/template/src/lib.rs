//! A runtime plugin to copy: registers the type `template-memory`, a backend for both roles.
//!
//! A backend is a type that implements `Store`, `Cache` and `Database`, and declares itself with
//! `storage_core::Backend`: its type names, its settings type, how its block parses, how it
//! opens. `TemplateBackend` keeps its data in an in-memory store shared by the process (so that
//! the conformance kit can put namespaces side by side) and passes every operation to it through
//! the forwarding traits of `storage_core::layer`; your own backend implements the three traits
//! against your storage instead (see `plugins/storage-redb` for a complete one). What stays as it
//! is: the block's own fields parsed with unknown keys refused, the `Backend` impl,
//! `storage_plugin::bridged` (your futures run on a runtime the plugin owns, and your panics
//! become errors) and `declare_plugin!`.
//!
//! Conditional writes (plugin ABI 6): `get_versioned`, `set_if` and `delete_if` on the database
//! role and `set_if_absent` on the cache role forward here like every other operation. Your own
//! backend keeps a version beside each value (a new `Version::fresh()` on every write of it) and
//! checks each condition and writes in one transaction; one that cannot leaves the trait's
//! defaults, which answer `Unsupported`, and the kit's conditional cases then fail by name.
//!
//! The blob role (plugin ABI 7): `SERVES_BLOBS` and `open_blob` below return a
//! `storage_core::blob::BlobStore` (here the memory one, with the block's `maxBlobBytes` and
//! `maxTotalBytes`). Yours streams `put`'s reader into your storage while hashing it
//! (`storage_core::raw::BlobHasher`), makes the blob visible only once complete, and wraps the
//! stream `get` returns in `storage_core::raw::Verified`. Read `put`'s reader inside `put`'s
//! own future, not from a task you spawn: it may belong to the host's runtime.
//!
//! Following lists and watching keys (plugin ABI 8 and 9): `list_window` and `wait_for_change`
//! on the database role, and `changes` and `wait_for_changes` on both, forward here too. Your
//! own backend files every change in the transaction that writes it, into a bounded log whose
//! positions only grow (see `plugins/storage-redb/src/changes.rs`); one that cannot leaves the
//! defaults, which answer `Unsupported`, and the kit then says its watch cases do not apply.

use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use std::sync::OnceLock;
use storage_core::blob::{BlobLimits, BlobStore};
use storage_core::config::{BackendConfig, BackendSpec, BlockInput, Role};
use storage_core::layer::{ForwardCache, ForwardDatabase, ForwardStore};
use storage_core::plugin::PluginRegistrar;
use storage_core::{Backend, Cache, Database, Result, Store, Typed, async_trait};
use storage_memory::{MemoryBackend, MemoryBlobStore, MemoryStore};

/// The type name this plugin registers: what a config's `type:` says.
pub const TYPE_NAME: &str = "template-memory";

/// The block's own fields. `deny_unknown_fields`: a typo is an error with its path.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TemplateBlock {
    #[serde(default)]
    options: Option<TemplateOptions>,
    /// The blob role: the largest blob accepted.
    #[serde(default)]
    max_blob_bytes: Option<u64>,
    /// The blob role: the most bytes held.
    #[serde(default)]
    max_total_bytes: Option<u64>,
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
pub struct TemplateConfig {
    label: Option<String>,
    limits: BlobLimits,
}

impl BackendConfig for TemplateConfig {
    fn type_name(&self) -> &str {
        TYPE_NAME
    }
    fn describe(&self) -> String {
        self.label.clone().unwrap_or_default()
    }
}

fn store() -> &'static MemoryStore {
    static STORE: OnceLock<MemoryStore> = OnceLock::new();
    STORE.get_or_init(MemoryStore::new)
}

/// The backend: here a namespace of the shared store, whose operations it passes on.
#[derive(Debug)]
pub struct TemplateBackend(MemoryBackend);

impl ForwardStore for TemplateBackend {
    fn inner_store(&self) -> &dyn Store {
        &self.0
    }
}

impl ForwardCache for TemplateBackend {
    fn inner_cache(&self) -> &dyn Cache {
        &self.0
    }
}

impl ForwardDatabase for TemplateBackend {
    fn inner_database(&self) -> &dyn Database {
        &self.0
    }
}

#[async_trait]
impl Backend for TemplateBackend {
    type Config = TemplateConfig;
    const TYPE_NAMES: &'static [&'static str] = &[TYPE_NAME];

    fn schema() -> Value {
        serde_json::json!({
            "type": "object",
            "properties": {
                "options": {
                    "type": "object",
                    "properties": { "label": { "type": "string" } },
                    "additionalProperties": false
                },
                "maxBlobBytes": { "type": "integer", "minimum": 0 },
                "maxTotalBytes": { "type": "integer", "minimum": 0 }
            }
        })
    }

    fn parse(block: &mut BlockInput<'_>) -> Result<TemplateConfig> {
        let b: TemplateBlock = block.typed()?;
        Ok(TemplateConfig {
            label: b.options.and_then(|o| o.label),
            limits: BlobLimits::of_block(block, b.max_blob_bytes, b.max_total_bytes)?,
        })
    }

    async fn open(_config: &TemplateConfig, spec: &BackendSpec, _role: Role) -> Result<Self> {
        Ok(TemplateBackend(store().handle(&spec.common.key_prefix)?))
    }

    const SERVES_BLOBS: bool = true;

    async fn open_blob(config: &TemplateConfig, _spec: &BackendSpec) -> Result<Arc<dyn BlobStore>> {
        Ok(Arc::new(MemoryBlobStore::new(config.limits)))
    }
}

fn register(registrar: &mut PluginRegistrar) {
    registrar.add(storage_plugin::bridged(Typed::<TemplateBackend>::new()));
}

storage_core::declare_plugin!(register);
