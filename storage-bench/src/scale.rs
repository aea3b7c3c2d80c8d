//! `storage-bench --scale [--smoke]`: how each backend's cost grows with the work. Curves, per
//! backend, each point the median of three runs with the range kept: concurrency (get and set
//! from 1 to 256 tasks), value size (get and set of 100 B to 1 MiB in MB/s, beside the raw
//! driver's), namespace size (get, set, `keys` of a 100-key pattern, and `clear` of a 100k-key
//! namespace beside, with 1k to 10M keys; the bytes each key takes at rest read at every
//! size) and list length (append, the last 50 items, dropping the head, of a list of 1k to
//! 10M). `--smoke` runs tiny sizes so that `cargo xtask test` keeps it working. The run as a
//! whole (the backends, migrate, `scale.json`, the plots) is `scale_run.rs`.

use crate::harness::{RUNS, Stats};
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use storage_core::Database;

/// One curve: an operation's figures along one axis.
pub struct Curve {
    pub backend: String,
    pub axis: &'static str,
    pub op: &'static str,
    /// What a point's `y` is: `ops/s`, or `MB/s` for the value-size axis.
    pub unit: &'static str,
    /// (x, the median run, its `y`, the calls each run made).
    pub points: Vec<(f64, Stats, f64, usize)>,
}

impl Curve {
    pub fn json(&self) -> Value {
        json!({
            "backend": self.backend, "axis": self.axis, "op": self.op, "unit": self.unit,
            "points": self.points.iter().map(|(x, s, y, calls)| json!({
                "x": x, "y": y, "ops_per_sec": s.ops_per_sec,
                "ops_per_sec_min": s.min_ops_per_sec, "ops_per_sec_max": s.max_ops_per_sec,
                "p50_us": s.p50_us, "p99_us": s.p99_us, "calls_per_run": calls,
            })).collect::<Vec<_>>(),
        })
    }

    /// Files `point` at `x`, its `y` being `y(stats)`, and logs it.
    fn add(&mut self, x: usize, point: Point, y: impl Fn(&Stats) -> f64) {
        let s = point.stats;
        eprintln!(
            "scale: {:<10} {:<11} {:<9} x={x:<8} {:>10.0} ops/s  p99 {:>9.1} µs{}",
            self.backend,
            self.axis,
            self.op,
            s.ops_per_sec,
            s.p99_us,
            if point.budgeted {
                format!("  ({} calls a run: the time budget)", point.per_run)
            } else {
                String::new()
            }
        );
        self.points.push((x as f64, s, y(&s), point.per_run));
    }
}

/// The sizes of one run.
#[derive(Clone, Copy)]
pub struct Sizes {
    pub ops: usize,
    /// Keys of the namespace `clear`ed beside the large one.
    pub side: usize,
    /// Keys `storage migrate` copies, and the bulk loads it is held against take.
    pub migrate: usize,
    pub concurrency: &'static [usize],
    pub value_bytes: &'static [usize],
    pub namespace: &'static [usize],
    pub list: &'static [usize],
}

pub const FULL: Sizes = Sizes {
    ops: 2_000,
    side: 100_000,
    migrate: 1_000_000,
    concurrency: &[1, 4, 16, 64, 256],
    value_bytes: &[100, 10_240, 1_048_576],
    namespace: &[1_000, 100_000, 1_000_000, 10_000_000],
    list: &[1_000, 100_000, 1_000_000, 10_000_000],
};

pub const SMOKE: Sizes = Sizes {
    ops: 40,
    side: 100,
    migrate: 1_000,
    concurrency: &[1, 4],
    value_bytes: &[100, 10_240],
    namespace: &[100, 1_000],
    list: &[100, 1_000],
};

/// The longest one run of a point should take. A point whose calls are slow (a `keys` that
/// walks a 10M-key Redis keyspace takes about 15 s a call) makes fewer calls a run, at least
/// [`MIN_CALLS`], rather than stretch the whole scale run past its hour; its `calls_per_run`
/// in `scale.json` says so.
const RUN_BUDGET: Duration = Duration::from_secs(10);
/// The fewest calls a run of a point makes, however slow they are.
const MIN_CALLS: usize = 3;

