//! Reading a configuration file: YAML or JSON, a `storage:` block or a whole agent.yml,
//! environment references expanded, plugins listed. Step one of the two-step parse.
//!
//! The top-level rule: a map with a `storage` key is an agent.yml and only that key is read
//! (`storage:` left empty means every role takes its default); otherwise the document must be
//! the content of a `storage:` block, a map whose keys are among `cache`, `database` and
//! `plugins`. Anything else, a blank file included, is refused with what was found.

use super::StorageConfig;
use super::env::{expand_env, hide_env_values};
use super::fields::json_type;
use super::yaml::{MAX_CONFIG_BYTES, check_size, parse_yaml};
use crate::Registry;
use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::fmt;
use std::path::{Path, PathBuf};

const ROLE_KEYS: [&str; 3] = ["cache", "database", "plugins"];

/// A parsed configuration, before its blocks are typed (step one of two).
#[derive(Clone)]
pub struct ConfigSource {
    storage: Map<String, Value>,
    base_dir: PathBuf,
    plugins: Vec<PathBuf>,
    /// The environment variables the block read, with their values: taken out of errors.
    from_env: Vec<(String, String)>,
}

impl fmt::Debug for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The raw block may hold passwords; show only its shape.
        f.debug_struct("ConfigSource")
            .field("roles", &self.storage.keys().collect::<Vec<_>>())
            .field("base_dir", &self.base_dir)
            .field("plugins", &self.plugins)
            .finish()
    }
}

impl ConfigSource {
    /// The embedded default: no file, paths relative to `base_dir` (the current directory).
    pub fn embedded_default(base_dir: &Path) -> Self {
        ConfigSource {
            storage: Map::new(),
            base_dir: base_dir.to_path_buf(),
            plugins: Vec::new(),
            from_env: Vec::new(),
        }
    }

    /// Reads a YAML or JSON file. Relative paths in it resolve against its directory.
    pub fn from_file(path: &Path) -> Result<Self> {
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
            crate::json::parse_strict(&text)
                .map_err(|e| Error::config(format!("{}: invalid JSON: {e}", path.display())))?
        } else {
            parse_yaml(&text)
                .map_err(|e| Error::config(format!("{}: {}", path.display(), e.message())))?
        };
        Self::from_document(doc, &dir)
    }

    /// Parses YAML (JSON is YAML too) text; relative paths resolve against `base_dir`.
    pub fn from_yaml_str(text: &str, base_dir: &Path) -> Result<Self> {
        Self::from_document(parse_yaml(text)?, base_dir)
    }

    /// Parses YAML text as [`ConfigSource::from_yaml_str`], reading variables through `lookup`.
    pub fn from_yaml_str_with_env(
        text: &str,
        base_dir: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        Self::from_document_with_env(parse_yaml(text)?, base_dir, lookup)
    }

    /// From a parsed document, with the process environment.
    pub fn from_document(doc: Value, base_dir: &Path) -> Result<Self> {
        Self::from_document_with_env(doc, base_dir, &|name| std::env::var(name).ok())
    }

    /// From a parsed document, reading variables through `lookup`.
    pub fn from_document_with_env(
        doc: Value,
        base_dir: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let mut storage = match doc {
            // A whole agent.yml: only its `storage:` block is read.
            Value::Object(mut top) if top.contains_key("storage") => {
                match top.remove("storage").unwrap_or(Value::Null) {
                    Value::Null => Map::new(),
                    Value::Object(block) => block,
                    other => {
                        return Err(Error::config(format!(
                            "storage: expected a map with `cache`, `database` and `plugins`, found {}",
                            json_type(&other)
                        )));
                    }
                }
            }
            // The content of a `storage:` block.
            Value::Object(top)
                if !top.is_empty() && top.keys().all(|k| ROLE_KEYS.contains(&k.as_str())) =>
            {
                top
            }
            Value::Object(top) if !top.is_empty() => {
                let found: Vec<String> = top
                    .keys()
                    .filter(|k| !ROLE_KEYS.contains(&k.as_str()))
                    .map(|k| format!("`{k}`"))
                    .collect();
                return Err(Error::config(format!(
                    "{}: unknown top-level field; expected `storage` (or the content of a storage block: `cache`, `database`, `plugins`)",
                    found.join(", ")
                )));
            }
            Value::Null | Value::Object(_) => {
                return Err(Error::config(
                    "the configuration is empty; write a `storage:` block (`storage: {}` for every default), or give no file for the embedded default",
                ));
            }
            other => {
                return Err(Error::config(format!(
                    "expected a map with `storage` at the top level, found {}",
                    json_type(&other)
                )));
            }
        };
        // Check the shape before expanding, so that a stray section is reported as such rather
        // than by an unset variable inside it.
        for key in storage.keys() {
            if !ROLE_KEYS.contains(&key.as_str()) {
                return Err(Error::config(format!(
                    "storage.{key}: unknown field `{key}`, expected one of `cache`, `database`, `plugins`"
                )));
            }
        }
        let read = std::cell::RefCell::new(Vec::new());
        let recording = |name: &str| {
            let value = lookup(name);
            if let Some(v) = &value {
                read.borrow_mut().push((name.to_owned(), v.clone()));
            }
            value
        };
        for (key, value) in storage.iter_mut() {
            expand_env(value, &format!("storage.{key}"), &recording)?;
        }
        let from_env = read.into_inner();
        let hide = |e: Error| e.map_message(|m| hide_env_values(m, &from_env));
        let plugins = match storage.get("plugins") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) if !s.is_empty() => Ok(base_dir.join(s)),
                    other => Err(Error::config(format!(
                        "storage.plugins[{i}]: expected a library path, found {}",
                        json_type(other)
                    ))),
                })
                .collect::<Result<_>>()
                .map_err(hide)?,
            Some(other) => {
                return Err(Error::config(format!(
                    "storage.plugins: expected a list of library paths, found {}",
                    json_type(other)
                )));
            }
        };
        Ok(ConfigSource {
            storage,
            base_dir: base_dir.to_path_buf(),
            plugins,
            from_env,
        })
    }

    /// The plugin libraries to load before [`ConfigSource::resolve`], as absolute paths.
    pub fn plugins(&self) -> &[PathBuf] {
        &self.plugins
    }

    /// The directory relative paths resolve against.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// Step two: types every role's block with the factories in `registry`, settling
    /// synonyms, defaults and fallback chains.
    pub fn resolve(&self, registry: &Registry) -> Result<StorageConfig> {
        super::resolve::resolve(&self.storage, &self.base_dir, &self.plugins, registry)
            .map_err(|e| e.map_message(|m| hide_env_values(m, &self.from_env)))
    }
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
