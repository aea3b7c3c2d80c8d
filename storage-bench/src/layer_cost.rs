//! What each layer over the in-memory store costs, for the scale run: `get` and `set` at one
//! task on a bare `HashMap` behind a lock (the raw baseline), on the store's own handle with no
//! layer, with the contract's checks (`Validate`), and as the registry opens it (the checks
//! over `Observe`: a span, two clock reads and the duration metric per operation). The four
//! run interleaved, each figure the median of three runs. It shows where the in-memory store's
//! gap to the raw map goes. Not the main benchmark's in-memory rows (`backend_rows.rs`).

use crate::harness::{RUNS, Stats};
use crate::scale::{timed, value_of};
use crate::scale_raw::Raw;
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use storage_core::Database;
use storage_core::layer::{Observe, Validate};

type Op = Arc<dyn Fn(usize) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

const KEYS: usize = 1000;

fn key(i: usize) -> String {
    format!("k{}", (i * 7919) % KEYS)
}

/// `get` and `set` through `db`.
fn through(db: Arc<dyn Database>, value: Arc<Value>) -> [Op; 2] {
    let getter = db.clone();
    [
        Arc::new(move |i| {
            let db = getter.clone();
            Box::pin(async move {
                db.get(&key(i)).await.expect("a get");
            })
        }),
        Arc::new(move |i| {
            let (db, value) = (db.clone(), value.clone());
            Box::pin(async move { db.set(&key(i), &value).await.expect("a set") })
        }),
    ]
}

/// One JSON row per (layers, op), with its ratio to the raw map's figure.
pub async fn compare(ops: usize) -> Vec<Value> {
    let value = Arc::new(value_of(200));
    let store = storage_memory::MemoryStore::new();
    let bare: Arc<dyn Database> = Arc::new(store.handle("layers:").expect("a namespace"));
    let checked: Arc<dyn Database> = Arc::new(Validate::new(bare.clone()));
    let observed: Arc<dyn Database> = Arc::new(Observe::database(bare.clone()));
    let opened: Arc<dyn Database> = Arc::new(Validate::new(observed));
    let raw = Arc::new(Raw::memory());
    for i in 0..KEYS {
        bare.set(&format!("k{i}"), &value).await.expect("a fill");
        raw.set(format!("k{i}"), (*value).clone()).await;
    }
    let raw_ops: [Op; 2] = {
        let (getter, setter, value) = (raw.clone(), raw, value.clone());
        [
            Arc::new(move |i| {
                let raw = getter.clone();
                Box::pin(async move { raw.get(key(i)).await })
            }),
            Arc::new(move |i| {
                let (raw, value) = (setter.clone(), value.clone());
                Box::pin(async move { raw.set(key(i), (*value).clone()).await })
            }),
        ]
    };
    let subjects: [(&str, [Op; 2]); 4] = [
        ("raw HashMap", raw_ops),
        ("store handle, no layer", through(bare, value.clone())),
        ("+ checks (Validate)", through(checked, value.clone())),
        ("+ checks + Observe (as opened)", through(opened, value)),
    ];
    // Sub-microsecond operations: enough of them that a run lasts tens of milliseconds.
    let total = ops * 100;
    let mut rows = Vec::new();
    for (o, op) in ["get", "set"].into_iter().enumerate() {
        let mut runs: Vec<Vec<Stats>> = vec![Vec::new(); subjects.len()];
        for (_, calls) in &subjects {
            let call = calls[o].clone();
            timed(1, total / 10 + 1, move |i| call(i)).await;
        }
        for round in 0..RUNS {
            // Each round starts with a different subject.
            for k in 0..subjects.len() {
                let s = (k + round) % subjects.len();
                let call = subjects[s].1[o].clone();
                runs[s].push(timed(1, total, move |i| call(i)).await);
            }
        }
        let medians: Vec<Stats> = runs.into_iter().map(Stats::median).collect();
        let raw_rate = medians[0].ops_per_sec;
        for ((layers, _), m) in subjects.iter().zip(&medians) {
            eprintln!(
                "scale: in-memory {op} {layers:<31} {:>10.0} ops/s  {:.2}× the raw map",
                m.ops_per_sec,
                m.ops_per_sec / raw_rate
            );
            rows.push(json!({
                "layers": layers, "op": op, "ops_per_sec": m.ops_per_sec,
                "ops_per_sec_min": m.min_ops_per_sec, "ops_per_sec_max": m.max_ops_per_sec,
                "p50_us": m.p50_us, "ratio_to_raw": m.ops_per_sec / raw_rate,
            }));
        }
    }
    rows
}
