//! Cases on following a list ([`storage_core::feed::Tail`]): every item exactly once and in
//! order, whether appended before the tail started, while it runs or by another instance; a
//! tail from the end sees only what comes next; a trim past undelivered items and a deleted
//! list end it with an error that says so. Run where the backend can follow lists
//! ([`storage_core::Database::list_window`]); the runner says where it cannot.

use super::Cx;
use crate::check::{CaseResult, Ctx, ensure, ensure_eq};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use storage_core::Database;
use storage_core::feed::{Tail, TailItem};

/// How long a case waits for an item it is owed.
const PATIENCE: Duration = Duration::from_secs(20);

async fn next(tail: &mut Tail, what: &str) -> std::result::Result<TailItem, String> {
    match tokio::time::timeout(PATIENCE, tail.next()).await {
        Err(_) => Err(format!("{what}: no item within {PATIENCE:?}")),
        Ok(None) => Err(format!("{what}: the tail ended")),
        Ok(Some(r)) => r.ctx(what),
    }
}

async fn next_error(tail: &mut Tail, what: &str) -> std::result::Result<String, String> {
    match tokio::time::timeout(PATIENCE, tail.next()).await {
        Err(_) => Err(format!("{what}: no error within {PATIENCE:?}")),
        Ok(None) => Err(format!("{what}: the tail ended without an error")),
        Ok(Some(Ok(item))) => Err(format!("{what}: expected an error, got item {item:?}")),
        Ok(Some(Err(e))) => Ok(e.to_string()),
    }
}

pub async fn tail_sees_items_before_during_and_after(cx: Cx) -> CaseResult {
    let db = cx.db().await?;
    let writer = cx.db().await?;
    for i in 0..3 {
        db.append("chat", &json!(i)).await.ctx("append before")?;
    }
    let mut tail = Tail::new(db.clone(), "chat", 0);
    for i in 0..3 {
        let item = next(&mut tail, "an item appended before").await?;
        ensure_eq!(
            item,
            TailItem {
                index: i,
                value: json!(i)
            },
            "item {i}"
        );
    }
    // Another instance appends while the tail waits, some one at a time, some in a batch.
    let appends = tokio::spawn(async move {
        for i in 3..40 {
            writer.append("chat", &json!(i)).await?;
            if i % 7 == 0 {
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        }
        let batch: Vec<_> = (40..50).map(|i| json!(i)).collect();
        writer.append_many("chat", &batch).await
    });
    for i in 3..50 {
        let item = next(&mut tail, "an item appended meanwhile").await?;
        ensure_eq!(
            item,
            TailItem {
                index: i,
                value: json!(i)
            },
            "item {i}"
        );
    }
    appends
        .await
        .map_err(|e| e.to_string())?
        .ctx("the other instance's appends")?;
    ensure_eq!(tail.position(), 50, "the position after 50 items");
    Ok(())
}

pub async fn tail_from_the_end_sees_only_new_items(cx: Cx) -> CaseResult {
    let db = cx.db().await?;
    db.append_many("chat", &[json!("a"), json!("b")])
        .await
        .ctx("append")?;
    let end = db.get_length("chat").await.ctx("get_length")?;
    let mut tail = Tail::new(db.clone(), "chat", end);
    db.append("chat", &json!("c")).await.ctx("append after")?;
    let item = next(&mut tail, "the new item").await?;
    ensure_eq!(
        item,
        TailItem {
            index: 2,
            value: json!("c")
        },
        "only the new item"
    );
    Ok(())
}

pub async fn tail_of_a_list_not_yet_created_waits_for_it(cx: Cx) -> CaseResult {
    let db = cx.db().await?;
    let mut tail = Tail::new(db.clone(), "later", 0);
    let writer: Arc<dyn Database> = cx.db().await?;
    let append = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        writer.append("later", &json!("first")).await
    });
    let item = next(&mut tail, "the first item").await?;
    ensure_eq!(
        item,
        TailItem {
            index: 0,
            value: json!("first")
        },
        "the first item"
    );
    append.await.map_err(|e| e.to_string())?.ctx("append")?;
    Ok(())
}

pub async fn a_trim_past_undelivered_items_ends_the_tail(cx: Cx) -> CaseResult {
    let db = cx.db().await?;
    let items: Vec<_> = (0..10).map(|i| json!(i)).collect();
    db.append_many("chat", &items).await.ctx("append")?;
    let mut tail = Tail::new(db.clone(), "chat", 0);
    // Delivered in one read: the tail holds items 0..9 and owes nothing it has not read.
    ensure_eq!(next(&mut tail, "item 0").await?.index, 0, "item 0");
    // A new tail from 2 has read nothing when the head goes: items 2..6 are lost to it.
    let mut behind = Tail::new(db.clone(), "chat", 2);
    db.trim("chat", 7, -1).await.ctx("trim")?;
    let e = next_error(&mut behind, "a tail behind the trim").await?;
    ensure!(
        e.contains("trimmed") && e.contains("2..7"),
        "the error says what was lost: {e}"
    );
    ensure!(
        behind.next().await.is_none(),
        "the tail ends after its error"
    );
    // Items still at or after the new head go on: a tail from 7 is fine.
    let mut after = Tail::new(db.clone(), "chat", 7);
    ensure_eq!(
        next(&mut after, "item 7").await?,
        TailItem {
            index: 7,
            value: json!(7)
        },
        "item 7 after the trim"
    );
    Ok(())
}

pub async fn a_deleted_list_ends_the_tail(cx: Cx) -> CaseResult {
    let db = cx.db().await?;
    db.append_many("chat", &[json!(0), json!(1)])
        .await
        .ctx("append")?;
    let mut tail = Tail::new(db.clone(), "chat", 0);
    ensure_eq!(next(&mut tail, "item 0").await?.index, 0, "item 0");
    ensure_eq!(next(&mut tail, "item 1").await?.index, 1, "item 1");
    db.delete("chat").await.ctx("delete")?;
    // Created again, longer than before: without a generation its new items would pass for the
    // old list's next ones.
    let again: Vec<_> = (0..5).map(|i| json!(format!("new {i}"))).collect();
    db.append_many("chat", &again).await.ctx("append again")?;
    let e = next_error(&mut tail, "a tail of a replaced list").await?;
    ensure!(e.contains("deleted"), "the error says the list went: {e}");
    Ok(())
}

pub async fn a_window_past_the_end_is_empty_at_any_index(cx: Cx) -> CaseResult {
    let db = cx.db().await?;
    db.append_many("chat", &[json!(0), json!(1), json!(2)])
        .await
        .ctx("append")?;
    for from in [3, 1 << 40, i64::MAX as u64, u64::MAX] {
        let w = db.list_window("chat", from, 256).await.ctx("list_window")?;
        ensure_eq!((w.first, w.next), (0, 3), "the bounds read from {from}");
        ensure!(w.items.is_empty(), "no items from {from}: {:?}", w.items);
    }
    let w = db.list_window("chat", 1, 1).await.ctx("list_window")?;
    ensure_eq!(w.items, vec![json!(1)], "one item from index 1");
    Ok(())
}
