//! Cache cases: TTL. Expiry is never raced: a key is asserted present only under a TTL of
//! many seconds, and asserted gone only after several times its short TTL.

use super::Cx;
use crate::check::{CaseResult, Ctx, ensure, ensure_eq, expect_err};
use serde_json::json;
use std::time::Duration;
use storage_core::{CacheEntry, ErrorKind, KeyKind, KeyTtl};

/// The contract's TTL limit, 2^53 - 1 ms, written down rather than taken from the code under test.
const MAX_TTL_MILLIS: u64 = 9_007_199_254_740_991;

const LONG: Duration = Duration::from_secs(600);
const SHORT: Duration = Duration::from_millis(60);
/// Several times SHORT, so that expiry is certain without racing the clock.
const WAIT: Duration = Duration::from_millis(600);

fn expires_within(ttl: KeyTtl, max: Duration) -> bool {
    matches!(ttl, KeyTtl::ExpiresIn(d) if d > Duration::ZERO && d <= max)
}

pub async fn ttl_present_under_a_long_ttl(cx: Cx) -> CaseResult {
    let c = cx.cache().await?;
    c.set("k", &json!("v"), Some(LONG))
        .await
        .ctx("set with TTL")?;
    ensure_eq!(
        c.get("k").await.ctx("get")?,
        Some(json!("v")),
        "value under TTL"
    );
    ensure!(
        c.exists("k").await.ctx("exists")?,
        "key under TTL must exist"
    );
    let ttl = c.ttl("k").await.ctx("ttl")?;
    ensure!(
        expires_within(ttl, LONG)
            && matches!(ttl, KeyTtl::ExpiresIn(d) if d > LONG - Duration::from_secs(60)),
        "ttl() = {ttl:?}, want close to {LONG:?}"
    );
    Ok(())
}

pub async fn ttl_expires_for_every_operation(cx: Cx) -> CaseResult {
    let c = cx.cache().await?;
    c.set("gone", &json!(1), Some(SHORT))
        .await
        .ctx("set short TTL")?;
    c.set("kept", &json!(2), None)
        .await
        .ctx("set without TTL")?;
    tokio::time::sleep(WAIT).await;
    ensure_eq!(c.get("gone").await.ctx("get")?, None, "get after expiry");
    ensure_eq!(
        c.mget(&["gone".into(), "kept".into()]).await.ctx("mget")?,
        vec![None, Some(json!(2))],
        "mget after expiry"
    );
    ensure!(
        !c.exists("gone").await.ctx("exists")?,
        "exists after expiry"
    );
    ensure_eq!(
        c.kind("gone").await.ctx("kind")?,
        KeyKind::None,
        "kind after expiry"
    );
    ensure_eq!(
        c.ttl("gone").await.ctx("ttl")?,
        KeyTtl::Missing,
        "ttl after expiry"
    );
    ensure_eq!(
        c.keys(None).await.ctx("keys")?,
        vec!["kept".to_string()],
        "keys after expiry"
    );
    ensure_eq!(
        c.keys(Some("g*")).await.ctx("keys g*")?,
        Vec::<String>::new(),
        "keys(g*) after expiry"
    );
    ensure!(
        !c.delete("gone").await.ctx("delete")?,
        "delete of an expired key returned true"
    );
    Ok(())
}

pub async fn ttl_set_without_ttl_clears_it(cx: Cx) -> CaseResult {
    let c = cx.cache().await?;
    c.set("k", &json!(1), Some(SHORT))
        .await
        .ctx("set short TTL")?;
    c.set("k", &json!(2), None).await.ctx("set without TTL")?;
    ensure_eq!(
        c.ttl("k").await.ctx("ttl")?,
        KeyTtl::Persistent,
        "ttl after set without TTL"
    );
    tokio::time::sleep(WAIT).await;
    ensure_eq!(
        c.get("k").await.ctx("get")?,
        Some(json!(2)),
        "value outlives the old TTL"
    );
    Ok(())
}

pub async fn ttl_set_replaces_the_ttl(cx: Cx) -> CaseResult {
    let c = cx.cache().await?;
    c.set("k", &json!(1), Some(SHORT))
        .await
        .ctx("set short TTL")?;
    c.set("k", &json!(2), Some(LONG))
        .await
        .ctx("set long TTL")?;
    tokio::time::sleep(WAIT).await;
    ensure_eq!(
        c.get("k").await.ctx("get")?,
        Some(json!(2)),
        "value under the new, long TTL"
    );
    c.set("j", &json!(1), Some(LONG)).await.ctx("set long")?;
    c.set("j", &json!(1), Some(SHORT)).await.ctx("set short")?;
    tokio::time::sleep(WAIT).await;
    ensure_eq!(
        c.get("j").await.ctx("get")?,
        None,
        "value under the new, short TTL"
    );
    Ok(())
}

