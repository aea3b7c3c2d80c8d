//! Write-behind for [`CacheAside`](crate::CacheAside): the bounded queue of sets and deletes
//! waiting for the database, and the worker that writes them in order, retrying what may
//! succeed later and keeping what the database refused for good. Not the calls that queue
//! (`cache_aside.rs`).

use crate::cache_aside::{invalidate, lock};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use storage_core::raw::{Resend, RetryPolicy};
use storage_core::telemetry;
use storage_core::{Cache, Database};
use tokio::sync::{Notify, Semaphore};

/// A queued write-behind operation.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Set(String, Value),
    Delete(String),
}

impl Op {
    pub(crate) fn key(&self) -> &str {
        match self {
            Op::Set(k, _) | Op::Delete(k) => k,
        }
    }
}

/// How the write-behind worker retries: without a limit (it keeps an operation until it lands,
/// or until shutdown), backing off from 50 ms to 2 s.
const WRITE_BEHIND_RETRY: RetryPolicy = RetryPolicy {
    max_retries: u32::MAX,
    base_delay: Duration::from_millis(50),
    max_delay: Duration::from_secs(2),
};

pub(crate) struct Queue {
    /// Queued operations. `stop` is set, and every push happens, under this lock, so no
    /// operation can be queued after a shutdown has taken its report.
    pub(crate) ops: Mutex<VecDeque<Op>>,
    /// Free slots: the queue is bounded.
    pub(crate) space: Semaphore,
    pub(crate) wake: Notify,
    pub(crate) stop: AtomicBool,
    pub(crate) idle: Notify,
    /// Operations the database refused for good, kept until retried or acknowledged.
    pub(crate) failed: Mutex<VecDeque<(Op, String)>>,
    /// How many refused operations are kept; when full, the worker waits for the application.
    pub(crate) failed_capacity: usize,
    pub(crate) failed_space: Notify,
}

impl Queue {
    /// Takes the operation at the front off the queue once the worker is done with it
    /// (written, or kept among the refused ones), and frees its slot.
    pub(crate) fn done_with_front(&self) {
        let mut ops = lock(&self.ops);
        ops.pop_front();
        metrics::gauge!(telemetry::WRITE_BEHIND_DEPTH).set(ops.len() as f64);
        drop(ops);
        self.space.add_permits(1);
    }
}

/// Writes queued operations in order, retrying transient failures until shutdown. An
/// operation refused for good moves to the failed list (and out of the cache); when that list
/// is full the worker waits for the application to retry or acknowledge, so the queue fills and
/// callers get errors instead of writes being dropped.
pub(crate) async fn drain(
    queue: Arc<Queue>,
    database: Arc<dyn Database>,
    cache: Arc<dyn Cache>,
    hold: Duration,
) {
    let mut failures = 0u32;
    loop {
        let next = lock(&queue.ops).front().cloned();
        let Some(op) = next else {
            queue.idle.notify_waiters();
            if queue.stop.load(Ordering::Acquire) {
                return;
            }
            queue.wake.notified().await;
            continue;
        };
        let result = match &op {
            Op::Set(k, v) => database.set(k, v).await,
            Op::Delete(k) => database.delete(k).await.map(|_| ()),
        };
        // Set and delete are idempotent: retried, as the one retry rule allows, until they
        // land or shutdown's timeout aborts the worker.
        let retry = result
            .as_ref()
            .err()
            .and_then(|e| WRITE_BEHIND_RETRY.next_delay(e, Resend::Allowed, failures.min(6)));
        match result {
            Err(e) if retry.is_some() => {
                failures += 1;
                let delay = retry.unwrap_or_default();
                tracing::warn!(key = op.key(), error = %e, ?delay, "write-behind failed; will retry");
                tokio::time::sleep(delay).await;
            }
            Err(e) => {
                tracing::error!(key = op.key(), error = %e, "write-behind operation refused; kept until retried or acknowledged");
                // The cache must not keep a value the database refused.
                if let Op::Set(k, _) = &op {
                    let _ = invalidate(&*cache, k, hold).await;
                }
                loop {
                    let space = queue.failed_space.notified();
                    {
                        let mut failed = lock(&queue.failed);
                        if failed.len() < queue.failed_capacity {
                            failed.push_back((
                                op.clone(),
                                storage_core::redact::redact(&e.to_string()),
                            ));
                            metrics::counter!(telemetry::WRITE_BEHIND_FAILED).increment(1);
                            break;
                        }
                    }
                    if queue.stop.load(Ordering::Acquire) {
                        // Shutting down with the failed list full: the op stays queued and
                        // so in the report.
                        return;
                    }
                    space.await;
                }
                failures = 0;
                queue.done_with_front();
            }
            Ok(()) => {
                failures = 0;
                queue.done_with_front();
            }
        }
    }
}
