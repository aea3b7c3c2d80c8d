//! The register protocol lends the host's executor hook to the plugin's code: before a host
//! registers the library, [`storage_plugin::block_in_place`] gives work back; after, it runs
//! the work in place on the host's multi-threaded runtime.
//!
//! This test binary plays both sides: it declares a plugin, and calls the declaration's
//! register function as the host's loader does.

use storage_core::plugin::{HostServices, PluginRegistrar};

fn register(_: &mut PluginRegistrar) {}
storage_core::declare_plugin!(register);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_plugin_blocks_in_place_through_the_host() {
    assert!(
        storage_plugin::block_in_place(|| ()).is_err(),
        "no host has registered this library yet"
    );
    let mut registrar = PluginRegistrar::with_host(HostServices {
        block_in_place: storage_manager::tokio_block_in_place,
    });
    // SAFETY: the declaration is this binary's own; the registrar is exclusive for the call.
    let status = unsafe { (STORAGE_PLUGIN_DECLARATION.register)(&mut registrar) };
    assert_eq!(status, 0);
    let on_worker = tokio::spawn(async {
        let caller = std::thread::current().id();
        storage_plugin::block_in_place(|| std::thread::current().id()).ok() == Some(caller)
    });
    assert!(
        on_worker.await.unwrap(),
        "ran in place, on the caller's thread"
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
