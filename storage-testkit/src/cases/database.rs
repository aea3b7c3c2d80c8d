//! Database cases: lists, and the one-kind-per-key rule.

use super::Cx;
use super::values::value_classes;
use crate::check::{CaseResult, Ctx, ensure, ensure_eq, expect_err, same};
use crate::model;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use storage_core::{ErrorKind, KeyKind};

pub async fn kind_of_lists(cx: Cx) -> CaseResult {
    let d = cx.db().await?;
    d.append("l", &json!(1)).await.ctx("append")?;
    ensure_eq!(d.kind("l").await.ctx("kind")?, KeyKind::List, "list key");
    d.set("v", &json!([1, 2])).await.ctx("set array value")?;
    ensure_eq!(
        d.kind("v").await.ctx("kind")?,
        KeyKind::Value,
        "an array value is a value, not a list"
    );
    Ok(())
}

pub async fn get_of_a_list_is_wrong_type(cx: Cx) -> CaseResult {
    let d = cx.db().await?;
    d.append("l", &json!("x")).await.ctx("append")?;
    expect_err(d.get("l").await, ErrorKind::WrongType, "get of a list")?;
    Ok(())
}

pub async fn list_ops_on_a_value_are_wrong_type(cx: Cx) -> CaseResult {
    let d = cx.db().await?;
    d.set("v", &json!("x")).await.ctx("set")?;
    expect_err(
        d.append("v", &json!(1)).await,
        ErrorKind::WrongType,
        "append to a value",
    )?;
    expect_err(
        d.get_range("v", 0, -1).await,
        ErrorKind::WrongType,
        "get_range of a value",
    )?;
    expect_err(
        d.get_length("v").await,
        ErrorKind::WrongType,
        "get_length of a value",
    )?;
    ensure_eq!(
        d.get("v").await.ctx("get")?,
        Some(json!("x")),
        "value untouched by failed append"
    );
    Ok(())
}

pub async fn mget_gives_none_for_a_list(cx: Cx) -> CaseResult {
    let d = cx.db().await?;
    d.append("l", &json!(1)).await.ctx("append")?;
    d.set("v", &json!(2)).await.ctx("set")?;
    ensure_eq!(
        d.mget(&["l".into(), "v".into(), "l".into()])
            .await
            .ctx("mget")?,
        vec![None, Some(json!(2)), None],
        "mget slots"
    );
    Ok(())
}

pub async fn set_owned_stores_like_set(cx: Cx) -> CaseResult {
    let d = cx.db().await?;
    d.append("k", &json!(1)).await.ctx("append")?;
    d.set_owned("k", json!({"owned": [1, 2]}))
        .await
        .ctx("set_owned over a list")?;
    ensure_eq!(
        d.get("k").await.ctx("get")?,
        Some(json!({"owned": [1, 2]})),
        "value"
    );
    ensure_eq!(d.kind("k").await.ctx("kind")?, KeyKind::Value, "kind");
    d.set_owned("k", json!("again"))
        .await
        .ctx("set_owned over a value")?;
    ensure_eq!(
        d.get("k").await.ctx("get")?,
        Some(json!("again")),
        "replaced"
    );
    expect_err(
        d.set_owned(&"k".repeat(1025), json!(1)).await,
        ErrorKind::InvalidKey,
        "set_owned with a 1025-byte key",
    )?;
    Ok(())
}

pub async fn set_replaces_a_list(cx: Cx) -> CaseResult {
    let d = cx.db().await?;
    for i in 0..5 {
        d.append("k", &json!(i)).await.ctx("append")?;
    }
    d.set("k", &json!("now a value"))
        .await
        .ctx("set over a list")?;
    ensure_eq!(
        d.kind("k").await.ctx("kind")?,
        KeyKind::Value,
        "kind after set"
    );
    ensure_eq!(
        d.get("k").await.ctx("get")?,
        Some(json!("now a value")),
        "value"
    );
    expect_err(
        d.get_length("k").await,
        ErrorKind::WrongType,
        "get_length after set",
    )?;
    // And back: delete, then append starts a fresh list.
    ensure!(d.delete("k").await.ctx("delete")?, "delete");
    d.append("k", &json!("fresh"))
        .await
        .ctx("append after delete")?;
    ensure_eq!(
        d.get_range("k", 0, -1).await.ctx("range")?,
        vec![json!("fresh")],
        "fresh list"
    );
    Ok(())
}

