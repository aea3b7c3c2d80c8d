//! The configuration, as `CONFIG.md` defines it.
//!
//! Parsing runs in two steps, so that plugins can add types before blocks are typed:
//!
//! 1. [`ConfigSource`] reads the file (YAML or JSON; a `storage:` block or a whole agent.yml),
//!    expands environment references on the `storage:` block only, and lists `plugins`.
//! 2. [`ConfigSource::resolve`] parses each role's block by its type, using a [`TypeNames`]
//!    (the registry) to learn which types exist, and yields a [`StorageConfig`] in which
//!    synonyms, defaults, fallback chains and relative paths are settled.
//!
//! Every error names its field path, such as `storage.database.pathh`.
//!
//! ```
//! use storage_core::config::{ConfigSource, BuiltinTypes};
//! let yaml = "storage:\n  database:\n    type: sqlite\n    path: ./data/app.db\n";
//! let source = ConfigSource::from_yaml_str(yaml, "/srv/app".as_ref()).unwrap();
//! let config = source.resolve(&BuiltinTypes).unwrap();
//! assert_eq!(config.database.primary.type_name, "sqlite");
//! assert_eq!(config.cache.primary.type_name, "in-memory");
//! ```

mod blocks;
mod env;

pub use blocks::{
    MemoryBlock, PluginBlock, PoolBlock, PostgresBlock, RedisBlock, Secret, SecretUrl, SqliteBlock,
};
pub use env::expand_env;

use crate::error::{Error, Result};
use crate::limits::validate_key_prefix;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The two roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Fast, ephemeral, with TTLs.
    Cache,
    /// Durable, with lists.
    Database,
}

