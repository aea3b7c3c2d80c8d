//! The runtime plugin declaration: what a plugin library exports, and what the host checks
//! before it calls anything in it.
//!
//! A plugin is a `cdylib` that depends on this crate and calls [`declare_plugin!`](crate::declare_plugin) once. The
//! macro exports a static [`PluginDeclaration`] under the symbol `STORAGE_PLUGIN_DECLARATION`
//! holding the plugin ABI version, the rustc version, this crate's version and features, the
//! ABI fingerprint (a hash of the boundary's definitions: the traits' method lists and
//! signatures, the error and value types; see [`ABI_FINGERPRINT`]), the exact serde_json
//! version, the size and alignment of every type that crosses the boundary, and a register
//! function. The host (storage-manager's loader) compares each of these with its own
//! and refuses the library, naming the field and both values, on any difference; only then does
//! it call `register`.
//!
//! Trait objects (`Arc<dyn BackendFactory>`, `Arc<dyn Cache>`, boxed futures) cross the boundary
//! as plain Rust values. That is sound only because every check above passed: same compiler,
//! same crate versions, same layouts.
//!
//! **Memory.** Both sides use Rust's default global allocator, which for a `cdylib` and a
//! binary on Linux is the same system `malloc` in one process, so a value may be freed by either
//! side. Neither the host nor a plugin may install its own `#[global_allocator]`.
//!
//! **Async and panics** are the plugin side's job: the `storage-plugin` crate runs the plugin's
//! futures on a runtime the plugin owns and catches panics around every call and poll.
//!
//! ```text
//! fn register(registrar: &mut storage_core::plugin::PluginRegistrar) {
//!     registrar.add(storage_plugin::bridged(MyFactory));
//! }
//! storage_core::declare_plugin!(register);
//! ```

use crate::BackendFactory;
use std::ffi::c_char;
use std::sync::{Arc, OnceLock};

/// Bumped whenever [`PluginDeclaration`] or the register protocol changes.
pub const PLUGIN_ABI_VERSION: u32 = 10;

/// A hash of the definitions that cross the boundary (`backend.rs`, `error.rs`, `version.rs`,
/// `blob.rs`, `watch.rs`, `registry.rs`, `plugin.rs`, `config/spec.rs`, `config/common.rs`, `config/near_cache.rs`, comments and whitespace
/// left out), computed when this crate is built. A plugin built against other definitions (a
/// method added, a signature changed, an error kind added), even with the same crate version,
/// has another fingerprint and is refused.
pub const ABI_FINGERPRINT: &str = concat!(env!("STORAGE_CORE_ABI_FINGERPRINT"), "\0");

/// What a plugin must match, for `--version` output: ABI version, fingerprint, serde_json
/// release and rustc.
pub fn abi_summary() -> String {
    format!(
        "plugin ABI {PLUGIN_ABI_VERSION}, fingerprint {}, serde_json {}, {}",
        ABI_FINGERPRINT.trim_end_matches('\0'),
        SERDE_JSON_VERSION.trim_end_matches('\0'),
        RUSTC_VERSION.trim_end_matches('\0')
    )
}

/// The symbol under which a plugin exports its declaration.
pub const DECLARATION_SYMBOL: &[u8] = b"STORAGE_PLUGIN_DECLARATION\0";

/// The compiler that built this crate.
pub const RUSTC_VERSION: &str = concat!(env!("STORAGE_CORE_RUSTC_VERSION"), "\0");

/// This crate's version.
pub const CORE_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// This crate's enabled features (it has none yet).
pub const CORE_FEATURES: &str = "\0";

/// The exact serde_json release this build links, read by the build script (`unknown` when it
/// could not be read; the loader never matches that). Downstream crates may depend on any
/// serde_json 1.x; only a plugin and its host must agree on the release.
pub const SERDE_JSON_VERSION: &str = concat!(env!("STORAGE_CORE_SERDE_JSON_VERSION"), "\0");

/// [`serde_json_features`] bit: objects keep their members in insertion order.
pub const SERDE_JSON_PRESERVE_ORDER: u32 = 1;

