//! The storage contract, and nothing else.
//!
//! `storage-core` is what every backend of this project — the built-in memory, SQLite,
//! PostgreSQL and Redis crates, and third-party plugins — implements, and what applications
//! program against. It holds no database driver, pool or async runtime (it uses tokio's I/O
//! traits for blob streams, and tokio's timer, when it runs inside tokio, for `update`'s pauses).
//!
//! # The contract
//!
//! Two roles share one keyspace model, borrowed from Redis:
//!
//! - A [`Cache`] stores JSON values with an optional TTL. A [`Database`] stores JSON values
//!   and lists (for chat history), durably, without TTL. Both are object-safe, `Send + Sync`,
//!   and used as `Arc<dyn Cache>` / `Arc<dyn Database>`.
//! - A key is 1 to 1024 bytes of UTF-8 without U+0000, and is matched exactly. A backend's
//!   `keyPrefix` (at most 256 bytes) is its namespace: callers never see it, never reach past it,
//!   and `clear` removes only it.
//! - A value is any [`serde_json::Value`] nested at most 64 deep, and comes back exactly
//!   (integers stay integers, floats bit for bit, `-0.0` included), object members in the
//!   order they were stored.
//! - A key holds a value or a list, never both: `set` replaces a list, `get` of a list and
//!   `append` to a value are wrong-type errors, and `mget` gives `None` for a list.
//! - `get_range` is Redis `LRANGE` ([`raw::lrange_window`]); `append` and tail reads never scan or
//!   rewrite a list; concurrent appends are all kept, in commit order.
//! - `keys(pattern)` uses Redis's own glob matcher ([`raw::glob_match`]).
//! - A TTL is rounded up to whole milliseconds; zero, or over 2^53-1 ms, is invalid
//!   ([`raw::normalize_ttl`]). An expired key is invisible to every operation.
//! - Every failure is an [`Error`] with an [`ErrorKind`]; messages name the backend and the
//!   operation and never a password. Nothing panics, and nothing waits past its timeout.
//!
//! `docs/semantics.md` in the repository is the full text; the [`layer::Validate`] layer applies
//! the input rules to any backend, and the conformance kit (`storage-testkit`) checks the rest.
//!
//! # What is here
//!
//! For applications:
//! - the traits ([`Store`], [`Cache`], [`Database`]) and typed helpers ([`StoreExt`], ...), all
//!   in the [`prelude`];
//! - the error type ([`Error`], [`ErrorKind`]);
//! - versions and conditional writes ([`Version`], [`Condition`], [`DatabaseExt::update`]);
//! - the blob role ([`blob`]);
//! - the configuration ([`config`]) and the [`Registry`] of backend factories;
//! - the metric names ([`telemetry`]).
//!
//! For backend and plugin authors, in [`raw`]: the helpers that define the semantics
//! (`validate_key`, `normalize_ttl`, `glob_match`, `literal_prefix`, `lrange_window`, ...),
//! which every backend calls, and the limits; the layers (the contract's own and the
//! forwarding traits a new one implements) are in [`layer`]; the runtime plugin declaration
//! and [`declare_plugin!`] are in [`plugin`].
//!
//! # Example
//!
//! ```
//! use storage_core::prelude::*;
//!
//! /// Keeps a chat history: the last 100 turns.
//! async fn remember(db: &dyn Database, chat: &str, turn: Value) -> Result<Vec<Value>> {
//!     db.append(chat, &turn).await?;
//!     db.trim(chat, -100, -1).await?;
//!     db.get_range(chat, -20, -1).await
//! }
//! ```

#![warn(missing_docs)]

// The build script's fingerprint and version code, for the tests that check them.
#[cfg(test)]
#[path = "../abi_fingerprint.rs"]
mod abi_fingerprint;
mod backend;
pub mod blob;
mod blob_io;
mod closable;
pub mod config;
mod encode;
mod error;
pub mod feed;
mod glob;
pub mod json;
pub mod layer;
mod limits;
pub mod plugin;
mod range;
pub mod redact;
mod registry;
mod retry;
#[cfg(test)]
#[path = "../serde_json_version.rs"]
mod serde_json_version;
pub mod telemetry;
mod typed;
mod update;
mod version;
pub mod watch;
mod write_queue;

pub use backend::{
    Cache, CacheEntry, CacheExt, Database, DatabaseExt, KeyKind, KeyTtl, ListWindow, Store,
    StoreExt,
};
pub use config::Role;
pub use error::{Error, ErrorKind, Outcome, Result, Status};
pub use registry::{BackendFactory, Registry};
pub use typed::{Backend, Typed};
pub use update::UpdatePolicy;
pub use version::{Condition, Conflict, Version};

/// For backend and plugin authors: the helpers that define the contract's semantics (every
/// backend calls them rather than reimplementing them), the limits, and the contract's layers
/// around a backend built by hand ([`raw::checked_cache`], [`raw::checked_database`]). An
/// application does not need this module.
///
/// ```
/// use storage_core::raw::{glob_match, lrange_window, normalize_ttl, validate_key};
/// use std::time::Duration;
///
/// assert!(validate_key("session:42").is_ok());
/// assert!(glob_match("session:*", "session:42"));
/// assert_eq!(lrange_window(100, -20, -1), Some((80, 99)));
/// assert_eq!(normalize_ttl(Duration::from_micros(10)).unwrap(), 1);
/// ```
pub mod raw {
    pub use crate::blob_io::{
        BLOB_BUFFER_BYTES, BlobHasher, Hashed, Verified, check_total, copy_hashed, too_large,
    };
    pub use crate::closable::Closable;
    pub use crate::encode::{EncodedEntry, encode_cache_entries, encode_entries, encode_value};
    pub use crate::glob::{
        escape_glob, glob_match, glob_match_bytes, literal_prefix, prefix_upper_bound,
    };
    pub use crate::layer::{checked_cache, checked_database};
    pub use crate::limits::{
        MAX_KEY_BYTES, MAX_KEY_PREFIX_BYTES, MAX_PORTABLE_VALUE_BYTES, MAX_TTL_MILLIS,
        MAX_VALUE_DEPTH, normalize_ttl, validate_key, validate_key_prefix, validate_value,
        value_depth,
    };
    pub use crate::range::lrange_window;
    pub use crate::retry::{Resend, RetryPolicy};
    pub use crate::write_queue::{WriteAnswer, WriteQueue, WriteReply};
}

/// What an application needs in scope: the traits with their typed helpers, the error, the
/// entry type of a cache batch, and `serde_json`'s `Value` and `json!`.
///
/// ```
/// use storage_core::prelude::*;
///
/// async fn remember(db: &dyn Database) -> Result<()> {
///     db.set_as("user:1", &json!({"name": "Ada"})).await?;
///     let name: Option<Value> = db.get_as("user:1").await?;
///     assert!(name.is_some());
///     Ok(())
/// }
/// ```
pub mod prelude {
    pub use crate::{
        Cache, CacheEntry, CacheExt, Condition, Database, DatabaseExt, Error, ErrorKind, KeyKind,
        KeyTtl, Outcome, Result, Status, Store, StoreExt, Version,
    };
    pub use serde_json::{Value, json};
}

/// Re-exported so that backends and plugins use the exact same `serde_json` and `async_trait`.
pub use async_trait::async_trait;
pub use serde_json;
