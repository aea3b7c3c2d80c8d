//! Reading a configuration: a YAML or JSON file (at most [`MAX_CONFIG_BYTES`], nested at most
//! 64 deep, no key written twice), and `$VAR` / `${VAR}` references in its `storage:` block
//! expanded from the environment. Step one of the two-step parse; it yields a
//! [`ConfigSource`], which storage-core types with a registry (step two). Not the top-level
//! rule or any field: those are storage-core's and the backends'.
//!
//! ```
//! use storage_manager::config_file;
//!
//! let yaml = "storage:\n  database:\n    type: in-memory\n    keyPrefix: saiki:chat:\n";
//! let source = config_file::from_yaml_str(yaml, "/srv/app".as_ref()).unwrap();
//! let config = source.resolve(&storage_manager::builtin_registry()).unwrap();
//! assert_eq!(config.database.primary.common.key_prefix, "saiki:chat:");
//! ```

mod env;
mod secret_files;
mod yaml;
mod yaml_scan;

pub use env::expand_env;
pub use yaml::MAX_CONFIG_BYTES;

use serde_json::Value;
use std::path::{Path, PathBuf};
use storage_core::config::ConfigSource;
use storage_core::{Error, Result};
use yaml::{check_size, parse_yaml};

/// Reads a YAML or JSON file (JSON by its `.json` extension), with the process environment.
/// Relative paths in it resolve against its directory.
pub fn from_file(path: &Path) -> Result<ConfigSource> {
    let text = read_limited(path)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let doc = if is_json {
        storage_core::json::parse_strict(&text)
            .map_err(|e| Error::config(format!("{}: invalid JSON: {e}", path.display())))?
    } else {
        parse_yaml(&text)
            .map_err(|e| Error::config(format!("{}: {}", path.display(), e.message())))?
    };
    from_document_with_env(doc, &dir, &|name| std::env::var(name).ok())
}

/// Parses YAML (JSON is YAML too) text, with the process environment; relative paths resolve
/// against `base_dir`.
pub fn from_yaml_str(text: &str, base_dir: &Path) -> Result<ConfigSource> {
    from_yaml_str_with_env(text, base_dir, &|name| std::env::var(name).ok())
}

/// As [`from_yaml_str`], reading variables through `lookup`.
pub fn from_yaml_str_with_env(
    text: &str,
    base_dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<ConfigSource> {
    from_document_with_env(parse_yaml(text)?, base_dir, lookup)
}

/// From a parsed document: its `storage:` block taken by the top-level rule, then every
/// string in it expanded through `lookup`. The values read are handed to the source, whose
/// errors never quote them.
pub fn from_document_with_env(
    doc: Value,
    base_dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<ConfigSource> {
    let mut storage = ConfigSource::storage_block(doc)?;
    let read = std::cell::RefCell::new(Vec::new());
    let file_error = std::cell::RefCell::new(None);
    let recording = |name: &str| {
        // Unset, `$NAME` falls back to the file `$NAME_FILE` names (the container convention).
        let value = lookup(name).or_else(|| {
            let file = lookup(&format!("{name}_FILE"))?;
            let what = format!("${name}_FILE");
            secret_files::read_secret_file(Path::new(&file), base_dir, &what)
                .map_err(|e| *file_error.borrow_mut() = Some(e))
                .ok()
        });
        if let Some(v) = &value {
            read.borrow_mut().push((name.to_owned(), v.clone()));
        }
        value
    };
    for (key, value) in storage.iter_mut() {
        expand_env(value, &format!("storage.{key}"), &recording)
            .map_err(|e| file_error.borrow_mut().take().unwrap_or(e))?;
    }
    let mut read = read.into_inner();
    for (key, value) in storage.iter_mut() {
        secret_files::inline_secret_files(value, &format!("storage.{key}"), base_dir, &mut read)?;
    }
    ConfigSource::from_block(storage, base_dir, read)
}

/// Reads at most [`MAX_CONFIG_BYTES`] (and one byte more, to tell a larger file), so that a
/// huge file, or a device that never ends, is refused without being read whole.
fn read_limited(path: &Path) -> Result<String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| {
        Error::config(format!("cannot read config file {}: {e}", path.display()))
    };
    let file = std::fs::File::open(path).map_err(cannot)?;
    if let Ok(meta) = file.metadata()
        && meta.is_file()
    {
        check_size(usize::try_from(meta.len()).unwrap_or(usize::MAX))
            .map_err(|e| Error::config(format!("{}: {}", path.display(), e.message())))?;
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    check_size(bytes.len())
        .map_err(|e| Error::config(format!("{}: {}", path.display(), e.message())))?;
    String::from_utf8(bytes).map_err(|e| {
        Error::config(format!(
            "cannot read config file {}: not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;
