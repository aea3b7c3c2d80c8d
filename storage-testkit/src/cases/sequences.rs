//! Model-based cases: long random operation sequences, run against the backend and the
//! reference model, comparing every result.

use super::{Cx, Rng};
use crate::check::{CaseResult, same};
use crate::model::{self, Model, Slot};
use serde_json::{Value, json};
use std::time::Duration;
use storage_core::{CacheEntry, ErrorKind, KeyKind, KeyTtl, Result};

const STEPS: usize = 1500;
const KEYS: &[&str] = &["k0", "k1", "k2", "k10", "h0", "h1", "x", "[k]", "k*"];
const PATTERNS: &[Option<&str>] = &[
    None,
    Some("k*"),
    Some("h?"),
    Some("*1"),
    Some("[hx]*"),
    Some("k\\*"),
];
const LONG: Duration = Duration::from_secs(3600);

fn random_value(rng: &mut Rng) -> Value {
    match rng.below(9) {
        0 => json!(null),
        1 => json!(rng.below(2) == 1),
        2 => json!(rng.next() as i64),
        3 => json!(rng.next()),
        4 => json!(f64::from_bits(rng.next() & 0x7fef_ffff_ffff_ffff)),
        5 => json!(-0.0f64),
        6 => json!(format!("s{}\u{0}é", rng.below(100))),
        7 => json!([rng.below(5), {"a": rng.below(3)}]),
        _ => json!({}),
    }
}

/// A comparable rendering of an operation's result: errors compare by kind only.
fn outcome<T: Into<Value>>(r: Result<T>) -> std::result::Result<Value, ErrorKind> {
    r.map(Into::into).map_err(|e| e.kind())
}

fn sorted(mut keys: Vec<String>) -> Value {
    keys.sort();
    json!(keys)
}

fn opt(v: Option<Value>) -> Value {
    json!({ "some": v.is_some(), "v": v })
}

fn kind_name(k: KeyKind) -> Value {
    json!(format!("{k:?}"))
}

fn agree(
    step: usize,
    seed: u64,
    op: &str,
    got: &std::result::Result<Value, ErrorKind>,
    want: &std::result::Result<Value, ErrorKind>,
) -> CaseResult {
    let equal = match (got, want) {
        (Ok(a), Ok(b)) => same(a, b),
        (Err(a), Err(b)) => a == b,
        _ => false,
    };
    if equal {
        Ok(())
    } else {
        Err(format!(
            "step {step} (seed {seed}): {op}: backend gave {got:?}, model says {want:?}"
        ))
    }
}

impl Model {
    fn get(&self, k: &str) -> std::result::Result<Value, ErrorKind> {
        match self.keys.get(k) {
            None => Ok(opt(None)),
            Some(Slot::Value(v, _)) => Ok(opt(Some(v.clone()))),
            Some(Slot::List(_)) => Err(ErrorKind::WrongType),
        }
    }
    fn mget(&self, keys: &[String]) -> Value {
        json!(
            keys.iter()
                .map(|k| match self.keys.get(k) {
                    Some(Slot::Value(v, _)) => opt(Some(v.clone())),
                    _ => opt(None),
                })
                .collect::<Vec<_>>()
        )
    }
    fn kind(&self, k: &str) -> Value {
        kind_name(match self.keys.get(k) {
            None => KeyKind::None,
            Some(Slot::Value(..)) => KeyKind::Value,
            Some(Slot::List(_)) => KeyKind::List,
        })
    }
    fn key_list(&self, pattern: Option<&str>) -> Value {
        sorted(
            self.keys
                .keys()
                .filter(|k| pattern.is_none_or(|p| model::glob(p.as_bytes(), k.as_bytes())))
                .cloned()
                .collect(),
        )
    }
}

