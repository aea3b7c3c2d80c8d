//! The lost-update check across processes: two copies of this runner each add 500 to one
//! counter through `update`, against the same backend, and the counter must end at exactly
//! 1000. Only for backends that several processes share (a SQLite file, a server); an
//! in-memory store lives in one process and a redb file is locked by the one that opens it,
//! which the runner says instead of counting a case.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use storage_core::config::BackendSpec;
use storage_core::{Registry, StoreExt};

/// The case's name in the runner's output and counts.
pub const CASE: &str = "lost_update_across_processes";

/// Increments per process.
const EACH: u64 = 500;

/// Whether several processes can share the backend's data.
pub fn applies(spec: &BackendSpec) -> bool {
    matches!(spec.type_name.as_str(), "sqlite" | "postgresql" | "redis")
}

/// The child's side: `n` increments of `key` in the namespace `prefix`.
pub async fn child(
    registry: &Registry,
    spec: &BackendSpec,
    prefix: &str,
    key: &str,
    n: u64,
) -> Result<(), String> {
    let db = registry
        .open_database(&spec.clone().with_key_prefix(prefix))
        .await
        .map_err(|e| format!("opening the backend: {e}"))?;
    let result = storage_testkit::increment_counter(&*db, key, n).await;
    let _ = db.close().await;
    result
}

/// The parent's side: runs two children with `source` (the runner's own `--block`/`--config`
/// arguments) on a namespace of its own, and checks the sum.
pub async fn run(
    registry: Arc<Registry>,
    spec: &BackendSpec,
    source: &[String],
    prefix: &str,
) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this runner: {e}"))?;
    let prefix = format!("{prefix}procs:");
    let spawn = || {
        std::process::Command::new(&exe)
            .args(["--role", "database"])
            .args(source)
            .args(["--increment", "counter", "--times", &EACH.to_string()])
            .args(["--prefix", &prefix])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", Path::new(&exe).display()))
    };
    // Both start before either is waited for: they run side by side.
    let children = [spawn()?, spawn()?];
    let waited = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(std::process::Child::wait_with_output)
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| format!("waiting for the processes: {e}"))?;
    for (i, out) in waited.into_iter().enumerate() {
        let out = out.map_err(|e| format!("waiting for process {i}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "process {i} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    let db = registry
        .open_database(&spec.clone().with_key_prefix(&prefix))
        .await
        .map_err(|e| format!("opening the backend: {e}"))?;
    let count: Option<u64> = db
        .get_as("counter")
        .await
        .map_err(|e| format!("reading the counter: {e}"))?;
    let _ = db.clear().await;
    let _ = db.close().await;
    if count == Some(2 * EACH) {
        Ok(())
    } else {
        Err(format!(
            "the counter after 2 processes × {EACH} updates is {count:?}, want {}",
            2 * EACH
        ))
    }
}
