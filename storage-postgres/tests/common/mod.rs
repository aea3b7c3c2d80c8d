//! What the PostgreSQL integration tests share: a registry of the PostgreSQL backend, a
//! configuration resolved against it, and a private server (or a loud skip without
//! PostgreSQL). Not a test file of its own.

#![allow(dead_code)] // each test file uses what it needs

use std::sync::Arc;
use storage_core::config::StorageConfig;
use storage_core::{Registry, Result};
use storage_servers::{Postgres, PostgresOptions, find_postgres_bin, skip_or_fail};

/// A registry of the PostgreSQL backend alone.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .register(Arc::new(storage_postgres::PostgresFactory::new()))
        .unwrap();
    registry
}

/// `yaml` (both roles, each a PostgreSQL block) resolved against [`registry`].
pub fn resolved(yaml: &str) -> Result<(Registry, StorageConfig)> {
    let registry = registry();
    let config =
        storage_manager::config_file::from_yaml_str(yaml, ".".as_ref())?.resolve(&registry)?;
    Ok((registry, config))
}

/// A private server started with `options` for `test`, or `None` after saying why (failing
/// under CI).
pub fn private(test: &str, options: &PostgresOptions) -> Option<Postgres> {
    if find_postgres_bin().is_none() {
        skip_or_fail(test, "no PostgreSQL installed");
        return None;
    }
    Some(Postgres::start(options).expect("start a private PostgreSQL"))
}
