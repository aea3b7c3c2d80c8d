//! The plugin path's cost, for the scale run: the redb backend loaded as a plugin (its shared
//! library through the loader and the plugin boundary) against the same crate linked into this
//! binary and registered in the manager's registry, each through the manager as an application
//! opens its database role; `get` and `set` at 1 and 64 tasks, the two sides interleaved, each
//! figure the median of three runs. The only difference between the two is the boundary.
//! Not the OpenDAL comparison (that is `storage-bench/peers`).

use crate::harness::{RUNS, Stats};
use crate::scale::value_of;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use storage_core::Database;
use storage_manager::StorageManager;

async fn open(yaml: &str, dir: &Path, linked: bool) -> Arc<dyn Database> {
    let source = storage_manager::config_file::from_yaml_str(yaml, dir).expect("a config");
    let manager = if linked {
        let mut registry = storage_manager::builtin_registry();
        registry
            .register_backend::<storage_redb::RedbBackend>()
            .expect("register the linked redb backend");
        StorageManager::with_registry(&source, registry)
    } else {
        StorageManager::from_source(&source)
    }
    .expect("a config")
    .without_fallback();
    manager.connect_database().await.expect("open redb").0
}

async fn run(db: &Arc<dyn Database>, op: &'static str, tasks: usize, total: usize) -> Stats {
    let (db, value) = (db.clone(), Arc::new(value_of(200)));
    crate::scale::timed(tasks, total, move |i| {
        let (db, value) = (db.clone(), value.clone());
        async move {
            let key = format!("k{}", (i * 7919) % 1000);
            match op {
                "get" => drop(db.get(&key).await.expect("a get")),
                _ => db.set(&key, &value).await.expect("a set"),
            }
        }
    })
    .await
}

/// `get` and `set` at 1 and 64 tasks through the plugin at `plugin` and through the linked
/// crate, each on a file of its own in `dir`; one JSON row per (op, tasks).
pub async fn compare(plugin: &Path, dir: &Path, ops: usize) -> Vec<Value> {
    // JSON, YAML's flow form: the paths need no quoting by hand.
    let config = |file: &str| {
        json!({
            "database": {"type": "redb", "options": {"path": dir.join(file)}},
            "cache": {"type": "in-memory"},
        })
    };
    let mut with_plugin = config("plugin.redb");
    with_plugin["plugins"] = json!([plugin]);
    let loaded = open(&with_plugin.to_string(), dir, false).await;
    let linked = open(&config("linked.redb").to_string(), dir, true).await;
    let value = value_of(200);
    for db in [&loaded, &linked] {
        for i in 0..1000 {
            db.set(&format!("k{i}"), &value).await.expect("a fill");
        }
    }
    let mut rows = Vec::new();
    for op in ["get", "set"] {
        for tasks in [1, 64] {
            let total = if op == "get" { ops * 20 } else { ops };
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for r in 0..RUNS {
                // Alternating which side goes first.
                if r % 2 == 0 {
                    a.push(run(&loaded, op, tasks, total).await);
                    b.push(run(&linked, op, tasks, total).await);
                } else {
                    b.push(run(&linked, op, tasks, total).await);
                    a.push(run(&loaded, op, tasks, total).await);
                }
            }
            let (plugin, linked) = (Stats::median(a), Stats::median(b));
            let ratio = plugin.ops_per_sec / linked.ops_per_sec;
            eprintln!(
                "scale: redb {op} at {tasks:>2} tasks: plugin {:>8.0} ops/s, linked {:>8.0} ops/s, plugin ÷ linked {ratio:.2}",
                plugin.ops_per_sec, linked.ops_per_sec
            );
            rows.push(json!({
                "op": op, "tasks": tasks,
                "plugin_ops_per_sec": plugin.ops_per_sec,
                "plugin_min": plugin.min_ops_per_sec, "plugin_max": plugin.max_ops_per_sec,
                "linked_ops_per_sec": linked.ops_per_sec,
                "linked_min": linked.min_ops_per_sec, "linked_max": linked.max_ops_per_sec,
                "plugin_p50_us": plugin.p50_us, "linked_p50_us": linked.p50_us,
                "ratio": ratio,
            }));
        }
    }
    rows
}
