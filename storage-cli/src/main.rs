//! `storage`: the command-line face of the storage layer.
//!
//! ```text
//! storage [--config FILE] demo | health | schema
//! storage [--config FILE] set KEY JSON [--ttl MS] [--role cache|database]
//! storage [--config FILE] get KEY [--role ...] | delete KEY | keys [PATTERN] [--json]
//! storage [--config FILE] append KEY JSON | range KEY START END | len KEY
//! storage [--config FILE] tail KEY [--from N] | watch [PREFIX] [--role ...] [--from N]
//! storage migrate --from A.yml --to B.yml [--role database|cache] [--dry-run] [--overwrite]
//! ```
//!
//! Without `--config`, every command uses the embedded default in the current directory:
//! SQLite at `.storage/storage.db` and a memory cache. Exit codes: 0 success, 1 not found
//! (`get` of a missing key), 2 any error, reported as one line on stderr.

mod accounts;
mod blob;
mod conditional;
mod demo;
mod demo_shared;
mod key_line;
mod migrate;
mod migrate_blob;
mod observed;
mod tail;
mod value_arg;
mod watch;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use storage_core::{Error, Store};
use storage_manager::StorageManager;
use value_arg::value_arg;

#[derive(Parser)]
#[command(
    name = "storage",
    version,
    about = "Storage for AI-agent applications: cache and database from one config"
)]
struct Cli {
    /// A config file (YAML or JSON; a `storage:` block or a whole agent.yml), before the
    /// command (`storage --config app.yml health`). Default: the embedded SQLite + memory setup
    /// in the current directory. Not for `migrate`, which takes `--from` and `--to`.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum RoleArg {
    Cache,
    Database,
}

/// The roles `migrate` copies.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MigrateRole {
    Cache,
    Database,
    Blob,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the design's patterns: sessions, chat history, cache-aside reads. It writes under
    /// namespaces of its own (keyPrefix `storage-demo:cache:` and `storage-demo:db:`), never
    /// the application's, and refuses where those would overlap the application's.
    Demo,
    /// Connects every role through its fallback chain and reports it. Exit code: 0 when every
    /// role is served by its primary backend, 1 when a fallback serves a role (degraded), 2
    /// when a role is not served or does not answer.
    Health {
        /// Print the status as JSON, for machines.
        #[arg(long)]
        json: bool,
    },
    /// Prints the JSON Schema of the config.
    Schema,
    /// Stores a JSON value.
    #[command(allow_negative_numbers = true)]
    Set {
        /// The key (1 to 1024 bytes); one starting with `-` goes after `--`.
        key: String,
        /// JSON text: '"hi"', 42, -5, '{"a":1}'. Or give --value-file.
        #[arg(required_unless_present = "value_file")]
        json: Option<String>,
        /// Read the JSON text from this file (`-` for standard input), for values too long
        /// for an argument.
        #[arg(long, value_name = "PATH", conflicts_with = "json")]
        value_file: Option<PathBuf>,
        /// Expire after this many milliseconds (caches only).
        #[arg(long)]
        ttl: Option<u64>,
        /// Which role's backend to write to.
        #[arg(long, value_enum, default_value = "database")]
        role: RoleArg,
        /// Write only if the key is still at this version (as `get --version` printed it);
        /// otherwise exit 3, with the current version on stderr. Databases only.
        #[arg(long, value_name = "VERSION", conflicts_with = "if_absent")]
        if_version: Option<String>,
        /// Write only if the key holds nothing; otherwise exit 3. On a cache, with --ttl, a
        /// lease that ends with its TTL.
        #[arg(long)]
        if_absent: bool,
    },
    /// Prints a key's JSON value; exits 1 if it is missing.
    Get {
        /// The key; one starting with `-` goes after `--`.
        key: String,
        /// Which role's backend to read.
        #[arg(long, value_enum, default_value = "database")]
        role: RoleArg,
        /// Print one JSON object `{"value": V, "version": "..."}` (databases only), for a
        /// later `set --if-version`.
        #[arg(long)]
        version: bool,
    },
    /// Deletes a key; prints whether it existed.
    Delete {
        /// The key; one starting with `-` goes after `--`.
        key: String,
        /// Which role's backend to delete from.
        #[arg(long, value_enum, default_value = "database")]
        role: RoleArg,
    },
    /// Lists keys matching a Redis glob pattern.
    Keys {
        /// A Redis glob (`chat:*`, `user:[0-9]*`); all keys when left out.
        pattern: Option<String>,
        /// Which role's backend to list.
        #[arg(long, value_enum, default_value = "database")]
        role: RoleArg,
        /// One JSON array instead of one key per line. Without it, a key holding a control
        /// character (a newline, a terminal escape) or starting with `"` is printed as a JSON
        /// string, so that every line is one key.
        #[arg(long)]
        json: bool,
    },
    /// Appends a JSON value to a list (databases only).
    #[command(allow_negative_numbers = true)]
    Append {
        /// The list's key; one starting with `-` goes after `--`.
        key: String,
        /// JSON text: '{"role":"user","content":"hi"}', -1. Or give --value-file.
        #[arg(required_unless_present = "value_file")]
        json: Option<String>,
        /// Read the JSON text from this file (`-` for standard input).
        #[arg(long, value_name = "PATH", conflicts_with = "json")]
        value_file: Option<PathBuf>,
    },
    #[command(flatten)]
    Feed(watch::FeedCommand),
    #[command(flatten)]
    Account(accounts::AccountCommand),
    /// Prints list items START..=END, one JSON value per line (negative indices count from the end).
    Range {
        /// The list's key.
        key: String,
        /// The first index (negative counts from the end: -1 is the last item).
        #[arg(allow_hyphen_values = true)]
        start: i64,
        /// The last index, included.
        #[arg(allow_hyphen_values = true)]
        end: i64,
    },
    /// Prints a list's length.
    Len {
        /// The list's key.
        key: String,
    },
    /// Keeps list items START..=END and drops the rest, as Redis LTRIM (`trim k -100 -1` keeps
    /// the last 100); an empty window deletes the list.
    Trim {
        /// The list's key.
        key: String,
        /// The first index kept (negative counts from the end).
        #[arg(allow_hyphen_values = true)]
        start: i64,
        /// The last index kept, included.
        #[arg(allow_hyphen_values = true)]
        end: i64,
    },
    /// Files in the blob role: put, get, ls, rm, gc, stats.
    Blob {
        #[command(subcommand)]
        command: blob::BlobCommand,
    },
    /// Copies one role's data from one config's backend to another's, then verifies it.
    /// Versions restart on the target: a version read from the source matches nothing there.
    Migrate {
        /// The source config.
        #[arg(long)]
        from: PathBuf,
        /// The target config.
        #[arg(long)]
        to: PathBuf,
        #[arg(long, value_enum, default_value = "database")]
        role: MigrateRole,
        /// Report what would be copied, and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Clear the target namespace if it already holds keys.
        #[arg(long)]
        overwrite: bool,
    },
}