pub async fn mset_replaces_a_list(cx: Cx) -> CaseResult {
    let d = cx.db().await?;
    d.append("k", &json!(1)).await.ctx("append")?;
    d.mset(&[("k".into(), json!(2)), ("j".into(), json!(3))])
        .await
        .ctx("mset")?;
    ensure_eq!(
        d.kind("k").await.ctx("kind")?,
        KeyKind::Value,
        "kind after mset"
    );
    ensure_eq!(
        d.get("k").await.ctx("get")?,
        Some(json!(2)),
        "value after mset"
    );
    Ok(())
}

pub async fn delete_and_exists_see_lists(cx: Cx) -> CaseResult {
    let d = cx.db().await?;
    d.append("l", &json!(1)).await.ctx("append")?;
    ensure!(d.exists("l").await.ctx("exists")?, "a list exists");
    ensure!(
        d.delete("l").await.ctx("delete")?,
        "delete of a list returned false"
    );
    ensure!(!d.exists("l").await.ctx("exists")?, "deleted list exists");
    ensure_eq!(
        d.get_length("l").await.ctx("len")?,
        0,
        "deleted list length"
    );
    ensure!(
        !d.delete("l").await.ctx("delete again")?,
        "second delete returned true"
    );
    Ok(())
}

pub async fn keys_and_clear_see_lists(cx: Cx) -> CaseResult {
    let d = cx.db().await?;
    d.append("list:1", &json!(1)).await.ctx("append")?;
    d.set("value:1", &json!(1)).await.ctx("set")?;
    let keys: BTreeSet<String> = d.keys(None).await.ctx("keys")?.into_iter().collect();
    ensure_eq!(
        keys,
        BTreeSet::from(["list:1".to_string(), "value:1".to_string()]),
        "keys of both kinds"
    );
    ensure_eq!(
        d.keys(Some("list:*")).await.ctx("keys list:*")?,
        vec!["list:1".to_string()],
        "pattern over lists"
    );
    d.clear().await.ctx("clear")?;
    ensure_eq!(
        d.keys(None).await.ctx("keys")?,
        Vec::<String>::new(),
        "after clear"
    );
    ensure_eq!(
        d.get_length("list:1").await.ctx("len")?,
        0,
        "list after clear"
    );
    Ok(())
}

pub async fn append_creates_and_orders(cx: Cx) -> CaseResult {
    let d = cx.db().await?;
    let items: Vec<Value> = (0..20).map(|i| json!({"n": i, "role": "user"})).collect();
    for item in &items {
        d.append("h", item).await.ctx("append")?;
    }
    ensure_eq!(d.get_length("h").await.ctx("len")?, 20, "length");
    ensure_eq!(
        d.get_range("h", 0, -1).await.ctx("range")?,
        items,
        "items in order"
    );
    Ok(())
}

pub async fn missing_list_reads_empty(cx: Cx) -> CaseResult {
    let d = cx.db().await?;
    ensure_eq!(
        d.get_length("none").await.ctx("len")?,
        0,
        "length of missing"
    );
    ensure_eq!(
        d.get_range("none", 0, -1).await.ctx("range")?,
        Vec::<Value>::new(),
        "range of missing"
    );
    ensure_eq!(
        d.get_range("none", -5, 5).await.ctx("range")?,
        Vec::<Value>::new(),
        "range of missing"
    );
    ensure!(
        !d.exists("none").await.ctx("exists")?,
        "reading created the key"
    );
    Ok(())
}

