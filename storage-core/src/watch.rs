//! Learning of every change to a namespace ([`Watch`]): each set, delete, expiry and clear of
//! a key under a prefix, whichever instance wrote it, in the order they happened to each key.
//! Not how a backend keeps its change log (its [`Store::changes`]) nor how it learns of new
//! entries (its [`Store::wait_for_changes`]); not the items appended to a list (follow those
//! with [`crate::feed::Tail`]).
//!
//! A backend keeps a bounded log of the namespace's changes, each at a position (a cursor that
//! only grows). The watcher keeps the position after the last change it delivered and reads on
//! from there, so a dropped connection, a missed wake-up or a restarted server loses nothing.
//! When the log no longer holds the position it stands at (it fell more than the log's length
//! behind), it says so with [`WatchEvent::Lagged`] instead of skipping silently: the consumer
//! re-reads what it keeps, and the watch goes on from the oldest change still held.

use crate::backend::Store;
use crate::error::{Error, Result};
use crate::version::Version;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// Changes read per request.
const BATCH: usize = 512;

/// How long a watcher waits for a change before it reads again anyway: the bound on how late
/// it sees a change when a backend's wake-up is lost.
pub const POLL: Duration = Duration::from_millis(50);

/// The longest pause between reads after temporary errors (a server restarting).
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How many of a namespace's most recent changes a backend's log keeps at least. A watcher
/// more than this far behind receives [`WatchEvent::Lagged`].
pub const RETAINED_CHANGES: u64 = 10_000;

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// A value was written (or a list created) at the key.
    Set,
    /// The key was deleted.
    Delete,
    /// The key's time to live ran out and the backend removed it (backends that cannot tell
    /// an expiry from a delete report neither: see the contract).
    Expired,
    /// Every key of the namespace was removed (the change's key is empty).
    Cleared,
}

impl ChangeKind {
    /// The kind's number in backends' logs (0 set, 1 delete, 2 expired, 3 cleared).
    pub fn code(self) -> u8 {
        match self {
            ChangeKind::Set => 0,
            ChangeKind::Delete => 1,
            ChangeKind::Expired => 2,
            ChangeKind::Cleared => 3,
        }
    }

    /// The kind with number `code`; an unknown number is a backend error.
    pub fn from_code(code: i64) -> Result<ChangeKind> {
        Ok(match code {
            0 => ChangeKind::Set,
            1 => ChangeKind::Delete,
            2 => ChangeKind::Expired,
            3 => ChangeKind::Cleared,
            other => {
                return Err(Error::other(format!(
                    "the change log holds an unknown change kind {other}"
                )));
            }
        })
    }
}

/// One change of one key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    /// Its position in the namespace's log. A watch resumed from it ([`Watch::from`]) delivers
    /// this change again (on PostgreSQL, with the other changes of its transaction): never
    /// fewer.
    pub position: u64,
    /// The key, without the namespace prefix (empty for [`ChangeKind::Cleared`]).
    pub key: String,
    /// What happened.
    pub kind: ChangeKind,
    /// The value's version after a [`ChangeKind::Set`] of a value, where the backend keeps
    /// versions (see conditional writes); `None` otherwise.
    pub version: Option<Version>,
    /// When the change was made, in unix milliseconds by the clock of whoever filed it (the
    /// writing process for the memory store, SQLite and redb; the server for PostgreSQL and
    /// Redis), where the backend keeps it. For measuring how late a change arrives, not for
    /// ordering.
    pub at_ms: Option<u64>,
}

/// Now, in unix milliseconds: what backends that file changes in the writing process stamp.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A part of a namespace's change log: what [`Store::changes`] returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChangeWindow {
    /// The oldest position the log still holds: a reader standing before it missed changes.
    pub oldest: u64,
    /// The position to read from next: after the last change returned, or the log's end when
    /// none was.
    pub next: u64,
    /// The changes from the requested position on, in the log's order.
    pub changes: Vec<Change>,
}

/// What a [`Watch`] delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key under the prefix changed.
    Change(Change),
    /// Changes were lost to this watcher (it fell behind the log's length): re-read what you
    /// keep from the store; the watch goes on from `resumed_at`.
    Lagged {
        /// The position the watcher stood at.
        missed_from: u64,
        /// The oldest position the log still held, where the watch goes on.
        resumed_at: u64,
    },
}

