//! The conformance kit: every rule of the contract (`docs/semantics.md`), as named cases that run against any
//! backend.
//!
//! Each role has one async entry point, [`run_cache_suite`] and [`run_database_suite`]. Both
//! take a *builder*: a function from a key prefix to a connected backend, where every backend it
//! builds shares one underlying store (one memory store, one SQLite file, one server). Each case
//! gets a fresh prefix, so cases never see each other's data, and the namespace cases can put two
//! namespaces side by side.
//!
//! The kit compares results against its own reference model ([`model`]), which shares no code
//! with any backend, not even storage-core's glob matcher or LRANGE arithmetic. It does not
//! depend on any built-in backend, so a plugin author can run it from their own crate's tests.
//!
//! `faults` (the feature of the same name) adds the cases for backends behind a network: a
//! dead, stalled, slow or lossy server, through a fault proxy.
//!
//! [`cache_trials`] and [`database_trials`] give the same cases as libtest-mimic trials named
//! `cache::<case>` and `database::<case>`, so that a test target with `harness = false` lists
//! them one by one and `cargo test -- database::append_creates_and_orders` runs one.
//!
//! It is not a benchmark, and it does not test configuration parsing or fallback.
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use storage_testkit::{SuiteOptions, run_database_suite};
//!
//! let store = storage_memory::MemoryStore::new();
//! let report = run_database_suite(
//!     Arc::new(move |prefix: String| {
//!         let store = store.clone();
//!         async move { store.database(&prefix) }
//!     }),
//!     &SuiteOptions::default().only("lrange"),
//! )
//! .await;
//! report.assert_passed();
//! # });
//! ```

#![warn(missing_docs)]

pub mod blob;
pub mod blob_crash;
mod cases;
mod check;
#[cfg(feature = "faults")]
pub mod faults;
pub mod model;
mod trials;

#[cfg(feature = "faults")]
pub use faults::{
    FaultOpener, FaultTarget, FaultTimeouts, Opened, fault_case_names, run_fault_suite,
};

pub use trials::{cache_trials, database_trials};

/// `n` increments of the JSON counter at `key` through [`storage_core::DatabaseExt::update`]
/// (room for heavy contention: up to 10 000 tries each). The kit's lost-update case runs it in
/// 8 tasks; a runner can run it in several processes against one backend and check the sum.
pub async fn increment_counter(
    db: &dyn Database,
    key: &str,
    n: u64,
) -> std::result::Result<(), String> {
    cases::conditional::increments(db, key, n).await
}

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use storage_core::{Cache, Database, Result, Role};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Builds caches that share one underlying store, one per key prefix.
pub trait CacheBuilder: Send + Sync {
    /// A connected cache whose namespace is `key_prefix`.
    fn build(&self, key_prefix: String) -> BoxFuture<'static, Result<Arc<dyn Cache>>>;
}

impl<F, Fut> CacheBuilder for F
where
    F: Fn(String) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Arc<dyn Cache>>> + Send + 'static,
{
    fn build(&self, key_prefix: String) -> BoxFuture<'static, Result<Arc<dyn Cache>>> {
        Box::pin(self(key_prefix))
    }
}

/// Builds databases that share one underlying store, one per key prefix.
pub trait DatabaseBuilder: Send + Sync {
    /// A connected database whose namespace is `key_prefix`.
    fn build(&self, key_prefix: String) -> BoxFuture<'static, Result<Arc<dyn Database>>>;
}

impl<F, Fut> DatabaseBuilder for F
where
    F: Fn(String) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Arc<dyn Database>>> + Send + 'static,
{
    fn build(&self, key_prefix: String) -> BoxFuture<'static, Result<Arc<dyn Database>>> {
        Box::pin(self(key_prefix))
    }
}

/// How to run the suite.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// Every case's prefix starts with this; the default is unique per run.
    pub prefix: String,
    /// A case that takes longer fails.
    pub case_timeout: Duration,
    /// Run only the cases whose name contains this.
    pub filter: Option<String>,
    /// Seed of the random operation sequences (printed in failures).
    pub seed: u64,
}

impl Default for SuiteOptions {
    fn default() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        SuiteOptions {
            prefix: format!("kit:{}:{:x}:", std::process::id(), nanos & 0xffff_ffff),
            case_timeout: Duration::from_secs(120),
            filter: None,
            seed: nanos ^ 0x9e37_79b9_7f4a_7c15,
        }
    }
}

impl SuiteOptions {
    /// Only the cases whose name contains `filter`.
    pub fn only(mut self, filter: &str) -> Self {
        self.filter = Some(filter.to_string());
        self
    }
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every check held.
    Passed,
    /// What differed.
    Failed(String),
}

/// One case's name and outcome.
#[derive(Debug, Clone)]
pub struct CaseReport {
    /// The case's name.
    pub name: &'static str,
    /// How it went.
    pub outcome: Outcome,
}

/// The result of a suite run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The role the suite tested: `cache`, `database` or `blob`.
    pub role: &'static str,
    /// Every case that ran, in order.
    pub cases: Vec<CaseReport>,
}

impl Report {
    /// How many cases passed.
    pub fn passed(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| c.outcome == Outcome::Passed)
            .count()
    }
    /// How many cases failed.
    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }
    /// The failed cases and their messages.
    pub fn failures(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.cases.iter().filter_map(|c| match &c.outcome {
            Outcome::Failed(m) => Some((c.name, m.as_str())),
            Outcome::Passed => None,
        })
    }
    /// Panics, listing every failure, unless all cases passed. For `#[test]` functions.
    pub fn assert_passed(&self) {
        if self.failed() > 0 || self.cases.is_empty() {
            panic!("conformance suite failed:\n{self}");
        }
    }
}