impl Role {
    /// `cache` or `database`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Cache => "cache",
            Role::Database => "database",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The canonical names of the built-in types.
pub mod types {
    /// The memory backend.
    pub const MEMORY: &str = "in-memory";
    /// The SQLite backend.
    pub const SQLITE: &str = "sqlite";
    /// The PostgreSQL backend.
    pub const POSTGRES: &str = "postgresql";
    /// The Redis backend.
    pub const REDIS: &str = "redis";
}

/// What the parser needs to know about registered types.
pub trait TypeNames {
    /// The canonical name for `name` (an alias resolves to its canonical name), or `None`.
    fn canonical_type(&self, name: &str) -> Option<String>;
    /// Every name accepted, for the "unknown type" error.
    fn known_types(&self) -> Vec<String>;
}

/// The four built-in types and their aliases, for parsing without a registry.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinTypes;

impl TypeNames for BuiltinTypes {
    fn canonical_type(&self, name: &str) -> Option<String> {
        builtin_canonical(name).map(str::to_string)
    }
    fn known_types(&self) -> Vec<String> {
        [
            "in-memory",
            "memory",
            "sqlite",
            "postgresql",
            "postgres",
            "redis",
        ]
        .map(String::from)
        .to_vec()
    }
}

fn builtin_canonical(name: &str) -> Option<&'static str> {
    match name {
        "in-memory" | "memory" => Some(types::MEMORY),
        "sqlite" => Some(types::SQLITE),
        "postgresql" | "postgres" => Some(types::POSTGRES),
        "redis" => Some(types::REDIS),
        _ => None,
    }
}

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
        let storage = match doc {
            Value::Null => Value::Object(Map::new()),
            // A whole agent.yml: only its `storage:` block is read.
            Value::Object(mut top) if top.contains_key("storage") => {
                match top.remove("storage").unwrap_or(Value::Null) {
                    Value::Null => Value::Object(Map::new()),
                    other => other,
                }
            }
            other => other,
        };
        if !storage.is_object() {
            return Err(Error::config(format!(
                "storage: expected a map with cache, database and plugins, found {}",
                json_type(&storage)
            )));
        }
        let Value::Object(mut storage) = storage else {
            unreachable!("checked above")
        };
        // Check the shape before expanding, so that a stray section is reported as such rather
        // than by an unset variable inside it.
        for key in storage.keys() {
            if !matches!(key.as_str(), "cache" | "database" | "plugins") {
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

    /// Step two: types every role's block, settles synonyms, defaults and fallback chains.
    pub fn resolve(&self, types: &dyn TypeNames) -> Result<StorageConfig> {
        let cx = Cx {
            types,
            base_dir: &self.base_dir,
        };
        let cache = cx.role(Role::Cache, self.storage.get("cache"))?;
        let database = cx.role(Role::Database, self.storage.get("database"))?;
        Ok(StorageConfig {
            cache,
            database,
            plugins: self.plugins.clone(),
            base_dir: self.base_dir.clone(),
        })
    }
}

fn parse_yaml(text: &str) -> Result<Value> {
    match serde_norway::from_str::<Value>(text) {
        Ok(v) => Ok(v),
        Err(first) => {
            // The seed writes `keyPrefix: saiki:cache:`, a plain scalar ending in `:`, which
            // strict YAML rejects. CONFIG.md requires that shape to load, so retry once with
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

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// A whole, resolved configuration.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// The cache role.
    pub cache: RoleConfig,
    /// The database role.
    pub database: RoleConfig,
    /// Plugin libraries, as absolute paths.
    pub plugins: Vec<PathBuf>,
    /// The directory relative paths resolved against.
    pub base_dir: PathBuf,
}

impl StorageConfig {
    /// The role's configuration.
    pub fn role(&self, role: Role) -> &RoleConfig {
        match role {
            Role::Cache => &self.cache,
            Role::Database => &self.database,
        }
    }

    /// The role's configuration, mutably.
    pub fn role_mut(&mut self, role: Role) -> &mut RoleConfig {
        match role {
            Role::Cache => &mut self.cache,
            Role::Database => &mut self.database,
        }
    }

    /// The JSON Schema of a config file's `storage:` block, for editors.
    pub fn json_schema() -> Value {
        let schema = schemars::schema_for!(blocks::StorageBlockSchema);
        serde_json::to_value(schema).unwrap_or(Value::Null)
    }
}

/// One role: the declared backend and its fallback chain.
#[derive(Debug, Clone)]
pub struct RoleConfig {
    /// The backend the config names.
    pub primary: BackendSpec,
    /// Tried in order when the primary cannot connect. Empty turns fallback off.
    pub fallback: Vec<BackendSpec>,
}

impl RoleConfig {
    /// The primary, then each fallback.
    pub fn chain(&self) -> impl Iterator<Item = &BackendSpec> {
        std::iter::once(&self.primary).chain(self.fallback.iter())
    }
}

/// One backend, fully resolved.
#[derive(Debug, Clone)]
pub struct BackendSpec {
    /// The canonical type name.
    pub type_name: String,
    /// Where it came from in the config, such as `storage.database.fallback[0]`.
    pub path: String,
    /// Fields every backend has.
    pub common: CommonSettings,
    /// Fields of its type.
    pub settings: BackendSettings,
}

impl BackendSpec {
    /// A spec with default common settings, for building a backend in code.
    pub fn new(type_name: &str, settings: BackendSettings) -> Self {
        BackendSpec {
            type_name: type_name.to_string(),
            path: "storage".to_string(),
            common: CommonSettings::default(),
            settings,
        }
    }

    /// The same spec under another namespace.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.common.key_prefix = prefix.into();
        self
    }
}

impl fmt::Display for BackendSpec {
    /// A one-line description that never shows a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.type_name)?;
        match &self.settings {
            BackendSettings::Memory | BackendSettings::Plugin(_) => Ok(()),
            BackendSettings::Sqlite(s) => match &s.location {
                SqliteLocation::Memory => f.write_str(" (:memory:)"),
                SqliteLocation::File(p) => write!(f, " ({})", p.display()),
            },
            BackendSettings::Postgres(p) => match &p.target {
                PgTarget::Url(u) => write!(f, " ({u})"),
                PgTarget::Host { host, port, .. } => write!(f, " ({host}:{port})"),
            },
            BackendSettings::Redis(r) => match &r.target {
                RedisTarget::Url(u) => write!(f, " ({u})"),
                RedisTarget::Host { host, port, .. } => write!(f, " ({host}:{port})"),
            },
        }
    }
}

/// Settings every backend shares, with synonyms settled and defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommonSettings {
    /// The namespace.
    pub key_prefix: String,
    /// Connections kept when idle.
    pub pool_min: u32,
    /// Pool size.
    pub pool_max: u32,
    /// Longest wait for a pooled connection.
    pub acquire_timeout: Duration,
    /// Idle connections close after this long.
    pub idle_timeout: Duration,
    /// Longest time to open one connection.
    pub connect_timeout: Duration,
    /// Connect retries after the first attempt.
    pub max_retries: u32,
    /// First retry delay.
    pub retry_delay: Duration,
    /// Longest time for any one operation.
    pub operation_timeout: Duration,
}

impl Default for CommonSettings {
    fn default() -> Self {
        CommonSettings {
            key_prefix: String::new(),
            pool_min: 0,
            pool_max: 10,
            acquire_timeout: Duration::from_millis(5000),
            idle_timeout: Duration::from_millis(30000),
            connect_timeout: Duration::from_millis(5000),
            max_retries: 3,
            retry_delay: Duration::from_millis(100),
            operation_timeout: Duration::from_millis(10000),
        }
    }
}

