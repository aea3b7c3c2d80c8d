//! The main benchmark's rows for one backend: every operation at each concurrency, through
//! the project and through the raw driver (the baseline), runs alternating, each figure the
//! median of three, with the disks' flushes per write counted on both sides. Not the servers
//! or the backends' set-up (`main.rs`), nor the harness that times a run (`harness.rs`).

use crate::harness::{RUNS, Row, Stats, measure};
use crate::peer::workload;
use crate::{Op, Project, Subject};
use std::sync::Arc;

/// A measured run of `op`, adding the disks' flushes during it to `flushes` (None once a
/// reading fails).
async fn counted<S: Subject>(
    subject: &Arc<S>,
    op: Op,
    c: usize,
    total: usize,
    flushes: &mut Option<u64>,
) -> Stats {
    let before = workload::disk_flushes();
    let stats = measure(subject.clone(), op, c, total).await;
    let during = workload::disk_flushes()
        .zip(before)
        .map(|(after, before)| after - before);
    *flushes = flushes.zip(during).map(|(sum, n)| sum + n);
    stats
}

pub(crate) async fn bench_backend<B: Subject>(
    name: &str,
    project: Arc<Project>,
    baseline: Arc<B>,
    concurrencies: &[usize],
    ops_scale: usize,
    big_list: u64,
    rows: &mut Vec<Row>,
) {
    let ops = [
        Op::Get,
        Op::Set,
        Op::Mget100,
        Op::Mset100,
        Op::Append(1000),
        Op::Tail20(1000),
        Op::Append(big_list),
        Op::Tail20(big_list),
        // Last of the list rows: each call drops the head item, so the 1,000,000-item list
        // loses a few thousand items; O(removed) means it costs about what an append does.
        Op::TrimHead(big_list),
        Op::KeysPrefix,
    ];
    for &c in concurrencies {
        for op in ops {
            let total = match op {
                Op::KeysPrefix => (ops_scale / 100).max(c * 2),
                Op::Mget100 | Op::Mset100 => (ops_scale / 10).max(c * 4),
                _ => ops_scale.max(c * 20),
            };
            // Warm up both, then RUNS rounds measuring the baseline and the project in turn,
            // alternating which goes first; each figure is the median of its runs.
            let has_baseline = !matches!(op, Op::TrimHead(_));
            if has_baseline {
                measure(baseline.clone(), op, c, total / 10 + 1).await;
            }
            measure(project.clone(), op, c, total / 10 + 1).await;
            let (mut base_runs, mut project_runs) = (Vec::new(), Vec::new());
            // The disks' flushes during each side's runs: a write's durable cost, counted.
            let (mut base_flushes, mut project_flushes) = (Some(0), Some(0));
            for round in 0..RUNS {
                if round % 2 == 1 {
                    project_runs.push(counted(&project, op, c, total, &mut project_flushes).await);
                }
                if has_baseline {
                    base_runs.push(counted(&baseline, op, c, total, &mut base_flushes).await);
                }
                if round % 2 == 0 {
                    project_runs.push(counted(&project, op, c, total, &mut project_flushes).await);
                }
            }
            let b = has_baseline.then(|| Stats::median(base_runs));
            let p = Stats::median(project_runs);
            let per_op = |flushes: Option<u64>| {
                let writes = matches!(op, Op::Set | Op::Mset100 | Op::Append(_) | Op::TrimHead(_));
                // Per call (an `mset100` is one call).
                writes
                    .then(|| workload::per_op(Some(0), flushes, RUNS * total))
                    .flatten()
            };
            let flushes = [
                per_op(project_flushes),
                has_baseline.then(|| per_op(base_flushes)).flatten(),
            ];
            eprintln!(
                "bench: {name:<10} {:<13} c={c:<3} list={:<8} {:>10.0} ops/s ({:.0}–{:.0})  p50 {:>8.1} µs  p99 {:>8.1} µs  baseline {:>10} ops/s  ratio {}",
                op.name(),
                op.list_len().map_or("-".to_string(), |n| n.to_string()),
                p.ops_per_sec,
                p.min_ops_per_sec,
                p.max_ops_per_sec,
                p.p50_us,
                p.p99_us,
                b.map_or("-".into(), |b| format!("{:.0}", b.ops_per_sec)),
                b.map_or("-".into(), |b| format!(
                    "{:.2}",
                    p.ops_per_sec / b.ops_per_sec
                )),
            );
            rows.push(
                Row::measured(name, op.name(), c, p, b)
                    .with_list_len(op.list_len())
                    .with_flushes(flushes),
            );
        }
    }
}
