//! Layers: a store that wraps another and changes only some of its operations, and the
//! [`Layer`] that wraps every store of a role with one. The contract's own two, [`Validate`]
//! and [`Observe`], are here too: every backend the registry opens already has them
//! ([`checked_cache`], [`checked_database`]), inside any layer an application adds.
//!
//! A layer implements [`ForwardStore`], and [`ForwardCache`] or [`ForwardDatabase`] for the
//! role it wraps; every method it does not write passes the call to the inner store unchanged.
//! Implementing those traits makes the type a [`Store`], [`Cache`] or [`Database`] itself, so
//! layers nest in any order, and an operation added to the contract reaches every layer through
//! the default, without an edit to any of them.
//!
//! ```
//! use std::sync::Arc;
//! use storage_core::layer::{ForwardDatabase, ForwardStore};
//! use storage_core::async_trait;
//! use storage_core::prelude::*;
//!
//! /// Refuses every write to the database it wraps.
//! #[derive(Debug)]
//! struct NoAppends(Arc<dyn Database>);
//!
//! #[async_trait]
//! impl ForwardStore for NoAppends {
//!     fn inner_store(&self) -> &dyn Store {
//!         &*self.0
//!     }
//! }
//!
//! #[async_trait]
//! impl ForwardDatabase for NoAppends {
//!     fn inner_database(&self) -> &dyn Database {
//!         &*self.0
//!     }
//!     async fn append(&self, key: &str, _: &Value) -> Result<()> {
//!         Err(Error::unsupported(format!("appending to {key:?} is not allowed here")))
//!     }
//! }
//!
//! /// Wraps a database: the result is a `Database`, and nests in any other layer.
//! fn no_appends(inner: Arc<dyn Database>) -> Arc<dyn Database> {
//!     Arc::new(NoAppends(inner))
//! }
//! ```

mod observe;
mod observe_blob;
mod validate;

pub use observe::Observe;
pub use observe_blob::ObserveBlobs;
pub use validate::Validate;

use crate::backend::{Cache, CacheEntry, Database, KeyKind, KeyTtl, ListWindow, Store};
use crate::error::Result;
use crate::version::{Condition, Version};
use crate::watch::ChangeWindow;
use async_trait::async_trait;
use serde_json::Value;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// An operation in flight, as [`ForwardStore::around`] receives and returns it (the boxed
/// future every `async_trait` method already is).
pub type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// A role's store seen as the [`Store`] it extends: lets one layer type wrap either role.
pub trait AsStore: Send + Sync + fmt::Debug {
    /// Itself, as a [`Store`].
    fn as_store(&self) -> &dyn Store;
}

impl AsStore for dyn Cache {
    fn as_store(&self) -> &dyn Store {
        self
    }
}

impl AsStore for dyn Database {
    fn as_store(&self) -> &dyn Store {
        self
    }
}

/// The contract's layers around a cache a backend built: [`Validate`] outside [`Observe`], so
/// refused input never reaches the backend and is neither timed nor counted.
pub fn checked_cache(raw: Arc<dyn Cache>) -> Arc<dyn Cache> {
    let observed: Arc<dyn Cache> = Arc::new(Observe::cache(raw));
    Arc::new(Validate::new(observed))
}

/// The contract's layers around a database a backend built; see [`checked_cache`].
pub fn checked_database(raw: Arc<dyn Database>) -> Arc<dyn Database> {
    let observed: Arc<dyn Database> = Arc::new(Observe::database(raw));
    Arc::new(Validate::new(observed))
}

/// Wraps every store of a role. A layer given to the manager wraps each role it serves, once,
/// outside the contract's checks; the default of each method leaves that role unwrapped.
pub trait Layer: Send + Sync {
    /// The cache, wrapped.
    fn layer_cache(&self, inner: Arc<dyn Cache>) -> Arc<dyn Cache> {
        inner
    }

    /// The database, wrapped.
    fn layer_database(&self, inner: Arc<dyn Database>) -> Arc<dyn Database> {
        inner
    }
}

