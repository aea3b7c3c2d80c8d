//! Turning configuration text into a document: the size limit, the first pass over libyaml's
//! events (nesting depth, duplicate keys), the parse, and the one repair Saiki's files need.
//! Not the top-level rules or the fields: those are `source.rs` and the factories'.

use super::yaml_scan::{MAX_DEPTH, ScanError, scan};
use serde_json::Value;
use std::borrow::Cow;
use storage_core::json::Document;
use storage_core::{Error, Result};

/// The largest configuration file read, in bytes (1 MiB). An agent.yml is a few kilobytes;
/// a larger file is refused before it is parsed, so a stray multi-megabyte file costs neither
/// time nor memory.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// How many lines the trailing-colon repair may quote in one file.
const MAX_REPAIRS: usize = 64;

/// Refuses text longer than [`MAX_CONFIG_BYTES`].
pub(super) fn check_size(len: usize) -> Result<()> {
    if len > MAX_CONFIG_BYTES {
        return Err(Error::config(format!(
            "the configuration is {len} bytes, over the limit of {MAX_CONFIG_BYTES} bytes (1 MiB); \
             a storage configuration is a few kilobytes"
        )));
    }
    Ok(())
}

/// Parses YAML (JSON is YAML too) into a document: at most [`MAX_CONFIG_BYTES`], nested at most
/// [`MAX_DEPTH`] deep, no key written twice in one map.
pub(super) fn parse_yaml(text: &str) -> Result<Value> {
    check_size(text.len())?;
    let mut current = Cow::Borrowed(text);
    let mut first_error = None;
    for _ in 0..=MAX_REPAIRS {
        scan(&current).map_err(|e| match e {
            ScanError::TooDeep { line, column } => Error::config(format!(
                "invalid YAML: nested deeper than {MAX_DEPTH} levels at line {line} column {column}"
            )),
            ScanError::DuplicateKey {
                path,
                first_line,
                line,
            } => Error::config(format!(
                "invalid YAML: `{path}` is written twice in one map (lines {first_line} and {line}); \
                 a key may appear once, or the second would silently replace the first"
            )),
        })?;
        match serde_norway::from_str::<Document>(&current) {
            Ok(Document(value)) => return Ok(value),
            Err(e) => {
                let mended = e
                    .location()
                    .and_then(|at| quote_value_ending_at(&current, at.index()));
                let first = first_error.get_or_insert(e);
                // Saiki's examples write `keyPrefix: saiki:cache:`, a plain scalar ending in `:`,
                // which strict YAML rejects at that `:`. Only a line the parser rejected there is
                // quoted, so a quoted or block scalar is never touched; if the mended text fails
                // elsewhere, the first error is the one reported.
                match mended {
                    Some(m) => current = Cow::Owned(m),
                    None => return Err(Error::config(format!("invalid YAML: {first}"))),
                }
            }
        }
    }
    let first = first_error.map(|e| e.to_string()).unwrap_or_default();
    Err(Error::config(format!("invalid YAML: {first}")))
}

/// Where the parser stopped at a `:` that ends its line, and that line is `key: value:` with a
/// plain value, the line with that value single-quoted. `None` for anything else.
fn quote_value_ending_at(text: &str, index: usize) -> Option<String> {
    let bytes = text.as_bytes();
    if bytes.get(index) != Some(&b':') {
        return None;
    }
    let line_end = text[index..].find('\n').map_or(text.len(), |i| index + i);
    if !text[index + 1..line_end].trim().is_empty() {
        return None;
    }
    let line_start = text[..index].rfind('\n').map_or(0, |i| i + 1);
    let body = text[line_start..line_end].trim_end();
    let indent = body.len() - body.trim_start().len();
    let (key, value) = body[indent..].split_once(": ")?;
    let key_ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    let value = value.trim();
    let plain = !value.starts_with([
        '\'', '"', '{', '[', '|', '>', '&', '*', '!', '#', '%', '@', '`',
    ]);
    if !(key_ok && plain && value.ends_with(':') && !value.contains(" #")) {
        return None;
    }
    let line = format!("{}{key}: '{}'", &body[..indent], value.replace('\'', "''"));
    Some(format!(
        "{}{line}{}",
        &text[..line_start],
        &text[line_end..]
    ))
}
