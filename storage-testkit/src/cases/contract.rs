//! Cases that reach past the shared validation layer into each backend: order across
//! instances, atomicity seen by another reader, stale list items, member order, oversized
//! values, the glob matcher's edge rows, and strict one-kind contention.

use super::Cx;
use crate::check::{CaseResult, Ctx, ensure, ensure_eq};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use storage_core::{CacheEntry, ErrorKind, KeyTtl};

/// A, B and C are three instances over one store: the list order is the commit order,
/// whichever instance wrote.
pub async fn appends_follow_commit_order_across_instances(cx: Cx) -> CaseResult {
    let (a, b, c) = (cx.db().await?, cx.db().await?, cx.db().await?);
    let key = "shared-history";
    for (writer, i) in [
        (&a, 0),
        (&a, 1),
        (&a, 2),
        (&b, 3),
        (&a, 4),
        (&b, 5),
        (&b, 6),
        (&a, 7),
    ] {
        writer
            .append(key, &json!(i))
            .await
            .ctx(format!("append {i}"))?;
    }
    let want: Vec<Value> = (0..=7).map(|i| json!(i)).collect();
    ensure_eq!(
        c.get_range(key, 0, -1).await.ctx("range")?,
        want,
        "order on C"
    );
    ensure_eq!(c.get_length(key).await.ctx("len")?, 8, "length on C");
    ensure_eq!(
        c.get_range(key, -2, -1).await.ctx("tail")?,
        vec![json!(6), json!(7)],
        "tail on C"
    );
    Ok(())
}

/// A reader on another instance sees an `mset` all or not at all, and an `append_many` whole.
pub async fn mset_is_atomic_to_readers(cx: Cx) -> CaseResult {
    let (writer, reader) = (cx.db().await?, cx.db().await?);
    let keys: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    let write_keys = keys.clone();
    let w = tokio::spawn(async move {
        for round in 0..50 {
            let entries: Vec<(String, Value)> = write_keys
                .iter()
                .map(|k| (k.clone(), json!(round)))
                .collect();
            writer.mset(&entries).await?;
            writer
                .append_many("batches", &[json!(round), json!(round), json!(round)])
                .await?;
        }
        storage_core::Result::Ok(())
    });
    let mut snapshots = 0;
    while !w.is_finished() || snapshots == 0 {
        let slots = reader.mget(&keys).await.ctx("mget")?;
        let distinct: BTreeSet<String> = slots.iter().map(|s| format!("{s:?}")).collect();
        ensure!(
            distinct.len() == 1,
            "a reader saw a partial mset: {distinct:?}"
        );
        let items = reader.get_range("batches", 0, -1).await.ctx("range")?;
        ensure!(
            items.len() % 3 == 0,
            "a reader saw a partial append_many: {} items",
            items.len()
        );
        snapshots += 1;
        // A backend that never waits (memory) must still let the writer run.
        tokio::task::yield_now().await;
    }
    w.await.map_err(|e| e.to_string())?.ctx("writer")?;
    Ok(())
}

/// After `mset` (or `set`) replaced a list, the key becoming a list again holds no old item.
pub async fn mset_over_a_list_leaves_no_items(cx: Cx) -> CaseResult {
    let d = cx.db().await?;
    for (i, via_mset) in [(0, true), (1, false)] {
        let key = format!("relist{i}");
        for n in 0..5 {
            d.append(&key, &json!(format!("old{n}")))
                .await
                .ctx("append")?;
        }
        if via_mset {
            d.mset(&[(key.clone(), json!("value"))])
                .await
                .ctx("mset over a list")?;
        } else {
            d.set(&key, &json!("value")).await.ctx("set over a list")?;
        }
        d.delete(&key).await.ctx("delete")?;
        d.append(&key, &json!("new")).await.ctx("append again")?;
        ensure_eq!(
            d.get_range(&key, 0, -1).await.ctx("range")?,
            vec![json!("new")],
            "{key}"
        );
        ensure_eq!(d.get_length(&key).await.ctx("len")?, 1, "{key} length");
    }
    Ok(())
}

/// A cache `mset` with a repeated key keeps the last entry, its TTL included.
pub async fn cache_mset_last_entry_wins_with_its_ttl(cx: Cx) -> CaseResult {
    let c = cx.cache().await?;
    c.mset(&[
        CacheEntry::new("k", json!(1), Some(Duration::from_secs(600))),
        CacheEntry::new("k", json!(2), None),
        CacheEntry::new("j", json!(1), None),
        CacheEntry::new("j", json!(2), Some(Duration::from_secs(600))),
    ])
    .await
    .ctx("mset")?;
    ensure_eq!(c.get("k").await.ctx("get")?, Some(json!(2)), "last value");
    ensure_eq!(
        c.ttl("k").await.ctx("ttl")?,
        KeyTtl::Persistent,
        "last entry had no TTL"
    );
    ensure_eq!(c.get("j").await.ctx("get")?, Some(json!(2)), "last value");
    ensure!(
        matches!(c.ttl("j").await.ctx("ttl")?, KeyTtl::ExpiresIn(d) if d > Duration::from_secs(500)),
        "last entry's TTL"
    );
    Ok(())
}

