//! `cargo xtask`: the project's automation, with few dependencies so that it builds fast.
//!
//! - `cargo xtask test [--require-all]` starts the throwaway servers the backends need, exports
//!   their URLs, runs `cargo test --workspace --all-features`, then the conformance runner for
//!   every backend × role (the TLS servers and the plugin libraries included), and exits non-zero
//!   on any failure. With `--require-all` (CI), a test that cannot get its server fails, and so
//!   does any skipped matrix line.
//! - `cargo xtask bench [--quick]` builds `storage-bench` and the OpenDAL peer runner in release
//!   mode, runs them against private servers, and writes `target/bench/results.json` (`bench.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use storage_servers::{
    Postgres, PostgresOptions, Redis, RedisCluster, RedisOptions, S3Server, TestCerts,
};

mod accounts;
mod bench;
mod matrix;
mod package;
mod scale;
use matrix::{MATRIX, Served, Server};

#[cfg(test)]
mod tidy;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask test [--require-all] | cargo xtask bench [--quick | --scale]"
            );
            ExitCode::from(2)
        }
    }
}

/// Installs redis-server when it is missing and we may (root); otherwise says how.
fn ensure_redis_installed() {
    if storage_servers::find_redis_server().is_some() {
        return;
    }
    if storage_servers::is_root() {
        eprintln!("xtask: redis-server not found; installing it with apt-get");
        let update = Command::new("apt-get").arg("update").status();
        let install = Command::new("apt-get")
            .args(["install", "-y", "redis-server"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
        if !update.is_ok_and(|s| s.success()) || !install.is_ok_and(|s| s.success()) {
            eprintln!("xtask: apt-get install -y redis-server failed");
        }
    } else {
        eprintln!(
            "xtask: redis-server not found; install it with: sudo apt-get install -y redis-server"
        );
    }
}

/// Installs the S3-protocol test server into `target/tools` when it is not found: it is not
/// packaged by distributions, and building it needs only the crate registry.
fn ensure_s3s_fs_installed() {
    if storage_servers::find_s3s_fs().is_some() {
        return;
    }
    let target = target_dir();
    let version = storage_servers::S3S_FS_VERSION;
    eprintln!(
        "xtask: s3s-fs not found; cargo install s3s-fs@{version} into {}",
        target.join("tools").display()
    );
    let installed = cargo()
        .args([
            "install",
            &format!("s3s-fs@{version}"),
            "--features",
            "binary",
            "--locked",
        ])
        .arg("--root")
        .arg(target.join("tools"))
        .arg("--target-dir")
        .arg(&target)
        .status();
    if !installed.is_ok_and(|s| s.success()) {
        eprintln!("xtask: cargo install s3s-fs@{version} failed");
    }
}

/// The target directory (`$CARGO_TARGET_DIR` or `target`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn loud_skip(what: &str, why: &str) {
    eprintln!(
        "\n!!! SKIPPED {what}: {why}\n!!! install: apt-get install -y redis-server postgresql; cargo xtask test installs s3s-fs\n"
    );
}

fn test(args: &[String]) -> ExitCode {
    let require_all = args.iter().any(|a| a == "--require-all");
    if let Some(bad) = args.iter().find(|a| *a != "--require-all") {
        eprintln!("xtask test: unknown argument {bad:?}");
        return ExitCode::from(2);
    }
    ensure_redis_installed();
    ensure_s3s_fs_installed();

    // The shared servers, for the matrix entries and the tests that need them. They stop when
    // these handles drop, on every return path below, and die with this process otherwise.
    let mut failures: Vec<String> = Vec::new();
    let needs = |s: Server| MATRIX.iter().any(|e| e.server == s);
    let mut start =
        |name: &str, wanted: bool, f: &dyn Fn() -> std::io::Result<Served>| -> Option<Served> {
            if !wanted {
                return None;
            }
            match f() {
                Ok(served) => {
                    eprintln!("xtask: {name} at {}", served.url());
                    Some(served)
                }
                Err(e) => {
                    if require_all {
                        failures.push(format!("cannot start {name}: {e}"));
                    } else {
                        loud_skip(name, &e.to_string());
                    }
                    None
                }
            }
        };
    let postgres = start("PostgreSQL", needs(Server::Postgres), &|| {
        Postgres::start(&Default::default()).map(Served::Postgres)
    });
    let redis = start("Redis", needs(Server::Redis), &|| {
        Redis::start(&Default::default()).map(Served::Redis)
    });
    // TLS servers for the matrix over TLS, with certificates made for this run.
    let certs = TestCerts::generate();
    let ca = certs
        .as_ref()
        .map(|c| c.server.ca.display().to_string())
        .unwrap_or_default();
    let tls_files = certs.as_ref().ok().map(|c| c.server.clone());
    let postgres_tls = start("PostgreSQL with TLS", needs(Server::PostgresTls), &|| {
        let tls = tls_files
            .clone()
            .ok_or_else(|| std::io::Error::other("no test certificates"))?;
        Postgres::start(&PostgresOptions {
            tls: Some(tls),
            ..Default::default()
        })
        .map(Served::Postgres)
    });
    let postgres_ha = start(
        "PostgreSQL primary with a synchronous standby",
        needs(Server::PostgresHa),
        &|| {
            let primary = Postgres::start(&PostgresOptions {
                synchronous_standby: true,
                ..Default::default()
            })?;
            let standby = Postgres::start_standby(&primary)?;
            Ok(Served::PostgresPair(primary, standby))
        },
    );
    let redis_tls = start("Redis with TLS", needs(Server::RedisTls), &|| {
        let tls = tls_files
            .clone()
            .ok_or_else(|| std::io::Error::other("no test certificates"))?;
        Redis::start(&RedisOptions {
            tls: Some(tls),
            ..Default::default()
        })
        .map(Served::Redis)
    });
    let redis_cluster = start("Redis Cluster", needs(Server::RedisCluster), &|| {
        RedisCluster::start(&Default::default()).map(Served::RedisCluster)
    });
    let s3 = start("S3-protocol server (s3s-fs)", needs(Server::S3), &|| {
        S3Server::start().map(Served::S3)
    });
    let (s3_access, s3_secret) = match &s3 {
        Some(Served::S3(s)) => (s.access_key().to_string(), s.secret_key().to_string()),
        _ => Default::default(),
    };

    let mut envs: Vec<(&str, String)> = Vec::new();
    if let Some(pg) = &postgres {
        envs.push(("STORAGE_TEST_POSTGRES_URL", pg.url()));
    }
    if let Some(r) = &redis {
        envs.push(("STORAGE_TEST_REDIS_URL", r.url()));
    }
    if require_all {
        envs.push(("STORAGE_TEST_REQUIRE_ALL", "1".into()));
    }

    // `cargo test` does not emit cdylibs: build the plugins with the host's own invocation and
    // flags, and tell the tests where they are.
    eprintln!("xtask: cargo build --workspace --all-targets --all-features");
    let built_all = cargo()
        .args(["build", "--workspace", "--all-targets", "--all-features"])
        .status();
    if !built_all.is_ok_and(|s| s.success()) {
        failures.push("cargo build --workspace --all-targets --all-features failed".into());
    }
    let target = target_dir();
    // The plugin template builds on its own, as a copied plugin would, into the same target
    // directory; the matrix then loads it like any plugin.
    // `--locked`: its lockfile must follow the host crates' dependencies, as a copied plugin's
    // would have to.
    eprintln!("xtask: cargo build --locked --manifest-path plugins/template/Cargo.toml");
    let template = cargo()
        .args(["build", "--locked", "--manifest-path"])
        .arg(workspace_root().join("plugins/template/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .status();
    if !template.is_ok_and(|s| s.success()) {
        failures.push("building the plugin template (plugins/template) failed".into());
    }
    failures.extend(package::downstream(&target));
    let plugin_dir = target.join("debug");
    envs.push(("STORAGE_TEST_PLUGIN_DIR", plugin_dir.display().to_string()));

    eprintln!("xtask: cargo test --workspace --all-features");
    let status = cargo()
        .args(["test", "--workspace", "--all-features", "--no-fail-fast"])
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .status();
    if !status.is_ok_and(|s| s.success()) {
        failures.push("cargo test --workspace --all-features failed".into());
    }

    failures.extend(package::check());
    match (&postgres, &redis) {
        (Some(pg), Some(r)) => {
            failures.extend(bench::peers_smoke(&target, &pg.url(), &r.url()));
            failures.extend(scale::smoke(&target, &pg.url(), &r.url()));
        }
        _ => failures.push("the OpenDAL peer runner needs PostgreSQL and Redis".into()),
    }

    eprintln!("xtask: building the conformance runner");
    let built = cargo()
        .args(["build", "--quiet", "-p", "storage-runner", "--all-features"])
        .status();
    let runner = target.join("debug").join("storage-runner");
    if !built.is_ok_and(|s| s.success()) {
        failures.push("building storage-runner failed".into());
    } else {
        // The production-account lines' role and users, made with `storage init` and `acl`.
        let acl_password = accounts::password();
        let account_values = accounts::prepare(
            &target.join("debug").join("storage"),
            postgres.as_ref(),
            redis.as_ref(),
            &acl_password,
            &mut failures,
        );
        envs.push((accounts::PASSWORD_VAR, acl_password));
        let mut lines = Vec::new();
        for entry in MATRIX {
            let served = match entry.server {
                Server::None => None,
                Server::Postgres => postgres.as_ref(),
                Server::Redis => redis.as_ref(),
                Server::PostgresTls => postgres_tls.as_ref(),
                Server::PostgresHa => postgres_ha.as_ref(),
                Server::RedisTls => redis_tls.as_ref(),
                Server::RedisCluster => redis_cluster.as_ref(),
                Server::S3 => s3.as_ref(),
            };
            let url = match entry.server {
                Server::None => Some(String::new()),
                _ => served.map(Served::url),
            };
            let Some(url) = url else {
                let line = format!(
                    "matrix: {} {} passed=0 failed=0 skipped=all (no server)",
                    entry.label, entry.role
                );
                println!("{line}");
                if require_all {
                    failures.push(line.clone());
                }
                lines.push((entry.label, line));
                continue;
            };
            let tmp = storage_servers::temp_dir("matrix").expect("temp dir under /tmp");
            let block = entry
                .block
                .replace("{url}", &url)
                .replace("{ca}", &ca)
                .replace("{s3-access}", &s3_access)
                .replace("{s3-secret}", &s3_secret)
                .replace("{plugins}", &plugin_dir.display().to_string())
                .replace("{tmp}", &tmp.display().to_string());
            let block = account_values
                .iter()
                .fold(block, |block, (key, value)| block.replace(key, value));
            eprintln!(
                "xtask: conformance kit: {} {} ({})",
                entry.label, entry.role, entry.block
            );
            let mut runner_cmd = Command::new(&runner);
            runner_cmd.args(["--role", entry.role]);
            if block.starts_with("storage:") {
                let config = tmp.join("storage.yml");
                if let Err(e) = std::fs::write(&config, &block) {
                    failures.push(format!(
                        "{} {}: cannot write its config: {e}",
                        entry.label, entry.role
                    ));
                    continue;
                }
                runner_cmd.arg("--config").arg(config);
            } else {
                runner_cmd.args(["--block", &block]);
            }
            if let (Some(fault), Some(served)) = (entry.fault, served) {
                runner_cmd
                    .args(["--fault-block", &fault.replace("{ca}", &ca)])
                    .args(["--upstream", &served.addr()]);
            }
            let out = runner_cmd
                .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
                .stderr(Stdio::inherit())
                .output();
            let _ = std::fs::remove_dir_all(&tmp);
            let out = match out {
                Ok(o) => o,
                Err(e) => {
                    failures.push(format!(
                        "{} {}: cannot run the runner: {e}",
                        entry.label, entry.role
                    ));
                    continue;
                }
            };
            let text = String::from_utf8_lossy(&out.stdout);
            print!("{text}");
            let Some(line) = text
                .lines()
                .find(|l| l.starts_with("matrix: "))
                .map(str::to_string)
            else {
                failures.push(format!(
                    "{} {}: the runner printed no matrix line",
                    entry.label, entry.role
                ));
                continue;
            };
            let field = |name: &str| -> usize {
                line.split_whitespace()
                    .find_map(|w| {
                        w.strip_prefix(&format!("{name}="))
                            .and_then(|n| n.parse().ok())
                    })
                    .unwrap_or(usize::MAX)
            };
            if !out.status.success() || field("failed") != 0 {
                failures.push(line.clone());
            } else if field("skipped") != 0 {
                if require_all {
                    failures.push(format!("{line} (skips are not allowed with --require-all)"));
                } else {
                    loud_skip(
                        &format!("{} {}", entry.label, entry.role),
                        "backend unreachable",
                    );
                }
            }
            // A line for a setup of a backend (`postgresql-ha`) carries the setup's label.
            let line = match line.strip_prefix("matrix: ") {
                Some(rest) if !entry.label.contains("TLS") => {
                    let (_, after_type) = rest.split_once(' ').unwrap_or(("", rest));
                    format!("matrix: {} {after_type}", entry.label)
                }
                _ => line,
            };
            lines.push((entry.label, line));
        }
        println!("\n=== conformance matrix ===");
        for (_, line) in lines.iter().filter(|(label, _)| !label.contains("TLS")) {
            println!("{line}");
        }
        println!("=== conformance matrix over TLS (verify-full with this run's CA) ===");
        for (_, line) in lines.iter().filter(|(label, _)| label.contains("TLS")) {
            println!("{line}");
        }
    }

    drop((redis, postgres, redis_tls, postgres_tls, postgres_ha, certs));
    if failures.is_empty() {
        println!("xtask test: all passed");
        ExitCode::SUCCESS
    } else {
        println!("xtask test: FAILED");
        for f in &failures {
            println!("  - {f}");
        }
        ExitCode::FAILURE
    }
}
