//! `storage-bench --scale [--smoke]`: how each backend's cost grows with the work. Curves, per
//! backend, each point the median of three runs with the range kept: concurrency (get and set
//! from 1 to 256 tasks), value size (get and set of 100 B to 1 MiB, in MB/s), namespace size
//! (get, set and `keys` of a 100-key pattern beside 1k to 1M keys) and list length (append
//! and the last 50 items of a list of 1k to 1M). Written to `scale.json` and drawn as SVGs by
//! `scale_plot.rs`. `--smoke` runs tiny sizes so that `cargo xtask test` keeps it working.
//! Not the default benchmark's rows (`main.rs`), nor the figures' comparison with raw drivers.

use crate::harness::{RUNS, Stats};
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use storage_core::Database;

/// One curve: an operation's figures along one axis.
pub struct Curve {
    pub backend: String,
    pub axis: &'static str,
    pub op: &'static str,
    /// What a point's `y` is: `ops/s`, or `MB/s` for the value-size axis.
    pub unit: &'static str,
    /// (x, the median run, its `y`).
    pub points: Vec<(f64, Stats, f64)>,
}

impl Curve {
    pub fn json(&self) -> Value {
        json!({
            "backend": self.backend, "axis": self.axis, "op": self.op, "unit": self.unit,
            "points": self.points.iter().map(|(x, s, y)| json!({
                "x": x, "y": y, "ops_per_sec": s.ops_per_sec,
                "ops_per_sec_min": s.min_ops_per_sec, "ops_per_sec_max": s.max_ops_per_sec,
                "p50_us": s.p50_us, "p99_us": s.p99_us,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The sizes of one run.
pub struct Sizes {
    pub ops: usize,
    pub concurrency: &'static [usize],
    pub value_bytes: &'static [usize],
    pub namespace: &'static [usize],
    pub list: &'static [usize],
}

pub const FULL: Sizes = Sizes {
    ops: 5_000,
    concurrency: &[1, 4, 16, 64, 256],
    value_bytes: &[100, 10_240, 1_048_576],
    namespace: &[1_000, 100_000, 1_000_000],
    list: &[1_000, 100_000, 1_000_000],
};

pub const SMOKE: Sizes = Sizes {
    ops: 40,
    concurrency: &[1, 4],
    value_bytes: &[100, 10_240],
    namespace: &[100, 1_000],
    list: &[100, 1_000],
};

/// Runs `total` calls of `op(i)` from `concurrency` tasks, timing each.
async fn timed<F, Fut>(concurrency: usize, total: usize, op: F) -> Stats
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (op, next) = (op.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break latencies;
                    }
                    let begun = Instant::now();
                    op(i).await;
                    latencies.push(begun.elapsed().as_nanos() as u64);
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("a scale task"));
    }
    Stats::of(all, started.elapsed())
}

/// A warm-up, then the median of [`RUNS`].
async fn median<F, Fut>(concurrency: usize, total: usize, op: F) -> Stats
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    timed(concurrency, total / 10 + 1, op.clone()).await;
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        runs.push(timed(concurrency, total, op.clone()).await);
    }
    Stats::median(runs)
}

fn get(
    db: &Arc<dyn Database>,
    keys: usize,
) -> impl Fn(usize) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Clone + Send + Sync + 'static
{
    let db = db.clone();
    move |i| {
        let db = db.clone();
        Box::pin(async move {
            db.get(&format!("k{}", (i * 7919) % keys))
                .await
                .expect("a get");
        })
    }
}

fn set(
    db: &Arc<dyn Database>,
    keys: usize,
    value: Arc<Value>,
) -> impl Fn(usize) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Clone + Send + Sync + 'static
{
    let db = db.clone();
    move |i| {
        let (db, value) = (db.clone(), value.clone());
        Box::pin(async move {
            db.set(&format!("k{}", (i * 7919) % keys), &value)
                .await
                .expect("a set");
        })
    }
}

/// Fills keys `k0..k{n}` (those not there yet, from `from`) in batches.
async fn fill(db: &Arc<dyn Database>, from: usize, n: usize, value: &Value) {
    let mut i = from;
    while i < n {
        let end = (i + 1000).min(n);
        let batch: Vec<(String, Value)> =
            (i..end).map(|k| (format!("k{k}"), value.clone())).collect();
        db.mset(&batch).await.expect("a fill");
        i = end;
    }
}

fn value_of(bytes: usize) -> Value {
    json!({ "role": "user", "content": "x".repeat(bytes.saturating_sub(30)) })
}

fn log(backend: &str, axis: &str, op: &str, x: usize, s: &Stats) {
    eprintln!(
        "scale: {backend:<10} {axis:<11} {op:<5} x={x:<8} {:>10.0} ops/s  p99 {:>9.1} µs",
        s.ops_per_sec, s.p99_us
    );
}

/// Every curve of one backend (its namespace cleared before and after).
pub async fn backend(name: &str, db: Arc<dyn Database>, sizes: &Sizes) -> Vec<Curve> {
    db.clear().await.expect("clear before");
    let curve = |axis, op, unit| Curve {
        backend: name.to_string(),
        axis,
        op,
        unit,
        points: Vec::new(),
    };
    let small = value_of(200);
    fill(&db, 0, 1000, &small).await;

    let (mut c_get, mut c_set) = (
        curve("concurrency", "get", "ops/s"),
        curve("concurrency", "set", "ops/s"),
    );
    for &c in sizes.concurrency {
        let total = sizes.ops.max(c * 4);
        let s = median(c, total, get(&db, 1000)).await;
        log(name, "concurrency", "get", c, &s);
        c_get.points.push((c as f64, s, s.ops_per_sec));
        let s = median(c, total, set(&db, 1000, Arc::new(small.clone()))).await;
        log(name, "concurrency", "set", c, &s);
        c_set.points.push((c as f64, s, s.ops_per_sec));
    }

    let (mut v_get, mut v_set) = (
        curve("value_size", "get", "MB/s"),
        curve("value_size", "set", "MB/s"),
    );
    for &bytes in sizes.value_bytes {
        let value = value_of(bytes);
        let keys = 100;
        let total = (sizes.ops * 100 / bytes.max(100)).clamp(20, sizes.ops);
        fill(&db, 0, keys, &value).await;
        let mb = |s: &Stats| s.ops_per_sec * bytes as f64 / 1e6;
        let s = median(1, total, get(&db, keys)).await;
        log(name, "value_size", "get", bytes, &s);
        v_get.points.push((bytes as f64, s, mb(&s)));
        let s = median(1, total, set(&db, keys, Arc::new(value))).await;
        log(name, "value_size", "set", bytes, &s);
        v_set.points.push((bytes as f64, s, mb(&s)));
    }
    fill(&db, 0, 100, &small).await;

    let mut n_get = curve("namespace", "get", "ops/s");
    let mut n_set = curve("namespace", "set", "ops/s");
    let mut n_keys = curve("namespace", "keys", "ops/s");
    let matching: Vec<(String, Value)> = (0..100)
        .map(|i| (format!("match:{i}"), small.clone()))
        .collect();
    db.mset(&matching).await.expect("the matching keys");
    let mut filled = 1000;
    for &n in sizes.namespace {
        fill(&db, filled, n, &small).await;
        filled = filled.max(n);
        let s = median(1, sizes.ops, get(&db, n)).await;
        log(name, "namespace", "get", n, &s);
        n_get.points.push((n as f64, s, s.ops_per_sec));
        let s = median(1, sizes.ops, set(&db, n, Arc::new(small.clone()))).await;
        log(name, "namespace", "set", n, &s);
        n_set.points.push((n as f64, s, s.ops_per_sec));
        let lister = db.clone();
        let s = median(1, (sizes.ops / 50).max(5), move |_| {
            let db = lister.clone();
            async move {
                let found = db.keys(Some("match:*")).await.expect("keys");
                assert_eq!(found.len(), 100, "keys matching the pattern");
            }
        })
        .await;
        log(name, "namespace", "keys", n, &s);
        n_keys.points.push((n as f64, s, s.ops_per_sec));
    }
    db.clear().await.expect("clear after the namespace curve");

    let (mut l_append, mut l_tail) = (
        curve("list_length", "append", "ops/s"),
        curve("list_length", "tail50", "ops/s"),
    );
    let mut length = 0;
    for &n in sizes.list {
        while length < n {
            let batch: Vec<Value> = (length..(length + 1000).min(n)).map(|i| json!(i)).collect();
            length += batch.len();
            db.append_many("chat", &batch).await.expect("a fill");
        }
        let appender = db.clone();
        let s = median(1, sizes.ops, move |i| {
            let db = appender.clone();
            async move { db.append("chat", &json!(i)).await.expect("an append") }
        })
        .await;
        log(name, "list_length", "append", n, &s);
        l_append.points.push((n as f64, s, s.ops_per_sec));
        length += sizes.ops / 10 + 1 + RUNS * sizes.ops; // the warm-up's and the runs' appends
        let reader = db.clone();
        let s = median(1, sizes.ops, move |_| {
            let db = reader.clone();
            async move {
                let items = db.get_range("chat", -50, -1).await.expect("a range");
                assert_eq!(items.len(), 50);
            }
        })
        .await;
        log(name, "list_length", "tail50", n, &s);
        l_tail.points.push((n as f64, s, s.ops_per_sec));
    }
    db.clear().await.expect("clear after");
    vec![
        c_get, c_set, v_get, v_set, n_get, n_set, n_keys, l_append, l_tail,
    ]
}

/// Every backend given (in-memory and SQLite always): their curves in `out` (`scale.json`)
/// and drawn into `plots`, captioned `caption` (the machine, the date, the commit).
pub async fn all(
    smoke: bool,
    postgres: Option<String>,
    redis: Option<String>,
    out: &std::path::Path,
    plots: &std::path::Path,
    caption: &str,
) {
    let sizes = if smoke { &SMOKE } else { &FULL };
    let dir = std::env::temp_dir().join(format!("storage-bench-scale-{}", std::process::id()));
    let mut blocks = vec![
        ("in-memory", "{ type: in-memory, store: scale }".to_string()),
        (
            "sqlite",
            format!(
                "{{ type: sqlite, path: '{}' }}",
                dir.join("scale.db").display()
            ),
        ),
    ];
    if let Some(url) = postgres {
        blocks.push((
            "postgresql",
            format!(
                "{{ type: postgresql, url: '{url}', keyPrefix: 'scale:', maxConnections: 64 }}"
            ),
        ));
    }
    if let Some(url) = redis {
        blocks.push((
            "redis",
            format!("{{ type: redis, url: '{url}', keyPrefix: 'scale:', maxConnections: 64 }}"),
        ));
    }
    let mut curves = Vec::new();
    for (name, block) in blocks {
        let db = crate::open(&format!("database: {block}\ncache: {{ type: in-memory }}")).await;
        curves.extend(backend(name, db, sizes).await);
    }
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).expect("the results directory");
    }
    let json = Value::Array(curves.iter().map(Curve::json).collect());
    std::fs::write(out, serde_json::to_string_pretty(&json).expect("json"))
        .expect("write scale.json");
    match crate::scale_plot::draw(&curves, plots, caption) {
        Ok(files) => eprintln!(
            "scale: {} curves, {} plots in {}",
            curves.len(),
            files.len(),
            plots.display()
        ),
        Err(e) => panic!("drawing the curves: {e}"),
    }
    println!("scale: {}", out.display());
}
