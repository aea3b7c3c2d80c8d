//! The backend registry: type names to factories.

use crate::backend::{Cache, Database};
use crate::blob::BlobStore;
use crate::config::{BackendConfig, BackendSpec, BlockInput, NoSettings, Role};
use crate::error::{Error, Result};
use crate::layer::{checked_cache, checked_database};
use crate::limits::validate_key_prefix;
use async_trait::async_trait;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// What a backend crate exports: its names, the parse of its own block, and constructors.
///
/// The manager asks a factory everything it needs at load time, before anything connects: the
/// parse of its block ([`BackendFactory::parse`], whose settings describe themselves, redact
/// their secrets and name the server they reach), its default fallback chain, and the schema of
/// its fields. Plugins go through the same path, so their options are checked at load too.
///
/// Constructors return a connected backend, or an error that the manager's fallback walk can
/// report. They need not validate keys or values: the registry wraps what they return in the
/// contract's layers ([`crate::layer::Validate`] and [`crate::layer::Observe`]).
#[async_trait]
pub trait BackendFactory: Send + Sync {
    /// The canonical type name first, then aliases (`["key-value", "kv"]`).
    fn type_names(&self) -> Vec<String>;

    /// The roles it serves.
    fn roles(&self) -> Vec<Role>;

    /// Parses the backend's own fields (the common ones are already settled in
    /// `block.common()`). Unknown fields, unknown `options` keys and invalid values are errors
    /// naming their path. The default takes no fields at all.
    fn parse(&self, block: &mut BlockInput<'_>) -> Result<Arc<dyn BackendConfig>> {
        if let Some(field) = block.fields().keys().next() {
            return Err(block.error(
                field,
                format!("unknown field `{field}`; this backend takes only the common fields"),
            ));
        }
        Ok(Arc::new(NoSettings::new(
            self.type_names().into_iter().next().unwrap_or_default(),
        )))
    }

    /// The JSON Schema of its own fields (an object schema whose `properties` are merged with
    /// the common fields'). The default has none.
    fn schema(&self) -> Value {
        serde_json::json!({ "type": "object", "properties": {} })
    }

    /// The fallback chain a block of this type gets when it declares none, as type names.
    /// Names that are not registered are left out. The default is none.
    fn default_fallback(&self, role: Role) -> Vec<String> {
        let _ = role;
        Vec::new()
    }

    /// Builds and connects a cache.
    async fn open_cache(&self, spec: &BackendSpec) -> Result<Arc<dyn Cache>> {
        Err(Error::unsupported(format!(
            "{} does not serve the cache role",
            spec.type_name
        )))
    }

    /// Builds and connects a database.
    async fn open_database(&self, spec: &BackendSpec) -> Result<Arc<dyn Database>> {
        Err(Error::unsupported(format!(
            "{} does not serve the database role",
            spec.type_name
        )))
    }

    /// Builds and opens a blob store.
    async fn open_blob(&self, spec: &BackendSpec) -> Result<Arc<dyn BlobStore>> {
        Err(Error::unsupported(format!(
            "{} does not serve the blob role",
            spec.type_name
        )))
    }
}

/// Opens a cache through `factory`, checking the namespace first and wrapping the result in
/// the contract's layers: what [`Registry::open_cache`] does.
async fn open_cache(factory: &dyn BackendFactory, spec: &BackendSpec) -> Result<Arc<dyn Cache>> {
    validate_key_prefix(&spec.common.key_prefix)
        .map_err(|e| e.at(spec.type_name.clone(), "connect"))?;
    let raw = factory
        .open_cache(spec)
        .await
        .map_err(|e| e.at(spec.type_name.clone(), "connect"))?;
    Ok(checked_cache(raw))
}

/// Opens a database through `factory`; see [`open_cache`].
async fn open_database(
    factory: &dyn BackendFactory,
    spec: &BackendSpec,
) -> Result<Arc<dyn Database>> {
    validate_key_prefix(&spec.common.key_prefix)
        .map_err(|e| e.at(spec.type_name.clone(), "connect"))?;
    let raw = factory
        .open_database(spec)
        .await
        .map_err(|e| e.at(spec.type_name.clone(), "connect"))?;
    Ok(checked_database(raw))
}

