//! The scale run's own logic tested without servers: the time budget of a point. Not the
//! smoke run of the whole mode (`cargo xtask test` does that).

use super::*;

#[tokio::test]
async fn a_point_whose_calls_are_slow_makes_fewer_calls_within_its_budget() {
    let slow = |_| tokio::time::sleep(Duration::from_millis(20));
    let p = median_within(Duration::from_millis(50), 1, 1000, slow).await;
    assert!(p.budgeted, "1,000 calls of 20 ms do not fit 50 ms");
    assert_eq!(p.per_run, MIN_CALLS);
    assert_eq!(p.calls, 1 + (MIN_CALLS / 10 + 1) + RUNS * MIN_CALLS);

    let fast = |_| async {};
    let p = median_within(Duration::from_secs(10), 1, 1000, fast).await;
    assert!(!p.budgeted);
    assert_eq!((p.per_run, p.calls), (1000, 1 + 101 + RUNS * 1000));
}
