//! The Redis backend, registered as `redis`: the production cache, and a list-capable database.
//!
//! Redis is the reference of the contract, so the backend mostly lets the server decide:
//! values are JSON strings (`SET`/`GET`, TTLs as `PX` milliseconds after storage-core's
//! normalisation), lists are Redis lists (`RPUSH`/`LRANGE`/`LLEN`, appended and trimmed by
//! scripts that keep each list's generation and head in the namespace's `\0lists` hash, for
//! followers: `feed.rs`), and `mget` of a list key gives `None` as `MGET` does.
//!
//! - **Connections.** A bb8 pool of multiplexed redis-rs connections, built by a connection
//!   manager of our own that applies the configured connect and response timeouts and does not
//!   ping on checkout. A multiplexed connection never reports itself broken, so an I/O error
//!   marks it broken and the pool replaces it: after a server restart the backend recovers by
//!   itself. A command takes a connection from the pool and returns it at once, so concurrent
//!   callers pipeline on shared multiplexed connections instead of queueing for one.
//! - **The solo connection** (`solo.rs`; one server over plain TCP or a Unix socket). Beside the
//!   pool, one connection the caller's own task drives: an operation that begins alone on the
//!   backend writes its command and reads the reply itself (redis-rs's encoder and parser), with no
//!   hand-off between tasks; while it is the backend's only operation in flight it polls the socket
//!   for the reply for up to `options.replySpinMicros` (100 µs) before sleeping. A command cut off
//!   before its reply was read (a timeout) retires the connection. At one task this is what puts
//!   the backend level with `redis-benchmark` (see BENCHMARKS.md); [`reply_polling`] counts the
//!   operations whose replies came while they polled and those that slept for one.
//! - **Batches.** `mget` is one `MGET`. `mset` is one round trip: a pipeline on a cache, and
//!   `MULTI`/`EXEC` on a database, which is all-or-nothing.
//! - **Retries.** `maxRetriesPerRequest` retries idempotent commands after transient errors;
//!   an `RPUSH` is never re-sent.
//! - **keys() and clear()** on a database read the namespace's key index (`key_index.rs`: a
//!   sorted set of its keys, started by plain writes, completed by the first `keys` or `clear`
//!   and kept by every write from then on), so a listing by prefix costs what it finds and a `clear` what the namespace
//!   holds, not what the server holds. A cache has no index: it walks `SCAN` with `MATCH` (the
//!   escaped prefix plus the pattern) and de-duplicates. Neither calls `KEYS`; `clear` removes
//!   only this namespace, in batches, with `UNLINK`, never `FLUSHDB`.
//! - **Namespaces** are string prefixes: two namespaces on one server must not nest.
//! - **Redis Cluster** (`cluster: true`): redis-rs's cluster client routes every command by
//!   its key's slot, follows `MOVED`/`ASK` and refreshes the topology after a failover. The
//!   database role keeps a namespace in one hash slot (keys are `{prefix}key`, the prefix a
//!   hash tag), so `mset` stays one `MULTI`/`EXEC`, `keys`/`clear` scan one node and lists
//!   keep their order; different namespaces spread over the cluster. The cache role spreads
//!   keys over slots: `mget` gathers from every slot in order, `mset` is one atomic
//!   pipeline per slot (the batch as a whole is not atomic), and `keys`/`clear` `SCAN` every
//!   primary. An `RPUSH` or `LTRIM` is re-sent only when the cluster's answer (a redirection,
//!   `TRYAGAIN`, `CLUSTERDOWN`, a refused connection) proves it did not run.
//!
//! ```no_run
//! # async fn demo() -> storage_core::Result<()> {
//! let mut registry = storage_core::Registry::new();
//! registry.register_backend::<storage_redis::RedisBackend>()?;
//! registry.register_backend::<storage_memory::MemoryBackend>()?;
//! let source = storage_manager::config_file::from_yaml_str(
//!     "cache: { type: redis, url: 'redis://127.0.0.1:6379', keyPrefix: 'app:cache:' }\ndatabase: { type: in-memory }",
//!     ".".as_ref(),
//! )?;
//! let config = source.resolve(&registry)?;
//! let cache = registry.open_cache(&config.cache.primary).await?;
//! cache.set("session:1", &serde_json::json!({"user": 7}), Some(std::time::Duration::from_secs(3600))).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod backend;
mod cluster;
mod command;
mod conditional;
pub mod config;
mod core;
mod feed;
mod key_index;
mod options;
mod pool;
mod solo;
mod watch;

pub use crate::core::RedisBackend;
pub use config::{RedisConfig, TYPE_NAME};
pub use solo::{ReplyPolling, reply_polling};

use async_trait::async_trait;
use serde_json::Value;
use storage_core::Result;
use storage_core::config::{BackendSpec, BlockInput, Role};

/// The factory the registry holds: [`RedisBackend`], erased by storage-core.
pub type RedisFactory = storage_core::Typed<RedisBackend>;

#[async_trait]
impl storage_core::Backend for RedisBackend {
    type Config = RedisConfig;
    const TYPE_NAMES: &'static [&'static str] = &[TYPE_NAME];

    fn schema() -> Value {
        config::schema()
    }

    fn parse(block: &mut BlockInput<'_>) -> Result<RedisConfig> {
        RedisConfig::parse(block)
    }

    async fn open(config: &RedisConfig, spec: &BackendSpec, role: Role) -> Result<Self> {
        RedisBackend::connect(config, spec, role).await
    }
}
