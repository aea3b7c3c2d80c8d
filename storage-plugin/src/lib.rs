//! The plugin side of runtime plugins.
//!
//! A plugin library carries its own copy of tokio, so a future that uses tokio (a timer, a
//! spawned task, a socket) fails with "no reactor running" when the host's runtime polls it. And
//! a panic inside the plugin must not unwind into the host. [`bridged`] wraps a
//! [`BackendFactory`] so that both are handled for the author:
//!
//! - every operation runs in the context of a multi-threaded runtime that the plugin owns (one
//!   per library, started on first use): the host's executor polls it where it is awaited, with
//!   the plugin's runtime entered, and the plugin's worker threads drive its timers and sockets
//!   (see [`on_plugin_runtime`]);
//! - panics are caught around every call and every poll, and become [`ErrorKind::Plugin`]
//!   errors;
//! - a blob store's operations and the streams it returns cross the same way (`blob.rs`).
//!
//! [`block_in_place`] runs a plugin's blocking work on the caller's thread where the host's
//! executor can spare it (see the [`blocking`] module).
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

mod blob;
pub mod blocking;
pub use blocking::block_in_place;

use async_trait::async_trait;
use serde_json::Value;
use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use storage_core::blob::BlobStore;
use storage_core::config::{BackendConfig, BackendSpec, BlockInput, Role};
use storage_core::layer::{AsStore, Call, ForwardCache, ForwardDatabase, ForwardStore};
use storage_core::{BackendFactory, Cache, Database, Error, Result, Store};

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

/// Runs `fut` in the plugin's runtime context and awaits its result from any executor.
///
/// The future is polled where it is awaited, on the host's thread, with the plugin's runtime
/// entered for each poll: timers, sockets and `spawn_blocking` inside it register with the
/// plugin's runtime, whose worker threads drive them and wake the host's task. No thread handoff
/// happens per operation (a task handed to another runtime and its result sent back cost two
/// thread wake-ups, tens of microseconds, on every call). A panic in a poll, or in dropping the
/// future, is caught and becomes an error.
pub async fn on_plugin_runtime<T>(fut: impl Future<Output = Result<T>> + Send) -> Result<T> {
    InPluginContext {
        fut: Some(Box::pin(fut)),
    }
    .await
}

/// A future polled, and dropped, with the plugin's runtime entered. It holds an already boxed
/// future (`Unpin`), so that an operation's boxed call crosses without a second allocation.
struct InPluginContext<F> {
    fut: Option<F>,
}

impl<T, F: Future<Output = Result<T>> + Unpin> Future for InPluginContext<F> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = &mut *self;
        if this.fut.is_none() {
            return Poll::Ready(Err(Error::plugin(
                "a plugin operation was polled after it ended",
            )));
        }
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let _entered = runtime().enter();
            let fut = this.fut.as_mut().expect("checked above");
            let polled = Pin::new(fut).poll(cx);
            if polled.is_ready() {
                // Dropped in the context the last poll entered (one entry for both); a panic
                // in the drop is swallowed, the outcome being decided.
                let done = this.fut.take();
                let _ = std::panic::catch_unwind(AssertUnwindSafe(|| drop(done)));
            }
            polled
        }));
        match polled {
            Ok(polled) => polled,
            Err(p) => {
                this.drop_future();
                Poll::Ready(Err(panicked(p)))
            }
        }
    }
}

impl<F> InPluginContext<F> {
    /// Drops the plugin's future inside its runtime's context; a panic there is swallowed (the
    /// outcome is already decided, or the host gave the operation up).
    fn drop_future(&mut self) {
        if let Some(fut) = self.fut.take() {
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let _entered = runtime().enter();
                drop(fut);
            }));
        }
    }
}

impl<F> Drop for InPluginContext<F> {
    fn drop(&mut self) {
        self.drop_future();
    }
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
        Ok(Arc::new(Bridged::<dyn Cache>(inner)))
    }

    async fn open_database(&self, spec: &BackendSpec) -> Result<Arc<dyn Database>> {
        let (factory, spec) = (self.0.clone(), spec.clone());
        let inner = on_plugin_runtime(async move { factory.open_database(&spec).await }).await?;
        Ok(Arc::new(Bridged::<dyn Database>(inner)))
    }

    async fn open_blob(&self, spec: &BackendSpec) -> Result<Arc<dyn BlobStore>> {
        let (factory, spec) = (self.0.clone(), spec.clone());
        let inner = on_plugin_runtime(async move { factory.open_blob(&spec).await }).await?;
        Ok(Arc::new(blob::BridgedBlobs(inner)))
    }
}

/// The layer that runs every operation of a plugin's backend on the plugin's runtime. It
/// writes only [`ForwardStore::around`], so an operation added to the contract crosses the
/// boundary the same way without an edit here.
///
/// The operation's future is built by the plugin's method (an `async_trait` method only boxes
/// its body) and first polled, and dropped, inside [`on_plugin_runtime`].
struct Bridged<R: ?Sized>(Arc<R>);

impl<R: fmt::Debug + ?Sized> fmt::Debug for Bridged<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<R: AsStore + ?Sized> ForwardStore for Bridged<R> {
    fn inner_store(&self) -> &dyn Store {
        self.0.as_store()
    }

    fn around<'a, T: Send + 'a>(&'a self, _op: &'static str, call: Call<'a, T>) -> Call<'a, T> {
        Box::pin(InPluginContext { fut: Some(call) })
    }
}

impl ForwardCache for Bridged<dyn Cache> {
    fn inner_cache(&self) -> &dyn Cache {
        &*self.0
    }
}

impl ForwardDatabase for Bridged<dyn Database> {
    fn inner_database(&self) -> &dyn Database {
        &*self.0
    }
}
