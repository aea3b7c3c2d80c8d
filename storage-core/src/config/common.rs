//! The fields every backend block shares, and the [`BlockInput`] a factory parses its own
//! fields from.
//!
//! The resolver splits each block in two: the common fields (`type`, `keyPrefix`, the pool,
//! timeouts, retries, `fallback`, `nearCache`, `cacheAside`) are parsed here into [`CommonSettings`]; everything else is
//! the backend's, handed to its factory as a [`BlockInput`]. A backend never sees the common
//! fields and storage-core never sees a backend's.

use super::Role;
use super::fields::{NumOrEnv, PoolBlock, num, typed};
use crate::error::{Error, Result};
use crate::limits::validate_key_prefix;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The names of the common fields, as a config file spells them.
pub const COMMON_FIELDS: &[&str] = &[
    "type",
    "keyPrefix",
    "maxConnections",
    "pool",
    "idleTimeoutMillis",
    "connectionTimeoutMillis",
    "maxRetries",
    "retryDelayMillis",
    "operationTimeoutMillis",
    "fallback",
    "nearCache",
    "cacheAside",
];

/// The common fields of a backend block, as a config file holds them.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommonBlock {
    /// The backend type name.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The namespace (default empty, at most 256 bytes).
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// Pool size; the same as `pool.max`.
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub max_connections: Option<u64>,
    /// The connection pool.
    #[serde(default)]
    pub pool: Option<PoolBlock>,
    /// Idle connection timeout; the same as `pool.idleTimeoutMillis`.
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub idle_timeout_millis: Option<u64>,
    /// Time allowed to open one connection (default 5000).
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub connection_timeout_millis: Option<u64>,
    /// Connect retries for this candidate (default 3).
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub max_retries: Option<u64>,
    /// First retry delay, doubled each time with jitter, capped at 2 s (default 100).
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub retry_delay_millis: Option<u64>,
    /// Client-side limit on any one operation (default 10000).
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub operation_timeout_millis: Option<u64>,
    /// The chain tried after this backend fails to connect: type names or blocks.
    #[serde(default)]
    pub fallback: Option<Vec<Value>>,
    /// An in-process near cache in front of the role, kept coherent through the store's
    /// change log (off when absent; the primary block's only).
    #[serde(default)]
    pub near_cache: Option<super::near_cache::NearCacheBlock>,
    /// How `CacheAside` built from this configuration loads into the cache (the cache role's
    /// primary block only).
    #[serde(default)]
    pub cache_aside: Option<super::cache_aside::CacheAsideBlock>,
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
    /// The role's near cache, when the block asks for one.
    pub near_cache: Option<super::near_cache::NearCacheOptions>,
    /// The cache role's `cacheAside:` settings, when given.
    pub cache_aside: Option<super::cache_aside::CacheAsideSettings>,
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
            near_cache: None,
            cache_aside: None,
        }
    }
}

/// A common field that a backend may accept under a name of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommonField {
    /// `retryDelayMillis`.
    RetryDelay,
    /// `operationTimeoutMillis`.
    OperationTimeout,
}

impl CommonField {
    fn name(self) -> &'static str {
        match self {
            CommonField::RetryDelay => "retryDelayMillis",
            CommonField::OperationTimeout => "operationTimeoutMillis",
        }
    }
}

/// Splits a block into its common fields (typed) and the backend's own fields.
pub(crate) fn split_block(
    block: &Map<String, Value>,
    path: &str,
) -> Result<(CommonBlock, Map<String, Value>)> {
    let mut common = Map::new();
    let mut own = Map::new();
    for (k, v) in block {
        if COMMON_FIELDS.contains(&k.as_str()) {
            common.insert(k.clone(), v.clone());
        } else {
            own.insert(k.clone(), v.clone());
        }
    }
    Ok((typed(&Value::Object(common), path)?, own))
}

/// Settles the common fields: synonyms must agree, zero durations are refused.
pub(crate) fn common_settings(
    b: &CommonBlock,
    path: &str,
    inherited_prefix: Option<&str>,
) -> Result<CommonSettings> {
    let d = CommonSettings::default();
    let pool = b.pool.as_ref();
    let key_prefix = b
        .key_prefix
        .as_deref()
        .or(inherited_prefix)
        .unwrap_or("")
        .to_string();
    validate_key_prefix(&key_prefix)
        .map_err(|e| Error::config(format!("{path}.keyPrefix: {}", e.message())))?;
    let pool_max = agree(
        path,
        ("maxConnections", b.max_connections),
        ("pool.max", pool.and_then(|p| p.max)),
    )?
    .map(|v| to_u32(v, path, "maxConnections"))
    .transpose()?
    .unwrap_or(d.pool_max);
    if pool_max == 0 {
        return Err(Error::config(format!(
            "{path}.maxConnections: must be at least 1"
        )));
    }
    let pool_min = pool
        .and_then(|p| p.min)
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
        ("idleTimeoutMillis", b.idle_timeout_millis),
        (
            "pool.idleTimeoutMillis",
            pool.and_then(|p| p.idle_timeout_millis),
        ),
    )?;
    Ok(CommonSettings {
        key_prefix,
        pool_min,
        pool_max,
        acquire_timeout: millis(
            pool.and_then(|p| p.acquire_timeout_millis),
            path,
            "pool.acquireTimeoutMillis",
            d.acquire_timeout,
        )?,
        idle_timeout: millis(idle, path, "idleTimeoutMillis", d.idle_timeout)?,
        connect_timeout: millis(
            b.connection_timeout_millis,
            path,
            "connectionTimeoutMillis",
            d.connect_timeout,
        )?,
        max_retries: b
            .max_retries
            .map(|v| to_u32(v, path, "maxRetries"))
            .transpose()?
            .unwrap_or(d.max_retries),
        retry_delay: b
            .retry_delay_millis
            .map(Duration::from_millis)
            .unwrap_or(d.retry_delay),
        operation_timeout: millis(
            b.operation_timeout_millis,
            path,
            "operationTimeoutMillis",
            d.operation_timeout,
        )?,
        near_cache: b
            .near_cache
            .as_ref()
            .map(|n| super::near_cache::settle(n, path))
            .transpose()?,
        cache_aside: b
            .cache_aside
            .as_ref()
            .map(|c| super::cache_aside::settle(c, path))
            .transpose()?,
    })
}

