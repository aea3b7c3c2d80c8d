//! Rows for a Redis Cluster, beside the single-node rows: the database role (a namespace is
//! one hash slot, so its keys live on one primary) as `redis-cluster`, and the cache role
//! (keys spread over every primary, so `mget100` gathers from many slots) as
//! `redis-cluster-cache`. Through the project only: there is no raw-driver baseline here.

use super::{Op, Project, Row, Subject, measure_median, open, payload};
use serde_json::Value;
use std::sync::Arc;
use storage_core::{Cache, Error, Result};

/// The cache role through the project. Only the single-key operations and the batches.
struct CacheProject(Arc<dyn Cache>);

impl Subject for CacheProject {
    async fn get(&self, key: String) -> Result<()> {
        self.0.get(&key).await.map(drop)
    }
    async fn set(&self, key: String, value: Value) -> Result<()> {
        self.0.set(&key, &value, None).await
    }
    async fn mget(&self, keys: Vec<String>) -> Result<()> {
        self.0.mget(&keys).await.map(drop)
    }
    async fn mset(&self, entries: Vec<(String, Value)>) -> Result<()> {
        let entries: Vec<_> = entries
            .into_iter()
            .map(|(k, v)| storage_core::CacheEntry::new(k, v, None))
            .collect();
        self.0.mset(&entries).await
    }
    async fn append(&self, _: String, _: Value) -> Result<()> {
        Err(Error::unsupported("the cache role has no lists"))
    }
    async fn tail20(&self, _: String) -> Result<()> {
        Err(Error::unsupported("the cache role has no lists"))
    }
    async fn keys_prefix(&self) -> Result<()> {
        Err(Error::unsupported("not measured on the cluster"))
    }
}

/// Measures get, set, mget100, mset100 (and append for the database role) at concurrency 1
/// and 64 on the cluster whose seed is `url`.
pub(crate) async fn bench(url: &str, ops_scale: usize, rows: &mut Vec<Row>) {
    let yaml = format!(
        "database: {{ type: redis, cluster: true, url: '{url}', keyPrefix: 'bench:' }}\ncache: {{ type: redis, cluster: true, url: '{url}', keyPrefix: 'benchc:' }}"
    );
    let db = open(&yaml).await;
    let registry = storage_manager::builtin_registry();
    let source = storage_manager::config_file::from_yaml_str(&yaml, &std::env::temp_dir())
        .expect("bench config");
    let config = source.resolve(&registry).expect("bench config");
    let cache = registry
        .open_cache(&config.cache.primary)
        .await
        .expect("open the cluster cache");
    db.clear().await.expect("clear");
    cache.clear().await.expect("clear");
    let gets: Vec<(String, Value)> = (0..1000).map(|i| (format!("g:{i}"), payload(i))).collect();
    db.mset(&gets).await.expect("preload");
    let cache_gets: Vec<_> = gets
        .iter()
        .map(|(k, v)| storage_core::CacheEntry::new(k.clone(), v.clone(), None))
        .collect();
    cache.mset(&cache_gets).await.expect("preload");
    let items: Vec<Value> = (0..1000).map(payload).collect();
    db.append_many("list:1000", &items).await.expect("preload");

    let db = Arc::new(Project::new(db));
    let cache = Arc::new(CacheProject(cache));
    for c in [1, 64] {
        for op in [Op::Get, Op::Set, Op::Mget100, Op::Mset100, Op::Append(1000)] {
            run(rows, "redis-cluster", db.clone(), op, c, ops_scale).await;
            if !matches!(op, Op::Append(_)) {
                run(rows, "redis-cluster-cache", cache.clone(), op, c, ops_scale).await;
            }
        }
    }
}

async fn run<S: Subject>(
    rows: &mut Vec<Row>,
    name: &str,
    subject: Arc<S>,
    op: Op,
    c: usize,
    ops_scale: usize,
) {
    let total = match op {
        Op::Mget100 | Op::Mset100 => (ops_scale / 10).max(c * 4),
        _ => ops_scale.max(c * 20),
    };
    let p = measure_median(subject, op, c, total).await;
    eprintln!(
        "bench: {name:<19} {:<13} c={c:<3} {:>10.0} ops/s  p50 {:>8.1} µs  p99 {:>8.1} µs",
        op.name(),
        p.ops_per_sec,
        p.p50_us,
        p.p99_us
    );
    rows.push(Row::measured(name, op.name(), c, p, None).with_list_len(op.list_len()));
}
