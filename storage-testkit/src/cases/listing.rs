//! Cases on what a namespace lists and clears, for both roles: `keys` with Redis's glob
//! patterns, the prefix never seen, `clear` beside another namespace.

use super::Cx;
use crate::check::{CaseResult, Ctx, ensure_eq};
use serde_json::{Value, json};
use std::collections::BTreeSet;

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
