//! Key, namespace, value and TTL rules, shared by every backend.
//!
//! Every backend runs these checks before any I/O (the [`crate::layer::Validate`] layer does it for
//! them), so data written in development against the memory backend fits production.

use crate::error::{Error, Result};
use serde_json::Value;
use std::time::Duration;

/// The longest key, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// The longest `keyPrefix`, in UTF-8 bytes.
pub const MAX_KEY_PREFIX_BYTES: usize = 256;
/// The deepest accepted nesting of arrays and objects.
pub const MAX_VALUE_DEPTH: usize = 64;
/// Values up to this serialized size work on every backend.
pub const MAX_PORTABLE_VALUE_BYTES: usize = 16 * 1024 * 1024;
/// The longest TTL, in milliseconds: 2^53 - 1, the largest integer a JSON number holds exactly.
pub const MAX_TTL_MILLIS: u64 = (1 << 53) - 1;

/// Checks a key: non-empty, at most [`MAX_KEY_BYTES`] bytes, no U+0000.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid_key("key is empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::invalid_key(format!(
            "key is {} bytes long; the limit is {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    if key.contains('\0') {
        return Err(Error::invalid_key(format!("key {key:?} contains U+0000")));
    }
    Ok(())
}

/// Checks a namespace prefix: at most [`MAX_KEY_PREFIX_BYTES`] bytes, no U+0000. Empty is allowed.
pub fn validate_key_prefix(prefix: &str) -> Result<()> {
    if prefix.len() > MAX_KEY_PREFIX_BYTES {
        return Err(Error::config(format!(
            "keyPrefix is {} bytes long; the limit is {MAX_KEY_PREFIX_BYTES}",
            prefix.len()
        )));
    }
    if prefix.contains('\0') {
        return Err(Error::config(format!(
            "keyPrefix {prefix:?} contains U+0000"
        )));
    }
    Ok(())
}

/// The nesting depth of a value: the number of arrays and objects around its deepest scalar.
///
/// It stops counting once past [`MAX_VALUE_DEPTH`] (reporting `MAX_VALUE_DEPTH + 1`), so its
/// recursion is bounded and a hostile value cannot overflow the stack, and it allocates nothing.
pub fn value_depth(value: &Value) -> usize {
    fn walk(v: &Value, depth: usize) -> usize {
        if depth > MAX_VALUE_DEPTH {
            return depth;
        }
        match v {
            // A child is at least one level deeper, so the deepest child's depth is the
            // container's; an empty container counts its own level.
            Value::Array(items) => items
                .iter()
                .map(|i| walk(i, depth + 1))
                .max()
                .unwrap_or(depth + 1),
            Value::Object(members) => members
                .values()
                .map(|i| walk(i, depth + 1))
                .max()
                .unwrap_or(depth + 1),
            _ => depth,
        }
    }
    walk(value, 0)
}

/// Checks a value: nesting depth at most [`MAX_VALUE_DEPTH`].
pub fn validate_value(value: &Value) -> Result<()> {
    let depth = value_depth(value);
    if depth > MAX_VALUE_DEPTH {
        return Err(Error::invalid_value(format!(
            "value is nested {depth} or more levels deep; the limit is {MAX_VALUE_DEPTH}"
        )));
    }
    Ok(())
}

