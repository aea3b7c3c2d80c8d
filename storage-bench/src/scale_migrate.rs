//! `storage migrate`'s throughput in the scale run: the `storage` command (built beside this
//! binary) copies a namespace of `n` keys between each ordered pair of the persistent backends
//! (SQLite, PostgreSQL, Redis), timed from start to exit — its inventory, copy and verify
//! included, as a user waits for it — and held against the target's bulk-load limit measured
//! in the same run (`scale_raw.rs`). The in-memory store is left out: it lives inside one
//! process, and `storage migrate` is another. Not the curves (`scale.rs`).

use crate::scale_raw::{Bulk, BulkLimit};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// A persistent backend the migration runs between.
pub struct Endpoint {
    pub name: &'static str,
    /// The `database:` block, without its `keyPrefix`.
    pub block: String,
    pub limit: Option<Bulk>,
}

impl Endpoint {
    fn with_prefix(&self, prefix: &str) -> String {
        crate::scale::with_prefix(&self.block, prefix)
    }

    fn config(&self, dir: &Path, prefix: &str) -> std::io::Result<PathBuf> {
        let path = dir.join(format!(
            "{}-{}.yml",
            self.name,
            prefix.trim_end_matches(':')
        ));
        std::fs::write(
            &path,
            format!(
                "storage:\n  cache: {{ type: in-memory }}\n  database: {}\n",
                self.with_prefix(prefix)
            ),
        )?;
        Ok(path)
    }
}

/// Measures each endpoint's bulk-load limit (`limit` of the pair's target side).
pub async fn limits(endpoints: &mut [Endpoint], loads: &[BulkLimit<'_>], n: usize, value: &Value) {
    for (end, load) in endpoints.iter_mut().zip(loads) {
        match load.run(n, value).await {
            Ok(bulk) => {
                eprintln!(
                    "scale: {:<10} bulk load {n} keys: {:>9.0} keys/s, {:.0} B/key at rest",
                    end.name, bulk.keys_per_sec, bulk.bytes_per_key
                );
                end.limit = Some(bulk);
            }
            Err(e) => eprintln!("scale: {}: the bulk-load limit failed: {e}", end.name),
        }
    }
}

/// Every ordered pair's migration of `n` keys of `value`; one JSON row each.
pub async fn pairs(endpoints: &[Endpoint], dir: &Path, n: usize, value: &Value) -> Vec<Value> {
    let storage = std::env::current_exe()
        .expect("this binary's path")
        .with_file_name("storage");
    assert!(
        storage.exists(),
        "{} is not built (cargo build -p storage-cli)",
        storage.display()
    );
    let value_bytes = serde_json::to_string(value).expect("json").len();
    for end in endpoints {
        let db = crate::open(&format!(
            "database: {}\ncache: {{ type: in-memory }}",
            end.with_prefix("migfrom:")
        ))
        .await;
        db.clear().await.expect("clear the source");
        for from in (0..n).step_by(1000) {
            let batch: Vec<(String, Value)> = (from..(from + 1000).min(n))
                .map(|i| (format!("k{i}"), value.clone()))
                .collect();
            db.mset(&batch).await.expect("fill the source");
        }
    }
    let mut rows = Vec::new();
    for from in endpoints {
        for to in endpoints.iter().filter(|e| e.name != from.name) {
            let (a, b) = (
                from.config(dir, "migfrom:").expect("a config file"),
                to.config(dir, "migto:").expect("a config file"),
            );
            let started = Instant::now();
            let out = Command::new(&storage)
                .arg("migrate")
                .arg("--from")
                .arg(&a)
                .arg("--to")
                .arg(&b)
                .arg("--overwrite")
                .output()
                .expect("run storage migrate");
            let secs = started.elapsed().as_secs_f64();
            assert!(
                out.status.success(),
                "storage migrate {} → {} failed: {}{}",
                from.name,
                to.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let keys_per_sec = n as f64 / secs;
            // `storage migrate` prints "copied … in <s>s; verified …": the inventory of the
            // source and the copy, without the target's verification read.
            let stdout = String::from_utf8_lossy(&out.stdout);
            let copy_secs: Option<f64> = stdout
                .split(" in ")
                .nth(1)
                .and_then(|rest| rest.split("s;").next())
                .and_then(|s| s.parse().ok());
            let of_limit = to.limit.map(|l| keys_per_sec / l.keys_per_sec);
            eprintln!(
                "scale: migrate {:<10} → {:<10} {n} keys in {secs:.1} s: {keys_per_sec:>8.0} keys/s, {:.1} MB/s, {} of the target's bulk load",
                from.name,
                to.name,
                keys_per_sec * value_bytes as f64 / 1e6,
                of_limit.map_or("n/a".into(), |r| format!("{:.0}%", r * 100.0))
            );
            rows.push(json!({
                "from": from.name, "to": to.name, "keys": n, "seconds": secs,
                "keys_per_sec": keys_per_sec,
                "mb_per_sec": keys_per_sec * value_bytes as f64 / 1e6,
                "target_bulk_keys_per_sec": to.limit.map(|l| l.keys_per_sec),
                "inventory_and_copy_seconds": copy_secs,
                "of_target_bulk": of_limit,
            }));
        }
    }
    for end in endpoints {
        for prefix in ["migfrom:", "migto:"] {
            let db = crate::open(&format!(
                "database: {}\ncache: {{ type: in-memory }}",
                end.with_prefix(prefix)
            ))
            .await;
            db.clear().await.expect("clear after the migrations");
        }
    }
    rows
}
