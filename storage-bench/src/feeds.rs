//! The feed rows: how long an append on one instance takes to reach a follower on another
//! (`storage_core::feed::Tail`), and a set on one instance a watcher on another
//! (`storage_core::watch::Watch`), and a write through one instance's near cache a read through
//! another's (`storage_manager::NearCache`: the staleness a near cache allows), p50 and p99 over
//! a few hundred writes, per backend. The two
//! instances are separate backends of one process (separate pools; for SQLite, two pools on
//! one file, which is what another process sees too). The reader runs in a task of its own,
//! waiting as it would in use, and stamps each item the moment it has it; each write lands at a
//! random point of that wait. In the rows, `p50 µs` and `p99 µs` are the latency; `ops/s` is
//! the writes seen per second.

use crate::harness::{Row, Stats};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage_core::Database;
use storage_core::feed::Tail;
use storage_core::watch::{Watch, WatchEvent};
use tokio::sync::mpsc;

/// One backend's rows: the follower's and the watcher's.
pub async fn bench(
    backend: &str,
    writer: Arc<dyn Database>,
    reader: Arc<dyn Database>,
    count: usize,
    rows: &mut Vec<Row>,
) {
    tail_row(backend, writer.clone(), reader.clone(), count, rows).await;
    watch_row(backend, writer.clone(), reader.clone(), count, rows).await;
    near_cache_row(backend, writer, reader, count, rows).await;
}

/// Times `count` writes (`write(i)`), each until the reader task reports item `i`
/// (`(i, when)` on `seen`).
async fn measure<W, F>(
    backend: &str,
    op: &'static str,
    count: usize,
    mut seen: mpsc::UnboundedReceiver<(usize, Instant)>,
    mut write: W,
) -> Row
where
    W: FnMut(usize) -> F,
    F: std::future::Future<Output = ()>,
{
    let mut latencies = Vec::with_capacity(count);
    let started = Instant::now();
    for i in 0..count {
        // Spread over the longest poll interval (10 ms), so that writes land anywhere in it.
        tokio::time::sleep(Duration::from_micros(200 + (i as u64 * 7919) % 12_000)).await;
        let sent = Instant::now();
        write(i).await;
        let (index, at) = tokio::time::timeout(Duration::from_secs(10), seen.recv())
            .await
            .expect("the reader sees the write within 10 s")
            .expect("the reader goes on");
        assert_eq!(index, i, "the reader's items are in order");
        latencies.push(at.saturating_duration_since(sent).as_nanos() as u64);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)] as f64 / 1000.0
    };
    eprintln!(
        "bench: {backend} {op}: p50 {:.0} µs, p99 {:.0} µs",
        pct(0.5),
        pct(0.99)
    );
    Row::measured(
        backend,
        op,
        1,
        Stats::single(count as f64 / elapsed.as_secs_f64(), pct(0.5), pct(0.99)),
        None,
    )
}

/// `count` appends on `writer`, each seen by a follower on `reader` before the next.
async fn tail_row(
    backend: &str,
    writer: Arc<dyn Database>,
    reader: Arc<dyn Database>,
    count: usize,
    rows: &mut Vec<Row>,
) {
    let key = format!("feed-bench:{}", std::process::id());
    let _ = writer.delete(&key).await;
    writer.append(&key, &json!("start")).await.expect("append");
    let (tx, rx) = mpsc::unbounded_channel();
    let mut tail = Tail::new(reader, &key, 1);
    let follower = tokio::spawn(async move {
        while let Some(Ok(item)) = tail.next().await {
            if tx.send((item.index as usize - 1, Instant::now())).is_err() {
                return;
            }
        }
    });
    let row = measure(backend, "append_seen_by_follower", count, rx, |i| {
        let (writer, key) = (writer.clone(), key.clone());
        async move { writer.append(&key, &json!(i)).await.expect("append") }
    })
    .await;
    follower.abort();
    let _ = writer.delete(&key).await;
    rows.push(row);
}

