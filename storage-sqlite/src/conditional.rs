//! The conditional operations of [`SqliteBackend`]: a read with the value's version, and
//! writes that check a condition and write in one `BEGIN IMMEDIATE` transaction, so no other
//! writer comes between the check and the write. Not the plain operations (`backend.rs`).

use crate::backend::{deadline, put_value};
use crate::core::{KIND_LIST, RECLAIM_EVERY, SqliteBackend, decode, now_ms};
use crate::schema::sql_error;
use crate::sql;
use r2d2_sqlite::rusqlite::{Connection, OptionalExtension};
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::Duration;
use storage_core::raw::encode_value;
use storage_core::{Condition, Error, Result, Version};

/// A live key's kind and version.
fn version_of(conn: &Connection, ns: &str, key: &str, now: i64) -> Result<Option<(i64, i64)>> {
    conn.prepare_cached(sql::VERSION_OF)
        .and_then(|mut s| {
            s.query_row((ns, key, now), |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(|e| sql_error(e, "reading the key's version"))
}

/// Whether `condition` holds for what the key holds (its kind and version, if anything).
fn check(key: &str, condition: &Condition, held: Option<(i64, i64)>) -> Result<()> {
    match (condition, held) {
        (Condition::Any, _) | (Condition::Absent, None) => Ok(()),
        (Condition::Version(_), Some((KIND_LIST, _))) => Err(Error::holds_list(key)),
        (Condition::Version(want), Some((_, have))) if want.raw() as i64 == have => Ok(()),
        (_, Some((KIND_LIST, _)) | None) => Err(Error::conflict(key, None)),
        (_, Some((_, have))) => Err(Error::conflict(key, Some(Version::from_raw(have as u64)))),
    }
}

impl SqliteBackend {
    pub(crate) async fn versioned(&self, key: &str) -> Result<Option<(Value, Version)>> {
        let key = key.to_string();
        self.with_conn(move |conn, ns| {
            let row: Option<(i64, Option<String>, i64)> = conn
                .prepare_cached(sql::GET_VERSIONED)
                .and_then(|mut s| {
                    s.query_row((ns, &key, now_ms()), |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .optional()
                })
                .map_err(|e| sql_error(e, "reading the key"))?;
            match row {
                None => Ok(None),
                Some((KIND_LIST, _, _)) => Err(Error::holds_list(&key)),
                Some((_, text, version)) => Ok(Some((
                    decode(&key, text.as_deref().unwrap_or("null"))?,
                    Version::from_raw(version as u64),
                ))),
            }
        })
        .await
    }

    pub(crate) async fn put_if(
        &self,
        key: &str,
        value: &Value,
        condition: &Condition,
    ) -> Result<Version> {
        let text = encode_value(value)?;
        let (key, condition) = (key.to_string(), *condition);
        self.write(move |tx, ns| {
            check(&key, &condition, version_of(tx, ns, &key, now_ms())?)?;
            let version = Version::fresh();
            put_value(tx, ns, &key, &text, None, version)?;
            Ok(version)
        })
        .await
    }

    pub(crate) async fn remove_if(&self, key: &str, condition: &Condition) -> Result<bool> {
        let (key, condition) = (key.to_string(), *condition);
        self.write(move |tx, ns| {
            let held = version_of(tx, ns, &key, now_ms())?;
            check(&key, &condition, held)?;
            let Some((kind, _)) = held else {
                return Ok(false);
            };
            let map = |e| sql_error(e, "deleting the key");
            if kind == KIND_LIST {
                tx.prepare_cached(sql::DELETE_ITEMS)
                    .and_then(|mut s| s.execute((ns, &key)))
                    .map_err(map)?;
            }
            tx.prepare_cached(sql::DELETE_KEY)
                .and_then(|mut s| s.execute((ns, &key)))
                .map_err(map)?;
            Ok(true)
        })
        .await
    }

    pub(crate) async fn put_if_absent(
        &self,
        key: &str,
        value: &Value,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let text = encode_value(value)?;
        let key = key.to_string();
        let reclaim = ttl.is_some()
            && self
                .writes
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(RECLAIM_EVERY);
        self.write(move |tx, ns| {
            let now = now_ms();
            if reclaim {
                tx.prepare_cached(sql::RECLAIM)
                    .and_then(|mut s| s.execute([now]))
                    .map_err(|e| sql_error(e, "reclaiming expired keys"))?;
            }
            if version_of(tx, ns, &key, now)?.is_some() {
                return Ok(false);
            }
            let expires = ttl.map(|t| deadline(now, t));
            put_value(tx, ns, &key, &text, expires, Version::fresh())?;
            Ok(true)
        })
        .await
    }
}
