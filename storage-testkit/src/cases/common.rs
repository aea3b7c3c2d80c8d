//! Cases for the operations both roles share.

use super::Cx;
use crate::check::{CaseResult, Ctx, ensure, ensure_eq, ensure_same, expect_err, same};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use storage_core::{ErrorKind, KeyKind};

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

pub(crate) const HOSTILE_KEYS: &[&str] = &[
    "'",
    "\"",
    "\\",
    "%",
    "_",
    "*",
    "?",
    "[",
    "]",
    "[a-z]",
    " ",
    "  leading and trailing  ",
    "new\nline",
    "tab\there",
    "emoji 🦀",
    "é",
    "e\u{301}",
    "'; DROP TABLE kv; --",
    "%_%",
    "a*b?c[d]e\\f",
    "\u{7f}",
    "\u{10FFFF}",
    "key:with:colons",
    "/slash/",
];

pub async fn hostile_keys_are_exact(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    for (i, key) in HOSTILE_KEYS.iter().enumerate() {
        s.set(key, &json!(i)).await.ctx(format!("set {key:?}"))?;
    }
    for (i, key) in HOSTILE_KEYS.iter().enumerate() {
        ensure_eq!(
            s.get(key).await.ctx(format!("get {key:?}"))?,
            Some(json!(i)),
            "key {key:?}"
        );
    }
    let listed: BTreeSet<String> = s.keys(None).await.ctx("keys")?.into_iter().collect();
    let want: BTreeSet<String> = HOSTILE_KEYS.iter().map(|k| k.to_string()).collect();
    ensure_eq!(listed, want, "keys() of hostile keys");
    // Patterns made of the same characters match literally when escaped.
    // `%` and `_` are not wildcards (as they would be under SQL LIKE).
    ensure_eq!(
        s.keys(Some("%")).await.ctx("keys")?,
        vec!["%".to_string()],
        "keys(%)"
    );
    ensure_eq!(
        s.keys(Some("_")).await.ctx("keys")?,
        vec!["_".to_string()],
        "keys(_)"
    );
    ensure_eq!(
        s.keys(Some("\\%_\\%")).await.ctx("keys")?,
        vec!["%_%".to_string()],
        "escaped % _ %"
    );
    ensure_eq!(
        s.keys(Some("%_%")).await.ctx("keys")?,
        vec!["%_%".to_string()],
        "%_% literal"
    );
    ensure_eq!(
        s.keys(Some("\\*")).await.ctx("keys")?,
        vec!["*".to_string()],
        "\\* literal"
    );
    Ok(())
}

pub async fn keys_are_case_sensitive(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    s.set("Key", &json!(1)).await.ctx("set Key")?;
    s.set("key", &json!(2)).await.ctx("set key")?;
    ensure_eq!(s.get("Key").await.ctx("get")?, Some(json!(1)), "Key");
    ensure_eq!(s.get("KEY").await.ctx("get")?, None, "KEY");
    let mut k = s.keys(Some("k*")).await.ctx("keys k*")?;
    k.sort();
    ensure_eq!(k, vec!["key".to_string()], "keys k*");
    Ok(())
}

pub async fn key_at_limit_accepted(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    for key in [
        "k".repeat(1024),
        "é".repeat(512),
        format!("{}🦀", "k".repeat(1020)),
    ] {
        s.set(&key, &json!(1))
            .await
            .ctx(format!("set {}-byte key", key.len()))?;
        ensure_eq!(
            s.get(&key).await.ctx("get")?,
            Some(json!(1)),
            "1024-byte key"
        );
        ensure_eq!(
            s.keys(Some(&key[..10])).await.ctx("keys")?.len(),
            0,
            "literal pattern prefix only"
        );
    }
    ensure_eq!(s.keys(None).await.ctx("keys")?.len(), 3, "three long keys");
    Ok(())
}