pub async fn model_random_cache_operations(cx: Cx) -> CaseResult {
    let c = cx.cache().await?;
    let mut m = Model::default();
    let mut rng = Rng::new(cx.seed);
    for step in 0..STEPS {
        let k = rng.pick(KEYS).to_string();
        match rng.below(10) {
            0 | 1 => {
                let v = random_value(&mut rng);
                let ttl = (rng.below(2) == 0).then_some(LONG);
                let got = outcome(c.set(&k, &v, ttl).await.map(|_| Value::Null));
                m.keys.insert(k.clone(), Slot::Value(v, ttl.is_some()));
                agree(step, cx.seed, &format!("set {k}"), &got, &Ok(Value::Null))?;
            }
            2 | 3 => {
                let got = outcome(c.get(&k).await.map(opt));
                agree(step, cx.seed, &format!("get {k}"), &got, &m.get(&k))?;
            }
            4 => {
                let got = outcome(c.delete(&k).await);
                let want = Ok(json!(m.keys.remove(&k).is_some()));
                agree(step, cx.seed, &format!("delete {k}"), &got, &want)?;
            }
            5 => {
                let keys: Vec<String> = (0..3).map(|_| rng.pick(KEYS).to_string()).collect();
                let got = outcome(
                    c.mget(&keys)
                        .await
                        .map(|vs| json!(vs.into_iter().map(opt).collect::<Vec<_>>())),
                );
                agree(
                    step,
                    cx.seed,
                    &format!("mget {keys:?}"),
                    &got,
                    &Ok(m.mget(&keys)),
                )?;
            }
            6 => {
                let entries: Vec<CacheEntry> = (0..1 + rng.below(3))
                    .map(|_| {
                        let ttl = (rng.below(2) == 0).then_some(LONG);
                        CacheEntry::new(rng.pick(KEYS).to_string(), random_value(&mut rng), ttl)
                    })
                    .collect();
                let got = outcome(c.mset(&entries).await.map(|_| Value::Null));
                for e in &entries {
                    m.keys
                        .insert(e.key.clone(), Slot::Value(e.value.clone(), e.ttl.is_some()));
                }
                agree(step, cx.seed, "mset", &got, &Ok(Value::Null))?;
            }
            7 => {
                let p = *rng.pick(PATTERNS);
                let got = outcome(c.keys(p).await.map(sorted));
                agree(
                    step,
                    cx.seed,
                    &format!("keys {p:?}"),
                    &got,
                    &Ok(m.key_list(p)),
                )?;
            }
            8 => {
                let got = outcome(c.kind(&k).await.map(kind_name));
                agree(step, cx.seed, &format!("kind {k}"), &got, &Ok(m.kind(&k)))?;
                let got = outcome(c.ttl(&k).await.map(|t| {
                    json!(match t {
                        KeyTtl::Missing => "missing",
                        KeyTtl::Persistent => "persistent",
                        KeyTtl::ExpiresIn(_) => "expires",
                    })
                }));
                let want = json!(match m.keys.get(&k) {
                    None => "missing",
                    Some(Slot::Value(_, true)) => "expires",
                    _ => "persistent",
                });
                agree(step, cx.seed, &format!("ttl {k}"), &got, &Ok(want))?;
            }
            _ => {
                if rng.below(20) == 0 {
                    let got = outcome(c.clear().await.map(|_| Value::Null));
                    m.keys.clear();
                    agree(step, cx.seed, "clear", &got, &Ok(Value::Null))?;
                } else {
                    let got = outcome(c.exists(&k).await);
                    agree(
                        step,
                        cx.seed,
                        &format!("exists {k}"),
                        &got,
                        &Ok(json!(m.keys.contains_key(&k))),
                    )?;
                }
            }
        }
    }
    Ok(())
}