/// [`serde_json_features`] bit: numbers keep their text (`arbitrary_precision`), which
/// changes how a number is laid out.
pub const SERDE_JSON_ARBITRARY_PRECISION: u32 = 2;

/// The serde_json features this build has, as bits, measured at run time in the library that
/// calls it (feature unification happens per build, so a plugin built elsewhere may differ).
pub extern "C" fn serde_json_features() -> u32 {
    let mut map = serde_json::Map::new();
    map.insert("b".into(), serde_json::Value::Null);
    map.insert("a".into(), serde_json::Value::Null);
    let mut bits = 0;
    if map.keys().next().is_some_and(|k| k == "b") {
        bits |= SERDE_JSON_PRESERVE_ORDER;
    }
    // Out of f64's range: only a build that keeps the text can hold it.
    if serde_json::from_str::<serde_json::Value>("1e400").is_ok() {
        bits |= SERDE_JSON_ARBITRARY_PRECISION;
    }
    bits
}

/// The size and alignment of one type that crosses the boundary.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TypeLayout {
    /// The type's name, NUL-terminated.
    pub name: *const c_char,
    /// `size_of`.
    pub size: usize,
    /// `align_of`.
    pub align: usize,
}

macro_rules! layouts {
    ($($t:ty),* $(,)?) => {
        [$(TypeLayout {
            name: concat!(stringify!($t), "\0").as_ptr() as *const c_char,
            size: std::mem::size_of::<$t>(),
            align: std::mem::align_of::<$t>(),
        }),*]
    };
}

/// The layouts of the types that cross the boundary, as this build sees them.
pub static LAYOUTS: SyncLayouts = SyncLayouts(layouts![
    serde_json::Value,
    Option<serde_json::Value>,
    crate::Error,
    crate::Result<Option<serde_json::Value>>,
    crate::config::BackendSpec,
    crate::config::BlockInput<'static>,
    Arc<dyn crate::config::BackendConfig>,
    crate::CacheEntry,
    crate::KeyTtl,
    std::time::Duration,
    String,
    Vec<String>,
    Arc<dyn BackendFactory>,
    Arc<dyn crate::Cache>,
    Arc<dyn crate::Database>,
    Arc<dyn crate::blob::BlobStore>,
    crate::blob::BlobReader,
    crate::blob::BlobMeta,
    crate::blob::PutOptions,
    crate::blob::BlobStats,
    PluginRegistrar,
]);

/// [`TypeLayout`]s in a static (their names are pointers to string literals).
pub struct SyncLayouts(pub [TypeLayout; 21]);
// SAFETY: the pointers are to 'static, immutable string literals.
unsafe impl Sync for SyncLayouts {}

/// What the host lends a plugin's code: hooks into the host's executor, which the plugin's
/// own copy of the async runtime cannot see (each library has its own thread-locals).
#[derive(Debug, Clone, Copy)]
pub struct HostServices {
    /// Runs the closure on the calling thread after telling the host's executor that this
    /// thread is about to block, so that the executor's other tasks move to another thread
    /// meanwhile (tokio's `block_in_place`). Returns `false` without running it where the
    /// host's executor cannot do that (a current-thread runtime, or none); the caller then
    /// sends the work to a blocking thread instead.
    pub block_in_place: fn(&mut dyn FnMut()) -> bool,
}

/// tokio's `block_in_place` where the current thread may use it: runs `f` and returns `true`
/// on a multi-threaded runtime of *this* copy of tokio; returns `false`, without running `f`,
/// on a current-thread runtime or outside any. The loader lends it to every plugin it loads
/// ([`HostServices::block_in_place`]), and code linked into the host directly uses it as it is
/// (its copy of tokio is the host's); inside a loaded library this copy sees no runtime, so
/// plugin code goes through `storage_plugin::block_in_place`, which picks the right one.
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

/// The host's services, in the plugin library's copy of this crate: set by
/// [`declare_plugin!`](crate::declare_plugin)'s register function, never in the host's own copy.
static HOST_SERVICES: OnceLock<HostServices> = OnceLock::new();

