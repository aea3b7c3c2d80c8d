//! The configuration: the common fields, the two-step parse, and the helpers that backend
//! crates parse their own fields with.
//!
//! storage-core owns only what every backend shares. Each backend crate owns its block (its
//! fields, synonyms, defaults, URL and TLS handling, redaction, server identity, default
//! fallback and schema) and parses it in its factory's
//! [`parse`](crate::BackendFactory::parse). Parsing runs in two steps, so that plugins can add
//! types before blocks are typed:
//!
//! 1. [`ConfigSource`] takes a parsed document (a `storage:` block or a whole agent.yml) and
//!    lists `plugins`. Reading a file (YAML or JSON) and expanding environment references are
//!    the manager's (`storage_manager::config_file`); a document built in code needs neither.
//! 2. [`ConfigSource::resolve`] types each role's block with the factories of a
//!    [`Registry`](crate::Registry), and yields a [`StorageConfig`] whose fallback chains are
//!    settled.
//!
//! Every error names its field path, such as `storage.database.pathh`, and never shows a
//! secret. The full reference is `docs/configuration.md` in the repository.
//!
//! ```
//! use std::sync::Arc;
//! use storage_core::config::{ConfigSource, Role};
//! use storage_core::{BackendFactory, Registry};
//!
//! /// A backend type with no fields beyond the common ones (the default `parse`).
//! struct Plain;
//! impl BackendFactory for Plain {
//!     fn type_names(&self) -> Vec<String> { vec!["plain".into()] }
//!     fn roles(&self) -> Vec<Role> { vec![Role::Cache, Role::Database] }
//! }
//!
//! let mut registry = Registry::new();
//! registry.register(Arc::new(Plain)).unwrap();
//! registry.set_role_default(Role::Cache, "plain");
//! let doc = serde_json::json!({ "storage": { "database": { "type": "plain", "keyPrefix": "app:" } } });
//! let config = ConfigSource::from_document(doc, "/srv/app".as_ref())
//!     .unwrap()
//!     .resolve(&registry)
//!     .unwrap();
//! assert_eq!(config.database.primary.common.key_prefix, "app:");
//! assert_eq!(config.cache.primary.type_name, "plain");
//! ```

mod cache_aside;
mod common;
mod fields;
mod near_cache;
mod resolve;
mod schema;
mod source;
mod spec;

pub use cache_aside::{CacheAsideBlock, CacheAsideSettings, StampedeBlock};
pub use common::{BlockInput, COMMON_FIELDS, CommonBlock, CommonField, CommonSettings};
pub use fields::{NumOrEnv, PoolBlock, Secret, SslDetail, SslField, json_type, num, typed};
pub use near_cache::{NEAR_CACHE_MAX_MILLIS, NearCacheBlock, NearCacheOptions};
pub use schema::{SECRET_FILE_FIELDS, json_schema};
pub use source::ConfigSource;
pub use spec::{BackendConfig, BackendSpec, NoSettings, ServerIdentity};

use std::fmt;
use std::path::PathBuf;

/// The roles: the key-value cache and database, and blobs (files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Fast, ephemeral, with TTLs.
    Cache,
    /// Durable, with lists.
    Database,
    /// Content-addressed files beside them.
    Blob,
}

impl Role {
    /// `cache`, `database` or `blob`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Cache => "cache",
            Role::Database => "database",
            Role::Blob => "blob",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A whole, resolved configuration.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// The cache role.
    pub cache: RoleConfig,
    /// The database role.
    pub database: RoleConfig,
    /// The blob role: `None` when the config leaves it out and the registry sets no default
    /// blob backend.
    pub blob: Option<RoleConfig>,
    /// Plugin libraries, as absolute paths.
    pub plugins: Vec<PathBuf>,
    /// The directory relative paths resolved against.
    pub base_dir: PathBuf,
}

impl StorageConfig {
    /// The role's configuration; `None` only for a blob role the config leaves out.
    pub fn role(&self, role: Role) -> Option<&RoleConfig> {
        match role {
            Role::Cache => Some(&self.cache),
            Role::Database => Some(&self.database),
            Role::Blob => self.blob.as_ref(),
        }
    }

    /// The role's configuration, mutably; see [`StorageConfig::role`].
    pub fn role_mut(&mut self, role: Role) -> Option<&mut RoleConfig> {
        match role {
            Role::Cache => Some(&mut self.cache),
            Role::Database => Some(&mut self.database),
            Role::Blob => self.blob.as_mut(),
        }
    }

    /// The roles this configuration serves, in order: cache, database, then blob if present.
    pub fn roles(&self) -> Vec<Role> {
        let mut roles = vec![Role::Cache, Role::Database];
        if self.blob.is_some() {
            roles.push(Role::Blob);
        }
        roles
    }
}

/// One role: the declared backend and its fallback chain.
#[derive(Debug, Clone)]
pub struct RoleConfig {
    /// The backend the config names.
    pub primary: BackendSpec,
    /// Tried in order when the primary cannot connect. Empty turns fallback off.
    pub fallback: Vec<BackendSpec>,
}

impl RoleConfig {
    /// The primary, then each fallback.
    pub fn chain(&self) -> impl Iterator<Item = &BackendSpec> {
        std::iter::once(&self.primary).chain(self.fallback.iter())
    }
}
