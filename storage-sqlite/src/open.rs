//! One-line openers for an application that uses SQLite alone, without a config file or the
//! manager: the database role on a file or in memory, opened through a registry as every
//! backend is (so it has the contract's layers). Not for the cache role or fallback chains:
//! those come from a config through `storage-manager`, or from [`storage_core::Registry`].

use crate::config::SqliteConfig;
use crate::core::SqliteBackend;
use std::path::PathBuf;
use std::sync::Arc;
use storage_core::config::BackendSpec;
use storage_core::{Database, Error, Registry, Result};

/// The database at `path` (created with its directory if missing), in the empty namespace.
///
/// Needs a tokio runtime (SQLite runs on tokio's blocking threads); outside one it returns an
/// error, it does not panic.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> storage_core::Result<()> {
/// use storage_core::prelude::*;
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("chat.db");
/// let db = storage_sqlite::open(&path).await?;
/// db.append("chat:1", &json!({"role": "user", "content": "hi"})).await?;
/// assert_eq!(db.get_length("chat:1").await?, 1);
/// # Ok(()) }
/// ```
pub async fn open(path: impl Into<PathBuf>) -> Result<Arc<dyn Database>> {
    open_with(SqliteConfig::file(path), "").await
}

/// A private in-memory database, gone when the last handle drops (tests, scratch work).
pub async fn open_in_memory() -> Result<Arc<dyn Database>> {
    open_with(SqliteConfig::memory(), "").await
}

/// The database with `config`'s settings, in the namespace `key_prefix`.
pub async fn open_with(config: SqliteConfig, key_prefix: &str) -> Result<Arc<dyn Database>> {
    let spec = BackendSpec::new(config).with_key_prefix(key_prefix);
    let mut registry = Registry::new();
    registry.register_backend::<SqliteBackend>()?;
    registry.open_database(&spec).await
}

/// An error (not tokio's panic) when called outside a tokio runtime.
pub(crate) fn require_runtime() -> Result<()> {
    tokio::runtime::Handle::try_current().map(drop).map_err(|_| {
        Error::unsupported(
            "the sqlite backend runs on tokio's blocking threads: call it from inside a tokio runtime (for example under #[tokio::main])",
        )
    })
}
