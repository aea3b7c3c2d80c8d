//! Opening SQLite from a spec the way an application's registry does, for the tests that
//! build their own specs. Not a test itself.

use std::sync::Arc;
use storage_core::config::BackendSpec;
use storage_core::{Cache, Database, Registry, Result};
use storage_sqlite::SqliteBackend;

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .register_backend::<SqliteBackend>()
        .expect("one registration");
    registry
}

/// The database `spec` describes, with the contract's layers.
pub async fn open_database(spec: &BackendSpec) -> Result<Arc<dyn Database>> {
    registry().open_database(spec).await
}

/// The cache `spec` describes, with the contract's layers.
#[allow(dead_code)] // Not every test file opens a cache.
pub async fn open_cache(spec: &BackendSpec) -> Result<Arc<dyn Cache>> {
    registry().open_cache(spec).await
}