pub async fn key_over_limit_rejected(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    let key = "k".repeat(1025);
    expect_err(
        s.set(&key, &json!(1)).await,
        ErrorKind::InvalidKey,
        "set 1025-byte key",
    )?;
    expect_err(
        s.get(&key).await,
        ErrorKind::InvalidKey,
        "get 1025-byte key",
    )?;
    expect_err(s.delete(&key).await, ErrorKind::InvalidKey, "delete")?;
    expect_err(s.exists(&key).await, ErrorKind::InvalidKey, "exists")?;
    expect_err(
        s.mget(&["ok".into(), key.clone()]).await,
        ErrorKind::InvalidKey,
        "mget",
    )?;
    let multibyte = format!("{}é", "k".repeat(1023));
    expect_err(
        s.set(&multibyte, &json!(1)).await,
        ErrorKind::InvalidKey,
        "1025 bytes, 1024 chars",
    )?;
    ensure_eq!(
        s.keys(None).await.ctx("keys")?,
        Vec::<String>::new(),
        "nothing stored"
    );
    Ok(())
}

pub async fn empty_key_rejected(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    expect_err(
        s.set("", &json!(1)).await,
        ErrorKind::InvalidKey,
        "set empty key",
    )?;
    expect_err(s.get("").await, ErrorKind::InvalidKey, "get empty key")?;
    expect_err(s.kind("").await, ErrorKind::InvalidKey, "kind empty key")?;
    Ok(())
}

pub async fn nul_in_key_rejected(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    expect_err(
        s.set("a\0b", &json!(1)).await,
        ErrorKind::InvalidKey,
        "set key with U+0000",
    )?;
    expect_err(s.get("\0").await, ErrorKind::InvalidKey, "get U+0000")?;
    ensure_eq!(
        s.keys(None).await.ctx("keys")?,
        Vec::<String>::new(),
        "nothing stored"
    );
    Ok(())
}

pub async fn prefix_at_limit_accepted(cx: Cx) -> CaseResult {
    let prefix = format!("{}{}", cx.prefix, "p".repeat(256 - cx.prefix.len()));
    let s = cx.subject_at(&prefix).await?;
    let key = "k".repeat(1024);
    s.set(&key, &json!("max"))
        .await
        .ctx("set with 256-byte prefix and 1024-byte key")?;
    ensure_eq!(s.get(&key).await.ctx("get")?, Some(json!("max")), "value");
    ensure_eq!(
        s.keys(None).await.ctx("keys")?,
        vec![key],
        "keys without the prefix"
    );
    s.clear().await.ctx("clear")?;
    Ok(())
}

pub async fn prefix_over_limit_rejected(cx: Cx) -> CaseResult {
    let prefix = format!("{}{}", cx.prefix, "p".repeat(257 - cx.prefix.len()));
    match cx.build(&prefix).await {
        Ok(_) => Err("a 257-byte keyPrefix was accepted".into()),
        Err(e) if e.kind() == ErrorKind::Configuration => Ok(()),
        Err(e) => Err(format!(
            "expected a configuration error, got {:?}: {e}",
            e.kind()
        )),
    }
}

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

pub async fn keys_lists_whole_namespace(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    ensure_eq!(
        s.keys(None).await.ctx("keys")?,
        Vec::<String>::new(),
        "empty namespace"
    );
    let want: BTreeSet<String> = (0..50).map(|i| format!("key{i}")).collect();
    for k in &want {
        s.set(k, &json!(k)).await.ctx("set")?;
    }
    let all: BTreeSet<String> = s.keys(None).await.ctx("keys None")?.into_iter().collect();
    ensure_eq!(all, want.clone(), "keys(None)");
    let star: BTreeSet<String> = s.keys(Some("*")).await.ctx("keys *")?.into_iter().collect();
    ensure_eq!(star, want, "keys(*)");
    Ok(())
}

pub async fn keys_has_no_duplicates(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    for round in 0..3 {
        for i in 0..40 {
            s.set(&format!("d{i}"), &json!(round)).await.ctx("set")?;
        }
        for i in (0..40).step_by(3) {
            s.delete(&format!("d{i}")).await.ctx("delete")?;
        }
    }
    let keys = s.keys(None).await.ctx("keys")?;
    let unique: BTreeSet<&String> = keys.iter().collect();
    ensure_eq!(unique.len(), keys.len(), "duplicates in keys()");
    ensure_eq!(keys.len(), 26, "key count");
    Ok(())
}

