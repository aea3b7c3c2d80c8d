//! The registry the runner builds backends through.

use std::path::Path;
use std::sync::Arc;
use storage_core::{Registry, Result};

/// Every built-in backend this binary carries.
pub fn build(_config: Option<&Path>) -> Result<Registry> {
    let mut registry = Registry::new();
    registry.register(Arc::new(storage_memory::MemoryFactory))?;
    registry.register(Arc::new(storage_sqlite::SqliteFactory))?;
    Ok(registry)
}
