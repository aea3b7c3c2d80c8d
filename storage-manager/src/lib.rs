//! Builds working backends from configuration.
//!
//! [`StorageManager`] reads a config (see `storage_core::config`), walks each role's declared
//! fallback chain — giving every candidate its connect timeout and retries with exponential
//! backoff and jitter — and returns connected backends with a [`RoleStatus`] per role: which
//! backend serves, which candidates failed and why, and whether the role is degraded. Fallback is
//! visible, never silent, and `fallback: []` forbids it.
//!
//! It also checks the config without connecting ([`StorageManager::validate_config`]), reports
//! health without writing shared keys ([`StorageManager::health_check`]), and offers the design's
//! cache-aside patterns ([`CacheAside`]): lazy loading, write-through, and a bounded write-behind
//! for set and delete whose shutdown says exactly what was not written.
//!
//! The registry holds the built-in backends that cargo features select (`memory` and `sqlite`
//! by default).
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use storage_manager::StorageManager;
//! let dir = tempfile::tempdir().unwrap();
//! let manager = StorageManager::embedded_default(dir.path()).unwrap();
//! let backends = manager.connect().await.unwrap();
//! backends.database.append("history", &serde_json::json!("hello")).await.unwrap();
//! use storage_core::config::Role;
//! assert_eq!(backends.status(Role::Database).unwrap().serving.as_deref(), Some("sqlite"));
//! manager.disconnect().await.unwrap();
//! # });
//! ```

#![warn(missing_docs)]

mod cache_aside;
mod cache_aside_behind;
mod cache_aside_database;
mod cache_aside_read;
pub mod config_file;
mod near_cache;
mod near_cache_ops;
mod plugin_file;
mod plugins;
mod registry;
mod status;
mod validate;
mod walk;

pub use cache_aside::{CacheAside, CacheAsideOptions, FailedWrite, WriteBehindReport};
pub use near_cache::{Freshness, NearCache, NearCacheOptions, NearCacheStats};
pub use plugins::load_plugin;
pub use registry::builtin_registry;
pub use status::{CacheStats, FailedCandidate, RoleHealth, RoleStatus};
pub use storage_core::plugin::tokio_block_in_place;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use storage_core::blob::BlobStore;
use storage_core::config::{BackendSpec, ConfigSource, Role, StorageConfig};
use storage_core::layer::Layer;
use storage_core::{Cache, Database, Error, Registry, Result, Store};
use walk::walk;

/// What a health check pings: a key-value role or the blob role.
enum Pinged {
    Store(Arc<dyn Store>),
    Blob(Arc<dyn BlobStore>),
}

impl Pinged {
    async fn ping(&self) -> Result<()> {
        match self {
            Pinged::Store(s) => s.ping().await,
            Pinged::Blob(b) => b.ping().await,
        }
    }
}

/// Connected backends for both key-value roles.
#[derive(Clone)]
pub struct StorageBackends {
    /// The cache role.
    pub cache: Arc<dyn Cache>,
    /// The database role.
    pub database: Arc<dyn Database>,
    cache_status: RoleStatus,
    database_status: RoleStatus,
}

impl StorageBackends {
    /// Which backend serves `role`, and what failed before it; `None` for the blob role,
    /// which [`StorageManager::connect_blob`] connects on its own.
    pub fn status(&self, role: Role) -> Option<&RoleStatus> {
        match role {
            Role::Cache => Some(&self.cache_status),
            Role::Database => Some(&self.database_status),
            Role::Blob => None,
        }
    }
}

#[derive(Default)]
struct Connected {
    cache: Option<(Arc<dyn Cache>, RoleStatus)>,
    database: Option<(Arc<dyn Database>, RoleStatus)>,
    blob: Option<(Arc<dyn BlobStore>, RoleStatus)>,
}

/// Builds and owns the backends of one configuration.
pub struct StorageManager {
    config: StorageConfig,
    registry: Registry,
    connected: Mutex<Connected>,
    /// Applied in order to each role once it is connected: the last is outermost.
    layers: Vec<Arc<dyn Layer>>,
}

impl std::fmt::Debug for StorageManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageManager")
            .field("config", &self.config)
            .field("registry", &self.registry)
            .finish()
    }
}

