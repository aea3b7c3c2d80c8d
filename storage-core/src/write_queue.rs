//! The queue of a group-committing backend: writes wait in it, the first writer that finds no
//! commit running leads, and the leader takes them in groups until it is empty. Also the
//! reply each queued write is answered through.
//!
//! For backends with one writer at a time and a flush per commit (SQLite, redb), where writers
//! queued behind each other would each pay a whole flush in turn. What a group does (one
//! transaction, savepoints or re-running the writes after a failed one) and on which thread the
//! leader runs are the backend's; the queue only hands out groups in arrival order, makes sure
//! exactly one leader runs at a time, and lets a leader that stopped early hand back what is
//! queued. Not a lock around the database: a backend still opens its own transaction.

use crate::error::{Error, Result};
use std::sync::Mutex;
use tokio::sync::oneshot;

/// Writes waiting for a commit, and whether a leader is committing them.
///
/// ```
/// use storage_core::raw::WriteQueue;
///
/// let queue = WriteQueue::new();
/// assert!(queue.push("a"), "the first write leads");
/// assert!(!queue.push("b"), "a leader is running: the second one waits");
/// assert_eq!(queue.next_group(10), Some(vec!["a", "b"]));
/// assert_eq!(queue.next_group(10), None, "empty: the leader is done");
/// assert!(queue.push("c"), "so the next write leads again");
/// ```
#[derive(Debug)]
pub struct WriteQueue<J> {
    state: Mutex<State<J>>,
}

#[derive(Debug)]
struct State<J> {
    jobs: Vec<J>,
    leading: bool,
}

impl<J> Default for WriteQueue<J> {
    fn default() -> Self {
        WriteQueue {
            state: Mutex::new(State {
                jobs: Vec::new(),
                leading: false,
            }),
        }
    }
}

impl<J> WriteQueue<J> {
    /// An empty queue, no leader running.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<J>> {
        // The lock is held only to move jobs in and out: a panic elsewhere leaves it sound.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `job`. True when no leader was running: the caller must now lead (take groups
    /// with [`next_group`](Self::next_group) until it answers `None`).
    pub fn push(&self, job: J) -> bool {
        let mut state = self.state();
        state.jobs.push(job);
        !std::mem::replace(&mut state.leading, true)
    }

    /// For the leader: the next group, up to `max` queued jobs in arrival order. `None` when
    /// the queue is empty, and the leader is then done: the next [`push`](Self::push) leads.
    /// With `max` 0 it takes nothing and tells whether more is queued (`Some` of an empty
    /// group, the caller still leading), for a leader that hands the rest to another thread.
    pub fn next_group(&self, max: usize) -> Option<Vec<J>> {
        let mut state = self.state();
        if state.jobs.is_empty() {
            state.leading = false;
            return None;
        }
        let n = state.jobs.len().min(max);
        Some(state.jobs.drain(..n).collect())
    }

    /// For a leader that stops before the queue is empty (its thread never ran, a write
    /// panicked): leaves the queue without a leader, and hands each queued job to `answer`
    /// with the error it is to fail with (not applied: no commit of it ran).
    pub fn abandon(&self, mut answer: impl FnMut(J, Error)) {
        let jobs = {
            let mut state = self.state();
            state.leading = false;
            std::mem::take(&mut state.jobs)
        };
        for job in jobs {
            answer(
                job,
                Error::other("the write was abandoned: the commit that held it stopped")
                    .not_applied(),
            );
        }
    }
}

/// The answering side of a queued write: its result, kept from when the write ran in its
/// group's transaction until that transaction commits (or fails).
///
/// ```
/// # async fn demo() -> storage_core::Result<()> {
/// use storage_core::raw::WriteReply;
///
/// let (mut reply, answer) = WriteReply::channel();
/// reply.keep(7);
/// reply.committed();
/// assert_eq!(answer.wait().await?, 7);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct WriteReply<T> {
    out: Option<T>,
    sender: oneshot::Sender<Result<T>>,
}

impl<T> WriteReply<T> {
    /// A reply, and the answer its caller waits on.
    pub fn channel() -> (Self, WriteAnswer<T>) {
        let (sender, receiver) = oneshot::channel();
        (WriteReply { out: None, sender }, WriteAnswer(receiver))
    }

    /// Keeps what the write returned, until its transaction commits.
    pub fn keep(&mut self, out: T) {
        self.out = Some(out);
    }

    /// The transaction committed: the caller gets what was kept.
    pub fn committed(self) {
        let result = self
            .out
            .ok_or_else(|| Error::other("a grouped write was committed without being applied"));
        // The writer may have stopped waiting; its write's outcome is then nobody's to hear.
        let _ = self.sender.send(result);
    }

    /// The write failed, alone or with its group.
    pub fn fail(self, error: Error) {
        let _ = self.sender.send(Err(error));
    }
}

/// What the caller of a queued write waits on: the other end of its [`WriteReply`].
#[derive(Debug)]
pub struct WriteAnswer<T>(oneshot::Receiver<Result<T>>);

impl<T> WriteAnswer<T> {
    /// The write's result. A reply dropped unanswered (the leader's thread never ran, the
    /// runtime shutting down) is an error saying the write was not applied.
    pub async fn wait(self) -> Result<T> {
        self.0.await.map_err(|_| {
            Error::other("the write was abandoned before its commit ran (runtime shutting down?)")
                .not_applied()
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorKind, Outcome};

    #[test]
    fn groups_come_in_arrival_order_and_no_larger_than_asked() {
        let queue = WriteQueue::new();
        assert!(queue.push(1));
        for i in 2..=5 {
            assert!(!queue.push(i), "one leader at a time");
        }
        assert_eq!(queue.next_group(2), Some(vec![1, 2]));
        assert_eq!(queue.next_group(0), Some(vec![]), "more is queued");
        assert_eq!(queue.next_group(2), Some(vec![3, 4]));
        assert!(
            !queue.push(6),
            "still leading until the queue was seen empty"
        );
        assert_eq!(queue.next_group(9), Some(vec![5, 6]));
        assert_eq!(queue.next_group(0), None);
        assert!(queue.push(7), "the queue was left without a leader");
    }

    #[test]
    fn an_abandoned_queue_hands_back_its_jobs_and_has_no_leader() {
        let queue = WriteQueue::new();
        queue.push("a");
        queue.push("b");
        let mut answered = Vec::new();
        queue.abandon(|job, error| {
            assert_eq!(error.outcome(), Outcome::NotApplied);
            answered.push(job);
        });
        assert_eq!(answered, vec!["a", "b"]);
        assert!(queue.push("c"), "the next write leads");
    }

    #[tokio::test]
    async fn a_reply_answers_what_was_kept_or_the_failure() {
        let (mut reply, answer) = WriteReply::channel();
        reply.keep("stored");
        reply.committed();
        assert_eq!(answer.wait().await.unwrap(), "stored");

        let (reply, answer) = WriteReply::<u8>::channel();
        reply.fail(Error::conflict("k", None));
        let e = answer.wait().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);

        let (reply, answer) = WriteReply::<u8>::channel();
        reply.committed();
        let e = answer.wait().await.unwrap_err();
        assert!(e.message().contains("without being applied"), "{e}");

        let (reply, answer) = WriteReply::<u8>::channel();
        drop(reply);
        let e = answer.wait().await.unwrap_err();
        assert_eq!(e.outcome(), Outcome::NotApplied, "{e}");
    }
}
