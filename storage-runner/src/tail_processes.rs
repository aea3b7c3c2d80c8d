//! The follower case across processes: another copy of this runner appends to a list while
//! this one follows it with a `Tail` started before, and the follower must see every item once
//! and in order. Only for backends that several processes share and that can follow lists.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use storage_core::Registry;
use storage_core::config::BackendSpec;
use storage_core::feed::Tail;

/// The case's name in the runner's output and counts.
pub const CASE: &str = "tail_follows_another_process";

/// Items the other process appends.
const ITEMS: u64 = 200;

/// The child's side: `ITEMS` appends of their index to `key` in the namespace `prefix`, some
/// one at a time and some in batches.
pub async fn child(registry: &Registry, spec: &BackendSpec, prefix: &str) -> Result<(), String> {
    let db = registry
        .open_database(&spec.clone().with_key_prefix(prefix))
        .await
        .map_err(|e| format!("opening the backend: {e}"))?;
    let mut i = 0;
    while i < ITEMS {
        if i % 3 == 0 {
            let batch: Vec<_> = (i..(i + 5).min(ITEMS))
                .map(serde_json::Value::from)
                .collect();
            i += batch.len() as u64;
            db.append_many("followed", &batch).await
        } else {
            i += 1;
            db.append("followed", &serde_json::Value::from(i - 1)).await
        }
        .map_err(|e| format!("appending: {e}"))?;
    }
    let _ = db.close().await;
    Ok(())
}

/// The parent's side: follows the list from index 0 while a child with `source` appends.
pub async fn run(
    registry: Arc<Registry>,
    spec: &BackendSpec,
    source: &[String],
    prefix: &str,
) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this runner: {e}"))?;
    let prefix = format!("{prefix}follow{}:", std::process::id());
    let db = registry
        .open_database(&spec.clone().with_key_prefix(&prefix))
        .await
        .map_err(|e| format!("opening the backend: {e}"))?;
    let mut tail = Tail::new(db.clone(), "followed", 0);
    let child = std::process::Command::new(&exe)
        .args(["--role", "database"])
        .args(source)
        .args(["--append-items", &prefix])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the appending process: {e}"))?;
    let mut outcome = Ok(());
    for want in 0..ITEMS {
        match tokio::time::timeout(Duration::from_secs(30), tail.next()).await {
            Ok(Some(Ok(item))) if item.index == want && item.value == want => {}
            Ok(Some(Ok(item))) => {
                outcome = Err(format!("item {want}: got {item:?}"));
                break;
            }
            Ok(Some(Err(e))) => {
                outcome = Err(format!("item {want}: the tail ended with {e}"));
                break;
            }
            Ok(None) => {
                outcome = Err(format!("item {want}: the tail ended"));
                break;
            }
            Err(_) => {
                outcome = Err(format!("item {want}: not seen within 30 s"));
                break;
            }
        }
    }
    let waited = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .map_err(|e| format!("waiting for the appending process: {e}"))?
        .map_err(|e| format!("waiting for the appending process: {e}"))?;
    let _ = db.clear().await;
    let _ = db.close().await;
    if !waited.status.success() {
        return Err(format!(
            "the appending process failed ({}): {}",
            waited.status,
            String::from_utf8_lossy(&waited.stderr).trim()
        ));
    }
    outcome
}
