//! A library built with a deliberately different declaration: it claims serde_json 0.9.0. The
//! loader must refuse it before calling `register`, which would panic if called.

use std::ffi::c_char;
use storage_core::plugin::{self, PluginDeclaration, PluginRegistrar};

unsafe extern "C" fn register(_: *mut PluginRegistrar) -> i32 {
    // Never reached: the host refuses the declaration first. Report failure if it is.
    1
}

/// A declaration identical to the real one except for the serde_json version.
#[unsafe(no_mangle)]
pub static STORAGE_PLUGIN_DECLARATION: PluginDeclaration = PluginDeclaration {
    abi_version: plugin::PLUGIN_ABI_VERSION,
    rustc_version: plugin::RUSTC_VERSION.as_ptr() as *const c_char,
    core_version: plugin::CORE_VERSION.as_ptr() as *const c_char,
    core_features: plugin::CORE_FEATURES.as_ptr() as *const c_char,
    abi_fingerprint: plugin::ABI_FINGERPRINT.as_ptr() as *const c_char,
    serde_json_version: c"0.9.0".as_ptr(),
    serde_json_features: plugin::serde_json_features,
    layouts: plugin::LAYOUTS.0.as_ptr(),
    layouts_len: plugin::LAYOUTS.0.len(),
    register,
};
