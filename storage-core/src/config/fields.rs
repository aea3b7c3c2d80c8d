//! Parse helpers that backend crates share: secrets that never print, numbers that accept a
//! string of digits, the `pool` block, the `ssl` field's shape, and typed parsing with full
//! field paths.

use crate::error::{Error, Result};
use schemars::JsonSchema;
use serde::de::{self, DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::path::PathBuf;

/// A password or a URL that may hold one: deserialized from a string (or a number, as YAML
/// reads `password: 123456`), never printed, and never echoed in a parse error.
#[derive(Clone, Default, PartialEq, Eq, JsonSchema)]
#[schemars(with = "String")]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the driver.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Secret, D::Error> {
        // Read the value whole first, so that no shape's default error can echo it.
        let v = Value::deserialize(d).map_err(|_| de::Error::custom("expected a string"))?;
        match v {
            Value::String(s) => Ok(Secret(s)),
            Value::Number(n) if n.is_u64() || n.is_i64() => Ok(Secret(n.to_string())),
            Value::Number(_) => Err(de::Error::custom(
                "expected a string, found a number (quote it)",
            )),
            Value::Bool(_) => Err(de::Error::custom(
                "expected a string, found a boolean (quote it)",
            )),
            Value::Null => Err(de::Error::custom("expected a string, found null")),
            Value::Array(_) => Err(de::Error::custom("expected a string, found a list")),
            Value::Object(_) => Err(de::Error::custom("expected a string, found a map")),
        }
    }
}

/// Schema of a number field that also accepts a string of digits (for `port: $PG_PORT`).
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum NumOrEnv {
    /// A number.
    Number(u64),
    /// A string of digits (an expanded environment reference).
    Text(String),
}

/// Deserializers for numeric fields that accept a string of digits.
pub mod num {
    use serde::de::{self, Deserializer, Visitor};
    use std::fmt;

    struct U64Visitor;
    impl Visitor<'_> for U64Visitor {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a non-negative integer, or a string of digits")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom(format!("{v} is negative")))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<u64, E> {
            let t = v.trim();
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(E::custom(format!("{v:?} is not a string of digits")));
            }
            t.parse()
                .map_err(|_| E::custom(format!("{v:?} is too large")))
        }
    }

    /// For `#[serde(default, deserialize_with = "num::opt")] field: Option<u64>`.
    pub fn opt<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u64>, D::Error> {
        d.deserialize_any(U64Visitor).map(Some)
    }
}

/// `pool: { min, max, acquireTimeoutMillis, idleTimeoutMillis }`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoolBlock {
    /// Connections kept open when idle (default 0).
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub min: Option<u64>,
    /// Pool size (default 10); the same as `maxConnections`.
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub max: Option<u64>,
    /// Time allowed to wait for a pooled connection (default 5000).
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub acquire_timeout_millis: Option<u64>,
    /// Idle connection timeout (default 30000); the same as `idleTimeoutMillis`.
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub idle_timeout_millis: Option<u64>,
}

/// The `ssl` field of a network backend: `false`, `true`, or `{ mode, ca }`. Each backend
/// decides what the mode names mean for its driver.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum SslField {
    /// `false` (no TLS) or `true` (TLS, verifying the server against the system's roots).
    Flag(bool),
    /// An explicit mode and CA file.
    Detailed(SslDetail),
}

/// `ssl: { mode, ca }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SslDetail {
    /// `disable`, `require` or `verify-full` (a backend may accept more).
    #[serde(default)]
    pub mode: Option<String>,
    /// A PEM file of trusted roots, relative to the config file.
    #[serde(default)]
    pub ca: Option<PathBuf>,
}

/// What a JSON value is, for messages that must not show the value itself.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// Deserializes `block` into `T`, naming the failing field's full path under `path`
/// (`storage.database.pathh: unknown field ...`).
pub fn typed<T: DeserializeOwned>(block: &Value, path: &str) -> Result<T> {
    serde_path_to_error::deserialize(block.clone()).map_err(|e| {
        let inner = e.path().to_string();
        let msg = e.inner().to_string();
        let mut full = if inner == "." || inner.is_empty() {
            path.to_string()
        } else {
            format!("{path}.{inner}")
        };
        // For an unknown field the path may stop at its parent; the name is in the message.
        if let Some(rest) = msg.strip_prefix("unknown field `")
            && let Some(name) = rest.split('`').next()
            && !full.ends_with(&format!(".{name}"))
        {
            full = format!("{full}.{name}");
        }
        Error::config(format!("{full}: {msg}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Block {
        #[serde(default)]
        password: Option<Secret>,
        #[serde(default)]
        path: Option<String>,
        #[serde(default)]
        pool: Option<PoolBlock>,
    }

    #[test]
    fn unknown_fields_are_named_once() {
        let e = typed::<Block>(&json!({"pathh": "x"}), "storage.database").unwrap_err();
        assert!(
            e.message()
                .starts_with("storage.database.pathh: unknown field"),
            "{e}"
        );
        let e = typed::<Block>(&json!({"pool": {"maxx": 1}}), "storage.database").unwrap_err();
        assert!(
            e.message()
                .starts_with("storage.database.pool.maxx: unknown field"),
            "{e}"
        );
    }

    #[test]
    fn secrets_take_numbers_and_never_echo() {
        let b: Block = typed(&json!({"password": 123456}), "s").unwrap();
        assert_eq!(b.password.unwrap().expose(), "123456");
        for bad in [
            json!(true),
            json!(1.25),
            json!(["hunter2"]),
            json!({"a": "hunter2"}),
        ] {
            let e = typed::<Block>(&json!({ "password": bad }), "s")
                .unwrap_err()
                .message()
                .to_string();
            assert!(e.starts_with("s.password: expected a string"), "{e}");
            assert!(!e.contains("hunter2") && !e.contains("1.25"), "{e}");
        }
        assert_eq!(format!("{:?}", Secret::new("pw")), "\"***\"");
    }
}
