//! Every case of the kit as a test of its own, against one backend: the in-memory store by
//! default, or the backend block in `STORAGE_KIT_BLOCK` (a YAML map, as written under
//! `storage.database:`), opened through the built-in registry.
//!
//! ```text
//! cargo test -p storage-testkit --test cases -- --list
//! cargo test -p storage-testkit --test cases -- database::append_creates_and_orders
//! STORAGE_KIT_BLOCK='{type: sqlite, path: /tmp/kit.db}' cargo test -p storage-testkit --test cases
//! ```
//!
//! Cases run one at a time unless `--test-threads` says otherwise (some measure time).

use std::process::ExitCode;
use std::sync::Arc;
use storage_core::config::BackendSpec;
use storage_core::{Registry, Role};
use storage_testkit::{SuiteOptions, cache_trials, database_trials};

/// The backend block the cases run against when `STORAGE_KIT_BLOCK` is not set: one named
/// in-memory store, shared by every backend a case builds.
const DEFAULT_BLOCK: &str = "{ type: in-memory, store: kit }";

/// The fewest cases a role may have: fewer means the catalogue lost some.
const MIN_CASES: usize = 40;

fn spec(registry: &Registry, block: &str, role: Role) -> Result<BackendSpec, String> {
    let yaml = format!("cache: {block}\ndatabase: {block}\n");
    let dir = std::env::current_dir().map_err(|e| e.to_string())?;
    let config = storage_manager::config_file::from_yaml_str(&yaml, &dir)
        .and_then(|source| source.resolve(registry))
        .map_err(|e| format!("STORAGE_KIT_BLOCK: {e}"))?;
    config
        .role(role)
        .map(|r| r.primary.clone())
        .ok_or_else(|| format!("no {role} role"))
}

fn main() -> ExitCode {
    let mut args = libtest_mimic::Arguments::from_args();
    args.test_threads.get_or_insert(1);
    let block = std::env::var("STORAGE_KIT_BLOCK").unwrap_or_else(|_| DEFAULT_BLOCK.to_string());
    let registry = Arc::new(storage_manager::builtin_registry());
    let (cache, database) = match (
        spec(&registry, &block, Role::Cache),
        spec(&registry, &block, Role::Database),
    ) {
        (Ok(c), Ok(d)) => (c, d),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let backend = cache.type_name.clone();
    let options = SuiteOptions::default();
    let reg = registry.clone();
    let mut trials = cache_trials(
        Arc::new(move |prefix: String| {
            let (reg, spec) = (reg.clone(), cache.clone().with_key_prefix(prefix));
            async move { reg.open_cache(&spec).await }
        }),
        &options,
        &backend,
    );
    let caches = trials.len();
    let reg = registry.clone();
    trials.extend(database_trials(
        Arc::new(move |prefix: String| {
            let (reg, spec) = (reg.clone(), database.clone().with_key_prefix(prefix));
            async move { reg.open_database(&spec).await }
        }),
        &options,
        &backend,
    ));
    let databases = trials.len() - caches;
    if caches < MIN_CASES || databases < MIN_CASES {
        eprintln!(
            "the kit has {caches} cache and {databases} database cases, fewer than {MIN_CASES}"
        );
        return ExitCode::FAILURE;
    }
    libtest_mimic::run(&args, trials).exit_code()
}
