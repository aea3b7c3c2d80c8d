//! Redis at one task, on tokio's two runtimes, for the scale run: the project's `get`, `set`,
//! `mget100` and `mset100` (with the solo connection and with the pool alone) and the raw
//! driver's, each run listed (not only the median), on a multi-thread runtime (where the reply
//! passes from the connection's own task to the caller, often across threads) and on a
//! current-thread runtime (where it cannot), beside `redis-benchmark` at one client (its `SET`,
//! and the same writes a database-role `set` asks of the server: the `SET` and its change
//! filed). The raw driver's `mset100` is measured twice: plain `SET`s, and the `SET`/`XADD`
//! pairs a database-role `mset` sends (`raw, logged`), which is what the project's batch is
//! held against. It shows whether the bimodal figures of one task come from the thread hop,
//! and what the solo connection (`storage-redis`'s `solo.rs`) makes of them.
//!
//! Each round of `get` and `set` also runs `redis-benchmark` once, at one client and for as
//! many requests, right after the project's run: the machine's slow spells move both, so
//! "at or above `redis-benchmark` in every run" is judged round by round (`ratio_runs`), not
//! the project's slowest run against the tool's median. Each of the project's runs carries a
//! profile of its own: how many of its operations polled out and slept for their reply
//! (`storage_redis::reply_polling`) and how much CPU time the hypervisor took from the
//! machine meanwhile (steal, from `/proc/stat`). Not the scale curves (`scale.rs`).

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
    let mut rows = measure(url, ops, "multi_thread", with_benchmark).await;
    let owned = url.to_string();
    let current = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
            .block_on(measure(&owned, ops, "current_thread", with_benchmark))
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

async fn measure(url: &str, ops: usize, runtime: &str, with_benchmark: bool) -> Vec<Value> {
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
    let mut logged = redis::Client::open(url)
        .expect("the Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("a raw connection");
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
        if op == "mset100" {
            runs.push(("raw, logged", Vec::new()));
        }
        // The project's runs' profiles, and redis-benchmark's run of each round.
        let mut profiles: Vec<Value> = Vec::new();
        let mut paired: Vec<f64> = Vec::new();
        // A batch of 100 is about as long as ten single calls: a tenth of the calls.
        let calls = if op.starts_with('m') { ops / 10 } else { ops };
        for _ in 0..RUNS {
            // Interleaved, so that a slow spell of the machine falls on every side.
            for (s, (_, db)) in subjects.iter().enumerate() {
                let (polling, steal) = (storage_redis::reply_polling(), steal_ms());
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
                if s == 0 {
                    let now = storage_redis::reply_polling();
                    profiles.push(json!({
                        "polled": now.polled - polling.polled,
                        "slept": now.slept - polling.slept,
                        "steal_ms": steal.zip(steal_ms()).map(|(a, b)| b.saturating_sub(a)),
                    }));
                }
            }
            // The raw driver does the same calls (its batches: one `MGET`, one `MULTI`
            // pipeline), so each of the project's figures has the driver's beside it.
            let started = Instant::now();
            for i in 0..calls {
                let key = format!("k{}", (i * 7919) % 1000);
                match op {
                    "get" => raw.get(key).await.expect("a get"),
                    "set" => raw.set(key, value.clone()).await.expect("a set"),
                    "mget100" => raw.mget(batch.clone()).await.expect("an mget"),
                    _ => raw.mset(entries.clone()).await.expect("an mset"),
                }
            }
            let raw_rate = calls as f64 / started.elapsed().as_secs_f64();
            let raw_side = runs.len() - if op == "mset100" { 2 } else { 1 };
            runs[raw_side].1.push(raw_rate);
            if op == "mset100" {
                // The driver asked for what a database-role `mset` asks of the server: each
                // `SET` with its change filed (`XADD`) in one `MULTI`/`EXEC`.
                let started = Instant::now();
                for _ in 0..calls {
                    logged_mset(&mut logged, &entries).await;
                }
                let rate = calls as f64 / started.elapsed().as_secs_f64();
                runs.last_mut().expect("the logged side").1.push(rate);
            }
            if with_benchmark
                && matches!(op, "get" | "set")
                && let Some(rate) = crate::limits::redis_benchmark_once(url, op, calls)
            {
                paired.push(rate);
            }
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
            let mut row = json!({
                "runtime": runtime, "side": side, "op": op,
                "median_ops_per_sec": median, "runs_ops_per_sec": runs,
            });
            if side == "ours" {
                row["profiles"] = json!(profiles);
                if paired.len() == runs.len() {
                    let ratios: Vec<f64> = runs.iter().zip(&paired).map(|(o, b)| o / b).collect();
                    eprintln!(
                        "scale: redis one task {runtime:<14} ours/redis-benchmark {op}, round by round: {:?} (redis-benchmark {:?}); slept {:?}, steal ms {:?}",
                        ratios
                            .iter()
                            .map(|r| (r * 100.0).round() / 100.0)
                            .collect::<Vec<_>>(),
                        paired.iter().map(|r| r.round()).collect::<Vec<_>>(),
                        profiles
                            .iter()
                            .map(|p| p["slept"].as_u64())
                            .collect::<Vec<_>>(),
                        profiles
                            .iter()
                            .map(|p| p["steal_ms"].as_u64())
                            .collect::<Vec<_>>(),
                    );
                    row["redis_benchmark_runs"] = json!(paired);
                    row["ratio_runs"] = json!(ratios);
                }
            }
            rows.push(row);
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
    let mut logged_keys: Vec<String> = entries.iter().map(|(k, _)| format!("rtlog:{k}")).collect();
    logged_keys.push("rtlog:\0changes".to_string());
    redis::cmd("UNLINK")
        .arg(&logged_keys)
        .query_async::<u64>(&mut logged)
        .await
        .expect("remove the logged batch's keys");
    rows
}

/// CPU time the hypervisor has taken from this machine's processors since boot (the `steal`
/// column of `/proc/stat`'s `cpu` line), in ms; `None` where there is no such file.
fn steal_ms() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: u64 = stat
        .lines()
        .next()?
        .split_whitespace()
        .nth(8)?
        .parse()
        .ok()?;
    // SAFETY: sysconf reads a constant of the system and has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| ticks * 1000 / per_second as u64)
}

/// `entries` as one `MULTI`/`EXEC` of `SET` and `XADD` pairs: the server's work in a
/// database-role `mset` of the project (`storage-redis`'s `core.rs`), its values and log
/// entries of the same shape (a version in front; key, kind and version filed).
async fn logged_mset(conn: &mut redis::aio::MultiplexedConnection, entries: &[(String, Value)]) {
    let mut pipe = redis::pipe();
    pipe.atomic();
    for (key, value) in entries {
        let version = "0123456789abcdef";
        let stored = format!("\u{1}{version}{value}");
        pipe.cmd("SET")
            .arg(format!("rtlog:{key}"))
            .arg(stored)
            .ignore();
        pipe.cmd("XADD")
            .arg("rtlog:\0changes")
            .arg("MAXLEN")
            .arg("~")
            .arg(10_000)
            .arg("*")
            .arg("k")
            .arg(key)
            .arg("t")
            .arg("0")
            .arg("v")
            .arg(version)
            .ignore();
    }
    pipe.query_async::<()>(conn)
        .await
        .expect("the logged batch");
}
