//! Cases on versions and conditional writes: every write changes a value's version, each
//! condition holds or is refused with the current version and nothing written, `update` loses
//! no increment under contention, and the cache's `set_if_absent` has one winner. Not the
//! plain writes (`operations.rs`).

use super::Cx;
use crate::check::{CaseResult, Ctx, ensure, ensure_eq, expect_err};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use storage_core::{
    Condition, Database, DatabaseExt, Error, ErrorKind, Result, UpdatePolicy, Version,
};

/// The refusal of a condition: a conflict that applied nothing, is permanent, and carries
/// `current`.
fn expect_conflict<T: std::fmt::Debug>(
    r: Result<T>,
    current: Option<Version>,
    what: &str,
) -> CaseResult {
    let e = match r {
        Ok(v) => return Err(format!("{what}: expected a conflict, got Ok({v:?})")),
        Err(e) => e,
    };
    let held = e.as_conflict().map(|c| c.current);
    expect_err(Err::<(), Error>(e), ErrorKind::Conflict, what)?;
    ensure_eq!(
        held,
        Some(current),
        "{what}: the conflict's current version"
    );
    Ok(())
}

async fn version_of(db: &dyn Database, key: &str) -> std::result::Result<Version, String> {
    match db.get_versioned(key).await.ctx("get_versioned")? {
        Some((_, v)) => Ok(v),
        None => Err(format!(
            "get_versioned({key:?}) found nothing after a write"
        )),
    }
}

pub async fn every_write_changes_the_version(cx: Cx) -> CaseResult {
    let db = cx.db().await?;
    ensure_eq!(
        db.get_versioned("k").await.ctx("get_versioned missing")?,
        None,
        "a missing key"
    );
    db.set("k", &json!(1)).await.ctx("set")?;
    let v1 = version_of(&*db, "k").await?;
    ensure_eq!(
        db.get_versioned("k").await.ctx("get_versioned")?,
        Some((json!(1), v1)),
        "the value with its version"
    );
    db.set("k", &json!(1)).await.ctx("set the same value")?;
    let v2 = version_of(&*db, "k").await?;
    ensure!(v2 != v1, "writing the same value again kept version {v1}");
    db.mset(&[("k".into(), json!(2)), ("other".into(), json!(3))])
        .await
        .ctx("mset")?;
    let v3 = version_of(&*db, "k").await?;
    ensure!(v3 != v2 && v3 != v1, "mset kept an old version");
    let v4 = db
        .set_if("k", &json!(4), &Condition::Any)
        .await
        .ctx("set_if any")?;
    ensure_eq!(
        version_of(&*db, "k").await?,
        v4,
        "set_if's returned version"
    );
    ensure!(![v1, v2, v3].contains(&v4), "set_if any reused a version");
    db.append("list", &json!("x")).await.ctx("append")?;
    expect_err(
        db.get_versioned("list").await,
        ErrorKind::WrongType,
        "get_versioned of a list",
    )?;
    Ok(())
}

pub async fn set_if_absent_creates_once(cx: Cx) -> CaseResult {
    let db = cx.db().await?;
    let v = db
        .set_if("k", &json!("first"), &Condition::Absent)
        .await
        .ctx("set_if absent on a missing key")?;
    ensure_eq!(
        db.get_versioned("k").await.ctx("get_versioned")?,
        Some((json!("first"), v)),
        "what the first writer stored"
    );
    expect_conflict(
        db.set_if("k", &json!("second"), &Condition::Absent).await,
        Some(v),
        "set_if absent on a present key",
    )?;
    ensure_eq!(
        db.get("k").await.ctx("get")?,
        Some(json!("first")),
        "after the refusal"
    );
    db.append("list", &json!(1)).await.ctx("append")?;
    expect_conflict(
        db.set_if("list", &json!(1), &Condition::Absent).await,
        None,
        "set_if absent on a list",
    )?;
    ensure_eq!(
        db.get_length("list").await.ctx("get_length")?,
        1,
        "the list after the refusal"
    );
    db.delete("k").await.ctx("delete")?;
    db.set_if("k", &json!("again"), &Condition::Absent)
        .await
        .ctx("set_if absent after a delete")?;
    Ok(())
}