/// One point as measured: the median run, the calls each run made, all calls made (the
/// probe and the warm-up included), and whether the time budget cut the calls.
#[derive(Clone, Copy)]
pub struct Point {
    pub stats: Stats,
    pub per_run: usize,
    pub calls: usize,
    pub budgeted: bool,
}

/// Runs `total` calls of `op(i)` from `concurrency` tasks, timing each.
pub async fn timed<F, Fut>(concurrency: usize, total: usize, op: F) -> Stats
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

/// One call from each task (a first warm-up, and what a call costs), the rest of a warm-up,
/// then the median of [`RUNS`] runs of `total` calls, or of as many as fit [`RUN_BUDGET`].
async fn median<F, Fut>(concurrency: usize, total: usize, op: F) -> Point
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    median_within(RUN_BUDGET, concurrency, total, op).await
}

async fn median_within<F, Fut>(budget: Duration, concurrency: usize, total: usize, op: F) -> Point
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    // A task's first call may be cold (a statement prepared, a connection opened): it is made
    // and not counted; the second, warm, says how many calls fit the budget.
    timed(concurrency, concurrency, op.clone()).await;
    let probe = timed(concurrency, concurrency, op.clone()).await;
    let fits = (probe.ops_per_sec * budget.as_secs_f64()) as usize;
    let per_run = total.min(fits.max(MIN_CALLS).max(concurrency));
    let warm_up = per_run / 10 + 1;
    timed(concurrency, warm_up, op.clone()).await;
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        runs.push(timed(concurrency, per_run, op.clone()).await);
    }
    Point {
        stats: Stats::median(runs),
        per_run,
        calls: 2 * concurrency + warm_up + RUNS * per_run,
        budgeted: per_run < total,
    }
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
pub async fn fill(db: &Arc<dyn Database>, from: usize, n: usize, value: &Value) {
    let mut i = from;
    while i < n {
        let end = (i + 1000).min(n);
        let batch: Vec<(String, Value)> =
            (i..end).map(|k| (format!("k{k}"), value.clone())).collect();
        db.mset(&batch).await.expect("a fill");
        i = end;
    }
}

pub fn value_of(bytes: usize) -> Value {
    json!({ "role": "user", "content": "x".repeat(bytes.saturating_sub(30)) })
}

/// A point's `y` when it is its rate.
fn ops(s: &Stats) -> f64 {
    s.ops_per_sec
}

/// One backend of the run: how to open it, its raw driver, where its bytes at rest are read.
pub struct Backend {
    pub name: &'static str,
    /// Its `database:` block, without a `keyPrefix` (the run adds its own).
    pub block: String,
    pub raw: Arc<crate::scale_raw::Raw>,
    pub footprint: crate::scale_footprint::Footprint,
}

/// A `database:` block written as JSON, which is YAML's flow form: a URL or a path holding a
/// quote or a colon needs no escaping by hand.
pub fn block(fields: Value) -> String {
    fields.to_string()
}

/// `block` (made by [`block`]) with `keyPrefix: prefix` added.
pub fn with_prefix(block: &str, prefix: &str) -> String {
    let mut fields: Value = serde_json::from_str(block).expect("a block made by `block`");
    fields["keyPrefix"] = json!(prefix);
    fields.to_string()
}

/// What one backend measured.
pub struct Measured {
    pub curves: Vec<Curve>,
    /// (keys in the namespace, bytes at rest per key) at each namespace size reached.
    pub footprint: Vec<(usize, f64)>,
    /// Why a curve stopped short of its largest size, if one did.
    pub stopped: Vec<String>,
    /// (tasks, the server's WAL fsyncs per `set`) where the server counts them (PostgreSQL).
    pub fsyncs: Vec<(usize, f64)>,
}

async fn open(b: &Backend, prefix: &str) -> Arc<dyn Database> {
    crate::open(&format!(
        "database: {}\ncache: {{ type: in-memory }}",
        with_prefix(&b.block, prefix)
    ))
    .await
}

