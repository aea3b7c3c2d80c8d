//! Runnable examples of the storage layer, one binary each (`cargo run -p storage-examples
//! --bin NAME`), run by this crate's tests in CI:
//!
//! - `chat_history`: an application that uses SQLite alone, through `storage_sqlite::open`,
//!   keeping a bounded chat history.
//! - `app_from_config`: an application whose storage comes from a config file through the
//!   manager (fallback chain, status), with cache-aside reads and writes.
//! - `read_only_layer`: a layer of the application's own (a read-only view of both roles),
//!   written over the forwarding traits and given to the manager with `with_layer`.
//! - `prometheus`: the project's metrics served in Prometheus's text format while a small
//!   workload runs.
//!
//! This library is empty: the examples are the binaries.
