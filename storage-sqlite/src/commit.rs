//! Group commit: writes of one backend that wait on each other share one `BEGIN IMMEDIATE`
//! transaction and its flush.
//!
//! SQLite has one writer at a time, and with `synchronous = full` every commit waits for the
//! disk; writers queued behind each other would each pay a whole flush in turn. Here a write
//! joins a queue. When no commit is running, the write starts one on a blocking thread: it
//! takes everything queued (up to [`MAX_GROUP`] writes), applies them in the order they
//! arrived in one transaction, commits once and answers each; writes that arrive meanwhile
//! form the next group, until the queue is empty. A lone writer is a group of one: exactly the
//! transaction it had before, and the same one thread hop.
//!
//! What each write is promised stays the same: it returns only after the commit that holds it,
//! it is atomic, and it sees every write answered before it. Inside a group each write runs in
//! a savepoint, so a write that fails (a list where a value is expected, a condition not met)
//! is rolled back alone and the others commit. An error that ends the transaction itself (the
//! lock not taken within the busy timeout, a full disk, a failed commit) fails every write of
//! its group, none of which took effect (or, for an I/O error under the commit, all with the
//! outcome unknown). A write whose operation deadline passed while it was queued is not run.
//!
//! The queue and the replies are `storage_core::raw`'s (`WriteQueue`, `WriteReply`), shared
//! with the redb plugin's group commit. Not the operations themselves: those are closures from
//! `backend.rs`, `conditional.rs` and `blob.rs`.

use crate::core::PoolMetrics;
use crate::schema::sql_error;
use r2d2_sqlite::SqliteConnectionManager;
use r2d2_sqlite::rusqlite::{Transaction, TransactionBehavior};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use storage_core::raw::{WriteQueue, WriteReply};
use storage_core::{Error, ErrorKind, Result};

type Pool = r2d2::Pool<SqliteConnectionManager>;

/// The most writes one transaction takes, so that one commit's size stays bounded.
pub const MAX_GROUP: usize = 128;