/// Every curve of one backend (its namespaces cleared before and after).
pub async fn backend(b: &Backend, sizes: &Sizes) -> Measured {
    let name = b.name;
    let db = open(b, "scale:").await;
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
    let mut fsyncs = Vec::new();

    let (mut c_get, mut c_set) = (
        curve("concurrency", "get", "ops/s"),
        curve("concurrency", "set", "ops/s"),
    );
    for &c in sizes.concurrency {
        let total = sizes.ops.max(c * 4);
        c_get.add(c, median(c, total, get(&db, 1000)).await, ops);
        let syncs = b.footprint.wal_syncs().await;
        let p = median(c, total, set(&db, 1000, Arc::new(small.clone()))).await;
        if syncs.is_some() {
            // A PostgreSQL backend reports its statistics when idle, within 10 s.
            tokio::time::sleep(std::time::Duration::from_secs(11)).await;
        }
        if let (Some(before), Some(after)) = (syncs, b.footprint.wal_syncs().await) {
            let per_set = (after - before) as f64 / p.calls as f64;
            eprintln!("scale: {name:<10} fsyncs per set at {c} tasks: {per_set:.2}");
            fsyncs.push((c, per_set));
        }
        c_set.add(c, p, ops);
    }

    let mut value_curves = [
        curve("value_size", "get", "MB/s"),
        curve("value_size", "set", "MB/s"),
        curve("value_size", "raw get", "MB/s"),
        curve("value_size", "raw set", "MB/s"),
    ];
    let raw = b.raw.clone();
    for &bytes in sizes.value_bytes {
        let value = value_of(bytes);
        let keys = 100;
        let total = (sizes.ops * 100 / bytes.max(100)).clamp(20, sizes.ops);
        fill(&db, 0, keys, &value).await;
        for k in 0..keys {
            raw.set(format!("k{k}"), value.clone()).await;
        }
        let mb = |s: &Stats| s.ops_per_sec * bytes as f64 / 1e6;
        let raw_get = {
            let raw = raw.clone();
            move |i: usize| {
                let raw = raw.clone();
                async move { raw.get(format!("k{}", (i * 7919) % keys)).await }
            }
        };
        let raw_set = {
            let (raw, value) = (raw.clone(), value.clone());
            move |i: usize| {
                let (raw, value) = (raw.clone(), value.clone());
                async move { raw.set(format!("k{}", (i * 7919) % keys), value).await }
            }
        };
        let runs = [
            median(1, total, get(&db, keys)).await,
            median(1, total, set(&db, keys, Arc::new(value))).await,
            median(1, total, raw_get).await,
            median(1, total, raw_set).await,
        ];
        for (curve, p) in value_curves.iter_mut().zip(runs) {
            curve.add(bytes, p, mb);
        }
    }
    drop(raw);
    open(b, crate::scale_raw::RAW_NAMESPACE)
        .await
        .clear()
        .await
        .expect("clear the raw driver's keys");

    let (namespace, footprint, mut stopped) = namespace_curves(b, &db, sizes).await;
    let list = list_curves(b, &db, sizes, &mut stopped).await;
    db.clear().await.expect("clear after");
    let mut curves = vec![c_get, c_set];
    curves.extend(value_curves);
    curves.extend(namespace);
    curves.extend(list);
    Measured {
        curves,
        footprint,
        stopped,
        fsyncs,
    }
}

