//! Rows for what the machine and the servers can do without this project: `redis-benchmark`
//! against the same Redis. Not a comparison with our own layer (that is `baselines`).

use super::{Row, Stats};

/// `redis-benchmark` GET and SET at 50 clients, 200-byte values.
pub(crate) fn redis_benchmark(url: &str, rows: &mut Vec<Row>) {
    let port = url
        .rsplit(':')
        .next()
        .unwrap_or("6379")
        .trim_end_matches('/')
        .to_string();
    let out = std::process::Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-c",
            "50",
            "-P",
            "1",
            "-n",
            "200000",
            "-d",
            "200",
            "-t",
            "set,get",
            "--csv",
        ])
        .output();
    let Ok(out) = out else {
        eprintln!("bench: redis-benchmark is not installed; its rows are left out");
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines().skip(1) {
        let cells: Vec<String> = line
            .split(',')
            .map(|c| c.trim_matches('"').to_string())
            .collect();
        if cells.len() < 2 {
            continue;
        }
        let op = match cells[0].as_str() {
            "SET" => "set",
            "GET" => "get",
            _ => continue,
        };
        let rps: f64 = cells[1].parse().unwrap_or(0.0);
        let p50 = cells
            .get(4)
            .and_then(|c| c.parse::<f64>().ok())
            .map(|ms| ms * 1000.0);
        let p99 = cells
            .get(6)
            .and_then(|c| c.parse::<f64>().ok())
            .map(|ms| ms * 1000.0);
        rows.push(Row {
            backend: "redis-benchmark".into(),
            op,
            concurrency: Some(50),
            list_len: None,
            project: Some(Stats {
                ops_per_sec: rps,
                p50_us: p50.unwrap_or(f64::NAN),
                p99_us: p99.unwrap_or(f64::NAN),
            }),
            baseline: None,
        });
        eprintln!("bench: redis-benchmark {op} c=50 {rps:.0} requests/s");
    }
}
