//! The raw drivers beside the scale curves: each backend's baseline (`baselines.rs`, the same
//! statements and encoding without the project's layers) for the value-size axis, and each
//! server's bulk-load limit measured in the same run (PostgreSQL `COPY`, Redis pipelined
//! `SET`, SQLite one transaction of prepared inserts) that `storage migrate` is held against.
//! Not the project's side of any curve (`scale.rs`).

use crate::Subject;
use crate::baselines::{MemoryBaseline, PostgresBaseline, RedisBaseline, SqliteBaseline};
use futures::SinkExt;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// One backend's raw driver.
pub enum Raw {
    Memory(MemoryBaseline),
    Sqlite(SqliteBaseline),
    Postgres(PostgresBaseline),
    Redis(RedisBaseline),
}

/// The namespace (`keyPrefix`) the raw drivers write under.
pub const RAW_NAMESPACE: &str = "raw:";

impl Raw {
    pub fn memory() -> Raw {
        Raw::Memory(MemoryBaseline::empty())
    }
    pub fn sqlite(path: &Path) -> Raw {
        Raw::Sqlite(SqliteBaseline::open(path, RAW_NAMESPACE))
    }
    pub async fn postgres(url: &str) -> Raw {
        Raw::Postgres(PostgresBaseline::open(url, RAW_NAMESPACE, 8).await)
    }
    pub async fn redis(url: &str) -> Raw {
        Raw::Redis(RedisBaseline::open(url, RAW_NAMESPACE, 8).await)
    }

    pub async fn get(&self, key: String) {
        match self {
            Raw::Memory(b) => b.get(key).await,
            Raw::Sqlite(b) => b.get(key).await,
            Raw::Postgres(b) => b.get(key).await,
            Raw::Redis(b) => b.get(key).await,
        }
        .expect("a raw get")
    }

    pub async fn set(&self, key: String, value: Value) {
        match self {
            Raw::Memory(b) => b.set(key, value).await,
            Raw::Sqlite(b) => b.set(key, value).await,
            Raw::Postgres(b) => b.set(key, value).await,
            Raw::Redis(b) => b.set(key, value).await,
        }
        .expect("a raw set")
    }
}

/// A server's bulk-load path: how fast it takes `n` rows of a value, and what they take up
/// there (the raw side of the footprint); the scratch rows are removed after.
pub enum BulkLimit<'a> {
    /// One transaction of prepared inserts into a scratch table of a scratch file in `dir`.
    Sqlite(&'a Path),
    /// `COPY … FROM STDIN` into a scratch table.
    Postgres(&'a str),
    /// `SET` pipelined 1,000 at a time, on one connection.
    Redis(&'a str),
}

impl BulkLimit<'_> {
    pub async fn run(&self, n: usize, value: &Value) -> Result<Bulk, String> {
        let text = serde_json::to_string(value).map_err(|e| e.to_string())?;
        let (took, bytes) = match self {
            BulkLimit::Sqlite(dir) => sqlite_bulk(dir, n, text).await?,
            BulkLimit::Postgres(url) => postgres_copy(url, n, &text).await?,
            BulkLimit::Redis(url) => redis_pipelined(url, n, &text).await?,
        };
        Ok(Bulk {
            keys_per_sec: n as f64 / took.as_secs_f64(),
            bytes_per_key: bytes as f64 / n as f64,
        })
    }
}

/// What one bulk load measured.
#[derive(Clone, Copy, Debug)]
pub struct Bulk {
    pub keys_per_sec: f64,
    /// The rows' size at rest: the SQLite file, the PostgreSQL table with its index, Redis's
    /// `used_memory` growth.
    pub bytes_per_key: f64,
}

async fn sqlite_bulk(dir: &Path, n: usize, text: String) -> Result<(Duration, u64), String> {
    use r2d2_sqlite::rusqlite::Connection;
    let path = dir.join("bulk-limit.db");
    let took = tokio::task::spawn_blocking(move || {
        let mut c = Connection::open(&path)?;
        c.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS bulk (k TEXT PRIMARY KEY, v TEXT NOT NULL);",
        )?;
        let started = Instant::now();
        let tx = c.transaction()?;
        {
            let mut insert = tx.prepare("INSERT INTO bulk (k, v) VALUES (?1, ?2)")?;
            for i in 0..n {
                insert.execute((format!("k{i}"), &text))?;
            }
        }
        tx.commit()?;
        let took = started.elapsed();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
        drop(c);
        let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        Ok::<_, r2d2_sqlite::rusqlite::Error>((took, bytes))
    })
    .await
    .map_err(|e| e.to_string())?;
    took.map_err(|e| e.to_string())
}

async fn postgres_copy(url: &str, n: usize, text: &str) -> Result<(Duration, u64), String> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let e = |e: tokio_postgres::Error| e.to_string();
    client
        .batch_execute(
            "DROP TABLE IF EXISTS scale_bulk_limit;
             CREATE TABLE scale_bulk_limit (k text PRIMARY KEY, v jsonb NOT NULL)",
        )
        .await
        .map_err(e)?;
    // COPY's text format: a tab between columns; the JSON holds no tab, newline or backslash.
    debug_assert!(!text.contains(['\t', '\n', '\\']));
    let started = Instant::now();
    let sink = client
        .copy_in::<_, std::io::Cursor<Vec<u8>>>("COPY scale_bulk_limit (k, v) FROM STDIN")
        .await
        .map_err(e)?;
    futures::pin_mut!(sink);
    let mut i = 0;
    while i < n {
        let mut chunk = Vec::with_capacity(1000 * (text.len() + 16));
        for k in i..(i + 1000).min(n) {
            chunk.extend_from_slice(format!("k{k}\t{text}\n").as_bytes());
        }
        i = (i + 1000).min(n);
        sink.send(std::io::Cursor::new(chunk)).await.map_err(e)?;
    }
    sink.as_mut().finish().await.map_err(e)?;
    let took = started.elapsed();
    let bytes: i64 = client
        .query_one("SELECT pg_total_relation_size('scale_bulk_limit')", &[])
        .await
        .map_err(e)?
        .get(0);
    client
        .batch_execute("DROP TABLE scale_bulk_limit")
        .await
        .map_err(e)?;
    Ok((took, bytes as u64))
}

async fn redis_pipelined(url: &str, n: usize, text: &str) -> Result<(Duration, u64), String> {
    let mut conn = redis::Client::open(url)
        .map_err(|e| e.to_string())?
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let batches = |from: usize| (from..n).step_by(1000);
    let before = used_memory(&mut conn).await?;
    let started = Instant::now();
    for from in batches(0) {
        let mut pipe = redis::pipe();
        for k in from..(from + 1000).min(n) {
            pipe.cmd("SET").arg(format!("bulk:k{k}")).arg(text).ignore();
        }
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
    }
    let took = started.elapsed();
    let grown = used_memory(&mut conn).await?.saturating_sub(before);
    for from in batches(0) {
        let keys: Vec<String> = (from..(from + 1000).min(n))
            .map(|k| format!("bulk:k{k}"))
            .collect();
        redis::cmd("DEL")
            .arg(&keys)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok((took, grown))
}

/// Redis's `used_memory` (`INFO memory`).
pub async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> Result<u64, String> {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .map_err(|e| e.to_string())?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "INFO memory without used_memory".to_string())
}