/// Normalises a cache TTL to whole milliseconds.
///
/// A TTL under 1 ms is rounded up to 1 ms, and any fraction of a millisecond is rounded up, so
/// that a key never expires before its TTL. A zero TTL, or one over [`MAX_TTL_MILLIS`], is an
/// invalid-input error. Nothing here overflows.
pub fn normalize_ttl(ttl: Duration) -> Result<u64> {
    if ttl.is_zero() {
        return Err(Error::invalid_input("TTL is zero; omit it for no expiry"));
    }
    let whole = ttl.as_millis();
    let millis = if !ttl.subsec_nanos().is_multiple_of(1_000_000) {
        whole + 1
    } else {
        whole
    };
    if millis > u128::from(MAX_TTL_MILLIS) {
        return Err(Error::invalid_input(format!(
            "TTL of {millis} ms is over the limit of {MAX_TTL_MILLIS} ms"
        )));
    }
    Ok(millis as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use serde_json::json;

    /// The limits as numbers, written out: a change to one is a change to the contract.
    #[test]
    fn the_limits_are_the_contracts_numbers() {
        assert_eq!(MAX_KEY_BYTES, 1024);
        assert_eq!(MAX_KEY_PREFIX_BYTES, 256);
        assert_eq!(MAX_VALUE_DEPTH, 64);
        assert_eq!(MAX_PORTABLE_VALUE_BYTES, 16_777_216);
        assert_eq!(MAX_TTL_MILLIS, 9_007_199_254_740_991);
    }

    /// Empty containers count their own level, in arrays and in objects alike.
    #[test]
    fn empty_containers_count_a_level() {
        let nest = |inner: Value, wrap: fn(Value) -> Value, levels: usize| {
            (0..levels).fold(inner, |v, _| wrap(v))
        };
        let in_array: fn(Value) -> Value = |v| json!([v]);
        let in_object: fn(Value) -> Value = |v| json!({ "k": v });
        assert_eq!(value_depth(&json!([])), 1);
        assert_eq!(value_depth(&json!({})), 1);
        assert_eq!(value_depth(&nest(json!([]), in_array, 63)), 64);
        assert_eq!(value_depth(&nest(json!({}), in_object, 63)), 64);
        assert!(validate_value(&nest(json!([]), in_array, 63)).is_ok());
        assert!(validate_value(&nest(json!([]), in_array, 64)).is_err());
        assert!(validate_value(&nest(json!({}), in_object, 64)).is_err());
        assert!(validate_value(&nest(json!(1), in_object, 65)).is_err());
        assert_eq!(value_depth(&json!([1, [2, [3]], {"a": {"b": []}}])), 4);
    }

    #[test]
    fn key_limits() {
        assert!(validate_key("a").is_ok());
        assert!(validate_key(&"k".repeat(MAX_KEY_BYTES)).is_ok());
        let e = validate_key(&"k".repeat(MAX_KEY_BYTES + 1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidKey);
        assert!(e.to_string().contains("1025 bytes"), "{e}");
        // Multi-byte characters count in bytes: 256 × 4 bytes = 1024 is fine, one more byte is not.
        assert!(validate_key(&"😀".repeat(256)).is_ok());
        assert!(validate_key(&format!("{}a", "😀".repeat(256))).is_err());
        assert_eq!(validate_key("").unwrap_err().kind(), ErrorKind::InvalidKey);
        assert_eq!(
            validate_key("a\0b").unwrap_err().kind(),
            ErrorKind::InvalidKey
        );
        for hostile in [
            "'", "\"", "\\", "%", "_", "*", "?", "[", "]", " ", "\n", "é", "🦀",
        ] {
            assert!(validate_key(hostile).is_ok(), "{hostile:?}");
        }
    }

    #[test]
    fn prefix_limits() {
        assert!(validate_key_prefix("").is_ok());
        assert!(validate_key_prefix(&"p".repeat(256)).is_ok());
        assert_eq!(
            validate_key_prefix(&"p".repeat(257)).unwrap_err().kind(),
            ErrorKind::Configuration
        );
        assert!(validate_key_prefix("a\0").is_err());
    }

    fn nested(depth: usize) -> Value {
        let mut v = json!(1);
        for i in 0..depth {
            v = if i % 2 == 0 {
                json!([v])
            } else {
                json!({ "k": v })
            };
        }
        v
    }

    #[test]
    fn depth_limits() {
        assert_eq!(value_depth(&json!(1)), 0);
        assert_eq!(value_depth(&json!([])), 1);
        assert_eq!(value_depth(&json!({"a": [1, {"b": []}]})), 4);
        assert_eq!(value_depth(&json!({"a": [1, {"b": 2}]})), 3);
        assert_eq!(value_depth(&nested(64)), 64);
        assert!(validate_value(&nested(64)).is_ok());
        let e = validate_value(&nested(65)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
        assert!(e.to_string().contains("65"), "{e}");
        // Far deeper values stop the count early instead of recursing all the way down.
        assert_eq!(value_depth(&nested(500)), MAX_VALUE_DEPTH + 1);
    }

    #[test]
    fn ttl_rules() {
        let ms = Duration::from_millis;
        assert_eq!(normalize_ttl(Duration::from_nanos(1)).unwrap(), 1);
        assert_eq!(normalize_ttl(Duration::from_micros(999)).unwrap(), 1);
        assert_eq!(normalize_ttl(ms(1)).unwrap(), 1);
        assert_eq!(normalize_ttl(Duration::from_micros(1500)).unwrap(), 2);
        assert_eq!(normalize_ttl(Duration::from_secs(3600)).unwrap(), 3_600_000);
        assert_eq!(
            normalize_ttl(Duration::ZERO).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(normalize_ttl(ms(MAX_TTL_MILLIS)).unwrap(), MAX_TTL_MILLIS);
        assert_eq!(
            normalize_ttl(ms(MAX_TTL_MILLIS + 1)).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        // Just over the limit by a fraction of a millisecond rounds up past it.
        assert!(normalize_ttl(ms(MAX_TTL_MILLIS) + Duration::from_nanos(1)).is_err());
        // No overflow at the extreme.
        assert!(normalize_ttl(Duration::MAX).is_err());
    }
}
