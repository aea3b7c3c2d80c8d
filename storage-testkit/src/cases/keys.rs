//! Cases on keys and namespaces, for both roles: hostile keys are exact, the key and prefix
//! limits. Not listing keys (`listing.rs`).

use super::Cx;
use crate::check::{CaseResult, Ctx, ensure_eq, expect_err};
use serde_json::json;
use std::collections::BTreeSet;
use storage_core::ErrorKind;

/// Keys that a backend's own syntax (SQL quoting, LIKE and glob patterns, separators) could
/// read as more than a name.
const HOSTILE_KEYS: &[&str] = &[
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
