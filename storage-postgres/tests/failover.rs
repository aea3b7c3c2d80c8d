//! Failover: a primary with a streaming standby, one long-lived backend writing at a steady
//! rate through a two-host URL, the primary stopped and the standby promoted. The backend must
//! recover without being reopened, and with synchronous replication no acknowledged write may
//! be lost or duplicated; with asynchronous replication the loss is counted and printed.

use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use storage_core::Database;
mod common;
use storage_servers::{Postgres, PostgresOptions, find_postgres_bin, skip_or_fail};

/// How long the backend may take, after the promotion, to serve writes again.
const RECOVERY_BOUND: Duration = Duration::from_secs(15);

struct Outcome {
    acknowledged: Vec<i64>,
    stored: Vec<i64>,
    failed_writes: usize,
    error_window: Duration,
    recovered_after_promotion: Duration,
}

async fn open(url: &str) -> Arc<dyn Database> {
    let (registry, config) = common::resolved(&format!(
        "database: {{ type: postgres, url: '{url}', connectionTimeoutMillis: 2000, operationTimeoutMillis: 3000, pool: {{ acquireTimeoutMillis: 2000 }} }}\ncache: {{ type: postgres, url: '{url}', keyPrefix: 'c:' }}"
    ))
    .unwrap();
    registry
        .open_database(&config.database.primary)
        .await
        .unwrap()
}

async fn failover(synchronous: bool, immediate: bool) -> Option<Outcome> {
    let primary_options = PostgresOptions {
        synchronous_standby: synchronous,
        ..Default::default()
    };
    let mut primary = Postgres::start(&primary_options).unwrap();
    let standby = Postgres::start_standby(&primary).unwrap();
    let url = format!(
        "postgresql://postgres@127.0.0.1:{},127.0.0.1:{}/postgres",
        primary.port(),
        standby.port()
    );
    let db = open(&url).await;
    let key = "failover:history";
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut failed = 0usize;
            let (mut first_error, mut last_error) = (None::<Instant>, None::<Instant>);
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let appended = db.append(key, &json!(i)).await;
                let set = db.set("failover:last", &json!(i)).await;
                match (appended, set) {
                    (Ok(()), Ok(())) => acknowledged.push(i),
                    (Ok(()), Err(_)) => {
                        acknowledged.push(i);
                        failed += 1;
                        last_error = Some(Instant::now());
                        first_error.get_or_insert_with(Instant::now);
                    }
                    (Err(_), _) => {
                        failed += 1;
                        last_error = Some(Instant::now());
                        first_error.get_or_insert_with(Instant::now);
                    }
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (acknowledged, failed, first_error, last_error)
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    if immediate {
        primary.kill();
    } else {
        primary.stop();
    }
    let promote_started = Instant::now();
    standby.promote().unwrap();
    // Recovered: a write through the same backend object succeeds again.
    let recovered = loop {
        if db.set("failover:probe", &json!(1)).await.is_ok() {
            break promote_started.elapsed();
        }
        assert!(
            promote_started.elapsed() < RECOVERY_BOUND,
            "no write succeeded within {RECOVERY_BOUND:?} of the promotion"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, failed_writes, first_error, last_error) = writer.await.unwrap();
    let stored: Vec<i64> = db
        .get_range(key, 0, -1)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let error_window = match (first_error, last_error) {
        (Some(a), Some(b)) => b - a,
        _ => Duration::ZERO,
    };
    Some(Outcome {
        acknowledged,
        stored,
        failed_writes,
        error_window,
        recovered_after_promotion: recovered,
    })
}

fn check_no_duplicates_and_order(o: &Outcome) {
    let mut sorted = o.stored.clone();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        o.stored.len(),
        "a write landed twice: {:?}",
        o.stored
    );
    assert!(
        o.stored.windows(2).all(|w| w[0] < w[1]),
        "out of order: {:?}",
        o.stored
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn synchronous_failover_loses_no_acknowledged_write() {
    if find_postgres_bin().is_none() {
        return skip_or_fail(
            "synchronous_failover_loses_no_acknowledged_write",
            "no PostgreSQL",
        );
    }
    for immediate in [false, true] {
        let o = failover(true, immediate).await.unwrap();
        check_no_duplicates_and_order(&o);
        let lost: Vec<&i64> = o
            .acknowledged
            .iter()
            .filter(|i| !o.stored.contains(i))
            .collect();
        assert!(lost.is_empty(), "acknowledged appends lost: {lost:?}");
        eprintln!(
            "failover (synchronous, {}): {} acknowledged, 0 lost, {} failed writes over {:?}, writes back {:?} after the promotion",
            if immediate {
                "immediate stop"
            } else {
                "fast stop"
            },
            o.acknowledged.len(),
            o.failed_writes,
            o.error_window,
            o.recovered_after_promotion
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn asynchronous_failover_counts_what_it_loses() {
    if find_postgres_bin().is_none() {
        return skip_or_fail(
            "asynchronous_failover_counts_what_it_loses",
            "no PostgreSQL",
        );
    }
    let o = failover(false, true).await.unwrap();
    check_no_duplicates_and_order(&o);
    let lost = o
        .acknowledged
        .iter()
        .filter(|i| !o.stored.contains(i))
        .count();
    eprintln!(
        "failover (asynchronous, immediate stop): {} acknowledged, {lost} lost, {} failed writes over {:?}, writes back {:?} after the promotion",
        o.acknowledged.len(),
        o.failed_writes,
        o.error_window,
        o.recovered_after_promotion
    );
}
