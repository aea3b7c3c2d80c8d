//! The fault cases themselves: each breaks the traffic one way and checks the contract.

use super::{Check, Cx, Opened, all_not_applied, bound, fails_within};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage_core::{Database, ErrorKind};
use storage_servers::Fault;

pub(super) async fn refused(cx: Arc<Cx>) -> Check {
    cx.every_operation("warm").await;
    cx.proxy.set(Fault::Refuse);
    let each = bound(cx.limits.connect);
    // The first round may meet connections the refusal cut after a command was written; by
    // the second, no connection exists and none can be made: nothing reaches the server.
    let first = fails_within(cx.every_operation("refused"), each, ErrorKind::Connection).await?;
    let again = fails_within(
        cx.every_operation("refused-again"),
        each,
        ErrorKind::Connection,
    )
    .await?;
    all_not_applied(&again)?;
    cx.recovers().await?;
    cx.not_applied_left_nothing("refused", &first).await?;
    cx.not_applied_left_nothing("refused-again", &again).await
}

pub(super) async fn black_hole(cx: Arc<Cx>) -> Check {
    cx.every_operation("warm").await;
    cx.proxy.set(Fault::BlackHole);
    let each = bound(cx.limits.operation);
    // On the open connections, then on new ones (the first round broke the old ones).
    let first = fails_within(cx.every_operation("stalled"), each, ErrorKind::Timeout).await?;
    let again = fails_within(
        cx.every_operation("stalled-again"),
        each,
        ErrorKind::Timeout,
    )
    .await?;
    // By the second round no connection from before the stall is left: each operation waits
    // for a connect the stall swallows, and nothing reaches the server.
    all_not_applied(&again)?;
    cx.recovers().await?;
    // A write that said it was not applied must not land once the stall clears.
    tokio::time::sleep(Duration::from_millis(500)).await;
    cx.not_applied_left_nothing("stalled", &first).await?;
    cx.not_applied_left_nothing("stalled-again", &again).await?;
    // Every pool slot is usable again: twice the pool's size at once.
    let n = cx.limits.pool_max * 2;
    let mut tasks = Vec::new();
    for i in 0..n {
        let b = cx.backend.clone();
        tasks.push(tokio::spawn(async move {
            b.set(&format!("fault:slot:{i}"), &json!(i)).await
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())?.map_err(|e| {
            format!("after the black hole cleared, a pool slot did not come back: {e}")
        })?;
    }
    Ok(())
}

/// Counts `item` in the list at `key`, reading through a fault-free path.
async fn occurrences(
    d: &Arc<dyn Database>,
    key: &str,
    item: &Value,
) -> std::result::Result<usize, String> {
    let all = d.get_range(key, 0, -1).await.map_err(|e| e.to_string())?;
    Ok(all.iter().filter(|v| *v == item).count())
}

pub(super) async fn lost_reply_append(cx: Arc<Cx>) -> Check {
    let d = cx.backend.db().cloned().ok_or("database only")?;
    for (i, many) in [(0, false), (1, true), (2, false)] {
        let key = format!("fault:lost:{i}");
        d.append(&key, &json!("before"))
            .await
            .map_err(|e| e.to_string())?;
        let item = json!({"lost": i});
        cx.proxy.set(Fault::DropAfterNextRequest);
        let r = if many {
            d.append_many(&key, std::slice::from_ref(&item)).await
        } else {
            d.append(&key, &item).await
        };
        cx.recovers().await?;
        let n = occurrences(&d, &key, &item).await?;
        if n > 1 {
            return Err(format!(
                "the lost reply made the write land {n} times ({r:?})"
            ));
        }
        // The request reached the server and its answer was lost: the caller cannot know
        // whether it landed, and must be told so, not handed a plain connection error.
        if let Err(e) = &r
            && e.outcome() != storage_core::Outcome::Unknown
        {
            return Err(format!(
                "an append whose reply was lost (it landed {n} times) said its outcome is {}: {e}",
                e.outcome().code()
            ));
        }
        if r.is_ok() && n == 0 {
            return Err("append returned Ok but the item is not in the list".into());
        }
    }
    Ok(())
}

pub(super) async fn lost_reply_set_delete(cx: Arc<Cx>) -> Check {
    let key = "fault:lost:value";
    cx.backend
        .set(key, &json!("old"))
        .await
        .map_err(|e| e.to_string())?;
    cx.proxy.set(Fault::DropAfterNextRequest);
    let r = cx.backend.set(key, &json!("new")).await;
    cx.recovers().await?;
    let now = cx
        .backend
        .store()
        .get(key)
        .await
        .map_err(|e| e.to_string())?;
    match (&r, now) {
        (Ok(()), Some(v)) if v == json!("new") => {}
        (Err(_), Some(v)) if v == json!("new") || v == json!("old") => {}
        (r, now) => return Err(format!("set ended {r:?}, the key holds {now:?}")),
    }
    cx.proxy.set(Fault::DropAfterNextRequest);
    let r = cx.backend.store().delete(key).await;
    cx.recovers().await?;
    let now = cx
        .backend
        .store()
        .get(key)
        .await
        .map_err(|e| e.to_string())?;
    if r.is_ok() && now.is_some() {
        return Err("delete returned Ok but the key is still there".into());
    }
    Ok(())
}

pub(super) async fn exhausted(cx: Arc<Cx>) -> Check {
    cx.every_operation("warm").await;
    cx.proxy.set(Fault::Delay(Duration::from_millis(300)));
    let limit = bound(cx.limits.acquire + cx.limits.operation);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let b = cx.backend.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = b.set(&format!("fault:busy:{i}"), &json!(i)).await;
            (r, t.elapsed())
        }));
    }
    for t in tasks {
        let (r, took) = t.await.map_err(|e| e.to_string())?;
        if took > limit {
            return Err(format!(
                "an operation took {took:?} on an exhausted pool (limit {limit:?})"
            ));
        }
        if let Err(e) = r
            && e.kind() != ErrorKind::Timeout
        {
            return Err(format!("expected success or a timeout, got {e}"));
        }
    }
    if started.elapsed() > limit * 2 {
        return Err(format!("64 operations took {:?}", started.elapsed()));
    }
    cx.recovers().await
}

