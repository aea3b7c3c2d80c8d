//! The crash case of the blob role: copies of this runner store slow blobs and are killed
//! with SIGKILL mid-`put`, eight times; then every blob the store lists must be whole. Only for
//! stores that outlive a process (files, a database file, a server); an in-memory store dies
//! with its writer, which the runner says instead of counting a case.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use storage_core::Registry;
use storage_core::config::BackendSpec;

/// The case's name in the runner's output and counts.
pub const CASE: &str = "crash_mid_put_leaves_no_partial_blob";

/// Writers started and killed.
const ROUNDS: u64 = 8;

/// Whether the store outlives the process that writes to it.
pub fn applies(spec: &BackendSpec) -> bool {
    matches!(
        spec.type_name.as_str(),
        "local" | "sqlite" | "postgresql" | "s3"
    )
}

/// The writer's side: slow blobs in the namespace `prefix` until killed.
pub async fn child(registry: &Registry, spec: &BackendSpec, prefix: &str) -> Result<(), String> {
    let store = registry
        .open_blob(&spec.clone().with_key_prefix(prefix))
        .await
        .map_err(|e| format!("opening the blob store: {e}"))?;
    storage_testkit::blob_crash::write_until_killed(&*store)
        .await
        .map_err(|e| format!("a put failed: {e}"))
}

/// The parent's side: starts and kills writers with `source` (the runner's own
/// `--block`/`--config` arguments) in a namespace of its own, then checks what is left and
/// removes it.
pub async fn run(
    registry: Arc<Registry>,
    spec: &BackendSpec,
    source: &[String],
    prefix: &str,
) -> Result<usize, String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this runner: {e}"))?;
    let prefix = format!("{prefix}crash{}:", std::process::id());
    for round in 0..ROUNDS {
        let mut child = std::process::Command::new(&exe)
            .args(["--role", "blob"])
            .args(source)
            .args(["--blob-writer", &prefix])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting a writer: {e}"))?;
        // Kills land at different points of a put: 300 ms to about a second after the start.
        tokio::time::sleep(Duration::from_millis(300 + (round * 97) % 700)).await;
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "writer {round} ended on its own ({status}) before its kill"
            ));
        }
        child
            .kill()
            .map_err(|e| format!("killing writer {round}: {e}"))?; // SIGKILL
        let _ = child.wait();
    }
    let store = registry
        .open_blob(&spec.clone().with_key_prefix(&prefix))
        .await
        .map_err(|e| format!("opening the blob store: {e}"))?;
    let checked = storage_testkit::blob_crash::check_after_kills(&*store).await;
    // Leave nothing behind, whatever the check found.
    if let Ok(listed) = store.list(None, usize::MAX).await {
        for meta in listed {
            let _ = store.delete(&meta.id).await;
        }
    }
    let _ = store.close().await;
    checked
}
