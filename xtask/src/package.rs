//! The publishable crates as `cargo package` makes them: every library crate (the kit, the
//! plugin bridge, the test servers and the redb plugin included) packages with its metadata and
//! README, and `storage-core` (the one with a build script reading files of its own) also
//! builds from its package alone.

use super::cargo;

/// The crates that are published; the rest are `publish = false`.
pub const PUBLISHED: &[&str] = &[
    "storage-core",
    "storage-memory",
    "storage-sqlite",
    "storage-postgres",
    "storage-redis",
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