pub async fn ttl_zero_and_over_limit_rejected(cx: Cx) -> CaseResult {
    let c = cx.cache().await?;
    expect_err(
        c.set("k", &json!(1), Some(Duration::ZERO)).await,
        ErrorKind::InvalidInput,
        "zero TTL",
    )?;
    let over = Duration::from_millis(MAX_TTL_MILLIS + 1);
    expect_err(
        c.set("k", &json!(1), Some(over)).await,
        ErrorKind::InvalidInput,
        "TTL over 2^53-1 ms",
    )?;
    expect_err(
        c.set("k", &json!(1), Some(Duration::MAX)).await,
        ErrorKind::InvalidInput,
        "Duration::MAX",
    )?;
    let batch = vec![
        CacheEntry::new("a", json!(1), None),
        CacheEntry::new("b", json!(1), Some(Duration::ZERO)),
    ];
    expect_err(
        c.mset(&batch).await,
        ErrorKind::InvalidInput,
        "mset with a zero TTL",
    )?;
    ensure!(
        !c.exists("k").await.ctx("exists")?,
        "rejected set stored a value"
    );
    ensure!(
        !c.exists("a").await.ctx("exists")?,
        "rejected mset stored a value"
    );
    Ok(())
}

pub async fn ttl_at_the_limit_accepted(cx: Cx) -> CaseResult {
    let c = cx.cache().await?;
    c.set("k", &json!(1), Some(Duration::from_millis(MAX_TTL_MILLIS)))
        .await
        .ctx("set with TTL of 2^53-1 ms")?;
    ensure_eq!(
        c.get("k").await.ctx("get")?,
        Some(json!(1)),
        "value under the longest TTL"
    );
    let ttl = c.ttl("k").await.ctx("ttl")?;
    ensure!(
        matches!(ttl, KeyTtl::ExpiresIn(d) if d > Duration::from_secs(1 << 40)),
        "ttl() = {ttl:?}"
    );
    Ok(())
}

pub async fn ttl_sub_millisecond_rounds_up(cx: Cx) -> CaseResult {
    let c = cx.cache().await?;
    c.set("k", &json!(1), Some(Duration::from_micros(1)))
        .await
        .ctx("set 1 µs TTL")?;
    tokio::time::sleep(WAIT).await;
    ensure_eq!(
        c.get("k").await.ctx("get")?,
        None,
        "a 1 µs TTL (1 ms) has expired"
    );
    Ok(())
}

pub async fn ttl_query_missing_and_persistent(cx: Cx) -> CaseResult {
    let c = cx.cache().await?;
    ensure_eq!(
        c.ttl("nope").await.ctx("ttl")?,
        KeyTtl::Missing,
        "missing key"
    );
    c.set("p", &json!(null), None).await.ctx("set")?;
    ensure_eq!(c.ttl("p").await.ctx("ttl")?, KeyTtl::Persistent, "no TTL");
    c.delete("p").await.ctx("delete")?;
    ensure_eq!(c.ttl("p").await.ctx("ttl")?, KeyTtl::Missing, "deleted key");
    Ok(())
}

pub async fn mset_entries_carry_their_own_ttl(cx: Cx) -> CaseResult {
    let c = cx.cache().await?;
    let batch = vec![
        CacheEntry::new("short", json!(1), Some(SHORT)),
        CacheEntry::new("long", json!(2), Some(LONG)),
        CacheEntry::new("none", json!(3), None),
    ];
    c.mset(&batch).await.ctx("mset")?;
    ensure!(
        expires_within(c.ttl("long").await.ctx("ttl")?, LONG),
        "long entry's TTL"
    );
    ensure_eq!(
        c.ttl("none").await.ctx("ttl")?,
        KeyTtl::Persistent,
        "entry without TTL"
    );
    tokio::time::sleep(WAIT).await;
    ensure_eq!(
        c.mget(&["short".into(), "long".into(), "none".into()])
            .await
            .ctx("mget")?,
        vec![None, Some(json!(2)), Some(json!(3))],
        "after the short TTL"
    );
    Ok(())
}

pub async fn expired_keys_do_not_count_as_existing(cx: Cx) -> CaseResult {
    let c = cx.cache().await?;
    let batch: Vec<CacheEntry> = (0..50)
        .map(|i| CacheEntry::new(format!("e{i}"), json!(i), Some(SHORT)))
        .collect();
    c.mset(&batch).await.ctx("mset")?;
    c.set("live", &json!(1), Some(LONG)).await.ctx("set")?;
    tokio::time::sleep(WAIT).await;
    ensure_eq!(
        c.keys(None).await.ctx("keys")?,
        vec!["live".to_string()],
        "keys after mass expiry"
    );
    // Writing again after expiry works and starts fresh.
    c.set("e1", &json!("new"), None)
        .await
        .ctx("set after expiry")?;
    ensure_eq!(
        c.get("e1").await.ctx("get")?,
        Some(json!("new")),
        "rewritten key"
    );
    Ok(())
}
