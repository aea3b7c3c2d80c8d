//! A role's `nearCache:` field: the settings of an in-process level in front of the role,
//! kept coherent through the store's change log (the manager's `NearCache` applies them). Not
//! the level itself, which lives in storage-manager; storage-core only parses and checks.

use super::fields::{NumOrEnv, num};
use crate::error::{Error, Result};
use schemars::JsonSchema;
use serde::Deserialize;
use std::time::Duration;

/// `nearCache:` as a config file holds it.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NearCacheBlock {
    /// Most entries kept (default 10000).
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub max_entries: Option<u64>,
    /// Most bytes kept, keys and values' JSON text (default 67108864, 64 MiB).
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub max_bytes: Option<u64>,
    /// How long an entry lives in the level at most (default 60000).
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub ttl_millis: Option<u64>,
    /// The most a value served from the level may lag the store; past it without news from
    /// the store's change log, reads go to the store (default 200).
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub max_staleness_millis: Option<u64>,
    /// Fail-safe: serve the last value read, up to this old, while the store fails with a
    /// temporary error (default: off).
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub fail_safe_max_millis: Option<u64>,
    /// Eager refresh: a read of an entry older than this fraction of `ttlMillis` (between 0
    /// and 1, e.g. 0.8) serves it and reloads it in the background, so that a key read often
    /// never misses when its entry would expire (default: off).
    #[serde(default)]
    pub eager_refresh: Option<f64>,
}

/// How a near cache is bounded and how fresh it must be: `nearCache:` settled, or built in
/// code.
///
/// ```
/// use std::time::Duration;
/// use storage_core::config::NearCacheOptions;
///
/// let options = NearCacheOptions {
///     fail_safe: Some(Duration::from_secs(30)),
///     ..NearCacheOptions::default()
/// };
/// assert_eq!(options.max_staleness, Duration::from_millis(200));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NearCacheOptions {
    /// Most entries kept (default 10,000).
    pub max_entries: u64,
    /// Most bytes kept, counting each value's JSON text and its key (default 64 MiB). Both
    /// bounds hold: an entry counts at least `max_bytes / max_entries`.
    pub max_bytes: u64,
    /// How long an entry lives in the level at most (default 60 s).
    pub ttl: Duration,
    /// The most a served value may lag the store: past it without a sync point, reads go to
    /// the store (default 200 ms).
    pub max_staleness: Duration,
    /// Serve the last value read, up to this old, when the store fails with a temporary error
    /// (default: off).
    pub fail_safe: Option<Duration>,
    /// Eager refresh: a read of an entry at least this old serves it and reloads it from the
    /// store in the background, once at a time per key (default: off; `eagerRefresh:` gives
    /// it as a fraction of `ttl`). A value at or past `ttl` turns it off.
    pub refresh_after: Option<Duration>,
}

impl Default for NearCacheOptions {
    fn default() -> Self {
        NearCacheOptions {
            max_entries: 10_000,
            max_bytes: 64 << 20,
            ttl: Duration::from_secs(60),
            max_staleness: Duration::from_millis(200),
            fail_safe: None,
            refresh_after: None,
        }
    }
}

/// The longest duration a near cache takes (a year): an entry or a fail-safe value kept
/// longer is a mistake, and the level's clock cannot represent much more.
pub const NEAR_CACHE_MAX_MILLIS: u64 = 365 * 24 * 3600 * 1000;

/// Settles `nearCache:` at `path`: every number at least 1, every duration at most
/// [`NEAR_CACHE_MAX_MILLIS`].
pub(crate) fn settle(block: &NearCacheBlock, path: &str) -> Result<NearCacheOptions> {
    let d = NearCacheOptions::default();
    let positive = |v: Option<u64>, field: &str| -> Result<Option<u64>> {
        match v {
            Some(0) => Err(Error::config(format!(
                "{path}.nearCache.{field}: must be at least 1"
            ))),
            Some(ms) if field.ends_with("Millis") && ms > NEAR_CACHE_MAX_MILLIS => {
                Err(Error::config(format!(
                    "{path}.nearCache.{field}: {ms} is more than a year ({NEAR_CACHE_MAX_MILLIS} ms)"
                )))
            }
            v => Ok(v),
        }
    };
    let ttl = positive(block.ttl_millis, "ttlMillis")?.map_or(d.ttl, Duration::from_millis);
    let refresh_after = match block.eager_refresh {
        None => None,
        Some(f) if f > 0.0 && f < 1.0 => Some(ttl.mul_f64(f)),
        Some(f) => {
            return Err(Error::config(format!(
                "{path}.nearCache.eagerRefresh: {f} is not a fraction of ttlMillis between 0 and 1 (e.g. 0.8)"
            )));
        }
    };
    Ok(NearCacheOptions {
        max_entries: positive(block.max_entries, "maxEntries")?.unwrap_or(d.max_entries),
        max_bytes: positive(block.max_bytes, "maxBytes")?.unwrap_or(d.max_bytes),
        ttl,
        max_staleness: positive(block.max_staleness_millis, "maxStalenessMillis")?
            .map_or(d.max_staleness, Duration::from_millis),
        fail_safe: positive(block.fail_safe_max_millis, "failSafeMaxMillis")?
            .map(Duration::from_millis),
        refresh_after,
    })
}
