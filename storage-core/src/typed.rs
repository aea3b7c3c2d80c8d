//! A backend declared by its types: the names a configuration uses, its settings type, how a
//! block parses into it, and how it connects. The registry erases it once, generically
//! ([`Registry::register_backend`]), so no backend writes a factory or downcasts its settings.
//! Not the erased form itself ([`BackendFactory`], which plugins cross the boundary with).
//!
//! ```
//! use std::sync::Arc;
//! use storage_core::config::{BackendSpec, BlockInput, NoSettings};
//! use storage_core::{Backend, Registry, Result, Role};
//!
//! # #[derive(Debug)] struct Kv;
//! # #[storage_core::async_trait] impl storage_core::Store for Kv {
//! #   fn backend(&self) -> &str { "kv" }
//! #   async fn get(&self, _: &str) -> Result<Option<serde_json::Value>> { Ok(None) }
//! #   async fn delete(&self, _: &str) -> Result<bool> { Ok(false) }
//! #   async fn mget(&self, k: &[String]) -> Result<Vec<Option<serde_json::Value>>> { Ok(vec![None; k.len()]) }
//! #   async fn exists(&self, _: &str) -> Result<bool> { Ok(false) }
//! #   async fn kind(&self, _: &str) -> Result<storage_core::KeyKind> { Ok(storage_core::KeyKind::None) }
//! #   async fn keys(&self, _: Option<&str>) -> Result<Vec<String>> { Ok(vec![]) }
//! #   async fn clear(&self) -> Result<()> { Ok(()) }
//! #   async fn ping(&self) -> Result<()> { Ok(()) }
//! #   async fn close(&self) -> Result<()> { Ok(()) }
//! # }
//! # #[storage_core::async_trait] impl storage_core::Cache for Kv {
//! #   async fn set(&self, _: &str, _: &serde_json::Value, _: Option<std::time::Duration>) -> Result<()> { Ok(()) }
//! #   async fn mset(&self, _: &[storage_core::CacheEntry]) -> Result<()> { Ok(()) }
//! #   async fn ttl(&self, _: &str) -> Result<storage_core::KeyTtl> { Ok(storage_core::KeyTtl::Missing) }
//! # }
//! # #[storage_core::async_trait] impl storage_core::Database for Kv {
//! #   async fn set(&self, _: &str, _: &serde_json::Value) -> Result<()> { Ok(()) }
//! #   async fn mset(&self, _: &[(String, serde_json::Value)]) -> Result<()> { Ok(()) }
//! #   async fn append(&self, _: &str, _: &serde_json::Value) -> Result<()> { Ok(()) }
//! #   async fn get_range(&self, _: &str, _: i64, _: i64) -> Result<Vec<serde_json::Value>> { Ok(vec![]) }
//! #   async fn get_length(&self, _: &str) -> Result<u64> { Ok(0) }
//! # }
//! #[storage_core::async_trait]
//! impl Backend for Kv {
//!     type Config = NoSettings;
//!     const TYPE_NAMES: &'static [&'static str] = &["kv"];
//!     fn parse(_block: &mut BlockInput<'_>) -> Result<NoSettings> {
//!         Ok(NoSettings::new("kv"))
//!     }
//!     async fn open(_: &NoSettings, _: &BackendSpec, _: Role) -> Result<Kv> {
//!         Ok(Kv)
//!     }
//! }
//!
//! let mut registry = Registry::new();
//! registry.register_backend::<Kv>().unwrap();
//! assert_eq!(registry.known_types(), ["kv"]);
//! ```

use crate::backend::{Cache, Database};
use crate::blob::BlobStore;
use crate::config::{BackendConfig, BackendSpec, BlockInput, Role};
use crate::error::Result;
use crate::registry::{BackendFactory, Registry};
use async_trait::async_trait;
use serde_json::Value;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

/// A backend serving both roles, declared by its types.
#[async_trait]
pub trait Backend: Cache + Database + Sized + 'static {
    /// Its settings: what its block parses into.
    type Config: BackendConfig;

    /// The type names a configuration may give; the first is the canonical one.
    const TYPE_NAMES: &'static [&'static str];

    /// Its own fields' JSON Schema (an object schema, merged with the common fields'). None by
    /// default.
    fn schema() -> Value {
        serde_json::json!({ "type": "object", "properties": {} })
    }

    /// Parses its block (the common fields are already taken out).
    fn parse(block: &mut BlockInput<'_>) -> Result<Self::Config>;

    /// Connects, for `role`, with its settings and the common ones in `spec`.
    async fn open(config: &Self::Config, spec: &BackendSpec, role: Role) -> Result<Self>;

    /// Whether it also serves the blob role (through [`Backend::open_blob`]).
    const SERVES_BLOBS: bool = false;

    /// Opens a blob store for the blob role. The default refuses (`Unsupported`).
    async fn open_blob(config: &Self::Config, spec: &BackendSpec) -> Result<Arc<dyn BlobStore>> {
        let _ = config;
        Err(crate::Error::unsupported(format!(
            "{} does not serve the blob role",
            spec.type_name
        )))
    }
}

/// The factory of a typed [`Backend`]: the one erasure every typed backend shares.
pub struct Typed<B>(PhantomData<fn() -> B>);

impl<B> Typed<B> {
    /// The factory of `B`.
    pub const fn new() -> Self {
        Typed(PhantomData)
    }
}

impl<B> Default for Typed<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B> Clone for Typed<B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B> Copy for Typed<B> {}

impl<B> fmt::Debug for Typed<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Typed<{}>", std::any::type_name::<B>())
    }
}

#[async_trait]
impl<B: Backend> BackendFactory for Typed<B> {
    fn type_names(&self) -> Vec<String> {
        B::TYPE_NAMES.iter().map(|n| n.to_string()).collect()
    }

    fn roles(&self) -> Vec<Role> {
        let mut roles = vec![Role::Cache, Role::Database];
        if B::SERVES_BLOBS {
            roles.push(Role::Blob);
        }
        roles
    }

    fn parse(&self, block: &mut BlockInput<'_>) -> Result<Arc<dyn BackendConfig>> {
        Ok(Arc::new(B::parse(block)?))
    }

    fn schema(&self) -> Value {
        B::schema()
    }

    async fn open_cache(&self, spec: &BackendSpec) -> Result<Arc<dyn Cache>> {
        let config = spec.settings::<B::Config>()?;
        Ok(Arc::new(B::open(config, spec, Role::Cache).await?))
    }

    async fn open_database(&self, spec: &BackendSpec) -> Result<Arc<dyn Database>> {
        let config = spec.settings::<B::Config>()?;
        Ok(Arc::new(B::open(config, spec, Role::Database).await?))
    }

    async fn open_blob(&self, spec: &BackendSpec) -> Result<Arc<dyn BlobStore>> {
        B::open_blob(spec.settings::<B::Config>()?, spec).await
    }
}

impl Registry {
    /// Registers the typed backend `B`, under every name it declares.
    pub fn register_backend<B: Backend>(&mut self) -> Result<()> {
        self.register(Arc::new(Typed::<B>::new()))
    }
}
