//! The measuring harness: runs operations from concurrent tasks and times each; reduces
//! repeated runs to their median with the spread kept; the result rows and the Markdown table.
//! It knows nothing of backends (that is `main.rs` and `baselines.rs`).

use super::{Op, Subject, run_op};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// How many measured runs each figure is the median of.
pub const RUNS: usize = 3;

/// One figure: the median run's rate and latencies, with the slowest and fastest run's rates.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub ops_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub min_ops_per_sec: f64,
    pub max_ops_per_sec: f64,
    pub runs: usize,
}

impl Stats {
    /// A single measured run.
    pub fn single(ops_per_sec: f64, p50_us: f64, p99_us: f64) -> Stats {
        Stats {
            ops_per_sec,
            p50_us,
            p99_us,
            min_ops_per_sec: ops_per_sec,
            max_ops_per_sec: ops_per_sec,
            runs: 1,
        }
    }

    /// One run: `latencies` (nanoseconds, one per operation) over `elapsed`.
    pub fn of(mut latencies: Vec<u64>, elapsed: std::time::Duration) -> Stats {
        latencies.sort_unstable();
        let pct = |p: f64| {
            latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)] as f64
                / 1000.0
        };
        Stats::single(
            latencies.len() as f64 / elapsed.as_secs_f64(),
            pct(0.5),
            pct(0.99),
        )
    }

    /// The median run (by rate; its latencies with it), with the range of all runs.
    pub fn median(mut runs: Vec<Stats>) -> Stats {
        assert!(!runs.is_empty(), "a median of no runs");
        runs.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
        Stats {
            min_ops_per_sec: runs[0].min_ops_per_sec,
            max_ops_per_sec: runs[runs.len() - 1].max_ops_per_sec,
            runs: runs.iter().map(|r| r.runs).sum(),
            ..runs[runs.len() / 2]
        }
    }
}

/// Runs `total` operations from `concurrency` tasks; latency per operation.
pub async fn measure<S: Subject>(
    subject: Arc<S>,
    op: Op,
    concurrency: usize,
    total: usize,
) -> Stats {
    let per_task = total.div_ceil(concurrency);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let s = subject.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_task);
            for k in 0..per_task {
                let begun = Instant::now();
                run_op(s.as_ref(), op, t * per_task + k)
                    .await
                    .expect("benchmark operation");
                lat.push(begun.elapsed().as_nanos() as u64);
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("benchmark task"));
    }
    Stats::of(all, started.elapsed())
}

/// A warm-up run, then the median of [`RUNS`] measured runs.
pub async fn measure_median<S: Subject>(
    subject: Arc<S>,
    op: Op,
    concurrency: usize,
    total: usize,
) -> Stats {
    measure(subject.clone(), op, concurrency, total / 10 + 1).await;
    let mut runs = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        runs.push(measure(subject.clone(), op, concurrency, total).await);
    }
    Stats::median(runs)
}

/// One row of `results.json`.
pub struct Row {
    pub backend: String,
    pub op: &'static str,
    pub concurrency: Option<usize>,
    pub list_len: Option<u64>,
    pub project: Option<Stats>,
    pub baseline: Option<Stats>,
    /// For the stampede rows: how many loads reached the database.
    pub loads: Option<u64>,
    /// The disks' flushes per operation, ours and the baseline's, for the writes that count
    /// them (`peer::workload::disk_flushes`).
    pub flushes: [Option<f64>; 2],
}

impl Row {
    /// A row measured at `concurrency` tasks: the project's figures and, when there is one,
    /// the baseline's; no list length, database loads or flush counts (see the `with_`
    /// methods).
    pub fn measured(
        backend: impl Into<String>,
        op: &'static str,
        concurrency: usize,
        project: Stats,
        baseline: Option<Stats>,
    ) -> Row {
        Row {
            backend: backend.into(),
            op,
            concurrency: Some(concurrency),
            list_len: None,
            project: Some(project),
            baseline,
            loads: None,
            flushes: [None, None],
        }
    }

    /// The row for a list of `list_len` items.
    pub fn with_list_len(mut self, list_len: Option<u64>) -> Row {
        self.list_len = list_len;
        self
    }

    /// The row with the disk flushes per operation, ours and the baseline's.
    pub fn with_flushes(mut self, flushes: [Option<f64>; 2]) -> Row {
        self.flushes = flushes;
        self
    }

    /// The row with how many loads reached the database (the stampede rows).
    pub fn with_loads(mut self, loads: u64) -> Row {
        self.loads = Some(loads);
        self
    }

    pub fn json(&self) -> Value {
        let p = self.project;
        json!({
            "backend": self.backend,
            "op": self.op,
            "concurrency": self.concurrency,
            "list_len": self.list_len,
            "ops_per_sec": p.map(|s| s.ops_per_sec),
            "ops_per_sec_min": p.map(|s| s.min_ops_per_sec),
            "ops_per_sec_max": p.map(|s| s.max_ops_per_sec),
            "runs": p.map(|s| s.runs),
            "p50_us": p.map(|s| s.p50_us),
            "p99_us": p.map(|s| s.p99_us),
            "database_loads": self.loads,
            "flushes_per_op": self.flushes[0],
            "baseline_flushes_per_op": self.flushes[1],
            "baseline_ops_per_sec": self.baseline.map(|s| s.ops_per_sec),
            "baseline_ops_per_sec_min": self.baseline.map(|s| s.min_ops_per_sec),
            "baseline_ops_per_sec_max": self.baseline.map(|s| s.max_ops_per_sec),
            "ratio": match (p, self.baseline) {
                (Some(p), Some(b)) => Some(p.ops_per_sec / b.ops_per_sec),
                _ => None,
            },
        })
    }
}

/// The rows as a Markdown table: medians, with the range of the project's runs.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| backend | op | c | list | ops/s (median) | min–max | p50 µs | p99 µs | baseline ops/s | ratio | disk flushes/op (ours, baseline) |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let p = r
            .project
            .unwrap_or(Stats::single(f64::NAN, f64::NAN, f64::NAN));
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {:.0}–{:.0} | {:.1} | {:.1} | {} | {} | {} |\n",
            r.backend,
            r.op,
            r.concurrency.map_or("-".into(), |c| c.to_string()),
            r.list_len.map_or("-".into(), |n| n.to_string()),
            p.ops_per_sec,
            p.min_ops_per_sec,
            p.max_ops_per_sec,
            p.p50_us,
            p.p99_us,
            r.baseline
                .map_or("-".into(), |b| format!("{:.0}", b.ops_per_sec)),
            r.baseline.map_or("-".into(), |b| format!(
                "{:.2}",
                p.ops_per_sec / b.ops_per_sec
            )),
            match r.flushes {
                [None, None] => "-".to_string(),
                [ours, base] => {
                    let f = |x: Option<f64>| x.map_or("-".into(), |x| format!("{x:.2}"));
                    format!("{}, {}", f(ours), f(base))
                }
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_keeps_the_middle_run_and_the_range() {
        let runs = vec![
            Stats::single(300.0, 3.0, 30.0),
            Stats::single(100.0, 1.0, 10.0),
            Stats::single(200.0, 2.0, 20.0),
        ];
        let m = Stats::median(runs);
        assert_eq!((m.ops_per_sec, m.p50_us, m.p99_us), (200.0, 2.0, 20.0));
        assert_eq!(
            (m.min_ops_per_sec, m.max_ops_per_sec, m.runs),
            (100.0, 300.0, 3)
        );
    }
}
