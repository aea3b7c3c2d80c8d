//! Cases on watching a namespace ([`storage_core::watch::Watch`]), for both roles: sets,
//! deletes and clears written by another instance arrive in order and only under the prefix;
//! one key's changes keep their order under concurrent writers; a watch resumed from its
//! position misses nothing; a watcher that falls behind the log gets `Lagged`, never a silent
//! gap. Run where the backend keeps a change log ([`storage_core::Store::changes`]); the
//! runner says where it does not.

use super::{Cx, Subject};
use crate::check::{CaseResult, Ctx, ensure, ensure_eq};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use storage_core::Store;
use storage_core::watch::{Change, ChangeKind, RETAINED_CHANGES, Watch, WatchEvent};

/// How long a case waits for an event it is owed.
const PATIENCE: Duration = Duration::from_secs(20);

/// How long a case waits to show that no further event comes.
const QUIET: Duration = Duration::from_millis(300);

fn store(subject: &Subject) -> Arc<dyn Store> {
    match subject {
        Subject::Cache(c) => c.clone(),
        Subject::Database(d) => d.clone(),
    }
}

async fn next(watch: &mut Watch, what: &str) -> std::result::Result<WatchEvent, String> {
    match tokio::time::timeout(PATIENCE, watch.next()).await {
        Err(_) => Err(format!("{what}: no event within {PATIENCE:?}")),
        Ok(None) => Err(format!("{what}: the watch ended")),
        Ok(Some(r)) => r.ctx(what),
    }
}

async fn next_change(watch: &mut Watch, what: &str) -> std::result::Result<Change, String> {
    match next(watch, what).await? {
        WatchEvent::Change(c) => Ok(c),
        other => Err(format!("{what}: expected a change, got {other:?}")),
    }
}

async fn quiet(watch: &mut Watch, what: &str) -> CaseResult {
    match tokio::time::timeout(QUIET, watch.next()).await {
        Err(_) => Ok(()),
        Ok(event) => Err(format!("{what}: expected no event, got {event:?}")),
    }
}

/// (key, kind) of a change, for comparing sequences.
fn shape(c: &Change) -> (String, ChangeKind) {
    (c.key.clone(), c.kind)
}

pub async fn watch_sees_sets_deletes_and_clears_from_another_instance(cx: Cx) -> CaseResult {
    let watched = cx.subject().await?;
    let writer = cx.subject().await?;
    let mut watch = Watch::new(store(&watched), "w:").await.ctx("watch")?;
    writer.set("w:a", &json!(1)).await.ctx("set w:a")?;
    writer.set("other", &json!(2)).await.ctx("set other")?;
    writer.set("w:b", &json!(3)).await.ctx("set w:b")?;
    ensure!(writer.delete("w:a").await.ctx("delete w:a")?, "w:a existed");
    ensure!(
        !writer.delete("w:missing").await.ctx("delete w:missing")?,
        "w:missing did not exist"
    );
    writer
        .mset(&[("w:c".into(), json!(4)), ("w:d".into(), json!(5))])
        .await
        .ctx("mset")?;
    writer.clear().await.ctx("clear")?;
    let want = [
        ("w:a", ChangeKind::Set),
        ("w:b", ChangeKind::Set),
        ("w:a", ChangeKind::Delete),
        ("w:c", ChangeKind::Set),
        ("w:d", ChangeKind::Set),
        ("", ChangeKind::Cleared),
    ];
    let mut last = None;
    for (i, (key, kind)) in want.iter().enumerate() {
        let change = next_change(&mut watch, &format!("change {i}")).await?;
        ensure_eq!(shape(&change), (key.to_string(), *kind), "change {i}");
        if let Some(at) = change.at_ms {
            let now = storage_core::watch::now_ms();
            ensure!(
                at.abs_diff(now) < 60_000,
                "change {i} was made at {at} ms, {} ms from now",
                at.abs_diff(now)
            );
        }
        if let Some(previous) = last {
            ensure!(
                change.position >= previous,
                "positions only grow: {} after {previous}",
                change.position
            );
        }
        last = Some(change.position);
    }
    quiet(&mut watch, "after the clear").await
}

