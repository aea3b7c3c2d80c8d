//! JSON (and YAML) documents read strictly, for configuration files and for values typed at the
//! command line: a member written twice in one object is an error naming its path, and an
//! integer that does not fit 64 bits is refused rather than rounded to a float. Not a parser of
//! its own: serde_json and serde_norway parse; this only refuses what they would silently change.
//!
//! serde_json's own `Value` keeps the last of two equal keys, so a file with two `database:`
//! blocks would serve one of them and never mention the other, and `{"a":1,"a":2}` would be
//! stored as `{"a":2}`. It also reads `18446744073709551616` as `1.8446744073709552e19`.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// Parses JSON text as serde_json would, refusing what it would change silently: a member
/// written twice in one object (named by its path, with the parser's line and column), and an
/// integer outside the signed and unsigned 64-bit ranges (which serde_json rounds to a float).
/// Errors quote at most a short excerpt of the text.
///
/// ```
/// use storage_core::json::parse_strict;
/// assert_eq!(parse_strict(r#"{"a": [1, 2.5]}"#).unwrap()["a"][1], 2.5);
/// assert!(parse_strict(r#"{"a": 1, "a": 2}"#).unwrap_err().contains("`a`"));
/// assert!(parse_strict("18446744073709551616").unwrap_err().contains("64 bits"));
/// ```
pub fn parse_strict(text: &str) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = DocumentSeed {
        path: String::new(),
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v))
    .map_err(|e| e.to_string())?;
    if let Some((offset, digits)) = wide_integer(text) {
        return Err(format!(
            "the integer {} at byte {offset} does not fit in 64 bits and would be rounded; \
             write it as a string to keep it exact",
            crate::redact::excerpt(digits, 40)
        ));
    }
    Ok(value)
}

/// The first integer literal in valid JSON `text` outside both 64-bit ranges: its byte offset
/// and digits. Only called on text serde_json has accepted, where a number outside a string is
/// unambiguous.
fn wide_integer(text: &str) -> Option<(usize, &str)> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                let is_float = matches!(bytes.get(i), Some(b'.' | b'e' | b'E'));
                let literal = &text[start..i];
                if !is_float && literal.parse::<i64>().is_err() && literal.parse::<u64>().is_err() {
                    return Some((start, literal));
                }
                while i < bytes.len()
                    && matches!(bytes[i], b'.' | b'e' | b'E' | b'+' | b'-' | b'0'..=b'9')
                {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// A parsed document: the same value serde_json would build, with a member written twice in
/// one object refused (naming its path). Deserialize any self-describing format into it (the
/// configuration's YAML reader does).
pub struct Document(pub Value);

impl<'de> de::Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        DocumentSeed {
            path: String::new(),
        }
        .deserialize(deserializer)
        .map(Document)
    }
}

/// Reads one value at `path` (the members and indices above it, for error messages).
struct DocumentSeed {
    path: String,
}

impl DocumentSeed {
    fn child(&self, step: &str) -> DocumentSeed {
        let path = if self.path.is_empty() || step.starts_with('[') {
            format!("{}{step}", self.path)
        } else {
            format!("{}.{step}", self.path)
        };
        DocumentSeed { path }
    }
}

impl<'de> DeserializeSeed<'de> for DocumentSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DocumentSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML or JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // As serde_json's `Value`: a non-finite float (`.inf`, `.nan` in YAML) becomes null.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element_seed(self.child(&format!("[{}]", items.len())))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = self.child(&key);
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key `{}`: a member may appear once in an object (the second would silently replace the first)",
                    crate::redact::excerpt(&child.path, 200)
                )));
            }
            let value = map.next_value_seed(child)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}
