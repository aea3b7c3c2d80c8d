//! The same work as the project's backends, done directly on each raw driver: the same data,
//! statements, pool, `spawn_blocking` and JSON encoding, without the project's layers.

use crate::{Subject, payload};
use r2d2_sqlite::SqliteConnectionManager;
use r2d2_sqlite::rusqlite::{OptionalExtension, TransactionBehavior};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, RwLock};
use storage_core::{Error, Result};

mod postgres;
pub use postgres::PostgresBaseline;

fn fail(e: impl std::fmt::Display) -> Error {
    Error::other(e.to_string())
}

fn decode(bytes: &[u8]) -> Result<Value> {
    // A Redis database value carries its version in front (0x01 and 16 hex digits): a client
    // reading the project's data skips it, as the project does.
    let json = match bytes.first() {
        Some(0x01) if bytes.len() >= 17 => &bytes[17..],
        _ => bytes,
    };
    serde_json::from_slice(json).map_err(fail)
}

fn encode(v: &Value) -> String {
    serde_json::to_string(v).expect("encodable")
}

/// The memory backend's structure, called directly: a map under a lock.
pub struct MemoryBaseline {
    values: RwLock<HashMap<String, Value>>,
    lists: RwLock<HashMap<String, Vec<Value>>>,
}

impl MemoryBaseline {
    /// No keys, no lists (the scale curves' raw side).
    pub fn empty() -> Self {
        MemoryBaseline {
            values: RwLock::new(HashMap::new()),
            lists: RwLock::new(HashMap::new()),
        }
    }

    pub fn preloaded(big_list: u64) -> Self {
        let mut values = HashMap::new();
        for i in 0..1000 {
            values.insert(format!("g:{i}"), payload(i));
        }
        for i in 0..100_000usize {
            let k = if i % 100 == 0 {
                format!("p:{i}")
            } else {
                format!("k:{i}")
            };
            values.insert(k, Value::from(i));
        }
        let mut lists = HashMap::new();
        for n in [1000, big_list] {
            lists.insert(crate::list_key(n), (0..n as usize).map(payload).collect());
        }
        MemoryBaseline {
            values: RwLock::new(values),
            lists: RwLock::new(lists),
        }
    }
}

impl Subject for MemoryBaseline {
    async fn get(&self, key: String) -> Result<()> {
        drop(self.values.read().unwrap().get(&key).cloned());
        Ok(())
    }
    async fn set(&self, key: String, value: Value) -> Result<()> {
        self.values.write().unwrap().insert(key, value);
        Ok(())
    }
    async fn mget(&self, keys: Vec<String>) -> Result<()> {
        let map = self.values.read().unwrap();
        drop(keys.iter().map(|k| map.get(k).cloned()).collect::<Vec<_>>());
        Ok(())
    }
    async fn mset(&self, entries: Vec<(String, Value)>) -> Result<()> {
        let mut map = self.values.write().unwrap();
        for (k, v) in entries {
            map.insert(k, v);
        }
        Ok(())
    }
    async fn append(&self, key: String, value: Value) -> Result<()> {
        self.lists
            .write()
            .unwrap()
            .entry(key)
            .or_default()
            .push(value);
        Ok(())
    }
    async fn tail20(&self, key: String) -> Result<()> {
        let lists = self.lists.read().unwrap();
        let items = lists
            .get(&key)
            .map(|l| l[l.len().saturating_sub(20)..].to_vec());
        drop(items);
        Ok(())
    }
    async fn keys_prefix(&self) -> Result<()> {
        let n = self
            .values
            .read()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with("p:"))
            .count();
        assert_eq!(n, 1000);
        Ok(())
    }
}

/// rusqlite through the same r2d2 pool, pragmas and prepared statements.
pub struct SqliteBaseline {
    pool: r2d2::Pool<SqliteConnectionManager>,
    ns: Arc<str>,
}

