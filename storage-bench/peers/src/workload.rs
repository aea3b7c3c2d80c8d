//! The workload both sides of the peer comparison run: 1,000 keys of about 200 bytes of JSON,
//! `get` and `set` at concurrency 1 and 64, each figure the median of three runs. Shared, by
//! path, by the peer runner (this crate) and by `storage-bench`, which measures our SQLite
//! backend with it (the two SQLite drivers cannot link into one program). It opens no backend:
//! each program hands it ours as an opened database role ([`OurDatabase`]) and, in the runner,
//! OpenDAL's operators.

use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

/// Keys read and written.
pub const KEYS: usize = 1000;
/// Runs per figure.
pub const RUNS: usize = 3;
/// The concurrencies measured.
pub const CONCURRENCIES: [usize; 2] = [1, 64];
/// The operations measured.
pub const OPS: [&str; 2] = ["get", "set"];

/// A key-value store as the workload uses it: JSON values in, JSON values out.
pub trait Kv: Send + Sync + 'static {
    /// The value at `key`.
    fn get(&self, key: String) -> impl Future<Output = Result<Option<Value>, String>> + Send;
    /// Stores `value` at `key`.
    fn set(&self, key: String, value: Value) -> impl Future<Output = Result<(), String>> + Send;
}

/// Ours: a database role as the manager opens it for an application.
pub struct OurDatabase(pub Arc<dyn storage_core::Database>);

impl Kv for OurDatabase {
    async fn get(&self, key: String) -> Result<Option<Value>, String> {
        self.0.get(&key).await.map_err(|e| e.to_string())
    }
    async fn set(&self, key: String, value: Value) -> Result<(), String> {
        // The workload hands over a value it will not use again.
        self.0
            .set_owned(&key, value)
            .await
            .map_err(|e| e.to_string())
    }
}

/// About 200 bytes of JSON (the main benchmark's payload).
pub fn payload(i: usize) -> Value {
    json!({
        "role": "assistant",
        "content": "The quick brown fox jumps over the lazy dog; a typical chat message of moderate length, a bit more text here to reach the size.",
        "ts": 1_795_000_000_000u64 + i as u64,
        "n": i
    })
}

/// One measured figure: the median run, with the range of all runs.
#[derive(Debug, Clone, Copy)]
pub struct Figure {
    pub ops_per_sec: f64,
    pub min_ops_per_sec: f64,
    pub max_ops_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// The disks' flushes per operation over the runs (see [`disk_flushes`]).
    pub flushes_per_op: Option<f64>,
}

/// Flush requests the machine's disks have completed since boot, summed over the whole disks
/// (`/proc/diskstats`, the 16th figure after a device's name, counted since Linux 5.5; stacked
/// `dm-`/`md` devices, loop and RAM disks are left out: their flushes reach a disk counted
/// there).
/// Each fsync of a file with new data is one flush of the disk under it, whoever issues it
/// (this process, PostgreSQL's WAL writer), so the difference over a run divided by its
/// operations is what each write paid. None where the kernel does not count them.
pub fn disk_flushes() -> Option<u64> {
    let stats = std::fs::read_to_string("/proc/diskstats").ok()?;
    let mut total = None;
    for line in stats.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(name) = fields.get(2) else { continue };
        let whole_disk = std::path::Path::new("/sys/block").join(name).exists();
        let stacked = ["loop", "ram", "zram", "dm-", "md", "sr"]
            .iter()
            .any(|p| name.starts_with(p));
        if whole_disk && !stacked {
            let flushes: u64 = fields.get(18)?.parse().ok()?;
            *total.get_or_insert(0) += flushes;
        }
    }
    total
}

/// The flushes per operation of runs that made `ops` operations between the two readings.
pub fn per_op(before: Option<u64>, after: Option<u64>, ops: usize) -> Option<f64> {
    Some(after?.checked_sub(before?)? as f64 / ops.max(1) as f64)
}