/// Get, set, `keys` of 100 matches and `clear` of a namespace beside, as the namespace grows;
/// the bytes per key at each size; why it stopped early, if it did.
async fn namespace_curves(
    b: &Backend,
    db: &Arc<dyn Database>,
    sizes: &Sizes,
) -> (Vec<Curve>, Vec<(usize, f64)>, Vec<String>) {
    let name = b.name;
    let small = value_of(200);
    let curve = |op| Curve {
        backend: name.to_string(),
        axis: "namespace",
        op,
        unit: "ops/s",
        points: Vec::new(),
    };
    let (mut n_get, mut n_set, mut n_keys, mut n_clear) =
        (curve("get"), curve("set"), curve("keys"), curve("clear"));
    let (mut footprint, mut stopped) = (Vec::new(), Vec::new());
    db.clear().await.expect("clear before the namespace curve");
    let before = b.footprint.bytes().await.expect("the bytes at rest");
    let matching: Vec<(String, Value)> = (0..100)
        .map(|i| (format!("match:{i}"), small.clone()))
        .collect();
    db.mset(&matching).await.expect("the matching keys");
    let side = open(b, "side:").await;
    let mut filled = 0;
    for &n in sizes.namespace {
        let per_key = footprint.last().map_or(1024.0, |&(_, b)| b);
        if let Err(why) = crate::scale_footprint::room_for(&b.footprint, per_key, n - filled) {
            stopped.push(format!(
                "{name}: the namespace curve stopped before {n} keys: {why}"
            ));
            eprintln!("scale: {}", stopped.last().unwrap());
            break;
        }
        fill(db, filled, n, &small).await;
        filled = filled.max(n);
        if let (Some(before), Ok(Some(now))) = (before, b.footprint.bytes().await) {
            let per_key = now.saturating_sub(before) as f64 / (n + 100) as f64;
            eprintln!("scale: {name:<10} footprint   {n:>8} keys: {per_key:.0} B/key");
            footprint.push((n, per_key));
        }
        n_get.add(n, median(1, sizes.ops, get(db, n)).await, ops);
        n_set.add(
            n,
            median(1, sizes.ops, set(db, n, Arc::new(small.clone()))).await,
            ops,
        );
        let lister = db.clone();
        let p = median(1, (sizes.ops / 50).max(5), move |_| {
            let db = lister.clone();
            async move {
                let found = db.keys(Some("match:*")).await.expect("keys");
                assert_eq!(found.len(), 100, "keys matching the pattern");
            }
        })
        .await;
        n_keys.add(n, p, ops);
        let mut runs = Vec::new();
        for _ in 0..RUNS {
            fill(&side, 0, sizes.side, &small).await;
            let started = Instant::now();
            side.clear().await.expect("clear the namespace beside");
            let took = started.elapsed();
            runs.push(Stats::of(vec![took.as_nanos() as u64], took));
        }
        let point = Point {
            stats: Stats::median(runs),
            per_run: 1,
            calls: RUNS,
            budgeted: false,
        };
        n_clear.add(n, point, ops);
    }
    db.clear().await.expect("clear after the namespace curve");
    (vec![n_get, n_set, n_keys, n_clear], footprint, stopped)
}

/// Append, the last 50 items and dropping the head, as one list grows.
async fn list_curves(
    b: &Backend,
    db: &Arc<dyn Database>,
    sizes: &Sizes,
    stopped: &mut Vec<String>,
) -> Vec<Curve> {
    let name = b.name;
    let curve = |op| Curve {
        backend: name.to_string(),
        axis: "list_length",
        op,
        unit: "ops/s",
        points: Vec::new(),
    };
    let (mut l_append, mut l_tail, mut l_trim) =
        (curve("append"), curve("tail50"), curve("trim_head"));
    let mut length = 0;
    for &n in sizes.list {
        if let Err(why) = crate::scale_footprint::room_for(&b.footprint, 64.0, n - length.min(n)) {
            stopped.push(format!(
                "{name}: the list curve stopped before {n} items: {why}"
            ));
            eprintln!("scale: {}", stopped.last().unwrap());
            break;
        }
        while length < n {
            let batch: Vec<Value> = (length..(length + 1000).min(n)).map(|i| json!(i)).collect();
            length += batch.len();
            db.append_many("chat", &batch).await.expect("a fill");
        }
        let appender = db.clone();
        let p = median(1, sizes.ops, move |i| {
            let db = appender.clone();
            async move { db.append("chat", &json!(i)).await.expect("an append") }
        })
        .await;
        l_append.add(n, p, ops);
        // Trimmed back below, one item a call, before the next size is filled.
        let appended = p.calls;
        length += appended;
        let reader = db.clone();
        let p = median(1, sizes.ops, move |_| {
            let db = reader.clone();
            async move {
                let items = db.get_range("chat", -50, -1).await.expect("a range");
                assert_eq!(items.len(), 50);
            }
        })
        .await;
        l_tail.add(n, p, ops);
        let trimmer = db.clone();
        let p = median(1, sizes.ops, move |_| {
            let db = trimmer.clone();
            async move { db.trim("chat", 1, -1).await.expect("a trim of the head") }
        })
        .await;
        l_trim.add(n, p, ops);
        length -= p.calls;
    }
    vec![l_append, l_tail, l_trim]
}

#[cfg(test)]
#[path = "scale_tests.rs"]
mod tests;
