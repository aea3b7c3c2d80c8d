//! Fault cases: the contract under a dead, stalled, slow or lossy server, for any backend that
//! talks to a server over TCP.
//!
//! Each case starts a [`FaultProxy`] in front of the server, has the backend open itself through
//! the proxy's address (with fallback off and the [`FaultTimeouts`] given), breaks the traffic,
//! and checks that every operation ends in bounded time with the right error kind, that no
//! write is applied twice, and that the same backend object serves again once the fault clears.
//! A backend opts in by handing [`run_fault_suite`] a [`FaultOpener`].
//!
//! Not covered here: what a server does on failover, and credentials (the throwaway servers
//! trust every login); the backend crates test those against servers set up for them.

use crate::{BoxFuture, CaseReport, Outcome, Report, SuiteOptions};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage_core::{Cache, Database, ErrorKind, Result, Role, Store};
use storage_servers::{Fault, FaultProxy};

/// The limits a fault case opens its backend with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultTimeouts {
    /// `connectionTimeoutMillis`.
    pub connect: Duration,
    /// `operationTimeoutMillis`.
    pub operation: Duration,
    /// `pool.acquireTimeoutMillis`.
    pub acquire: Duration,
    /// `pool.max`.
    pub pool_max: u32,
}

impl Default for FaultTimeouts {
    fn default() -> Self {
        FaultTimeouts {
            connect: Duration::from_millis(1500),
            operation: Duration::from_millis(2000),
            acquire: Duration::from_millis(1500),
            pool_max: 4,
        }
    }
}

/// Where and how a fault case wants its backend.
#[derive(Debug, Clone)]
pub struct FaultTarget {
    /// `127.0.0.1:PORT` of the proxy: connect here instead of to the server.
    pub addr: SocketAddr,
    /// The namespace.
    pub key_prefix: String,
    /// Limits to configure (with fallback off and no connect retries).
    pub timeouts: FaultTimeouts,
}

/// A backend opened for a fault case.
#[derive(Clone)]
pub enum Opened {
    /// The cache role.
    Cache(Arc<dyn Cache>),
    /// The database role.
    Database(Arc<dyn Database>),
}

/// Opens the backend under test through a given address.
pub trait FaultOpener: Send + Sync {
    /// A connected backend of the suite's role reaching its server through `target.addr`.
    fn open(&self, target: FaultTarget) -> BoxFuture<'static, Result<Opened>>;
}

impl<F, Fut> FaultOpener for F
where
    F: Fn(FaultTarget) -> Fut + Send + Sync,
    Fut: std::future::Future<Output = Result<Opened>> + Send + 'static,
{
    fn open(&self, target: FaultTarget) -> BoxFuture<'static, Result<Opened>> {
        Box::pin(self(target))
    }
}

impl Opened {
    fn store(&self) -> &dyn Store {
        match self {
            Opened::Cache(c) => c.as_ref(),
            Opened::Database(d) => d.as_ref(),
        }
    }
    async fn set(&self, key: &str, v: &Value) -> Result<()> {
        match self {
            Opened::Cache(c) => c.set(key, v, Some(Duration::from_secs(600))).await,
            Opened::Database(d) => d.set(key, v).await,
        }
    }
    fn shared_store(&self) -> Arc<dyn Store> {
        match self {
            Opened::Cache(c) => c.clone(),
            Opened::Database(d) => d.clone(),
        }
    }
    fn db(&self) -> Option<&Arc<dyn Database>> {
        match self {
            Opened::Database(d) => Some(d),
            Opened::Cache(_) => None,
        }
    }
}

/// One case's context: the proxy, the backend, the limits.
struct Cx {
    proxy: FaultProxy,
    backend: Opened,
    limits: FaultTimeouts,
}

type Check = std::result::Result<(), String>;

fn bound(d: Duration) -> Duration {
    d + d / 5
}

impl Cx {
    /// Every kind of operation, each as a future that reports its name.
    async fn every_operation(&self, tag: &str) -> Results {
        let b = &self.backend;
        let key = format!("fault:{tag}");
        let mut out = vec![
            ("get", b.store().get(&key).await.map(|_| ())),
            ("set", b.set(&key, &json!(tag)).await),
            (
                "mget",
                b.store().mget(std::slice::from_ref(&key)).await.map(|_| ()),
            ),
            ("delete", b.store().delete(&key).await.map(|_| ())),
            ("keys", b.store().keys(Some("fault:*")).await.map(|_| ())),
        ];
        if let Some(d) = b.db() {
            let list = format!("fault:list:{tag}");
            out.push(("append", d.append(&list, &json!(tag)).await));
            out.push(("get_range", d.get_range(&list, -2, -1).await.map(|_| ())));
        }
        out
    }