/// A trait method written as `async_trait` writes an `async fn` (so a layer can still
/// override it with one), whose body hands on a future that is already boxed instead of
/// wrapping it in a second box as an `async fn` body would, an allocation on every call
/// through every layer. `'a`, `'b`, ... name the arguments' borrows in order, as `async_trait`
/// names them (`'life1`, `'life2`, ...); `|this| body` is the body, `this` being `self`. The
/// one place the signature is written: `forwarded!` and `pass_through!` give the bodies.
macro_rules! boxed_method {
    (
        $(#[$doc:meta])*
        $name:ident <$($lt:lifetime),*> ($($arg:ident : $ty:ty),* $(,)?) -> $out:ty
            = |$this:ident| $body:expr
    ) => {
        $(#[$doc])*
        fn $name<'life0, $($lt,)* 'async_trait>(
            &'life0 self,
            $($arg: $ty),*
        ) -> Pin<Box<dyn Future<Output = Result<$out>> + Send + 'async_trait>>
        where
            'life0: 'async_trait,
            $($lt: 'async_trait,)*
            Self: 'async_trait,
        {
            let $this = self;
            $body
        }
    };
}

/// A default method of the forwarding traits: the inner store's call, through
/// [`ForwardStore::around`], returned as the boxed future it already is.
macro_rules! forwarded {
    (
        $(#[$doc:meta])*
        $name:ident <$($lt:lifetime),*> ($($arg:ident : $ty:ty),* $(,)?) -> $out:ty
            = $op:literal via $inner:ident
    ) => {
        boxed_method!(
            $(#[$doc])*
            $name<$($lt),*>($($arg: $ty),*) -> $out
                = |this| this.around($op, this.$inner().$name($($arg),*))
        );
    };
}

/// The operations both roles share, each forwarded to [`ForwardStore::inner_store`] unless
/// the layer writes its own. Implementing it makes the type a [`Store`].
#[async_trait]
pub trait ForwardStore: Send + Sync + fmt::Debug {
    /// The store this one wraps.
    fn inner_store(&self) -> &dyn Store;

    /// Wraps each operation this trait and its role traits forward: `call` is the inner
    /// store's own, named `op` (`"get"`, `"append"`, ...). The default returns it unchanged. A
    /// layer that treats every operation alike (a span, a timer, a deadline) writes only this,
    /// so an operation added to the contract reaches it without an edit. An operation the
    /// layer writes itself does not pass through here unless it calls `around`.
    fn around<'a, T: Send + 'a>(&'a self, op: &'static str, call: Call<'a, T>) -> Call<'a, T> {
        let _ = op;
        call
    }

    /// As [`Store::backend`]: the wrapped backend's name.
    fn backend(&self) -> &str {
        self.inner_store().backend()
    }
    forwarded!(
        /// As [`Store::get`].
        get<'a>(key: &'a str) -> Option<Value> = "get" via inner_store
    );
    forwarded!(
        /// As [`Store::delete`].
        delete<'a>(key: &'a str) -> bool = "delete" via inner_store
    );
    forwarded!(
        /// As [`Store::mget`].
        mget<'a>(keys: &'a [String]) -> Vec<Option<Value>> = "mget" via inner_store
    );
    forwarded!(
        /// As [`Store::exists`].
        exists<'a>(key: &'a str) -> bool = "exists" via inner_store
    );
    forwarded!(
        /// As [`Store::kind`].
        kind<'a>(key: &'a str) -> KeyKind = "kind" via inner_store
    );
    forwarded!(
        /// As [`Store::keys`].
        keys<'a>(pattern: Option<&'a str>) -> Vec<String> = "keys" via inner_store
    );
    forwarded!(
        /// As [`Store::clear`].
        clear<>() -> () = "clear" via inner_store
    );
    forwarded!(
        /// As [`Store::ping`].
        ping<>() -> () = "ping" via inner_store
    );
    forwarded!(
        /// As [`Store::close`].
        close<>() -> () = "close" via inner_store
    );
    forwarded!(
        /// As [`Store::changes`].
        changes<>(from: Option<u64>, max: usize) -> ChangeWindow = "changes" via inner_store
    );
    forwarded!(
        /// As [`Store::wait_for_changes`].
        wait_for_changes<>(from: u64, limit: Duration) -> () = "wait_for_changes" via inner_store
    );
}

