//! Records the compiler version, the plugin ABI fingerprint (see `abi_fingerprint.rs`) and
//! the linked serde_json version (see `serde_json_version.rs`), which runtime plugins must
//! share with the host.

#[path = "abi_fingerprint.rs"]
mod abi_fingerprint;
#[path = "serde_json_version.rs"]
mod serde_json_version;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=STORAGE_CORE_RUSTC_VERSION={version}");
    println!("cargo:rerun-if-env-changed=RUSTC");

    let sources: Vec<String> = abi_fingerprint::BOUNDARY_FILES
        .iter()
        .map(|file| {
            println!("cargo:rerun-if-changed={file}");
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("reading {file}: {e}"))
        })
        .collect();
    let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
    println!(
        "cargo:rustc-env=STORAGE_CORE_ABI_FINGERPRINT={}",
        abi_fingerprint::fingerprint(&sources)
    );
    println!("cargo:rerun-if-changed=abi_fingerprint.rs");

    let serde_json = serde_json_version::detect().unwrap_or_else(|| {
        println!(
            "cargo:warning=the serde_json version could not be read from its source path \
             (remapped paths?); runtime plugins will be refused by this build"
        );
        "unknown".into()
    });
    println!("cargo:rustc-env=STORAGE_CORE_SERDE_JSON_VERSION={serde_json}");
    println!("cargo:rerun-if-changed=serde_json_version.rs");
}
