//! Cases on values, for both roles: every class of value the contract names round-trips
//! exactly, and the nesting limit. Not keys (`keys.rs`) or operations (`operations.rs`).

use super::Cx;
use crate::check::{CaseResult, Ctx, ensure, ensure_eq, ensure_same, expect_err};
use serde_json::{Value, json};
use storage_core::ErrorKind;

/// Every class of value the contract names, by label.
pub(crate) fn value_classes() -> Vec<(&'static str, Value)> {
    vec![
        ("null", json!(null)),
        ("false", json!(false)),
        ("true", json!(true)),
        ("zero", json!(0)),
        ("empty string", json!("")),
        ("empty array", json!([])),
        ("empty object", json!({})),
        ("string with U+0000", json!("a\u{0}b")),
        ("unicode", json!("héllo wörld 🦀 \u{10FFFF} \u{FEFF} עברית")),
        ("quotes and escapes", json!("'\"\\\n\t\r")),
        ("i64 min", json!(i64::MIN)),
        ("i64 max", json!(i64::MAX)),
        ("u64 max", json!(u64::MAX)),
        ("2^53 + 1", json!(9_007_199_254_740_993u64)),
        ("-1", json!(-1)),
        ("negative zero", json!(-0.0f64)),
        ("1e18 as float", json!(1e18f64)),
        ("0.1", json!(0.1f64)),
        ("smallest subnormal", json!(5e-324f64)),
        ("f64 max", json!(f64::MAX)),
        ("f64 min positive", json!(f64::MIN_POSITIVE)),
        ("-1.5", json!(-1.5f64)),
        ("1.0 stays a float", json!(1.0f64)),
        (
            "nested document",
            json!({"a": [1, 2.5, {"b": null, "c": [true, "x"]}], "": {"": []}}),
        ),
    ]
}

async fn round_trip(cx: &Cx, labels: &[&str]) -> CaseResult {
    let s = cx.subject().await?;
    for (label, value) in value_classes() {
        if !labels.is_empty() && !labels.contains(&label) {
            continue;
        }
        let key = format!("v:{label}");
        s.set(&key, &value).await.ctx(format!("set {label}"))?;
        ensure_same!(
            s.get(&key).await.ctx(format!("get {label}"))?,
            Some(value.clone()),
            "{label} did not round-trip"
        );
    }
    Ok(())
}

pub async fn null_is_stored_and_distinct_from_missing(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    s.set("n", &json!(null)).await.ctx("set null")?;
    ensure_eq!(
        s.get("n").await.ctx("get")?,
        Some(json!(null)),
        "stored null"
    );
    ensure_eq!(
        s.get("missing").await.ctx("get missing")?,
        None,
        "missing key"
    );
    ensure!(
        s.exists("n").await.ctx("exists")?,
        "a stored null must exist"
    );
    ensure_eq!(
        s.mget(&["n".into(), "missing".into()]).await.ctx("mget")?,
        vec![Some(json!(null)), None],
        "mget of null and missing"
    );
    Ok(())
}

pub async fn falsy_values_round_trip(cx: Cx) -> CaseResult {
    round_trip(
        &cx,
        &[
            "false",
            "true",
            "zero",
            "empty string",
            "empty array",
            "empty object",
        ],
    )
    .await
}

pub async fn strings_round_trip(cx: Cx) -> CaseResult {
    round_trip(
        &cx,
        &["string with U+0000", "unicode", "quotes and escapes"],
    )
    .await
}

pub async fn integer_edges_round_trip(cx: Cx) -> CaseResult {
    round_trip(
        &cx,
        &["i64 min", "i64 max", "u64 max", "2^53 + 1", "-1", "zero"],
    )
    .await
}

pub async fn float_edges_round_trip_bit_for_bit(cx: Cx) -> CaseResult {
    round_trip(
        &cx,
        &[
            "negative zero",
            "1e18 as float",
            "0.1",
            "smallest subnormal",
            "f64 max",
            "f64 min positive",
            "-1.5",
            "1.0 stays a float",
        ],
    )
    .await
}

pub async fn nested_documents_round_trip(cx: Cx) -> CaseResult {
    round_trip(&cx, &["nested document"]).await?;
    // Member order is not kept, but every member is.
    let s = cx.subject().await?;
    let doc: Value = serde_json::from_str(r#"{"z": 1, "a": 2, "m": {"y": [], "b": {}}}"#)
        .map_err(|e| e.to_string())?;
    s.set("doc", &doc).await.ctx("set")?;
    ensure_same!(s.get("doc").await.ctx("get")?, Some(doc), "object members");
    Ok(())
}

fn nested(depth: usize) -> Value {
    let mut v = json!("leaf");
    for i in 0..depth {
        v = if i % 2 == 0 {
            json!([v])
        } else {
            json!({ "k": v })
        };
    }
    v
}

pub async fn depth_64_accepted(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    let v = nested(64);
    s.set("deep", &v).await.ctx("set depth 64")?;
    ensure_same!(s.get("deep").await.ctx("get")?, Some(v), "depth-64 value");
    Ok(())
}

pub async fn depth_65_rejected_and_nothing_stored(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    expect_err(
        s.set("deep", &nested(65)).await,
        ErrorKind::InvalidValue,
        "set depth 65",
    )?;
    ensure!(
        !s.exists("deep").await.ctx("exists")?,
        "a rejected value was stored"
    );
    // Much deeper values are rejected without a stack overflow.
    expect_err(
        s.set("deeper", &nested(1000)).await,
        ErrorKind::InvalidValue,
        "set depth 1000",
    )?;
    Ok(())
}

pub async fn large_value_round_trips(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    // Just under 16 MiB serialized: a string plus its quotes.
    let big = Value::String("x".repeat(16 * 1024 * 1024 - 16));
    s.set("big", &big).await.ctx("set 16 MiB value")?;
    let back = s.get("big").await.ctx("get 16 MiB value")?;
    ensure!(
        back.as_ref() == Some(&big),
        "16 MiB value did not round-trip"
    );
    Ok(())
}