/// The settings of each type.
#[derive(Debug, Clone)]
pub enum BackendSettings {
    /// `in-memory`: nothing beyond the common fields.
    Memory,
    /// `sqlite`.
    Sqlite(SqliteSettings),
    /// `postgresql`.
    Postgres(PostgresSettings),
    /// `redis`.
    Redis(RedisSettings),
    /// A plugin's type.
    Plugin(PluginSettings),
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteSync {
    /// Survives power loss (the default).
    Full,
    /// Survives a process crash; a power loss may lose the last transactions.
    Normal,
}

/// `type: sqlite`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteSettings {
    /// The file, or memory.
    pub location: SqliteLocation,
    /// `options.synchronous`.
    pub synchronous: SqliteSync,
    /// `options.busyTimeoutMillis`: how long a writer waits for another process's lock.
    pub busy_timeout: Duration,
}

impl SqliteSettings {
    /// A file at `path` with default options.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        SqliteSettings {
            location: SqliteLocation::File(path.into()),
            synchronous: SqliteSync::Full,
            busy_timeout: Duration::from_millis(5000),
        }
    }
}

/// How to reach a PostgreSQL server.
#[derive(Debug, Clone)]
pub enum PgTarget {
    /// A connection URL.
    Url(SecretUrl),
    /// Discrete fields.
    Host {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
        /// Database name.
        database: Option<String>,
        /// User name.
        user: Option<String>,
        /// Password.
        password: Option<Secret>,
    },
}

/// TLS mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it, unverified.
    Prefer,
    /// TLS, without verifying the certificate.
    Require,
    /// TLS, verifying the chain and the host name.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Option<SslMode> {
        match s {
            "disable" => Some(SslMode::Disable),
            "prefer" | "allow" => Some(SslMode::Prefer),
            "require" => Some(SslMode::Require),
            "verify-full" => Some(SslMode::VerifyFull),
            _ => None,
        }
    }
}

/// TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslSettings {
    /// The mode.
    pub mode: SslMode,
    /// Trusted roots (PEM), instead of the system's.
    pub ca: Option<PathBuf>,
}

/// `type: postgresql`.
#[derive(Debug, Clone)]
pub struct PostgresSettings {
    /// The server.
    pub target: PgTarget,
    /// TLS, settled from `ssl`, `options.ssl` and the URL's `sslmode`/`sslrootcert`.
    pub ssl: SslSettings,
    /// The schema holding the tables (validated identifier).
    pub schema: Option<String>,
    /// `options.application_name`.
    pub application_name: Option<String>,
    /// `options.statement_timeout`.
    pub statement_timeout: Option<Duration>,
}

/// How to reach a Redis server.
#[derive(Debug, Clone)]
pub enum RedisTarget {
    /// A `redis://` or `rediss://` URL.
    Url(SecretUrl),
    /// Discrete fields.
    Host {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
        /// Password.
        password: Option<Secret>,
        /// Database index.
        database: u32,
    },
}

/// `type: redis`.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// The server.
    pub target: RedisTarget,
    /// TLS for the host form (a `rediss://` URL implies it).
    pub tls: bool,
    /// Trusted roots (PEM) for TLS, instead of the system's.
    pub ca: Option<PathBuf>,
    /// `options.maxRetriesPerRequest`: retries of idempotent commands.
    pub max_retries_per_request: u32,
}

/// A plugin's type: its options and the whole (expanded) block, for the plugin to parse.
#[derive(Clone)]
pub struct PluginSettings {
    /// `options`.
    pub options: Map<String, Value>,
    /// The whole block, environment references expanded.
    pub block: Value,
    /// The directory that relative paths in `options` are relative to (the config file's).
    pub base_dir: PathBuf,
}

impl fmt::Debug for PluginSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Options may hold secrets of the plugin's own; list only their names.
        f.debug_struct("PluginSettings")
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Builds [`CommonSettings`] from any block struct (they share the common field names).
macro_rules! common {
    ($cx:expr, $b:expr, $path:expr, $inherited:expr, $retry_syn:expr, $timeout_syn:expr) => {{
        let pool = $b.pool.as_ref();
        common_settings(CommonInput {
            path: $path,
            key_prefix: $b.key_prefix.as_deref().or($inherited),
            max_connections: $b.max_connections,
            pool_max: pool.and_then(|p| p.max),
            pool_min: pool.and_then(|p| p.min),
            idle: $b.idle_timeout_millis,
            pool_idle: pool.and_then(|p| p.idle_timeout_millis),
            acquire: pool.and_then(|p| p.acquire_timeout_millis),
            connect: $b.connection_timeout_millis,
            max_retries: $b.max_retries,
            retry_delay: $b.retry_delay_millis,
            retry_synonym: $retry_syn,
            operation: $b.operation_timeout_millis,
            operation_synonym: $timeout_syn,
        })?
    }};
}

