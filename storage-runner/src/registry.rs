//! The registry the runner builds backends through: the manager's built-in one.

use std::path::Path;
use storage_core::{Registry, Result};

/// Every built-in backend this binary carries.
pub fn build(_config: Option<&Path>) -> Result<Registry> {
    Ok(storage_manager::builtin_registry())
}