/// (start, end, expected items of the list 0..10), worked out by hand from LRANGE's rules.
const LRANGE_TABLE: &[(i64, i64, &[i64])] = &[
    (0, -1, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
    (0, 0, &[0]),
    (-1, -1, &[9]),
    (-3, -1, &[7, 8, 9]),
    (2, 4, &[2, 3, 4]),
    (4, 2, &[]),
    (-1, -3, &[]),
    (8, 100, &[8, 9]),
    (10, 20, &[]),
    (9, 9, &[9]),
    (-100, 1, &[0, 1]),
    (-100, -100, &[]),
    (-10, -10, &[0]),
    (-11, -10, &[0]),
    (5, -6, &[]),
    (4, -6, &[4]),
    (0, -11, &[]),
    (i64::MIN, i64::MAX, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
    (i64::MAX, i64::MAX, &[]),
    (i64::MIN, i64::MIN, &[]),
    (-2, i64::MAX, &[8, 9]),
];

pub async fn lrange_table(cx: Cx) -> CaseResult {
    let d = cx.db().await?;
    for i in 0..10 {
        d.append("l", &json!(i)).await.ctx("append")?;
    }
    for &(start, end, want) in LRANGE_TABLE {
        let got = d
            .get_range("l", start, end)
            .await
            .ctx(format!("get_range({start}, {end})"))?;
        let want: Vec<Value> = want.iter().map(|&i| json!(i)).collect();
        ensure_eq!(got, want, "get_range(l, {start}, {end}) of 0..10");
    }
    Ok(())
}

pub async fn lrange_random_against_model(cx: Cx) -> CaseResult {
    let d = cx.db().await?;
    let lengths = [0usize, 1, 2, 3, 7, 16, 41];
    let mut lists = Vec::new();
    for (i, &n) in lengths.iter().enumerate() {
        let items: Vec<Value> = (0..n).map(|j| json!(format!("{i}:{j}"))).collect();
        for item in &items {
            d.append(&format!("l{i}"), item).await.ctx("append")?;
        }
        lists.push(items);
    }
    // proptest's runner blocks, so it runs on a blocking thread that drives each call on the
    // case's runtime.
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(Config {
            cases: 400,
            failure_persistence: None,
            ..Config::default()
        });
        let index = prop_oneof![
            -60i64..60,
            Just(i64::MIN),
            Just(i64::MAX),
            Just(i64::MIN + 1),
            any::<i64>(),
        ];
        let strategy = (0..lengths.len(), index.clone(), index);
        runner
            .run(&strategy, |(i, start, end)| {
                let got = handle
                    .block_on(d.get_range(&format!("l{i}"), start, end))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let want = model::range(&lists[i], start, end);
                prop_assert_eq!(
                    got,
                    want,
                    "list of {} items, start {}, end {}",
                    lists[i].len(),
                    start,
                    end
                );
                Ok(())
            })
            .map_err(|e| format!("LRANGE disagrees with the model: {e}"))
    })
    .await
    .map_err(|e| format!("proptest thread: {e}"))?
}

pub async fn long_list_tail_reads(cx: Cx) -> CaseResult {
    let d = cx.db().await?;
    let n = 3000;
    for i in 0..n {
        d.append("long", &json!(i)).await.ctx("append")?;
    }
    ensure_eq!(d.get_length("long").await.ctx("len")?, n, "length");
    let tail = d.get_range("long", -20, -1).await.ctx("tail")?;
    ensure_eq!(
        tail,
        ((n - 20)..n).map(|i| json!(i)).collect::<Vec<_>>(),
        "last 20"
    );
    let page = d.get_range("long", 1500, 1509).await.ctx("page")?;
    ensure_eq!(
        page,
        (1500..1510).map(|i| json!(i)).collect::<Vec<_>>(),
        "middle page"
    );
    ensure_eq!(
        d.get_range("long", 0, -1).await.ctx("all")?.len(),
        n as usize,
        "whole list"
    );
    Ok(())
}

pub async fn list_items_round_trip_every_class(cx: Cx) -> CaseResult {
    let d = cx.db().await?;
    let classes = value_classes();
    for (_, v) in &classes {
        d.append("l", v).await.ctx("append")?;
    }
    let got = d.get_range("l", 0, -1).await.ctx("range")?;
    ensure_eq!(got.len(), classes.len(), "item count");
    for ((label, want), got) in classes.iter().zip(&got) {
        ensure!(
            same(got, want),
            "list item {label}: got {got:?}, want {want:?}"
        );
    }
    Ok(())
}

pub async fn concurrent_appends_lose_nothing(cx: Cx) -> CaseResult {
    // Several backends on one store, many tasks each: nothing lost, nothing duplicated, each
    // writer's order kept.
    let writers = 16;
    let per_writer = 40;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let d = cx.db().await?;
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                d.append("chat", &json!({"w": w, "i": i})).await?;
            }
            Ok::<_, storage_core::Error>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| format!("task: {e}"))?
            .ctx("concurrent append")?;
    }
    let d = cx.db().await?;
    let items = d.get_range("chat", 0, -1).await.ctx("range")?;
    ensure_eq!(items.len(), writers * per_writer, "item count");
    ensure_eq!(
        d.get_length("chat").await.ctx("len")?,
        (writers * per_writer) as u64,
        "length"
    );
    let unique: BTreeSet<String> = items.iter().map(|v| v.to_string()).collect();
    ensure_eq!(unique.len(), items.len(), "duplicated items");
    for w in 0..writers {
        let mine: Vec<i64> = items
            .iter()
            .filter(|v| v["w"] == json!(w))
            .filter_map(|v| v["i"].as_i64())
            .collect();
        ensure_eq!(
            mine,
            (0..per_writer as i64).collect::<Vec<_>>(),
            "writer {w}'s order"
        );
    }
    Ok(())
}

