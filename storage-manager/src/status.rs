//! What connect and health report.

use std::fmt;
use std::time::Duration;
use storage_core::Role;

/// One candidate that could not serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedCandidate {
    /// The candidate, as [`storage_core::config::BackendSpec`]'s `Display` shows it (no password).
    pub backend: String,
    /// Its config path, such as `storage.database.fallback[0]`.
    pub path: String,
    /// Why, after its retries (no password).
    pub reason: String,
    /// How many attempts were made.
    pub attempts: u32,
}

impl fmt::Display for FailedCandidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.backend, self.reason)
    }
}

/// How a role was served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleStatus {
    /// The role.
    pub role: Role,
    /// The type name of the backend serving it, if any.
    pub serving: Option<String>,
    /// The serving backend's description.
    pub serving_detail: Option<String>,
    /// Candidates tried before it, and why each failed.
    pub failed: Vec<FailedCandidate>,
}

impl RoleStatus {
    /// A fallback serves: the declared backend could not.
    pub fn degraded(&self) -> bool {
        self.serving.is_some() && !self.failed.is_empty()
    }

    /// `degraded (a: why; b: why)`, or empty.
    pub fn degraded_note(&self) -> String {
        if self.failed.is_empty() {
            return String::new();
        }
        let reasons: Vec<String> = self.failed.iter().map(ToString::to_string).collect();
        format!("degraded ({})", reasons.join("; "))
    }
}

/// Counters of the cache-aside layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads served by the cache.
    pub hits: u64,
    /// Reads that went to the database.
    pub misses: u64,
    /// Cache operations that failed and were degraded to misses or skipped.
    pub cache_errors: u64,
    /// Write-behind operations not yet written.
    pub write_behind_pending: u64,
    /// Write-behind operations the database refused, kept until retried or acknowledged.
    pub write_behind_failed: u64,
    /// Misses that shared another read's database load instead of loading themselves.
    pub coalesced_loads: u64,
    /// Warms given up because a write or an invalidation came first (or the load was slower
    /// than the invalidation hold): each one a stale value the cache did not get.
    pub leases_lost: u64,
}

impl CacheStats {
    /// hits / (hits + misses), or 0.
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

/// One role's health.
#[derive(Debug, Clone)]
pub struct RoleHealth {
    /// Serving backend and fallback history.
    pub status: RoleStatus,
    /// Whether the serving backend answered its ping.
    pub ok: bool,
    /// The ping's round trip.
    pub latency: Duration,
    /// The ping's error, if it failed.
    pub error: Option<String>,
}

impl fmt::Display for RoleHealth {
    /// `database  sqlite  ok  0.21 ms  degraded (postgresql (...): connection refused)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let serving = self.status.serving.as_deref().unwrap_or("none");
        let state = if self.ok { "ok" } else { "failed" };
        write!(
            f,
            "{:<9} {:<11} {:<6} {:>9.2} ms",
            self.status.role.as_str(),
            serving,
            state,
            self.latency.as_secs_f64() * 1000.0
        )?;
        if let Some(e) = &self.error {
            write!(f, "  {e}")?;
        }
        let note = self.status.degraded_note();
        if !note.is_empty() {
            write!(f, "  {note}")?;
        }
        Ok(())
    }
}
