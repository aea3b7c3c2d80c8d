//! `storage-runner`: the conformance kit against one backend, built from configuration.
//!
//! ```text
//! storage-runner --role cache|database|blob (--block JSON | --config FILE) [--filter TEXT]
//!                [--fault-block BLOCK --upstream HOST:PORT]
//! ```
//!
//! For a database that processes share (SQLite, PostgreSQL, Redis), the case
//! `lost_update_across_processes` runs two copies of this runner (`--increment KEY --times N
//! --prefix P`, the child's mode) that add 500 each to one counter through `update`, and
//! checks the sum. For a blob store that outlives its writer (files, SQLite, PostgreSQL, S3),
//! the case `crash_mid_put_leaves_no_partial_blob` starts copies of this runner
//! (`--blob-writer PREFIX`, slow uploads until killed), kills each with SIGKILL mid-`put`, and
//! checks that every blob left is whole. A database that can follow lists runs the kit's tail
//! cases, and, where processes share it, `tail_follows_another_process` (a copy of this runner,
//! `--append-items PREFIX`, appends while this one follows); a backend that keeps a change log
//! runs the kit's watch cases, in either role.
//!
//! With `--fault-block` (the same backend's block, with `{addr}` where the server's address
//! goes) and `--upstream` (the server's address), the kit's fault cases run too, each through a
//! fault proxy in front of the server; they count in the matrix line like every other case.
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
//! A backend that cannot be reached (a connection error or timeout at the first ping) prints
//! `skipped=<all cases>`, unless `STORAGE_TEST_REQUIRE_ALL=1`, where it is a failure; any other
//! failure to build or ping it is a failure. Every backend, in-memory included, is built through
//! the registry from its block. The counts are checked against the kit's cases for the role, and
//! a `--filter` that matches no case is an error. The exit code is 1 when any case failed or the
//! arguments are wrong, 0 otherwise.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use storage_core::config::{BackendSpec, ConfigSource, Role};
use storage_core::{ErrorKind, Registry, Result};
use storage_testkit::{Report, SuiteOptions};

mod blob;
mod blob_crash;
mod coherence;
mod faults;
mod feeds;
mod processes;
mod registry;
mod tail_processes;

struct Args {
    role: Role,
    block: Option<String>,
    config: Option<PathBuf>,
    filter: Option<String>,
    fault_block: Option<String>,
    upstream: Option<std::net::SocketAddr>,
    /// `--block B` or `--config F`, as given: what a child process is started with.
    source: Vec<String>,
    /// A child's work: `--increment KEY --times N --prefix P`.
    increment: Option<(String, u64, String)>,
    /// A child's work: `--blob-writer PREFIX`, slow blobs until killed.
    blob_writer: Option<String>,
    /// A child's work: `--append-items PREFIX`, the items a follower in the parent awaits.
    append_items: Option<String>,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut role = None;
    let (mut block, mut config, mut filter) = (None, None, None);
    let (mut fault_block, mut upstream) = (None, None);
    let (mut increment, mut times, mut prefix) = (None, None, None);
    let mut blob_writer = None;
    let mut append_items = None;
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--role" => {
                role = Some(match value("--role")?.as_str() {
                    "cache" => Role::Cache,
                    "database" => Role::Database,
                    "blob" => Role::Blob,
                    other => {
                        return Err(format!(
                            "--role: expected cache, database or blob, got {other:?}"
                        ));
                    }
                })
            }
            "--block" => block = Some(value("--block")?),
            "--config" => config = Some(PathBuf::from(value("--config")?)),
            "--filter" => filter = Some(value("--filter")?),
            "--increment" => increment = Some(value("--increment")?),
            "--times" => {
                let v = value("--times")?;
                times = Some(
                    v.parse::<u64>()
                        .map_err(|_| format!("--times: {v:?} is not a count"))?,
                );
            }
            "--prefix" => prefix = Some(value("--prefix")?),
            "--blob-writer" => blob_writer = Some(value("--blob-writer")?),
            "--append-items" => append_items = Some(value("--append-items")?),
            "--fault-block" => fault_block = Some(value("--fault-block")?),
            "--upstream" => {
                let v = value("--upstream")?;
                let addr = std::net::ToSocketAddrs::to_socket_addrs(v.as_str())
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or(format!("--upstream: {v:?} is not a host:port"))?;
                upstream = Some(addr);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let role = role.ok_or("--role is required")?;
    if block.is_some() == config.is_some() {
        return Err("give exactly one of --block or --config".into());
    }
    if fault_block.is_some() != upstream.is_some() {
        return Err("--fault-block and --upstream go together".into());
    }
    let source = match (&block, &config) {
        (Some(b), _) => vec!["--block".to_string(), b.clone()],
        (None, Some(c)) => vec!["--config".to_string(), c.display().to_string()],
        (None, None) => Vec::new(),
    };
    let increment = match (increment, times, prefix) {
        (None, None, None) => None,
        (Some(key), Some(n), Some(p)) => Some((key, n, p)),
        _ => return Err("--increment, --times and --prefix go together".into()),
    };
    Ok(Args {
        blob_writer,
        append_items,
        role,
        block,
        config,
        filter,
        fault_block,
        upstream,
        source,
        increment,
    })
}

