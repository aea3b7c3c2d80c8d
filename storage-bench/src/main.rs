//! `storage-bench`: each backend through the project's API, and the same work on its raw driver
//! with the same harness (the same pool, the same `spawn_blocking`, the same JSON encoding), so
//! that the ratio measures only the project's own layer. Run it through `cargo xtask bench`.
//!
//! ```text
//! storage-bench [--quick] [--postgres URL] [--pgbench PATH] [--redis URL] [--redis-cluster URL]
//!               [--out FILE]
//! ```

mod backend_rows;
mod baselines;
mod blobs;
mod caching;
mod cluster;
mod conditional;
mod feeds;
mod harness;
mod layer_cost;
mod limits;
mod peer;
mod plugin_path;
mod recorder;
mod redis_runtime;
mod scale;
mod scale_footprint;
mod scale_migrate;
mod scale_plot;
mod scale_raw;
mod scale_report;
mod scale_run;

use baselines::{MemoryBaseline, PostgresBaseline, RedisBaseline, SqliteBaseline};
use harness::{RUNS, Row, Stats, measure_median, table};
use serde_json::{Value, json};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use storage_core::{Database, Result};

/// One way to do the benchmarked work: the project's API, or a raw driver.
pub trait Subject: Send + Sync + 'static {
    fn get(&self, key: String) -> impl Future<Output = Result<()>> + Send;
    fn set(&self, key: String, value: Value) -> impl Future<Output = Result<()>> + Send;
    fn mget(&self, keys: Vec<String>) -> impl Future<Output = Result<()>> + Send;
    fn mset(&self, entries: Vec<(String, Value)>) -> impl Future<Output = Result<()>> + Send;
    fn append(&self, key: String, value: Value) -> impl Future<Output = Result<()>> + Send;
    fn tail20(&self, key: String) -> impl Future<Output = Result<()>> + Send;
    fn keys_prefix(&self) -> impl Future<Output = Result<()>> + Send;
    /// Drops the first item of the list at `key` (`trim(key, 1, -1)`). Only the project has
    /// it: the raw-driver baselines keep no list header, so there is nothing equal to compare.
    fn trim_head(&self, key: String) -> impl Future<Output = Result<()>> + Send {
        let _ = key;
        async {
            Err(storage_core::Error::unsupported(
                "trim_head has no baseline",
            ))
        }
    }
    /// A `set_if` of key `ci:<slot>` on the version this subject last wrote there (only the
    /// project has it).
    fn set_if(&self, slot: usize, value: Value) -> impl Future<Output = Result<()>> + Send {
        let _ = (slot, value);
        async { Err(storage_core::Error::unsupported("set_if has no baseline")) }
    }
    /// A `set` of a value the caller keeps (`set_if` takes its value so): what `set_if` is
    /// compared with. Only the project's row uses it.
    fn set_borrowed(&self, key: String, value: Value) -> impl Future<Output = Result<()>> + Send {
        self.set(key, value)
    }
    /// An `update` that increments the counter at `key` (only the project has it).
    fn update(&self, key: String) -> impl Future<Output = Result<()>> + Send {
        let _ = key;
        async { Err(storage_core::Error::unsupported("update has no baseline")) }
    }
}

/// The project's API, and the version it last wrote at each key (for `set_if`).
pub(crate) struct Project(Arc<dyn Database>, conditional::Versions);

impl Project {
    fn new(db: Arc<dyn Database>) -> Self {
        Project(db, conditional::Versions::default())
    }
}

impl Subject for Project {
    async fn get(&self, key: String) -> Result<()> {
        self.0.get(&key).await.map(drop)
    }
    // The harness hands over a value it will not use again, as the baselines' maps take
    // theirs: the owned form is what an application in that position calls.
    async fn set(&self, key: String, value: Value) -> Result<()> {
        self.0.set_owned(&key, value).await
    }
    async fn mget(&self, keys: Vec<String>) -> Result<()> {
        self.0.mget(&keys).await.map(drop)
    }
    async fn mset(&self, entries: Vec<(String, Value)>) -> Result<()> {
        self.0.mset(&entries).await
    }
    async fn append(&self, key: String, value: Value) -> Result<()> {
        self.0.append(&key, &value).await
    }
    async fn tail20(&self, key: String) -> Result<()> {
        self.0.get_range(&key, -20, -1).await.map(drop)
    }
    async fn keys_prefix(&self) -> Result<()> {
        let keys = self.0.keys(Some("p:*")).await?;
        assert_eq!(keys.len(), 1000, "keys_prefix found {} keys", keys.len());
        Ok(())
    }
    async fn trim_head(&self, key: String) -> Result<()> {
        self.0.trim(&key, 1, -1).await
    }
    async fn set_if(&self, slot: usize, value: Value) -> Result<()> {
        conditional::set_if(&*self.0, &self.1, slot, value).await
    }
    async fn set_borrowed(&self, key: String, value: Value) -> Result<()> {
        self.0.set(&key, &value).await
    }
    async fn update(&self, key: String) -> Result<()> {
        conditional::increment(&*self.0, &key).await
    }
}

