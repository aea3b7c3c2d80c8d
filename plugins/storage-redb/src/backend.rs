//! The `Store`, `Cache` and `Database` operations of [`RedbBackend`], each one redb
//! transaction: point reads where they are awaited, scans and writes on a blocking thread.
//!
//! Not the connection or the configuration: those are in the crate root and `config`.

use crate::expiry::unindex_deadline;
use crate::{
    Header, INLINE_READ_LIMIT, ITEMS, KEYS, RedbBackend, TYPE_NAME, append_texts, changes,
    db_error, deadline, decode_json, encode, header_of, live_header, now_ms, put_value,
    remove_items,
};
use async_trait::async_trait;
use redb::ReadableTable;
use serde_json::Value;
use std::time::Duration;
use storage_core::raw::{glob_match, literal_prefix, lrange_window, prefix_upper_bound};
use storage_core::watch::{ChangeKind, ChangeWindow};
use storage_core::{
    Cache, CacheEntry, Condition, Database, Error, KeyKind, KeyTtl, ListWindow, Result, Store,
    Version,
};

#[async_trait]
impl Store for RedbBackend {
    fn backend(&self) -> &str {
        TYPE_NAME
    }

    async fn get(&self, key: &str) -> Result<Option<Value>> {
        self.read_inline(|tx, ns| match live_header(tx, ns, key, now_ms())? {
            None => Ok(None),
            Some(h) if h.list => Err(Error::holds_list(key)),
            Some(h) => decode_json(key, &h.json).map(Some),
        })
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let key = key.to_string();
        self.write(move |tx, ns, now| {
            let old = {
                let mut table = tx
                    .open_table(KEYS)
                    .map_err(|e| db_error(e, "opening the key table"))?;
                let removed = table
                    .remove((ns, key.as_str()))
                    .map_err(|e| db_error(e, "deleting"))?;
                match removed {
                    Some(guard) => Some(Header::decode(guard.value())?),
                    None => None,
                }
            };
            match old {
                None => Ok(false),
                Some(h) => {
                    unindex_deadline(tx, ns, &key, &h)?;
                    if h.list {
                        remove_items(tx, ns, &key, h.head()..h.head() + h.len)?;
                    }
                    let kind = if h.live(now) {
                        ChangeKind::Delete
                    } else {
                        ChangeKind::Expired
                    };
                    changes::record(tx, ns, &key, kind, None)?;
                    Ok(h.live(now))
                }
            }
        })
        .await
    }

    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Value>>> {
        fn lookup(
            tx: &redb::ReadTransaction,
            ns: &str,
            keys: &[String],
        ) -> Result<Vec<Option<Value>>> {
            let now = now_ms();
            keys.iter()
                .map(|k| match live_header(tx, ns, k, now)? {
                    Some(h) if !h.list => decode_json(k, &h.json).map(Some),
                    _ => Ok(None),
                })
                .collect()
        }
        if keys.len() as u64 <= INLINE_READ_LIMIT {
            return self.read_inline(|tx, ns| lookup(tx, ns, keys));
        }
        let keys = keys.to_vec();
        self.read_blocking(move |tx, ns| lookup(tx, ns, &keys))
            .await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.kind(key).await? != KeyKind::None)
    }

    async fn kind(&self, key: &str) -> Result<KeyKind> {
        self.read_inline(|tx, ns| {
            Ok(match live_header(tx, ns, key, now_ms())? {
                None => KeyKind::None,
                Some(h) if h.list => KeyKind::List,
                Some(_) => KeyKind::Value,
            })
        })
    }

    async fn keys(&self, pattern: Option<&str>) -> Result<Vec<String>> {
        let pattern = pattern.map(str::to_string);
        self.read_blocking(move |tx, ns| {
            let now = now_ms();
            let (prefix, _) = pattern.as_deref().map(literal_prefix).unwrap_or_default();
            let upper = prefix_upper_bound(&prefix);
            let table = tx
                .open_table(KEYS)
                .map_err(|e| db_error(e, "opening the key table"))?;
            let mut out = Vec::new();
            // The range of the literal prefix, within the namespace.
            for row in table
                .range((ns, prefix.as_str())..)
                .map_err(|e| db_error(e, "scanning keys"))?
            {
                let (k, v) = row.map_err(|e| db_error(e, "scanning keys"))?;
                let (row_ns, key) = k.value();
                if row_ns != ns
                    || upper.as_deref().is_some_and(|u| key >= u)
                    || !key.starts_with(&prefix)
                {
                    break;
                }
                if Header::decode(v.value())?.live(now)
                    && pattern.as_deref().is_none_or(|p| glob_match(p, key))
                {
                    out.push(key.to_string());
                }
            }
            Ok(out)
        })
        .await
    }

    async fn clear(&self) -> Result<()> {
        self.write(|tx, ns, _| {
            let mut keys = Vec::new();
            {
                let table = tx
                    .open_table(KEYS)
                    .map_err(|e| db_error(e, "opening the key table"))?;
                for row in table
                    .range((ns, "")..)
                    .map_err(|e| db_error(e, "scanning"))?
                {
                    let (k, v) = row.map_err(|e| db_error(e, "scanning"))?;
                    let (row_ns, key) = k.value();
                    if row_ns != ns {
                        break;
                    }
                    keys.push((key.to_string(), Header::decode(v.value())?));
                }
            }
            let mut table = tx
                .open_table(KEYS)
                .map_err(|e| db_error(e, "opening the key table"))?;
            for (key, h) in &keys {
                table
                    .remove((ns, key.as_str()))
                    .map_err(|e| db_error(e, "clearing"))?;
                if h.list {
                    remove_items(tx, ns, key, h.head()..h.head() + h.len)?;
                }
            }
            drop(table);
            changes::record(tx, ns, "", ChangeKind::Cleared, None)
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.read_inline(|tx, _| {
            tx.open_table(KEYS).map_err(|e| db_error(e, "ping"))?;
            Ok(())
        })
    }

    async fn close(&self) -> Result<()> {
        self.db.write().unwrap_or_else(|e| e.into_inner()).take();
        Ok(())
    }

    async fn changes(&self, from: Option<u64>, max: usize) -> Result<ChangeWindow> {
        self.read_inline(|tx, ns| changes::window(tx, ns, from, max))
    }

    /// Reads the log's end every 5 ms: one read transaction, no wake-up to miss.
    async fn wait_for_changes(&self, from: u64, limit: Duration) -> Result<()> {
        let deadline = std::time::Instant::now() + limit;
        while self.changes(None, 0).await?.next <= from && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}

#[async_trait]
impl Cache for RedbBackend {
    async fn set(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<()> {
        let (key, json) = (key.to_string(), encode(value)?.into_bytes());
        self.write(move |tx, ns, now| put_value(tx, ns, &key, &json, deadline(now, ttl)))
            .await?;
        Ok(())
    }

    async fn mset(&self, entries: &[CacheEntry]) -> Result<()> {
        let entries = entries
            .iter()
            .map(|e| Ok((e.key.clone(), encode(&e.value)?.into_bytes(), e.ttl)))
            .collect::<Result<Vec<_>>>()?;
        self.write(move |tx, ns, now| {
            for (k, json, ttl) in &entries {
                put_value(tx, ns, k, json, deadline(now, *ttl))?;
            }
            Ok(())
        })
        .await
    }

    async fn set_if_absent(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<bool> {
        self.put_if_absent(key, value, ttl).await
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        self.read_inline(|tx, ns| {
            let now = now_ms();
            Ok(match live_header(tx, ns, key, now)? {
                None => KeyTtl::Missing,
                Some(Header {
                    expires_at: None, ..
                }) => KeyTtl::Persistent,
                Some(Header {
                    expires_at: Some(at),
                    ..
                }) => KeyTtl::ExpiresIn(Duration::from_millis((at - now).max(1) as u64)),
            })
        })
    }
}

#[async_trait]
impl Database for RedbBackend {
    async fn set(&self, key: &str, value: &Value) -> Result<()> {
        Cache::set(self, key, value, None).await
    }

    async fn mset(&self, entries: &[(String, Value)]) -> Result<()> {
        let entries: Vec<CacheEntry> = entries
            .iter()
            .map(|(k, v)| CacheEntry::new(k.clone(), v.clone(), None))
            .collect();
        Cache::mset(self, &entries).await
    }

    async fn get_versioned(&self, key: &str) -> Result<Option<(Value, Version)>> {
        self.versioned(key)
    }

    async fn set_if(&self, key: &str, value: &Value, condition: &Condition) -> Result<Version> {
        self.put_if(key, value, condition).await
    }

    async fn delete_if(&self, key: &str, condition: &Condition) -> Result<bool> {
        self.remove_if(key, condition).await
    }

    async fn append(&self, key: &str, value: &Value) -> Result<()> {
        self.append_many(key, std::slice::from_ref(value)).await
    }

    async fn append_many(&self, key: &str, values: &[Value]) -> Result<()> {
        let key = key.to_string();
        let texts = values.iter().map(encode).collect::<Result<Vec<_>>>()?;
        self.write(move |tx, ns, now| append_texts(tx, ns, &key, now, &texts))
            .await
    }

    async fn get_range(&self, key: &str, start: i64, end: i64) -> Result<Vec<Value>> {
        // Indexes of one sign bound the window's size before the length is known.
        let bounded =
            (start >= 0) == (end >= 0) && end.saturating_sub(start) < INLINE_READ_LIMIT as i64;
        if bounded {
            return self.read_inline(|tx, ns| read_window(tx, ns, key, start, end));
        }
        let key = key.to_string();
        self.read_blocking(move |tx, ns| read_window(tx, ns, &key, start, end))
            .await
    }

    async fn trim(&self, key: &str, start: i64, end: i64) -> Result<()> {
        let key = key.to_string();
        self.write(move |tx, ns, now| {
            let header = {
                let table = tx
                    .open_table(KEYS)
                    .map_err(|e| db_error(e, "opening the key table"))?;
                header_of(&table, ns, &key)?.filter(|h| h.live(now))
            };
            let (len, head, generation) = match header {
                None => return Ok(()),
                Some(h) if h.list => (h.len, h.head(), h.generation()),
                Some(_) => return Err(Error::holds_value(&key)),
            };
            let window = lrange_window(len, start, end);
            // Only the removed items are touched, from either end.
            match window {
                None => remove_items(tx, ns, &key, head..head + len)?,
                Some((first, last)) => {
                    remove_items(tx, ns, &key, head..head + first)?;
                    remove_items(tx, ns, &key, head + last + 1..head + len)?;
                }
            }
            let mut table = tx
                .open_table(KEYS)
                .map_err(|e| db_error(e, "opening the key table"))?;
            match window {
                None => {
                    table
                        .remove((ns, key.as_str()))
                        .map_err(|e| db_error(e, "dropping the list"))?;
                    drop(table);
                    changes::record(tx, ns, &key, ChangeKind::Delete, None)?;
                }
                Some((first, last)) => {
                    let kept = Header::list(last - first + 1, head + first, generation);
                    table
                        .insert((ns, key.as_str()), kept.encode().as_slice())
                        .map_err(|e| db_error(e, "updating the list header"))?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn get_length(&self, key: &str) -> Result<u64> {
        self.read_inline(|tx, ns| match live_header(tx, ns, key, now_ms())? {
            None => Ok(0),
            Some(h) if h.list => Ok(h.len),
            Some(_) => Err(Error::holds_value(key)),
        })
    }

    /// The list's header and items by absolute index (the header keeps the list's head and
    /// generation), in one read transaction. A follower polls (the trait's default wait): the
    /// file belongs to this process, so nothing else appends unseen.
    async fn list_window(&self, key: &str, from: u64, max: usize) -> Result<ListWindow> {
        self.read_inline(|tx, ns| {
            let (len, head, generation) = match live_header(tx, ns, key, now_ms())? {
                None => return Ok(ListWindow::default()),
                Some(h) if h.list => (h.len, h.head(), h.generation()),
                Some(_) => return Err(Error::holds_value(key)),
            };
            let next = head + len;
            let start = from.max(head);
            let end = next.min(start.saturating_add(max as u64));
            let mut items = Vec::new();
            if start < end {
                let table = tx
                    .open_table(ITEMS)
                    .map_err(|e| db_error(e, "opening the item table"))?;
                for row in table
                    .range((ns, key, start)..(ns, key, end))
                    .map_err(|e| db_error(e, "reading the list"))?
                {
                    let (_, v) = row.map_err(|e| db_error(e, "reading the list"))?;
                    items.push(decode_json(key, v.value().as_bytes())?);
                }
            }
            Ok(ListWindow {
                generation,
                first: head,
                next,
                items,
            })
        })
    }
}

/// The items of the list at `key` in the LRANGE window `start..=end`.
fn read_window(
    tx: &redb::ReadTransaction,
    ns: &str,
    key: &str,
    start: i64,
    end: i64,
) -> Result<Vec<Value>> {
    let (len, head) = match live_header(tx, ns, key, now_ms())? {
        None => return Ok(Vec::new()),
        Some(h) if h.list => (h.len, h.head()),
        Some(_) => return Err(Error::holds_value(key)),
    };
    let Some((first, last)) = lrange_window(len, start, end) else {
        return Ok(Vec::new());
    };
    let (first, last) = (head + first, head + last);
    let items = tx
        .open_table(ITEMS)
        .map_err(|e| db_error(e, "opening the item table"))?;
    let mut out = Vec::with_capacity((last - first + 1) as usize);
    for row in items
        .range((ns, key, first)..=(ns, key, last))
        .map_err(|e| db_error(e, "reading the list"))?
    {
        let (_, v) = row.map_err(|e| db_error(e, "reading the list"))?;
        out.push(decode_json(key, v.value().as_bytes())?);
    }
    Ok(out)
}
