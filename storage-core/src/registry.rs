//! The backend registry: type names to factories.

use crate::backend::{Cache, Database};
use crate::checked::Checked;
use crate::config::{BackendSpec, Role, TypeNames};
use crate::error::{Error, Result};
use crate::limits::validate_key_prefix;
use async_trait::async_trait;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// What a backend crate exports: its names, its options' schema, and constructors.
///
/// Constructors return a connected backend, or an error that the manager's fallback walk can
/// report. They need not validate keys or values: the registry wraps what they return in
/// [`Checked`].
#[async_trait]
pub trait BackendFactory: Send + Sync {
    /// The canonical type name first, then aliases (`["postgresql", "postgres"]`).
    fn type_names(&self) -> Vec<String>;

    /// The roles it serves.
    fn roles(&self) -> Vec<Role>;

    /// The JSON Schema of its `options` map.
    fn options_schema(&self) -> Value {
        serde_json::json!({ "type": "object" })
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
}

/// Opens a cache through `factory`, checking the namespace first and wrapping the result in
/// [`Checked`]. Use this (or [`Registry::open_cache`]) rather than the factory directly.
pub async fn open_cache(
    factory: &dyn BackendFactory,
    spec: &BackendSpec,
) -> Result<Arc<dyn Cache>> {
    validate_key_prefix(&spec.common.key_prefix)
        .map_err(|e| e.at(spec.type_name.clone(), "connect"))?;
    let raw = factory
        .open_cache(spec)
        .await
        .map_err(|e| e.at(spec.type_name.clone(), "connect"))?;
    Ok(Arc::new(Checked::new(raw)))
}

/// Opens a database through `factory`; see [`open_cache`].
pub async fn open_database(
    factory: &dyn BackendFactory,
    spec: &BackendSpec,
) -> Result<Arc<dyn Database>> {
    validate_key_prefix(&spec.common.key_prefix)
        .map_err(|e| e.at(spec.type_name.clone(), "connect"))?;
    let raw = factory
        .open_database(spec)
        .await
        .map_err(|e| e.at(spec.type_name.clone(), "connect"))?;
    Ok(Arc::new(Checked::new(raw)))
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

    /// The canonical names of every registered type.
    pub fn types(&self) -> Vec<String> {
        self.factories.keys().cloned().collect()
    }
}

impl TypeNames for Registry {
    fn canonical_type(&self, name: &str) -> Option<String> {
        self.canonical.get(name).cloned()
    }
    fn known_types(&self) -> Vec<String> {
        self.canonical.keys().cloned().collect()
    }
}
