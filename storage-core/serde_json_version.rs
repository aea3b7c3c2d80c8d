//! Finds the serde_json version this build links, for the plugin declaration. Cargo tells a
//! build script nothing about its dependencies' versions, so `build.rs` links serde_json as a
//! build dependency (Cargo resolves one version per semver-compatible range in a build, so it is
//! the same release the library links), makes it panic once inside its own source, and reads the
//! version from where that source lives: the `serde_json-<version>` directory a registry or a
//! versioned vendor directory uses, or else the `version` line of the crate's `Cargo.toml`.
//! Not a general manifest reader; remapped source paths leave the version unknown, which the
//! plugin loader then refuses to match.

use std::path::Path;

/// The version, or `None` when the source path does not lead to it.
pub fn detect() -> Option<String> {
    let file = panic_location_in_serde_json()?;
    version_from_source_file(Path::new(&file))
}

/// The file of a panic raised inside serde_json's own code (indexing a number as an array).
fn panic_location_in_serde_json() -> Option<String> {
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Option<String>>> = Arc::default();
    let hook_seen = Arc::clone(&seen);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Some(location) = info.location() {
            *hook_seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(location.file().into());
        }
    }));
    let _ = std::panic::catch_unwind(|| {
        let mut number = serde_json::Value::from(0);
        number[0] = serde_json::Value::Null;
    });
    std::panic::set_hook(previous);
    seen.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// `…/serde_json-1.0.154/src/value/index.rs` → `1.0.154`, from the directory name or else the
/// crate's manifest.
pub fn version_from_source_file(file: &Path) -> Option<String> {
    let root = file
        .ancestors()
        .find(|dir| dir.join("Cargo.toml").is_file())
        .or_else(|| {
            file.ancestors().find(|dir| {
                dir.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("serde_json"))
            })
        })?;
    let name = root.file_name()?.to_string_lossy();
    if let Some(version) = name.strip_prefix("serde_json-").filter(|v| is_version(v)) {
        return Some(version.to_string());
    }
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).ok()?;
    version_from_manifest(&manifest)
}

/// The `version = "…"` of a manifest's `[package]` table (a registry's normalized form).
pub fn version_from_manifest(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && let Some(rest) = line.strip_prefix("version") {
            let value = rest
                .trim_start()
                .strip_prefix('=')?
                .trim()
                .trim_matches('"');
            return is_version(value).then(|| value.to_string());
        }
    }
    None
}

/// `major.minor.patch` with an optional pre-release or build suffix.
fn is_version(text: &str) -> bool {
    let core = text.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_comes_from_a_registry_directory() {
        let file = Path::new("/nowhere/registry/src/x/serde_json-1.0.140/src/value/index.rs");
        assert_eq!(version_from_source_file(file).as_deref(), Some("1.0.140"));
    }

    #[test]
    fn the_version_comes_from_the_manifest_of_an_unversioned_directory() {
        let dir = std::env::temp_dir().join(format!("serde-json-probe-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("src/value")).unwrap();
        let manifest = "[package]\nname = \"serde_json\"\nversion = \"1.0.140\"\n\n[dependencies.serde]\nversion = \"1.0.200\"\n";
        std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
        let found = version_from_source_file(&dir.join("src/value/index.rs"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found.as_deref(), Some("1.0.140"));
    }

    #[test]
    fn a_manifest_without_a_package_version_gives_none() {
        assert_eq!(
            version_from_manifest("[dependencies.serde]\nversion = \"1.0.0\"\n"),
            None
        );
        assert_eq!(
            version_from_manifest("[package]\nversion = \"one\"\n"),
            None
        );
    }

    #[test]
    fn the_probe_finds_the_linked_release() {
        let found = detect().expect("the version");
        assert!(is_version(&found), "{found}");
    }
}