pub async fn concurrent_set_and_append_keep_one_kind(cx: Cx) -> CaseResult {
    let mut tasks = Vec::new();
    for w in 0..8 {
        let d = cx.db().await?;
        tasks.push(tokio::spawn(async move {
            for i in 0..30 {
                let r = match (w + i) % 3 {
                    0 => d.set("contested", &json!(i)).await,
                    1 => d.append("contested", &json!(i)).await,
                    _ => d.delete("contested").await.map(|_| ()),
                };
                match r {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::WrongType => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| format!("task: {e}"))?
            .ctx("contended write")?;
    }
    let d = cx.db().await?;
    match d.kind("contested").await.ctx("kind")? {
        KeyKind::None => {}
        KeyKind::Value => {
            ensure!(
                d.get("contested").await.ctx("get")?.is_some(),
                "value kind without a value"
            );
            expect_err(
                d.get_length("contested").await,
                ErrorKind::WrongType,
                "a value also holds a list",
            )?;
        }
        KeyKind::List => {
            expect_err(
                d.get("contested").await,
                ErrorKind::WrongType,
                "a list also holds a value",
            )?;
            let n = d.get_length("contested").await.ctx("len")?;
            ensure_eq!(
                d.get_range("contested", 0, -1).await.ctx("range")?.len() as u64,
                n,
                "length and range agree"
            );
        }
    }
    Ok(())
}

pub async fn clear_namespace_with_lists_beside_another(cx: Cx) -> CaseResult {
    let one = cx.subject_at(&format!("{}one:", cx.prefix)).await?;
    let two = cx.subject_at(&format!("{}two:", cx.prefix)).await?;
    let (super::Subject::Database(one), super::Subject::Database(two)) = (one, two) else {
        return Err("database case ran with a cache builder".into());
    };
    for i in 0..10 {
        one.append("h", &json!(i)).await.ctx("append one")?;
        two.append("h", &json!(-i)).await.ctx("append two")?;
    }
    one.set("v", &json!(1)).await.ctx("set")?;
    one.clear().await.ctx("clear one")?;
    ensure_eq!(one.get_length("h").await.ctx("len one")?, 0, "cleared list");
    ensure_eq!(
        two.get_length("h").await.ctx("len two")?,
        10,
        "other namespace's list"
    );
    ensure_eq!(
        two.get_range("h", -1, -1).await.ctx("tail two")?,
        vec![json!(-9)],
        "other list's tail"
    );
    // Appending after clear starts a fresh list.
    one.append("h", &json!("again"))
        .await
        .ctx("append after clear")?;
    ensure_eq!(
        one.get_range("h", 0, -1).await.ctx("range")?,
        vec![json!("again")],
        "fresh list"
    );
    two.clear().await.ctx("clear two")?;
    Ok(())
}

pub async fn append_many_is_ordered_and_all_or_nothing(cx: Cx) -> CaseResult {
    let d = cx.db().await?;
    d.append("l", &json!(0)).await.ctx("append")?;
    let batch: Vec<Value> = (1..=500).map(|i| json!(i)).collect();
    d.append_many("l", &batch).await.ctx("append_many")?;
    d.append("l", &json!(501)).await.ctx("append after")?;
    ensure_eq!(d.get_length("l").await.ctx("len")?, 502, "length");
    ensure_eq!(
        d.get_range("l", 0, -1).await.ctx("range")?,
        (0..=501).map(|i| json!(i)).collect::<Vec<_>>(),
        "items in order"
    );
    d.append_many("fresh", &[json!("a"), json!("b")])
        .await
        .ctx("append_many to a new key")?;
    ensure_eq!(
        d.get_range("fresh", 0, -1).await.ctx("range")?,
        vec![json!("a"), json!("b")],
        "new list"
    );
    d.append_many("empty", &[])
        .await
        .ctx("append_many of nothing")?;
    ensure!(
        !d.exists("empty").await.ctx("exists")?,
        "an empty batch created a key"
    );
    d.set("v", &json!(1)).await.ctx("set")?;
    expect_err(
        d.append_many("v", &[json!(1)]).await,
        ErrorKind::WrongType,
        "append_many to a value",
    )?;
    let mut deep = json!(1);
    for _ in 0..70 {
        deep = json!([deep]);
    }
    expect_err(
        d.append_many("l", &[json!("ok"), deep]).await,
        ErrorKind::InvalidValue,
        "a too-deep item",
    )?;
    ensure_eq!(
        d.get_length("l").await.ctx("len")?,
        502,
        "a rejected batch appended something"
    );
    Ok(())
}
