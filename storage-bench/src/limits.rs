//! Rows for what the machine and the servers can do without this project: `redis-benchmark`
//! (GET and SET at 1 and 50 clients) against the same Redis, and `pgbench -S -M prepared`
//! (select-only by primary key, prepared statements; 1 and 8 clients) against the same
//! PostgreSQL; and what decoding the JSON payload costs alone. Each figure is the median of
//! [`RUNS`] runs. Not a comparison with our own layer (that is `baselines`): the project's
//! `get` at concurrency 1 is read against these.

use super::{RUNS, Row, Stats};
use std::path::Path;
use std::process::Command;

/// Runs `command` `RUNS` times; each run's figures come from `parse`.
fn median_of<F>(mut command: impl FnMut() -> Command, parse: F) -> Option<Vec<Stats>>
where
    F: Fn(&str) -> Option<Vec<(&'static str, Stats)>>,
{
    let mut per_op: Vec<(&'static str, Vec<Stats>)> = Vec::new();
    for _ in 0..RUNS {
        let out = command().output().ok()?;
        if !out.status.success() {
            eprintln!(
                "bench: {:?} failed: {}",
                command().get_program(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        for (op, stats) in parse(&String::from_utf8_lossy(&out.stdout))? {
            match per_op.iter_mut().find(|(o, _)| *o == op) {
                Some((_, runs)) => runs.push(stats),
                None => per_op.push((op, vec![stats])),
            }
        }
    }
    Some(
        per_op
            .into_iter()
            .map(|(_, runs)| Stats::median(runs))
            .collect(),
    )
}

/// `redis-benchmark` GET and SET at 1 and 50 clients, 200-byte values.
pub(crate) fn redis_benchmark(url: &str, rows: &mut Vec<Row>) {
    let port = redis_port(url);
    for (clients, requests) in [(1usize, "30000"), (50, "200000")] {
        let command = || {
            let mut c = Command::new("redis-benchmark");
            c.args(["-h", "127.0.0.1", "-p", &port, "-c", &clients.to_string()])
                .args([
                    "-P", "1", "-n", requests, "-d", "200", "-t", "set,get", "--csv",
                ]);
            c
        };
        let Some(figures) = median_of(command, parse_redis_benchmark_csv) else {
            eprintln!("bench: redis-benchmark did not run; its rows are left out");
            return;
        };
        for (op, stats) in ["set", "get"].into_iter().zip(figures) {
            eprintln!(
                "bench: redis-benchmark {op} c={clients} {:.0} requests/s",
                stats.ops_per_sec
            );
            rows.push(limit_row("redis-benchmark", op, clients, stats));
        }
    }
}

/// One run of `redis-benchmark` at one client: `requests` of `op` (`get` or `set`) with a
/// 200-byte value, in requests per second; `None` when it did not run. For pairing with a
/// run of the project's own in the same moment (`redis_runtime.rs`).
pub(crate) fn redis_benchmark_once(url: &str, op: &str, requests: usize) -> Option<f64> {
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &redis_port(url),
            "-c",
            "1",
            "-P",
            "1",
        ])
        .args(["-n", &requests.to_string(), "-d", "200", "-t", op, "--csv"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let (_, stats) = redis_benchmark_rows(&String::from_utf8_lossy(&out.stdout))
        .into_iter()
        .next()?;
    Some(stats.ops_per_sec)
}

/// The script a database-role `set` runs on one server, as its work reads to the server: the
/// `SET` and the change filed with `XADD` (the project's own script is private to its crate;
/// this one does the same two writes).
const LOGGED_SET: &str = "redis.call('SET', KEYS[1], ARGV[1]) \
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'k', ARGV[2], 't', '0', 'v', '') \
    return 1";

/// `redis-benchmark` at one client running the same writes a database-role `set` asks of the
/// server (a `SET` and its change filed, by `EVALSHA`), with a 200-byte value: the limit of
/// that work, where the plain `SET` row is the limit of less.
pub(crate) fn redis_benchmark_logged_set(url: &str) -> Option<Stats> {
    let port = redis_port(url);
    let load = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port, "SCRIPT", "LOAD", LOGGED_SET])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let sha = String::from_utf8_lossy(&load.stdout).trim().to_string();
    let value = "x".repeat(200);
    let command = || {
        let mut c = Command::new("redis-benchmark");
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-c",
            "1",
            "-n",
            "30000",
            "--csv",
        ])
        .args([
            "EVALSHA",
            &sha,
            "2",
            "rblogged:k",
            "rblogged:log",
            &value,
            "k",
        ]);
        c
    };
    let parse = |stdout: &str| {
        let (_, stats) = redis_benchmark_rows(stdout).into_iter().next()?;
        Some(vec![("set", stats)])
    };
    let stats = median_of(command, parse)?.pop()?;
    let _ = Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "DEL",
            "rblogged:k",
            "rblogged:log",
        ])
        .output();
    Some(stats)
}

