//! What the migrate tests share: writing a config with one database block, and running
//! `storage migrate` through the built binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `dir/name` holding a config whose database is `block` and whose cache is in-memory.
pub fn write_config(dir: &Path, name: &str, block: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("storage:\n  cache: {{ type: in-memory }}\n  database: {block}\n"),
    )
    .unwrap();
    path
}

/// `storage migrate --from FROM --to TO EXTRA...`.
pub fn migrate(from: &Path, to: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_storage"))
        .arg("migrate")
        .arg("--from")
        .arg(from)
        .arg("--to")
        .arg(to)
        .args(extra)
        .output()
        .unwrap()
}
