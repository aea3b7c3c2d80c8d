//! Blocking work on the caller's thread, where the host's executor allows it.
//!
//! A plugin's blocking work (a commit and its fsync) normally goes to a blocking thread: the
//! task hands it over and waits for the answer, two thread wake-ups that on a small machine
//! cost as much as a fast disk write. tokio's `block_in_place` avoids both on a multi-threaded
//! runtime: the work runs where it is, and the executor moves its other tasks to another
//! thread meanwhile. A loaded plugin cannot call it itself, because its copy of tokio does not
//! see the host's executor; the host lends its own through
//! [`HostServices`](storage_core::plugin::HostServices) (storage-manager's loader lends
//! [`tokio_block_in_place`](storage_core::plugin::tokio_block_in_place)), and
//! [`block_in_place`] uses it. The same crate linked into the host has no lent hook and needs
//! none: its copy of tokio is the host's, so it calls that function directly.
//!
//! Not a general executor bridge: only this one hook crosses the boundary.

use storage_core::plugin::{host_services, tokio_block_in_place};

/// Runs `f`, which blocks its thread, on the calling thread if the host's executor can move its
/// other tasks away meanwhile; otherwise gives `f` back unrun, for the caller to send to a
/// blocking thread (`tokio::task::spawn_blocking`, on the plugin's runtime).
///
/// It runs in place under a multi-threaded tokio runtime: in a library loaded by the host's
/// loader through the hook the loader lends, in code linked into the host directly through its
/// own (the host's) tokio. A current-thread runtime, or none, always gets `f` back.
///
/// ```
/// // Outside any runtime: the closure comes back.
/// let back = storage_plugin::block_in_place(|| 1 + 1);
/// assert!(back.is_err());
/// ```
pub fn block_in_place<R, F: FnOnce() -> R>(f: F) -> Result<R, F> {
    match host_services() {
        Some(host) => run_with(host.block_in_place, f),
        // Linked into the host: no loader lent a hook, and this copy of tokio is the host's.
        None => run_with(tokio_block_in_place, f),
    }
}

/// What the closure handed to the host has done.
enum Slot<F, R> {
    Waiting(F),
    Running,
    Done(R),
}

fn run_with<R, F: FnOnce() -> R>(hook: fn(&mut dyn FnMut()) -> bool, f: F) -> Result<R, F> {
    let mut slot = Slot::Waiting(f);
    hook(&mut || {
        if let Slot::Waiting(f) = std::mem::replace(&mut slot, Slot::Running) {
            slot = Slot::Done(f());
        }
    });
    match slot {
        Slot::Done(out) => Ok(out),
        Slot::Waiting(f) => Err(f),
        // Only a panic in `f` leaves it running, and that panic has not returned here.
        Slot::Running => unreachable!("a blocking closure neither finished nor panicked"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;
    use storage_core::plugin::tokio_block_in_place;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn runs_in_place_while_the_executor_serves_other_tasks() {
        // On the runtime's only worker (the test's own future runs on another thread): the
        // task spawned below can run while `f` blocks only if the executor moved it elsewhere.
        let on_worker = tokio::spawn(async {
            let caller = std::thread::current().id();
            let (tx, rx) = mpsc::channel();
            let other = tokio::spawn(async move { tx.send(()).unwrap() });
            let ran_on = run_with(tokio_block_in_place, || {
                rx.recv_timeout(Duration::from_secs(10))
                    .map(|()| std::thread::current().id())
            });
            let ran_on = ran_on
                .ok()
                .map(|r| r.expect("another task ran while this one blocked"));
            assert_eq!(ran_on, Some(caller), "ran on the calling thread");
            other.await.unwrap();
        });
        on_worker.await.unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_current_thread_runtime_gets_the_work_back() {
        let back = run_with(tokio_block_in_place, || "ran");
        assert_eq!(back.map_err(|f| f()), Err("ran"));
    }

    #[test]
    fn outside_any_runtime_the_work_comes_back() {
        assert!(run_with(tokio_block_in_place, || ()).is_err());
    }

    #[test]
    fn a_multi_threaded_handle_entered_in_a_current_thread_runtime_gets_the_work_back() {
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let current = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        current.block_on(async {
            let _entered = multi.enter();
            assert!(run_with(tokio_block_in_place, || ()).is_err());
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_in_the_work_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| {
            let _ = run_with(tokio_block_in_place, || panic!("in the work"));
        });
        assert!(caught.is_err());
    }
}
