//! Cases on the single-key and batch operations both roles share: kind, delete, overwrite,
//! mget, mset, ping, concurrent writes and close. Not listing (`listing.rs`).

use super::Cx;
use crate::check::{CaseResult, Ctx, ensure, ensure_eq, expect_err, same};
use serde_json::{Value, json};
use storage_core::{ErrorKind, KeyKind};

pub async fn kind_of_values(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    ensure_eq!(s.kind("k").await.ctx("kind")?, KeyKind::None, "missing key");
    s.set("k", &json!({"a": 1})).await.ctx("set")?;
    ensure_eq!(s.kind("k").await.ctx("kind")?, KeyKind::Value, "value key");
    s.delete("k").await.ctx("delete")?;
    ensure_eq!(s.kind("k").await.ctx("kind")?, KeyKind::None, "deleted key");
    Ok(())
}

pub async fn delete_reports_existence(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    ensure!(
        !s.delete("k").await.ctx("delete missing")?,
        "delete of a missing key returned true"
    );
    s.set("k", &json!(null)).await.ctx("set")?;
    ensure!(
        s.delete("k").await.ctx("delete")?,
        "delete of an existing key returned false"
    );
    ensure!(
        !s.delete("k").await.ctx("delete again")?,
        "second delete returned true"
    );
    ensure!(!s.exists("k").await.ctx("exists")?, "deleted key exists");
    Ok(())
}

pub async fn overwrite_replaces(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    s.set("k", &json!({"big": [1, 2, 3]})).await.ctx("set")?;
    s.set("k", &json!(7)).await.ctx("overwrite")?;
    ensure_eq!(
        s.get("k").await.ctx("get")?,
        Some(json!(7)),
        "overwritten value"
    );
    ensure_eq!(
        s.keys(None).await.ctx("keys")?,
        vec!["k".to_string()],
        "one key"
    );
    Ok(())
}

pub async fn mget_order_repeats_and_missing(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    s.set("a", &json!(1)).await.ctx("set a")?;
    s.set("b", &json!(2)).await.ctx("set b")?;
    let keys: Vec<String> = ["b", "missing", "a", "b", "a"].map(String::from).to_vec();
    ensure_eq!(
        s.mget(&keys).await.ctx("mget")?,
        vec![
            Some(json!(2)),
            None,
            Some(json!(1)),
            Some(json!(2)),
            Some(json!(1))
        ],
        "mget slots"
    );
    let many: Vec<String> = (0..500)
        .map(|i| {
            if i % 2 == 0 {
                "a".into()
            } else {
                format!("m{i}")
            }
        })
        .collect();
    let got = s.mget(&many).await.ctx("mget 500")?;
    ensure_eq!(got.len(), 500, "slot count");
    ensure!(
        got.iter()
            .enumerate()
            .all(|(i, v)| (i % 2 == 0) == v.is_some()),
        "slots out of place"
    );
    Ok(())
}

pub async fn mget_empty(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    ensure_eq!(
        s.mget(&[]).await.ctx("mget []")?,
        Vec::<Option<Value>>::new(),
        "empty mget"
    );
    s.mset(&[]).await.ctx("mset []")?;
    Ok(())
}

pub async fn mset_last_of_repeated_keys_wins(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    let entries: Vec<(String, Value)> = vec![
        ("k".into(), json!(1)),
        ("j".into(), json!("j")),
        ("k".into(), json!(2)),
        ("k".into(), json!(3)),
    ];
    s.mset(&entries).await.ctx("mset")?;
    ensure_eq!(
        s.get("k").await.ctx("get k")?,
        Some(json!(3)),
        "last of repeated keys"
    );
    ensure_eq!(
        s.get("j").await.ctx("get j")?,
        Some(json!("j")),
        "other key"
    );
    let batch: Vec<(String, Value)> = (0..300).map(|i| (format!("b{i}"), json!(i))).collect();
    s.mset(&batch).await.ctx("mset 300")?;
    let keys: Vec<String> = batch.iter().map(|(k, _)| k.clone()).collect();
    let got = s.mget(&keys).await.ctx("mget 300")?;
    ensure!(
        got.iter()
            .enumerate()
            .all(|(i, v)| v.as_ref() == Some(&json!(i))),
        "300-entry mset did not read back"
    );
    Ok(())
}

pub async fn mset_rejects_bad_entry_and_stores_nothing(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    let mut deep = json!(1);
    for _ in 0..70 {
        deep = json!([deep]);
    }
    let bad_value = vec![("ok1".to_string(), json!(1)), ("bad".to_string(), deep)];
    expect_err(
        s.mset(&bad_value).await,
        ErrorKind::InvalidValue,
        "mset with a too-deep value",
    )?;
    let bad_key = vec![("ok2".to_string(), json!(1)), ("".to_string(), json!(1))];
    expect_err(
        s.mset(&bad_key).await,
        ErrorKind::InvalidKey,
        "mset with an empty key",
    )?;
    ensure_eq!(
        s.keys(None).await.ctx("keys")?,
        Vec::<String>::new(),
        "nothing stored"
    );
    Ok(())
}

pub async fn ping_is_cheap_and_writes_nothing(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    for _ in 0..3 {
        s.ping().await.ctx("ping")?;
    }
    ensure_eq!(
        s.keys(None).await.ctx("keys")?,
        Vec::<String>::new(),
        "ping wrote a key"
    );
    Ok(())
}

pub async fn concurrent_sets_all_land(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    let mut tasks = Vec::new();
    for t in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                s.set(&format!("t{t}:{i}"), &json!([t, i])).await?;
            }
            Ok::<_, storage_core::Error>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| format!("task: {e}"))?
            .ctx("concurrent set")?;
    }
    ensure_eq!(
        s.keys(None).await.ctx("keys")?.len(),
        400,
        "keys after 400 concurrent sets"
    );
    let v = s.get("t9:24").await.ctx("get")?;
    ensure!(
        v.as_ref().is_some_and(|v| same(v, &json!([9, 24]))),
        "value t9:24 = {v:?}"
    );
    Ok(())
}

pub async fn close_is_idempotent(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    s.set("k", &json!(1)).await.ctx("set")?;
    s.close().await.ctx("close")?;
    s.close().await.ctx("close twice")?;
    // A new backend on the same store still sees the data.
    let again = cx.subject().await?;
    ensure_eq!(
        again.get("k").await.ctx("get after reopen")?,
        Some(json!(1)),
        "data after close"
    );
    Ok(())
}
