//! The conditional operations of [`RedbBackend`]: a read with the value's version (kept in the
//! key's header), and writes that check a condition and write in one redb write transaction,
//! which no other write of the file interleaves. Not the plain operations (`backend.rs`).

use crate::expiry::unindex_deadline;
use crate::{
    Header, KEYS, RedbBackend, db_error, deadline, decode_json, encode, header_of, live_header,
    now_ms, put_value,
};
use serde_json::Value;
use std::time::Duration;
use storage_core::{Condition, Error, Result, Version};

/// Whether `condition` holds for the key's live header.
fn check(key: &str, condition: &Condition, held: Option<&Header>) -> Result<()> {
    match (condition, held) {
        (Condition::Any, _) | (Condition::Absent, None) => Ok(()),
        (Condition::Version(_), Some(h)) if h.list => Err(Error::holds_list(key)),
        (Condition::Version(want), Some(h)) if h.version() == Some(*want) => Ok(()),
        (_, held) => Err(Error::conflict(key, held.and_then(Header::version))),
    }
}

/// The key's live header inside a write transaction.
fn live_in(tx: &redb::WriteTransaction, ns: &str, key: &str, now: i64) -> Result<Option<Header>> {
    let table = tx
        .open_table(KEYS)
        .map_err(|e| db_error(e, "opening the key table"))?;
    Ok(header_of(&table, ns, key)?.filter(|h| h.live(now)))
}

impl RedbBackend {
    pub(crate) fn versioned(&self, key: &str) -> Result<Option<(Value, Version)>> {
        self.read_inline(|tx, ns| match live_header(tx, ns, key, now_ms())? {
            None => Ok(None),
            Some(h) if h.list => Err(Error::holds_list(key)),
            Some(h) => Ok(Some((decode_json(key, &h.json)?, Version::from_raw(h.len)))),
        })
    }

    pub(crate) async fn put_if(
        &self,
        key: &str,
        value: &Value,
        condition: &Condition,
    ) -> Result<Version> {
        let (key, json, condition) = (key.to_string(), encode(value)?.into_bytes(), *condition);
        self.write(move |tx, ns, now| {
            check(&key, &condition, live_in(tx, ns, &key, now)?.as_ref())?;
            put_value(tx, ns, &key, &json, None)
        })
        .await
    }

    pub(crate) async fn remove_if(&self, key: &str, condition: &Condition) -> Result<bool> {
        let (key, condition) = (key.to_string(), *condition);
        self.write(move |tx, ns, now| {
            let held = live_in(tx, ns, &key, now)?;
            check(&key, &condition, held.as_ref())?;
            let Some(h) = held else {
                return Ok(false);
            };
            {
                let mut table = tx
                    .open_table(KEYS)
                    .map_err(|e| db_error(e, "opening the key table"))?;
                table
                    .remove((ns, key.as_str()))
                    .map_err(|e| db_error(e, "deleting"))?;
            }
            unindex_deadline(tx, ns, &key, &h)?;
            if h.list {
                crate::remove_items(tx, ns, &key, h.head()..h.head() + h.len)?;
            }
            crate::changes::record(tx, ns, &key, storage_core::watch::ChangeKind::Delete, None)?;
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
        let (key, json) = (key.to_string(), encode(value)?.into_bytes());
        self.write(move |tx, ns, now| {
            if live_in(tx, ns, &key, now)?.is_some() {
                return Ok(false);
            }
            put_value(tx, ns, &key, &json, deadline(now, ttl))?;
            Ok(true)
        })
        .await
    }
}
