//! An in-process metrics recorder for `storage demo`: it collects the series every backend and
//! the cache-aside layer emit (`storage_core::telemetry`) and prints them as a latency table
//! and a hit rate. Not an exporter: an application that wants the series elsewhere installs its
//! own recorder (see the Prometheus example in storage-manager).

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use std::collections::BTreeMap;
use storage_core::telemetry;

/// The installed recorder's reader.
pub struct Observed(Snapshotter);

/// One row of the latency table: role, backend, operation.
type RowKey = (String, String, String);

impl Observed {
    /// Installs the recorder for this process; `None` if one is installed already.
    pub fn install() -> Option<Observed> {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().ok()?;
        telemetry::describe();
        Some(Observed(snapshotter))
    }

    /// Prints the operations' latency by role, backend and operation, the failures by kind, and
    /// the cache-aside hit rate.
    pub fn print(&self) {
        let mut latency: BTreeMap<RowKey, Vec<f64>> = BTreeMap::new();
        let mut errors: BTreeMap<String, u64> = BTreeMap::new();
        let (mut hits, mut misses) = (0u64, 0u64);
        for (key, _, _, value) in self.0.snapshot().into_vec() {
            let key = key.key();
            let label = |name: &str| {
                key.labels()
                    .find(|l| l.key() == name)
                    .map(|l| l.value().to_string())
                    .unwrap_or_default()
            };
            match (key.name(), value) {
                (telemetry::OPERATION_DURATION, DebugValue::Histogram(samples)) => {
                    let row = (
                        label(telemetry::ROLE),
                        label(telemetry::SYSTEM),
                        label(telemetry::OPERATION),
                    );
                    let error = label(telemetry::ERROR_TYPE);
                    if !error.is_empty() {
                        *errors.entry(error).or_default() += samples.len() as u64;
                    }
                    latency
                        .entry(row)
                        .or_default()
                        .extend(samples.iter().map(|s| s.into_inner()));
                }
                (telemetry::CACHE_HITS, DebugValue::Counter(n)) => hits += n,
                (telemetry::CACHE_MISSES, DebugValue::Counter(n)) => misses += n,
                _ => {}
            }
        }
        println!("\nlatency by operation (db.client.operation.duration):");
        for ((role, backend, op), mut samples) in latency {
            samples.sort_by(f64::total_cmp);
            let p50 = samples[samples.len() / 2];
            let max = samples[samples.len() - 1];
            println!(
                "  {role:<8} {backend:<10} {op:<12} n={:<4} p50={:>8.1} µs  max={:>8.1} µs",
                samples.len(),
                p50 * 1e6,
                max * 1e6
            );
        }
        for (kind, n) in errors {
            println!("  failed: {n} with {kind}");
        }
        let reads = hits + misses;
        let rate = if reads == 0 {
            0.0
        } else {
            hits as f64 / reads as f64 * 100.0
        };
        println!("\ncache-aside: {hits} hits, {misses} misses; hit rate {rate:.1}%");
    }

    /// The near caches' staleness so far (`storage.near_cache.staleness`): how many changes,
    /// and the median and largest delay, in seconds.
    pub fn staleness(&self) -> Option<(usize, f64, f64)> {
        let mut samples: Vec<f64> = Vec::new();
        for (key, _, _, value) in self.0.snapshot().into_vec() {
            if let (telemetry::NEAR_CACHE_STALENESS, DebugValue::Histogram(s)) =
                (key.key().name(), value)
            {
                samples.extend(s.iter().map(|v| v.into_inner()));
            }
        }
        samples.sort_by(f64::total_cmp);
        Some((
            samples.len(),
            *samples.get(samples.len() / 2)?,
            *samples.last()?,
        ))
    }
}