/// Factories keyed by type name. storage-core registers none; each backend crate exports its
/// own factory and the application (usually storage-manager) installs it.
///
/// ```
/// let registry = storage_core::Registry::new();
/// let Err(err) = registry.factory("nope") else { unreachable!() };
/// assert!(err.to_string().contains("known types: (none)"));
/// ```
#[derive(Default, Clone)]
pub struct Registry {
    factories: BTreeMap<String, Arc<dyn BackendFactory>>,
    canonical: BTreeMap<String, String>,
    role_defaults: [Option<String>; 3],
    /// The fallback chains the composition root gives a type's blocks that declare none.
    fallback_policy: BTreeMap<(String, usize), Vec<String>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("types", &self.canonical.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a factory under all its names. A name that is already registered is refused.
    pub fn register(&mut self, factory: Arc<dyn BackendFactory>) -> Result<()> {
        let names = factory.type_names();
        let Some(canonical) = names.first().cloned() else {
            return Err(Error::config("a backend factory declared no type name"));
        };
        for name in &names {
            if self.canonical.contains_key(name) {
                return Err(Error::config(format!(
                    "backend type {name:?} is already registered"
                )));
            }
        }
        for name in names {
            self.canonical.insert(name, canonical.clone());
        }
        self.factories.insert(canonical, factory);
        Ok(())
    }

    /// The factory for `type_name` (or an alias), or an error listing the known types.
    pub fn factory(&self, type_name: &str) -> Result<Arc<dyn BackendFactory>> {
        self.canonical
            .get(type_name)
            .and_then(|c| self.factories.get(c))
            .cloned()
            .ok_or_else(|| {
                Error::config(format!(
                    "unknown backend type {type_name:?}; known types: {}",
                    self.known_list()
                ))
            })
    }

    fn known_list(&self) -> String {
        if self.canonical.is_empty() {
            "(none)".to_string()
        } else {
            self.known_types().join(", ")
        }
    }

    /// Opens the cache that `spec` describes.
    pub async fn open_cache(&self, spec: &BackendSpec) -> Result<Arc<dyn Cache>> {
        let factory = self.factory(&spec.type_name)?;
        open_cache(factory.as_ref(), spec).await
    }

    /// Opens the database that `spec` describes.
    pub async fn open_database(&self, spec: &BackendSpec) -> Result<Arc<dyn Database>> {
        let factory = self.factory(&spec.type_name)?;
        open_database(factory.as_ref(), spec).await
    }

    /// Opens the blob store that `spec` describes, observed ([`crate::layer::ObserveBlobs`]:
    /// spans, the duration metric, errors naming backend and operation).
    pub async fn open_blob(&self, spec: &BackendSpec) -> Result<Arc<dyn BlobStore>> {
        let factory = self.factory(&spec.type_name)?;
        let raw = factory
            .open_blob(spec)
            .await
            .map_err(|e| e.at(spec.type_name.clone(), "connect"))?;
        Ok(Arc::new(crate::layer::ObserveBlobs::new(raw)))
    }

    /// The canonical names of every registered type.
    pub fn types(&self) -> Vec<String> {
        self.factories.keys().cloned().collect()
    }

    /// The canonical name for `name` (an alias resolves to its canonical name), or `None`.
    pub fn canonical_type(&self, name: &str) -> Option<String> {
        self.canonical.get(name).cloned()
    }

    /// Every name accepted, aliases included, sorted.
    pub fn known_types(&self) -> Vec<String> {
        self.canonical.keys().cloned().collect()
    }

    /// Makes `type_name` the backend a role gets when a config leaves the role out.
    pub fn set_role_default(&mut self, role: Role, type_name: impl Into<String>) {
        self.role_defaults[role_index(role)] = Some(type_name.into());
    }

    /// The type a role gets when a config leaves it out, if one is set.
    pub fn role_default(&self, role: Role) -> Option<&str> {
        self.role_defaults[role_index(role)].as_deref()
    }

    /// Sets the fallback chain that a `type_name` block serving `role` gets when it declares
    /// none: the policy of the application (or the manager) that composes the backends, not
    /// of the backend. It replaces what the factory itself declares.
    pub fn set_default_fallback(&mut self, type_name: &str, role: Role, chain: &[&str]) {
        let canonical = self
            .canonical_type(type_name)
            .unwrap_or_else(|| type_name.to_string());
        self.fallback_policy.insert(
            (canonical, role_index(role)),
            chain.iter().map(|t| t.to_string()).collect(),
        );
    }

    /// The fallback chain a `type_name` block serving `role` gets when it declares none: the
    /// one set with [`Registry::set_default_fallback`], else the factory's own (a plugin's),
    /// else none. Types that are not registered are left out.
    pub fn default_fallback(&self, type_name: &str, role: Role) -> Vec<String> {
        let canonical = self
            .canonical_type(type_name)
            .unwrap_or_else(|| type_name.to_string());
        let chain = match self.fallback_policy.get(&(canonical, role_index(role))) {
            Some(chain) => chain.clone(),
            None => self
                .factory(type_name)
                .map(|f| f.default_fallback(role))
                .unwrap_or_default(),
        };
        chain
            .into_iter()
            .filter(|name| self.factory(name).is_ok())
            .collect()
    }
}

fn role_index(role: Role) -> usize {
    match role {
        Role::Cache => 0,
        Role::Database => 1,
        Role::Blob => 2,
    }
}
