//! The `Store`, `Cache` and `Database` operations of [`RedisBackend`], each one command, pipeline
//! or `MULTI`/`EXEC`.
//!
//! Not the connection or the configuration: those are `core.rs` and `config.rs`.

use crate::conditional::with_version;
use crate::config::TYPE_NAME;
use crate::core::{BATCH, RedisBackend, decode, not_utf8_key, wrong_type};
use async_trait::async_trait;
use serde_json::Value;
use std::time::Duration;
use storage_core::raw::Resend;
use storage_core::raw::encode_value;
use storage_core::watch::{ChangeKind, ChangeWindow};
use storage_core::{
    Cache, CacheEntry, Condition, Database, Error, KeyKind, KeyTtl, ListWindow, Result, Store,
    Version,
};

#[async_trait]
impl Store for RedisBackend {
    fn backend(&self) -> &str {
        TYPE_NAME
    }

    async fn get(&self, key: &str) -> Result<Option<Value>> {
        let raw: Option<Vec<u8>> = self
            .query(
                Resend::Allowed,
                redis::cmd("GET").arg(self.key(key)),
                "reading the key",
            )
            .await
            .map_err(wrong_type(key, Error::holds_list))?;
        raw.map(|b| decode(key, &b)).transpose()
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        if self.logs_changes() {
            return self
                .write_logged("del", key, "", None, None, Resend::Allowed)
                .await;
        }
        let n: u64 = self
            .query(
                Resend::Allowed,
                redis::cmd("UNLINK").arg(self.key(key)),
                "deleting the key",
            )
            .await?;
        Ok(n > 0)
    }

    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Value>>> {
        let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        let raw: Vec<Option<Vec<u8>>> = self
            .query(
                Resend::Allowed,
                redis::cmd("MGET").arg(&full),
                "reading the keys",
            )
            .await?;
        keys.iter()
            .zip(raw)
            .map(|(k, v)| v.map(|b| decode(k, &b)).transpose())
            .collect()
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let n: u64 = self
            .query(
                Resend::Allowed,
                redis::cmd("EXISTS").arg(self.key(key)),
                "checking the key",
            )
            .await?;
        Ok(n > 0)
    }

    async fn kind(&self, key: &str) -> Result<KeyKind> {
        let t: String = self
            .query(
                Resend::Allowed,
                redis::cmd("TYPE").arg(self.key(key)),
                "reading the type",
            )
            .await?;
        match t.as_str() {
            "none" => Ok(KeyKind::None),
            "string" => Ok(KeyKind::Value),
            "list" => Ok(KeyKind::List),
            other => Err(Error::other(format!(
                "key {key:?} holds a Redis {other}, which this library does not write"
            ))),
        }
    }

    async fn keys(&self, pattern: Option<&str>) -> Result<Vec<String>> {
        if self.key_index
            && let Some(keys) = self.indexed_keys(pattern).await?
        {
            return Ok(keys);
        }
        // A key that is not UTF-8 was not written by this library, and no caller can name it:
        // skipped, it would be left behind unseen (a migration once reported "identical"
        // without it). Reported instead, escaped.
        self.scan(pattern)
            .await?
            .into_iter()
            .map(|raw| match String::from_utf8(raw) {
                Ok(k) => Ok(k[self.prefix.len()..].to_string()),
                Err(e) => Err(not_utf8_key(e.as_bytes())),
            })
            // The list headers, the change log and the key index are the namespace's own (their
            // names start with NUL, which no caller's key holds).
            .filter(|k| !matches!(k, Ok(k) if k.starts_with('\0')))
            .collect()
    }