/// The services of the host that loaded this library, if a host's loader did (code linked
/// into the host directly has none).
pub fn host_services() -> Option<HostServices> {
    HOST_SERVICES.get().copied()
}

/// Keeps the registrar's host services for [`host_services`]. Called by the register function
/// that [`declare_plugin!`](crate::declare_plugin) generates; the first host to register wins.
#[doc(hidden)]
pub fn keep_host_services(registrar: &PluginRegistrar) {
    if let Some(host) = registrar.host {
        let _ = HOST_SERVICES.set(host);
    }
}

/// What a plugin hands the host: the factories it registers. The host lends its services
/// through it.
#[derive(Default)]
pub struct PluginRegistrar {
    factories: Vec<Arc<dyn BackendFactory>>,
    host: Option<HostServices>,
}

impl PluginRegistrar {
    /// An empty registrar lending no services.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty registrar lending `host` (the host's loader makes one per library).
    pub fn with_host(host: HostServices) -> Self {
        Self {
            factories: Vec::new(),
            host: Some(host),
        }
    }

    /// Registers a factory. Wrap it with `storage_plugin::bridged` so that its async work runs
    /// on the plugin's own runtime and its panics become errors.
    pub fn add(&mut self, factory: Arc<dyn BackendFactory>) {
        self.factories.push(factory);
    }

    /// The factories added so far.
    pub fn into_factories(self) -> Vec<Arc<dyn BackendFactory>> {
        self.factories
    }
}

/// The register function: fills the registrar; returns 0, or 1 if it panicked.
pub type RegisterFn = unsafe extern "C" fn(registrar: *mut PluginRegistrar) -> i32;

/// What a plugin library exports. `abi_version` comes first and never moves, so that a host
/// can refuse a different ABI before reading anything else.
#[repr(C)]
pub struct PluginDeclaration {
    /// [`PLUGIN_ABI_VERSION`] of the plugin's build.
    pub abi_version: u32,
    /// [`RUSTC_VERSION`], NUL-terminated.
    pub rustc_version: *const c_char,
    /// [`CORE_VERSION`].
    pub core_version: *const c_char,
    /// [`CORE_FEATURES`].
    pub core_features: *const c_char,
    /// [`ABI_FINGERPRINT`].
    pub abi_fingerprint: *const c_char,
    /// [`SERDE_JSON_VERSION`].
    pub serde_json_version: *const c_char,
    /// [`serde_json_features`], as the plugin's build computes it.
    pub serde_json_features: extern "C" fn() -> u32,
    /// [`LAYOUTS`].
    pub layouts: *const TypeLayout,
    /// Their number.
    pub layouts_len: usize,
    /// Called once the declaration is accepted.
    pub register: RegisterFn,
}

// SAFETY: every pointer in a declaration is to 'static, immutable data.
unsafe impl Sync for PluginDeclaration {}