/// Parsing context.
struct Cx<'a> {
    types: &'a dyn TypeNames,
    base_dir: &'a Path,
}

impl Cx<'_> {
    fn role(&self, role: Role, block: Option<&Value>) -> Result<RoleConfig> {
        let path = format!("storage.{role}");
        let default_type = match role {
            Role::Cache => types::MEMORY,
            Role::Database => types::SQLITE,
        };
        let block = match block {
            None | Some(Value::Null) => {
                serde_json::json!({ "type": default_type })
            }
            Some(b) => b.clone(),
        };
        let (primary, declared) = self.backend(&block, &path, None, false)?;
        let fallback = match declared {
            Some(entries) => entries
                .iter()
                .enumerate()
                .map(|(i, entry)| {
                    let entry_path = format!("{path}.fallback[{i}]");
                    let entry = match entry {
                        Value::String(name) => serde_json::json!({ "type": name }),
                        other => other.clone(),
                    };
                    self.backend(&entry, &entry_path, Some(&primary.common.key_prefix), true)
                        .map(|(spec, _)| spec)
                })
                .collect::<Result<Vec<_>>>()?,
            None => self.default_chain(role, &primary, &path)?,
        };
        Ok(RoleConfig { primary, fallback })
    }

    fn default_chain(
        &self,
        role: Role,
        primary: &BackendSpec,
        path: &str,
    ) -> Result<Vec<BackendSpec>> {
        let names: &[&str] = match (primary.type_name.as_str(), role) {
            (types::REDIS, _) | (types::SQLITE, _) | (types::POSTGRES, Role::Cache) => {
                &[types::MEMORY]
            }
            (types::POSTGRES, Role::Database) => &[types::SQLITE, types::MEMORY],
            _ => &[],
        };
        names
            .iter()
            // A default entry whose backend is not built in is left out, not an error.
            .filter(|n| self.types.canonical_type(n).is_some())
            .enumerate()
            .map(|(i, name)| {
                let block = serde_json::json!({ "type": name });
                self.backend(
                    &block,
                    &format!("{path}.fallback[{i}]"),
                    Some(&primary.common.key_prefix),
                    true,
                )
                .map(|(spec, _)| spec)
            })
            .collect()
    }

    /// Types one block. Returns the spec and its declared `fallback` list, if any.
    fn backend(
        &self,
        block: &Value,
        path: &str,
        inherited_prefix: Option<&str>,
        is_fallback_entry: bool,
    ) -> Result<(BackendSpec, Option<Vec<Value>>)> {
        let Value::Object(map) = block else {
            return Err(Error::config(format!(
                "{path}: expected a backend block (a map with `type`), found {}",
                json_type(block)
            )));
        };
        let type_name = match map.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(other) => {
                return Err(Error::config(format!(
                    "{path}.type: expected a type name, found {}",
                    json_type(other)
                )));
            }
            None => {
                return Err(Error::config(format!(
                    "{path}.type: missing field `type`; known types: {}",
                    self.types.known_types().join(", ")
                )));
            }
        };
        let Some(canonical) = self.types.canonical_type(&type_name) else {
            return Err(Error::config(format!(
                "{path}.type: unknown backend type {type_name:?}; known types: {}",
                self.types.known_types().join(", ")
            )));
        };
        let (common, settings, fallback) = match builtin_canonical(&canonical) {
            Some(types::MEMORY) => {
                let b: MemoryBlock = typed(block, path)?;
                let common = common!(self, b, path, inherited_prefix, None, None);
                warn_unknown_options(path, b.options.as_ref(), &[]);
                (common, BackendSettings::Memory, b.fallback)
            }
            Some(types::SQLITE) => {
                let b: SqliteBlock = typed(block, path)?;
                let common = common!(self, b, path, inherited_prefix, None, None);
                let s = self.sqlite(&b, path)?;
                (common, BackendSettings::Sqlite(s), b.fallback)
            }
            Some(types::POSTGRES) => {
                let b: PostgresBlock = typed(block, path)?;
                let common = common!(self, b, path, inherited_prefix, None, None);
                let s = self.postgres(&b, path)?;
                (common, BackendSettings::Postgres(s), b.fallback)
            }
            Some(types::REDIS) => {
                let b: RedisBlock = typed(block, path)?;
                let command_timeout = option_u64(b.options.as_ref(), path, "commandTimeout")?;
                let common = common!(
                    self,
                    b,
                    path,
                    inherited_prefix,
                    b.retry_delay_on_failover
                        .map(|v| ("retryDelayOnFailover", v)),
                    command_timeout.map(|v| ("options.commandTimeout", v))
                );
                let s = self.redis(&b, path)?;
                (common, BackendSettings::Redis(s), b.fallback)
            }
            _ => {
                let b: PluginBlock = typed(block, path)?;
                let common = common!(self, b, path, inherited_prefix, None, None);
                let s = PluginSettings {
                    options: b.options.clone().unwrap_or_default(),
                    block: block.clone(),
                    base_dir: self.base_dir.to_path_buf(),
                };
                (common, BackendSettings::Plugin(s), b.fallback)
            }
        };
        if is_fallback_entry && fallback.is_some() {
            return Err(Error::config(format!(
                "{path}.fallback: a fallback entry cannot declare its own fallback; the chain is exactly the role's list"
            )));
        }
        Ok((
            BackendSpec {
                type_name: canonical,
                path: path.to_string(),
                common,
                settings,
            },
            fallback,
        ))
    }

    fn resolve_path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    fn sqlite(&self, b: &SqliteBlock, path: &str) -> Result<SqliteSettings> {
        let nonempty = |v: &Option<String>, field: &str| -> Result<Option<String>> {
            match v {
                Some(s) if s.is_empty() => {
                    Err(Error::config(format!("{path}.{field}: must not be empty")))
                }
                other => Ok(other.clone()),
            }
        };
        let location = match (
            nonempty(&b.path, "path")?,
            nonempty(&b.database, "database")?,
        ) {
            (Some(p), None) if p == ":memory:" => SqliteLocation::Memory,
            (None, Some(d)) if d == ":memory:" => SqliteLocation::Memory,
            (Some(p), Some(_)) if p == ":memory:" => {
                return Err(Error::config(format!(
                    "{path}.path: `:memory:` cannot be combined with `database`"
                )));
            }
            (Some(dir), Some(file)) => SqliteLocation::File(self.resolve_path(&dir).join(file)),
            (Some(p), None) => SqliteLocation::File(self.resolve_path(&p)),
            (None, Some(file)) => SqliteLocation::File(self.resolve_path(".storage").join(file)),
            (None, None) => SqliteLocation::File(self.resolve_path(".storage/storage.db")),
        };
        let opts = b.options.as_ref();
        warn_unknown_options(path, opts, &["synchronous", "busyTimeoutMillis"]);
        let synchronous = match opts.and_then(|o| o.get("synchronous")) {
            None | Some(Value::Null) => SqliteSync::Full,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("full") => SqliteSync::Full,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("normal") => SqliteSync::Normal,
            Some(other) => {
                return Err(Error::config(format!(
                    "{path}.options.synchronous: expected `full` or `normal`, found {other}"
                )));
            }
        };
        let busy = option_u64(opts, path, "busyTimeoutMillis")?.unwrap_or(5000);
        Ok(SqliteSettings {
            location,
            synchronous,
            busy_timeout: Duration::from_millis(busy),
        })
    }

    fn ssl_value(&self, v: &Value, field_path: &str, default_on: SslMode) -> Result<SslSettings> {
        match v {
            Value::Bool(false) => Ok(SslSettings {
                mode: SslMode::Disable,
                ca: None,
            }),
            Value::Bool(true) => Ok(SslSettings {
                mode: default_on,
                ca: None,
            }),
            Value::Object(m) => {
                for k in m.keys() {
                    if k != "mode" && k != "ca" {
                        return Err(Error::config(format!(
                            "{field_path}.{k}: unknown field `{k}`, expected `mode` or `ca`"
                        )));
                    }
                }
                let mode = match m.get("mode") {
                    None | Some(Value::Null) => default_on,
                    Some(Value::String(s)) => SslMode::parse(s).ok_or_else(|| {
                        Error::config(format!(
                            "{field_path}.mode: unknown mode {s:?}; expected disable, prefer, require or verify-full"
                        ))
                    })?,
                    Some(other) => {
                        return Err(Error::config(format!(
                            "{field_path}.mode: expected a string, found {}",
                            json_type(other)
                        )));
                    }
                };
                let ca = match m.get("ca") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(self.resolve_path(s)),
                    Some(other) => {
                        return Err(Error::config(format!(
                            "{field_path}.ca: expected a file path, found {}",
                            json_type(other)
                        )));
                    }
                };
                Ok(SslSettings { mode, ca })
            }
            other => Err(Error::config(format!(
                "{field_path}: expected true, false or {{ mode, ca }}, found {}",
                json_type(other)
            ))),
        }
    }

    fn postgres(&self, b: &PostgresBlock, path: &str) -> Result<PostgresSettings> {
        let url = agree(
            path,
            ("url", b.url.as_ref()),
            ("connectionString", b.connection_string.as_ref()),
        )?;
        let user = agree(
            path,
            ("user", b.user.as_ref()),
            ("username", b.username.as_ref()),
        )?;
        let opts = b.options.as_ref();
        warn_unknown_options(
            path,
            opts,
            &["application_name", "statement_timeout", "ssl"],
        );

        let discrete: Vec<&str> = [
            ("host", b.host.is_some()),
            ("port", b.port.is_some()),
            ("database", b.database.is_some()),
            (
                if b.user.is_some() { "user" } else { "username" },
                user.is_some(),
            ),
            ("password", b.password.is_some()),
        ]
        .into_iter()
        .filter_map(|(n, set)| set.then_some(n))
        .collect();

        let (target, url_ssl) = match (url, &b.host) {
            (Some(url), _) => {
                if let Some(first) = discrete.first() {
                    let url_field = if b.url.is_some() {
                        "url"
                    } else {
                        "connectionString"
                    };
                    return Err(Error::config(format!(
                        "{path}: `{url_field}` and `{first}` given together; use either a URL or discrete host fields"
                    )));
                }
                let url_ssl = self.pg_url_ssl(url.expose(), path)?;
                (PgTarget::Url(url.clone()), url_ssl)
            }
            (None, Some(host)) => {
                let port = port(b.port, 5432, path)?;
                (
                    PgTarget::Host {
                        host: host.clone(),
                        port,
                        database: b.database.clone(),
                        user: user.cloned(),
                        password: b.password.clone(),
                    },
                    None,
                )
            }
            (None, None) => {
                return Err(Error::config(format!(
                    "{path}: one of `url`, `connectionString` or `host` is required"
                )));
            }
        };

        // `ssl`, `options.ssl` and the URL's sslmode are synonyms: all that are given must agree.
        let mut ssl_sources: Vec<(&str, SslSettings)> = Vec::new();
        if let Some(v) = &b.ssl {
            ssl_sources.push((
                "ssl",
                self.ssl_value(v, &format!("{path}.ssl"), SslMode::VerifyFull)?,
            ));
        }
        if let Some(v) = opts.and_then(|o| o.get("ssl")) {
            ssl_sources.push((
                "options.ssl",
                self.ssl_value(v, &format!("{path}.options.ssl"), SslMode::VerifyFull)?,
            ));
        }
        if let Some(s) = url_ssl {
            ssl_sources.push(("sslmode in the URL", s));
        }
        if let [(first_name, first), rest @ ..] = ssl_sources.as_slice() {
            for (name, other) in rest {
                if other != first {
                    return Err(Error::config(format!(
                        "{path}: `{first_name}` ({:?}) and `{name}` ({:?}) disagree",
                        first.mode, other.mode
                    )));
                }
            }
        }
        let ssl = ssl_sources
            .into_iter()
            .next()
            .map(|(_, s)| s)
            .unwrap_or(SslSettings {
                mode: SslMode::Disable,
                ca: None,
            });

        let schema = match &b.schema {
            None => None,
            Some(s) => {
                let valid = !s.is_empty()
                    && s.len() <= 63
                    && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
                if !valid {
                    return Err(Error::config(format!(
                        "{path}.schema: {s:?} is not a valid schema name (letters, digits, `_` and `$`, at most 63 bytes, not starting with a digit)"
                    )));
                }
                Some(s.clone())
            }
        };
        let application_name = match opts.and_then(|o| o.get("application_name")) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(Error::config(format!(
                    "{path}.options.application_name: expected a string, found {}",
                    json_type(other)
                )));
            }
        };
        let statement_timeout =
            option_u64(opts, path, "statement_timeout")?.map(Duration::from_millis);
        Ok(PostgresSettings {
            target,
            ssl,
            schema,
            application_name,
            statement_timeout,
        })
    }

    /// Reads `sslmode` and `sslrootcert` from a PostgreSQL URL's query.
    fn pg_url_ssl(&self, url: &str, path: &str) -> Result<Option<SslSettings>> {
        let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
        let query = query.split('#').next().unwrap_or("");
        let mut mode = None;
        let mut ca = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sslmode" => {
                    mode = Some(SslMode::parse(v).ok_or_else(|| {
                        Error::config(format!(
                            "{path}.url: unknown sslmode {v:?}; expected disable, prefer, require or verify-full"
                        ))
                    })?)
                }
                "sslrootcert" => ca = Some(self.resolve_path(&percent_decode(v))),
                _ => {}
            }
        }
        Ok(match (mode, ca) {
            (None, None) => None,
            // libpq: a root certificate alone means verify-full is wanted only with the mode;
            // we treat it as verify-full so that a given CA is never silently unused.
            (None, Some(ca)) => Some(SslSettings {
                mode: SslMode::VerifyFull,
                ca: Some(ca),
            }),
            (Some(mode), ca) => Some(SslSettings { mode, ca }),
        })
    }

    fn redis(&self, b: &RedisBlock, path: &str) -> Result<RedisSettings> {
        let opts = b.options.as_ref();
        warn_unknown_options(path, opts, &["commandTimeout", "maxRetriesPerRequest"]);
        let ssl = match &b.ssl {
            None => None,
            Some(v) => Some(self.ssl_value(v, &format!("{path}.ssl"), SslMode::VerifyFull)?),
        };
        let target = match (&b.url, &b.host) {
            // `url` wins over the host fields, as in Saiki.
            (Some(url), _) => {
                let u = url.expose();
                if !(u.starts_with("redis://")
                    || u.starts_with("rediss://")
                    || u.starts_with("unix://"))
                {
                    return Err(Error::config(format!(
                        "{path}.url: expected a redis:// or rediss:// URL, found {}",
                        crate::redact::redact_url(u)
                    )));
                }
                RedisTarget::Url(url.clone())
            }
            (None, Some(host)) => {
                let database = match b.database {
                    None => 0,
                    Some(d) => u32::try_from(d).map_err(|_| {
                        Error::config(format!("{path}.database: {d} is not a database index"))
                    })?,
                };
                RedisTarget::Host {
                    host: host.clone(),
                    port: port(b.port, 6379, path)?,
                    password: b.password.clone(),
                    database,
                }
            }
            (None, None) => {
                return Err(Error::config(format!(
                    "{path}: one of `url` or `host` is required"
                )));
            }
        };
        let url_tls = matches!(&target, RedisTarget::Url(u) if u.expose().starts_with("rediss://"));
        let tls = url_tls || ssl.as_ref().is_some_and(|s| s.mode != SslMode::Disable);
        let max_retries_per_request = option_u64(opts, path, "maxRetriesPerRequest")?
            .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
            .unwrap_or(3);
        Ok(RedisSettings {
            target,
            tls,
            ca: ssl.and_then(|s| s.ca),
            max_retries_per_request,
        })
    }
}

