//! `cargo xtask bench --scale`: the scale curves (`storage-bench --scale`) in release mode
//! against private PostgreSQL and Redis servers, into `target/bench/scale.json` and
//! `docs/bench/*.svg`, captioned with the machine, the date and the commit; and `xtask test`'s
//! smoke run of the same mode at tiny sizes, so that it cannot rot.

use super::workspace_root;
use std::path::Path;
use std::process::{Command, ExitCode};

/// `<cpu model>, <n> cores, <date>, commit <hash>`.
fn caption() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let run = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .current_dir(workspace_root())
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    format!(
        "{cpu}, {cores} cores, {}, commit {}",
        run("date", &["-u", "+%F"]),
        run("git", &["rev-parse", "--short", "HEAD"])
    )
}

/// The full curves, with the servers started here.
pub fn bench(target: &Path) -> ExitCode {
    let (postgres, redis) = super::bench::servers();
    if !super::bench::release_build(&["storage-bench", "storage-cli", "storage-redb"]) {
        return ExitCode::FAILURE;
    }
    let mut cmd = Command::new(target.join("release").join("storage-bench"));
    cmd.arg("--scale")
        .arg("--out")
        .arg(target.join("bench").join("scale.json"))
        .arg("--plots")
        .arg(workspace_root().join("docs").join("bench"))
        .args(["--caption", &caption()])
        .arg("--redb-plugin")
        .arg(target.join("release").join("libstorage_redb.so"));
    if let Some(pg) = &postgres {
        cmd.args(["--postgres", &pg.url()]);
    }
    if let Some(r) = &redis {
        cmd.args(["--redis", &r.url()]);
    }
    let status = cmd.status();
    drop((postgres, redis));
    if status.is_ok_and(|s| s.success()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `xtask test`'s run of the scale mode at its smoke sizes (the debug build), on the shared
/// servers: every backend's curves in `scale.json` and drawn. What failed, if anything.
pub fn smoke(target: &Path, postgres_url: &str, redis_url: &str) -> Vec<String> {
    let dir = match storage_servers::temp_dir("scale") {
        Ok(d) => d,
        Err(e) => return vec![format!("scale smoke: {e}")],
    };
    let out = dir.join("scale.json");
    let plots = dir.join("plots");
    eprintln!("xtask: storage-bench --scale --smoke");
    let ran = Command::new(target.join("debug").join("storage-bench"))
        .args(["--scale", "--smoke", "--caption", "smoke"])
        .arg("--out")
        .arg(&out)
        .arg("--plots")
        .arg(&plots)
        .args(["--postgres", postgres_url, "--redis", redis_url])
        .arg("--redb-plugin")
        .arg(target.join("debug").join("libstorage_redb.so"))
        .status();
    let mut failures = Vec::new();
    if !ran.is_ok_and(|s| s.success()) {
        failures.push("storage-bench --scale --smoke failed".to_string());
    } else {
        let json: serde_json::Value = std::fs::read_to_string(&out)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let count = |field: &str| json[field].as_array().map_or(0, Vec::len);
        let svgs = std::fs::read_dir(&plots).map_or(0, |d| d.count());
        // 4 backends × (2 + 4 + 4 + 3) curves, drawn as 4 × 4 plots; bytes per key at two
        // namespace sizes on 3 servers, 3 in-process probes and 3 bulk loads; 3 × 2 migrations.
        // Redis at one task: 2 runtimes × (3 sides (solo, pool, raw) × 4 operations + the raw
        // driver's logged `mset100`); redb: 2 operations × 2
        // concurrencies; the in-memory store's layers: 4 stacks × 2 operations.
        let found = (
            count("curves"),
            svgs,
            count("footprint"),
            count("migrate"),
            count("redis_one_task"),
            count("redb_plugin_against_linked"),
            count("in_memory_layers"),
        );
        if found != (52, 16, 12, 6, 26, 4, 8) {
            failures.push(format!(
                "storage-bench --scale --smoke wrote (curves, plots, footprints, migrations, redis one-task rows, redb rows, in-memory layer rows) {found:?}, not (52, 16, 12, 6, 26, 4, 8)"
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    failures
}
