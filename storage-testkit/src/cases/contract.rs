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
    super::listing::keys_match_rows(&s, rows).await
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

/// `trim` is Redis `LTRIM`, against the kit's own model, on a fresh list per window.
pub async fn trim_table(cx: Cx) -> CaseResult {
    let d = cx.db().await?;
    let items: Vec<Value> = (0..10).map(|i| json!(i)).collect();
    let windows: &[(i64, i64)] = &[
        (0, -1),
        (2, 5),
        (-3, -1),
        (0, 0),
        (9, 9),
        (5, 100),
        (-100, 2),
        (-100, -20),
        (7, 3),
        (10, 20),
        (i64::MIN, i64::MAX),
        (0, -11),
    ];
    for (i, (start, end)) in windows.iter().enumerate() {
        let key = format!("trim{i}");
        d.append_many(&key, &items).await.ctx("append_many")?;
        d.trim(&key, *start, *end)
            .await
            .ctx(format!("trim({start}, {end})"))?;
        match crate::model::trim(&items, *start, *end) {
            Some(want) => {
                let n = want.len() as u64;
                ensure_eq!(
                    d.get_range(&key, 0, -1).await.ctx("range")?,
                    want,
                    "trim({start}, {end})"
                );
                ensure_eq!(d.get_length(&key).await.ctx("len")?, n, "length");
            }
            None => ensure_eq!(
                d.kind(&key).await.ctx("kind")?,
                storage_core::KeyKind::None,
                "trim({start}, {end}) keeps nothing: the key goes"
            ),
        }
    }
    Ok(())
}

/// A trimmed head stays trimmed across appends, reads and further trims.
pub async fn trim_head_then_append_and_read(cx: Cx) -> CaseResult {
    let d = cx.db().await?;
    let key = "history";
    let mut model: Vec<Value> = (0..3000).map(|i| json!(i)).collect();
    for chunk in model.chunks(1000) {
        d.append_many(key, chunk).await.ctx("append_many")?;
    }
    for (start, end, appended) in [(2000, -1, 5), (-500, -1, 1), (3, 9, 2), (0, -2, 3)] {
        d.trim(key, start, end)
            .await
            .ctx(format!("trim({start}, {end})"))?;
        model = crate::model::trim(&model, start, end).unwrap_or_default();
        for a in 0..appended {
            let v = json!(format!("new-{start}-{a}"));
            d.append(key, &v).await.ctx("append after trim")?;
            model.push(v);
        }
        ensure_eq!(
            d.get_length(key).await.ctx("len")?,
            model.len() as u64,
            "length"
        );
        ensure_eq!(
            d.get_range(key, -3, -1).await.ctx("tail")?,
            crate::model::range(&model, -3, -1),
            "tail after trim({start}, {end})"
        );
        ensure_eq!(
            d.get_range(key, 0, 1).await.ctx("head")?,
            crate::model::range(&model, 0, 1),
            "head after trim({start}, {end})"
        );
    }
    ensure_eq!(
        d.get_range(key, 0, -1).await.ctx("all")?,
        model,
        "whole list"
    );
    Ok(())
}

/// Trimming a missing key does nothing; trimming a value is a wrong-type error and leaves it.
pub async fn trim_missing_and_wrong_type(cx: Cx) -> CaseResult {
    let d = cx.db().await?;
    d.trim("missing", 0, 1).await.ctx("trim a missing key")?;
    ensure_eq!(
        d.kind("missing").await.ctx("kind")?,
        storage_core::KeyKind::None,
        "still missing"
    );
    d.set("v", &json!("x")).await.ctx("set")?;
    crate::check::expect_err(
        d.trim("v", 0, 0).await,
        ErrorKind::WrongType,
        "trim of a value",
    )?;
    ensure_eq!(
        d.get("v").await.ctx("get")?,
        Some(json!("x")),
        "value untouched"
    );
    // A list set over after a trim starts from scratch.
    d.append_many("l", &[json!(1), json!(2), json!(3)])
        .await
        .ctx("append")?;
    d.trim("l", 1, -1).await.ctx("trim")?;
    d.set("l", &json!("value now"))
        .await
        .ctx("set over the list")?;
    d.delete("l").await.ctx("delete")?;
    d.append("l", &json!("fresh")).await.ctx("append again")?;
    ensure_eq!(
        d.get_range("l", 0, -1).await.ctx("range")?,
        vec![json!("fresh")],
        "fresh list"
    );
    Ok(())
}