/// Objects come back with their members in the order they were stored.
pub async fn object_member_order_is_kept(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    let text = r#"{"role":"user","content":"hi","zeta":1,"alpha":{"y":1,"b":[{"z":0,"a":1}]}}"#;
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    s.set("ordered", &v).await.ctx("set")?;
    let back = s.get("ordered").await.ctx("get")?.ok_or("missing")?;
    ensure_eq!(
        serde_json::to_string(&back).map_err(|e| e.to_string())?,
        text,
        "get"
    );
    let back = s
        .mget(&["ordered".into()])
        .await
        .ctx("mget")?
        .remove(0)
        .ok_or("missing")?;
    ensure_eq!(
        serde_json::to_string(&back).map_err(|e| e.to_string())?,
        text,
        "mget"
    );
    if let super::Subject::Database(d) = &s {
        d.append("ordered-list", &v).await.ctx("append")?;
        let items = d.get_range("ordered-list", 0, -1).await.ctx("range")?;
        ensure_eq!(
            serde_json::to_string(&items[0]).map_err(|e| e.to_string())?,
            text,
            "list item"
        );
    }
    Ok(())
}

/// A 20 MiB value is stored exactly or refused with a clear error; the backend still works.
pub async fn oversized_value_fails_cleanly_then_works(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    let big = Value::String("y".repeat(20 * 1024 * 1024));
    match s.set("huge", &big).await {
        Ok(()) => {
            let back = s.get("huge").await.ctx("get 20 MiB")?;
            ensure!(
                back.as_ref() == Some(&big),
                "a stored 20 MiB value did not round-trip"
            );
        }
        Err(e) => {
            ensure!(!e.message().is_empty(), "an empty error for a 20 MiB value");
            ensure_eq!(
                s.get("huge").await.ctx("get after refusal")?,
                None,
                "nothing stored"
            );
        }
    }
    s.set("after", &json!(1))
        .await
        .ctx("set after the big value")?;
    ensure_eq!(
        s.get("after").await.ctx("get")?,
        Some(json!(1)),
        "still works"
    );
    Ok(())
}

/// Redis's matcher on the rows people get wrong.
pub async fn glob_edge_rows(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    let keys = [
        "!", "a", "z", "-", "b", "hel", "hello", "a*x", "a*", "ax", "😀", "a\\", "\\",
    ];
    for k in keys {
        s.set(k, &json!(1)).await.ctx(format!("set {k:?}"))?;
    }
    let rows: &[(&str, &[&str])] = &[
        // `!` is a literal inside a set; only `^` negates.
        ("[!a]", &["!", "a"]),
        // An escaped `-` is a literal, not a range.
        ("[a\\-z]", &["a", "-", "z"]),
        // An unclosed range is its characters.
        ("[a-", &["a", "-"]),
        // A trailing backslash matches a backslash.
        ("a\\", &["a\\"]),
        ("hel*", &["hel", "hello"]),
        ("a\\*?", &["a*x"]),
        // `?` is one byte: a 4-byte character takes four.
        ("????", &["😀"]),
        ("😀", &["😀"]),
        ("*😀*", &["😀"]),
    ];
    super::common::keys_match_rows(&s, rows).await
}

/// Under contention, `set` and `delete` never fail with WrongType (they replace or remove
/// either kind); only `append` may, when the key holds a value at that moment.
pub async fn set_and_delete_never_fail_under_contention(cx: Cx) -> CaseResult {
    let mut tasks = Vec::new();
    for w in 0..8 {
        let d = cx.db().await?;
        tasks.push(tokio::spawn(async move {
            for i in 0..30 {
                let (op, r) = match (w + i) % 3 {
                    0 => ("set", d.set("contested", &json!(i)).await),
                    1 => ("append", d.append("contested", &json!(i)).await),
                    _ => ("delete", d.delete("contested").await.map(|_| ())),
                };
                match r {
                    Ok(()) => {}
                    Err(e) if op == "append" && e.kind() == ErrorKind::WrongType => {}
                    Err(e) => return Err(format!("{op}: {e}")),
                }
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| format!("task: {e}"))??;
    }
    Ok(())
}
