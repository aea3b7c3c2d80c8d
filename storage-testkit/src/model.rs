//! The reference model: a plain in-process keyspace that the random operation sequences are
//! checked against.
//!
//! It is written from the contract (`docs/semantics.md`) alone and shares no code with any backend: its LRANGE
//! arithmetic and its glob matcher are separate, deliberately simple implementations.

use serde_json::Value;
use std::collections::BTreeMap;

/// What a model key holds.
#[derive(Debug, Clone)]
pub enum Slot {
    /// A value, and whether it has a TTL (the model never lets one expire; sequences use long TTLs).
    Value(Value, bool),
    /// A list.
    List(Vec<Value>),
}

/// A keyspace with Redis semantics.
#[derive(Debug, Default, Clone)]
pub struct Model {
    /// Every key.
    pub keys: BTreeMap<String, Slot>,
}

/// Redis LRANGE, written as Python-style slicing with inclusive ends.
pub fn range(items: &[Value], start: i64, end: i64) -> Vec<Value> {
    let n = items.len() as i128;
    let resolve = |i: i64| {
        let i = i as i128;
        if i < 0 { n + i } else { i }
    };
    let first = resolve(start).max(0);
    let last = resolve(end).min(n - 1);
    if n == 0 || first > last || first >= n {
        return Vec::new();
    }
    items[first as usize..=last as usize].to_vec()
}

/// Redis LTRIM: the items LRANGE would return; `None` when none remain (the key goes).
pub fn trim(items: &[Value], start: i64, end: i64) -> Option<Vec<Value>> {
    let kept = range(items, start, end);
    (!kept.is_empty()).then_some(kept)
}

/// Glob matching by backtracking over bytes: `*`, `?` (one byte), `[...]` sets with `^`
/// negation and ranges (ends swapped when reversed, compared as signed bytes), and `\` escapes.
pub fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.first() {
        None => text.is_empty(),
        Some(b'*') => (0..=text.len()).any(|skip| glob(&pattern[1..], &text[skip..])),
        Some(b'?') => !text.is_empty() && glob(&pattern[1..], &text[1..]),
        Some(b'[') => {
            let Some(&c) = text.first() else { return false };
            let mut i = 1;
            let negate = pattern.get(i) == Some(&b'^');
            if negate {
                i += 1;
            }
            let mut hit = false;
            while i < pattern.len() && pattern[i] != b']' {
                if pattern[i] == b'\\' && i + 1 < pattern.len() {
                    hit |= pattern[i + 1] == c;
                    i += 2;
                } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' {
                    let (a, b) = (pattern[i] as i8, pattern[i + 2] as i8);
                    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                    hit |= (lo..=hi).contains(&(c as i8));
                    i += 3;
                } else {
                    hit |= pattern[i] == c;
                    i += 1;
                }
            }
            let rest = if i < pattern.len() {
                &pattern[i + 1..]
            } else {
                &[][..]
            };
            hit != negate && glob(rest, &text[1..])
        }
        Some(b'\\') if pattern.len() > 1 => {
            text.first() == Some(&pattern[1]) && glob(&pattern[2..], &text[1..])
        }
        Some(&p) => text.first() == Some(&p) && glob(&pattern[1..], &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn model_range() {
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        assert_eq!(range(&items, 0, -1).len(), 5);
        assert_eq!(range(&items, -2, -1), vec![json!(3), json!(4)]);
        assert!(range(&items, 3, 1).is_empty());
        assert!(range(&[], 0, -1).is_empty());
        assert_eq!(range(&items, -100, 1), vec![json!(0), json!(1)]);
        assert_eq!(range(&items, i64::MIN, i64::MAX).len(), 5);
    }

    #[test]
    fn model_glob() {
        assert!(glob(b"k*", b"k1"));
        assert!(glob(b"*", b""));
        assert!(!glob(b"h?", b"h"));
        assert!(glob(b"[^a]", b"b"));
        assert!(glob(b"a\\*", b"a*"));
    }
}
