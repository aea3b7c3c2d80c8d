//! The runtime plugin loader.
//!
//! It opens each library named in `plugins:`, checks its whole declaration against this build
//! before calling anything in it, registers its factories, and keeps the library loaded for
//! the life of the process, so that no object it made can outlive its code. It lends each
//! library the host's executor hook ([`HostServices`]), through which a plugin's blocking work
//! can run in place on a multi-threaded runtime.

use libloading::Library;
use std::ffi::{CStr, c_char};
use std::path::Path;
use std::sync::Mutex;
use storage_core::plugin::{
    self, DECLARATION_SYMBOL, HostServices, PluginDeclaration, PluginRegistrar,
};
use storage_core::{Error, Registry, Result};

/// Libraries stay loaded until the process exits: objects from them may be anywhere.
static LOADED: Mutex<Vec<Library>> = Mutex::new(Vec::new());

fn host_str(s: &'static str) -> &'static str {
    s.trim_end_matches('\0')
}

/// Reads a NUL-terminated string from a declaration.
///
/// # Safety
/// `ptr` must point to a NUL-terminated string that lives as long as the library.
unsafe fn plugin_str(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return "(null)".into();
    }
    // SAFETY: guaranteed by the caller.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// Compares a declaration with this build, naming the first field that differs and both values.
///
/// # Safety
/// `decl` must be a declaration whose `abi_version` equals ours (so its layout is ours).
unsafe fn check(decl: &PluginDeclaration, path: &Path) -> Result<()> {
    let mismatch = |field: &str, plugin: &str, host: &str| {
        Error::plugin(format!(
            "{}: {field} differs: the plugin has {plugin:?}, this host has {host:?}",
            path.display()
        ))
    };
    let fields: [(&str, *const c_char, &'static str); 5] = [
        ("rustc version", decl.rustc_version, plugin::RUSTC_VERSION),
        (
            "storage-core version",
            decl.core_version,
            plugin::CORE_VERSION,
        ),
        (
            "storage-core features",
            decl.core_features,
            plugin::CORE_FEATURES,
        ),
        (
            "ABI fingerprint (the boundary's trait and type definitions)",
            decl.abi_fingerprint,
            plugin::ABI_FINGERPRINT,
        ),
        (
            "serde_json version",
            decl.serde_json_version,
            plugin::SERDE_JSON_VERSION,
        ),
    ];
    for (field, ptr, host) in fields {
        // SAFETY: the declaration's strings are 'static in the library.
        let theirs = unsafe { plugin_str(ptr) };
        // An `unknown` (a build that could not read it) matches nothing, itself included.
        if theirs != host_str(host) || theirs == "unknown" {
            return Err(mismatch(field, &theirs, host_str(host)));
        }
    }
    let (theirs, ours) = ((decl.serde_json_features)(), plugin::serde_json_features());
    if theirs != ours {
        let name = |bits: u32| {
            let mut names = Vec::new();
            for (bit, feature) in [
                (plugin::SERDE_JSON_PRESERVE_ORDER, "preserve_order"),
                (
                    plugin::SERDE_JSON_ARBITRARY_PRECISION,
                    "arbitrary_precision",
                ),
            ] {
                names.push(if bits & bit != 0 {
                    feature.to_string()
                } else {
                    format!("no {feature}")
                });
            }
            names.join(", ")
        };
        return Err(mismatch("serde_json features", &name(theirs), &name(ours)));
    }
    let ours = &plugin::LAYOUTS.0;
    if decl.layouts_len != ours.len() || decl.layouts.is_null() {
        return Err(mismatch(
            "number of boundary types",
            &decl.layouts_len.to_string(),
            &ours.len().to_string(),
        ));
    }
    // SAFETY: the library declares `layouts_len` entries at `layouts`.
    let theirs = unsafe { std::slice::from_raw_parts(decl.layouts, decl.layouts_len) };
    for (t, o) in theirs.iter().zip(ours) {
        // SAFETY: layout names are 'static strings in each library.
        let (tn, on) = unsafe { (plugin_str(t.name), plugin_str(o.name)) };
        if tn != on || t.size != o.size || t.align != o.align {
            return Err(mismatch(
                &format!("layout of {on}"),
                &format!("{tn}: size {} align {}", t.size, t.align),
                &format!("{on}: size {} align {}", o.size, o.align),
            ));
        }
    }
    Ok(())
}

/// Loads one plugin library into `registry`. Returns the type names it registered.
pub fn load_plugin(path: &Path, registry: &mut Registry) -> Result<Vec<String>> {
    // What it is, who could have written it, and that its image is whole, before mapping it.
    let real = crate::plugin_file::check_plugin_file(path)?;
    // SAFETY: loading runs the library's initialisers; a plugin is trusted code by configuration,
    // and its file passed the checks above.
    let library = unsafe { Library::new(&real) }
        .map_err(|e| Error::plugin(format!("{} is not a loadable library: {e}", path.display())))?;
    // SAFETY: the symbol, if present, is a static `PluginDeclaration`; its first field, the ABI
    // version, is read before anything else.
    let decl: &PluginDeclaration = unsafe {
        let symbol = library
            .get::<*const PluginDeclaration>(DECLARATION_SYMBOL)
            .map_err(|_| {
                Error::plugin(format!(
                    "{} has no storage plugin declaration (symbol STORAGE_PLUGIN_DECLARATION); build it with storage_core::declare_plugin!",
                    path.display()
                ))
            })?;
        let ptr: *const PluginDeclaration = *symbol;
        &*ptr
    };
    if decl.abi_version != plugin::PLUGIN_ABI_VERSION {
        return Err(Error::plugin(format!(
            "{}: plugin ABI version differs: the plugin has {}, this host has {}",
            path.display(),
            decl.abi_version,
            plugin::PLUGIN_ABI_VERSION
        )));
    }
    // SAFETY: the ABI version matched, so the declaration has our layout.
    unsafe { check(decl, path)? };
    let mut registrar = PluginRegistrar::with_host(HostServices {
        block_in_place: crate::tokio_block_in_place,
    });
    // SAFETY: the declaration passed every check; register gets an exclusive registrar.
    let status = unsafe { (decl.register)(&mut registrar) };
    if status != 0 {
        return Err(Error::plugin(format!(
            "{}: the plugin's register function panicked",
            path.display()
        )));
    }
    let factories = registrar.into_factories();
    // Check every name before registering any, so that a refused plugin adds nothing.
    let mut names = Vec::new();
    for f in &factories {
        for name in f.type_names() {
            if registry.canonical_type(&name).is_some() || names.contains(&name) {
                return Err(Error::plugin(format!(
                    "{}: backend type {name:?} is already registered",
                    path.display()
                )));
            }
            names.push(name);
        }
    }
    for f in factories {
        registry.register(f)?;
    }
    tracing::info!(plugin = %path.display(), types = ?names, "storage plugin loaded");
    LOADED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(library);
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" fn never(_: *mut plugin::PluginRegistrar) -> i32 {
        1
    }

    /// This build's declaration with `fingerprint` in place of its own.
    fn declaration(fingerprint: &'static std::ffi::CStr) -> PluginDeclaration {
        PluginDeclaration {
            abi_version: plugin::PLUGIN_ABI_VERSION,
            rustc_version: plugin::RUSTC_VERSION.as_ptr() as *const c_char,
            core_version: plugin::CORE_VERSION.as_ptr() as *const c_char,
            core_features: plugin::CORE_FEATURES.as_ptr() as *const c_char,
            abi_fingerprint: fingerprint.as_ptr(),
            serde_json_version: plugin::SERDE_JSON_VERSION.as_ptr() as *const c_char,
            serde_json_features: plugin::serde_json_features,
            layouts: plugin::LAYOUTS.0.as_ptr(),
            layouts_len: plugin::LAYOUTS.0.len(),
            register: never,
        }
    }

    /// A plugin built from other trait definitions (same crate version, same compiler) carries
    /// another fingerprint: refused, naming both.
    #[test]
    fn a_plugin_built_against_other_definitions_is_refused() {
        let ours = std::ffi::CStr::from_bytes_with_nul(plugin::ABI_FINGERPRINT.as_bytes()).unwrap();
        // SAFETY: both declarations are this build's layout, with 'static strings.
        unsafe { check(&declaration(ours), Path::new("same.so")) }.unwrap();
        let e =
            unsafe { check(&declaration(c"0123456789abcdef"), Path::new("other.so")) }.unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("other.so: ABI fingerprint"), "{msg}");
        assert!(msg.contains("\"0123456789abcdef\""), "{msg}");
        assert!(
            msg.contains(plugin::ABI_FINGERPRINT.trim_end_matches('\0')),
            "{msg}"
        );
    }

    /// Another serde_json release, or one the plugin's build could not read, is refused, naming
    /// both; the host's own release passes.
    #[test]
    fn a_plugin_with_another_serde_json_release_is_refused() {
        let ours = std::ffi::CStr::from_bytes_with_nul(plugin::ABI_FINGERPRINT.as_bytes()).unwrap();
        for (theirs, file) in [(c"1.0.140", "older.so"), (c"unknown", "unknown.so")] {
            let mut decl = declaration(ours);
            decl.serde_json_version = theirs.as_ptr();
            // SAFETY: this build's layout, with 'static strings.
            let e = unsafe { check(&decl, Path::new(file)) }.unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("{file}: serde_json version")),
                "{msg}"
            );
            assert!(
                msg.contains(&format!("{:?}", theirs.to_str().unwrap())),
                "{msg}"
            );
        }
    }
}
