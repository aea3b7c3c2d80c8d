//! The PostgreSQL backend, registered as `postgresql` (alias `postgres`): the production
//! database shared by many instances, and a cache role with TTLs.
//!
//! It runs on a bb8 pool of tokio-postgres connections, with TLS through rustls (`ssl`,
//! `sslmode`, `sslrootcert`: `require` encrypts, `verify-full` also checks the chain and host).
//!
//! - **Values** are stored as their exact JSON text in a `text` column: JSONB would turn `-0.0`
//!   into `0`, `1e18` into an integer, drop duplicate members, and reject U+0000.
//! - **One kind per key.** set, delete, mset and append all go through the key's row in the key
//!   table, whose row lock serialises them, so no race leaves a key holding a value and a list.
//! - **Lists** are one row per item. The header row holds the length; an append increments it
//!   under the row lock and inserts the item at the old length, so concurrent appends from any
//!   number of instances get a dense sequence with no loss, duplication or gap, and commit in
//!   sequence order. append, `get_length` and tail reads are index lookups.
//! - **keys(pattern)** scans the `"C"`-collated primary key over the pattern's literal prefix
//!   and filters with storage-core's Redis matcher (never LIKE).
//! - **Schema**: versioned and migrated on connect under an advisory lock, in `schema` if given.
//! - **Statements** of the single-statement operations are prepared once per pooled connection
//!   and reused (SQL text is otherwise parsed and planned on every call).
//! - **Time limits**: every operation has `operationTimeoutMillis`; a pool checkout waits at most
//!   `acquireTimeoutMillis`. Transient errors (a dropped connection, admin shutdown, a
//!   serialization failure) are retried for idempotent operations only; append never is.
//!   After a server restart the pool replaces its broken connections by itself.
//!
//! ```no_run
//! # async fn demo() -> storage_core::Result<()> {
//! let source = storage_manager::config_file::from_yaml_str(
//!     "database: { type: postgres, url: 'postgresql://app@127.0.0.1/app' }",
//!     ".".as_ref(),
//! )?;
//! let mut registry = storage_core::Registry::new();
//! registry.register_backend::<storage_postgres::PostgresBackend>()?;
//! let config = source.resolve(&registry)?;
//! let db = registry.open_database(&config.database.primary).await?;
//! db.append("history:1", &serde_json::json!({"role": "user"})).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod backend;
mod blob;
mod conditional;
pub mod config;
mod conninfo;
mod core;
mod feed;
mod pool;
mod schema;
// The statements, for the plan tests and the benchmark's baseline; not an API.
#[doc(hidden)]
pub mod sql;
mod tls;
mod watch;

pub use crate::core::PostgresBackend;
pub use blob::{CHUNK_BYTES, PostgresBlobStore};
pub use config::{PostgresConfig, SslMode, SslSettings, TYPE_NAME};

use async_trait::async_trait;
use serde_json::Value;
use storage_core::Result;
use storage_core::config::{BackendSpec, BlockInput, Role};

/// The factory the registry holds: [`PostgresBackend`], erased by storage-core.
pub type PostgresFactory = storage_core::Typed<PostgresBackend>;

#[async_trait]
impl storage_core::Backend for PostgresBackend {
    type Config = PostgresConfig;
    const TYPE_NAMES: &'static [&'static str] = &[TYPE_NAME, config::ALIAS];

    fn schema() -> Value {
        config::schema()
    }

    fn parse(block: &mut BlockInput<'_>) -> Result<PostgresConfig> {
        PostgresConfig::parse(block)
    }

    async fn open(config: &PostgresConfig, spec: &BackendSpec, _role: Role) -> Result<Self> {
        PostgresBackend::connect(config, spec).await
    }

    const SERVES_BLOBS: bool = true;

    /// Blobs in the same database, as chunk rows, in the block's `keyPrefix` namespace.
    async fn open_blob(
        config: &PostgresConfig,
        spec: &BackendSpec,
    ) -> Result<std::sync::Arc<dyn storage_core::blob::BlobStore>> {
        let db = PostgresBackend::connect(config, spec).await?;
        Ok(std::sync::Arc::new(PostgresBlobStore::new(
            db,
            config.blob_limits,
        )))
    }
}
