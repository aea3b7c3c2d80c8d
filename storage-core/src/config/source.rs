//! A configuration document before its blocks are typed: the top-level rule, the plugin list,
//! and step two of the two-step parse ([`ConfigSource::resolve`]). Not reading files, YAML or
//! the environment: that is the manager's (`storage_manager::config_file`), which hands this
//! a parsed document and the variables it expanded.
//!
//! The top-level rule: a map with a `storage` key is an agent.yml and only that key is read
//! (`storage:` left empty means every role takes its default); otherwise the document must be
//! the content of a `storage:` block, a map whose keys are among `cache`, `database` and
//! `plugins`. Anything else, a blank file included, is refused with what was found.

use super::StorageConfig;
use super::fields::json_type;
use crate::Registry;
use crate::error::{Error, Result};
use crate::redact::hide_env_values;
use serde_json::{Map, Value};
use std::fmt;
use std::path::{Path, PathBuf};

const ROLE_KEYS: [&str; 4] = ["cache", "database", "blob", "plugins"];

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

    /// From a parsed document (JSON, or YAML read into JSON), without environment expansion;
    /// relative paths resolve against `base_dir`.
    ///
    /// ```
    /// use storage_core::config::ConfigSource;
    /// use storage_core::serde_json::json;
    ///
    /// let doc = json!({ "storage": { "plugins": ["libkv.so"] } });
    /// let source = ConfigSource::from_document(doc, "/srv/app".as_ref()).unwrap();
    /// assert_eq!(source.plugins(), ["/srv/app/libkv.so".as_ref() as &std::path::Path]);
    /// ```
    pub fn from_document(doc: Value, base_dir: &Path) -> Result<Self> {
        Self::from_block(Self::storage_block(doc)?, base_dir, Vec::new())
    }

    /// The `storage:` block of a parsed document, by the top-level rule, its keys checked
    /// (so that a stray section is reported as such, before anything inside it is read).
    pub fn storage_block(doc: Value) -> Result<Map<String, Value>> {
        let storage = match doc {
            // A whole agent.yml: only its `storage:` block is read.
            Value::Object(mut top) if top.contains_key("storage") => {
                match top.remove("storage").unwrap_or(Value::Null) {
                    Value::Null => Map::new(),
                    Value::Object(block) => block,
                    other => {
                        return Err(Error::config(format!(
                            "storage: expected a map with `cache`, `database`, `blob` and `plugins`, found {}",
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
                    "{}: unknown top-level field; expected `storage` (or the content of a storage block: `cache`, `database`, `blob`, `plugins`)",
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
                    "storage.{key}: unknown field `{key}`, expected one of `cache`, `database`, `blob`, `plugins`"
                )));
            }
        }
        Ok(storage)
    }

    /// From a `storage:` block ([`ConfigSource::storage_block`]) whose environment references
    /// are expanded; `from_env` lists the variables read and their values, which every error
    /// this source gives replaces with `(the value of $NAME)`.
    pub fn from_block(
        storage: Map<String, Value>,
        base_dir: &Path,
        from_env: Vec<(String, String)>,
    ) -> Result<Self> {
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

    /// The same source with `fields` set in the primary block of `role` (which must be a map):
    /// how a test harness varies one setting of a block it was given, such as a blob store's
    /// limits, without editing its text.
    pub fn with_fields(&self, role: super::Role, fields: Map<String, Value>) -> Result<Self> {
        let mut out = self.clone();
        match out.storage.get_mut(role.as_str()) {
            Some(Value::Object(block)) => {
                block.extend(fields);
                Ok(out)
            }
            _ => Err(Error::config(format!(
                "storage.{role}: no block (a map) to set {:?} in",
                fields.keys().collect::<Vec<_>>()
            ))),
        }
    }

    /// Step two: types every role's block with the factories in `registry`, settling
    /// synonyms, defaults and fallback chains.
    pub fn resolve(&self, registry: &Registry) -> Result<StorageConfig> {
        super::resolve::resolve(&self.storage, &self.base_dir, &self.plugins, registry)
            .map_err(|e| e.map_message(|m| hide_env_values(m, &self.from_env)))
    }
}
