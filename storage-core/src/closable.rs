//! What a backend's `close` takes away: its pool (or connections), held until then and handed
//! out by clone to each operation. Not the pool itself, nor how a backend closes what it
//! holds (dropping the last clone does).

use crate::error::{Error, Result};
use std::fmt;
use std::sync::RwLock;

/// A backend's connections until `close`: [`Closable::get`] gives each operation a clone (a
/// pool handle is cheap to clone), or [`Error::closed`] once [`Closable::close`] took them.
///
/// ```
/// use storage_core::raw::Closable;
///
/// let pool = Closable::new(String::from("pool"));
/// assert_eq!(pool.get().unwrap(), "pool");
/// pool.close();
/// assert!(pool.get().is_err());
/// ```
pub struct Closable<T>(RwLock<Option<T>>);

impl<T: Clone> Closable<T> {
    /// Holds `open` until [`Closable::close`].
    pub fn new(open: T) -> Self {
        Closable(RwLock::new(Some(open)))
    }

    /// A clone of what is held, or [`Error::closed`] after `close`.
    pub fn get(&self) -> Result<T> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(Error::closed)
    }

    /// Takes what is held away: operations in flight keep their clones, and it is gone when
    /// the last of them returns. Closing twice does nothing more.
    pub fn close(&self) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).take();
    }
}

impl<T> fmt::Debug for Closable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let open = self.0.read().map(|g| g.is_some()).unwrap_or(false);
        f.write_str(if open {
            "Closable(open)"
        } else {
            "Closable(closed)"
        })
    }
}
