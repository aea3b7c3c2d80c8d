//! The registry of built-in backends that this build's features select.

use storage_core::Registry;

/// A registry holding every built-in backend compiled in: `in-memory`, `sqlite` and `local`
/// (blobs) by default, `postgresql`, `redis` and `s3` (blobs) with their features. A role left out of a
/// config gets `in-memory` (cache), `sqlite` (database) or `local` (blob); a block without
/// `fallback` gets the default chain set here.
pub fn builtin_registry() -> Registry {
    let mut registry = Registry::new();
    // Built-in names never collide with each other.
    #[cfg(feature = "memory")]
    registry
        .register_backend::<storage_memory::MemoryBackend>()
        .expect("built-in backends have distinct names");
    #[cfg(feature = "sqlite")]
    registry
        .register_backend::<storage_sqlite::SqliteBackend>()
        .expect("built-in backends have distinct names");
    #[cfg(feature = "postgres")]
    registry
        .register_backend::<storage_postgres::PostgresBackend>()
        .expect("built-in backends have distinct names");
    #[cfg(feature = "redis")]
    registry
        .register_backend::<storage_redis::RedisBackend>()
        .expect("built-in backends have distinct names");
    #[cfg(feature = "local")]
    registry
        .register(std::sync::Arc::new(storage_local::LocalFactory))
        .expect("built-in backends have distinct names");
    #[cfg(feature = "s3")]
    registry
        .register(std::sync::Arc::new(storage_s3::S3Factory))
        .expect("built-in backends have distinct names");
    // The fallback policy: a server that does not answer falls back to what is embedded (a
    // PostgreSQL database to SQLite, then memory; everything else to memory). It lives here,
    // where the backends are composed, and not in any backend. Entries not compiled in are
    // left out when a chain is built.
    for role in [storage_core::Role::Cache, storage_core::Role::Database] {
        registry.set_default_fallback("sqlite", role, &["in-memory"]);
        registry.set_default_fallback("redis", role, &["in-memory"]);
    }
    registry.set_default_fallback("postgresql", storage_core::Role::Cache, &["in-memory"]);
    registry.set_default_fallback(
        "postgresql",
        storage_core::Role::Database,
        &["sqlite", "in-memory"],
    );
    registry.set_default_fallback("local", storage_core::Role::Blob, &["in-memory"]);
    registry.set_default_fallback("s3", storage_core::Role::Blob, &["local", "in-memory"]);
    // The embedded default: a memory cache and a SQLite database, when compiled in.
    #[cfg(feature = "memory")]
    registry.set_role_default(storage_core::Role::Cache, storage_memory::TYPE_NAME);
    #[cfg(feature = "sqlite")]
    registry.set_role_default(storage_core::Role::Database, storage_sqlite::TYPE_NAME);
    // Blobs as files under `.storage/blobs`.
    #[cfg(feature = "local")]
    registry.set_role_default(storage_core::Role::Blob, storage_local::TYPE_NAME);
    registry
}
