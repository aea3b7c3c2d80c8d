//! Our SQLite backend under the peer comparison's workload (`peers/src/workload.rs`, shared by
//! path): rows `sqlite (peer workload)`, which the OpenDAL peer runner (`peers/`) reads and
//! compares with OpenDAL's SQLite service. Measured here because the two SQLite drivers cannot
//! link into one program. Every other backend's peer rows come from the runner itself.

#[path = "../peers/src/workload.rs"]
#[allow(dead_code)]
pub(crate) mod workload;

use super::{Row, Stats};
use std::path::Path;
use std::sync::Arc;
use storage_manager::StorageManager;

/// Measures our SQLite backend (a file in `dir`, default options) with the peer workload.
pub(crate) async fn sqlite(dir: &Path, ops_scale: usize, rows: &mut Vec<Row>) {
    let yaml = format!(
        "database: {{ type: sqlite, path: '{}' }}\ncache: {{ type: in-memory }}",
        dir.join("peer.db").display()
    );
    let source = storage_manager::config_file::from_yaml_str(&yaml, dir)
        .expect("the peer workload's config");
    let (db, _) = StorageManager::from_source(&source)
        .expect("the peer workload's config")
        .without_fallback()
        .connect_database()
        .await
        .expect("open SQLite for the peer workload");
    let ours = Arc::new(workload::OurDatabase(db));
    workload::preload(ours.as_ref())
        .await
        .expect("preload the peer workload");
    for (op, c, f) in workload::measure_alone(ours, ops_scale).await {
        eprintln!(
            "bench: sqlite (peer workload) {op} c={c} {:.0} ops/s",
            f.ops_per_sec
        );
        rows.push(
            Row::measured(
                "sqlite (peer workload)",
                op,
                c,
                Stats {
                    ops_per_sec: f.ops_per_sec,
                    p50_us: f.p50_us,
                    p99_us: f.p99_us,
                    min_ops_per_sec: f.min_ops_per_sec,
                    max_ops_per_sec: f.max_ops_per_sec,
                    runs: workload::RUNS,
                },
                None,
            )
            .with_flushes([f.flushes_per_op, None]),
        );
    }
}
