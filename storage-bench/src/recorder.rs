//! What the metrics cost: in-memory `get` and `set` at concurrency 1 through the project,
//! first with no recorder installed (the facade drops every series), then with the Prometheus
//! recorder installed in this process. Rows `in-memory (no recorder)` and `in-memory
//! (recorder)`; the second's ratio is against the first. Runs last: a recorder cannot be
//! uninstalled.

use super::{Op, Project, Row, measure_median, open, payload};
use metrics_exporter_prometheus::PrometheusBuilder;
use serde_json::Value;
use std::sync::Arc;

pub(crate) async fn bench(ops_scale: usize, rows: &mut Vec<Row>) {
    let db =
        open("database: { type: in-memory, keyPrefix: 'rec:' }\ncache: { type: in-memory }").await;
    let gets: Vec<(String, Value)> = (0..1000).map(|i| (format!("g:{i}"), payload(i))).collect();
    db.mset(&gets).await.expect("preload");
    let project = Arc::new(Project::new(db));
    let total = ops_scale * 5;
    let mut without = Vec::new();
    for op in [Op::Get, Op::Set] {
        without.push(measure_median(project.clone(), op, 1, total).await);
    }
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .expect("install the Prometheus recorder");
    storage_core::telemetry::describe();
    // A backend looks its histogram handles up again at most once a second: wait that long,
    // so every measured operation reaches the recorder.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for (op, base) in [Op::Get, Op::Set].into_iter().zip(without) {
        let with = measure_median(project.clone(), op, 1, total).await;
        eprintln!(
            "bench: in-memory {:<4} c=1 without a recorder {:>10.0} ops/s, with one {:>10.0} ops/s ({:.2})",
            op.name(),
            base.ops_per_sec,
            with.ops_per_sec,
            with.ops_per_sec / base.ops_per_sec
        );
        rows.push(Row::measured(
            "in-memory (no recorder)",
            op.name(),
            1,
            base,
            None,
        ));
        rows.push(Row::measured(
            "in-memory (recorder)",
            op.name(),
            1,
            with,
            Some(base),
        ));
    }
    // The recorder saw every operation: the series are there.
    assert!(
        handle
            .render()
            .contains("db_client_operation_duration{db_system_name=\"in-memory\""),
        "the recorder did not see the operations"
    );
}
