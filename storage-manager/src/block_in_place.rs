//! The executor hook the plugin loader lends every library it loads: tokio's `block_in_place`
//! on the host's own runtime, which a plugin's copy of tokio cannot reach. Not the plugin's
//! side (that is `storage_plugin::block_in_place`, which calls this through
//! [`HostServices`](storage_core::plugin::HostServices)).

/// Runs `f` with tokio's `block_in_place` where the current thread may use it, and says
/// whether it ran.
///
/// The loader lends this to every plugin it loads; a host with a loader of its own lends it
/// too. It returns `false`, without running
/// the closure, outside a multi-threaded tokio runtime. Plugin code calls [`block_in_place`]
/// instead.
pub fn tokio_block_in_place(f: &mut dyn FnMut()) -> bool {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {}
        _ => return false,
    }
    // One case passes the check and is still refused by tokio: a multi-threaded runtime's
    // handle entered inside a current-thread runtime's `block_on`. tokio panics there before
    // running anything, which is told apart from a panic in `f` by whether `f` started.
    let mut started = false;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tokio::task::block_in_place(|| {
            started = true;
            f()
        })
    }));
    match outcome {
        Ok(()) => true,
        Err(_) if !started => false,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
