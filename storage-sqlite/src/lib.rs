//! The SQLite backend, registered as `sqlite`: the embedded default database, and a TTL cache
//! for single-machine deployments.
//!
//! It runs on an r2d2 pool of bundled-SQLite connections, and every SQLite call runs on tokio's
//! blocking threads, never on an async worker.
//!
//! - **Files.** WAL mode; writes are `BEGIN IMMEDIATE` transactions, and a writer waits up to
//!   `busyTimeoutMillis` for another process instead of failing, so several processes can share
//!   one file. `synchronous` is `full` by default (a committed write survives power loss);
//!   `normal` survives a crash of the process but may lose the last commits on power loss.
//! - **Group commit.** Writes of one backend that arrive while another is committing share the
//!   next transaction and its flush (up to 128 a transaction), each in a savepoint of its own:
//!   a write still returns only once it is committed, and one that fails (a condition not met,
//!   the wrong type) is rolled back alone. A lone writer is one transaction per write.
//! - **Identity.** The file carries an `application_id` and a schema version; migrations run on
//!   connect. A file of another application, a newer schema, a non-SQLite or corrupt file is
//!   refused with a clear error and never written to.
//! - **Namespaces** are a column, so they are exact.
//! - **Lists** are one row per item with a dense per-key sequence, and a header row that holds
//!   the length: append, `get_length` and tail reads are index lookups, never scans.
//! - **keys(pattern)** scans the index range of the pattern's literal prefix and filters with
//!   storage-core's Redis matcher (LIKE and GLOB would answer differently).
//! - `:memory:` is one in-memory database shared by the whole pool (the `memdb` VFS).
//!
//! It is not a server: for many machines sharing data, use PostgreSQL.
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use storage_sqlite::SqliteConfig;
//! use serde_json::json;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let config = SqliteConfig::file(dir.path().join("app.db"));
//! let db = storage_sqlite::open_with(config, "app").await.unwrap();
//! db.append("history", &json!({"role": "user", "content": "hi"})).await.unwrap();
//! assert_eq!(db.get_length("history").await.unwrap(), 1);
//! # });
//! ```

#![warn(missing_docs)]

mod backend;
mod blob;
mod commit;
mod conditional;
pub mod config;
mod core;
mod feed;
mod open;
mod schema;
// The statements, for the file tests and the benchmark's baseline; not an API.
#[doc(hidden)]
pub mod sql;
mod watch;

pub use blob::{CHUNK_BYTES, SqliteBlobStore};
pub use config::{SqliteConfig, SqliteLocation, SqliteSync, TYPE_NAME};
pub use open::{open, open_in_memory, open_with};
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};

pub use crate::core::SqliteBackend;

use async_trait::async_trait;
use serde_json::Value;
use storage_core::Result;
use storage_core::config::{BackendSpec, BlockInput, Role};

/// The factory the registry holds: [`SqliteBackend`], erased by storage-core.
pub type SqliteFactory = storage_core::Typed<SqliteBackend>;

#[async_trait]
impl storage_core::Backend for SqliteBackend {
    type Config = SqliteConfig;
    const TYPE_NAMES: &'static [&'static str] = &[TYPE_NAME];

    fn schema() -> Value {
        config::schema()
    }

    fn parse(block: &mut BlockInput<'_>) -> Result<SqliteConfig> {
        SqliteConfig::parse(block)
    }

    async fn open(config: &SqliteConfig, spec: &BackendSpec, _role: Role) -> Result<Self> {
        SqliteBackend::connect(config, spec).await
    }

    const SERVES_BLOBS: bool = true;

    /// Blobs in the same file, as chunk rows, in the block's `keyPrefix` namespace.
    async fn open_blob(
        config: &SqliteConfig,
        spec: &BackendSpec,
    ) -> Result<std::sync::Arc<dyn storage_core::blob::BlobStore>> {
        let store =
            SqliteBlobStore::open(config.clone(), &spec.common.key_prefix, config.blob_limits)
                .await?;
        Ok(std::sync::Arc::new(store))
    }
}
