//! Running the built `storage` binary in a directory, and reading what it printed: what the
//! end-to-end tests share. Each test crate uses some of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// `storage ARGS...` run in `dir`, without `STORAGE_LOG`.
pub fn storage(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_storage"))
        .args(args)
        .current_dir(dir)
        .env_remove("STORAGE_LOG")
        .output()
        .expect("run storage")
}

/// What it printed on stdout.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What it printed on stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Its stdout, trimmed, after checking that it succeeded (else both streams in the panic).
pub fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}{}", stdout(o), stderr(o));
    stdout(o).trim().to_string()
}