    /// After the fault cleared: every write of [`Cx::every_operation`]`(tag)` whose error said
    /// it was not applied left no trace (the value not stored, the item not appended).
    async fn not_applied_left_nothing(&self, tag: &str, results: &Results) -> Check {
        let said_not_applied = |name: &str| {
            results.iter().any(|(op, r)| {
                *op == name
                    && r.as_ref()
                        .is_err_and(|e| e.outcome() == storage_core::Outcome::NotApplied)
            })
        };
        let value = json!(tag);
        if said_not_applied("set") {
            let now = self.backend.store().get(&format!("fault:{tag}")).await;
            if now.as_ref().is_ok_and(|v| v.as_ref() == Some(&value)) {
                return Err(format!(
                    "set said it was not applied, but fault:{tag} holds it"
                ));
            }
        }
        if said_not_applied("append")
            && let Some(d) = self.backend.db()
        {
            let list = d
                .get_range(&format!("fault:list:{tag}"), 0, -1)
                .await
                .map_err(|e| e.to_string())?;
            if list.contains(&value) {
                return Err(format!(
                    "append said it was not applied, but the list holds {value}"
                ));
            }
        }
        Ok(())
    }

    /// The same backend object serves again within 2 s of the fault clearing.
    async fn recovers(&self) -> Check {
        self.proxy.set(Fault::Pass);
        let started = Instant::now();
        loop {
            let probe = format!("fault:recover:{}", started.elapsed().as_nanos());
            let r = self.backend.set(&probe, &json!(1)).await;
            let r = match r {
                Ok(()) => self.backend.store().get(&probe).await.map(|_| ()),
                Err(e) => Err(e),
            };
            match r {
                Ok(()) => return Ok(()),
                Err(e) if started.elapsed() > Duration::from_secs(2) => {
                    return Err(format!("not serving 2 s after the fault cleared: {e}"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

/// What [`Cx::every_operation`] did: each operation's name and result.
type Results = Vec<(&'static str, Result<()>)>;

/// Times `f`, failing unless every operation ends within `each_limit` with an error of
/// `kind`; gives the results back for the case to read their outcomes.
async fn fails_within<F: std::future::Future<Output = Results>>(
    f: F,
    each_limit: Duration,
    kind: ErrorKind,
) -> std::result::Result<Results, String> {
    let started = Instant::now();
    let results = f.await;
    let n = results.len() as u32;
    for (op, r) in &results {
        match r {
            Err(e) if e.kind() == kind => {}
            Err(e) => return Err(format!("{op}: expected a {kind} error, got {e}")),
            Ok(()) => return Err(format!("{op}: succeeded through a broken server")),
        }
    }
    let took = started.elapsed();
    if took > each_limit * n {
        return Err(format!(
            "{n} operations took {took:?}, more than {each_limit:?} each"
        ));
    }
    Ok(results)
}

/// Fails unless every operation says it was not applied: nothing could reach the server.
fn all_not_applied(results: &Results) -> Check {
    for (op, r) in results {
        if let Err(e) = r
            && e.outcome() != storage_core::Outcome::NotApplied
        {
            return Err(format!(
                "{op}: nothing could reach the server, but the error says the outcome is {}: {e}",
                e.outcome().code()
            ));
        }
    }
    Ok(())
}

type CaseFn = fn(Arc<Cx>) -> BoxFuture<'static, Check>;

struct FaultCase {
    name: &'static str,
    database_only: bool,
    limits: fn() -> FaultTimeouts,
    run: CaseFn,
}

mod cases;
use cases::*;

fn cases() -> Vec<FaultCase> {
    let d = FaultTimeouts::default;
    vec![
        FaultCase {
            name: "fault_refused_server_fails_fast_with_connection_errors",
            database_only: false,
            limits: d,
            run: |cx| Box::pin(refused(cx)),
        },
        FaultCase {
            name: "fault_black_hole_times_out_and_pool_slots_come_back",
            database_only: false,
            limits: d,
            run: |cx| Box::pin(black_hole(cx)),
        },
        FaultCase {
            name: "fault_lost_reply_never_duplicates_an_append",
            database_only: true,
            limits: d,
            run: |cx| Box::pin(lost_reply_append(cx)),
        },
        FaultCase {
            name: "fault_lost_reply_on_set_and_delete",
            database_only: false,
            limits: d,
            run: |cx| Box::pin(lost_reply_set_delete(cx)),
        },
        FaultCase {
            name: "fault_exhausted_pool_times_out_in_bounded_time",
            database_only: false,
            limits: exhausted_limits,
            run: |cx| Box::pin(exhausted(cx)),
        },
        FaultCase {
            name: "fault_timed_out_append_applies_once_or_never_and_says_so",
            database_only: true,
            limits: d,
            run: |cx| Box::pin(timed_out_append(cx)),
        },
        FaultCase {
            name: "fault_stall_then_operations_after_it_fail_on_no_older_connect",
            database_only: false,
            limits: d,
            run: |cx| Box::pin(stall_then_recover(cx)),
        },
        FaultCase {
            name: "fault_idle_restart_then_every_operation_succeeds",
            database_only: false,
            limits: d,
            run: |cx| Box::pin(idle_restart(cx)),
        },
        FaultCase {
            name: "fault_tail_across_a_restart_loses_and_repeats_nothing",
            database_only: true,
            limits: d,
            run: |cx| Box::pin(tail_across_a_restart(cx)),
        },
        FaultCase {
            name: "fault_watch_across_a_restart_loses_nothing",
            database_only: false,
            limits: d,
            run: |cx| Box::pin(watch_across_a_restart(cx)),
        },
    ]
}

fn exhausted_limits() -> FaultTimeouts {
    FaultTimeouts {
        acquire: Duration::from_millis(500),
        pool_max: 2,
        ..FaultTimeouts::default()
    }
}

/// The names of the fault cases for `role`, in order.
pub fn fault_case_names(role: Role) -> Vec<&'static str> {
    cases()
        .into_iter()
        .filter(|c| role == Role::Database || !c.database_only)
        .map(|c| c.name)
        .collect()
}

/// Runs every fault case for `role` against the server at `upstream`, opening the backend
/// through `opener`. Needs a multi-threaded tokio runtime with time and I/O enabled.
pub async fn run_fault_suite(
    role: Role,
    upstream: SocketAddr,
    opener: Arc<dyn FaultOpener>,
    options: &SuiteOptions,
) -> Report {
    let mut reports = Vec::new();
    for (i, case) in cases().into_iter().enumerate() {
        if case.database_only && role == Role::Cache {
            continue;
        }
        if let Some(filter) = &options.filter
            && !case.name.contains(filter.as_str())
        {
            continue;
        }
        let outcome = match run_case(&case, i, upstream, opener.clone(), options).await {
            Ok(()) => Outcome::Passed,
            Err(m) => Outcome::Failed(m),
        };
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

async fn run_case(
    case: &FaultCase,
    i: usize,
    upstream: SocketAddr,
    opener: Arc<dyn FaultOpener>,
    options: &SuiteOptions,
) -> Check {
    let proxy = FaultProxy::start(upstream)
        .await
        .map_err(|e| format!("cannot start the fault proxy: {e}"))?;
    let limits = (case.limits)();
    let target = FaultTarget {
        addr: proxy.addr(),
        key_prefix: format!("{}fault{i:02}:", options.prefix),
        timeouts: limits,
    };
    let backend = opener
        .open(target)
        .await
        .map_err(|e| format!("cannot open the backend through the proxy: {e}"))?;
    let cx = Arc::new(Cx {
        proxy,
        backend,
        limits,
    });
    let task = tokio::spawn((case.run)(cx.clone()));
    let outcome = match tokio::time::timeout(options.case_timeout, task).await {
        Ok(Ok(r)) => r,
        Ok(Err(join)) => Err(format!("case panicked: {join}")),
        Err(_) => Err(format!(
            "case did not finish within {:?}",
            options.case_timeout
        )),
    };
    cx.proxy.set(Fault::Pass);
    let _ = cx.backend.store().clear().await;
    let _ = cx.backend.store().close().await;
    outcome
}
