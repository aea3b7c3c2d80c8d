//! `storage-runner`: the conformance kit against one backend, built from configuration.
//!
//! ```text
//! storage-runner --role cache|database (--block JSON | --config FILE) [--filter TEXT]
//! ```
//!
//! `--block` is one backend block, as in a config file's `storage.<role>` (JSON or YAML);
//! `--config` reads the role's primary backend from a config file (whose `plugins:` are loaded).
//! The backend is built through the registry, once per case with a fresh `keyPrefix` under the
//! block's own. It prints each case, then exactly one line at column 0:
//!
//! ```text
//! matrix: <type> <cache|database> passed=<N> failed=<N> skipped=<N>
//! ```
//!
//! A backend that cannot be reached prints `skipped=<all cases>`. The exit code is 1 when any
//! case failed or the arguments are wrong, 0 otherwise; skips are for the caller to judge.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use storage_core::config::{BackendSpec, ConfigSource, Role};
use storage_core::{Cache, Database, ErrorKind, Registry, Result};
use storage_testkit::{Report, SuiteOptions};

mod registry;

struct Args {
    role: Role,
    block: Option<String>,
    config: Option<PathBuf>,
    filter: Option<String>,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut role = None;
    let (mut block, mut config, mut filter) = (None, None, None);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--role" => {
                role = Some(match value("--role")?.as_str() {
                    "cache" => Role::Cache,
                    "database" => Role::Database,
                    other => {
                        return Err(format!("--role: expected cache or database, got {other:?}"));
                    }
                })
            }
            "--block" => block = Some(value("--block")?),
            "--config" => config = Some(PathBuf::from(value("--config")?)),
            "--filter" => filter = Some(value("--filter")?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let role = role.ok_or("--role is required")?;
    if block.is_some() == config.is_some() {
        return Err("give exactly one of --block or --config".into());
    }
    Ok(Args {
        role,
        block,
        config,
        filter,
    })
}

fn spec_for(args: &Args, registry: &Registry) -> Result<BackendSpec> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let source = match (&args.block, &args.config) {
        (Some(block), _) => {
            // The other role is plain memory, so that only the tested block needs its backend.
            let other = match args.role {
                Role::Cache => Role::Database,
                Role::Database => Role::Cache,
            };
            let yaml = format!("{}: {block}\n{other}: {{ type: in-memory }}\n", args.role);
            ConfigSource::from_yaml_str(&yaml, &cwd)?
        }
        (None, Some(path)) => ConfigSource::from_file(path)?,
        (None, None) => unreachable!("checked in parse_args"),
    };
    let config = source.resolve(registry)?;
    Ok(config.role(args.role).primary.clone())
}

/// The spec under the kit's prefix, which already starts with the block's own `keyPrefix`.
fn with_prefix(spec: &BackendSpec, prefix: &str) -> BackendSpec {
    spec.clone().with_key_prefix(prefix)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("storage-runner: {e}");
            return ExitCode::from(2);
        }
    };
    let registry = match registry::build(args.config.as_deref()) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            eprintln!("storage-runner: {e}");
            return ExitCode::from(2);
        }
    };
    let spec = match spec_for(&args, &registry) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("storage-runner: {e}");
            return ExitCode::from(2);
        }
    };
    let total = match args.role {
        Role::Cache => storage_testkit::cache_case_names().len(),
        Role::Database => storage_testkit::database_case_names().len(),
    };
    let line = |passed: usize, failed: usize, skipped: usize| {
        println!(
            "matrix: {} {} passed={passed} failed={failed} skipped={skipped}",
            spec.type_name, args.role
        )
    };

    let mut options = SuiteOptions::default();
    options.filter = args.filter.clone();
    options.prefix = format!("{}{}", spec.common.key_prefix, options.prefix);

    // Reachability first: an unreachable server is a skip, not forty failures.
    let probe = match args.role {
        Role::Cache => registry
            .open_cache(&with_prefix(
                &spec,
                &format!("{}probe:", spec.common.key_prefix),
            ))
            .await
            .map(|c| c as Arc<dyn storage_core::Store>),
        Role::Database => registry
            .open_database(&with_prefix(
                &spec,
                &format!("{}probe:", spec.common.key_prefix),
            ))
            .await
            .map(|d| d as Arc<dyn storage_core::Store>),
    };
    match probe {
        Ok(store) => {
            let reachable = store.ping().await;
            let _ = store.close().await;
            if let Err(e) = reachable {
                println!("  backend unreachable: {e}");
                line(0, 0, total);
                return ExitCode::SUCCESS;
            }
        }
        Err(e) if matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout) => {
            println!("  backend unreachable: {e}");
            line(0, 0, total);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            println!("  backend cannot be built: {e}");
            line(0, total, 0);
            return ExitCode::FAILURE;
        }
    }

    let report: Report = if spec.type_name == storage_memory::TYPE_NAME {
        // The memory factory gives each backend a store of its own; the kit needs every case's
        // backends on one store, so the runner shares one store the factory's way.
        let store = storage_memory::MemoryStore::new();
        match args.role {
            Role::Cache => {
                let s = spec.clone();
                storage_testkit::run_cache_suite(
                    Arc::new(move |p: String| {
                        let r: Result<Arc<dyn Cache>> =
                            store.cache(&with_prefix(&s, &p).common.key_prefix);
                        async move { r }
                    }),
                    &options,
                )
                .await
            }
            Role::Database => {
                let s = spec.clone();
                storage_testkit::run_database_suite(
                    Arc::new(move |p: String| {
                        let r: Result<Arc<dyn Database>> =
                            store.database(&with_prefix(&s, &p).common.key_prefix);
                        async move { r }
                    }),
                    &options,
                )
                .await
            }
        }
    } else {
        match args.role {
            Role::Cache => {
                let (reg, s) = (registry.clone(), spec.clone());
                storage_testkit::run_cache_suite(
                    Arc::new(move |p: String| {
                        let (reg, spec) = (reg.clone(), with_prefix(&s, &p));
                        async move { reg.open_cache(&spec).await }
                    }),
                    &options,
                )
                .await
            }
            Role::Database => {
                let (reg, s) = (registry.clone(), spec.clone());
                storage_testkit::run_database_suite(
                    Arc::new(move |p: String| {
                        let (reg, spec) = (reg.clone(), with_prefix(&s, &p));
                        async move { reg.open_database(&spec).await }
                    }),
                    &options,
                )
                .await
            }
        }
    };
    println!("{report}");
    line(report.passed(), report.failed(), 0);
    if report.failed() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