struct CommonInput<'a> {
    path: &'a str,
    key_prefix: Option<&'a str>,
    max_connections: Option<u64>,
    pool_max: Option<u64>,
    pool_min: Option<u64>,
    idle: Option<u64>,
    pool_idle: Option<u64>,
    acquire: Option<u64>,
    connect: Option<u64>,
    max_retries: Option<u64>,
    retry_delay: Option<u64>,
    retry_synonym: Option<(&'static str, u64)>,
    operation: Option<u64>,
    operation_synonym: Option<(&'static str, u64)>,
}

fn common_settings(i: CommonInput<'_>) -> Result<CommonSettings> {
    let path = i.path;
    let d = CommonSettings::default();
    let key_prefix = i.key_prefix.unwrap_or("").to_string();
    validate_key_prefix(&key_prefix)
        .map_err(|e| Error::config(format!("{path}.keyPrefix: {}", e.message())))?;
    let pool_max = agree(
        path,
        ("maxConnections", i.max_connections.as_ref()),
        ("pool.max", i.pool_max.as_ref()),
    )?
    .copied()
    .map(|v| to_u32(v, path, "maxConnections"))
    .transpose()?
    .unwrap_or(d.pool_max);
    if pool_max == 0 {
        return Err(Error::config(format!(
            "{path}.maxConnections: must be at least 1"
        )));
    }
    let pool_min = i
        .pool_min
        .map(|v| to_u32(v, path, "pool.min"))
        .transpose()?
        .unwrap_or(0);
    if pool_min > pool_max {
        return Err(Error::config(format!(
            "{path}.pool.min: {pool_min} is more than the pool size {pool_max}"
        )));
    }
    let idle = agree(
        path,
        ("idleTimeoutMillis", i.idle.as_ref()),
        ("pool.idleTimeoutMillis", i.pool_idle.as_ref()),
    )?;
    let retry_delay = match i.retry_synonym {
        Some((name, v)) => agree(
            path,
            ("retryDelayMillis", i.retry_delay.as_ref()),
            (name, Some(&v)),
        )?
        .copied(),
        None => i.retry_delay,
    };
    let operation = match i.operation_synonym {
        Some((name, v)) => agree(
            path,
            ("operationTimeoutMillis", i.operation.as_ref()),
            (name, Some(&v)),
        )?
        .copied(),
        None => i.operation,
    };
    let millis = |v: Option<u64>, field: &str, default: Duration| -> Result<Duration> {
        match v {
            Some(0) => Err(Error::config(format!(
                "{path}.{field}: must be at least 1 ms"
            ))),
            Some(ms) => Ok(Duration::from_millis(ms)),
            None => Ok(default),
        }
    };
    Ok(CommonSettings {
        key_prefix,
        pool_min,
        pool_max,
        acquire_timeout: millis(i.acquire, "pool.acquireTimeoutMillis", d.acquire_timeout)?,
        idle_timeout: millis(idle.copied(), "idleTimeoutMillis", d.idle_timeout)?,
        connect_timeout: millis(i.connect, "connectionTimeoutMillis", d.connect_timeout)?,
        max_retries: i
            .max_retries
            .map(|v| to_u32(v, path, "maxRetries"))
            .transpose()?
            .unwrap_or(d.max_retries),
        retry_delay: retry_delay
            .map(Duration::from_millis)
            .unwrap_or(d.retry_delay),
        operation_timeout: millis(operation, "operationTimeoutMillis", d.operation_timeout)?,
    })
}

/// Two synonyms: either, or both if they agree.
fn agree<'v, T: PartialEq + fmt::Debug>(
    path: &str,
    (a_name, a): (&str, Option<&'v T>),
    (b_name, b): (&str, Option<&'v T>),
) -> Result<Option<&'v T>> {
    match (a, b) {
        (Some(x), Some(y)) if x != y => Err(Error::config(format!(
            "{path}: `{a_name}` ({x:?}) and `{b_name}` ({y:?}) are synonyms and disagree"
        ))),
        (Some(x), _) => Ok(Some(x)),
        (None, y) => Ok(y),
    }
}

fn to_u32(v: u64, path: &str, field: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::config(format!("{path}.{field}: {v} is too large")))
}

