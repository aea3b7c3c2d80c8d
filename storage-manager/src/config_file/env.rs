//! `$VAR` / `${VAR}` expansion on the parsed `storage:` block. Not the hiding of the values it
//! read from errors: that is storage-core's, which the resolved configuration keeps doing.

use serde_json::Value;
use storage_core::{Error, Result};

/// Expands environment references in every string of `value`, in place. `path` names `value`
/// in errors (`storage.database`), and `lookup` reads a variable.
///
/// `${NAME}` and `$NAME` are replaced by the variable's value, `$$` is a literal `$`, and a `$`
/// followed by anything else is a literal `$`. A variable that is not set is an error that names
/// the variable and the field path. Object keys are never expanded.
pub fn expand_env(
    value: &mut Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    match value {
        Value::String(s) if s.contains('$') => {
            *s = expand_str(s, path, lookup)?;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_env(item, &format!("{path}[{i}]"), lookup)?;
            }
        }
        Value::Object(members) => {
            for (k, v) in members.iter_mut() {
                expand_env(v, &format!("{path}.{k}"), lookup)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn expand_str(s: &str, path: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(braced) = after.strip_prefix('{') {
            let Some(close) = braced.find('}') else {
                // The value may be a password: say where, not what.
                return Err(Error::config(format!(
                    "{path}: unclosed \"${{\" (a `${{` without its `}}`; write `$$` for a literal `$`)"
                )));
            };
            let name = &braced[..close];
            if name.is_empty()
                || !name.starts_with(is_name_start)
                || !name.chars().all(is_name_char)
            {
                return Err(Error::config(format!(
                    "{path}: a `${{...}}` reference must hold a variable name (letters, digits and `_`, not starting with a digit)"
                )));
            }
            out.push_str(&var(name, path, lookup)?);
            rest = &braced[close + 1..];
        } else if after.starts_with(is_name_start) {
            let end = after.find(|c| !is_name_char(c)).unwrap_or(after.len());
            out.push_str(&var(&after[..end], path, lookup)?);
            rest = &after[end..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn var(name: &str, path: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    lookup(name)
        .ok_or_else(|| Error::config(format!("{path}: environment variable {name} is not set")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db.local".into()),
            "PORT" => Some("5432".into()),
            "PW" => Some("p@ss$word".into()),
            _ => None,
        }
    }

    fn expand(v: Value) -> Result<Value> {
        let mut v = v;
        expand_env(&mut v, "storage", &env)?;
        Ok(v)
    }

    #[test]
    fn expands() {
        let v = expand(json!({
            "a": "$HOST", "b": "${PORT}", "c": "db://${HOST}:${PORT}/x",
            "d": "cost $$5", "e": "a $ b", "f": "$", "g": ["$PW"], "h": 7, "$HOST": "key",
            "i": "x$HOST-y"
        }))
        .unwrap();
        assert_eq!(v["a"], "db.local");
        assert_eq!(v["b"], "5432");
        assert_eq!(v["c"], "db://db.local:5432/x");
        assert_eq!(v["d"], "cost $5");
        assert_eq!(v["e"], "a $ b");
        assert_eq!(v["f"], "$");
        // A value's own `$` is not expanded again.
        assert_eq!(v["g"][0], "p@ss$word");
        assert_eq!(v["h"], 7);
        assert_eq!(v["$HOST"], "key");
        assert_eq!(v["i"], "xdb.local-y");
    }

    #[test]
    fn missing_variable_names_variable_and_path() {
        let e = expand(json!({"database": {"password": "$NOPE"}})).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("NOPE"), "{msg}");
        assert!(msg.contains("storage.database.password"), "{msg}");
        let e = expand(json!({"x": ["ok", "${NOPE2}"]})).unwrap_err();
        assert!(e.to_string().contains("storage.x[1]"), "{e}");
    }

    #[test]
    fn unclosed_reference_does_not_echo_the_value() {
        let e = expand(json!({"database": {"password": "pa${ss-hunter2"}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("storage.database.password"), "{e}");
        assert!(e.contains("unclosed"), "{e}");
        assert!(!e.contains("hunter2") && !e.contains("pa$"), "{e}");
    }

    #[test]
    fn malformed_references() {
        assert!(expand(json!({"x": "${HOST"})).is_err());
        assert!(expand(json!({"x": "${1X}"})).is_err());
        assert!(expand(json!({"x": "${}"})).is_err());
    }
}
