//! The conditional-write rows: an uncontended `set_if` and `update` beside the project's own
//! `set` on the same backend (their "baseline" is that `set`, of a value the caller keeps, as
//! `set_if` takes it; not a raw driver: the question is what the condition costs), and `update` of one counter from 8 and 64 tasks, where most
//! tries meet a conflict and start over.

use super::{Op, Project, Row};
use crate::harness::{RUNS, Stats, measure};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use storage_core::{Condition, Database, DatabaseExt, Result, UpdatePolicy, Version};

/// The version the benchmark last wrote at each of the 1,000 keys `ci:<slot>`, so that each
/// `set_if` names the current one (an uncontended conditional write, which succeeds).
pub struct Versions(Vec<Mutex<Option<Version>>>);

impl Default for Versions {
    fn default() -> Self {
        Versions((0..1000).map(|_| Mutex::new(None)).collect())
    }
}

/// `set_if` on the version last written at slot `slot` (a plain condition the first time).
pub async fn set_if(
    db: &dyn Database,
    versions: &Versions,
    slot: usize,
    value: Value,
) -> Result<()> {
    let at = &versions.0[slot % versions.0.len()];
    let known = *at.lock().unwrap_or_else(|e| e.into_inner());
    let condition = known.map_or(Condition::Any, Condition::Version);
    let version = db.set_if(&format!("ci:{slot}"), &value, &condition).await?;
    *at.lock().unwrap_or_else(|e| e.into_inner()) = Some(version);
    Ok(())
}

/// One increment of the counter at `key`, with room for 64 writers on one key.
pub async fn increment(db: &dyn Database, key: &str) -> Result<()> {
    let policy = UpdatePolicy {
        max_attempts: 100_000,
        ..UpdatePolicy::default()
    };
    db.update_with(key, policy, |v| {
        Ok(json!(v.and_then(Value::as_u64).unwrap_or(0) + 1))
    })
    .await
    .map(drop)
}

/// The median of [`RUNS`] runs of `op` and of `versus` (when given), alternating, after a
/// warm-up of each.
async fn paired(
    project: &Arc<Project>,
    op: Op,
    versus: Option<Op>,
    c: usize,
    total: usize,
) -> (Stats, Option<Stats>) {
    measure(project.clone(), op, c, total / 10 + 1).await;
    if let Some(v) = versus {
        measure(project.clone(), v, c, total / 10 + 1).await;
    }
    let (mut runs, mut versus_runs) = (Vec::new(), Vec::new());
    for round in 0..RUNS {
        if round % 2 == 1 {
            runs.push(measure(project.clone(), op, c, total).await);
        }
        if let Some(v) = versus {
            versus_runs.push(measure(project.clone(), v, c, total).await);
        }
        if round % 2 == 0 {
            runs.push(measure(project.clone(), op, c, total).await);
        }
    }
    let versus = (!versus_runs.is_empty()).then(|| Stats::median(versus_runs));
    (Stats::median(runs), versus)
}

/// The rows for one backend.
pub async fn bench(name: &str, project: Arc<Project>, ops_scale: usize, rows: &mut Vec<Row>) {
    let cases: [(Op, Option<Op>, usize, usize); 4] = [
        (Op::SetIf, Some(Op::SetBorrowed), 1, ops_scale),
        (Op::Update, Some(Op::SetBorrowed), 1, ops_scale),
        (Op::UpdateContended, None, 8, (ops_scale / 10).max(80)),
        (Op::UpdateContended, None, 64, (ops_scale / 10).max(640)),
    ];
    for (op, versus, c, total) in cases {
        let (p, b) = paired(&project, op, versus, c, total).await;
        eprintln!(
            "bench: {name:<10} {:<14} c={c:<3} {:>10.0} ops/s  p50 {:>8.1} µs  p99 {:>8.1} µs  vs set {}",
            op.name(),
            p.ops_per_sec,
            p.p50_us,
            p.p99_us,
            b.map_or("-".into(), |b| format!(
                "{:.0} ops/s, ratio {:.2}",
                b.ops_per_sec,
                p.ops_per_sec / b.ops_per_sec
            )),
        );
        rows.push(Row::measured(name, op.name(), c, p, b));
    }
    if let Err(e) = project.0.delete("counter").await {
        eprintln!("bench: {name}: could not remove the counter: {e}");
    }
}