/// The configuration the run's backend comes from: the block in a document of its own, or the
/// file.
fn source_for(args: &Args) -> Result<ConfigSource> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    Ok(match (&args.block, &args.config) {
        (Some(block), _) => {
            // The other roles are plain memory, so that only the tested block needs its backend.
            let yaml = match args.role {
                Role::Blob => blob::document(block),
                Role::Cache => format!("cache: {block}\ndatabase: {{ type: in-memory }}\n"),
                Role::Database => format!("database: {block}\ncache: {{ type: in-memory }}\n"),
            };
            storage_manager::config_file::from_yaml_str(&yaml, &cwd)?
        }
        (None, Some(path)) => storage_manager::config_file::from_file(path)?,
        (None, None) => unreachable!("checked in parse_args"),
    })
}

fn spec_for(args: &Args, registry: &Registry) -> Result<BackendSpec> {
    let config = source_for(args)?.resolve(registry)?;
    config
        .role(args.role)
        .map(|r| r.primary.clone())
        .ok_or_else(|| storage_core::Error::config(format!("the config has no {} role", args.role)))
}

/// A store's ping, then its close.
async fn ping_and_close(store: &dyn storage_core::Store) -> Result<()> {
    let pinged = store.ping().await;
    let _ = store.close().await;
    pinged
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
    if let Some(prefix) = &args.append_items {
        return match tail_processes::child(&registry, &spec, prefix).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("storage-runner: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(prefix) = &args.blob_writer {
        return match blob_crash::child(&registry, &spec, prefix).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("storage-runner: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some((key, n, prefix)) = &args.increment {
        return match processes::child(&registry, &spec, prefix, key, *n).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("storage-runner: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let line = |passed: usize, failed: usize, skipped: usize| {
        println!(
            "matrix: {} {} passed={passed} failed={failed} skipped={skipped}",
            spec.type_name, args.role
        )
    };

    let mut options = SuiteOptions::default();
    options.filter = args.filter.clone();
    options.prefix = format!("{}{}", spec.common.key_prefix, options.prefix);

    let names: Vec<&str> = match args.role {
        Role::Cache => storage_testkit::cache_case_names(),
        Role::Database => storage_testkit::database_case_names(),
        Role::Blob => storage_testkit::blob::blob_case_names(),
    }
    .into_iter()
    .chain(if args.fault_block.is_some() {
        storage_testkit::fault_case_names(args.role)
    } else {
        Vec::new()
    })
    .chain((args.role == Role::Database && processes::applies(&spec)).then_some(processes::CASE))
    .chain((args.role == Role::Blob && blob_crash::applies(&spec)).then_some(blob_crash::CASE))
    .filter(|n| args.filter.as_deref().is_none_or(|f| n.contains(f)))
    .collect();
    // The feed cases are counted once the backend says which feeds it keeps (below).
    let feeds_may_match = feeds::may_match(args.role, args.filter.as_deref())
        || coherence::may_match(args.role, args.filter.as_deref());
    if names.is_empty() && !feeds_may_match {
        eprintln!("storage-runner: --filter matches no case");
        return ExitCode::from(2);
    }
    let total = names.len();
    let require_all =
        std::env::var("STORAGE_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1" || v == "true");

    // Reachability first: an unreachable server is a skip (when skips are allowed), not forty
    // failures; anything else that stops the backend is a failure.
    let probe_spec = with_prefix(&spec, &format!("{}probe:", spec.common.key_prefix));
    // Which feeds the backend keeps: their cases run where it does.
    let mut feed_support = feeds::Support::default();
    let probe: Result<()> = match args.role {
        Role::Cache => match registry.open_cache(&probe_spec).await {
            Ok(store) => {
                feed_support = feeds::Support::probe(store.as_ref(), None).await;
                ping_and_close(store.as_ref()).await
            }
            Err(e) => Err(e),
        },
        Role::Database => match registry.open_database(&probe_spec).await {
            Ok(store) => {
                feed_support = feeds::Support::probe(store.as_ref(), Some(store.as_ref())).await;
                ping_and_close(store.as_ref()).await
            }
            Err(e) => Err(e),
        },
        Role::Blob => match registry.open_blob(&probe_spec).await {
            Ok(store) => {
                let pinged = store.ping().await;
                let _ = store.close().await;
                pinged
            }
            Err(e) => Err(e),
        },
    };
    if let Err(e) = probe {
        let unreachable = matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout);
        if unreachable && !require_all {
            println!("  backend unreachable: {e}");
            line(0, 0, total);
            return ExitCode::SUCCESS;
        }
        println!("  backend cannot be used: {e}");
        line(0, total, 0);
        return ExitCode::FAILURE;
    }

    let total = total
        + feed_support.count(args.role, &spec, args.filter.as_deref())
        + coherence::names(
            args.role,
            args.filter.as_deref(),
            feed_support.keeps_changes(),
        )
        .len();

    let report: Report = match args.role {
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
        Role::Blob => match source_for(&args) {
            Ok(source) => {
                blob::run(
                    registry.clone(),
                    spec.clone(),
                    source,
                    args.filter.as_deref(),
                )
                .await
            }
            Err(e) => {
                eprintln!("storage-runner: {e}");
                return ExitCode::from(2);
            }
        },
    };
    println!("{report}");
    let (mut passed, mut failed) = (report.passed(), report.failed());
    let (feed_passed, feed_failed) = feed_support
        .run(args.role, registry.clone(), &spec, &args.source, &options)
        .await;
    passed += feed_passed;
    failed += feed_failed;
    let (coherence_passed, coherence_failed) = coherence::run(
        args.role,
        registry.clone(),
        &spec,
        &options.prefix,
        args.filter.as_deref(),
        feed_support.keeps_changes(),
    )
    .await;
    passed += coherence_passed;
    failed += coherence_failed;
    if let (Some(template), Some(upstream)) = (&args.fault_block, args.upstream) {
        let fault_report = faults::run(
            args.role,
            template.clone(),
            upstream,
            registry.clone(),
            &options,
        )
        .await;
        println!("{fault_report}");
        passed += fault_report.passed();
        failed += fault_report.failed();
    }
    if args.role == Role::Database
        && args
            .filter
            .as_deref()
            .is_none_or(|f| processes::CASE.contains(f))
    {
        if processes::applies(&spec) {
            match processes::run(registry.clone(), &spec, &args.source, &options.prefix).await {
                Ok(()) => {
                    println!("  ok   database {}", processes::CASE);
                    passed += 1;
                }
                Err(e) => {
                    println!("  FAIL database {}: {e}", processes::CASE);
                    failed += 1;
                }
            }
        } else {
            println!(
                "  note: {} does not apply to {}: its data is not shared between processes",
                processes::CASE,
                spec.type_name
            );
        }
    }
    if args.role == Role::Blob
        && args
            .filter
            .as_deref()
            .is_none_or(|f| blob_crash::CASE.contains(f))
    {
        if blob_crash::applies(&spec) {
            match blob_crash::run(registry.clone(), &spec, &args.source, &options.prefix).await {
                Ok(blobs) => {
                    println!(
                        "  ok   blob {} ({blobs} whole blobs after 8 kills)",
                        blob_crash::CASE
                    );
                    passed += 1;
                }
                Err(e) => {
                    println!("  FAIL blob {}: {e}", blob_crash::CASE);
                    failed += 1;
                }
            }
        } else {
            println!(
                "  note: {} does not apply to {}: its blobs do not outlive the process",
                blob_crash::CASE,
                spec.type_name
            );
        }
    }
    if passed + failed != total {
        println!("  the kit ran {} cases, expected {total}", passed + failed);
        failed = total - passed.min(total);
    }
    line(passed, failed, 0);
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
