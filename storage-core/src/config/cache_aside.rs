//! The cache role's `cacheAside:` field: how the manager's `CacheAside` (lazy loading from the
//! database into this cache) behaves when it is built from configuration: entry TTL and its
//! jitter, the invalidation hold, the cross-instance stampede lease. Parsed and checked here;
//! the layer itself lives in storage-manager.

use super::fields::{NumOrEnv, num};
use crate::error::{Error, Result};
use schemars::JsonSchema;
use serde::Deserialize;
use std::time::Duration;

/// `cacheAside:` as a config file holds it.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheAsideBlock {
    /// How long a warmed entry lives in the cache (default: no TTL).
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub ttl_millis: Option<u64>,
    /// Spread of each entry's TTL, a fraction from 0 to 0.5: a TTL of `t` becomes one drawn
    /// from `t × (1 ± ttlJitter)`, so that entries written together do not expire together
    /// (default 0).
    #[serde(default)]
    pub ttl_jitter: Option<f64>,
    /// How long an invalidation keeps warms from putting an older value back, and the longest
    /// load that may still warm (default 1000).
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub invalidation_hold_millis: Option<u64>,
    /// Stampede protection across instances.
    #[serde(default)]
    pub stampede: Option<StampedeBlock>,
}

/// `cacheAside.stampede:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StampedeBlock {
    /// One instance loads a missed key while the others wait for its warm (a lease key in
    /// the cache); default false (one load per instance).
    #[serde(default)]
    pub lease: bool,
}

/// `cacheAside:` settled.
///
/// ```
/// use storage_core::config::CacheAsideSettings;
///
/// let settings = CacheAsideSettings::default();
/// assert!(!settings.stampede_lease);
/// assert_eq!(settings.invalidation_hold.as_millis(), 1000);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CacheAsideSettings {
    /// How long a warmed entry lives (`None`: no TTL).
    pub ttl: Option<Duration>,
    /// The TTL's spread, in `[0, 0.5]`.
    pub ttl_jitter: f64,
    /// The invalidation hold (1 ms ..= 1 day).
    pub invalidation_hold: Duration,
    /// Whether instances share one load through a lease.
    pub stampede_lease: bool,
}

// The jitter is a finite number (checked when settled), so equality is an equivalence.
impl Eq for CacheAsideSettings {}

impl Default for CacheAsideSettings {
    fn default() -> Self {
        CacheAsideSettings {
            ttl: None,
            ttl_jitter: 0.0,
            invalidation_hold: Duration::from_secs(1),
            stampede_lease: false,
        }
    }
}

/// The longest invalidation hold: a day (a longer one only keeps keys out of the cache).
const LONGEST_HOLD_MILLIS: u64 = 24 * 3600 * 1000;

/// The longest entry TTL: a year.
const LONGEST_TTL_MILLIS: u64 = 365 * 24 * 3600 * 1000;

/// Settles `cacheAside:` at `path`.
pub(crate) fn settle(block: &CacheAsideBlock, path: &str) -> Result<CacheAsideSettings> {
    let field = |name: &str| format!("{path}.cacheAside.{name}");
    let d = CacheAsideSettings::default();
    let ttl = match block.ttl_millis {
        Some(0) => {
            return Err(Error::config(format!(
                "{}: must be at least 1",
                field("ttlMillis")
            )));
        }
        Some(ms) if ms > LONGEST_TTL_MILLIS => {
            return Err(Error::config(format!(
                "{}: {ms} is more than a year ({LONGEST_TTL_MILLIS} ms)",
                field("ttlMillis")
            )));
        }
        ms => ms.map(Duration::from_millis),
    };
    let ttl_jitter = match block.ttl_jitter {
        None => d.ttl_jitter,
        Some(f) if (0.0..=0.5).contains(&f) => f,
        Some(f) => {
            return Err(Error::config(format!(
                "{}: {f} is not a fraction from 0 to 0.5 (e.g. 0.1)",
                field("ttlJitter")
            )));
        }
    };
    let invalidation_hold = match block.invalidation_hold_millis {
        None => d.invalidation_hold,
        Some(ms) if (1..=LONGEST_HOLD_MILLIS).contains(&ms) => Duration::from_millis(ms),
        Some(ms) => {
            return Err(Error::config(format!(
                "{}: {ms} is not between 1 and {LONGEST_HOLD_MILLIS} (a day)",
                field("invalidationHoldMillis")
            )));
        }
    };
    Ok(CacheAsideSettings {
        ttl,
        ttl_jitter,
        invalidation_hold,
        stampede_lease: block.stampede.as_ref().is_some_and(|s| s.lease),
    })
}
