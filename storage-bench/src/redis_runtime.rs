//! Redis at one task, on tokio's two runtimes, for the scale run: the project's `get`/`set`
//! and the raw driver's, each run listed (not only the median), on a multi-thread runtime
//! (where the reply passes from the connection's own task to the caller, often across
//! threads) and on a current-thread runtime (where it cannot), beside `redis-benchmark` at
//! one client (its `SET`, and the same writes a database-role `set` asks of the server: the
//! `SET` and its change filed). It shows whether the bimodal figures of one task come from
//! the thread hop, and what the solo connection (`storage-redis`'s `solo.rs`) makes of them.
//! Not the scale curves (`scale.rs`).

use crate::Subject;
use crate::baselines::RedisBaseline;
use crate::scale::{value_of, with_prefix};
use serde_json::{Value, json};
use std::time::Instant;

/// Runs per figure: enough to see two modes if there are two.
const RUNS: usize = 7;

/// Every run of get and set at one task, ours and raw, on both runtimes; and
/// `redis-benchmark` at one client (left out of a smoke run: it takes half a minute).
pub async fn compare(url: &str, ops: usize, with_benchmark: bool) -> Vec<Value> {
    let mut rows = measure(url, ops, "multi_thread").await;
    let owned = url.to_string();
    let current = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
            .block_on(measure(&owned, ops, "current_thread"))
    })
    .join()
    .expect("the current-thread measurement");
    rows.extend(current);
    let mut limits = Vec::new();
    if with_benchmark {
        crate::limits::redis_benchmark(url, &mut limits);
    }
    for row in limits.iter().filter(|r| r.concurrency == Some(1)) {
        if let Some(s) = row.project {
            rows.push(json!({
                "runtime": null, "side": "redis-benchmark", "op": row.op,
                "median_ops_per_sec": s.ops_per_sec,
                "runs_ops_per_sec": [s.min_ops_per_sec, s.ops_per_sec, s.max_ops_per_sec],
            }));
        }
    }
    if with_benchmark && let Some(s) = crate::limits::redis_benchmark_logged_set(url) {
        eprintln!(
            "scale: redis one task redis-benchmark, the same logged write: {:.0} ops/s",
            s.ops_per_sec
        );
        rows.push(json!({
            "runtime": null, "side": "redis-benchmark (the same logged write)", "op": "set",
            "median_ops_per_sec": s.ops_per_sec,
            "runs_ops_per_sec": [s.min_ops_per_sec, s.ops_per_sec, s.max_ops_per_sec],
        }));
    }
    rows
}

async fn measure(url: &str, ops: usize, runtime: &str) -> Vec<Value> {
    let mut options = json!({});
    // For trying another polling window (`--redis-reply-spin MICROS`); the default otherwise.
    if let Some(micros) = std::env::args()
        .skip_while(|a| a != "--redis-reply-spin")
        .nth(1)
        .and_then(|m| m.parse::<u64>().ok())
    {
        options["replySpinMicros"] = json!(micros);
    }
    let block_with = |solo: bool| {
        let mut options = options.clone();
        options["soloConnection"] = json!(solo);
        crate::scale::block(json!({
            "type": "redis", "url": url, "maxConnections": 64, "options": options,
        }))
    };
    // The project as configured, and with the solo connection turned off (the pool alone):
    // the same work, interleaved, shows what the solo connection does to each operation.
    let mut subjects = Vec::new();
    for (side, solo, prefix) in [("ours", true, "rt:"), ("ours, pool only", false, "rtpool:")] {
        let db = crate::open(&format!(
            "database: {}\ncache: {{ type: in-memory }}",
            with_prefix(&block_with(solo), prefix)
        ))
        .await;
        subjects.push((side, db));
    }
    let raw = RedisBaseline::open(url, "rtraw:", 1).await;
    let value = value_of(200);
    for i in 0..1000 {
        for (_, db) in &subjects {
            db.set(&format!("k{i}"), &value).await.expect("a fill");
        }
        raw.set(format!("k{i}"), value.clone())
            .await
            .expect("a fill");
    }
    let mut rows = Vec::new();
    let batch: Vec<String> = (0..100).map(|i| format!("k{}", i * 7)).collect();
    let entries: Vec<(String, Value)> = batch.iter().map(|k| (k.clone(), value.clone())).collect();
    for op in ["get", "set", "mget100", "mset100"] {
        let mut runs: Vec<(&str, Vec<f64>)> = subjects
            .iter()
            .map(|(side, _)| (*side, Vec::new()))
            .collect();
        runs.push(("raw driver", Vec::new()));
        // A batch of 100 is about as long as ten single calls: a tenth of the calls.
        let calls = if op.starts_with('m') { ops / 10 } else { ops };
        for _ in 0..RUNS {
            // Interleaved, so that a slow spell of the machine falls on every side.
            for (s, (_, db)) in subjects.iter().enumerate() {
                let started = Instant::now();
                for i in 0..calls {
                    let key = format!("k{}", (i * 7919) % 1000);
                    match op {
                        "get" => drop(db.get(&key).await.expect("a get")),
                        "set" => db.set_owned(&key, value.clone()).await.expect("a set"),
                        "mget100" => drop(db.mget(&batch).await.expect("an mget")),
                        _ => db.mset(&entries).await.expect("an mset"),
                    }
                }
                runs[s]
                    .1
                    .push(calls as f64 / started.elapsed().as_secs_f64());
            }
            if op.starts_with('m') {
                // The raw driver's batches are not measured here: the ratios that matter are
                // the batch's to the project's own single call, and solo against pool.
                continue;
            }
            let started = Instant::now();
            for i in 0..ops {
                let key = format!("k{}", (i * 7919) % 1000);
                match op {
                    "get" => raw.get(key).await.expect("a get"),
                    _ => raw.set(key, value.clone()).await.expect("a set"),
                }
            }
            let raw_runs = &mut runs.last_mut().expect("the raw side").1;
            raw_runs.push(ops as f64 / started.elapsed().as_secs_f64());
        }
        for (side, runs) in runs {
            if runs.is_empty() {
                continue;
            }
            let mut sorted = runs.clone();
            sorted.sort_by(f64::total_cmp);
            let median = sorted[sorted.len() / 2];
            eprintln!(
                "scale: redis one task {runtime:<14} {side:<15} {op}: median {median:>7.0} ops/s, runs {:?}",
                runs.iter().map(|r| r.round()).collect::<Vec<_>>()
            );
            rows.push(json!({
                "runtime": runtime, "side": side, "op": op,
                "median_ops_per_sec": median, "runs_ops_per_sec": runs,
            }));
        }
    }
    for (_, db) in &subjects {
        db.clear().await.expect("clear");
    }
    let cleaner = crate::open(&format!(
        "database: {}\ncache: {{ type: in-memory }}",
        with_prefix(&block_with(true), "rtraw:")
    ))
    .await;
    cleaner.clear().await.expect("clear the raw keys");
    rows
}