    async fn clear(&self) -> Result<()> {
        if self.key_index && self.clear_indexed().await? {
            self.query::<u64>(
                Resend::Allowed,
                redis::cmd("UNLINK").arg(self.key(crate::feed::LISTS)),
                "clearing the namespace",
            )
            .await?;
        } else {
            // A database's index is built by the clear: marked first, so that the writes
            // that land while `SCAN` walks keep it; complete once the walk removed the rest.
            // What plain writes put into an index not yet complete goes with the keys.
            let index = match self.key_index {
                true => {
                    let index = self.key(crate::key_index::KEY_INDEX);
                    self.query::<u64>(
                        Resend::Allowed,
                        redis::cmd("UNLINK").arg(&index),
                        "clearing the namespace",
                    )
                    .await?;
                    Some(self.begin_index().await?)
                }
                false => None,
            };
            // The change log stays: watchers stand in it, and the clear is filed there.
            let log = self.key(crate::watch::CHANGES).into_bytes();
            let mut keys = self.scan(None).await?;
            keys.retain(|k| *k != log && Some(k.as_slice()) != index.as_deref().map(str::as_bytes));
            for chunk in keys.chunks(BATCH) {
                self.query::<u64>(
                    Resend::Allowed,
                    redis::cmd("UNLINK").arg(chunk),
                    "clearing the namespace",
                )
                .await?;
            }
            if let Some(index) = index {
                self.complete_index(&index).await?;
            }
        }
        if self.logs_changes() {
            let cmd = self.log_command("", ChangeKind::Cleared, None);
            self.query::<String>(Resend::Allowed, &cmd, "filing the clear")
                .await?;
        }
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        self.query::<()>(Resend::Allowed, &redis::cmd("PING"), "ping")
            .await
    }

    async fn close(&self) -> Result<()> {
        self.links.close();
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
impl Cache for RedisBackend {
    async fn set(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<()> {
        if self.logs_changes() {
            let stored = encode_value(value)?;
            self.write_logged("set", key, &stored, ttl, None, Resend::Allowed)
                .await?;
            return Ok(());
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(encode_value(value)?);
        if let Some(t) = ttl {
            cmd.arg("PX").arg(t.as_millis() as u64);
        }
        self.query::<()>(Resend::Allowed, &cmd, "storing the value")
            .await
    }

    async fn mset(&self, entries: &[CacheEntry]) -> Result<()> {
        let encoded = entries
            .iter()
            .map(|e| Ok((e.key.clone(), (encode_value(&e.value)?, e.ttl))))
            .collect::<Result<Vec<_>>>()?;
        self.mset_pipe(encoded, false).await
    }

    async fn set_if_absent(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<bool> {
        self.put_if_absent(key, value, ttl).await
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        let ms: i64 = self
            .query(
                Resend::Allowed,
                redis::cmd("PTTL").arg(self.key(key)),
                "reading the TTL",
            )
            .await?;
        Ok(match ms {
            -2 => KeyTtl::Missing,
            -1 => KeyTtl::Persistent,
            ms => KeyTtl::ExpiresIn(Duration::from_millis(ms.max(1) as u64)),
        })
    }
}

#[async_trait]
impl Database for RedisBackend {
    async fn set(&self, key: &str, value: &Value) -> Result<()> {
        self.put_if(key, value, &Condition::Any).await?;
        Ok(())
    }

    async fn mset(&self, entries: &[(String, Value)]) -> Result<()> {
        let encoded = entries
            .iter()
            .map(|(k, v)| {
                let stored = with_version(Version::fresh(), &encode_value(v)?);
                Ok((k.clone(), (stored, None)))
            })
            .collect::<Result<Vec<_>>>()?;
        self.mset_pipe(encoded, true).await
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
        self.push(key, vec![encode_value(value)?]).await
    }

    async fn append_many(&self, key: &str, values: &[Value]) -> Result<()> {
        let items = values
            .iter()
            .map(encode_value)
            .collect::<Result<Vec<_>>>()?;
        // One script: atomic, and never re-sent.
        self.push(key, items).await
    }

    async fn get_range(&self, key: &str, start: i64, end: i64) -> Result<Vec<Value>> {
        let raw: Vec<Vec<u8>> = self
            .query(
                Resend::Allowed,
                redis::cmd("LRANGE").arg(self.key(key)).arg(start).arg(end),
                "reading the list",
            )
            .await
            .map_err(wrong_type(key, Error::holds_value))?;
        raw.iter().map(|b| decode(key, b)).collect()
    }

    async fn get_length(&self, key: &str) -> Result<u64> {
        self.query(
            Resend::Allowed,
            redis::cmd("LLEN").arg(self.key(key)),
            "reading the list length",
        )
        .await
        .map_err(wrong_type(key, Error::holds_value))
    }

    async fn trim(&self, key: &str, start: i64, end: i64) -> Result<()> {
        // LTRIM is the contract's trim, in a script that moves the list's head with it.
        self.trim_list(key, start, end).await
    }

    async fn list_window(&self, key: &str, from: u64, max: usize) -> Result<ListWindow> {
        self.window(key, from, max).await
    }

    async fn wait_for_change(&self, key: &str, limit: Duration) -> Result<()> {
        self.wait_list_change(key, limit).await
    }
}
