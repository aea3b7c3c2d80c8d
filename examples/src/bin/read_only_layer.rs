//! A layer of the application's own, used through the manager: a read-only view of both roles,
//! for a reporting job that must never change what the agents stored.
//!
//! ```text
//! cargo run -p storage-examples --bin read_only_layer
//! ```
//!
//! It writes a short chat history with an ordinary manager (the embedded default, in the
//! current directory), then opens the same storage with `ReadOnly` layered on, reads the
//! history back, and shows that a write through the layer is refused, with nothing changed.
//!
//! The layer writes only the operations it changes; every other one (`get`, `get_range`,
//! `keys`, and any operation the contract gains later) passes through by default.

use std::sync::Arc;
use storage_core::async_trait;
use storage_core::layer::{ForwardCache, ForwardDatabase, ForwardStore, Layer};
use storage_core::prelude::*;
use storage_manager::StorageManager;

/// Wraps each role in a [`ReadOnlyStore`].
struct ReadOnly;

impl Layer for ReadOnly {
    fn layer_cache(&self, inner: Arc<dyn Cache>) -> Arc<dyn Cache> {
        Arc::new(ReadOnlyStore {
            store: inner.clone(),
            inner,
        })
    }
    fn layer_database(&self, inner: Arc<dyn Database>) -> Arc<dyn Database> {
        Arc::new(ReadOnlyStore {
            store: inner.clone(),
            inner,
        })
    }
}

/// A store whose writes are refused; `S` is `dyn Cache` or `dyn Database`, and `store` the
/// same store seen through the operations both roles share.
#[derive(Debug)]
struct ReadOnlyStore<S: ?Sized> {
    store: Arc<dyn Store>,
    inner: Arc<S>,
}

fn refused(op: &str, key: &str) -> Error {
    Error::unsupported(format!("{op} {key:?}: this view is read-only"))
}

#[async_trait]
impl<S: ?Sized + std::fmt::Debug + Send + Sync> ForwardStore for ReadOnlyStore<S> {
    fn inner_store(&self) -> &dyn Store {
        &*self.store
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        Err(refused("delete", key))
    }
    async fn clear(&self) -> Result<()> {
        Err(refused("clear", "*"))
    }
}

#[async_trait]
impl ForwardCache for ReadOnlyStore<dyn Cache> {
    fn inner_cache(&self) -> &dyn Cache {
        &*self.inner
    }
    async fn set(&self, key: &str, _: &Value, _: Option<std::time::Duration>) -> Result<()> {
        Err(refused("set", key))
    }
    async fn mset(&self, entries: &[CacheEntry]) -> Result<()> {
        Err(refused("mset", entries.first().map_or("", |e| &e.key)))
    }
}

#[async_trait]
impl ForwardDatabase for ReadOnlyStore<dyn Database> {
    fn inner_database(&self) -> &dyn Database {
        &*self.inner
    }
    async fn set(&self, key: &str, _: &Value) -> Result<()> {
        Err(refused("set", key))
    }
    async fn set_owned(&self, key: &str, _: Value) -> Result<()> {
        Err(refused("set", key))
    }
    async fn mset(&self, entries: &[(String, Value)]) -> Result<()> {
        Err(refused("mset", entries.first().map_or("", |e| &e.0)))
    }
    async fn append(&self, key: &str, _: &Value) -> Result<()> {
        Err(refused("append", key))
    }
    async fn append_many(&self, key: &str, _: &[Value]) -> Result<()> {
        Err(refused("append", key))
    }
    async fn trim(&self, key: &str, _: i64, _: i64) -> Result<()> {
        Err(refused("trim", key))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let dir = std::env::current_dir().map_err(|e| Error::other(e.to_string()))?;
    let key = "chat:report";

    let writer = StorageManager::embedded_default(&dir)?;
    let (db, _) = writer.connect_database().await?;
    db.delete(key).await?;
    for turn in ["hello", "how are you?", "fine, thanks"] {
        db.append(key, &json!(turn)).await?;
    }
    writer.disconnect().await?;

    let reader = StorageManager::embedded_default(&dir)?.with_layer(ReadOnly);
    let (db, status) = reader.connect_database().await?;
    let turns = db.get_range(key, 0, -1).await?;
    println!(
        "read {} turn(s) through the read-only layer over {}",
        turns.len(),
        status.serving.as_deref().unwrap_or("nothing")
    );
    match db.append(key, &json!("sneaky")).await {
        Ok(()) => println!("append: accepted (the layer did not apply)"),
        Err(e) => println!("append: refused: {e}"),
    }
    let (cache, _) = reader.connect_cache().await?;
    match cache.set("k", &json!(1), None).await {
        Ok(()) => println!("cache set: accepted (the layer did not apply)"),
        Err(e) => println!("cache set: refused: {e}"),
    }
    println!("still {} turn(s)", db.get_length(key).await?);
    reader.disconnect().await?;
    Ok(())
}