/// The port of a `redis://host:port[/db]` URL (Redis's 6379 when it names none).
fn redis_port(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.port())
        .unwrap_or(6379)
        .to_string()
}

/// Each test of `redis-benchmark --csv` with its figures, after the header
/// (`"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",…,"p99_latency_ms",…`).
/// Every cell is quoted, and a test's name (a whole command line) may hold commas, so cells
/// are split at `","`. A row without a rate is left out; a missing latency is NaN.
fn redis_benchmark_rows(stdout: &str) -> Vec<(String, Stats)> {
    let mut rows = Vec::new();
    for line in stdout.lines().skip(1) {
        let cells: Vec<&str> = line.trim().trim_matches('"').split("\",\"").collect();
        let ms = |i: usize| cells.get(i).and_then(|c| c.parse::<f64>().ok());
        let Some(rps) = ms(1) else { continue };
        let (p50, p99) = (
            ms(4).map_or(f64::NAN, |v| v * 1000.0),
            ms(6).map_or(f64::NAN, |v| v * 1000.0),
        );
        rows.push((cells[0].to_string(), Stats::single(rps, p50, p99)));
    }
    rows
}

/// SET then GET rows of `redis-benchmark --csv`.
fn parse_redis_benchmark_csv(stdout: &str) -> Option<Vec<(&'static str, Stats)>> {
    let found: Vec<(&'static str, Stats)> = redis_benchmark_rows(stdout)
        .into_iter()
        .filter_map(|(test, stats)| match test.as_str() {
            "SET" => Some(("set", stats)),
            "GET" => Some(("get", stats)),
            _ => None,
        })
        .collect();
    (found.len() == 2).then_some(found)
}

/// `pgbench -S -M prepared` (select-only) at 1 and 8 clients, after `pgbench -i` at scale 1.
pub(crate) fn pgbench(pgbench: &Path, url: &str, rows: &mut Vec<Row>) {
    let init = Command::new(pgbench)
        .args(["-i", "-q", "-s", "1", url])
        .output();
    if !init.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("bench: pgbench -i failed; the pgbench rows are left out");
        return;
    }
    for clients in [1usize, 8] {
        let command = || {
            let mut c = Command::new(pgbench);
            let n = clients.to_string();
            c.args([
                "-S", "-M", "prepared", "-n", "-T", "4", "-c", &n, "-j", &n, url,
            ]);
            c
        };
        let Some(figures) = median_of(command, parse_pgbench) else {
            eprintln!("bench: pgbench did not run; its rows are left out");
            return;
        };
        for stats in figures {
            eprintln!(
                "bench: pgbench -S -M prepared c={clients} {:.0} tps",
                stats.ops_per_sec
            );
            rows.push(limit_row("pgbench -S -M prepared", "get", clients, stats));
        }
    }
}

