//! The kit's feed suites in the runner: following a list (database role) and watching a
//! namespace (both roles), each run where the backend says it can, with a note where it
//! cannot. Not the cases themselves (the kit's), nor the case across processes
//! (`tail_processes.rs`), which this calls.

use crate::{processes, tail_processes, with_prefix};
use std::sync::Arc;
use storage_core::config::{BackendSpec, Role};
use storage_core::{Registry, Store};
use storage_testkit::SuiteOptions;

/// What the probe learnt: why each feed does not apply (`None`: it does).
#[derive(Default)]
pub(crate) struct Support {
    tail: Option<String>,
    watch: Option<String>,
    probed: bool,
}

fn matching(names: Vec<&'static str>, filter: Option<&str>) -> Vec<&'static str> {
    names
        .into_iter()
        .filter(|n| filter.is_none_or(|f| n.contains(f)))
        .collect()
}

/// Whether `--filter` may select a feed case (before the backend says what it supports).
pub(crate) fn may_match(role: Role, filter: Option<&str>) -> bool {
    let mut names = storage_testkit::watch_case_names();
    if role == Role::Database {
        names.extend(storage_testkit::tail_case_names());
        names.push(tail_processes::CASE);
    }
    role != Role::Blob && !matching(names, filter).is_empty()
}

impl Support {
    /// Asks the probe's backend which feeds it keeps.
    pub(crate) async fn probe(
        store: &dyn Store,
        db: Option<&dyn storage_core::Database>,
    ) -> Support {
        Support {
            tail: match db {
                Some(db) => storage_testkit::supports_tail(db).await,
                None => Some("not a database".into()),
            },
            watch: storage_testkit::supports_watch(store).await,
            probed: true,
        }
    }

    fn tail_names(&self, role: Role, filter: Option<&str>) -> Vec<&'static str> {
        if role == Role::Database && self.probed && self.tail.is_none() {
            matching(storage_testkit::tail_case_names(), filter)
        } else {
            Vec::new()
        }
    }

    fn watch_names(&self, role: Role, filter: Option<&str>) -> Vec<&'static str> {
        if role != Role::Blob && self.probed && self.watch.is_none() {
            matching(storage_testkit::watch_case_names(), filter)
        } else {
            Vec::new()
        }
    }

    fn tail_across(&self, role: Role, spec: &BackendSpec, filter: Option<&str>) -> bool {
        role == Role::Database
            && self.probed
            && self.tail.is_none()
            && processes::applies(spec)
            && filter.is_none_or(|f| tail_processes::CASE.contains(f))
    }

    /// Whether the backend keeps a change log (a watch works on it).
    pub(crate) fn keeps_changes(&self) -> bool {
        self.probed && self.watch.is_none()
    }

    /// How many feed cases will run.
    pub(crate) fn count(&self, role: Role, spec: &BackendSpec, filter: Option<&str>) -> usize {
        self.tail_names(role, filter).len()
            + self.watch_names(role, filter).len()
            + usize::from(self.tail_across(role, spec, filter))
    }

    /// Runs the feed suites that apply; prints each case and the notes; returns (passed, failed).
    pub(crate) async fn run(
        &self,
        role: Role,
        registry: Arc<Registry>,
        spec: &BackendSpec,
        source: &[String],
        options: &SuiteOptions,
    ) -> (usize, usize) {
        let filter = options.filter.as_deref();
        let (mut passed, mut failed) = (0, 0);
        if !self.tail_names(role, filter).is_empty() {
            let (reg, s) = (registry.clone(), spec.clone());
            let tails = storage_testkit::run_tail_suite(
                Arc::new(move |p: String| {
                    let (reg, spec) = (reg.clone(), with_prefix(&s, &p));
                    async move { reg.open_database(&spec).await }
                }),
                options,
            )
            .await;
            println!("{tails}");
            passed += tails.passed();
            failed += tails.failed();
        }
        if self.tail_across(role, spec, filter) {
            match tail_processes::run(registry.clone(), spec, source, &options.prefix).await {
                Ok(()) => {
                    println!("  ok   database {}", tail_processes::CASE);
                    passed += 1;
                }
                Err(e) => {
                    println!("  FAIL database {}: {e}", tail_processes::CASE);
                    failed += 1;
                }
            }
        }
        if !self.watch_names(role, filter).is_empty() {
            let (reg, s) = (registry.clone(), spec.clone());
            let watches = if role == Role::Cache {
                storage_testkit::run_cache_watch_suite(
                    Arc::new(move |p: String| {
                        let (reg, spec) = (reg.clone(), with_prefix(&s, &p));
                        async move { reg.open_cache(&spec).await }
                    }),
                    options,
                )
                .await
            } else {
                storage_testkit::run_database_watch_suite(
                    Arc::new(move |p: String| {
                        let (reg, spec) = (reg.clone(), with_prefix(&s, &p));
                        async move { reg.open_database(&spec).await }
                    }),
                    options,
                )
                .await
            };
            println!("{watches}");
            passed += watches.passed();
            failed += watches.failed();
        }
        if role == Role::Database
            && let Some(why) = &self.tail
        {
            println!(
                "  note: the tail cases do not apply to {}: {why}",
                spec.type_name
            );
        }
        if let Some(why) = &self.watch
            && role != Role::Blob
        {
            println!(
                "  note: the watch cases do not apply to {}: {why}",
                spec.type_name
            );
        }
        (passed, failed)
    }
}
