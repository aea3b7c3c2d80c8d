//! The `sqlite` block: where the file is, `options.synchronous` and `options.busyTimeoutMillis`.
//!
//! `path` and `database` (a file name): both given, `path` is the directory and `database` the
//! file in it; only `path`, it is the file; only `database`, the file is `.storage/<database>`;
//! neither, `.storage/storage.db`. Relative paths resolve against the config file's directory.
//! `:memory:` is one in-memory database shared by every connection of the pool.

use schemars::JsonSchema;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use storage_core::Result;
use storage_core::blob::BlobLimits;
use storage_core::config::{BackendConfig, BlockInput, NumOrEnv, ServerIdentity, num};

/// The type name this crate registers.
pub const TYPE_NAME: &str = "sqlite";

/// The longest busy timeout SQLite takes (its argument is an `int` of milliseconds).
pub const MAX_BUSY_TIMEOUT_MILLIS: u64 = i32::MAX as u64;

/// The fields of a `type: sqlite` block besides the common ones.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(
    description = "The embedded database: one file, shared by the processes of one machine."
)]
pub struct SqliteBlock {
    /// The database file; or, with `database`, its directory. `:memory:` for an in-memory
    /// database shared by the pool.
    #[serde(default)]
    pub path: Option<String>,
    /// The file name (in `path`, or in `.storage/`).
    #[serde(default)]
    pub database: Option<String>,
    /// SQLite's own settings.
    #[serde(default)]
    pub options: Option<SqliteOptions>,
    /// The blob role: the largest blob accepted, in bytes.
    #[serde(default)]
    pub max_blob_bytes: Option<u64>,
    /// The blob role: the most bytes held in all.
    #[serde(default)]
    pub max_total_bytes: Option<u64>,
}

/// `options` of a `sqlite` block.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SqliteOptions {
    /// `full` (the default: a committed write survives power loss) or `normal` (survives a
    /// crash of the process; a power loss may lose the last commits).
    #[serde(default)]
    pub synchronous: Option<SqliteSync>,
    /// How long a writer waits for another process's lock, in ms (default 5000, at most
    /// 2147483647).
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub busy_timeout_millis: Option<u64>,
}

/// Where a SQLite database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteLocation {
    /// One in-memory database shared by every connection of the pool.
    Memory,
    /// A file (absolute path).
    File(PathBuf),
}

/// SQLite's `synchronous` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    /// Survives power loss (the default).
    Full,
    /// Survives a process crash; a power loss may lose the last transactions.
    Normal,
}

/// The settings of a `sqlite` backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// The file, or memory.
    pub location: SqliteLocation,
    /// `options.synchronous`.
    pub synchronous: SqliteSync,
    /// `options.busyTimeoutMillis`.
    pub busy_timeout: Duration,
    /// The blob role's limits (`maxBlobBytes`, `maxTotalBytes`).
    pub blob_limits: BlobLimits,
}

impl SqliteConfig {
    /// A file at `path` with default options.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            location: SqliteLocation::File(path.into()),
            synchronous: SqliteSync::Full,
            busy_timeout: Duration::from_millis(5000),
            blob_limits: BlobLimits::default(),
        }
    }

    /// An in-memory database with default options.
    pub fn memory() -> Self {
        SqliteConfig {
            location: SqliteLocation::Memory,
            ..Self::file("")
        }
    }

    /// Parses a block's own fields.
    pub fn parse(block: &BlockInput<'_>) -> Result<SqliteConfig> {
        let b: SqliteBlock = block.typed()?;
        let nonempty = |v: Option<String>, field: &str| match v {
            Some(s) if s.is_empty() => Err(block.error(field, "must not be empty")),
            other => Ok(other),
        };
        let location = match (nonempty(b.path, "path")?, nonempty(b.database, "database")?) {
            (Some(p), None) if p == ":memory:" => SqliteLocation::Memory,
            (None, Some(d)) if d == ":memory:" => SqliteLocation::Memory,
            (Some(p), Some(_)) if p == ":memory:" => {
                return Err(block.error("path", "`:memory:` cannot be combined with `database`"));
            }
            (Some(dir), Some(file)) => SqliteLocation::File(block.resolve_path(dir).join(file)),
            (Some(p), None) => SqliteLocation::File(block.resolve_path(p)),
            (None, Some(file)) => SqliteLocation::File(block.resolve_path(".storage").join(file)),
            (None, None) => SqliteLocation::File(block.resolve_path(".storage/storage.db")),
        };
        let options = b.options.unwrap_or_default();
        let busy = options.busy_timeout_millis.unwrap_or(5000);
        if busy > MAX_BUSY_TIMEOUT_MILLIS {
            return Err(block.error(
                "options.busyTimeoutMillis",
                format!("{busy} is more than SQLite's limit of {MAX_BUSY_TIMEOUT_MILLIS} ms"),
            ));
        }
        Ok(SqliteConfig {
            location,
            synchronous: options.synchronous.unwrap_or(SqliteSync::Full),
            busy_timeout: Duration::from_millis(busy),
            blob_limits: BlobLimits::of_block(block, b.max_blob_bytes, b.max_total_bytes)?,
        })
    }
}

