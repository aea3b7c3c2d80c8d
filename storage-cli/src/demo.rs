//! `storage demo`: the design's application patterns, end to end.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use storage_core::{CacheExt, Result};
use storage_manager::{CacheAside, StorageManager};

const SESSION_TTL: Duration = Duration::from_secs(3600);

/// The demo's own namespaces start with this; the application's are never written.
pub const NAMESPACE: &str = "storage-demo:";

/// Latency samples per kind of operation.
#[derive(Default)]
struct Timings(BTreeMap<&'static str, Vec<Duration>>);

impl Timings {
    async fn time<T>(
        &mut self,
        op: &'static str,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let started = Instant::now();
        let out = fut.await;
        self.0.entry(op).or_default().push(started.elapsed());
        out
    }

    fn print(&self) {
        println!("\nlatency by operation:");
        for (op, samples) in &self.0 {
            let mut s = samples.clone();
            s.sort();
            let p50 = s[s.len() / 2];
            let max = s[s.len() - 1];
            println!(
                "  {op:<22} n={:<4} p50={:>8.1} µs  max={:>8.1} µs",
                s.len(),
                p50.as_secs_f64() * 1e6,
                max.as_secs_f64() * 1e6
            );
        }
    }
}

pub async fn run(manager: &StorageManager) -> Result<()> {
    let backends = manager.connect().await?;
    println!("storage demo");
    let config = manager.config();
    println!(
        "  namespaces: keyPrefix {:?} (cache) and {:?} (database), the demo's own",
        config.cache.primary.common.key_prefix, config.database.primary.common.key_prefix
    );
    for status in &backends.status {
        let note = status.degraded_note();
        println!(
            "  {:<9} served by {}{}",
            status.role.as_str(),
            status.serving_detail.as_deref().unwrap_or("nothing"),
            if note.is_empty() {
                String::new()
            } else {
                format!("  {note}")
            }
        );
    }
    let (cache, db) = (backends.cache.clone(), backends.database.clone());
    let layer = CacheAside::new(cache.clone(), db.clone(), Some(SESSION_TTL), 1024);
    let mut t = Timings::default();

    // 1. What earlier runs persisted.
    let history_key = "history:demo-session";
    let earlier = t.time("get_length", db.get_length(history_key)).await?;
    println!("\nchat history from earlier runs: {earlier} message(s)");
    if earlier > 0 {
        for item in t
            .time("get_range(-3,-1)", db.get_range(history_key, -3, -1))
            .await?
        {
            println!("  {}", item);
        }
    }
    let runs = match t.time("get", db.get("demo:runs")).await? {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0) + 1,
        _ => 1,
    };
    t.time("set", db.set("demo:runs", &json!(runs))).await?;
    println!("this is run {runs} in this directory");

    // 2. A session, cached with a TTL and persisted.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let session =
        json!({ "id": "demo-session", "createdAt": now, "lastActivity": now, "run": runs });
    t.time(
        "cache.set(ttl)",
        cache.set_as("session:demo-session", &session, Some(SESSION_TTL)),
    )
    .await?;
    t.time("set", db.set("session:demo-session", &session))
        .await?;
    println!(
        "\nsession cached for {}s and persisted",
        SESSION_TTL.as_secs()
    );

    // 3. Cache-aside reads: a hit, then a miss that reads through and warms the cache.
    t.time("cache-aside get (hit)", layer.get("session:demo-session"))
        .await?;
    cache.delete("session:demo-session").await?;
    t.time("cache-aside get (miss)", layer.get("session:demo-session"))
        .await?;
    t.time("cache-aside get (hit)", layer.get("session:demo-session"))
        .await?;
    for i in 0..20 {
        let key = format!("user:{}", i % 5);
        if i < 5 {
            t.time(
                "cache-aside set",
                layer.set(&key, &json!({ "name": format!("user {i}") })),
            )
            .await?;
        }
        t.time("cache-aside get (hit)", layer.get(&key)).await?;
    }

    // 4. Chat history: append, then read back in pages.
    let turns = [
        ("user", "What is the capital of France?"),
        ("assistant", "Paris."),
        ("user", "And its population?"),
        ("assistant", "About 2.1 million in the city proper."),
    ];
    for (role, content) in turns {
        let message = json!({ "role": role, "content": content, "run": runs, "timestamp": now });
        t.time("append", db.append(history_key, &message)).await?;
    }
    let len = t.time("get_length", db.get_length(history_key)).await?;
    println!(
        "\nappended {} messages; history now holds {len}",
        turns.len()
    );
    let page = t
        .time("get_range(-4,-1)", db.get_range(history_key, -4, -1))
        .await?;
    println!("latest page (get_range -4 -1):");
    for m in &page {
        println!(
            "  [{}] {}",
            m["role"].as_str().unwrap_or("?"),
            m["content"].as_str().unwrap_or("")
        );
    }
    let first = t
        .time("get_range(0,1)", db.get_range(history_key, 0, 1))
        .await?;
    println!("first page (get_range 0 1): {} message(s)", first.len());

    t.print();
    let stats = layer.stats();
    println!(
        "\ncache: {} hits, {} misses, {} cache errors; hit rate {:.1}%",
        stats.hits,
        stats.misses,
        stats.cache_errors,
        stats.hit_rate() * 100.0
    );
    let report = layer.shutdown(Duration::from_secs(5)).await;
    if !report.unwritten.is_empty() {
        println!("write-behind could not write: {:?}", report.unwritten);
    }
    println!(
        "\nrun the demo again: the history above will have grown by {} messages.",
        turns.len()
    );
    Ok(())
}