pub async fn set_if_version_needs_the_current_version(cx: Cx) -> CaseResult {
    let db = cx.db().await?;
    expect_conflict(
        db.set_if("k", &json!(1), &Condition::Version(Version::from_raw(7)))
            .await,
        None,
        "set_if version on a missing key",
    )?;
    ensure!(
        !db.exists("k").await.ctx("exists")?,
        "a refused write created the key"
    );
    db.set("k", &json!("a")).await.ctx("set")?;
    let read = version_of(&*db, "k").await?;
    let written = db
        .set_if("k", &json!("b"), &Condition::Version(read))
        .await
        .ctx("set_if with the version just read")?;
    ensure!(written != read, "the write kept the version it replaced");
    expect_conflict(
        db.set_if("k", &json!("c"), &Condition::Version(read)).await,
        Some(written),
        "set_if with a stale version",
    )?;
    ensure_eq!(
        db.get_versioned("k").await.ctx("get_versioned")?,
        Some((json!("b"), written)),
        "after the refusal"
    );
    db.append("list", &json!(1)).await.ctx("append")?;
    expect_err(
        db.set_if("list", &json!(1), &Condition::Version(written))
            .await,
        ErrorKind::WrongType,
        "set_if version on a list",
    )?;
    db.set_if("list", &json!("v"), &Condition::Any)
        .await
        .ctx("set_if any over a list")?;
    ensure_eq!(
        db.get("list").await.ctx("get")?,
        Some(json!("v")),
        "a list replaced"
    );
    Ok(())
}

pub async fn delete_if_conditions(cx: Cx) -> CaseResult {
    let db = cx.db().await?;
    ensure!(
        !db.delete_if("k", &Condition::Absent)
            .await
            .ctx("delete_if absent, missing")?,
        "delete_if absent removed something"
    );
    db.set("k", &json!(1)).await.ctx("set")?;
    let v = version_of(&*db, "k").await?;
    expect_conflict(
        db.delete_if("k", &Condition::Absent).await,
        Some(v),
        "delete_if absent on a present key",
    )?;
    expect_conflict(
        db.delete_if("k", &Condition::Version(Version::from_raw(v.raw() ^ 1)))
            .await,
        Some(v),
        "delete_if with another version",
    )?;
    ensure_eq!(
        db.get("k").await.ctx("get")?,
        Some(json!(1)),
        "after the refusals"
    );
    ensure!(
        db.delete_if("k", &Condition::Version(v))
            .await
            .ctx("delete_if version")?,
        "delete_if with the current version removed nothing"
    );
    ensure!(
        !db.exists("k").await.ctx("exists")?,
        "the key is still there"
    );
    expect_conflict(
        db.delete_if("k", &Condition::Version(v)).await,
        None,
        "delete_if version on a missing key",
    )?;
    db.append("list", &json!(1)).await.ctx("append")?;
    expect_err(
        db.delete_if("list", &Condition::Version(v)).await,
        ErrorKind::WrongType,
        "delete_if version on a list",
    )?;
    ensure!(
        db.delete_if("list", &Condition::Any)
            .await
            .ctx("delete_if any")?,
        "delete_if any on a list removed nothing"
    );
    Ok(())
}

/// 8 tasks × 250 increments of one counter through `update`: exactly 2000.
pub async fn update_loses_no_increment(cx: Cx) -> CaseResult {
    let db = cx.db().await?;
    let (tasks, each) = (8u64, 250u64);
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let db = Arc::clone(&db);
            tokio::spawn(async move { increments(&*db, "counter", each).await })
        })
        .collect();
    for h in handles {
        h.await
            .map_err(|e| format!("an updating task failed: {e}"))??;
    }
    ensure_eq!(
        db.get("counter").await.ctx("get")?,
        Some(json!(tasks * each)),
        "the counter after {tasks} tasks × {each} updates"
    );
    Ok(())
}

/// `n` increments of the counter at `key` through `update`, with room for heavy contention.
pub async fn increments(db: &dyn Database, key: &str, n: u64) -> std::result::Result<(), String> {
    let policy = UpdatePolicy {
        max_attempts: 10_000,
        ..UpdatePolicy::default()
    };
    for i in 0..n {
        db.update_with(key, policy, |v| {
            Ok(json!(v.and_then(Value::as_u64).unwrap_or(0) + 1))
        })
        .await
        .ctx(format!("update {i} of {key:?}"))?;
    }
    Ok(())
}

