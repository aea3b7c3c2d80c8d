//! `cargo xtask bench [--quick | --scale]`: the benchmark binary (`storage-bench`) and then the OpenDAL
//! peer runner (`storage-bench/peers`), in release mode, against private servers started here;
//! results in `target/bench/results.json`. Not the test matrix (that is `main.rs`).

use super::{cargo, ensure_redis_installed, loud_skip, target_dir, workspace_root};
use std::path::Path;
use std::process::{Command, ExitCode};
use storage_servers::{Postgres, Redis, RedisCluster, S3Server};

/// `cargo xtask bench [--quick]`: the benchmark binary, in release mode, against private
/// servers; results in `target/bench/results.json`.
pub fn run(args: &[String]) -> ExitCode {
    let quick = args.iter().any(|a| a == "--quick");
    ensure_redis_installed();
    if args.iter().any(|a| a == "--scale") {
        return super::scale::bench(&target_dir());
    }
    let (postgres, redis) = servers();
    let cluster = RedisCluster::start(&Default::default())
        .map_err(|e| loud_skip("Redis Cluster", &e.to_string()))
        .ok();
    super::ensure_s3s_fs_installed();
    let s3 = S3Server::start()
        .map_err(|e| loud_skip("S3-protocol server", &e.to_string()))
        .ok();
    if !release_build(&["storage-bench", "storage-redb"]) {
        return ExitCode::FAILURE;
    }
    let target = target_dir();
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
    if let Some(s) = &s3 {
        cmd.args(["--s3", &s.endpoint()])
            .args(["--s3-access", s.access_key()])
            .args(["--s3-secret", s.secret_key()]);
    }
    let status = cmd.status();
    let peers = status.as_ref().is_ok_and(|s| s.success()) && {
        let (pg, r) = (
            postgres.as_ref().map(Postgres::url),
            redis.as_ref().map(Redis::url),
        );
        let results = target.join("bench").join("results.json");
        peers(
            &target,
            PeerRun::Bench { quick },
            &results,
            pg.as_deref(),
            r.as_deref(),
        )
        .map_err(|e| eprintln!("xtask bench: {e}"))
        .is_ok()
    };
    drop((postgres, redis, cluster, s3));
    if status.is_ok_and(|s| s.success()) && peers {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The benchmarks' PostgreSQL and Redis, each skipped loudly if it cannot start. PostgreSQL
/// runs durable, as in production: the published write figures pay their fsyncs.
pub fn servers() -> (Option<Postgres>, Option<Redis>) {
    let postgres = Postgres::start(&storage_servers::PostgresOptions {
        durable: true,
        ..Default::default()
    })
    .map_err(|e| loud_skip("PostgreSQL", &e.to_string()))
    .ok();
    let redis = Redis::start(&Default::default())
        .map_err(|e| loud_skip("Redis", &e.to_string()))
        .ok();
    (postgres, redis)
}

/// Builds `packages` in release mode; false (said on stderr) when the build failed.
pub fn release_build(packages: &[&str]) -> bool {
    eprintln!("xtask: cargo build --release -p {}", packages.join(" -p "));
    let mut build = cargo();
    build.args(["build", "--release"]);
    for package in packages {
        build.args(["-p", package]);
    }
    let built = build.status().is_ok_and(|s| s.success());
    if !built {
        eprintln!("xtask bench: the build failed");
    }
    built
}

/// How the peer runner is built and run.
#[derive(Clone, Copy, PartialEq)]
pub enum PeerRun {
    /// Release build, `--quick` or the full scale, rows kept in `results.json`.
    Bench { quick: bool },
    /// Debug build, a few operations per figure, rows checked and thrown away (`xtask test`).
    Smoke,
}

/// Builds the OpenDAL peer runner (`storage-bench/peers`, its own lockfile) and runs it against
/// the given servers, appending its rows to `results`. What failed, if anything.
pub fn peers(
    target: &Path,
    run: PeerRun,
    results: &Path,
    postgres_url: Option<&str>,
    redis_url: Option<&str>,
) -> Result<(), String> {
    let manifest = workspace_root().join("storage-bench/peers/Cargo.toml");
    let profile = if run == PeerRun::Smoke {
        "debug"
    } else {
        "release"
    };
    eprintln!(
        "xtask: cargo build --locked --manifest-path storage-bench/peers/Cargo.toml ({profile})"
    );
    let mut build = cargo();
    build
        .args(["build", "--locked", "--manifest-path"])
        .arg(&manifest);
    if run != PeerRun::Smoke {
        build.arg("--release");
    }
    let built = build.env("CARGO_TARGET_DIR", target).status();
    if !built.is_ok_and(|s| s.success()) {
        return Err("building the OpenDAL peer runner (storage-bench/peers) failed".into());
    }
    let dir = std::env::temp_dir().join(format!("storage-peers-{}", std::process::id()));
    let mut cmd = Command::new(target.join(profile).join("storage-bench-peers"));
    cmd.arg("--results")
        .arg(results)
        .arg("--dir")
        .arg(&dir)
        .arg("--redb-plugin")
        .arg(target.join(profile).join("libstorage_redb.so"));
    match run {
        PeerRun::Bench { quick: true } => {
            cmd.arg("--quick");
        }
        PeerRun::Smoke => {
            cmd.arg("--smoke");
        }
        PeerRun::Bench { quick: false } => {}
    }
    if let Some(url) = postgres_url {
        cmd.args(["--postgres", url]);
    }
    if let Some(url) = redis_url {
        cmd.args(["--redis", url]);
    }
    let ran = cmd.status();
    let _ = std::fs::remove_dir_all(&dir);
    match ran {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("the OpenDAL peer runner failed: {s}")),
        Err(e) => Err(format!("running the OpenDAL peer runner: {e}")),
    }
}

/// `xtask test`'s check of the peer runner: it builds, loads the redb plugin, and (its
/// `--smoke` mode checks this itself) writes a row with a ratio for every service it was given
/// (SQLite is measured on OpenDAL's side only: our side's rows come from `storage-bench`, which
/// the tests do not run).
pub fn peers_smoke(target: &Path, postgres_url: &str, redis_url: &str) -> Vec<String> {
    let results = std::env::temp_dir().join(format!("storage-peers-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&results);
    let outcome = peers(
        target,
        PeerRun::Smoke,
        &results,
        Some(postgres_url),
        Some(redis_url),
    );
    let _ = std::fs::remove_file(&results);
    outcome.err().into_iter().collect()
}