impl SqliteBaseline {
    pub fn open(path: &Path, ns: &str) -> Self {
        let manager = SqliteConnectionManager::file(path).with_init(|c| {
            c.busy_timeout(std::time::Duration::from_secs(5))?;
            c.execute_batch("PRAGMA synchronous = FULL;")?;
            c.set_prepared_statement_cache_capacity(32);
            Ok(())
        });
        let pool = r2d2::Pool::builder()
            .max_size(10)
            .min_idle(Some(0))
            .test_on_check_out(false)
            .build(manager)
            .unwrap();
        SqliteBaseline {
            pool,
            ns: ns.into(),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut r2d2_sqlite::rusqlite::Connection, &str) -> r2d2_sqlite::rusqlite::Result<T>
        + Send
        + 'static,
    ) -> Result<T> {
        let (pool, ns) = (self.pool.clone(), self.ns.clone());
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(fail)?;
            f(&mut conn, &ns).map_err(fail)
        })
        .await
        .map_err(fail)?
    }
}

use storage_sqlite::sql as q;

impl Subject for SqliteBaseline {
    async fn get(&self, key: String) -> Result<()> {
        let text: Option<String> = self
            .blocking(move |c, ns| {
                c.prepare_cached(q::GET)?
                    .query_row((ns, &key, 0i64), |r| r.get(1))
                    .optional()
            })
            .await?;
        text.map(|t| decode(t.as_bytes())).transpose().map(drop)
    }
    async fn set(&self, key: String, value: Value) -> Result<()> {
        let text = encode(&value);
        self.blocking(move |c, ns| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let kind: Option<i64> = tx
                .prepare_cached(q::HEADER)?
                .query_row((ns, &key, i64::MIN), |r| r.get(0))
                .optional()?;
            if kind == Some(1) {
                tx.prepare_cached(q::DELETE_ITEMS)?.execute((ns, &key))?;
            }
            tx.prepare_cached(q::UPSERT_VALUE)?.execute((
                ns,
                &key,
                &text,
                None::<i64>,
                fresh_version(),
            ))?;
            tx.commit()
        })
        .await
    }
    async fn mget(&self, keys: Vec<String>) -> Result<()> {
        let texts: Vec<Option<String>> = self
            .blocking(move |c, ns| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Deferred)?;
                let out = keys
                    .iter()
                    .map(|k| {
                        tx.prepare_cached(q::GET)?
                            .query_row((ns, k, 0i64), |r| r.get(1))
                            .optional()
                    })
                    .collect::<r2d2_sqlite::rusqlite::Result<Vec<_>>>()?;
                tx.finish()?;
                Ok(out)
            })
            .await?;
        for t in texts.into_iter().flatten() {
            decode(t.as_bytes())?;
        }
        Ok(())
    }
    async fn mset(&self, entries: Vec<(String, Value)>) -> Result<()> {
        let entries: Vec<(String, String)> = entries
            .iter()
            .map(|(k, v)| (k.clone(), encode(v)))
            .collect();
        self.blocking(move |c, ns| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (k, text) in &entries {
                let kind: Option<i64> = tx
                    .prepare_cached(q::HEADER)?
                    .query_row((ns, k, i64::MIN), |r| r.get(0))
                    .optional()?;
                if kind == Some(1) {
                    tx.prepare_cached(q::DELETE_ITEMS)?.execute((ns, k))?;
                }
                tx.prepare_cached(q::UPSERT_VALUE)?.execute((
                    ns,
                    k,
                    text,
                    None::<i64>,
                    fresh_version(),
                ))?;
            }
            tx.commit()
        })
        .await
    }
    async fn append(&self, key: String, value: Value) -> Result<()> {
        let text = encode(&value);
        self.blocking(move |c, ns| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let len: i64 = tx
                .prepare_cached(q::HEADER)?
                .query_row((ns, &key, 0i64), |r| r.get(1))?;
            tx.prepare_cached(q::BUMP_LIST)?.execute((ns, &key, 1i64))?;
            tx.prepare_cached(q::INSERT_ITEM)?
                .execute((ns, &key, len, &text))?;
            tx.commit()
        })
        .await
    }
    async fn tail20(&self, key: String) -> Result<()> {
        let texts: Vec<String> = self
            .blocking(move |c, ns| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Deferred)?;
                let len: i64 = tx
                    .prepare_cached(q::HEADER)?
                    .query_row((ns, &key, 0i64), |r| r.get(1))?;
                let mut stmt = tx.prepare_cached(q::RANGE)?;
                let out = stmt
                    .query_map((ns, &key, (len - 20).max(0), len - 1), |r| r.get(0))?
                    .collect::<r2d2_sqlite::rusqlite::Result<Vec<String>>>()?;
                drop(stmt);
                tx.finish()?;
                Ok(out)
            })
            .await?;
        for t in texts {
            decode(t.as_bytes())?;
        }
        Ok(())
    }
    async fn keys_prefix(&self) -> Result<()> {
        let keys: Vec<String> = self
            .blocking(|c, ns| {
                c.prepare_cached(q::KEYS_RANGE)?
                    .query_map((ns, 0i64, "p:", "p;"), |r| r.get(0))?
                    .collect()
            })
            .await?;
        assert_eq!(keys.len(), 1000);
        Ok(())
    }
}

