//! Group commit: writes that wait on each other share one redb transaction and its fsync.
//!
//! redb runs one write transaction at a time, and with `Durability::Immediate` every commit
//! waits for the disk; writers queued behind each other would each pay a whole fsync in turn.
//! Here a write joins a queue. The first writer that finds no commit running leads: it takes
//! everything queued (up to [`MAX_GROUP`] writes), applies the writes in the order they arrived
//! in one transaction, commits once, and answers each. Writes that arrive meanwhile form the
//! next group. A lone writer is a group of one, exactly the transaction it had before.
//!
//! Where the leader commits: on its own thread when the host's executor can spare that thread
//! ([`storage_plugin::block_in_place`]: a multi-threaded runtime moves its other tasks
//! elsewhere meanwhile), for its own group only; any later groups go to a blocking thread of
//! the plugin's runtime, so that no writer is kept leading others' commits after its own. Where
//! the executor cannot spare the thread, every group goes to the blocking thread. Running in
//! place saves the two thread wake-ups of a handoff, which on a small machine cost a third of a
//! write's fsync.
//!
//! What each write is promised stays the same: it returns only after the commit that holds it,
//! it is atomic, and it sees every write answered before it. A write that fails (a list where a
//! value is expected, say) fails alone: the transaction is aborted, that write gets its error,
//! and the writes before and after it are applied again in a fresh transaction. A failed commit
//! fails every write of its group, none of which took effect.
//!
//! The queue and the replies are `storage_core::raw`'s (`WriteQueue`, `WriteReply`), shared
//! with the SQLite backend's group commit. Not the operations themselves: those are closures
//! from `backend.rs`.

use crate::expiry::reclaim_expired;
use crate::file::OpenFile;
use crate::{RECLAIM_EVERY, now_ms};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use storage_core::raw::{WriteQueue, WriteReply};
use storage_core::{Error, Result};

/// The most writes one transaction takes, so that one commit's size stays bounded.
pub const MAX_GROUP: usize = 128;

/// A write's work: applied to the group's transaction, possibly more than once (see the
/// module docs), so it must not consume what it captures.
pub(crate) trait WriteFn<T>: FnMut(&redb::WriteTransaction, &str, i64) -> Result<T> {}
impl<T, F: FnMut(&redb::WriteTransaction, &str, i64) -> Result<T>> WriteFn<T> for F {}

/// One queued write, its result kept until its group commits.
trait Pending: Send {
    fn apply(&mut self, tx: &redb::WriteTransaction, ns: &str, now: i64) -> Result<()>;
    fn fail(self: Box<Self>, error: Error);
    fn committed(self: Box<Self>);
}

struct Job<T, F> {
    work: F,
    reply: WriteReply<T>,
}

impl<T: Send, F: WriteFn<T> + Send> Pending for Job<T, F> {
    fn apply(&mut self, tx: &redb::WriteTransaction, ns: &str, now: i64) -> Result<()> {
        self.reply.keep((self.work)(tx, ns, now)?);
        Ok(())
    }

    fn fail(self: Box<Self>, error: Error) {
        self.reply.fail(error);
    }

    fn committed(self: Box<Self>) {
        self.reply.committed();
    }
}

/// What the transaction is run with.
#[derive(Debug)]
pub(crate) struct CommitSettings {
    pub(crate) ns: Arc<str>,
    pub(crate) durability: redb::Durability,
}

