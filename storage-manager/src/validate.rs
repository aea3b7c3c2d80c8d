//! The checks of a configuration that need the registry or see several roles at once: every
//! type registered and serving its role, no two roles sharing a namespace on one server, and the
//! role-wide fields (`nearCache`, `cacheAside`) only in the blocks they belong to. Not the
//! per-field checks, which the config parser does as it reads.

use crate::namespaces_clash;
use storage_core::config::{BackendSpec, Role, StorageConfig};
use storage_core::{Error, Registry, Result};

/// Checks `config` against `registry` (see [`crate::StorageManager::validate_config`]).
pub(crate) fn validate(config: &StorageConfig, registry: &Registry) -> Result<()> {
    for role in config.roles() {
        for spec in config
            .role(role)
            .into_iter()
            .flat_map(|r| r.fallback.iter())
        {
            if spec.common.near_cache.is_some() {
                return Err(Error::config(format!(
                    "{}.nearCache: a near cache is the role's, whichever backend serves it: give it in the primary block",
                    spec.path
                )));
            }
            if spec.common.cache_aside.is_some() {
                return Err(Error::config(format!(
                    "{}.cacheAside: cache-aside settings are the role's, whichever backend serves it: give them in the primary block",
                    spec.path
                )));
            }
        }
        if role == Role::Blob
            && let Some(spec) = config
                .role(role)
                .filter(|r| r.primary.common.near_cache.is_some())
        {
            return Err(Error::config(format!(
                "{}.nearCache: the blob role has no near cache",
                spec.primary.path
            )));
        }
        if role != Role::Cache
            && let Some(spec) = config
                .role(role)
                .filter(|r| r.primary.common.cache_aside.is_some())
        {
            return Err(Error::config(format!(
                "{}.cacheAside: only the cache role loads aside (give it in storage.cache)",
                spec.primary.path
            )));
        }
        for spec in config.role(role).into_iter().flat_map(|r| r.chain()) {
            let factory = registry
                .factory(&spec.type_name)
                .map_err(|e| Error::config(format!("{}.type: {}", spec.path, e.message())))?;
            if !factory.roles().contains(&role) {
                return Err(Error::config(format!(
                    "{}: {} does not serve the {role} role",
                    spec.path, spec.type_name
                )));
            }
        }
    }
    for c in config.cache.chain() {
        for d in config.database.chain() {
            check_shared_server(c, d)?;
        }
    }
    Ok(())
}

/// Refuses two roles whose namespaces can see each other's keys.
fn check_shared_server(a: &BackendSpec, b: &BackendSpec) -> Result<()> {
    if let Some(clash) = namespaces_clash(a, b) {
        let (pa, pb) = (&a.common.key_prefix, &b.common.key_prefix);
        return Err(Error::config(format!(
            "{} ({a}) and {} ({b}) reach the same data with keyPrefixes {pa:?} and {pb:?}, which {}; give each role its own keyPrefix",
            a.path,
            b.path,
            clash.verb()
        )));
    }
    Ok(())
}