/// `count` sets on `writer`, each seen by a watcher on `reader` before the next.
async fn watch_row(
    backend: &str,
    writer: Arc<dyn Database>,
    reader: Arc<dyn Database>,
    count: usize,
    rows: &mut Vec<Row>,
) {
    let prefix = format!("watch-bench:{}:", std::process::id());
    let mut watch = Watch::new(reader, &prefix).await.expect("watch");
    let (tx, rx) = mpsc::unbounded_channel();
    let watcher = {
        let prefix = prefix.clone();
        tokio::spawn(async move {
            while let Some(Ok(event)) = watch.next().await {
                let WatchEvent::Change(c) = event else {
                    panic!("the watcher fell behind: {event:?}");
                };
                let i = c.key[prefix.len()..]
                    .parse()
                    .expect("a key the bench wrote");
                if tx.send((i, Instant::now())).is_err() {
                    return;
                }
            }
        })
    };
    let row = measure(backend, "set_seen_by_watcher", count, rx, |i| {
        let (writer, key) = (writer.clone(), format!("{prefix}{i}"));
        async move { writer.set(&key, &json!(i)).await.expect("set") }
    })
    .await;
    watcher.abort();
    for i in 0..count {
        let _ = writer.delete(&format!("{prefix}{i}")).await;
    }
    rows.push(row);
}

/// `count` sets through a near cache on `writer`, each awaited by a reader that reads the key
/// through a near cache on `reader` every 200 µs (as a busy application would) until it has
/// the new value: how stale a near cache is after a write elsewhere.
async fn near_cache_row(
    backend: &str,
    writer: Arc<dyn Database>,
    reader: Arc<dyn Database>,
    count: usize,
    rows: &mut Vec<Row>,
) {
    use storage_core::Store;
    use storage_manager::{NearCache, NearCacheOptions};
    let key = format!("near-bench:{}", std::process::id());
    let a = Arc::new(NearCache::database(writer, NearCacheOptions::default()));
    let b = NearCache::database(reader, NearCacheOptions::default());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(a.in_sync() && b.in_sync()) {
        assert!(Instant::now() < deadline, "the near caches get in sync");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.set(&key, &json!(-1)).await.expect("set");
    let (tx, rx) = mpsc::unbounded_channel();
    let poller = {
        let key = key.clone();
        tokio::spawn(async move {
            let mut next = 0i64;
            loop {
                if b.get(&key).await.ok().flatten() == Some(json!(next)) {
                    if tx.send((next as usize, Instant::now())).is_err() {
                        return;
                    }
                    next += 1;
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        })
    };
    let row = measure(backend, "set_seen_by_near_cache", count, rx, |i| {
        let (a, key) = (a.clone(), key.clone());
        async move { a.set(&key, &json!(i)).await.expect("set") }
    })
    .await;
    poller.abort();
    let _ = a.delete(&key).await;
    rows.push(row);
}

/// The follower rows of every backend given: two instances each, one appending, one following.
pub async fn all(postgres: Option<&str>, redis: Option<&str>, rows: &mut Vec<Row>) {
    const COUNT: usize = 300;
    let memory = "database: { type: in-memory, store: feeds }\ncache: { type: in-memory }";
    bench(
        "in-memory",
        crate::open(memory).await,
        crate::open(memory).await,
        COUNT,
        rows,
    )
    .await;
    let dir = std::env::temp_dir().join(format!("storage-bench-feeds-{}", std::process::id()));
    let sqlite = format!(
        "database: {{ type: sqlite, path: '{}' }}\ncache: {{ type: in-memory }}",
        dir.join("feeds.db").display()
    );
    bench(
        "sqlite",
        crate::open(&sqlite).await,
        crate::open(&sqlite).await,
        COUNT,
        rows,
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    for (name, url) in [("postgresql", postgres), ("redis", redis)] {
        if let Some(url) = url {
            let yaml = format!(
                "database: {{ type: {name}, url: '{url}', keyPrefix: 'feeds:' }}\ncache: {{ type: in-memory }}"
            );
            bench(
                name,
                crate::open(&yaml).await,
                crate::open(&yaml).await,
                COUNT,
                rows,
            )
            .await;
        }
    }
}
