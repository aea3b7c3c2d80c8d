//! An application whose storage comes from a config file: the manager walks each role's
//! fallback chain and reports who serves; cache-aside reads through the cache to the database.
//!
//! ```text
//! cargo run -p storage-examples --bin app_from_config -- CONFIG.yml
//! ```
//!
//! With no argument it writes a config for the embedded default (SQLite under `.storage/`, an
//! in-memory cache) in the current directory and uses it.

use std::time::Duration;
use storage_core::config::Role;
use storage_core::prelude::*;
use storage_manager::{CacheAside, CacheAsideOptions, StorageManager};

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let path = match std::env::args().nth(1) {
        Some(path) => path.into(),
        None => {
            let path = std::path::PathBuf::from("storage.yml");
            std::fs::write(
                &path,
                "storage:\n  cache: { type: in-memory, keyPrefix: 'app:cache:' }\n  database: { type: sqlite, path: .storage/app.db, keyPrefix: 'app:db:' }\n",
            )?;
            path
        }
    };
    let manager = StorageManager::from_file(&path)?;
    let backends = manager.connect().await?;
    for status in [Role::Cache, Role::Database]
        .into_iter()
        .filter_map(|role| backends.status(role))
    {
        println!(
            "{}: served by {}{}",
            status.role,
            status.serving_detail.as_deref().unwrap_or("nothing"),
            if status.degraded() { " (degraded)" } else { "" }
        );
    }
    let layer = CacheAside::new(
        backends.cache.clone(),
        backends.database.clone(),
        CacheAsideOptions {
            ttl: Some(Duration::from_secs(300)),
            write_behind_capacity: 64,
            ..CacheAsideOptions::default()
        },
    );
    layer
        .set("user:1", &json!({ "name": "Ada", "plan": "pro" }))
        .await?;
    let first = layer.get("user:1").await?;
    backends.cache.delete("user:1").await?;
    let second = layer.get("user:1").await?;
    assert_eq!(first, second);
    let stats = layer.stats();
    println!(
        "user:1 = {}; cache-aside: {} hit(s), {} miss(es)",
        second.unwrap_or(Value::Null),
        stats.hits,
        stats.misses
    );
    let report = layer.shutdown(Duration::from_secs(5)).await;
    assert!(report.unwritten.is_empty());
    manager.disconnect().await?;
    Ok(())
}
