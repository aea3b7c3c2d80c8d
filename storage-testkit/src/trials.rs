//! The cases as libtest-mimic trials: one trial per case, named `<role>::<case>`, each run on
//! a runtime of its own. A test target with `harness = false` hands them to libtest-mimic,
//! which lists, filters and reports them as `cargo test` does its own tests. Not the cases
//! (`cases/`) nor the suite runner (`run_cache_suite`, `run_database_suite`).

use crate::cases::{self, Case, Cx};
use crate::{CacheBuilder, DatabaseBuilder, Outcome, SuiteOptions, run_case};
use libtest_mimic::{Failed, Trial};
use std::sync::Arc;
use storage_core::Role;

/// Every cache case as a trial named `cache::<case>`, of kind `backend` (libtest-mimic shows
/// it in brackets). Every backend `builder` makes must share one store, as for
/// [`crate::run_cache_suite`].
pub fn cache_trials(
    builder: Arc<dyn CacheBuilder>,
    options: &SuiteOptions,
    backend: &str,
) -> Vec<Trial> {
    trials(
        Role::Cache,
        cases::cache_cases(),
        cases::Builder::Cache(builder),
        options,
        backend,
    )
}

/// Every database case as a trial named `database::<case>`; see [`cache_trials`].
pub fn database_trials(
    builder: Arc<dyn DatabaseBuilder>,
    options: &SuiteOptions,
    backend: &str,
) -> Vec<Trial> {
    trials(
        Role::Database,
        cases::database_cases(),
        cases::Builder::Database(builder),
        options,
        backend,
    )
}

fn trials(
    role: Role,
    cases: Vec<Case>,
    builder: cases::Builder,
    options: &SuiteOptions,
    backend: &str,
) -> Vec<Trial> {
    cases
        .into_iter()
        .enumerate()
        .map(|(i, case)| {
            let cx = Cx {
                builder: builder.clone(),
                prefix: format!("{}{role}:{i:02}:", options.prefix),
                seed: options.seed.wrapping_add(i as u64),
            };
            let timeout = options.case_timeout;
            let seed = cx.seed;
            Trial::test(format!("{role}::{}", case.name), move || {
                // A runtime per trial: the cases need a multi-threaded one with time, and a
                // trial runs on whichever thread libtest-mimic gives it.
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| Failed::from(format!("starting a runtime: {e}")))?;
                match runtime.block_on(run_case(&case, cx, timeout)) {
                    Outcome::Passed => Ok(()),
                    Outcome::Failed(message) => {
                        Err(Failed::from(format!("{message} (seed {seed})")))
                    }
                }
            })
            .with_kind(backend.to_string())
        })
        .collect()
}