/// An error for the one stderr line, and the exit code it maps to.
struct Failure(Error);

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure(e)
    }
}

/// One role's health for `storage health --json` (no password: the same text as the lines).
fn health_json(h: &storage_manager::RoleHealth) -> Value {
    serde_json::json!({
        "role": h.status.role.as_str(),
        "serving": h.status.serving,
        "serving_detail": h.status.serving_detail,
        "ok": h.ok,
        "degraded": h.status.degraded(),
        "latency_ms": h.latency.as_secs_f64() * 1000.0,
        "error": h.error,
        "failed": h.status.failed.iter().map(|f| serde_json::json!({
            "backend": f.backend, "path": f.path, "reason": f.reason, "attempts": f.attempts,
        })).collect::<Vec<_>>(),
    })
}

/// A write to a role served by an in-memory store is gone when the command exits (a named
/// `store:` is shared within one process only): say so, instead of letting a later `get` miss
/// silently.
fn warn_if_per_process(status: &storage_manager::RoleStatus) {
    if status.serving.as_deref() == Some("in-memory") {
        eprintln!(
            "storage: warning: the {} role is served by an in-memory store of this process; what this command writes is gone when it exits (configure a durable backend for the role)",
            status.role
        );
    }
}

fn manager(cli: &Cli) -> Result<StorageManager, Error> {
    match &cli.config {
        Some(path) => StorageManager::from_file(path),
        None => {
            let cwd = std::env::current_dir()
                .map_err(|e| Error::config(format!("cannot read the current directory: {e}")))?;
            StorageManager::embedded_default(&cwd)
        }
    }
}

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of our output goes away (`| head`).
    // SAFETY: setting a signal disposition to its default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // `--version` names what a runtime plugin must match: ABI, fingerprint, compiler.
    let version = format!(
        "{}\n{}",
        env!("CARGO_PKG_VERSION"),
        storage_core::plugin::abi_summary()
    );
    let matches = <Cli as clap::CommandFactory>::command()
        .version(version)
        .get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if cli.config.is_some() && matches!(cli.command, Command::Migrate { .. }) {
        eprintln!(
            "storage: --config does not apply to migrate: give the two configs as --from and --to"
        );
        return ExitCode::from(2);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STORAGE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(code) => code,
        Err(Failure(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: &Cli) -> Result<ExitCode, Failure> {
    match &cli.command {
        Command::Schema => {
            // With --config, the plugins it lists add their blocks to the schema.
            let source = match &cli.config {
                Some(path) => Some(storage_manager::config_file::from_file(path)?),
                None => None,
            };
            let schema = storage_manager::json_schema(source.as_ref())?;
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate {
            from,
            to,
            role,
            dry_run,
            overwrite,
        } => {
            let mode = match (*dry_run, *overwrite) {
                (true, _) => migrate::Mode::DryRun,
                (false, true) => migrate::Mode::Overwrite,
                (false, false) => migrate::Mode::Copy,
            };
            let code = match role {
                MigrateRole::Cache => migrate::run(from, to, migrate::Side::Cache, mode).await?,
                MigrateRole::Database => {
                    migrate::run(from, to, migrate::Side::Database, mode).await?
                }
                MigrateRole::Blob => migrate_blob::run(from, to, mode).await?,
            };
            Ok(ExitCode::from(code))
        }
        Command::Demo => {
            let m = manager(cli)?.in_own_namespace(demo::NAMESPACE)?;
            let result = demo::run(&m).await;
            m.disconnect().await?;
            result?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Health { json } => {
            let m = manager(cli)?;
            let report = m.health_check().await;
            let _ = m.disconnect().await;
            let code = if report.iter().any(|r| !r.ok || r.status.serving.is_none()) {
                2
            } else if report.iter().any(|r| r.status.degraded()) {
                1
            } else {
                0
            };
            if *json {
                let roles: Vec<Value> = report.iter().map(health_json).collect();
                let state = ["ok", "degraded", "failed"][usize::from(code)];
                println!(
                    "{}",
                    serde_json::json!({ "status": state, "exit_code": code, "roles": roles })
                );
            } else {
                for role in &report {
                    println!("{role}");
                }
            }
            Ok(ExitCode::from(code))
        }
        _ => {
            // Data commands never write silently into a fallback store.
            let m = manager(cli)?.without_fallback();
            let result = data(cli, &m).await;
            m.disconnect().await?;
            result
        }
    }
}

async fn store(m: &StorageManager, role: RoleArg) -> Result<Arc<dyn Store>, Error> {
    Ok(match role {
        RoleArg::Cache => m.connect_cache().await?.0,
        RoleArg::Database => m.connect_database().await?.0,
    })
}

async fn data(cli: &Cli, m: &StorageManager) -> Result<ExitCode, Failure> {
    match &cli.command {
        Command::Set {
            key,
            json,
            value_file,
            ttl,
            role,
            if_version,
            if_absent,
        } => {
            let value = value_arg(json.as_deref(), value_file.as_deref())?;
            let ttl = ttl.map(Duration::from_millis);
            if let Some(condition) = conditional::condition(if_version.as_deref(), *if_absent)? {
                return conditional::set(m, key, &value, ttl, *role == RoleArg::Cache, condition)
                    .await;
            }
            match role {
                RoleArg::Cache => {
                    let (cache, status) = m.connect_cache().await?;
                    warn_if_per_process(&status);
                    cache.set(key, &value, ttl).await?;
                }
                RoleArg::Database => {
                    if ttl.is_some() {
                        return Err(Failure(Error::invalid_input(
                            "--ttl: databases have no TTL; use --role cache",
                        )));
                    }
                    let (db, status) = m.connect_database().await?;
                    warn_if_per_process(&status);
                    db.set(key, &value).await?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Get {
            key,
            role,
            version: true,
        } => conditional::get(m, key, *role == RoleArg::Cache).await,
        Command::Get { key, role, .. } => match store(m, *role).await?.get(key).await? {
            Some(v) => {
                println!("{v}");
                Ok(ExitCode::SUCCESS)
            }
            None => Ok(ExitCode::from(1)),
        },
        Command::Delete { key, role } => {
            let existed = store(m, *role).await?.delete(key).await?;
            println!("{existed}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys {
            pattern,
            role,
            json,
        } => {
            let mut keys = store(m, *role).await?.keys(pattern.as_deref()).await?;
            keys.sort();
            if *json {
                println!("{}", Value::from(keys));
            } else {
                for k in &keys {
                    println!("{}", key_line::key_line(k));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Feed(feed) => {
            watch::run(m, feed).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Account(account) => {
            accounts::run(m, account).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Append {
            key,
            json,
            value_file,
        } => {
            let value = value_arg(json.as_deref(), value_file.as_deref())?;
            let (db, status) = m.connect_database().await?;
            warn_if_per_process(&status);
            db.append(key, &value).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Range { key, start, end } => {
            for item in m
                .connect_database()
                .await?
                .0
                .get_range(key, *start, *end)
                .await?
            {
                println!("{item}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Len { key } => {
            println!("{}", m.connect_database().await?.0.get_length(key).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Trim { key, start, end } => {
            m.connect_database()
                .await?
                .0
                .trim(key, *start, *end)
                .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Blob { command } => blob::run(m, command).await,
        Command::Demo | Command::Health { .. } | Command::Schema | Command::Migrate { .. } => {
            unreachable!("handled in run")
        }
    }
}