fn millis(v: Option<u64>, path: &str, field: &str, default: Duration) -> Result<Duration> {
    match v {
        Some(0) => Err(Error::config(format!(
            "{path}.{field}: must be at least 1 ms"
        ))),
        Some(ms) => Ok(Duration::from_millis(ms)),
        None => Ok(default),
    }
}

/// Two synonyms: either, or both if they agree.
fn agree<T: PartialEq + fmt::Debug + Copy>(
    path: &str,
    (a_name, a): (&str, Option<T>),
    (b_name, b): (&str, Option<T>),
) -> Result<Option<T>> {
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

/// A backend's own part of a block, for its factory's
/// [`parse`](crate::BackendFactory::parse).
///
/// It holds the fields that are not common ones, the block's path for error messages, the
/// directory relative paths resolve against, and the settled common settings, which a backend
/// may amend only through [`BlockInput::synonym`].
pub struct BlockInput<'a> {
    path: &'a str,
    fields: Map<String, Value>,
    base_dir: &'a Path,
    common: CommonSettings,
    given: [bool; 2],
    role: Option<Role>,
}

impl fmt::Debug for BlockInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Fields may hold passwords: show their names only.
        f.debug_struct("BlockInput")
            .field("path", &self.path)
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<'a> BlockInput<'a> {
    /// A block's own fields at `path` (`storage.database`), for a factory's tests or for
    /// parsing without the resolver.
    pub fn new(path: &'a str, fields: Map<String, Value>, base_dir: &'a Path) -> Self {
        BlockInput {
            path,
            fields,
            base_dir,
            common: CommonSettings::default(),
            given: [false; 2],
            role: None,
        }
    }

    /// Marks the block as serving `role` (the resolver does it for every block it parses).
    pub fn set_role(&mut self, role: Role) {
        self.role = Some(role);
    }

    /// The role the block serves, primary or fallback; `None` when it is parsed outside a
    /// configuration (a factory's own tests). For settings that only one role allows.
    pub fn role(&self) -> Option<Role> {
        self.role
    }

    pub(crate) fn with_common(mut self, common: CommonSettings, b: &CommonBlock) -> Self {
        self.given = [
            b.retry_delay_millis.is_some(),
            b.operation_timeout_millis.is_some(),
        ];
        self.common = common;
        self
    }

    pub(crate) fn into_common(self) -> CommonSettings {
        self.common
    }

    /// The block's path, such as `storage.cache` or `storage.database.fallback[0]`.
    pub fn path(&self) -> &str {
        self.path
    }

    /// The backend's own fields (the common ones removed).
    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// The common settings as settled so far.
    pub fn common(&self) -> &CommonSettings {
        &self.common
    }

    /// Deserializes the backend's own fields into `T`. Errors name the full field path
    /// (`storage.database.options.synchronus: unknown field ...`); give `T`
    /// `#[serde(deny_unknown_fields)]` so that a typo is an error.
    pub fn typed<T: DeserializeOwned>(&self) -> Result<T> {
        typed(&Value::Object(self.fields.clone()), self.path)
    }

    /// A configuration error at `{path}.{field}`.
    pub fn error(&self, field: &str, message: impl fmt::Display) -> Error {
        if field.is_empty() {
            Error::config(format!("{}: {message}", self.path))
        } else {
            Error::config(format!("{}.{field}: {message}", self.path))
        }
    }

    /// A path from the config, resolved against the config file's directory.
    pub fn resolve_path(&self, path: impl AsRef<Path>) -> PathBuf {
        let joined = self.base_dir.join(path);
        std::path::absolute(&joined).unwrap_or(joined)
    }

    /// The directory relative paths resolve against.
    pub fn base_dir(&self) -> &Path {
        self.base_dir
    }

    /// Applies a backend's own name for a common field (`retryDelayOnFailover` for
    /// `retryDelayMillis`): if both are given they must agree.
    pub fn synonym(&mut self, field: CommonField, synonym: &str, millis: u64) -> Result<()> {
        let (slot, given) = match field {
            CommonField::RetryDelay => (&mut self.common.retry_delay, self.given[0]),
            CommonField::OperationTimeout => (&mut self.common.operation_timeout, self.given[1]),
        };
        let value = Duration::from_millis(millis);
        if given && *slot != value {
            return Err(Error::config(format!(
                "{}: `{}` ({}) and `{synonym}` ({millis}) are synonyms and disagree",
                self.path,
                field.name(),
                slot.as_millis()
            )));
        }
        if millis == 0 && field == CommonField::OperationTimeout {
            return Err(self.error(synonym, "must be at least 1 ms"));
        }
        *slot = value;
        Ok(())
    }
}