/// Patterns and what they must list among [`GLOB_KEYS`], worked out by hand from Redis's rules.
const GLOB_KEYS: &[&str] = &[
    "hello",
    "hallo",
    "hxllo",
    "hllo",
    "heeeello",
    "h[e]llo",
    "a*b",
    "a?b",
    "axb",
    "é",
    "caf\u{e9}",
    "#",
    "A",
    "b",
    "]",
    "-",
    "x\\y",
];

const GLOB_TABLE: &[(&str, &[&str])] = &[
    ("h?llo", &["hello", "hallo", "hxllo"]),
    (
        "h*llo",
        &["hello", "hallo", "hxllo", "hllo", "heeeello", "h[e]llo"],
    ),
    ("h[ae]llo", &["hello", "hallo"]),
    ("h[^e]llo", &["hallo", "hxllo"]),
    ("h[a-b]llo", &["hallo"]),
    ("h[b-a]llo", &["hallo"]),
    ("h\\[e\\]llo", &["h[e]llo"]),
    ("a\\*b", &["a*b"]),
    ("a\\?b", &["a?b"]),
    ("a?b", &["a*b", "a?b", "axb"]),
    ("?", &["#", "A", "b", "]", "-"]),
    ("??", &["é", "hl"]),
    ("caf??", &["caf\u{e9}"]),
    ("[a-é]", &["#", "A", "]", "-"]),
    ("[]]", &[]),
    ("[\\]]", &["]"]),
    ("[-]", &["-"]),
    ("x\\\\y", &["x\\y"]),
    ("h[el", &["hl"]),
    ("nomatch*", &[]),
    (
        "*o",
        &["hello", "hallo", "hxllo", "hllo", "heeeello", "h[e]llo"],
    ),
];

pub async fn glob_pattern_table(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    for k in GLOB_KEYS.iter().chain(["hel", "hl"].iter()) {
        s.set(k, &json!(1)).await.ctx(format!("set {k:?}"))?;
    }
    keys_match_rows(&s, GLOB_TABLE).await
}

/// Checks `keys(pattern)` against the wanted keys for every row.
pub(crate) async fn keys_match_rows(s: &super::Subject, rows: &[(&str, &[&str])]) -> CaseResult {
    for (pattern, want) in rows {
        let got: BTreeSet<String> = s
            .keys(Some(pattern))
            .await
            .ctx(format!("keys({pattern:?})"))?
            .into_iter()
            .collect();
        let want: BTreeSet<String> = want.iter().map(|k| k.to_string()).collect();
        ensure_eq!(got, want, "keys({pattern:?})");
    }
    Ok(())
}

pub async fn glob_literal_prefix_among_many(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    let entries: Vec<(String, Value)> = (0..600)
        .map(|i| {
            let k = match i % 3 {
                0 => format!("p:{i}"),
                1 => format!("q:{i}"),
                _ => format!("p{i}"),
            };
            (k, json!(i))
        })
        .collect();
    s.mset(&entries).await.ctx("mset")?;
    let got: BTreeSet<String> = s
        .keys(Some("p:*"))
        .await
        .ctx("keys p:*")?
        .into_iter()
        .collect();
    let want: BTreeSet<String> = (0..600)
        .filter(|i| i % 3 == 0)
        .map(|i| format!("p:{i}"))
        .collect();
    ensure_eq!(got, want, "keys(p:*)");
    let got = s.keys(Some("p:1?")).await.ctx("keys p:1?")?;
    let mut got: Vec<String> = got;
    got.sort();
    ensure_eq!(
        got,
        vec!["p:12".to_string(), "p:15".to_string(), "p:18".to_string()],
        "keys(p:1?)"
    );
    ensure_eq!(
        s.keys(Some("p:3")).await.ctx("keys p:3")?,
        vec!["p:3".to_string()],
        "exact literal pattern"
    );
    Ok(())
}