pub(super) async fn timed_out_append(cx: Arc<Cx>) -> Check {
    let d = cx.backend.db().cloned().ok_or("database only")?;
    let key = "fault:slow";
    d.append(key, &json!("before"))
        .await
        .map_err(|e| e.to_string())?;
    // Slower each way than the operation timeout: the request reaches the server late, after
    // the caller gave up.
    cx.proxy.set(Fault::Delay(
        cx.limits.operation + Duration::from_millis(500),
    ));
    let item = json!("slow");
    let started = Instant::now();
    let r = d.append(key, &item).await;
    let took = started.elapsed();
    let e = match r {
        Err(e) if e.kind() == ErrorKind::Timeout => e,
        other => return Err(format!("expected a timeout, got {other:?}")),
    };
    if took > bound(cx.limits.operation) {
        return Err(format!("the timeout came after {took:?}"));
    }
    cx.recovers().await?;
    // Let the delayed request land, if it was going to.
    tokio::time::sleep(cx.limits.operation + Duration::from_millis(1500)).await;
    let n = occurrences(&d, key, &item).await?;
    if n > 1 {
        return Err(format!("a timed-out append landed {n} times"));
    }
    // The request was on its way when the time ran out: whether or not it lands, the
    // timeout must say the outcome is unknown (a cancel request, if any, is not confirmed).
    if e.outcome() != storage_core::Outcome::Unknown {
        return Err(format!(
            "a timed-out append (landed {n} times) said its outcome is {}: {e}",
            e.outcome().code()
        ));
    }
    // Nothing holds the key's lock: a write to it goes through.
    d.append(key, &json!("after"))
        .await
        .map_err(|e| format!("the key stayed locked: {e}"))
}

