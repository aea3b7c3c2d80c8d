//! Following a list as it grows ([`Tail`]): every item appended from an index on, exactly
//! once, in list order, whichever instance appends it. Not how a backend learns of an append
//! (its [`Database::wait_for_change`]), nor where items are read (its
//! [`Database::list_window`]).
//!
//! The reader keeps the absolute index of the next item it owes and reads from there, so a
//! dropped connection, a missed wake-up or a restarted server loses nothing: the next read
//! resumes where the last delivered item ends. What it cannot deliver it says, and then ends:
//! items trimmed from the list before they were delivered, or the list deleted (and perhaps
//! created again) under it.

use crate::backend::Database;
use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// Items read per request.
const BATCH: usize = 256;

/// How long a follower waits for a change before it reads again anyway: the bound on how late
/// it sees an append when a backend's wake-up is lost.
pub const POLL: Duration = Duration::from_millis(50);

/// The longest pause between reads after temporary errors (a server restarting).
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// One item a [`Tail`] delivers.
#[derive(Debug, Clone, PartialEq)]
pub struct TailItem {
    /// Its absolute index: the appends to the list before it, since the list was created.
    pub index: u64,
    /// The item.
    pub value: Value,
}

/// A follower of the list at one key: [`Tail::next`] returns each item appended from the
/// starting index on, waiting for the next one when it has delivered them all.
///
/// ```no_run
/// # async fn demo(db: std::sync::Arc<dyn storage_core::Database>) -> storage_core::Result<()> {
/// let mut tail = storage_core::feed::Tail::new(db, "history:session-1", 0);
/// while let Some(item) = tail.next().await {
///     let item = item?;
///     println!("{} {}", item.index, item.value);
/// }
/// # Ok(()) }
/// ```
pub struct Tail {
    db: Arc<dyn Database>,
    key: String,
    next: u64,
    generation: Option<u64>,
    buffer: VecDeque<TailItem>,
    backoff: Duration,
    ended: bool,
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail")
            .field("key", &self.key)
            .field("next", &self.next)
            .finish()
    }
}

impl Tail {
    /// Follows the list at `key` from the absolute index `from` (0: from its first append;
    /// the list's current length: only what is appended from now on).
    pub fn new(db: Arc<dyn Database>, key: &str, from: u64) -> Tail {
        Tail {
            db,
            key: key.to_string(),
            next: from,
            generation: None,
            buffer: VecDeque::new(),
            backoff: Duration::ZERO,
            ended: false,
        }
    }

    /// The absolute index of the next item it will deliver: where to start again later.
    pub fn position(&self) -> u64 {
        self.next - self.buffer.len() as u64
    }

    /// The next item, waiting for it if none is there yet. An error ends the follower (a later
    /// call returns `None`): items trimmed before they were delivered, the list deleted or
    /// created again, a value where the list was, a permanent backend error. Temporary errors
    /// (a lost connection) are waited out and read again from where it stands.
    pub async fn next(&mut self) -> Option<Result<TailItem>> {
        loop {
            if let Some(item) = self.buffer.pop_front() {
                return Some(Ok(item));
            }
            if self.ended {
                return None;
            }
            match self.db.list_window(&self.key, self.next, BATCH).await {
                Ok(window) => {
                    self.backoff = Duration::ZERO;
                    if let Err(e) = self.take(window) {
                        self.ended = true;
                        return Some(Err(e));
                    }
                    if self.buffer.is_empty() {
                        // Nothing new: wait for a change (or the poll interval). A failed wait
                        // is a pause, since the read that follows decides.
                        if self.db.wait_for_change(&self.key, POLL).await.is_err() {
                            tokio::time::sleep(POLL).await;
                        }
                    }
                }
                Err(e) if e.is_temporary() => {
                    self.backoff = (self.backoff * 2).clamp(Duration::from_millis(20), MAX_BACKOFF);
                    tracing::debug!(key = %self.key, error = %e, "tail: reading again after a temporary error");
                    tokio::time::sleep(self.backoff).await;
                }
                Err(e) => {
                    self.ended = true;
                    return Some(Err(e));
                }
            }
        }
    }

    /// Files what `window` holds past what was delivered; refuses a window that shows items
    /// lost to a trim or the list replaced.
    fn take(&mut self, window: crate::ListWindow) -> Result<()> {
        let exists = window.next > 0 || window.generation != 0;
        match self.generation {
            Some(seen) if seen != window.generation && (seen != 0 || exists) => {
                return Err(self.gone(if exists {
                    "was deleted and created again"
                } else {
                    "was deleted"
                }));
            }
            None if exists => self.generation = Some(window.generation),
            _ => {}
        }
        if self.generation.is_some() && window.next < self.next {
            // Appends only raise the end: one below what was delivered means the list went.
            return Err(self.gone("was deleted (and perhaps created again)"));
        }
        if window.first > self.next {
            return Err(Error::invalid_input(format!(
                "tail of {:?}: items {}..{} were trimmed from the list before they were delivered; follow again from {} (or read the list whole)",
                self.key, self.next, window.first, window.first
            ))
            .permanent());
        }
        for value in window.items {
            self.buffer.push_back(TailItem {
                index: self.next,
                value,
            });
            self.next += 1;
        }
        Ok(())
    }

    fn gone(&self, what: &str) -> Error {
        Error::invalid_input(format!(
            "tail of {:?}: the list {what} after item {} was delivered; its items since are not the ones this tail followed",
            self.key,
            self.next.saturating_sub(1)
        ))
        .permanent()
    }
}
