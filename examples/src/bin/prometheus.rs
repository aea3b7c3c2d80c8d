//! Serves the project's metrics in Prometheus's text format while a small workload runs.
//!
//! ```text
//! cargo run -p storage-manager --example prometheus -- [ADDR]
//! curl http://ADDR/metrics
//! ```
//!
//! ADDR defaults to `127.0.0.1:9464`. The workload uses the embedded default (an in-memory
//! cache, SQLite in a temporary directory) through the manager and cache-aside: 50 writes, 50
//! reads the cache answers, 10 reads of missing keys, 5 appends. It prints `ready` when the
//! workload is done and then serves until stdin closes (or the process is stopped), so that a
//! scraper sees final values.

use metrics_exporter_prometheus::PrometheusBuilder;
use serde_json::json;
use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;
use storage_manager::{CacheAside, CacheAsideOptions, StorageManager};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9464".into())
        .parse()?;
    // Histograms with buckets (not summaries), in seconds, for every duration series.
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets(&[
            0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
        ])?
        .install()?;
    storage_core::telemetry::describe();

    let dir = tempfile::tempdir()?;
    let manager = StorageManager::embedded_default(dir.path())?;
    let backends = manager.connect().await?;
    let layer = CacheAside::new(
        backends.cache.clone(),
        backends.database.clone(),
        CacheAsideOptions {
            ttl: Some(Duration::from_secs(60)),
            write_behind_capacity: 64,
            ..CacheAsideOptions::default()
        },
    );
    for i in 0..50 {
        layer.set(&format!("user:{i}"), &json!({ "n": i })).await?;
    }
    for i in 0..50 {
        layer.get(&format!("user:{i}")).await?;
    }
    for i in 0..10 {
        layer.get(&format!("missing:{i}")).await?;
    }
    for turn in 0..5 {
        backends
            .database
            .append("chat", &json!({ "role": "user", "turn": turn }))
            .await?;
    }
    println!("ready {addr}");
    // Serve until the parent closes stdin.
    let _ = tokio::task::spawn_blocking(|| std::io::stdin().read(&mut [0u8; 1])).await;
    Ok(())
}
