//! `cargo xtask bench [--quick]`: the benchmark binary (`storage-bench`) and then the OpenDAL
//! peer runner (`storage-bench/peers`), in release mode, against private servers started here;
//! results in `target/bench/results.json`. Not the test matrix (that is `main.rs`).

use super::{cargo, ensure_redis_installed, loud_skip, workspace_root};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use storage_servers::{Postgres, Redis, RedisCluster};

/// `cargo xtask bench [--quick]`: the benchmark binary, in release mode, against private
/// servers; results in `target/bench/results.json`.
pub fn run(args: &[String]) -> ExitCode {
    let quick = args.iter().any(|a| a == "--quick");
    ensure_redis_installed();
    let postgres = Postgres::start(&Default::default())
        .map_err(|e| loud_skip("PostgreSQL", &e.to_string()))
        .ok();
    let redis = Redis::start(&Default::default())
        .map_err(|e| loud_skip("Redis", &e.to_string()))
        .ok();
    let cluster = RedisCluster::start(&Default::default())
        .map_err(|e| loud_skip("Redis Cluster", &e.to_string()))
        .ok();
    eprintln!("xtask: cargo build --release -p storage-bench -p storage-redb");
    let built = cargo()
        .args([
            "build",
            "--release",
            "-p",
            "storage-bench",
            "-p",
            "storage-redb",
        ])
        .status();
    if !built.is_ok_and(|s| s.success()) {
        eprintln!("xtask bench: the build failed");
        return ExitCode::FAILURE;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let mut cmd = Command::new(target.join("release").join("storage-bench"));
    cmd.arg("--out")
        .arg(target.join("bench").join("results.json"));
    if quick {
        cmd.arg("--quick");
    }
    if let Some(pg) = &postgres {
        cmd.args(["--postgres", &pg.url()]);
        cmd.arg("--pgbench").arg(pg.bin_dir().join("pgbench"));
    }
    if let Some(r) = &redis {
        cmd.args(["--redis", &r.url()]);
    }
    if let Some(c) = &cluster {
        cmd.args(["--redis-cluster", &c.url()]);
    }
    let status = cmd.status();
    let peers = status.as_ref().is_ok_and(|s| s.success())
        && peers(&target, quick, postgres.as_ref(), redis.as_ref());
    drop((postgres, redis, cluster));
    if status.is_ok_and(|s| s.success()) && peers {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Builds the OpenDAL peer runner (`storage-bench/peers`, its own lockfile) and runs it against
/// the same servers; it appends its rows to `results.json`. Whether it succeeded.
fn peers(target: &Path, quick: bool, postgres: Option<&Postgres>, redis: Option<&Redis>) -> bool {
    let manifest = workspace_root().join("storage-bench/peers/Cargo.toml");
    eprintln!(
        "xtask: cargo build --release --locked --manifest-path storage-bench/peers/Cargo.toml"
    );
    let built = cargo()
        .args(["build", "--release", "--locked", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", target)
        .status();
    if !built.is_ok_and(|s| s.success()) {
        eprintln!("xtask bench: building the peer runner failed");
        return false;
    }
    let dir = std::env::temp_dir().join(format!("storage-peers-{}", std::process::id()));
    let mut cmd = Command::new(target.join("release").join("storage-bench-peers"));
    cmd.arg("--results")
        .arg(target.join("bench").join("results.json"))
        .arg("--dir")
        .arg(&dir)
        .arg("--redb-plugin")
        .arg(target.join("release").join("libstorage_redb.so"));
    if quick {
        cmd.arg("--quick");
    }
    if let Some(pg) = postgres {
        cmd.args(["--postgres", &pg.url()]);
    }
    if let Some(r) = redis {
        cmd.args(["--redis", &r.url()]);
    }
    let ran = cmd.status().is_ok_and(|s| s.success());
    let _ = std::fs::remove_dir_all(&dir);
    ran
}