impl BackendConfig for SqliteConfig {
    fn type_name(&self) -> &str {
        TYPE_NAME
    }

    fn describe(&self) -> String {
        match &self.location {
            SqliteLocation::Memory => ":memory:".to_string(),
            SqliteLocation::File(p) => p.display().to_string(),
        }
    }

    /// The file's canonical path: the same file spelled relative, absolute or through a
    /// symbolic link is one identity. An in-memory database is private to its pool.
    fn identity(&self) -> Option<ServerIdentity> {
        match &self.location {
            SqliteLocation::Memory => None,
            SqliteLocation::File(p) => Some(ServerIdentity {
                scheme: TYPE_NAME.to_string(),
                endpoints: [canonical_file(p).display().to_string()].into(),
                scope: String::new(),
                // Namespaces are a column: `app` and `app:` are distinct.
                prefixes_nest: false,
            }),
        }
    }
}

/// The canonical form of a file that may not exist yet: its nearest existing ancestor
/// canonicalised, the rest appended.
fn canonical_file(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            return rest.iter().rev().fold(c, |acc, part| acc.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// The JSON Schema of a `sqlite` block's own fields.
pub(crate) fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(SqliteBlock)).unwrap_or_default()
}

/// Parses and wraps, for the factory.
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_at(fields: serde_json::Value, base: &Path) -> Result<SqliteConfig> {
        let serde_json::Value::Object(map) = fields else {
            unreachable!()
        };
        SqliteConfig::parse(&BlockInput::new("storage.database", map, base))
    }

    fn parse(fields: serde_json::Value) -> Result<SqliteConfig> {
        parse_at(fields, Path::new("/base"))
    }

    #[test]
    fn paths() {
        let loc = |v| parse(v).unwrap().location;
        let file = |p: &str| SqliteLocation::File(PathBuf::from(p));
        assert_eq!(
            loc(json!({"path": ".saiki/saiki.db"})),
            file("/base/.saiki/saiki.db")
        );
        assert_eq!(
            loc(json!({"database": "x.db"})),
            file("/base/.storage/x.db")
        );
        assert_eq!(
            loc(json!({"path": "/abs/dir", "database": "x.db"})),
            file("/abs/dir/x.db")
        );
        assert_eq!(loc(json!({})), file("/base/.storage/storage.db"));
        assert_eq!(loc(json!({"path": ":memory:"})), SqliteLocation::Memory);
        let e = parse(json!({"path": ""})).unwrap_err();
        assert!(
            e.message()
                .starts_with("storage.database.path: must not be empty"),
            "{e}"
        );
    }

    #[test]
    fn options() {
        let s = parse(json!({"options": {"synchronous": "normal", "busyTimeoutMillis": "250"}}))
            .unwrap();
        assert_eq!(s.synchronous, SqliteSync::Normal);
        assert_eq!(s.busy_timeout, Duration::from_millis(250));
        let e = parse(json!({"options": {"synchronous": "off"}})).unwrap_err();
        assert!(
            e.message()
                .starts_with("storage.database.options.synchronous"),
            "{e}"
        );
    }

    /// Regression: a typo in an option was only logged (at a level the CLI does not show).
    #[test]
    fn unknown_option_is_an_error_with_its_path() {
        let e = parse(json!({"options": {"synchronus": "normal"}})).unwrap_err();
        assert!(
            e.message()
                .starts_with("storage.database.options.synchronus: unknown field"),
            "{e}"
        );
    }

    /// Regression: a busy timeout past SQLite's `int` panicked inside rusqlite at connect, and
    /// the role fell back to memory. It is a configuration error now.
    #[test]
    fn busy_timeout_beyond_sqlite_is_refused() {
        let e = parse(json!({"options": {"busyTimeoutMillis": 3_000_000_000u64}})).unwrap_err();
        assert!(
            e.message()
                .starts_with("storage.database.options.busyTimeoutMillis: 3000000000"),
            "{e}"
        );
        parse(json!({"options": {"busyTimeoutMillis": MAX_BUSY_TIMEOUT_MILLIS}})).unwrap();
    }

    #[test]
    fn pathh_is_named_once() {
        let e = parse(json!({"pathh": "x"})).unwrap_err();
        assert!(
            e.message()
                .starts_with("storage.database.pathh: unknown field"),
            "{e}"
        );
    }

    #[test]
    fn identity_is_the_canonical_file() {
        let dir = tempfile::tempdir().unwrap();
        let abs = parse_at(
            json!({"path": dir.path().join("a.db").to_str().unwrap()}),
            dir.path(),
        )
        .unwrap();
        let rel = parse_at(json!({"path": "./sub/../a.db"}), dir.path()).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let rel_existing = parse_at(json!({"path": "sub/../a.db"}), dir.path()).unwrap();
        let (a, r) = (abs.identity().unwrap(), rel_existing.identity().unwrap());
        assert!(a.overlaps(&r), "{a:?} {r:?}");
        assert!(a.overlaps(&rel.identity().unwrap()));
        let other = parse_at(json!({"path": "b.db"}), dir.path()).unwrap();
        assert!(!a.overlaps(&other.identity().unwrap()));
        assert!(SqliteConfig::memory().identity().is_none());
    }
}