/// The cache's own operations, forwarded to [`ForwardCache::inner_cache`] unless the layer
/// writes its own. With [`ForwardStore`], makes the type a [`Cache`].
#[async_trait]
pub trait ForwardCache: ForwardStore {
    /// The cache this one wraps (the same store as [`ForwardStore::inner_store`]).
    fn inner_cache(&self) -> &dyn Cache;

    forwarded!(
        /// As [`Cache::set`].
        set<'a, 'b>(key: &'a str, value: &'b Value, ttl: Option<Duration>) -> ()
            = "set" via inner_cache
    );
    forwarded!(
        /// As [`Cache::mset`].
        mset<'a>(entries: &'a [CacheEntry]) -> () = "mset" via inner_cache
    );
    forwarded!(
        /// As [`Cache::ttl`].
        ttl<'a>(key: &'a str) -> KeyTtl = "ttl" via inner_cache
    );
    forwarded!(
        /// As [`Cache::set_if_absent`].
        set_if_absent<'a, 'b>(key: &'a str, value: &'b Value, ttl: Option<Duration>) -> bool
            = "set_if_absent" via inner_cache
    );
}

/// The database's own operations, forwarded to [`ForwardDatabase::inner_database`] unless the
/// layer writes its own. With [`ForwardStore`], makes the type a [`Database`].
#[async_trait]
pub trait ForwardDatabase: ForwardStore {
    /// The database this one wraps (the same store as [`ForwardStore::inner_store`]).
    fn inner_database(&self) -> &dyn Database;

    forwarded!(
        /// As [`Database::set`].
        set<'a, 'b>(key: &'a str, value: &'b Value) -> () = "set" via inner_database
    );
    forwarded!(
        /// As [`Database::set_owned`].
        set_owned<'a>(key: &'a str, value: Value) -> () = "set" via inner_database
    );
    forwarded!(
        /// As [`Database::mset`].
        mset<'a>(entries: &'a [(String, Value)]) -> () = "mset" via inner_database
    );
    forwarded!(
        /// As [`Database::get_versioned`].
        get_versioned<'a>(key: &'a str) -> Option<(Value, Version)>
            = "get_versioned" via inner_database
    );
    forwarded!(
        /// As [`Database::set_if`].
        set_if<'a, 'b, 'c>(key: &'a str, value: &'b Value, condition: &'c Condition) -> Version
            = "set_if" via inner_database
    );
    forwarded!(
        /// As [`Database::delete_if`].
        delete_if<'a, 'b>(key: &'a str, condition: &'b Condition) -> bool
            = "delete_if" via inner_database
    );
    forwarded!(
        /// As [`Database::append`].
        append<'a, 'b>(key: &'a str, value: &'b Value) -> () = "append" via inner_database
    );
    forwarded!(
        /// As [`Database::append_many`].
        append_many<'a, 'b>(key: &'a str, values: &'b [Value]) -> ()
            = "append_many" via inner_database
    );
    forwarded!(
        /// As [`Database::get_range`].
        get_range<'a>(key: &'a str, start: i64, end: i64) -> Vec<Value>
            = "get_range" via inner_database
    );
    forwarded!(
        /// As [`Database::get_length`].
        get_length<'a>(key: &'a str) -> u64 = "get_length" via inner_database
    );
    forwarded!(
        /// As [`Database::trim`].
        trim<'a>(key: &'a str, start: i64, end: i64) -> () = "trim" via inner_database
    );
    forwarded!(
        /// As [`Database::list_window`].
        list_window<'a>(key: &'a str, from: u64, max: usize) -> ListWindow
            = "list_window" via inner_database
    );
    forwarded!(
        /// As [`Database::wait_for_change`].
        wait_for_change<'a>(key: &'a str, limit: Duration) -> ()
            = "wait_for_change" via inner_database
    );
}

