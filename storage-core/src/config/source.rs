//! Reading a configuration file: YAML or JSON, a `storage:` block or a whole agent.yml,
//! environment references expanded, plugins listed. Step one of the two-step parse.
//!
//! The top-level rule: a map with a `storage` key is an agent.yml and only that key is read
//! (`storage:` left empty means every role takes its default); otherwise the document must be
//! the content of a `storage:` block, a map whose keys are among `cache`, `database` and
//! `plugins`. Anything else, a blank file included, is refused with what was found.

use super::fields::json_type;
use super::{StorageConfig, env::expand_env};
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
        }
    }

    /// Reads a YAML or JSON file. Relative paths in it resolve against its directory.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("cannot read config file {}: {e}", path.display()))
        })?;
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
            serde_json::from_str(&text)
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
        for (key, value) in storage.iter_mut() {
            expand_env(value, &format!("storage.{key}"), lookup)?;
        }
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
                .collect::<Result<_>>()?,
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
    }
}

fn parse_yaml(text: &str) -> Result<Value> {
    match serde_norway::from_str::<Value>(text) {
        Ok(v) => Ok(v),
        Err(first) => {
            // Saiki's examples write `keyPrefix: saiki:cache:`, a plain scalar ending in `:`, which
            // strict YAML rejects. Saiki configurations use that shape, so retry once with
            // such values quoted; if that fails too, report the original error.
            let mended = quote_trailing_colon_scalars(text);
            if mended != text
                && let Ok(v) = serde_norway::from_str::<Value>(&mended)
            {
                return Ok(v);
            }
            Err(Error::config(format!("invalid YAML: {first}")))
        }
    }
}

/// Quotes block-mapping values that are plain scalars ending in `:` (`key: a:b:`).
fn quote_trailing_colon_scalars(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let eol = &line[body.len()..];
        let indent = body.len() - body.trim_start().len();
        let rest = &body[indent..];
        let fixed = rest.split_once(": ").and_then(|(key, value)| {
            let key_ok = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
            let value = value.trim();
            let plain = !value.starts_with(['\'', '"', '{', '[', '|', '>', '&', '*', '!', '#']);
            (key_ok && plain && value.ends_with(':') && !value.contains(" #"))
                .then(|| format!("{}{key}: '{}'", &body[..indent], value.replace('\'', "''")))
        });
        out.push_str(fixed.as_deref().unwrap_or(body));
        out.push_str(eol);
    }
    out
}