/// Writes every key once.
pub async fn preload<K: Kv>(kv: &K) -> Result<(), String> {
    for i in 0..KEYS {
        kv.set(format!("g:{i}"), payload(i)).await?;
    }
    Ok(())
}

/// One run: its rate, its sorted latencies (ns) and the disks' flushes during it.
pub type Run = (f64, Vec<u64>, Option<u64>);

/// One run: `total` operations of `op` from `concurrency` tasks.
pub async fn run_once<K: Kv>(
    kv: Arc<K>,
    op: &'static str,
    concurrency: usize,
    total: usize,
) -> Run {
    let per_task = total.div_ceil(concurrency);
    let flushed = disk_flushes();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let kv = kv.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_task);
            for k in 0..per_task {
                let i = t * per_task + k;
                let begun = Instant::now();
                let key = format!("{}:{}", if op == "get" { "g" } else { "s" }, i % KEYS);
                let outcome = match op {
                    "get" => kv.get(key).await.and_then(|v| {
                        v.map(drop)
                            .ok_or_else(|| "a preloaded key is missing".to_string())
                    }),
                    _ => kv.set(key, payload(i)).await,
                };
                outcome.expect("a peer benchmark operation");
                latencies.push(begun.elapsed().as_nanos() as u64);
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("a benchmark task"));
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    let flushes = disk_flushes()
        .zip(flushed)
        .map(|(after, before)| after - before);
    all.sort_unstable();
    (rate, all, flushes)
}

/// The median of runs.
pub fn figure(mut runs: Vec<Run>) -> Figure {
    let ops: usize = runs.iter().map(|r| r.1.len()).sum();
    let flushes: Option<u64> = runs.iter().map(|r| r.2).sum();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (min, max) = (runs[0].0, runs[runs.len() - 1].0);
    let (rate, lat, _) = &runs[runs.len() / 2];
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1000.0;
    Figure {
        ops_per_sec: *rate,
        min_ops_per_sec: min,
        max_ops_per_sec: max,
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        flushes_per_op: per_op(Some(0), flushes, ops),
    }
}

/// Operations per run at `concurrency`.
pub fn total(ops_scale: usize, concurrency: usize) -> usize {
    ops_scale.max(concurrency * 20)
}

/// Every figure of the workload for one store: `(op, concurrency, figure)`.
pub async fn measure_alone<K: Kv>(
    kv: Arc<K>,
    ops_scale: usize,
) -> Vec<(&'static str, usize, Figure)> {
    let mut out = Vec::new();
    for c in CONCURRENCIES {
        for op in OPS {
            let n = total(ops_scale, c);
            run_once(kv.clone(), op, c, n / 10 + 1).await;
            let mut runs = Vec::new();
            for _ in 0..RUNS {
                runs.push(run_once(kv.clone(), op, c, n).await);
            }
            out.push((op, c, figure(runs)));
        }
    }
    out
}

/// Every figure for two stores, their runs interleaved (alternating which goes first):
/// `(op, concurrency, ours, theirs)`.
pub async fn measure_pair<A: Kv, B: Kv>(
    ours: Arc<A>,
    theirs: Arc<B>,
    ops_scale: usize,
) -> Vec<(&'static str, usize, Figure, Figure)> {
    let mut out = Vec::new();
    for c in CONCURRENCIES {
        for op in OPS {
            let n = total(ops_scale, c);
            run_once(ours.clone(), op, c, n / 10 + 1).await;
            run_once(theirs.clone(), op, c, n / 10 + 1).await;
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for round in 0..RUNS {
                if round % 2 == 1 {
                    b.push(run_once(theirs.clone(), op, c, n).await);
                }
                a.push(run_once(ours.clone(), op, c, n).await);
                if round % 2 == 0 {
                    b.push(run_once(theirs.clone(), op, c, n).await);
                }
            }
            out.push((op, c, figure(a), figure(b)));
        }
    }
    out
}