impl fmt::Display for Report {
    /// One line per case: `  ok   name` or `  FAIL name: what differed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.cases {
            match &c.outcome {
                Outcome::Passed => writeln!(f, "  ok   {} {}", self.role, c.name)?,
                Outcome::Failed(m) => writeln!(f, "  FAIL {} {}: {m}", self.role, c.name)?,
            }
        }
        write!(
            f,
            "  {} {}: {} passed, {} failed",
            self.role,
            if self.failed() == 0 { "ok" } else { "FAILED" },
            self.passed(),
            self.failed()
        )
    }
}

/// The names of the cache cases, in order.
pub fn cache_case_names() -> Vec<&'static str> {
    cases::cache_cases().iter().map(|c| c.name).collect()
}

/// The names of the database cases, in order.
pub fn database_case_names() -> Vec<&'static str> {
    cases::database_cases().iter().map(|c| c.name).collect()
}

/// Runs every cache case. Needs a multi-threaded tokio runtime with time enabled.
pub async fn run_cache_suite(builder: Arc<dyn CacheBuilder>, options: &SuiteOptions) -> Report {
    let cx = cases::Builder::Cache(builder);
    run(Role::Cache, cases::cache_cases(), cx, options).await
}

/// Runs every database case. Needs a multi-threaded tokio runtime with time enabled.
pub async fn run_database_suite(
    builder: Arc<dyn DatabaseBuilder>,
    options: &SuiteOptions,
) -> Report {
    let cx = cases::Builder::Database(builder);
    run(Role::Database, cases::database_cases(), cx, options).await
}

/// The names of the cases on following a list, in order.
pub fn tail_case_names() -> Vec<&'static str> {
    cases::tail_cases().iter().map(|c| c.name).collect()
}

/// Runs the cases on following a list (`storage_core::feed::Tail`), for a database that can
/// ([`supports_tail`]). Needs a multi-threaded tokio runtime with time enabled.
pub async fn run_tail_suite(builder: Arc<dyn DatabaseBuilder>, options: &SuiteOptions) -> Report {
    let cx = cases::Builder::Database(builder);
    let options = SuiteOptions {
        prefix: format!("{}tail:", options.prefix),
        ..options.clone()
    };
    run(Role::Database, cases::tail_cases(), cx, &options).await
}

/// Whether `db` can follow lists: `None` when it can, or why not (its `Unsupported` error).
pub async fn supports_tail(db: &dyn storage_core::Database) -> Option<String> {
    match db.list_window("tail-probe", 0, 1).await {
        Err(e) if e.kind() == storage_core::ErrorKind::Unsupported => Some(e.to_string()),
        _ => None,
    }
}

/// The names of the cases on watching a namespace, in order.
pub fn watch_case_names() -> Vec<&'static str> {
    cases::watch_cases().iter().map(|c| c.name).collect()
}

/// Runs the cases on watching a namespace (`storage_core::watch::Watch`) for a cache, where the
/// backend keeps a change log ([`supports_watch`]).
pub async fn run_cache_watch_suite(
    builder: Arc<dyn CacheBuilder>,
    options: &SuiteOptions,
) -> Report {
    let options = SuiteOptions {
        prefix: format!("{}watch:", options.prefix),
        ..options.clone()
    };
    run(
        Role::Cache,
        cases::watch_cases(),
        cases::Builder::Cache(builder),
        &options,
    )
    .await
}

/// Runs the cases on watching a namespace for a database, where the backend keeps a change log
/// ([`supports_watch`]).
pub async fn run_database_watch_suite(
    builder: Arc<dyn DatabaseBuilder>,
    options: &SuiteOptions,
) -> Report {
    let options = SuiteOptions {
        prefix: format!("{}watch:", options.prefix),
        ..options.clone()
    };
    let cx = cases::Builder::Database(builder);
    run(Role::Database, cases::watch_cases(), cx, &options).await
}

/// Whether `store` keeps a change log: `None` when it does, or why not (its `Unsupported`
/// error).
pub async fn supports_watch(store: &dyn storage_core::Store) -> Option<String> {
    match store.changes(None, 0).await {
        Err(e) if e.kind() == storage_core::ErrorKind::Unsupported => Some(e.to_string()),
        _ => None,
    }
}

/// Runs one case: in a task of its own, so that a panic inside a backend is reported as that
/// case's failure, and under a timeout, so that a hung backend cannot stall the run; then
/// clears what it left under its prefix.
async fn run_case(case: &cases::Case, cx: cases::Cx, timeout: Duration) -> Outcome {
    let task = tokio::spawn((case.run)(cx.clone()));
    let outcome = match tokio::time::timeout(timeout, task).await {
        Ok(Ok(Ok(()))) => Outcome::Passed,
        Ok(Ok(Err(msg))) => Outcome::Failed(msg),
        Ok(Err(join)) => Outcome::Failed(format!("case panicked: {join}")),
        Err(_) => Outcome::Failed(format!("case did not finish within {timeout:?}")),
    };
    cx.cleanup().await;
    outcome
}

async fn run(
    role: Role,
    cases: Vec<cases::Case>,
    builder: cases::Builder,
    options: &SuiteOptions,
) -> Report {
    let mut reports = Vec::new();
    for (i, case) in cases.into_iter().enumerate() {
        if let Some(filter) = &options.filter
            && !case.name.contains(filter.as_str())
        {
            continue;
        }
        let cx = cases::Cx {
            builder: builder.clone(),
            prefix: format!("{}{i:02}:", options.prefix),
            seed: options.seed.wrapping_add(i as u64),
        };
        let outcome = run_case(&case, cx, options.case_timeout).await;
        reports.push(CaseReport {
            name: case.name,
            outcome,
        });
    }
    Report {
        role: role.as_str(),
        cases: reports,
    }
}