pub async fn watch_reports_the_version_a_set_wrote(cx: Cx) -> CaseResult {
    let Subject::Database(db) = cx.subject().await? else {
        return Ok(()); // versions are the database role's
    };
    let watched: Arc<dyn Store> = cx.db().await?;
    let mut watch = Watch::new(watched, "").await.ctx("watch")?;
    db.set("k", &json!("v")).await.ctx("set")?;
    let (_, version) = db
        .get_versioned("k")
        .await
        .ctx("get_versioned")?
        .ok_or("k missing after its set")?;
    let change = next_change(&mut watch, "the set").await?;
    ensure_eq!(
        (shape(&change), change.version),
        (("k".to_string(), ChangeKind::Set), Some(version)),
        "the change carries the version get_versioned reads"
    );
    Ok(())
}

pub async fn one_keys_changes_keep_their_order(cx: Cx) -> CaseResult {
    let watched = cx.subject().await?;
    let mut watch = Watch::new(store(&watched), "").await.ctx("watch")?;
    let ordered = cx.subject().await?;
    let noisy = cx.subject().await?;
    let keys = tokio::spawn(async move {
        for i in 0..100 {
            ordered.set("k", &json!(i)).await?;
        }
        ordered.delete("k").await.map(|_| ())
    });
    let noise = tokio::spawn(async move {
        for i in 0..100 {
            noisy.set(&format!("n{}", i % 7), &json!(i)).await?;
        }
        Ok::<_, storage_core::Error>(())
    });
    keys.await
        .map_err(|e| e.to_string())?
        .ctx("the ordered writer")?;
    noise
        .await
        .map_err(|e| e.to_string())?
        .ctx("the noisy writer")?;
    let mut seen_k = Vec::new();
    let mut others = 0;
    while seen_k.len() < 101 || others < 100 {
        let change = next_change(&mut watch, "a change").await?;
        if change.key == "k" {
            seen_k.push(change.kind);
        } else {
            others += 1;
        }
    }
    let mut want = vec![ChangeKind::Set; 100];
    want.push(ChangeKind::Delete);
    ensure_eq!(seen_k, want, "k's changes, in order");
    ensure_eq!(others, 100, "the other writer's changes");
    quiet(&mut watch, "after both writers").await
}

pub async fn a_resumed_watch_misses_nothing(cx: Cx) -> CaseResult {
    let watched = cx.subject().await?;
    let writer = cx.subject().await?;
    let mut watch = Watch::new(store(&watched), "").await.ctx("watch")?;
    for i in 0..3 {
        writer
            .set(&format!("before{i}"), &json!(i))
            .await
            .ctx("set")?;
    }
    for i in 0..3 {
        let change = next_change(&mut watch, "a change before the pause").await?;
        ensure_eq!(change.key, format!("before{i}"), "change {i}");
    }
    let position = watch.position();
    drop(watch);
    for i in 0..5 {
        writer
            .set(&format!("during{i}"), &json!(i))
            .await
            .ctx("set")?;
    }
    let mut resumed = Watch::from(store(&watched), "", position);
    for i in 0..5 {
        let change = next_change(&mut resumed, "a change while no one watched").await?;
        ensure_eq!(
            change.key,
            format!("during{i}"),
            "change {i} after resuming"
        );
    }
    quiet(&mut resumed, "after the resumed changes").await
}

pub async fn a_watcher_that_falls_behind_gets_lagged(cx: Cx) -> CaseResult {
    let watched = cx.subject().await?;
    let writer = cx.subject().await?;
    let mut watch = Watch::new(store(&watched), "").await.ctx("watch")?;
    writer.set("first", &json!(0)).await.ctx("set")?;
    let first = next_change(&mut watch, "the first change").await?;
    ensure_eq!(first.key, "first", "the first change");
    // More changes than the log keeps, while the watcher does not read.
    let total = RETAINED_CHANGES + 1_000;
    let batch = 500;
    for start in (0..total).step_by(batch) {
        let entries: Vec<_> = (start..(start + batch as u64).min(total))
            .map(|i| (format!("bulk{i}"), json!(i)))
            .collect();
        writer.mset(&entries).await.ctx("mset")?;
    }
    match next(&mut watch, "the event after falling behind").await? {
        WatchEvent::Lagged {
            missed_from,
            resumed_at,
        } => ensure!(
            resumed_at > missed_from,
            "Lagged resumes past where it stood: {missed_from} -> {resumed_at}"
        ),
        other => return Err(format!("expected Lagged, got {other:?}")),
    }
    // It goes on: the next events are changes still in the log.
    let change = next_change(&mut watch, "a change after Lagged").await?;
    ensure!(
        change.key.starts_with("bulk"),
        "after Lagged come the changes still held, got {change:?}"
    );
    Ok(())
}
