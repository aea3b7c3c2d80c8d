//! What the plugin's tests share: a registry holding its backend, as a host builds one. Not a
//! test itself.

use storage_core::Registry;

/// A registry holding the plugin's backend: it opens backends through the same checks and
/// layers the host gives them.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .register_backend::<storage_redb::RedbBackend>()
        .unwrap();
    registry
}
