//! The registry the runner builds backends through: the manager's built-in one, plus the
//! plugins a config file names.

use std::path::Path;
use storage_core::{Registry, Result};

/// Every built-in backend this binary carries, and the config's plugins.
pub fn build(config: Option<&Path>) -> Result<Registry> {
    let mut registry = storage_manager::builtin_registry();
    if let Some(path) = config {
        for plugin in storage_manager::config_file::from_file(path)?.plugins() {
            storage_manager::load_plugin(plugin, &mut registry)?;
        }
    }
    Ok(registry)
}