pub async fn prefix_is_never_seen(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    s.set("k", &json!(1)).await.ctx("set")?;
    ensure_eq!(
        s.keys(None).await.ctx("keys")?,
        vec!["k".to_string()],
        "keys() strips the prefix"
    );
    // Asking for the prefixed name reaches nothing.
    let prefixed = format!("{}k", cx.prefix);
    ensure_eq!(
        s.get(&prefixed).await.ctx("get prefixed")?,
        None,
        "prefixed key"
    );
    ensure_eq!(
        s.keys(Some(&format!("{}*", cx.prefix)))
            .await
            .ctx("keys prefix*")?,
        Vec::<String>::new(),
        "prefix in pattern"
    );
    Ok(())
}

pub async fn glob_chars_in_prefix_do_not_widen(cx: Cx) -> CaseResult {
    let globby = cx.subject_at(&format!("{}a*[b]?:", cx.prefix)).await?;
    let plain = cx.subject_at(&format!("{}aX[b]Y:", cx.prefix)).await?;
    // `aXXbY:` is what the prefix matches when read as a glob (`*` = `XX`, `?` = `Y`), so a
    // backend that scans with the prefix unescaped clears it.
    let other = cx.subject_at(&format!("{}aXXbY:", cx.prefix)).await?;
    globby.set("k", &json!("globby")).await.ctx("set globby")?;
    plain.set("k", &json!("plain")).await.ctx("set plain")?;
    other.set("k", &json!("other")).await.ctx("set other")?;
    ensure_eq!(
        globby.keys(None).await.ctx("keys")?,
        vec!["k".to_string()],
        "keys in a*[b]?:"
    );
    ensure_eq!(
        globby.keys(Some("*")).await.ctx("keys *")?,
        vec!["k".to_string()],
        "keys * in a*[b]?:"
    );
    ensure_eq!(
        globby.get("k").await.ctx("get")?,
        Some(json!("globby")),
        "own value"
    );
    globby.clear().await.ctx("clear globby")?;
    ensure_eq!(
        plain.get("k").await.ctx("get plain")?,
        Some(json!("plain")),
        "sibling survives clear"
    );
    ensure_eq!(
        other.get("k").await.ctx("get other")?,
        Some(json!("other")),
        "sibling survives clear"
    );
    plain.clear().await.ctx("clear")?;
    other.clear().await.ctx("clear")?;
    Ok(())
}

pub async fn clear_one_namespace_beside_another(cx: Cx) -> CaseResult {
    let one = cx.subject_at(&format!("{}one:", cx.prefix)).await?;
    let two = cx.subject_at(&format!("{}two:", cx.prefix)).await?;
    for i in 0..30 {
        one.set(&format!("k{i}"), &json!(i)).await.ctx("set one")?;
        two.set(&format!("k{i}"), &json!(-i)).await.ctx("set two")?;
    }
    one.clear().await.ctx("clear one")?;
    ensure_eq!(
        one.keys(None).await.ctx("keys one")?,
        Vec::<String>::new(),
        "cleared namespace"
    );
    ensure_eq!(one.get("k1").await.ctx("get")?, None, "cleared key");
    ensure_eq!(
        two.keys(None).await.ctx("keys two")?.len(),
        30,
        "other namespace's keys"
    );
    ensure_eq!(
        two.get("k7").await.ctx("get two")?,
        Some(json!(-7)),
        "other namespace's value"
    );
    two.clear().await.ctx("clear two")?;
    Ok(())
}

pub async fn clear_empty_namespace(cx: Cx) -> CaseResult {
    let s = cx.subject().await?;
    s.clear().await.ctx("clear empty")?;
    s.clear().await.ctx("clear twice")?;
    s.set("after", &json!(1)).await.ctx("set after clear")?;
    ensure_eq!(
        s.get("after").await.ctx("get")?,
        Some(json!(1)),
        "usable after clear"
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