pub async fn model_random_database_operations(cx: Cx) -> CaseResult {
    let d = cx.db().await?;
    let mut m = Model::default();
    let mut rng = Rng::new(cx.seed);
    for step in 0..STEPS {
        let k = rng.pick(KEYS).to_string();
        match rng.below(13) {
            0 => {
                let v = random_value(&mut rng);
                let got = outcome(d.set(&k, &v).await.map(|_| Value::Null));
                m.keys.insert(k.clone(), Slot::Value(v, false));
                agree(step, cx.seed, &format!("set {k}"), &got, &Ok(Value::Null))?;
            }
            1 | 2 => {
                let got = outcome(d.get(&k).await.map(opt));
                agree(step, cx.seed, &format!("get {k}"), &got, &m.get(&k))?;
            }
            3 => {
                let got = outcome(d.delete(&k).await);
                let want = Ok(json!(m.keys.remove(&k).is_some()));
                agree(step, cx.seed, &format!("delete {k}"), &got, &want)?;
            }
            4 => {
                let keys: Vec<String> = (0..3).map(|_| rng.pick(KEYS).to_string()).collect();
                let got = outcome(
                    d.mget(&keys)
                        .await
                        .map(|vs| json!(vs.into_iter().map(opt).collect::<Vec<_>>())),
                );
                agree(
                    step,
                    cx.seed,
                    &format!("mget {keys:?}"),
                    &got,
                    &Ok(m.mget(&keys)),
                )?;
            }
            5 => {
                let entries: Vec<(String, Value)> = (0..1 + rng.below(3))
                    .map(|_| (rng.pick(KEYS).to_string(), random_value(&mut rng)))
                    .collect();
                let got = outcome(d.mset(&entries).await.map(|_| Value::Null));
                for (key, v) in &entries {
                    m.keys.insert(key.clone(), Slot::Value(v.clone(), false));
                }
                agree(step, cx.seed, "mset", &got, &Ok(Value::Null))?;
            }
            6..=8 => {
                let v = random_value(&mut rng);
                let got = outcome(d.append(&k, &v).await.map(|_| Value::Null));
                let want = match m
                    .keys
                    .entry(k.clone())
                    .or_insert_with(|| Slot::List(Vec::new()))
                {
                    Slot::List(items) => {
                        items.push(v);
                        Ok(Value::Null)
                    }
                    Slot::Value(..) => Err(ErrorKind::WrongType),
                };
                agree(step, cx.seed, &format!("append {k}"), &got, &want)?;
            }
            9 => {
                let (s, e) = (rng.below(16) as i64 - 8, rng.below(16) as i64 - 8);
                let got = outcome(d.get_range(&k, s, e).await.map(Value::Array));
                let want = match m.keys.get(&k) {
                    None => Ok(json!([])),
                    Some(Slot::List(items)) => Ok(Value::Array(model::range(items, s, e))),
                    Some(Slot::Value(..)) => Err(ErrorKind::WrongType),
                };
                agree(
                    step,
                    cx.seed,
                    &format!("get_range {k} {s} {e}"),
                    &got,
                    &want,
                )?;
                let got = outcome(d.get_length(&k).await);
                let want = match m.keys.get(&k) {
                    None => Ok(json!(0)),
                    Some(Slot::List(items)) => Ok(json!(items.len())),
                    Some(Slot::Value(..)) => Err(ErrorKind::WrongType),
                };
                agree(step, cx.seed, &format!("get_length {k}"), &got, &want)?;
            }
            10 => {
                let p = *rng.pick(PATTERNS);
                let got = outcome(d.keys(p).await.map(sorted));
                agree(
                    step,
                    cx.seed,
                    &format!("keys {p:?}"),
                    &got,
                    &Ok(m.key_list(p)),
                )?;
            }
            11 => {
                let got = outcome(d.kind(&k).await.map(kind_name));
                agree(step, cx.seed, &format!("kind {k}"), &got, &Ok(m.kind(&k)))?;
            }
            _ => {
                if rng.below(25) == 0 {
                    let got = outcome(d.clear().await.map(|_| Value::Null));
                    m.keys.clear();
                    agree(step, cx.seed, "clear", &got, &Ok(Value::Null))?;
                } else {
                    let got = outcome(d.exists(&k).await);
                    agree(
                        step,
                        cx.seed,
                        &format!("exists {k}"),
                        &got,
                        &Ok(json!(m.keys.contains_key(&k))),
                    )?;
                }
            }
        }
    }
    Ok(())
}
