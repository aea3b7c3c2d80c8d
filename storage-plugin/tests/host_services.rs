//! The register protocol lends the host's executor hook to the plugin's code: once a host
//! registers the library, [`storage_plugin::block_in_place`] runs the work through the lent
//! hook; before (code linked into the host directly, whose tokio is the host's), it runs the
//! work in place through its own copy of the same hook. A current-thread runtime gets the work
//! back either way.
//!
//! This test binary plays both sides: it declares a plugin, and calls the declaration's
//! register function as the host's loader does.

use std::sync::atomic::{AtomicUsize, Ordering};
use storage_core::plugin::{HostServices, PluginRegistrar};

fn register(_: &mut PluginRegistrar) {}
storage_core::declare_plugin!(register);

/// How often the lent hook was called.
static LENT_CALLS: AtomicUsize = AtomicUsize::new(0);

/// The host's hook, counted.
fn lent_hook(f: &mut dyn FnMut()) -> bool {
    LENT_CALLS.fetch_add(1, Ordering::SeqCst);
    storage_manager::tokio_block_in_place(f)
}

/// Whether `block_in_place` ran its work on the calling worker thread.
async fn ran_in_place() -> bool {
    tokio::spawn(async {
        let caller = std::thread::current().id();
        storage_plugin::block_in_place(|| std::thread::current().id()).ok() == Some(caller)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linked_code_blocks_in_place_and_a_registered_plugin_through_the_host() {
    assert!(
        ran_in_place().await,
        "linked (no host registered yet): in place, through this copy of tokio"
    );
    assert_eq!(LENT_CALLS.load(Ordering::SeqCst), 0);
    let mut registrar = PluginRegistrar::with_host(HostServices {
        block_in_place: lent_hook,
    });
    // SAFETY: the declaration is this binary's own; the registrar is exclusive for the call.
    let status = unsafe { (STORAGE_PLUGIN_DECLARATION.register)(&mut registrar) };
    assert_eq!(status, 0);
    assert!(ran_in_place().await, "ran in place, on the caller's thread");
    assert_eq!(
        LENT_CALLS.load(Ordering::SeqCst),
        1,
        "through the lent hook"
    );
    // A current-thread runtime still gets the work back.
    let refused = std::thread::spawn(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async { storage_plugin::block_in_place(|| ()).is_err() })
    });
    assert!(refused.join().unwrap());
}
