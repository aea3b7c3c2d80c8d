//! Tests of the contract's layers ([`super::Validate`] around [`super::Observe`]) against a backend that records every call.
//!
//! The conformance kit reaches the layer only through real backends, where an empty batch or
//! a bad key gives the same answer whether or not the layer stopped it; these tests see what
//! reaches the backend, so they fail when the layer lets through what it must stop.

use super::{checked_cache, checked_database};
use crate::backend::{Cache, CacheEntry, Database, KeyKind, KeyTtl, Store};
use crate::error::{Error, ErrorKind, Result};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::Mutex;
use std::time::Duration;

/// Records each call as a line; answers with `slots` slots to every `mget`; fails every call
/// when `fail` is set.
#[derive(Debug, Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
    slots: Option<usize>,
    fail: bool,
}

impl Recorder {
    fn call(&self, line: String) -> Result<()> {
        self.calls.lock().unwrap().push(line);
        if self.fail {
            return Err(Error::other("refused"));
        }
        Ok(())
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl Store for Recorder {
    fn backend(&self) -> &str {
        "recorder"
    }
    async fn get(&self, key: &str) -> Result<Option<Value>> {
        self.call(format!("get {key}")).map(|_| None)
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.call(format!("delete {key}")).map(|_| false)
    }
    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Value>>> {
        self.call(format!("mget {}", keys.join(",")))?;
        Ok(vec![None; self.slots.unwrap_or(keys.len())])
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        self.call(format!("exists {key}")).map(|_| false)
    }
    async fn kind(&self, key: &str) -> Result<KeyKind> {
        self.call(format!("kind {key}")).map(|_| KeyKind::None)
    }
    async fn keys(&self, pattern: Option<&str>) -> Result<Vec<String>> {
        self.call(format!("keys {pattern:?}")).map(|_| Vec::new())
    }
    async fn clear(&self) -> Result<()> {
        self.call("clear".into())
    }
    async fn ping(&self) -> Result<()> {
        self.call("ping".into())
    }
    async fn close(&self) -> Result<()> {
        self.call("close".into())
    }
}

#[async_trait]
impl Cache for Recorder {
    async fn set(&self, key: &str, _: &Value, ttl: Option<Duration>) -> Result<()> {
        self.call(format!("set {key} {ttl:?}"))
    }
    async fn mset(&self, entries: &[CacheEntry]) -> Result<()> {
        let ttls: Vec<String> = entries.iter().map(|e| format!("{:?}", e.ttl)).collect();
        self.call(format!("mset {}", ttls.join(",")))
    }
    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        self.call(format!("ttl {key}")).map(|_| KeyTtl::Missing)
    }
}

#[async_trait]
impl Database for Recorder {
    async fn set(&self, key: &str, _: &Value) -> Result<()> {
        self.call(format!("set {key}"))
    }
    async fn set_owned(&self, key: &str, _: Value) -> Result<()> {
        self.call(format!("set_owned {key}"))
    }
    async fn mset(&self, entries: &[(String, Value)]) -> Result<()> {
        self.call(format!("mset {}", entries.len()))
    }
    async fn append(&self, key: &str, _: &Value) -> Result<()> {
        self.call(format!("append {key}"))
    }
    async fn append_many(&self, key: &str, values: &[Value]) -> Result<()> {
        self.call(format!("append_many {key} {}", values.len()))
    }
    async fn get_range(&self, key: &str, start: i64, end: i64) -> Result<Vec<Value>> {
        self.call(format!("get_range {key} {start} {end}"))
            .map(|_| Vec::new())
    }
    async fn get_length(&self, key: &str) -> Result<u64> {
        self.call(format!("get_length {key}")).map(|_| 0)
    }
    async fn trim(&self, key: &str, start: i64, end: i64) -> Result<()> {
        self.call(format!("trim {key} {start} {end}"))
    }
}

/// Both roles of one recorder, each behind the contract's layers, as the registry opens them.
struct Checked {
    cache: std::sync::Arc<dyn Cache>,
    db: std::sync::Arc<dyn Database>,
}

fn layer(recorder: Recorder) -> (Checked, std::sync::Arc<Recorder>) {
    let inner = std::sync::Arc::new(recorder);
    let checked = Checked {
        cache: checked_cache(inner.clone()),
        db: checked_database(inner.clone()),
    };
    (checked, inner)
}

/// A value nested one level deeper than the limit.
fn too_deep() -> Value {
    let mut v = json!(1);
    for _ in 0..=crate::limits::MAX_VALUE_DEPTH {
        v = json!([v]);
    }
    v
}

#[tokio::test]
async fn empty_batches_never_reach_the_backend() {
    let (checked, inner) = layer(Recorder::default());
    assert_eq!(Store::mget(&*checked.db, &[]).await.unwrap(), Vec::new());
    Cache::mset(&*checked.cache, &[]).await.unwrap();
    Database::mset(&*checked.db, &[]).await.unwrap();
    checked.db.append_many("l", &[]).await.unwrap();
    assert_eq!(inner.calls(), Vec::<String>::new());
}

#[tokio::test]
async fn bad_keys_are_refused_before_the_backend_for_every_operation() {
    let (checked, inner) = layer(Recorder::default());
    let v = json!(1);
    for bad in ["", "a\0b", &"k".repeat(crate::limits::MAX_KEY_BYTES + 1)] {
        let errors = [
            Store::get(&*checked.db, bad).await.err(),
            checked.db.delete(bad).await.err(),
            Store::mget(&*checked.db, &["ok".into(), bad.into()])
                .await
                .err(),
            checked.db.exists(bad).await.err(),
            checked.db.kind(bad).await.err(),
            Cache::set(&*checked.cache, bad, &v, None).await.err(),
            Cache::mset(&*checked.cache, &[CacheEntry::new(bad, v.clone(), None)])
                .await
                .err(),
            checked.cache.ttl(bad).await.err(),
            Database::set(&*checked.db, bad, &v).await.err(),
            Database::mset(&*checked.db, &[(bad.into(), v.clone())])
                .await
                .err(),
            checked.db.append(bad, &v).await.err(),
            checked
                .db
                .append_many(bad, std::slice::from_ref(&v))
                .await
                .err(),
            checked.db.get_range(bad, 0, -1).await.err(),
            checked.db.get_length(bad).await.err(),
            checked.db.trim(bad, 0, -1).await.err(),
        ];
        for (i, e) in errors.into_iter().enumerate() {
            let e = e.unwrap_or_else(|| panic!("operation {i} accepted key {bad:?}"));
            assert_eq!(e.kind(), ErrorKind::InvalidKey, "operation {i}: {e}");
            assert_eq!(e.backend(), Some("recorder"), "operation {i}: {e}");
            assert!(e.op().is_some(), "operation {i} names no op: {e}");
        }
    }
    assert_eq!(inner.calls(), Vec::<String>::new());
}

#[tokio::test]
async fn deep_values_are_refused_before_the_backend() {
    let (checked, inner) = layer(Recorder::default());
    let deep = too_deep();
    let errors = [
        Cache::set(&*checked.cache, "k", &deep, None)
            .await
            .unwrap_err(),
        Cache::mset(&*checked.cache, &[CacheEntry::new("k", deep.clone(), None)])
            .await
            .unwrap_err(),
        Database::set(&*checked.db, "k", &deep).await.unwrap_err(),
        checked.db.set_owned("k", deep.clone()).await.unwrap_err(),
        Database::mset(&*checked.db, &[("k".into(), deep.clone())])
            .await
            .unwrap_err(),
        checked.db.append("k", &deep).await.unwrap_err(),
        checked
            .db
            .append_many("k", &[json!(1), deep.clone()])
            .await
            .unwrap_err(),
    ];
    for e in errors {
        assert_eq!(e.kind(), ErrorKind::InvalidValue, "{e}");
        assert!(e.message().contains("\"k\""), "the key is named: {e}");
        assert_eq!(e.backend(), Some("recorder"));
    }
    // One level shallower is accepted.
    let mut ok = json!(1);
    for _ in 0..crate::limits::MAX_VALUE_DEPTH {
        ok = json!([ok]);
    }
    Database::set(&*checked.db, "k", &ok).await.unwrap();
    checked.db.set_owned("k", ok).await.unwrap();
    assert_eq!(
        inner.calls(),
        vec!["set k".to_string(), "set_owned k".to_string()]
    );
}

#[tokio::test]
async fn ttls_reach_the_backend_in_whole_milliseconds_rounded_up() {
    let (checked, inner) = layer(Recorder::default());
    let v = json!(1);
    Cache::set(&*checked.cache, "a", &v, Some(Duration::from_micros(1500)))
        .await
        .unwrap();
    Cache::set(&*checked.cache, "b", &v, Some(Duration::from_nanos(1)))
        .await
        .unwrap();
    Cache::set(&*checked.cache, "c", &v, Some(Duration::from_millis(7)))
        .await
        .unwrap();
    Cache::set(&*checked.cache, "d", &v, None).await.unwrap();
    Cache::mset(
        &*checked.cache,
        &[
            CacheEntry::new("e", v.clone(), Some(Duration::from_micros(2001))),
            CacheEntry::new("f", v.clone(), None),
        ],
    )
    .await
    .unwrap();
    for bad in [
        Duration::ZERO,
        Duration::from_millis(crate::limits::MAX_TTL_MILLIS + 1),
    ] {
        let e = Cache::set(&*checked.cache, "x", &v, Some(bad))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert_eq!(e.op(), Some("set"));
        let e = Cache::mset(
            &*checked.cache,
            &[CacheEntry::new("x", v.clone(), Some(bad))],
        )
        .await
        .unwrap_err();
        assert_eq!(e.op(), Some("mset"));
    }
    assert_eq!(
        inner.calls(),
        [
            "set a Some(2ms)",
            "set b Some(1ms)",
            "set c Some(7ms)",
            "set d None",
            "mset Some(3ms),None",
        ]
    );
}

#[tokio::test]
async fn star_reaches_the_backend_as_no_pattern() {
    let (checked, inner) = layer(Recorder::default());
    checked.db.keys(Some("*")).await.unwrap();
    checked.db.keys(None).await.unwrap();
    checked.db.keys(Some("a*")).await.unwrap();
    assert_eq!(
        inner.calls(),
        ["keys None", "keys None", "keys Some(\"a*\")"]
    );
}

#[tokio::test]
async fn an_mget_with_the_wrong_number_of_slots_is_an_error() {
    for slots in [1, 3] {
        let (checked, _) = layer(Recorder {
            slots: Some(slots),
            ..Recorder::default()
        });
        let e = Store::mget(&*checked.db, &["a".into(), "b".into()])
            .await
            .unwrap_err();
        assert!(
            e.message().contains(&format!("{slots} slots for 2 keys")),
            "{e}"
        );
        assert_eq!(e.op(), Some("mget"));
    }
}

#[tokio::test]
async fn calls_pass_through_with_their_arguments_and_errors_name_backend_and_op() {
    let (checked, inner) = layer(Recorder::default());
    checked.db.get_range("l", -3, 7).await.unwrap();
    checked.db.trim("l", 2, -2).await.unwrap();
    checked
        .db
        .append_many("l", &[json!(1), json!(2)])
        .await
        .unwrap();
    Database::mset(&*checked.db, &[("a".into(), json!(1))])
        .await
        .unwrap();
    checked.db.clear().await.unwrap();
    checked.db.ping().await.unwrap();
    checked.db.close().await.unwrap();
    assert_eq!(
        inner.calls(),
        [
            "get_range l -3 7",
            "trim l 2 -2",
            "append_many l 2",
            "mset 1",
            "clear",
            "ping",
            "close"
        ]
    );

    let (checked, _) = layer(Recorder {
        fail: true,
        ..Recorder::default()
    });
    let e = checked.db.get_length("l").await.unwrap_err();
    assert_eq!(
        (e.backend(), e.op()),
        (Some("recorder"), Some("get_length"))
    );
    let e = checked.db.clear().await.unwrap_err();
    assert_eq!((e.backend(), e.op()), (Some("recorder"), Some("clear")));
    assert_eq!(checked.db.backend(), "recorder");
}

#[test]
fn debug_shows_the_wrapped_backend() {
    let (checked, inner) = layer(Recorder::default());
    assert_eq!(format!("{:?}", checked.db), format!("{inner:?}"));
    assert!(format!("{:?}", checked.db).starts_with("Recorder"));
}
