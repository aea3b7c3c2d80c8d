//! Secrets read from files, as container platforms hand them over: a block's `passwordFile`,
//! `urlFile`, `connectionStringFile` or `secretAccessKeyFile` is replaced by the field without
//! `File` holding the file's text, and `$NAME` falls back to the file `$NAME_FILE` names. The
//! text read is recorded so that no error quotes it. Not the expansion of `$NAME` itself
//! (`env.rs`).

use serde_json::Value;
use std::path::Path;
use storage_core::{Error, Result};

use storage_core::config::SECRET_FILE_FIELDS as SECRET_FIELDS;

/// The most a secret file may hold.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// The text of the secret file `file` (relative to `base_dir`), named by `what` in errors: its
/// trailing line ending removed; empty, non-UTF-8 or larger than 64 KiB is an error. A file
/// readable by its group or others is read, with a warning.
pub(crate) fn read_secret_file(file: &Path, base_dir: &Path, what: &str) -> Result<String> {
    use std::io::Read;
    let path = base_dir.join(file);
    let cannot = |e: std::io::Error| {
        Error::config(format!(
            "{what}: cannot read the secret file {}: {e}",
            path.display()
        ))
    };
    let opened = std::fs::File::open(&path).map_err(cannot)?;
    if let Ok(meta) = opened.metadata() {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "{what}: the secret file is readable by its group or others; make it 0600 or 0400"
            );
        }
    }
    let mut bytes = Vec::new();
    opened
        .take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_SECRET_BYTES {
        return Err(Error::config(format!(
            "{what}: the secret file {} holds more than {MAX_SECRET_BYTES} bytes",
            path.display()
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::config(format!(
            "{what}: the secret file {} is not UTF-8 text",
            path.display()
        ))
    })?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.is_empty() {
        return Err(Error::config(format!(
            "{what}: the secret file {} is empty",
            path.display()
        )));
    }
    Ok(text.to_string())
}

/// Replaces every `<secret>File: PATH` in `value` (at `path`) by `<secret>: <the file's text>`,
/// recording each text read in `read` (as `(field path, text)`).
pub(crate) fn inline_secret_files(
    value: &mut Value,
    path: &str,
    base_dir: &Path,
    read: &mut Vec<(String, String)>,
) -> Result<()> {
    match value {
        Value::Object(members) => {
            for field in SECRET_FIELDS {
                let file_field = format!("{field}File");
                let Some(file) = members.remove(&file_field) else {
                    continue;
                };
                let what = format!("{path}.{file_field}");
                if members.contains_key(*field) {
                    return Err(Error::config(format!(
                        "{what}: give {field} or {file_field}, not both"
                    )));
                }
                let Value::String(file) = file else {
                    return Err(Error::config(format!("{what}: expected a file path")));
                };
                let text = read_secret_file(Path::new(&file), base_dir, &what)?;
                read.push((what, text.clone()));
                members.insert((*field).to_string(), Value::String(text));
            }
            for (key, member) in members.iter_mut() {
                inline_secret_files(member, &format!("{path}.{key}"), base_dir, read)?;
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                inline_secret_files(item, &format!("{path}[{i}]"), base_dir, read)?;
            }
        }
        _ => {}
    }
    Ok(())
}