/// A method of the role traits: the forwarding trait's own, whose boxed future is returned
/// as it is (see `boxed_method!`).
macro_rules! pass_through {
    ($via:ident :: $name:ident <$($lt:lifetime),*> ($($arg:ident : $ty:ty),* $(,)?) -> $out:ty) => {
        boxed_method!(
            $name<$($lt),*>($($arg: $ty),*) -> $out = |this| $via::$name(this, $($arg),*)
        );
    };
}

impl<L: ForwardStore> Store for L {
    fn backend(&self) -> &str {
        ForwardStore::backend(self)
    }
    pass_through!(ForwardStore::get<'a>(key: &'a str) -> Option<Value>);
    pass_through!(ForwardStore::delete<'a>(key: &'a str) -> bool);
    pass_through!(ForwardStore::mget<'a>(keys: &'a [String]) -> Vec<Option<Value>>);
    pass_through!(ForwardStore::exists<'a>(key: &'a str) -> bool);
    pass_through!(ForwardStore::kind<'a>(key: &'a str) -> KeyKind);
    pass_through!(ForwardStore::keys<'a>(pattern: Option<&'a str>) -> Vec<String>);
    pass_through!(ForwardStore::clear<>() -> ());
    pass_through!(ForwardStore::ping<>() -> ());
    pass_through!(ForwardStore::close<>() -> ());
    pass_through!(ForwardStore::changes<>(from: Option<u64>, max: usize) -> ChangeWindow);
    pass_through!(ForwardStore::wait_for_changes<>(from: u64, limit: Duration) -> ());
}

impl<L: ForwardCache> Cache for L {
    pass_through!(
        ForwardCache::set<'a, 'b>(
            key: &'a str,
            value: &'b Value,
            ttl: Option<Duration>,
        ) -> ()
    );
    pass_through!(ForwardCache::mset<'a>(entries: &'a [CacheEntry]) -> ());
    pass_through!(ForwardCache::ttl<'a>(key: &'a str) -> KeyTtl);
    pass_through!(
        ForwardCache::set_if_absent<'a, 'b>(
            key: &'a str,
            value: &'b Value,
            ttl: Option<Duration>,
        ) -> bool
    );
}

impl<L: ForwardDatabase> Database for L {
    pass_through!(ForwardDatabase::set<'a, 'b>(key: &'a str, value: &'b Value) -> ());
    pass_through!(ForwardDatabase::set_owned<'a>(key: &'a str, value: Value) -> ());
    pass_through!(ForwardDatabase::mset<'a>(entries: &'a [(String, Value)]) -> ());
    pass_through!(ForwardDatabase::get_versioned<'a>(key: &'a str) -> Option<(Value, Version)>);
    pass_through!(
        ForwardDatabase::set_if<'a, 'b, 'c>(
            key: &'a str,
            value: &'b Value,
            condition: &'c Condition,
        ) -> Version
    );
    pass_through!(
        ForwardDatabase::delete_if<'a, 'b>(
            key: &'a str,
            condition: &'b Condition,
        ) -> bool
    );
    pass_through!(ForwardDatabase::append<'a, 'b>(key: &'a str, value: &'b Value) -> ());
    pass_through!(ForwardDatabase::append_many<'a, 'b>(key: &'a str, values: &'b [Value]) -> ());
    pass_through!(ForwardDatabase::get_range<'a>(key: &'a str, start: i64, end: i64) -> Vec<Value>);
    pass_through!(ForwardDatabase::get_length<'a>(key: &'a str) -> u64);
    pass_through!(ForwardDatabase::trim<'a>(key: &'a str, start: i64, end: i64) -> ());
    pass_through!(
        ForwardDatabase::list_window<'a>(
            key: &'a str,
            from: u64,
            max: usize,
        ) -> ListWindow
    );
    pass_through!(ForwardDatabase::wait_for_change<'a>(key: &'a str, limit: Duration) -> ());
}

#[cfg(test)]
#[path = "layer/tests.rs"]
mod tests;
