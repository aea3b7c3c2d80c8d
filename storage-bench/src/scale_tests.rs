//! The scale run's own logic tested without servers: the time budget of a point. Not the
//! smoke run of the whole mode (`cargo xtask test` does that).

use super::*;

#[tokio::test]
async fn a_point_whose_calls_are_slow_makes_fewer_calls_within_its_budget() {
    let slow = |_| tokio::time::sleep(Duration::from_millis(20));
    let p = median_within(Duration::from_millis(50), 1, 1000, slow).await;
    assert!(p.budgeted, "1,000 calls of 20 ms do not fit 50 ms");
    assert_eq!(p.per_run, MIN_CALLS);
    assert_eq!(p.calls, 2 + (MIN_CALLS / 10 + 1) + RUNS * MIN_CALLS);

    let fast = |_| async {};
    let p = median_within(Duration::from_secs(10), 1, 1000, fast).await;
    assert!(!p.budgeted);
    assert_eq!((p.per_run, p.calls), (1000, 2 + 101 + RUNS * 1000));
}

/// Regression: the budget was set by one call per task, so a point whose first call was cold
/// (PostgreSQL preparing its statement) made fewer calls than fit (1,429 instead of 2,000).
#[tokio::test]
async fn a_cold_first_call_does_not_cut_a_point() {
    let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cold_first = move |_| {
        let first = made.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0;
        async move {
            if first {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let p = median_within(Duration::from_millis(100), 1, 1000, cold_first).await;
    assert!(!p.budgeted, "warm calls fit: {} a run", p.per_run);
    assert_eq!(p.per_run, 1000);
}
