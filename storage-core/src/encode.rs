//! The text form in which the backends that store JSON as text (SQLite, PostgreSQL, Redis)
//! write values, and the batches of `mset` in that form. Not decoding: a stored text that does
//! not parse is the backend's own error, naming its key.

use crate::backend::CacheEntry;
use crate::error::{Error, Result};
use serde_json::Value;
use std::time::Duration;

/// One entry of a batch write, its value already encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEntry {
    /// The key, as the caller gave it (without the namespace).
    pub key: String,
    /// The value's JSON text ([`encode_value`]).
    pub text: String,
    /// How long it lives; `None` for as long as the store keeps it (always `None` for a
    /// database batch).
    pub ttl: Option<Duration>,
}

/// The JSON text of `value`, object members in their stored order.
///
/// ```
/// use storage_core::raw::encode_value;
/// use storage_core::serde_json::json;
///
/// assert_eq!(encode_value(&json!({"b": 1, "a": [true]})).unwrap(), r#"{"b":1,"a":[true]}"#);
/// ```
pub fn encode_value(value: &Value) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::invalid_value(format!("cannot encode value: {e}")))
}

/// A cache's `mset` batch, encoded.
pub fn encode_cache_entries(entries: &[CacheEntry]) -> Result<Vec<EncodedEntry>> {
    entries
        .iter()
        .map(|e| {
            Ok(EncodedEntry {
                key: e.key.clone(),
                text: encode_value(&e.value)?,
                ttl: e.ttl,
            })
        })
        .collect()
}

/// A database's `mset` batch, encoded (no TTLs).
pub fn encode_entries(entries: &[(String, Value)]) -> Result<Vec<EncodedEntry>> {
    entries
        .iter()
        .map(|(key, value)| {
            Ok(EncodedEntry {
                key: key.clone(),
                text: encode_value(value)?,
                ttl: None,
            })
        })
        .collect()
}
