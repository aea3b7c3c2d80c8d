//! The `Store`, `Cache` and `Database` operations of [`SqliteBackend`]: each runs on a blocking thread in one SQLite transaction.
//!
//! Not the connection or the configuration: those are `core.rs` and `config.rs`.

use crate::config::TYPE_NAME;
use crate::core::{KIND_LIST, KIND_VALUE, RECLAIM_EVERY, SqliteBackend, decode, now_ms};
use crate::schema::sql_error;
use crate::sql;
use async_trait::async_trait;
use r2d2_sqlite::rusqlite::{self, Connection, OptionalExtension};
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::Duration;
use storage_core::raw::{
    EncodedEntry, encode_cache_entries, encode_entries, encode_value, glob_match, literal_prefix,
    lrange_window, prefix_upper_bound,
};
use storage_core::watch::{ChangeKind, ChangeWindow};
use storage_core::{
    Cache, CacheEntry, Condition, Database, Error, KeyKind, KeyTtl, ListWindow, Result, Store,
    Version,
};

#[async_trait]
impl Store for SqliteBackend {
    fn backend(&self) -> &str {
        TYPE_NAME
    }

    async fn get(&self, key: &str) -> Result<Option<Value>> {
        let key = key.to_string();
        self.with_conn(move |conn, ns| match get_row(conn, ns, &key, now_ms())? {
            None => Ok(None),
            Some((KIND_LIST, _)) => Err(Error::holds_list(&key)),
            Some((_, text)) => decode(&key, text.as_deref().unwrap_or("null")).map(Some),
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let key = key.to_string();
        self.write(move |tx, ns| {
            let row: Option<(i64, Option<i64>)> = tx
                .prepare_cached(sql::DELETE_ROW)
                .and_then(|mut s| {
                    s.query_row((ns, &key), |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(|e| sql_error(e, "deleting the key"))?;
            match row {
                None => Ok(false),
                Some((kind, expires)) => {
                    if kind == KIND_LIST {
                        tx.prepare_cached(sql::DELETE_ITEMS)
                            .and_then(|mut s| s.execute((ns, &key)))
                            .map_err(|e| sql_error(e, "deleting the list"))?;
                    }
                    Ok(expires.is_none_or(|at| at > now_ms()))
                }
            }
        })
        .await
    }

    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Value>>> {
        // The keys go in as one JSON array; each row names its slot by the array index.
        let wanted = serde_json::to_string(keys)
            .map_err(|e| Error::invalid_value(format!("cannot encode the keys: {e}")))?;
        let keys = keys.to_vec();
        self.read(move |tx, ns| {
            let mut out = vec![None; keys.len()];
            let mut stmt = tx
                .prepare_cached(sql::MGET)
                .map_err(|e| sql_error(e, "reading the keys"))?;
            let rows = stmt
                .query_map((ns, &wanted, now_ms()), |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                })
                .map_err(|e| sql_error(e, "reading the keys"))?;
            for row in rows {
                let (slot, kind, text) = row.map_err(|e| sql_error(e, "reading the keys"))?;
                let slot = usize::try_from(slot).ok().filter(|&i| i < keys.len());
                if let (Some(i), KIND_VALUE) = (slot, kind) {
                    out[i] = Some(decode(&keys[i], text.as_deref().unwrap_or("null"))?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.kind(key).await? != KeyKind::None)
    }

    async fn kind(&self, key: &str) -> Result<KeyKind> {
        let key = key.to_string();
        self.with_conn(move |conn, ns| {
            Ok(match header(conn, ns, &key, now_ms())? {
                None => KeyKind::None,
                Some((KIND_LIST, _, _)) => KeyKind::List,
                Some(_) => KeyKind::Value,
            })
        })
        .await
    }

    async fn keys(&self, pattern: Option<&str>) -> Result<Vec<String>> {
        let pattern = pattern.map(str::to_string);
        self.with_conn(move |conn, ns| {
            let now = now_ms();
            let map = |e| sql_error(e, "listing keys");
            let (prefix, _) = pattern.as_deref().map(literal_prefix).unwrap_or_default();
            let mut out = Vec::new();
            let mut keep = |key: String| {
                if pattern.as_deref().is_none_or(|p| glob_match(p, &key)) {
                    out.push(key);
                }
            };
            if prefix.is_empty() {
                let mut stmt = conn.prepare_cached(sql::KEYS_ALL).map_err(map)?;
                let mut rows = stmt.query((ns, now)).map_err(map)?;
                while let Some(row) = rows.next().map_err(map)? {
                    keep(row.get(0).map_err(map)?);
                }
            } else if let Some(upper) = prefix_upper_bound(&prefix) {
                let mut stmt = conn.prepare_cached(sql::KEYS_RANGE).map_err(map)?;
                let mut rows = stmt.query((ns, now, &prefix, &upper)).map_err(map)?;
                while let Some(row) = rows.next().map_err(map)? {
                    keep(row.get(0).map_err(map)?);
                }
            } else {
                let mut stmt = conn.prepare_cached(sql::KEYS_FROM).map_err(map)?;
                let mut rows = stmt.query((ns, now, &prefix)).map_err(map)?;
                while let Some(row) = rows.next().map_err(map)? {
                    let key: String = row.get(0).map_err(map)?;
                    if !key.starts_with(&prefix) {
                        break;
                    }
                    keep(key);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn clear(&self) -> Result<()> {
        self.write(|tx, ns| {
            let map = |e| sql_error(e, "clearing the namespace");
            // One change for the clear, not one per key: the flag silences the trigger.
            tx.prepare_cached(sql::SET_CLEARING)
                .and_then(|mut s| s.execute([1]))
                .map_err(map)?;
            for stmt in [sql::CLEAR_ITEMS, sql::CLEAR_KEYS] {
                tx.prepare_cached(stmt)
                    .and_then(|mut s| s.execute([ns]))
                    .map_err(map)?;
            }
            tx.prepare_cached(sql::SET_CLEARING)
                .and_then(|mut s| s.execute([0]))
                .map_err(map)?;
            tx.prepare_cached(sql::LOG_CHANGE)
                .and_then(|mut s| s.execute((ns, "", ChangeKind::Cleared.code())))
                .map_err(map)?;
            Ok(())
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.with_conn(|conn, _| {
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map_err(|e| sql_error(e, "ping"))?;
            Ok(())
        })
        .await
    }

    async fn close(&self) -> Result<()> {
        // Dropping the pool closes its connections once in-flight operations return theirs.
        self.pool.close();
        Ok(())
    }

    async fn changes(&self, from: Option<u64>, max: usize) -> Result<ChangeWindow> {
        self.change_window(from, max).await
    }

    async fn wait_for_changes(&self, from: u64, limit: Duration) -> Result<()> {
        self.wait_changes(from, limit).await
    }
}

#[async_trait]
impl Cache for SqliteBackend {
    async fn set(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<()> {
        self.set_value(key, value, ttl).await
    }

    async fn mset(&self, entries: &[CacheEntry]) -> Result<()> {
        self.set_many(encode_cache_entries(entries)?).await
    }

    async fn set_if_absent(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<bool> {
        self.put_if_absent(key, value, ttl).await
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        let key = key.to_string();
        self.with_conn(move |conn, ns| {
            let now = now_ms();
            let row: Option<Option<i64>> = conn
                .prepare_cached(sql::EXPIRY)
                .and_then(|mut s| s.query_row((ns, &key, now), |r| r.get(0)).optional())
                .map_err(|e| sql_error(e, "reading the TTL"))?;
            Ok(match row {
                None => KeyTtl::Missing,
                Some(None) => KeyTtl::Persistent,
                Some(Some(at)) => {
                    KeyTtl::ExpiresIn(Duration::from_millis((at - now).max(1) as u64))
                }
            })
        })
        .await
    }
}

#[async_trait]
impl Database for SqliteBackend {
    async fn set(&self, key: &str, value: &Value) -> Result<()> {
        self.set_value(key, value, None).await
    }

    async fn mset(&self, entries: &[(String, Value)]) -> Result<()> {
        self.set_many(encode_entries(entries)?).await
    }

    async fn get_versioned(&self, key: &str) -> Result<Option<(Value, Version)>> {
        self.versioned(key).await
    }

    async fn set_if(&self, key: &str, value: &Value, condition: &Condition) -> Result<Version> {
        self.put_if(key, value, condition).await
    }

    async fn delete_if(&self, key: &str, condition: &Condition) -> Result<bool> {
        self.remove_if(key, condition).await
    }

    async fn append(&self, key: &str, value: &Value) -> Result<()> {
        self.append_texts(key, vec![encode_value(value)?]).await
    }

    async fn append_many(&self, key: &str, values: &[Value]) -> Result<()> {
        let texts = values
            .iter()
            .map(encode_value)
            .collect::<Result<Vec<_>>>()?;
        self.append_texts(key, texts).await
    }

    async fn get_range(&self, key: &str, start: i64, end: i64) -> Result<Vec<Value>> {
        let key = key.to_string();
        self.read(move |tx, ns| {
            let (len, head) = match header(tx, ns, &key, now_ms())? {
                None => return Ok(Vec::new()),
                Some((KIND_LIST, len, head)) => (len, head),
                Some(_) => return Err(Error::holds_value(&key)),
            };
            let Some((first, last)) = lrange_window(len as u64, start, end) else {
                return Ok(Vec::new());
            };
            let map = |e| sql_error(e, "reading the list");
            let mut stmt = tx.prepare_cached(sql::RANGE).map_err(map)?;
            let mut rows = stmt
                .query((ns, &key, head + first as i64, head + last as i64))
                .map_err(map)?;
            let mut out = Vec::with_capacity((last - first + 1) as usize);
            while let Some(row) = rows.next().map_err(map)? {
                let text: String = row.get(0).map_err(map)?;
                out.push(decode(&key, &text)?);
            }
            Ok(out)
        })
        .await
    }

    async fn trim(&self, key: &str, start: i64, end: i64) -> Result<()> {
        let key = key.to_string();
        self.write(move |tx, ns| {
            let (len, head) = match header(tx, ns, &key, now_ms())? {
                None => return Ok(()),
                Some((KIND_LIST, len, head)) => (len, head),
                Some(_) => return Err(Error::holds_value(&key)),
            };
            let map = |e| sql_error(e, "trimming the list");
            let Some((first, last)) = lrange_window(len as u64, start, end) else {
                // Nothing kept: the key goes.
                tx.prepare_cached(sql::DELETE_ITEMS)
                    .and_then(|mut s| s.execute((ns, &key)))
                    .map_err(map)?;
                tx.prepare_cached(sql::DELETE_KEY)
                    .and_then(|mut s| s.execute((ns, &key)))
                    .map_err(map)?;
                return Ok(());
            };
            // Index range deletes from both ends: O(removed).
            let (new_head, new_last) = (head + first as i64, head + last as i64);
            tx.prepare_cached(sql::TRIM_HEAD)
                .and_then(|mut s| s.execute((ns, &key, new_head)))
                .map_err(map)?;
            tx.prepare_cached(sql::TRIM_TAIL)
                .and_then(|mut s| s.execute((ns, &key, new_last)))
                .map_err(map)?;
            tx.prepare_cached(sql::SET_WINDOW)
                .and_then(|mut s| s.execute((ns, &key, new_head, new_last - new_head + 1)))
                .map_err(map)?;
            Ok(())
        })
        .await
    }

    async fn get_length(&self, key: &str) -> Result<u64> {
        let key = key.to_string();
        self.with_conn(move |conn, ns| match header(conn, ns, &key, now_ms())? {
            None => Ok(0),
            Some((KIND_LIST, len, _)) => Ok(len as u64),
            Some(_) => Err(Error::holds_value(&key)),
        })
        .await
    }

    async fn list_window(&self, key: &str, from: u64, max: usize) -> Result<ListWindow> {
        self.window(key, from, max).await
    }

    async fn wait_for_change(&self, key: &str, limit: Duration) -> Result<()> {
        self.wait_list_change(key, limit).await
    }
}

impl SqliteBackend {
    /// Appends items in one `BEGIN IMMEDIATE` transaction.
    async fn append_texts(&self, key: &str, texts: Vec<String>) -> Result<()> {
        let key = key.to_string();
        let n = texts.len() as i64;
        self.write(move |tx, ns| {
            let now = now_ms();
            // The header row holds the length, so the next sequence number is one index lookup.
            let first = match header(tx, ns, &key, now)? {
                Some((KIND_LIST, len, head)) => {
                    tx.prepare_cached(sql::BUMP_LIST)
                        .and_then(|mut s| s.execute((ns, &key, n)))
                        .map_err(|e| sql_error(e, "growing the list"))?;
                    head + len
                }
                Some(_) => return Err(Error::holds_value(&key)),
                None => {
                    // Missing, or an expired value that has not been reclaimed yet.
                    // A new list draws its generation, which followers tell incarnations by.
                    let generation = Version::fresh().raw() as i64;
                    tx.prepare_cached(sql::NEW_LIST)
                        .and_then(|mut s| s.execute((ns, &key, n, generation)))
                        .map_err(|e| sql_error(e, "starting the list"))?;
                    0
                }
            };
            let mut insert = tx
                .prepare_cached(sql::INSERT_ITEM)
                .map_err(|e| sql_error(e, "appending"))?;
            for (i, text) in texts.iter().enumerate() {
                insert
                    .execute((ns, &key, first + i as i64, text))
                    .map_err(|e| sql_error(e, "appending"))?;
            }
            Ok(())
        })
        .await
    }

    fn should_reclaim(&self) -> bool {
        self.writes
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(RECLAIM_EVERY)
    }

    async fn set_value(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<()> {
        let text = encode_value(value)?;
        let key = key.to_string();
        let reclaim = ttl.is_some() && self.should_reclaim();
        self.write(move |tx, ns| {
            let now = now_ms();
            if reclaim {
                reclaim_expired(tx, now)?;
            }
            put_value(
                tx,
                ns,
                &key,
                &text,
                ttl.map(|t| deadline(now, t)),
                Version::fresh(),
            )
        })
        .await
    }

    async fn set_many(&self, entries: Vec<EncodedEntry>) -> Result<()> {
        let reclaim = entries.iter().any(|e| e.ttl.is_some()) && self.should_reclaim();
        self.write(move |tx, ns| {
            let now = now_ms();
            if reclaim {
                reclaim_expired(tx, now)?;
            }
            for e in &entries {
                let expires = e.ttl.map(|t| deadline(now, t));
                put_value(tx, ns, &e.key, &e.text, expires, Version::fresh())?;
            }
            Ok(())
        })
        .await
    }
}

pub(crate) fn deadline(now: i64, ttl: Duration) -> i64 {
    now.saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64)
}

fn reclaim_expired(tx: &rusqlite::Transaction<'_>, now: i64) -> Result<()> {
    tx.prepare_cached(sql::RECLAIM)
        .and_then(|mut s| s.execute([now]))
        .map_err(|e| sql_error(e, "reclaiming expired keys"))?;
    Ok(())
}

/// Stores a value at `version`, dropping the items of a list the key held.
pub(crate) fn put_value(
    tx: &rusqlite::Transaction<'_>,
    ns: &str,
    key: &str,
    text: &str,
    expires: Option<i64>,
    version: Version,
) -> Result<()> {
    let was_list = tx
        .prepare_cached(sql::HEADER)
        .and_then(|mut s| {
            s.query_row((ns, key, i64::MIN), |r| r.get::<_, i64>(0))
                .optional()
        })
        .map_err(|e| sql_error(e, "reading the key"))?
        == Some(KIND_LIST);
    if was_list {
        tx.prepare_cached(sql::DELETE_ITEMS)
            .and_then(|mut s| s.execute((ns, key)))
            .map_err(|e| sql_error(e, "dropping the list"))?;
    }
    tx.prepare_cached(sql::UPSERT_VALUE)
        .and_then(|mut s| s.execute((ns, key, text, expires, version.raw() as i64)))
        .map_err(|e| sql_error(e, "storing the value"))?;
    Ok(())
}

/// The live row's kind and list length, if any.
/// A live key's kind, list length and list head (the sequence number of its first item).
fn header(tx: &Connection, ns: &str, key: &str, now: i64) -> Result<Option<(i64, i64, i64)>> {
    tx.prepare_cached(sql::HEADER)
        .and_then(|mut s| {
            s.query_row((ns, key, now), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .map_err(|e| sql_error(e, "reading the key"))
}

fn get_row(
    conn: &Connection,
    ns: &str,
    key: &str,
    now: i64,
) -> Result<Option<(i64, Option<String>)>> {
    conn.prepare_cached(sql::GET)
        .and_then(|mut s| {
            s.query_row((ns, key, now), |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(|e| sql_error(e, "reading the key"))
}