/// About 200 bytes of JSON.
pub fn payload(i: usize) -> Value {
    json!({
        "role": "assistant",
        "content": "The quick brown fox jumps over the lazy dog; a typical chat message of moderate length, a bit more text here to reach the size.",
        "ts": 1_795_000_000_000u64 + i as u64,
        "n": i
    })
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Op {
    Get,
    Set,
    Mget100,
    Mset100,
    Append(u64),
    Tail20(u64),
    TrimHead(u64),
    KeysPrefix,
    SetIf,
    SetBorrowed,
    Update,
    UpdateContended,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::Mget100 => "mget100",
            Op::Mset100 => "mset100",
            Op::Append(_) => "append",
            Op::Tail20(_) => "range_tail20",
            Op::TrimHead(_) => "trim_head",
            Op::KeysPrefix => "keys_prefix",
            Op::SetIf => "set_if",
            Op::SetBorrowed => "set_borrowed",
            Op::Update => "update",
            Op::UpdateContended => "update_one_key",
        }
    }
    fn list_len(self) -> Option<u64> {
        match self {
            Op::Append(n) | Op::Tail20(n) | Op::TrimHead(n) => Some(n),
            _ => None,
        }
    }
}

fn list_key(n: u64) -> String {
    format!("list:{n}")
}

async fn run_op<S: Subject>(s: &S, op: Op, i: usize) -> Result<()> {
    match op {
        Op::Get => s.get(format!("g:{}", i % 1000)).await,
        Op::Set => s.set(format!("s:{}", i % 1000), payload(i)).await,
        Op::Mget100 => {
            s.mget(
                (0..100)
                    .map(|j| format!("g:{}", (i * 7 + j) % 1000))
                    .collect(),
            )
            .await
        }
        Op::Mset100 => {
            s.mset(
                (0..100)
                    .map(|j| (format!("m:{}", (i * 100 + j) % 5000), payload(j)))
                    .collect(),
            )
            .await
        }
        Op::Append(n) => s.append(list_key(n), payload(i)).await,
        Op::Tail20(n) => s.tail20(list_key(n)).await,
        Op::TrimHead(n) => s.trim_head(list_key(n)).await,
        Op::KeysPrefix => s.keys_prefix().await,
        Op::SetIf => s.set_if(i % 1000, payload(i)).await,
        Op::SetBorrowed => s.set_borrowed(format!("cs:{}", i % 1000), payload(i)).await,
        Op::Update => s.update(format!("u:{}", i % 1000)).await,
        Op::UpdateContended => s.update("counter".to_string()).await,
    }
}

/// Loads the shared data set through the project: 1,000 get keys, 100,000 keys of which 1,000
/// start with `p:`, and lists of 1,000 and 1,000,000 items.
async fn preload(db: &Arc<dyn Database>, big_list: u64) -> Result<()> {
    db.clear().await?;
    let mut entries: Vec<(String, Value)> =
        (0..1000).map(|i| (format!("g:{i}"), payload(i))).collect();
    entries.extend((0..100_000).map(|i| {
        let k = if i % 100 == 0 {
            format!("p:{i}")
        } else {
            format!("k:{i}")
        };
        (k, json!(i))
    }));
    for chunk in entries.chunks(10_000) {
        db.mset(chunk).await?;
    }
    for n in [1000, big_list] {
        let mut left = n;
        while left > 0 {
            let take = left.min(20_000);
            let items: Vec<Value> = (0..take as usize).map(payload).collect();
            db.append_many(&list_key(n), &items).await?;
            left -= take;
        }
    }
    Ok(())
}

