//! Runs the `prometheus` example, scrapes its
//! endpoint over HTTP while it serves, and checks the series and their values against the
//! workload it ran.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// `name{labels} value` lines, keyed by the whole series text before the value.
fn series(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[test]
fn the_example_serves_every_series_with_the_workloads_values() {
    let bin = env!("CARGO_BIN_EXE_prometheus");
    let port = storage_servers::free_port().unwrap();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(bin)
        .arg(&addr)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), format!("ready {addr}"));

    let body = ureq::get(&format!("http://{addr}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let got = series(&body);
    let value = |s: &str| {
        *got.get(s)
            .unwrap_or_else(|| panic!("no series {s} in:\n{body}"))
    };
    let op = |system: &str, role: &str, op: &str, suffix: &str| {
        format!(
            "db_client_operation_duration_{suffix}{{db_system_name=\"{system}\",storage_role=\"{role}\",db_operation_name=\"{op}\"}}"
        )
    };
    assert_eq!(value("storage_cache_aside_hits"), 50.0);
    assert_eq!(value("storage_cache_aside_misses"), 10.0);
    assert_eq!(value(&op("sqlite", "database", "set", "count")), 50.0);
    assert_eq!(value(&op("sqlite", "database", "get", "count")), 10.0);
    assert_eq!(value(&op("sqlite", "database", "append", "count")), 5.0);
    assert_eq!(value(&op("in-memory", "cache", "get", "count")), 60.0);
    assert_eq!(value(&op("in-memory", "cache", "set", "count")), 50.0);
    let sum = value(&op("sqlite", "database", "set", "sum"));
    assert!(sum > 0.0 && sum < 50.0, "50 sets took {sum} s");
    let all_sets = "db_client_operation_duration_bucket{db_system_name=\"sqlite\",storage_role=\"database\",db_operation_name=\"set\",le=\"+Inf\"}";
    assert_eq!(value(all_sets), 50.0, "a histogram with buckets");
    assert_eq!(
        value("storage_role_degraded{storage_role=\"database\",db_system_name=\"sqlite\"}"),
        0.0
    );
    assert_eq!(
        value("storage_role_degraded{storage_role=\"cache\",db_system_name=\"in-memory\"}"),
        0.0
    );
    let pool: Vec<(&String, &f64)> = got
        .iter()
        .filter(|(k, _)| k.starts_with("db_client_connection_max{db_system_name=\"sqlite\""))
        .collect();
    assert_eq!(pool.len(), 1, "{body}");
    assert_eq!(*pool[0].1, 10.0, "the default pool max");
    for name in [
        "db_client_connection_count",
        "db_client_connection_waits",
        "db_client_connection_timeouts",
    ] {
        assert!(
            got.keys().any(|k| k.starts_with(name)),
            "no {name} in:\n{body}"
        );
    }
    // No failures in the workload: no series carries an error type.
    assert!(!body.contains("error_type"), "{body}");
}
