//! The publishable crates as `cargo package` makes them: every library crate (the kit, the
//! plugin bridge, the test servers and the redb plugin included) packages with its metadata and
//! README, and `storage-core` (the one with a build script reading files of its own) also
//! builds from its package alone; and a crate outside the workspace (`examples/downstream`)
//! builds against them by path with serde_json pinned to another release.

use std::path::Path;

use super::{cargo, workspace_root};

/// The serde_json release `examples/downstream` pins, unlike the workspace's.
const DOWNSTREAM_SERDE_JSON: &str = "1.0.140";

/// The crates that are published; the rest are `publish = false`.
pub const PUBLISHED: &[&str] = &[
    "storage-core",
    "storage-memory",
    "storage-local",
    "storage-s3",
    "storage-sqlite",
    "storage-postgres",
    "storage-redis",
    "storage-pool",
    "storage-manager",
    "storage-plugin",
    "storage-testkit",
    "storage-servers",
    "storage-redb",
    "storage-cli",
];

/// Packages every published crate; returns what failed.
pub fn check() -> Vec<String> {
    let mut failures = Vec::new();
    eprintln!("xtask: cargo package (every published crate)");
    let mut all = cargo();
    all.args(["package", "--quiet", "--no-verify", "--allow-dirty"]);
    for name in PUBLISHED {
        all.args(["-p", name]);
    }
    if !all.status().is_ok_and(|s| s.success()) {
        failures.push("cargo package of the published crates failed".to_string());
    }
    let core = cargo()
        .args(["package", "--quiet", "--allow-dirty", "-p", "storage-core"])
        .status();
    if !core.is_ok_and(|s| s.success()) {
        failures.push("cargo package -p storage-core (building from its package) failed".into());
    }
    failures
}

/// Builds and runs `examples/downstream` with its own lockfile into `target`; returns what
/// failed.
pub fn downstream(target: &Path) -> Vec<String> {
    eprintln!("xtask: cargo run --locked --manifest-path examples/downstream/Cargo.toml");
    let out = cargo()
        .args(["run", "--quiet", "--locked", "--manifest-path"])
        .arg(workspace_root().join("examples/downstream/Cargo.toml"))
        .env("CARGO_TARGET_DIR", target)
        .stderr(std::process::Stdio::inherit())
        .output();
    let stdout = match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => {
            return vec![format!(
                "the downstream crate (examples/downstream) failed to build or run: {}",
                out.status
            )];
        }
        Err(e) => return vec![format!("running cargo for examples/downstream: {e}")],
    };
    let expected = [
        r#"greeting={"text":"hello","n":1.5}"#.to_string(),
        r#"chat=["first","second"]"#.to_string(),
        format!("serde_json={DOWNSTREAM_SERDE_JSON}"),
    ];
    match expected.iter().find(|e| !stdout.contains(e.as_str())) {
        None => Vec::new(),
        Some(missing) => vec![format!(
            "examples/downstream printed {:?}, without {missing:?}",
            stdout.trim()
        )],
    }
}