pub(crate) async fn open(yaml: &str) -> Arc<dyn Database> {
    let registry = storage_manager::builtin_registry();
    let source = storage_manager::config_file::from_yaml_str(yaml, &std::env::temp_dir())
        .expect("bench config");
    let config = source.resolve(&registry).expect("bench config");
    registry
        .open_database(&config.database.primary)
        .await
        .expect("open the benchmarked backend")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let out =
        PathBuf::from(value_of("--out").unwrap_or_else(|| "target/bench/results.json".into()));
    let ops_scale = if quick { 2000 } else { 20_000 };
    let big_list = 1_000_000;
    let mut rows = Vec::new();
    let s3 = match (
        value_of("--s3"),
        value_of("--s3-access"),
        value_of("--s3-secret"),
    ) {
        (Some(e), Some(k), Some(s)) => Some((e, k, s)),
        _ => None,
    };
    if let Some(i) = args.iter().position(|a| a == "--blob-high-water") {
        let (dir, bytes) = (&args[i + 1], args[i + 2].parse().expect("a byte count"));
        blobs::high_water_child(dir, bytes).await;
        return;
    }
    if scale_run::main(&args).await {
        return;
    }
    if args.iter().any(|a| a == "--only-caching") {
        caching::all(
            ops_scale,
            value_of("--postgres"),
            value_of("--redis"),
            &mut rows,
        )
        .await;
        write_results(&out, &rows);
        return;
    }
    if args.iter().any(|a| a == "--only-feeds") {
        feeds::all(
            value_of("--postgres").as_deref(),
            value_of("--redis").as_deref(),
            &mut rows,
        )
        .await;
        write_results(&out, &rows);
        return;
    }
    if args.iter().any(|a| a == "--only-blobs") {
        blobs::bench_all(quick, value_of("--postgres").as_deref(), s3, &mut rows).await;
        feeds::all(
            value_of("--postgres").as_deref(),
            value_of("--redis").as_deref(),
            &mut rows,
        )
        .await;
        write_results(&out, &rows);
        return;
    }

    // in-memory
    {
        let db =
            open("database: { type: in-memory, keyPrefix: 'bench:' }\ncache: { type: in-memory }")
                .await;
        preload(&db, big_list).await.expect("preload memory");
        let base = Arc::new(MemoryBaseline::preloaded(big_list));
        let project = Arc::new(Project::new(db));
        backend_rows::bench_backend(
            "in-memory",
            project.clone(),
            base,
            &[1],
            ops_scale * 5,
            big_list,
            &mut rows,
        )
        .await;
        conditional::bench("in-memory", project, ops_scale * 5, &mut rows).await;
    }
    // sqlite
    {
        let dir = std::env::temp_dir().join(format!("storage-bench-{}", std::process::id()));
        let path = dir.join("bench.db");
        let db = open(&format!("database: {{ type: sqlite, path: '{}', keyPrefix: 'bench:' }}\ncache: {{ type: in-memory }}", path.display())).await;
        preload(&db, big_list).await.expect("preload sqlite");
        let base = Arc::new(SqliteBaseline::open(&path, "bench:"));
        let project = Arc::new(Project::new(db));
        backend_rows::bench_backend(
            "sqlite",
            project.clone(),
            base,
            &[1],
            ops_scale,
            big_list,
            &mut rows,
        )
        .await;
        conditional::bench("sqlite", project, ops_scale, &mut rows).await;
        peer::sqlite(&dir, ops_scale, &mut rows).await;
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let Some(url) = value_of("--postgres") {
        let db = open(&format!("database: {{ type: postgresql, url: '{url}', keyPrefix: 'bench:', maxConnections: 64 }}\ncache: {{ type: in-memory }}")).await;
        preload(&db, big_list).await.expect("preload postgres");
        let base = Arc::new(PostgresBaseline::open(&url, "bench:", 64).await);
        let project = Arc::new(Project::new(db));
        backend_rows::bench_backend(
            "postgresql",
            project.clone(),
            base,
            &[1, 64],
            ops_scale,
            big_list,
            &mut rows,
        )
        .await;
        conditional::bench("postgresql", project, ops_scale, &mut rows).await;
        match value_of("--pgbench") {
            Some(pgbench) => limits::pgbench(std::path::Path::new(&pgbench), &url, &mut rows),
            None => eprintln!("bench: no --pgbench PATH; the pgbench rows are left out"),
        }
    } else {
        eprintln!("bench: no --postgres URL; postgresql is left out");
    }
    if let Some(url) = value_of("--redis") {
        let db = open(&format!("database: {{ type: redis, url: '{url}', keyPrefix: 'bench:', maxConnections: 64 }}\ncache: {{ type: in-memory }}")).await;
        preload(&db, big_list).await.expect("preload redis");
        let base = Arc::new(RedisBaseline::open(&url, "bench:", 64).await);
        let project = Arc::new(Project::new(db));
        backend_rows::bench_backend(
            "redis",
            project.clone(),
            base,
            &[1, 64],
            ops_scale,
            big_list,
            &mut rows,
        )
        .await;
        conditional::bench("redis", project, ops_scale, &mut rows).await;
        limits::redis_benchmark(&url, &mut rows);
    } else {
        eprintln!("bench: no --redis URL; redis is left out");
    }
    if let Some(url) = value_of("--redis-cluster") {
        cluster::bench(&url, ops_scale, &mut rows).await;
    } else {
        eprintln!("bench: no --redis-cluster URL; the Redis Cluster is left out");
    }

    limits::json_decode(&mut rows);

    blobs::bench_all(quick, value_of("--postgres").as_deref(), s3, &mut rows).await;
    feeds::all(
        value_of("--postgres").as_deref(),
        value_of("--redis").as_deref(),
        &mut rows,
    )
    .await;

    caching::all(
        ops_scale,
        value_of("--postgres"),
        value_of("--redis"),
        &mut rows,
    )
    .await;

    // Last: it installs a process-wide recorder.
    recorder::bench(ops_scale, &mut rows).await;

    write_results(&out, &rows);
}

/// Writes `results.json` and prints the table.
fn write_results(out: &std::path::Path, rows: &[Row]) {
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).expect("results directory");
    }
    let json = Value::Array(rows.iter().map(Row::json).collect());
    std::fs::write(out, serde_json::to_string_pretty(&json).expect("json")).expect("write results");
    println!("{}", table(rows));
    println!("results: {}", out.display());
}
