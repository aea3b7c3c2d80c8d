//! The plugin side of runtime plugins.
//!
//! A plugin library carries its own copy of tokio, so a future that uses tokio (a timer, a
//! spawned task, a socket) fails with "no reactor running" when the host's runtime polls it. And
//! a panic inside the plugin must not unwind into the host. [`bridged`] wraps a
//! [`BackendFactory`] so that both are handled for the author:
//!
//! - every operation runs as a task on a multi-threaded runtime that the plugin owns (one per
//!   library, started on first use), and its result comes back to the host through a
//!   runtime-neutral oneshot channel;
//! - panics are caught around every call and every poll, and become [`ErrorKind::Plugin`]
//!   errors.
//!
//! It is not needed (and not useful) for backends compiled into the host.
//!
//! ```text
//! fn register(registrar: &mut storage_core::plugin::PluginRegistrar) {
//!     registrar.add(storage_plugin::bridged(MyFactory));
//! }
//! storage_core::declare_plugin!(register);
//! ```
//!
//! [`ErrorKind::Plugin`]: storage_core::ErrorKind::Plugin

#![warn(missing_docs)]

use async_trait::async_trait;
use futures::FutureExt;
use serde_json::Value;
use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use storage_core::config::{BackendConfig, BackendSpec, BlockInput, Role};
use storage_core::{
    BackendFactory, Cache, CacheEntry, Database, Error, KeyKind, KeyTtl, Result, Store,
};

/// The plugin's own runtime: one per loaded library (each library has its own statics).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("storage-plugin")
            .enable_all()
            .build()
            .expect("the plugin's runtime starts")
    })
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

fn panicked(payload: Box<dyn Any + Send>) -> Error {
    Error::plugin(format!(
        "the plugin panicked: {}",
        panic_message(payload.as_ref())
    ))
}

/// Runs `fut` on the plugin's runtime and awaits its result from any executor.
pub async fn on_plugin_runtime<T: Send + 'static>(
    fut: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = futures::channel::oneshot::channel();
    let spawned = std::panic::catch_unwind(AssertUnwindSafe(|| {
        runtime().spawn(async move {
            let out = AssertUnwindSafe(fut)
                .catch_unwind()
                .await
                .unwrap_or_else(|p| Err(panicked(p)));
            let _ = tx.send(out);
        })
    }));
    if let Err(p) = spawned {
        return Err(panicked(p));
    }
    // Polled by the host's executor: the channel needs no reactor; a panic in a poll is caught.
    AssertUnwindSafe(rx)
        .catch_unwind()
        .await
        .map_err(panicked)?
        .unwrap_or_else(|_| Err(Error::plugin("the plugin dropped an operation")))
}

/// Wraps a factory so that it, and every backend it opens, runs on the plugin's runtime.
pub fn bridged(factory: impl BackendFactory + 'static) -> Arc<dyn BackendFactory> {
    Arc::new(BridgedFactory(Arc::new(factory)))
}

struct BridgedFactory<F>(Arc<F>);

fn guard<T>(f: impl FnOnce() -> T, fallback: T) -> T {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

#[async_trait]
impl<F: BackendFactory + 'static> BackendFactory for BridgedFactory<F> {
    fn type_names(&self) -> Vec<String> {
        guard(|| self.0.type_names(), Vec::new())
    }

    fn roles(&self) -> Vec<Role> {
        guard(|| self.0.roles(), Vec::new())
    }

    fn parse(&self, block: &mut BlockInput<'_>) -> Result<Arc<dyn BackendConfig>> {
        // Parsing is synchronous and needs no runtime; only a panic has to be contained.
        std::panic::catch_unwind(AssertUnwindSafe(|| self.0.parse(block)))
            .unwrap_or_else(|p| Err(panicked(p)))
    }

    fn schema(&self) -> Value {
        guard(|| self.0.schema(), Value::Null)
    }

    fn default_fallback(&self, role: Role) -> Vec<String> {
        guard(|| self.0.default_fallback(role), Vec::new())
    }

    async fn open_cache(&self, spec: &BackendSpec) -> Result<Arc<dyn Cache>> {
        let (factory, spec) = (self.0.clone(), spec.clone());
        let inner = on_plugin_runtime(async move { factory.open_cache(&spec).await }).await?;
        Ok(Arc::new(Bridged(inner)))
    }

    async fn open_database(&self, spec: &BackendSpec) -> Result<Arc<dyn Database>> {
        let (factory, spec) = (self.0.clone(), spec.clone());
        let inner = on_plugin_runtime(async move { factory.open_database(&spec).await }).await?;
        Ok(Arc::new(Bridged(inner)))
    }
}