/// The queue of one backend's writes.
#[derive(Default)]
pub(crate) struct Committer {
    queue: WriteQueue<Box<dyn Pending>>,
    /// Writes taken so far: every [`RECLAIM_EVERY`]th one reclaims expired keys.
    writes: AtomicU64,
    /// Transactions committed so far.
    commits: AtomicU64,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("commits", &self.commits.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Committer {
    /// Queues `work`, starts a commit if none is running, and waits for the commit that holds it.
    pub(crate) async fn submit<T, F>(
        self: &Arc<Self>,
        db: Arc<OpenFile>,
        settings: &Arc<CommitSettings>,
        work: F,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: WriteFn<T> + Send + 'static,
    {
        let (reply, answer) = WriteReply::channel();
        if self.queue.push(Box::new(Job { work, reply })) {
            let leader = Leader {
                committer: self.clone(),
                db: Some(db),
                settings: settings.clone(),
                finished: false,
            };
            let rest = match storage_plugin::block_in_place(move || leader.run(1)) {
                Ok(rest) => rest,
                Err(first) => {
                    // If the runtime is shutting down the closure is dropped unrun, and the
                    // leader's drop answers everything queued.
                    drop(tokio::task::spawn_blocking(move || {
                        first().map(|rest| rest.run(usize::MAX))
                    }));
                    None
                }
            };
            if let Some(rest) = rest {
                drop(tokio::task::spawn_blocking(move || rest.run(usize::MAX)));
            }
        }
        answer.wait().await
    }

    /// Transactions committed since the backend opened (fewer than writes when they grouped).
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

/// The writer that runs commits until the queue is empty.
struct Leader {
    committer: Arc<Committer>,
    /// Taken when the leader is done, before its last answers go out.
    db: Option<Arc<OpenFile>>,
    settings: Arc<CommitSettings>,
    finished: bool,
}

/// What a write is told once its group is done.
enum Answer {
    Committed(Box<dyn Pending>),
    Failed(Box<dyn Pending>, Error),
}

fn answer(answers: Vec<Answer>) {
    for a in answers {
        match a {
            Answer::Committed(job) => job.committed(),
            Answer::Failed(job, error) => job.fail(error),
        }
    }
}

/// Why a group's transaction did not commit.
enum GroupError {
    /// The write at this index failed; the others may be applied again.
    Write(usize, Error),
    /// The transaction itself failed: every write of the group fails with this message.
    Transaction(String),
}

impl Leader {
    /// Commits queued groups until the queue is empty (and returns `None`), or until it has
    /// committed `max_groups` groups while more are queued: it then returns itself, still
    /// leading, for another thread to go on.
    fn run(mut self, max_groups: usize) -> Option<Self> {
        let mut answers = Vec::new();
        let mut groups = 0;
        loop {
            // After `max_groups`, only whether more is queued (an empty group: still leading).
            let take = if groups == max_groups { 0 } else { MAX_GROUP };
            let Some(group) = self.committer.queue.next_group(take) else {
                self.finished = true;
                break;
            };
            answer(std::mem::take(&mut answers));
            if group.is_empty() {
                return Some(self);
            }
            answers = self.commit_group(group);
            groups += 1;
        }
        // Let go of the file before the last writers hear back: one that closes its backend
        // next expects the file to be released.
        drop(self.db.take());
        answer(answers);
        None
    }

    /// Commits `group` and returns the answers, to be sent once the leader is done with them.
    fn commit_group(&self, mut group: Vec<Box<dyn Pending>>) -> Vec<Answer> {
        let before = self
            .committer
            .writes
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        // Whether the group holds a multiple of RECLAIM_EVERY among its write numbers.
        let reclaim = before.div_ceil(RECLAIM_EVERY) * RECLAIM_EVERY < before + group.len() as u64;
        let mut answers = Vec::with_capacity(group.len());
        while !group.is_empty() {
            match self.try_commit(&mut group, reclaim) {
                Ok(()) => {
                    self.committer.commits.fetch_add(1, Ordering::Relaxed);
                    answers.extend(group.into_iter().map(Answer::Committed));
                    break;
                }
                Err(GroupError::Write(at, error)) => {
                    answers.push(Answer::Failed(group.remove(at), error));
                }
                Err(GroupError::Transaction(message)) => {
                    answers.extend(
                        group
                            .into_iter()
                            .map(|job| Answer::Failed(job, Error::other(message.clone()))),
                    );
                    break;
                }
            }
        }
        answers
    }

    fn try_commit(
        &self,
        group: &mut [Box<dyn Pending>],
        reclaim: bool,
    ) -> std::result::Result<(), GroupError> {
        let failed =
            |e: &dyn std::fmt::Display, what: &str| GroupError::Transaction(format!("{what}: {e}"));
        let db = self
            .db
            .as_ref()
            .ok_or_else(|| GroupError::Transaction("the file was let go".into()))?;
        let mut tx = db
            .begin_write()
            .map_err(|e| failed(&e, "beginning a write"))?;
        tx.set_durability(self.settings.durability)
            .map_err(|e| failed(&e, "setting durability"))?;
        let (ns, now) = (&*self.settings.ns, now_ms());
        if reclaim {
            reclaim_expired(&tx, ns, now)
                .map_err(|e| GroupError::Transaction(e.message().to_string()))?;
        }
        for (at, job) in group.iter_mut().enumerate() {
            if let Err(error) = job.apply(&tx, ns, now) {
                // Dropping would abort too; an abort that fails leaves nothing to undo.
                let _ = tx.abort();
                return Err(GroupError::Write(at, error));
            }
        }
        tx.commit().map_err(|e| failed(&e, "committing"))
    }
}

impl Drop for Leader {
    /// A leader that did not finish (its task never ran, or a write panicked) still answers
    /// everything queued, and lets the next writer start a commit.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.committer.queue.abandon(|job, error| job.fail(error));
    }
}