fn port(v: Option<u64>, default: u16, path: &str) -> Result<u16> {
    match v {
        None => Ok(default),
        Some(p) if (1..=65535).contains(&p) => Ok(p as u16),
        Some(p) => Err(Error::config(format!(
            "{path}.port: {p} is not a port number"
        ))),
    }
}

fn option_u64(opts: Option<&Map<String, Value>>, path: &str, key: &str) -> Result<Option<u64>> {
    let Some(v) = opts.and_then(|o| o.get(key)) else {
        return Ok(None);
    };
    let field = format!("{path}.options.{key}");
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_u64().map(Some).ok_or_else(|| {
            Error::config(format!(
                "{field}: expected a non-negative integer, found {n}"
            ))
        }),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s
            .parse()
            .map(Some)
            .map_err(|_| Error::config(format!("{field}: {s:?} is too large"))),
        other => Err(Error::config(format!(
            "{field}: expected a non-negative integer, found {}",
            json_type(other)
        ))),
    }
}

fn warn_unknown_options(path: &str, opts: Option<&Map<String, Value>>, known: &[&str]) {
    for key in opts.into_iter().flat_map(|o| o.keys()) {
        if !known.contains(&key.as_str()) {
            tracing::warn!(field = %format!("{path}.options.{key}"), "unknown option ignored");
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Deserializes a block into its struct, naming the failing field's full path.
fn typed<T: DeserializeOwned>(block: &Value, path: &str) -> Result<T> {
    serde_path_to_error::deserialize(block.clone()).map_err(|e| {
        let inner = e.path().to_string();
        let msg = e.inner().to_string();
        // For an unknown field the path stops at its parent; the field is in the message.
        let mut full = if inner == "." || inner.is_empty() {
            path.to_string()
        } else {
            format!("{path}.{inner}")
        };
        if let Some(rest) = msg.strip_prefix("unknown field `")
            && let Some(name) = rest.split('`').next()
        {
            full = format!("{full}.{name}");
        }
        Error::config(format!("{full}: {msg}"))
    })
}

#[cfg(test)]
mod tests;
