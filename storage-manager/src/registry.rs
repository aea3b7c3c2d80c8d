//! The registry of built-in backends that this build's features select.

use std::sync::Arc;
use storage_core::Registry;

/// A registry holding every built-in backend compiled in: `in-memory` and `sqlite` by default,
/// `postgresql` and `redis` with their features. A role left out of a config gets `in-memory`
/// (cache) or `sqlite` (database).
pub fn builtin_registry() -> Registry {
    let mut registry = Registry::new();
    let mut add = |factory: Arc<dyn storage_core::BackendFactory>| {
        // Built-in names never collide with each other.
        registry
            .register(factory)
            .expect("built-in backends have distinct names");
    };
    #[cfg(feature = "memory")]
    add(Arc::new(storage_memory::MemoryFactory));
    #[cfg(feature = "sqlite")]
    add(Arc::new(storage_sqlite::SqliteFactory));
    #[cfg(feature = "postgres")]
    add(Arc::new(storage_postgres::PostgresFactory));
    #[cfg(feature = "redis")]
    add(Arc::new(storage_redis::RedisFactory));
    let _ = &mut add;
    // The embedded default: a memory cache and a SQLite database, when compiled in.
    #[cfg(feature = "memory")]
    registry.set_role_default(storage_core::Role::Cache, storage_memory::TYPE_NAME);
    #[cfg(feature = "sqlite")]
    registry.set_role_default(storage_core::Role::Database, storage_sqlite::TYPE_NAME);
    registry
}
