//! The `redb` block: `options.path` (required; relative to the config file) and
//! `options.durability`. Parsed at load, before anything opens, so a typo fails the config
//! instead of degrading the role to its fallback.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use storage_core::Result;
use storage_core::config::{BackendConfig, BlockInput, ServerIdentity};

/// The type name this plugin registers.
pub const TYPE_NAME: &str = "redb";

/// The fields of a `type: redb` block besides the common ones.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(description = "An embedded, transactional database file (a runtime plugin).")]
pub struct RedbBlock {
    /// The plugin's options.
    pub options: RedbOptions,
}

/// The plugin's options.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedbOptions {
    /// The database file (relative paths are relative to the config file).
    pub path: String,
    /// `immediate` (default: a commit is on disk when it returns) or `none`.
    #[serde(default)]
    pub durability: DurabilityOption,
}

/// Commit durability.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityOption {
    /// Every commit is persisted before it returns.
    #[default]
    Immediate,
    /// Commits are not persisted until a later immediate one (faster, loses data on a crash).
    None,
}

/// The settings of a `redb` backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedbConfig {
    /// The database file (absolute).
    pub path: PathBuf,
    /// Commit durability.
    pub durability: DurabilityOption,
}

impl RedbConfig {
    /// A file at `path` with immediate durability.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RedbConfig {
            path: path.into(),
            durability: DurabilityOption::Immediate,
        }
    }

    /// Parses a block's own fields.
    pub fn parse(block: &BlockInput<'_>) -> Result<RedbConfig> {
        let b: RedbBlock = block.typed()?;
        if b.options.path.is_empty() {
            return Err(block.error("options.path", "must not be empty"));
        }
        Ok(RedbConfig {
            path: block.resolve_path(&b.options.path),
            durability: b.options.durability,
        })
    }
}

impl BackendConfig for RedbConfig {
    fn type_name(&self) -> &str {
        TYPE_NAME
    }
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
    fn identity(&self) -> Option<ServerIdentity> {
        let file = canonical(&self.path);
        Some(ServerIdentity {
            scheme: TYPE_NAME.to_string(),
            endpoints: [file.display().to_string()].into(),
            scope: String::new(),
            prefixes_nest: false,
        })
    }
}

/// The file's canonical path, through its directory when the file does not exist yet.
fn canonical(path: &Path) -> PathBuf {
    path.canonicalize()
        .ok()
        .or_else(|| {
            let dir = path.parent()?.canonicalize().ok()?;
            Some(dir.join(path.file_name()?))
        })
        .unwrap_or_else(|| path.to_path_buf())
}
