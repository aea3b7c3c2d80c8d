//! The `Store`, `Cache` and `Database` operations of [`PostgresBackend`], each one statement or one transaction on a pooled connection.
//!
//! Not the connection or the configuration: those are `core.rs` and `config.rs`.

use crate::config::TYPE_NAME;
use crate::core::{KIND_LIST, PostgresBackend, Resend, decode, pg_error, ttl_ms};
use async_trait::async_trait;
use serde_json::Value;
use std::time::Duration;
use storage_core::raw::{
    EncodedEntry, encode_cache_entries, encode_entries, encode_value, glob_match, literal_prefix,
    prefix_upper_bound,
};
use storage_core::watch::ChangeWindow;
use storage_core::{
    Cache, CacheEntry, Condition, Database, Error, KeyKind, KeyTtl, ListWindow, Result, Store,
    Version,
};

#[async_trait]
impl Store for PostgresBackend {
    fn backend(&self) -> &str {
        TYPE_NAME
    }

    async fn get(&self, key: &str) -> Result<Option<Value>> {
        let row = self
            .run(Resend::Allowed, |mut conn, s| async move {
                let statement = conn.cached(&s.get).await?;
                conn.query_opt(&statement, &[&self.ns, &key])
                    .await
                    .map_err(|e| pg_error(e, "reading the key"))
            })
            .await?;
        match row {
            None => Ok(None),
            Some(r) if r.get::<_, i16>(0) == KIND_LIST => Err(Error::holds_list(key)),
            Some(r) => decode(key, r.get::<_, Option<&str>>(1).unwrap_or("null")).map(Some),
        }
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let row = self
            .run(Resend::Allowed, |mut conn, s| async move {
                let statement = conn.cached(&s.delete).await?;
                conn.query_opt(&statement, &[&self.ns, &key])
                    .await
                    .map_err(|e| pg_error(e, "deleting the key"))
            })
            .await?;
        Ok(row.is_some_and(|r| r.get::<_, bool>(0)))
    }

    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Value>>> {
        // Each key once (the statement joins with the array), with the slots it fills. A key
        // asked for more than once is cloned for all but its last slot.
        let mut slots: std::collections::HashMap<&str, Vec<usize>> =
            std::collections::HashMap::with_capacity(keys.len());
        let mut distinct: Vec<&str> = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            let at = slots.entry(k.as_str()).or_default();
            if at.is_empty() {
                distinct.push(k);
            }
            at.push(i);
        }
        let distinct = &distinct;
        let rows = self
            .run(Resend::Allowed, |mut conn, s| async move {
                let statement = conn.cached(&s.mget).await?;
                conn.query(&statement, &[&self.ns, distinct])
                    .await
                    .map_err(|e| pg_error(e, "reading the keys"))
            })
            .await?;
        // Rows come back in no order: place each value in the slots of its key.
        let mut out = vec![None; keys.len()];
        for r in rows {
            if r.get::<_, i16>(1) == KIND_LIST {
                continue;
            }
            let key: &str = r.get(0);
            let value = decode(key, r.get::<_, Option<&str>>(2).unwrap_or("null"))?;
            if let Some((last, rest)) = slots.get(key).and_then(|s| s.split_last()) {
                for &i in rest {
                    out[i] = Some(value.clone());
                }
                out[*last] = Some(value);
            }
        }
        Ok(out)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.header(key).await?.is_some())
    }

    async fn kind(&self, key: &str) -> Result<KeyKind> {
        Ok(match self.header(key).await? {
            None => KeyKind::None,
            Some((KIND_LIST, _)) => KeyKind::List,
            Some(_) => KeyKind::Value,
        })
    }

    async fn keys(&self, pattern: Option<&str>) -> Result<Vec<String>> {
        let (prefix, _) = pattern.map(literal_prefix).unwrap_or_default();
        let upper = prefix_upper_bound(&prefix);
        let rows = self
            .run(Resend::Allowed, |mut conn, s| {
                let (prefix, upper) = (&prefix, &upper);
                async move {
                    let r = if prefix.is_empty() {
                        let statement = conn.cached(&s.keys_all).await?;
                        conn.query(&statement, &[&self.ns]).await
                    } else if let Some(upper) = upper {
                        let statement = conn.cached(&s.keys_range).await?;
                        conn.query(&statement, &[&self.ns, prefix, upper]).await
                    } else {
                        let statement = conn.cached(&s.keys_from).await?;
                        conn.query(&statement, &[&self.ns, prefix]).await
                    };
                    r.map_err(|e| pg_error(e, "listing keys"))
                }
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| r.get::<_, String>(0))
            .take_while(|k| k.starts_with(&prefix))
            .filter(|k| pattern.is_none_or(|p| glob_match(p, k)))
            .collect())
    }

    async fn clear(&self) -> Result<()> {
        self.run(Resend::Allowed, |mut conn, s| async move {
            let map = |e| pg_error(e, "clearing the namespace");
            let mark = conn.cached(&s.mark_clearing).await?;
            let statement = conn.cached(&s.clear).await?;
            let log = conn.cached(&s.log_clear).await?;
            // One change for the clear, not one per key: the mark silences the trigger.
            let tx = conn.transaction().await.map_err(map)?;
            tx.query_one(&mark, &[]).await.map_err(map)?;
            tx.query_one(&statement, &[&self.ns]).await.map_err(map)?;
            tx.execute(&log, &[&self.ns]).await.map_err(map)?;
            tx.commit().await.map_err(map)?;
            Ok(())
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.run(Resend::Allowed, |conn, _| async move {
            conn.simple_query("")
                .await
                .map_err(|e| pg_error(e, "ping"))?;
            Ok(())
        })
        .await
    }

    async fn close(&self) -> Result<()> {
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
impl Cache for PostgresBackend {
    async fn set(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<()> {
        self.set_value(key, value, ttl).await
    }

    async fn mset(&self, entries: &[CacheEntry]) -> Result<()> {
        self.set_many(encode_cache_entries(entries)?).await
    }

    async fn set_if_absent(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<bool> {
        self.put_if_absent(key, &encode_value(value)?, ttl_ms(ttl))
            .await
            .map(|stored| stored.is_some())
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        let row = self
            .run(Resend::Allowed, |mut conn, s| async move {
                let statement = conn.cached(&s.ttl).await?;
                conn.query_opt(&statement, &[&self.ns, &key])
                    .await
                    .map_err(|e| pg_error(e, "reading the TTL"))
            })
            .await?;
        Ok(match row {
            None => KeyTtl::Missing,
            Some(r) => match r.get::<_, Option<i64>>(0) {
                None => KeyTtl::Persistent,
                Some(ms) => KeyTtl::ExpiresIn(Duration::from_millis(ms.max(1) as u64)),
            },
        })
    }
}

#[async_trait]
impl Database for PostgresBackend {
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
        let text = encode_value(value)?;
        // Not idempotent: a lost acknowledgement may hide a committed append, so never retried.
        let row = self
            .run(Resend::Never, |mut conn, s| {
                let text = &text;
                async move {
                    let statement = conn.cached(&s.append).await?;
                    conn.query_opt(&statement, &[&self.ns, &key, text])
                        .await
                        .map_err(|e| pg_error(e, "appending"))
                }
            })
            .await?;
        match row {
            Some(_) => Ok(()),
            None => Err(Error::holds_value(key)),
        }
    }

    async fn append_many(&self, key: &str, values: &[Value]) -> Result<()> {
        let texts = values
            .iter()
            .map(encode_value)
            .collect::<Result<Vec<_>>>()?;
        // One statement, one transaction; not idempotent, so never retried.
        let rows = self
            .run(Resend::Never, |mut conn, s| {
                let texts = &texts;
                async move {
                    let statement = conn.cached(&s.append_many).await?;
                    conn.query(&statement, &[&self.ns, &key, texts])
                        .await
                        .map_err(|e| pg_error(e, "appending"))
                }
            })
            .await?;
        if rows.is_empty() {
            return Err(Error::holds_value(key));
        }
        Ok(())
    }

    async fn get_range(&self, key: &str, start: i64, end: i64) -> Result<Vec<Value>> {
        let rows = self
            .run(Resend::Allowed, |mut conn, s| async move {
                let statement = conn.cached(&s.range).await?;
                conn.query(&statement, &[&self.ns, &key, &start, &end])
                    .await
                    .map_err(|e| pg_error(e, "reading the list"))
            })
            .await?;
        let Some(first) = rows.first() else {
            return Ok(Vec::new());
        };
        if first.get::<_, i16>(0) != KIND_LIST {
            return Err(Error::holds_value(key));
        }
        rows.iter()
            .filter_map(|r| r.get::<_, Option<&str>>(2))
            .map(|text| decode(key, text))
            .collect()
    }

    async fn trim(&self, key: &str, start: i64, end: i64) -> Result<()> {
        // Not idempotent (a window from one end shrinks the list again): never retried.
        self.run(Resend::Never, |mut conn, s| async move {
            let map = |what: &'static str| move |e| pg_error(e, what);
            // Prepared (once per connection) before the transaction borrows the connection.
            let lock_list = conn.cached(&s.lock_list).await?;
            let delete_items = conn.cached(&s.delete_items).await?;
            let delete_key = conn.cached(&s.delete_key).await?;
            let trim_items = conn.cached(&s.trim_items).await?;
            let set_window = conn.cached(&s.set_window).await?;
            let tx = conn.transaction().await.map_err(map("starting the trim"))?;
            let Some(row) = tx
                .query_opt(&lock_list, &[&self.ns, &key])
                .await
                .map_err(map("locking the list"))?
            else {
                return Ok(());
            };
            let (kind, len, head): (i16, i64, i64) = (row.get(0), row.get(1), row.get(2));
            if kind != KIND_LIST {
                return Err(Error::holds_value(key));
            }
            match storage_core::raw::lrange_window(len as u64, start, end) {
                None => {
                    tx.execute(&delete_items, &[&self.ns, &key])
                        .await
                        .map_err(map("dropping the list"))?;
                    tx.execute(&delete_key, &[&self.ns, &key])
                        .await
                        .map_err(map("dropping the list"))?;
                }
                Some((first, last)) => {
                    // Two index ranges of the primary key, one from each end, each bounded by
                    // what the list holds: O(removed).
                    let (new_head, new_last) = (head + first as i64, head + last as i64);
                    let old_last = head + len - 1;
                    tx.execute(
                        &trim_items,
                        &[&self.ns, &key, &new_head, &new_last, &head, &old_last],
                    )
                    .await
                    .map_err(map("dropping trimmed items"))?;
                    tx.execute(
                        &set_window,
                        &[&self.ns, &key, &new_head, &(new_last - new_head + 1)],
                    )
                    .await
                    .map_err(map("updating the list header"))?;
                }
            }
            tx.commit().await.map_err(map("committing the trim"))
        })
        .await
    }

    async fn get_length(&self, key: &str) -> Result<u64> {
        match self.header(key).await? {
            None => Ok(0),
            Some((KIND_LIST, len)) => Ok(len as u64),
            Some(_) => Err(Error::holds_value(key)),
        }
    }

    async fn list_window(&self, key: &str, from: u64, max: usize) -> Result<ListWindow> {
        self.window(key, from, max).await
    }

    async fn wait_for_change(&self, key: &str, limit: Duration) -> Result<()> {
        self.wait_list_change(key, limit).await
    }
}

impl PostgresBackend {
    async fn set_value(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<()> {
        let text = encode_value(value)?;
        let ttl = ttl_ms(ttl);
        if ttl.is_some() && self.reclaim_due() {
            self.reclaim().await;
        }
        self.store_value(key, &text, ttl, Version::fresh()).await?;
        Ok(())
    }

    /// One `SET` statement at `version`; sent again as often as needed (the same version each
    /// time, so a resend leaves what one send does).
    pub(crate) async fn store_value(
        &self,
        key: &str,
        text: &str,
        ttl: Option<i64>,
        version: Version,
    ) -> Result<Version> {
        let raw = version.raw() as i64;
        self.run(Resend::Allowed, |mut conn, s| async move {
            let statement = conn.cached(&s.set).await?;
            conn.query_one(&statement, &[&self.ns, &key, &text, &ttl, &raw])
                .await
                .map_err(|e| pg_error(e, "storing the value"))?;
            Ok(version)
        })
        .await
    }

    async fn set_many(&self, entries: Vec<EncodedEntry>) -> Result<()> {
        // One statement, one transaction. The last of repeated keys wins: keep only it, since
        // one INSERT ... ON CONFLICT cannot touch a row twice.
        let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            last.insert(e.key.as_str(), i);
        }
        let mut keys = Vec::new();
        let mut values = Vec::new();
        let mut ttls = Vec::new();
        let mut versions = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if last.get(e.key.as_str()) == Some(&i) {
                keys.push(e.key.as_str());
                values.push(e.text.as_str());
                ttls.push(ttl_ms(e.ttl));
                versions.push(Version::fresh().raw() as i64);
            }
        }
        if ttls.iter().any(Option::is_some) && self.reclaim_due() {
            self.reclaim().await;
        }
        self.run(Resend::Allowed, |mut conn, s| {
            let (keys, values, ttls, versions) = (&keys, &values, &ttls, &versions);
            async move {
                // Prepared (once per connection) before the transaction borrows the connection.
                let mset = conn.cached(&s.mset).await?;
                let delete_items = conn.cached(&s.delete_items).await?;
                let tx = conn
                    .transaction()
                    .await
                    .map_err(|e| pg_error(e, "starting the batch"))?;
                let lists = tx
                    .query(&mset, &[&self.ns, keys, values, ttls, versions])
                    .await
                    .map_err(|e| pg_error(e, "storing the batch"))?;
                for row in lists {
                    let key: &str = row.get(0);
                    tx.execute(&delete_items, &[&self.ns, &key])
                        .await
                        .map_err(|e| pg_error(e, "dropping a replaced list"))?;
                }
                tx.commit()
                    .await
                    .map_err(|e| pg_error(e, "committing the batch"))?;
                Ok(())
            }
        })
        .await
    }

    async fn header(&self, key: &str) -> Result<Option<(i16, i64)>> {
        self.run(Resend::Allowed, |mut conn, s| async move {
            let statement = conn.cached(&s.header).await?;
            Ok(conn
                .query_opt(&statement, &[&self.ns, &key])
                .await
                .map_err(|e| pg_error(e, "reading the key"))?
                .map(|r| (r.get(0), r.get(1))))
        })
        .await
    }
}