/// Regression: after a stall, operations failed with the errors of connects begun during it
/// (17 operations in an 8 s stall said "connecting ... took longer than 5s" after 0 to 997 ms,
/// and such errors kept failing new operations for half a second after the network was back).
/// Operations during the stall start connects whose handshakes it swallows; they time out
/// after the network is back, and must fail no operation begun after it.
pub(super) async fn stall_then_recover(cx: Arc<Cx>) -> Check {
    cx.every_operation("warm").await;
    cx.proxy.set(Fault::BlackHole);
    let mut during = Vec::new();
    for i in 0..cx.limits.pool_max * 2 {
        let b = cx.backend.clone();
        during.push(tokio::spawn(async move {
            b.set(&format!("fault:stall:{i}"), &json!(i)).await
        }));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Back before the connects begun during the stall reach their timeout.
    cx.proxy.set(Fault::Pass);
    let back = Instant::now();
    let rounds = 12;
    for round in 0..rounds {
        cx.backend
            .set(&format!("fault:after:{round}"), &json!(round))
            .await
            .map_err(|e| {
                format!(
                    "an operation begun {:?} after the stall ended failed: {e}",
                    back.elapsed()
                )
            })?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in during {
        let _ = t.await;
    }
    Ok(())
}

pub(super) async fn idle_restart(cx: Arc<Cx>) -> Check {
    // Each kind of operation is the first one after a restart, `append` included.
    let kinds: &[&str] = match cx.backend {
        Opened::Database(_) => &["append", "append_many", "set", "get", "delete", "keys"],
        Opened::Cache(_) => &["set", "get", "delete", "keys"],
    };
    for (round, kind) in kinds.iter().enumerate() {
        // Several connections in the pool.
        let mut warm = Vec::new();
        for i in 0..cx.limits.pool_max {
            let b = cx.backend.clone();
            warm.push(tokio::spawn(async move {
                b.set(&format!("fault:warm:{i}"), &json!(i)).await
            }));
        }
        for w in warm {
            let _ = w.await;
        }
        // The server restarts while the client is idle: every open connection is cut.
        cx.proxy.reset();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let key = format!("fault:restart:{round}");
        let b = &cx.backend;
        let r = match (*kind, b.db()) {
            ("append", Some(d)) => d.append(&key, &json!(round)).await,
            ("append_many", Some(d)) => d.append_many(&key, &[json!(round)]).await,
            ("set", _) => b.set(&key, &json!(round)).await,
            ("get", _) => b.store().get(&key).await.map(|_| ()),
            ("delete", _) => b.store().delete(&key).await.map(|_| ()),
            _ => b.store().keys(Some("fault:*")).await.map(|_| ()),
        };
        r.map_err(|e| format!("the first {kind} after the server came back failed: {e}"))?;
    }
    Ok(())
}

/// A follower of a list while the server goes away (connections cut, then refused for a
/// while) and comes back: it delivers every item appended after the restart, once and in
/// order, resuming from the last item it delivered.
pub(super) async fn tail_across_a_restart(cx: Arc<Cx>) -> Check {
    let Some(db) = cx.backend.db().cloned() else {
        return Ok(());
    };
    let key = "fault:tail";
    for i in 0..3 {
        db.append(key, &json!(i))
            .await
            .map_err(|e| format!("append {i}: {e}"))?;
    }
    let mut tail = storage_core::feed::Tail::new(db.clone(), key, 0);
    let follower = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 6 {
            match tokio::time::timeout(Duration::from_secs(30), tail.next()).await {
                Ok(Some(Ok(item))) => got.push((item.index, item.value)),
                Ok(Some(Err(e))) => return Err(format!("the tail ended with {e} after {got:?}")),
                Ok(None) => return Err(format!("the tail ended after {got:?}")),
                Err(_) => return Err(format!("no item within 30 s after {got:?}")),
            }
        }
        Ok(got)
    });
    // The tail has read the first three and waits; the server goes down and stays down.
    restart_while_waiting(&cx).await;
    for i in 3..6 {
        let value = json!(i);
        after_restart(&format!("append {i}"), || db.append(key, &value)).await?;
    }
    let got = follower.await.map_err(|e| e.to_string())??;
    let want: Vec<(u64, Value)> = (0..6).map(|i| (i, json!(i))).collect();
    if got != want {
        return Err(format!("the tail delivered {got:?}, want {want:?}"));
    }
    Ok(())
}

/// A watcher of the namespace while the server goes away and comes back: it delivers every
/// change made after the restart, in order, resuming from where it stood (the log is the
/// server's); none is lost.
pub(super) async fn watch_across_a_restart(cx: Arc<Cx>) -> Check {
    let store = cx.backend.shared_store();
    let mut watch = storage_core::watch::Watch::new(store, "fault:watch:")
        .await
        .map_err(|e| format!("watch: {e}"))?;
    for i in 0..3 {
        cx.backend
            .set(&format!("fault:watch:{i}"), &json!(i))
            .await
            .map_err(|e| format!("set {i}: {e}"))?;
    }
    let watcher = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 6 {
            match tokio::time::timeout(Duration::from_secs(30), watch.next()).await {
                // A set resent after a lost reply may be filed twice: each key counts once.
                Ok(Some(Ok(storage_core::watch::WatchEvent::Change(c)))) => {
                    if !got.contains(&c.key) {
                        got.push(c.key);
                    }
                }
                Ok(Some(Ok(other))) => return Err(format!("{other:?} after {got:?}")),
                Ok(Some(Err(e))) => return Err(format!("the watch ended with {e} after {got:?}")),
                Ok(None) => return Err(format!("the watch ended after {got:?}")),
                Err(_) => return Err(format!("no change within 30 s after {got:?}")),
            }
        }
        Ok(got)
    });
    restart_while_waiting(&cx).await;
    for i in 3..6 {
        let key = format!("fault:watch:{i}");
        let value = json!(i);
        after_restart(&format!("set {i}"), || cx.backend.set(&key, &value)).await?;
    }
    let got = watcher.await.map_err(|e| e.to_string())??;
    let want: Vec<String> = (0..6).map(|i| format!("fault:watch:{i}")).collect();
    if got != want {
        return Err(format!("the watch delivered {got:?}, want {want:?}"));
    }
    Ok(())
}

/// Lets a reader settle into its wait, then takes the server away (connections cut, then
/// refused for a while) and brings it back.
async fn restart_while_waiting(cx: &Cx) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    cx.proxy.reset();
    cx.proxy.set(Fault::Refuse);
    tokio::time::sleep(Duration::from_millis(800)).await;
    cx.proxy.set(Fault::Pass);
}

/// A write after the restart: the first may meet a connection the restart cut, which is
/// retried while it says it did not take effect.
async fn after_restart<F, Fut>(what: &str, mut write: F) -> Check
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = storage_core::Result<()>>,
{
    let mut tries = 0;
    while let Err(e) = write().await {
        tries += 1;
        if tries > 20 || e.outcome() != storage_core::Outcome::NotApplied {
            return Err(format!("{what} after the restart: {e}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