/// Exports a plugin declaration whose `register` calls `$register(&mut PluginRegistrar)`.
///
/// A panic inside `$register` is caught and reported to the host as a failed registration.
#[macro_export]
macro_rules! declare_plugin {
    ($register:path) => {
        #[doc(hidden)]
        unsafe extern "C" fn __storage_plugin_register(
            registrar: *mut $crate::plugin::PluginRegistrar,
        ) -> i32 {
            let result = ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| {
                // SAFETY: the host passes a valid, exclusive registrar for this call.
                let registrar = unsafe { &mut *registrar };
                $crate::plugin::keep_host_services(registrar);
                $register(registrar);
            }));
            if result.is_ok() { 0 } else { 1 }
        }

        /// The declaration the host's loader reads.
        #[unsafe(no_mangle)]
        pub static STORAGE_PLUGIN_DECLARATION: $crate::plugin::PluginDeclaration =
            $crate::plugin::PluginDeclaration {
                abi_version: $crate::plugin::PLUGIN_ABI_VERSION,
                rustc_version: $crate::plugin::RUSTC_VERSION.as_ptr() as *const ::std::ffi::c_char,
                core_version: $crate::plugin::CORE_VERSION.as_ptr() as *const ::std::ffi::c_char,
                core_features: $crate::plugin::CORE_FEATURES.as_ptr() as *const ::std::ffi::c_char,
                abi_fingerprint: $crate::plugin::ABI_FINGERPRINT.as_ptr()
                    as *const ::std::ffi::c_char,
                serde_json_version: $crate::plugin::SERDE_JSON_VERSION.as_ptr()
                    as *const ::std::ffi::c_char,
                serde_json_features: $crate::plugin::serde_json_features,
                layouts: $crate::plugin::LAYOUTS.0.as_ptr(),
                layouts_len: $crate::plugin::LAYOUTS.0.len(),
                register: __storage_plugin_register,
            };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::abi_fingerprint as abi;

    fn boundary_sources() -> Vec<String> {
        abi::BOUNDARY_FILES
            .iter()
            .map(|f| {
                std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(f))
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn the_fingerprint_is_the_boundary_definitions_hash() {
        let sources = boundary_sources();
        let refs: Vec<&str> = sources.iter().map(String::as_str).collect();
        assert_eq!(format!("{}\0", abi::fingerprint(&refs)), ABI_FINGERPRINT);
        assert!(
            abi_summary().starts_with(&format!("plugin ABI {PLUGIN_ABI_VERSION}, fingerprint "))
        );
    }

    #[test]
    fn the_fingerprint_follows_definitions_not_comments() {
        let sources = boundary_sources();
        let refs: Vec<&str> = sources.iter().map(String::as_str).collect();
        let ours = abi::fingerprint(&refs);
        let with = |i: usize, text: String| {
            let mut changed: Vec<String> = sources.clone();
            changed[i] = text;
            let refs: Vec<&str> = changed.iter().map(String::as_str).collect();
            abi::fingerprint(&refs)
        };
        let backend = &sources[0];
        // Documentation and layout do not change it.
        let documented =
            backend.replace("pub trait Store", "/// More words.\n\n   pub trait Store");
        assert_eq!(with(0, documented), ours);
        // A method added to a trait, a changed signature, an error kind added: they do.
        let method = backend.replace(
            "    async fn ping(&self) -> Result<()>;",
            "    async fn ping(&self) -> Result<()>;\n    async fn flush(&self) -> Result<()>;",
        );
        assert_ne!(method, *backend, "the edit applies");
        assert_ne!(with(0, method), ours);
        let signature = backend.replace(
            "async fn get_length(&self, key: &str) -> Result<u64>;",
            "async fn get_length(&self, key: &str) -> Result<usize>;",
        );
        assert_ne!(signature, *backend, "the edit applies");
        assert_ne!(with(0, signature), ours);
        let error = sources[1].replace("    Other,", "    Other,\n    Throttled,");
        assert_ne!(error, sources[1], "the edit applies");
        assert_ne!(with(1, error), ours);
    }

    #[test]
    fn serde_json_version_is_the_locked_release() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
            .expect("the workspace lockfile");
        let locked = lock
            .split("[[package]]")
            .find(|p| p.contains("name = \"serde_json\"\n"))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
            .and_then(|v| v.strip_suffix('"'))
            .expect("serde_json in Cargo.lock");
        assert_eq!(SERDE_JSON_VERSION, format!("{locked}\0"));
    }

    #[test]
    fn this_build_keeps_object_member_order() {
        assert_eq!(serde_json_features(), SERDE_JSON_PRESERVE_ORDER);
    }

    #[test]
    fn declaration_strings_are_terminated() {
        for s in [
            RUSTC_VERSION,
            CORE_VERSION,
            CORE_FEATURES,
            SERDE_JSON_VERSION,
        ] {
            assert!(s.ends_with('\0'));
            assert_eq!(s.matches('\0').count(), 1);
        }
        assert!(RUSTC_VERSION.starts_with("rustc "));
    }
}
