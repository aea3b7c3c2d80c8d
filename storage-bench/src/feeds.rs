//! The follower rows: how long an append on one instance takes to reach a follower on another
//! (`storage_core::feed::Tail`), p50 and p99 over a few hundred appends, per backend. The two
//! instances are separate backends of one process (separate pools; for SQLite, two pools on
//! one file, which is what another process sees too). In the rows, `p50 µs` and `p99 µs` are
//! the latency; `ops/s` is the appends followed per second.

use crate::harness::{Row, Stats};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage_core::Database;
use storage_core::feed::Tail;

/// One backend's row: `count` appends on `writer`, each awaited by a follower on `reader`
/// before the next.
pub async fn bench(
    backend: &str,
    writer: Arc<dyn Database>,
    reader: Arc<dyn Database>,
    count: usize,
    rows: &mut Vec<Row>,
) {
    let key = format!("feed-bench:{}", std::process::id());
    let _ = writer.delete(&key).await;
    writer.append(&key, &json!("start")).await.expect("append");
    let mut tail = Tail::new(reader, &key, 1);
    let mut latencies = Vec::with_capacity(count);
    let started = Instant::now();
    for i in 0..count {
        // Appends land at random points of the follower's wait, as they would in use.
        tokio::time::sleep(Duration::from_micros(200 + (i as u64 * 7919) % 3000)).await;
        let sent = Instant::now();
        writer.append(&key, &json!(i)).await.expect("append");
        let item = tokio::time::timeout(Duration::from_secs(10), tail.next())
            .await
            .expect("the follower sees the append within 10 s")
            .expect("the follower goes on")
            .expect("the follower reads");
        assert_eq!(
            item.index,
            i as u64 + 1,
            "the follower's items are in order"
        );
        latencies.push(sent.elapsed().as_nanos() as u64);
    }
    let elapsed = started.elapsed();
    let _ = writer.delete(&key).await;
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)] as f64 / 1000.0
    };
    eprintln!(
        "bench: {backend} append → follower: p50 {:.0} µs, p99 {:.0} µs",
        pct(0.5),
        pct(0.99)
    );
    rows.push(Row {
        backend: backend.to_string(),
        op: "append_seen_by_follower",
        concurrency: Some(1),
        list_len: None,
        project: Some(Stats::single(
            count as f64 / elapsed.as_secs_f64(),
            pct(0.5),
            pct(0.99),
        )),
        baseline: None,
    });
}