/// A conditional write racing a plain `set` on one version: never both applied on it, so the
/// plain `set`'s value is the one left, whichever came first.
pub async fn set_if_racing_a_plain_set(cx: Cx) -> CaseResult {
    let db = cx.db().await?;
    for round in 0..50u64 {
        db.set("k", &json!({"round": round, "by": "start"}))
            .await
            .ctx("set")?;
        let v = version_of(&*db, "k").await?;
        let (a, b) = (Arc::clone(&db), Arc::clone(&db));
        let conditional = tokio::spawn(async move {
            a.set_if("k", &json!("conditional"), &Condition::Version(v))
                .await
        });
        let plain = tokio::spawn(async move { b.set("k", &json!("plain")).await });
        let conditional = conditional.await.map_err(|e| e.to_string())?;
        plain.await.map_err(|e| e.to_string())?.ctx("plain set")?;
        match &conditional {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Conflict => {}
            Err(e) => return Err(format!("round {round}: set_if failed: {e}")),
        }
        ensure_eq!(
            db.get("k").await.ctx("get")?,
            Some(json!("plain")),
            "round {round}: the value left (set_if {}): a conditional write landed after a plain set on the version the set replaced",
            if conditional.is_ok() {
                "applied"
            } else {
                "refused"
            }
        );
    }
    Ok(())
}

/// An error from `update`'s function ends it with nothing written.
pub async fn update_stops_on_the_functions_error(cx: Cx) -> CaseResult {
    let db = cx.db().await?;
    db.set("k", &json!(1)).await.ctx("set")?;
    let v = version_of(&*db, "k").await?;
    let r = db
        .update("k", |_| Err(Error::invalid_input("no, thanks")))
        .await;
    expect_err(r, ErrorKind::InvalidInput, "update whose function fails")?;
    ensure_eq!(
        db.get_versioned("k").await.ctx("get_versioned")?,
        Some((json!(1), v)),
        "after the failed update"
    );
    let (value, version) = db
        .update("fresh", |v| {
            Ok(json!({"was": v.cloned().unwrap_or(Value::Null)}))
        })
        .await
        .ctx("update of a missing key")?;
    ensure_eq!(
        value,
        json!({"was": null}),
        "update's function saw no value"
    );
    ensure_eq!(
        version_of(&*db, "fresh").await?,
        version,
        "update's version"
    );
    Ok(())
}

/// `set_if_absent` on the cache: one winner among racers, a refusal that writes nothing, and
/// an expired key counts as absent.
pub async fn cache_set_if_absent_has_one_winner(cx: Cx) -> CaseResult {
    let cache = cx.cache().await?;
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let c = Arc::clone(&cache);
            tokio::spawn(async move {
                c.set_if_absent("lease", &json!(i), Some(Duration::from_secs(60)))
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        if h.await.map_err(|e| e.to_string())?.ctx("set_if_absent")? {
            winners.push(i);
        }
    }
    ensure_eq!(winners.len(), 1, "winners among 16 racers ({winners:?})");
    ensure_eq!(
        cache.get("lease").await.ctx("get")?,
        Some(json!(winners[0])),
        "the winner's value"
    );
    cache
        .set("short", &json!("old"), Some(Duration::from_millis(30)))
        .await
        .ctx("set with a short TTL")?;
    ensure!(
        !cache
            .set_if_absent("short", &json!("new"), None)
            .await
            .ctx("set_if_absent on a live key")?,
        "set_if_absent took a live key"
    );
    tokio::time::sleep(Duration::from_millis(80)).await;
    ensure!(
        cache
            .set_if_absent("short", &json!("new"), Some(Duration::from_secs(60)))
            .await
            .ctx("set_if_absent on an expired key")?,
        "an expired key was not absent"
    );
    ensure_eq!(
        cache.get("short").await.ctx("get")?,
        Some(json!("new")),
        "the new holder"
    );
    expect_err(
        cache
            .set_if_absent("z", &json!(1), Some(Duration::ZERO))
            .await,
        ErrorKind::InvalidInput,
        "a zero TTL",
    )?;
    Ok(())
}