/// A backend whose every operation runs on the plugin's runtime.
struct Bridged<B: ?Sized>(Arc<B>);

impl<B: fmt::Debug + ?Sized> fmt::Debug for Bridged<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Forwards a call to the inner backend on the plugin's runtime.
macro_rules! forward {
    ($self:ident, |$b:ident| $call:expr) => {{
        let $b = $self.0.clone();
        on_plugin_runtime(async move { $call.await }).await
    }};
}

#[async_trait]
impl<B: Store + ?Sized + 'static> Store for Bridged<B> {
    fn backend(&self) -> &str {
        self.0.backend()
    }
    async fn get(&self, key: &str) -> Result<Option<Value>> {
        let key = key.to_string();
        forward!(self, |b| b.get(&key))
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        let key = key.to_string();
        forward!(self, |b| b.delete(&key))
    }
    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Value>>> {
        let keys = keys.to_vec();
        forward!(self, |b| b.mget(&keys))
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        let key = key.to_string();
        forward!(self, |b| b.exists(&key))
    }
    async fn kind(&self, key: &str) -> Result<KeyKind> {
        let key = key.to_string();
        forward!(self, |b| b.kind(&key))
    }
    async fn keys(&self, pattern: Option<&str>) -> Result<Vec<String>> {
        let pattern = pattern.map(str::to_string);
        forward!(self, |b| b.keys(pattern.as_deref()))
    }
    async fn clear(&self) -> Result<()> {
        forward!(self, |b| b.clear())
    }
    async fn ping(&self) -> Result<()> {
        forward!(self, |b| b.ping())
    }
    async fn close(&self) -> Result<()> {
        forward!(self, |b| b.close())
    }
}

#[async_trait]
impl<B: Cache + ?Sized + 'static> Cache for Bridged<B> {
    async fn set(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<()> {
        let (key, value) = (key.to_string(), value.clone());
        forward!(self, |b| b.set(&key, &value, ttl))
    }
    async fn mset(&self, entries: &[CacheEntry]) -> Result<()> {
        let entries = entries.to_vec();
        forward!(self, |b| b.mset(&entries))
    }
    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        let key = key.to_string();
        forward!(self, |b| b.ttl(&key))
    }
}

#[async_trait]
impl<B: Database + ?Sized + 'static> Database for Bridged<B> {
    async fn set(&self, key: &str, value: &Value) -> Result<()> {
        let (key, value) = (key.to_string(), value.clone());
        forward!(self, |b| b.set(&key, &value))
    }
    async fn set_owned(&self, key: &str, value: Value) -> Result<()> {
        let key = key.to_string();
        forward!(self, |b| b.set_owned(&key, value))
    }
    async fn mset(&self, entries: &[(String, Value)]) -> Result<()> {
        let entries = entries.to_vec();
        forward!(self, |b| b.mset(&entries))
    }
    async fn append(&self, key: &str, value: &Value) -> Result<()> {
        let (key, value) = (key.to_string(), value.clone());
        forward!(self, |b| b.append(&key, &value))
    }
    async fn append_many(&self, key: &str, values: &[Value]) -> Result<()> {
        let (key, values) = (key.to_string(), values.to_vec());
        forward!(self, |b| b.append_many(&key, &values))
    }
    async fn get_range(&self, key: &str, start: i64, end: i64) -> Result<Vec<Value>> {
        let key = key.to_string();
        forward!(self, |b| b.get_range(&key, start, end))
    }
    async fn get_length(&self, key: &str) -> Result<u64> {
        let key = key.to_string();
        forward!(self, |b| b.get_length(&key))
    }
    async fn trim(&self, key: &str, start: i64, end: i64) -> Result<()> {
        let key = key.to_string();
        forward!(self, |b| b.trim(&key, start, end))
    }
}