/// One redis-rs multiplexed connection, used directly.
pub struct RedisBaseline {
    conn: redis::aio::MultiplexedConnection,
    prefix: String,
}

impl RedisBaseline {
    pub async fn open(url: &str, prefix: &str, _max: u32) -> Self {
        let conn = redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        RedisBaseline {
            conn,
            prefix: prefix.to_string(),
        }
    }
    fn k(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

impl Subject for RedisBaseline {
    async fn get(&self, key: String) -> Result<()> {
        let v: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.k(&key))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(fail)?;
        v.map(|b| decode(&b)).transpose().map(drop)
    }
    async fn set(&self, key: String, value: Value) -> Result<()> {
        redis::cmd("SET")
            .arg(self.k(&key))
            .arg(encode(&value))
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(fail)
    }
    async fn mget(&self, keys: Vec<String>) -> Result<()> {
        let full: Vec<String> = keys.iter().map(|k| self.k(k)).collect();
        let vs: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(&full)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(fail)?;
        for b in vs.into_iter().flatten() {
            decode(&b)?;
        }
        Ok(())
    }
    async fn mset(&self, entries: Vec<(String, Value)>) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (k, v) in &entries {
            pipe.cmd("SET").arg(self.k(k)).arg(encode(v)).ignore();
        }
        pipe.query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(fail)
    }
    async fn append(&self, key: String, value: Value) -> Result<()> {
        redis::cmd("RPUSH")
            .arg(self.k(&key))
            .arg(encode(&value))
            .query_async::<u64>(&mut self.conn.clone())
            .await
            .map_err(fail)?;
        Ok(())
    }
    async fn tail20(&self, key: String) -> Result<()> {
        let items: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(self.k(&key))
            .arg(-20)
            .arg(-1)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(fail)?;
        for b in items {
            decode(&b)?;
        }
        Ok(())
    }
    async fn keys_prefix(&self) -> Result<()> {
        let mut cursor = 0u64;
        let mut seen = HashSet::new();
        let pattern = format!("{}p:*", self.prefix);
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut self.conn.clone())
                .await
                .map_err(fail)?;
            seen.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        assert_eq!(seen.len(), 1000);
        Ok(())
    }
}

/// A version no write had, as the project's `Version::fresh` gives: every write of the
/// SQL baselines stores one. With a fixed version, rewriting a key with the value it held
/// changed no byte of its row, so SQLite wrote no page and fsynced nothing and neither
/// schema's trigger filed a change: the baseline skipped what the project's write pays (the
/// SQLite `set` of the value-size curve, which rewrites one value, read 0.22 of it for that).
pub(crate) fn fresh_version() -> i64 {
    storage_core::Version::fresh().raw() as i64
}