/// One queued write, its result kept until its group commits.
trait Pending: Send {
    fn deadline(&self) -> Option<Instant>;
    /// Runs the write inside the group's transaction and keeps what it returned.
    fn apply(&mut self, tx: &Transaction<'_>, ns: &str) -> Result<()>;
    fn fail(self: Box<Self>, error: Error);
    fn committed(self: Box<Self>);
}

struct Job<T, F> {
    work: Option<F>,
    deadline: Option<Instant>,
    reply: WriteReply<T>,
}

impl<T, F> Pending for Job<T, F>
where
    T: Send,
    F: FnOnce(&Transaction<'_>, &str) -> Result<T> + Send,
{
    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn apply(&mut self, tx: &Transaction<'_>, ns: &str) -> Result<()> {
        let work = self
            .work
            .take()
            .ok_or_else(|| Error::other("a grouped write was applied twice"))?;
        self.reply.keep(work(tx, ns)?);
        Ok(())
    }

    fn fail(self: Box<Self>, error: Error) {
        self.reply.fail(error);
    }

    fn committed(self: Box<Self>) {
        self.reply.committed();
    }
}

/// How a group's transaction is run: the pool, the namespace, the busy and acquire limits.
#[derive(Debug, Clone)]
pub(crate) struct CommitSettings {
    pub(crate) ns: Arc<str>,
    pub(crate) metrics: Arc<PoolMetrics>,
    pub(crate) busy: Duration,
    pub(crate) acquire: Duration,
    pub(crate) operation_timeout: Duration,
}

/// The queue of one backend's writes.
#[derive(Default)]
pub(crate) struct Committer {
    queue: WriteQueue<Box<dyn Pending>>,
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
    /// Queues `work`, starts a commit if none is running, and waits for the commit that holds
    /// it.
    pub(crate) async fn submit<T, F>(
        self: &Arc<Self>,
        pool: Pool,
        settings: &CommitSettings,
        work: F,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, &str) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = WriteReply::channel();
        let deadline = Instant::now().checked_add(settings.operation_timeout);
        let lead = self.queue.push(Box::new(Job {
            work: Some(work),
            deadline,
            reply,
        }));
        if lead {
            let leader = Leader {
                committer: self.clone(),
                pool,
                settings: settings.clone(),
                finished: false,
            };
            // If the runtime is shutting down the closure is dropped unrun, and the leader's
            // drop answers everything queued.
            drop(tokio::task::spawn_blocking(move || leader.run()));
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
    pool: Pool,
    settings: CommitSettings,
    finished: bool,
}

impl Leader {
    fn run(mut self) {
        while let Some(group) = self.committer.queue.next_group(MAX_GROUP) {
            self.commit_group(group);
        }
        self.finished = true;
    }

    /// Commits `group` and answers each of its writes.
    fn commit_group(&self, group: Vec<Box<dyn Pending>>) {
        let now = Instant::now();
        let (late, group): (Vec<_>, Vec<_>) = group
            .into_iter()
            .partition(|job| job.deadline().is_some_and(|d| d <= now));
        for job in late {
            job.fail(self.deadline_passed("while the write waited for its turn"));
        }
        if group.is_empty() {
            return;
        }
        // The group's waits end by its earliest deadline: every write of a backend has the
        // same operation timeout, so that is the one that arrived first, by a few milliseconds.
        let remaining = group
            .iter()
            .filter_map(|job| job.deadline())
            .min()
            .map_or(Duration::MAX, |d| d.saturating_duration_since(now));
        match self.transaction(group, remaining) {
            Ended::Done(answers, committed) => {
                if committed {
                    self.committer.commits.fetch_add(1, Ordering::Relaxed);
                }
                for (job, failed) in answers {
                    match failed {
                        None => job.committed(),
                        Some(error) => job.fail(error),
                    }
                }
            }
            Ended::Failed(group, error) => {
                for job in group {
                    job.fail(error.duplicate());
                }
            }
        }
    }

    fn deadline_passed(&self, when: &str) -> Error {
        Error::timeout(format!(
            "the operation timeout ({} ms, operationTimeoutMillis) passed {when}",
            self.settings.operation_timeout.as_millis()
        ))
        .not_applied()
    }

    /// Runs every write of `group` in one transaction and commits it (not when its one write
    /// failed: then it is rolled back). Each write's own failure is in the answers, with
    /// whether a commit was made; an error that ends the transaction is returned with the
    /// whole group.
    fn transaction(&self, mut group: Vec<Box<dyn Pending>>, remaining: Duration) -> Ended {
        let settings = &self.settings;
        let conn = self.pool.get_timeout(settings.acquire.min(remaining));
        settings.metrics.checked_out(&self.pool, conn.is_ok());
        let mut conn = match conn {
            Ok(conn) => conn,
            Err(e) => {
                let error = Error::timeout(format!(
                    "no pooled connection within the acquire timeout: {e}"
                ))
                .not_applied();
                return Ended::Failed(group, error);
            }
        };
        let limited = remaining < settings.busy;
        let began = conn
            .busy_timeout(settings.busy.min(remaining))
            .map_err(|e| sql_error(e, "setting the busy timeout"))
            .and_then(|()| {
                conn.transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(|e| sql_error(e, "beginning a write"))
            });
        let tx = match began {
            Ok(tx) => tx,
            Err(e) if limited && e.kind() == ErrorKind::Timeout => {
                let error = self
                    .deadline_passed("while another writer held the database")
                    .with_source(e);
                return Ended::Failed(group, error);
            }
            Err(e) => return Ended::Failed(group, e),
        };
        let ns = &*settings.ns;
        // A group of one needs no savepoint: its transaction is its rollback.
        let alone = group.len() == 1;
        let mut failures: Vec<Option<Error>> = Vec::with_capacity(group.len());
        for job in &mut group {
            let outcome = if alone {
                job.apply(&tx, ns).map_err(Failure::Own)
            } else {
                in_savepoint(&tx, |tx| job.apply(tx, ns))
            };
            match outcome {
                Ok(()) => failures.push(None),
                Err(Failure::Own(e)) if alone || !tx.is_autocommit() => failures.push(Some(e)),
                // The error ended the transaction (SQLite rolls back on a full disk or an I/O
                // error), or its savepoint could not be undone: nothing of the group is kept.
                Err(Failure::Own(e) | Failure::Transaction(e)) => return Ended::Failed(group, e),
            }
        }
        if alone && failures[0].is_some() {
            // Dropping the transaction rolls it back.
            drop(tx);
            return Ended::Done(group.into_iter().zip(failures).collect(), false);
        }
        match tx.commit() {
            Ok(()) => Ended::Done(group.into_iter().zip(failures).collect(), true),
            Err(e) => Ended::Failed(group, sql_error(e, "committing")),
        }
    }
}

/// How a group's transaction ended.
enum Ended {
    /// Each write with its own error, if it failed, and whether the transaction committed.
    Done(Vec<(Box<dyn Pending>, Option<Error>)>, bool),
    /// The transaction itself failed: every write of the group fails with this error.
    Failed(Vec<Box<dyn Pending>>, Error),
}

/// Why a write of a group failed.
enum Failure {
    /// Its own error: its savepoint was rolled back, the group goes on.
    Own(Error),
    /// Its savepoint could not be set, released or undone: the group's transaction is lost.
    Transaction(Error),
}

/// Runs `work` in a savepoint: released when it succeeds, rolled back to when it fails.
fn in_savepoint(
    tx: &Transaction<'_>,
    work: impl FnOnce(&Transaction<'_>) -> Result<()>,
) -> std::result::Result<(), Failure> {
    let run = |sql: &str| {
        tx.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map(drop)
            .map_err(|e| Failure::Transaction(sql_error(e, "a savepoint of a grouped write")))
    };
    run("SAVEPOINT grouped_write")?;
    match work(tx) {
        Ok(()) => run("RELEASE grouped_write"),
        // SQLite may already have rolled the whole transaction back; the caller checks.
        Err(e) if tx.is_autocommit() => Err(Failure::Own(e)),
        Err(e) => {
            run("ROLLBACK TO grouped_write")?;
            run("RELEASE grouped_write")?;
            Err(Failure::Own(e))
        }
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