impl StorageManager {
    /// From a parsed config source, with the built-in registry.
    pub fn from_source(source: &ConfigSource) -> Result<Self> {
        Self::with_registry(source, builtin_registry())
    }

    /// From a config file (YAML or JSON; a `storage:` block or a whole agent.yml).
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_source(&config_file::from_file(path)?)
    }

    /// The embedded default in `dir`: SQLite at `.storage/storage.db` and a memory cache.
    pub fn embedded_default(dir: &Path) -> Result<Self> {
        Self::from_source(&ConfigSource::embedded_default(dir))
    }

    /// From a config source, with a given registry.
    pub fn with_registry(source: &ConfigSource, mut registry: Registry) -> Result<Self> {
        // Step one of the parse: plugins first, so that their types are known to step two.
        load_plugins(source, &mut registry)?;
        let config = source.resolve(&registry)?;
        let manager = StorageManager {
            config,
            registry,
            connected: Mutex::new(Connected::default()),
            layers: Vec::new(),
        };
        manager.validate_config()?;
        Ok(manager)
    }

    /// The resolved configuration.
    pub fn config(&self) -> &StorageConfig {
        &self.config
    }

    /// The registry its backends come from, plugins included.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The same configuration with every backend under a namespace of its own:
    /// `{prefix}cache:` for the cache role and `{prefix}db:` for the database, for tools (the
    /// demo) that must never write into the application's namespaces. Refused, naming both, if
    /// a new namespace would see keys of one of the configuration's own (on a server whose
    /// namespaces are string prefixes, an empty keyPrefix sees everything).
    pub fn in_own_namespace(mut self, prefix: &str) -> Result<Self> {
        let original = self.config.clone();
        for role in [Role::Cache, Role::Database, Role::Blob] {
            let ns = format!(
                "{prefix}{}:",
                match role {
                    Role::Cache => "cache",
                    Role::Database => "db",
                    Role::Blob => "blob",
                }
            );
            if let Some(chain) = self.config.role_mut(role) {
                for spec in std::iter::once(&mut chain.primary).chain(chain.fallback.iter_mut()) {
                    spec.common.key_prefix = ns.clone();
                }
            }
        }
        // Key-value namespaces against key-value ones, blobs against blobs (a blob store keeps
        // its own tables or folders, which no key reaches).
        let key_values = |c: &StorageConfig| -> Vec<BackendSpec> {
            c.cache.chain().chain(c.database.chain()).cloned().collect()
        };
        let blobs = |c: &StorageConfig| -> Vec<BackendSpec> {
            c.blob.iter().flat_map(|b| b.chain()).cloned().collect()
        };
        let pairs = [
            (key_values(&original), key_values(&self.config)),
            (blobs(&original), blobs(&self.config)),
        ];
        for (theirs, ours) in pairs.iter().flat_map(|(t, o)| {
            t.iter()
                .flat_map(move |theirs| o.iter().map(move |ours| (theirs, ours)))
        }) {
            {
                if let Some(clash) = namespaces_clash(theirs, ours) {
                    return Err(Error::config(format!(
                        "refusing to write under keyPrefix {:?} on {ours}: the application's {} (keyPrefix {:?}) reaches the same data and the namespaces {}; give the application a keyPrefix that is not a prefix of {:?}",
                        ours.common.key_prefix,
                        theirs.path,
                        theirs.common.key_prefix,
                        clash.verb(),
                        ours.common.key_prefix
                    )));
                }
            }
        }
        self.validate_config()?;
        Ok(self)
    }

    /// Wraps both roles in `layer` from the next connect on, outside the layers given before
    /// (and outside the contract's checks, which every backend has).
    ///
    /// ```
    /// # fn demo(manager: storage_manager::StorageManager) -> storage_manager::StorageManager {
    /// struct Nothing;
    /// impl storage_core::layer::Layer for Nothing {}
    /// manager.with_layer(Nothing)
    /// # }
    /// ```
    pub fn with_layer(mut self, layer: impl Layer + 'static) -> Self {
        self.layers.push(Arc::new(layer));
        self
    }

    /// Turns fallback off for every role (the CLI's data commands never write into a
    /// fallback).
    pub fn without_fallback(mut self) -> Self {
        self.config.cache.fallback.clear();
        self.config.database.fallback.clear();
        if let Some(blob) = self.config.blob.as_mut() {
            blob.fallback.clear();
        }
        self
    }

    /// Checks the configuration without connecting: every type is registered and serves its
    /// role, no two roles share a namespace on one server, and the role-wide fields
    /// (`nearCache`, `cacheAside`) are where they belong.
    pub fn validate_config(&self) -> Result<()> {
        validate::validate(&self.config, &self.registry)
    }

    /// A [`CacheAside`] over this configuration's cache and database (both connected, each
    /// walking its fallback chain), with the cache role's `cacheAside:` settings
    /// ([`CacheAsideOptions::default`] when it gives none).
    pub async fn connect_cache_aside(&self) -> Result<CacheAside> {
        let (cache, _) = self.connect_cache().await?;
        let (database, _) = self.connect_database().await?;
        let options = match &self.config.cache.primary.common.cache_aside {
            Some(settings) => CacheAsideOptions::from_settings(settings),
            None => CacheAsideOptions::default(),
        };
        Ok(CacheAside::new(cache, database, options))
    }

    /// Connects both roles, walking each fallback chain.
    pub async fn connect(&self) -> Result<StorageBackends> {
        let (cache, cache_status) = self.connect_cache().await?;
        let (database, db_status) = self.connect_database().await?;
        Ok(StorageBackends {
            cache,
            database,
            cache_status,
            database_status: db_status,
        })
    }

    /// Connects the cache role only (reusing an earlier connection).
    pub async fn connect_cache(&self) -> Result<(Arc<dyn Cache>, RoleStatus)> {
        if let Some((c, s)) = &self.lock().cache {
            return Ok((c.clone(), s.clone()));
        }
        let reg = &self.registry;
        let (backend, status) = walk(Role::Cache, &self.config.cache, |spec| {
            let spec = spec.clone();
            async move { reg.open_cache(&spec).await }
        })
        .await?;
        let backend = match &self.config.cache.primary.common.near_cache {
            Some(options) => Arc::new(NearCache::cache(backend, options.clone())),
            None => backend,
        };
        let backend = self
            .layers
            .iter()
            .fold(backend, |inner, layer| layer.layer_cache(inner));
        self.lock().cache = Some((backend.clone(), status.clone()));
        Ok((backend, status))
    }

    /// Connects the database role only (reusing an earlier connection).
    pub async fn connect_database(&self) -> Result<(Arc<dyn Database>, RoleStatus)> {
        if let Some((d, s)) = &self.lock().database {
            return Ok((d.clone(), s.clone()));
        }
        let reg = &self.registry;
        let (backend, status) = walk(Role::Database, &self.config.database, |spec| {
            let spec = spec.clone();
            async move { reg.open_database(&spec).await }
        })
        .await?;
        let backend = match &self.config.database.primary.common.near_cache {
            Some(options) => Arc::new(NearCache::database(backend, options.clone())),
            None => backend,
        };
        let backend = self
            .layers
            .iter()
            .fold(backend, |inner, layer| layer.layer_database(inner));
        self.lock().database = Some((backend.clone(), status.clone()));
        Ok((backend, status))
    }

    /// Connects the blob role (reusing an earlier connection), walking its fallback chain; an
    /// error when the configuration has no blob role. The application's layers do not wrap it.
    pub async fn connect_blob(&self) -> Result<(Arc<dyn BlobStore>, RoleStatus)> {
        if let Some((b, s)) = &self.lock().blob {
            return Ok((b.clone(), s.clone()));
        }
        let Some(chain) = &self.config.blob else {
            return Err(Error::config(
                "storage.blob: no blob role is configured (add a `blob:` block)",
            ));
        };
        let reg = &self.registry;
        let (backend, status) = walk(Role::Blob, chain, |spec| {
            let spec = spec.clone();
            async move { reg.open_blob(&spec).await }
        })
        .await?;
        self.lock().blob = Some((backend.clone(), status.clone()));
        Ok((backend, status))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connected> {
        self.connected.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pings each role's serving backend (connecting first if needed) and reports its latency.
    /// It writes nothing, so instances sharing a backend never race on it.
    pub async fn health_check(&self) -> Vec<RoleHealth> {
        let mut out = Vec::new();
        for role in self.config.roles() {
            let connected: Result<(Pinged, RoleStatus)> = match role {
                Role::Cache => self
                    .connect_cache()
                    .await
                    .map(|(c, s)| (Pinged::Store(c as Arc<dyn Store>), s)),
                Role::Database => self
                    .connect_database()
                    .await
                    .map(|(d, s)| (Pinged::Store(d as Arc<dyn Store>), s)),
                Role::Blob => self.connect_blob().await.map(|(b, s)| (Pinged::Blob(b), s)),
            };
            let health = match connected {
                Ok((store, status)) => {
                    let started = Instant::now();
                    let timeout = self.config.role(role).map_or(Duration::from_secs(5), |r| {
                        r.primary.common.operation_timeout
                    });
                    let ping = tokio::time::timeout(timeout, store.ping())
                        .await
                        .unwrap_or_else(|_| Err(Error::timeout("ping timed out")));
                    RoleHealth {
                        status,
                        ok: ping.is_ok(),
                        latency: started.elapsed(),
                        error: ping
                            .err()
                            .map(|e| storage_core::redact::redact(&e.to_string())),
                    }
                }
                Err(e) => RoleHealth {
                    status: RoleStatus {
                        role,
                        serving: None,
                        serving_detail: None,
                        failed: Vec::new(),
                    },
                    ok: false,
                    latency: Duration::ZERO,
                    error: Some(storage_core::redact::redact(&e.to_string())),
                },
            };
            out.push(health);
        }
        out
    }

    /// Closes every backend. Calling it again does nothing.
    pub async fn disconnect(&self) -> Result<()> {
        let connected = std::mem::take(&mut *self.lock());
        let mut first_error = None;
        if let Some((c, _)) = connected.cache
            && let Err(e) = c.close().await
        {
            first_error.get_or_insert(e);
        }
        if let Some((d, _)) = connected.database
            && let Err(e) = d.close().await
        {
            first_error.get_or_insert(e);
        }
        if let Some((b, _)) = connected.blob
            && let Err(e) = b.close().await
        {
            first_error.get_or_insert(e);
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Loads the plugin libraries a config lists into `registry` (step one of the parse).
pub fn load_plugins(source: &ConfigSource, registry: &mut Registry) -> Result<()> {
    for (i, path) in source.plugins().iter().enumerate() {
        load_plugin(path, registry)
            .map_err(|e| Error::plugin(format!("storage.plugins[{i}]: {}", e.message())))?;
    }
    Ok(())
}

/// The JSON Schema of a `storage:` block for the built-in backends and the plugins `source`
/// lists, assembled from their factories.
pub fn json_schema(source: Option<&ConfigSource>) -> Result<serde_json::Value> {
    let mut registry = builtin_registry();
    if let Some(source) = source {
        load_plugins(source, &mut registry)?;
    }
    Ok(storage_core::config::json_schema(&registry))
}

/// How two namespaces on the same data clash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceClash {
    /// The same keyPrefix.
    Equal,
    /// One keyPrefix is a prefix of the other, where namespaces are string prefixes.
    Nested,
}

impl NamespaceClash {
    /// `are equal` or `nest`.
    pub fn verb(self) -> &'static str {
        match self {
            NamespaceClash::Equal => "are equal",
            NamespaceClash::Nested => "nest",
        }
    }
}

/// Whether `a` and `b` can see each other's keys: their settings reach the same data (by the
/// identity each backend gives) and their namespaces are equal, or nest where the backend's
/// namespaces are string prefixes. Settings without an identity are private to their backend.
pub fn namespaces_clash(a: &BackendSpec, b: &BackendSpec) -> Option<NamespaceClash> {
    let (ida, idb) = (a.config.identity()?, b.config.identity()?);
    if !ida.overlaps(&idb) {
        return None;
    }
    let (pa, pb) = (&a.common.key_prefix, &b.common.key_prefix);
    if pa == pb {
        return Some(NamespaceClash::Equal);
    }
    let nests = ida.prefixes_nest || idb.prefixes_nest;
    (nests && (pa.starts_with(pb.as_str()) || pb.starts_with(pa.as_str())))
        .then_some(NamespaceClash::Nested)
}