/// `tps = 12345.6 (without initial connection time)` and `latency average = 0.081 ms`.
fn parse_pgbench(stdout: &str) -> Option<Vec<(&'static str, Stats)>> {
    let number_after = |prefix: &str| {
        stdout.lines().find_map(|l| {
            let rest = l.trim().strip_prefix(prefix)?;
            rest.split_whitespace().next()?.parse::<f64>().ok()
        })
    };
    let tps = number_after("tps = ")?;
    let latency_us = number_after("latency average = ").map_or(f64::NAN, |ms| ms * 1000.0);
    Some(vec![("get", Stats::single(tps, latency_us, f64::NAN))])
}

/// What decoding the payload costs on its own: `serde_json` parsing 1 and 100 of the
/// benchmark's values into `Value`s (with this build's features). A 100-key batch returns 100
/// values, so this is the floor of any backend's `mget100` beside its `get`.
pub(crate) fn json_decode(rows: &mut Vec<Row>) {
    let text = serde_json::to_string(&super::payload(7)).expect("the payload encodes");
    for (op, batch) in [("decode1", 1usize), ("decode100", 100)] {
        let calls = 20_000 / batch;
        let mut runs = Vec::new();
        for _ in 0..RUNS {
            let started = std::time::Instant::now();
            for _ in 0..calls {
                for _ in 0..batch {
                    let value: serde_json::Value =
                        serde_json::from_str(std::hint::black_box(&text)).expect("decodes");
                    std::hint::black_box(value);
                }
            }
            let per_call_us = started.elapsed().as_secs_f64() * 1e6 / calls as f64;
            runs.push(Stats::single(1e6 / per_call_us, per_call_us, f64::NAN));
        }
        let stats = Stats::median(runs);
        eprintln!("bench: serde_json {op} {:.0} calls/s", stats.ops_per_sec);
        rows.push(limit_row("serde_json (decode only)", op, 1, stats));
    }
}

fn limit_row(backend: &str, op: &'static str, clients: usize, stats: Stats) -> Row {
    Row::measured(backend, op, clients, stats, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgbench_output_gives_tps_and_mean_latency() {
        let out = "pgbench (15.10)\nlatency average = 0.081 ms\ninitial connection time = 2.1 ms\ntps = 12345.678 (without initial connection time)\n";
        let figures = parse_pgbench(out).unwrap();
        assert_eq!(figures[0].1.ops_per_sec, 12345.678);
        assert!((figures[0].1.p50_us - 81.0).abs() < 1e-9);
        assert!(parse_pgbench("no figures").is_none());
    }

    #[test]
    fn redis_benchmark_csv_gives_both_commands() {
        let out = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"SET\",\"30000.00\",\"0.030\",\"0.010\",\"0.031\",\"0.040\",\"0.050\",\"1.0\"\n\"GET\",\"32000.00\",\"0.030\",\"0.010\",\"0.029\",\"0.040\",\"0.047\",\"1.0\"\n";
        let figures = parse_redis_benchmark_csv(out).unwrap();
        assert_eq!(figures[0].0, "set");
        assert_eq!(figures[1].1.ops_per_sec, 32000.0);
        assert!((figures[1].1.p99_us - 47.0).abs() < 1e-9);
    }

    /// The logged-write row: a test named by its whole command line, commas and all.
    #[test]
    fn redis_benchmark_csv_row_named_by_a_command_line() {
        let out = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"EVALSHA 1a2b 2 k,log xx k\",\"7591.00\",\"0.130\",\"0.050\",\"0.127\",\"0.150\",\"0.191\",\"2.0\"\n";
        let rows = redis_benchmark_rows(out);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, "EVALSHA 1a2b 2 k,log xx k");
        assert_eq!(rows[0].1.ops_per_sec, 7591.0);
        assert!((rows[0].1.p50_us - 127.0).abs() < 1e-9);
        assert!((rows[0].1.p99_us - 191.0).abs() < 1e-9);
    }

    #[test]
    fn redis_port_from_the_url() {
        assert_eq!(redis_port("redis://127.0.0.1:56399"), "56399");
        assert_eq!(redis_port("redis://127.0.0.1:56399/3"), "56399");
        assert_eq!(redis_port("redis://localhost"), "6379");
    }
}