/// A watcher of the keys under a prefix of one namespace: [`Watch::next`] returns each change,
/// waiting for the next one when it has delivered them all.
///
/// ```no_run
/// # async fn demo(cache: std::sync::Arc<dyn storage_core::Cache>) -> storage_core::Result<()> {
/// use storage_core::watch::{Watch, WatchEvent};
/// let mut watch = Watch::new(cache, "user:").await?;
/// while let Some(event) = watch.next().await {
///     match event? {
///         WatchEvent::Change(change) => println!("{:?} {}", change.kind, change.key),
///         WatchEvent::Lagged { .. } => println!("fell behind: re-read everything"),
///     }
/// }
/// # Ok(()) }
/// ```
pub struct Watch {
    store: Arc<dyn Store>,
    prefix: String,
    next: u64,
    buffer: VecDeque<WatchEvent>,
    backoff: Duration,
    ended: bool,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("prefix", &self.prefix)
            .field("next", &self.next)
            .finish()
    }
}

impl Watch {
    /// Watches the keys starting with `prefix` (`""`: all) from now on: the changes made after
    /// this returns. Fails when the backend keeps no change log (`Unsupported`).
    pub async fn new(store: Arc<dyn Store>, prefix: &str) -> Result<Watch> {
        let end = store.changes(None, 0).await?.next;
        Ok(Watch::from(store, prefix, end))
    }

    /// Watches from `position` on ([`Watch::position`] of an earlier watch): resumes without a
    /// gap while the log still holds it.
    pub fn from(store: Arc<dyn Store>, prefix: &str, position: u64) -> Watch {
        Watch {
            store,
            prefix: prefix.to_string(),
            next: position,
            buffer: VecDeque::new(),
            backoff: Duration::ZERO,
            ended: false,
        }
    }

    /// Where the watch stands: the position to resume from later.
    pub fn position(&self) -> u64 {
        match self.buffer.front() {
            Some(WatchEvent::Change(c)) => c.position,
            Some(WatchEvent::Lagged { missed_from, .. }) => *missed_from,
            None => self.next,
        }
    }

    /// The next event, waiting for it if none is there yet. Temporary errors (a lost
    /// connection) are waited out and the log read again from where the watch stands; a
    /// permanent error ends the watch (a later call returns `None`).
    pub async fn next(&mut self) -> Option<Result<WatchEvent>> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Some(Ok(event));
            }
            if self.ended {
                return None;
            }
            match self.store.changes(Some(self.next), BATCH).await {
                Ok(window) => {
                    self.backoff = Duration::ZERO;
                    let read_to = window.next;
                    self.take(window);
                    if self.buffer.is_empty() && read_to == self.next {
                        // Nothing new: wait for a change (or the poll interval). A failed wait
                        // is a pause, since the read that follows decides.
                        if self.store.wait_for_changes(self.next, POLL).await.is_err() {
                            tokio::time::sleep(POLL).await;
                        }
                    }
                }
                Err(e) if e.is_temporary() => {
                    self.backoff = (self.backoff * 2).clamp(Duration::from_millis(20), MAX_BACKOFF);
                    tracing::debug!(prefix = %self.prefix, error = %e, "watch: reading again after a temporary error");
                    tokio::time::sleep(self.backoff).await;
                }
                Err(e) => {
                    self.ended = true;
                    return Some(Err(e));
                }
            }
        }
    }

    /// Files the changes under the prefix; a window that starts past where the watch stands
    /// becomes a `Lagged` event first.
    fn take(&mut self, window: ChangeWindow) {
        if window.oldest > self.next {
            self.buffer.push_back(WatchEvent::Lagged {
                missed_from: self.next,
                resumed_at: window.oldest,
            });
        }
        for change in window.changes {
            if change.kind == ChangeKind::Cleared || change.key.starts_with(&self.prefix) {
                self.buffer.push_back(WatchEvent::Change(change));
            }
        }
        self.next = self.next.max(window.next);
    }
}
