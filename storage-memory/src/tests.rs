//! The memory backend's own tests: its store sharing, namespaces and limits; the contract
//! itself is checked by the conformance kit.

use super::*;
use serde_json::json;
use storage_core::ErrorKind;
use storage_core::raw::MAX_KEY_BYTES;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn values_and_kinds() {
    rt().block_on(async {
        let store = MemoryStore::new();
        let db = store.database("").unwrap();
        assert_eq!(db.get("k").await.unwrap(), None);
        db.set("k", &json!(null)).await.unwrap();
        assert_eq!(db.get("k").await.unwrap(), Some(json!(null)));
        assert_eq!(db.kind("k").await.unwrap(), KeyKind::Value);
        db.append("l", &json!(1)).await.unwrap();
        assert_eq!(db.kind("l").await.unwrap(), KeyKind::List);
        assert_eq!(db.get("l").await.unwrap_err().kind(), ErrorKind::WrongType);
        assert_eq!(
            db.append("k", &json!(1)).await.unwrap_err().kind(),
            ErrorKind::WrongType
        );
        assert_eq!(
            db.get_range("k", 0, -1).await.unwrap_err().kind(),
            ErrorKind::WrongType
        );
        assert_eq!(
            db.get_length("k").await.unwrap_err().kind(),
            ErrorKind::WrongType
        );
        assert_eq!(
            db.mget(&["k".into(), "l".into(), "nope".into(), "k".into()])
                .await
                .unwrap(),
            vec![Some(json!(null)), None, None, Some(json!(null))]
        );
        // set replaces a list.
        db.set("l", &json!("v")).await.unwrap();
        assert_eq!(db.get("l").await.unwrap(), Some(json!("v")));
        assert!(db.delete("l").await.unwrap());
        assert!(!db.delete("l").await.unwrap());
        let e = db.get("l").await;
        assert_eq!(e.unwrap(), None);
    });
}

#[test]
fn lists() {
    rt().block_on(async {
        let db = MemoryStore::new().database("p:").unwrap();
        for i in 0..10 {
            db.append("h", &json!(i)).await.unwrap();
        }
        assert_eq!(db.get_length("h").await.unwrap(), 10);
        assert_eq!(
            db.get_range("h", -3, -1).await.unwrap(),
            vec![json!(7), json!(8), json!(9)]
        );
        assert_eq!(
            db.get_range("h", 0, 1).await.unwrap(),
            vec![json!(0), json!(1)]
        );
        assert!(db.get_range("h", 5, 2).await.unwrap().is_empty());
        assert!(db.get_range("missing", 0, -1).await.unwrap().is_empty());
        assert_eq!(db.get_length("missing").await.unwrap(), 0);
    });
}

#[test]
fn namespaces_share_a_store_but_not_keys() {
    rt().block_on(async {
        let store = MemoryStore::new();
        let a = store.database("a").unwrap();
        let ab = store.database("ab").unwrap();
        let glob = store.database("a*[b]:").unwrap();
        a.set("bx", &json!(1)).await.unwrap();
        ab.set("x", &json!(2)).await.unwrap();
        glob.set("x", &json!(3)).await.unwrap();
        assert_eq!(a.keys(None).await.unwrap(), vec!["bx".to_string()]);
        assert_eq!(ab.keys(Some("*")).await.unwrap(), vec!["x".to_string()]);
        a.clear().await.unwrap();
        assert_eq!(ab.get("x").await.unwrap(), Some(json!(2)));
        assert_eq!(glob.get("x").await.unwrap(), Some(json!(3)));
        assert!(a.keys(None).await.unwrap().is_empty());
    });
}

#[test]
fn ttl_and_reclamation() {
    rt().block_on(async {
        let store = MemoryStore::new();
        let cache = store.cache("c:").unwrap();
        cache
            .set("long", &json!(1), Some(Duration::from_secs(60)))
            .await
            .unwrap();
        cache.set("forever", &json!(2), None).await.unwrap();
        match cache.ttl("long").await.unwrap() {
            KeyTtl::ExpiresIn(d) => {
                assert!(d > Duration::from_secs(50) && d <= Duration::from_secs(60))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(cache.ttl("forever").await.unwrap(), KeyTtl::Persistent);
        assert_eq!(cache.ttl("none").await.unwrap(), KeyTtl::Missing);
        // set without TTL clears the TTL.
        cache.set("long", &json!(1), None).await.unwrap();
        assert_eq!(cache.ttl("long").await.unwrap(), KeyTtl::Persistent);

        cache
            .set("short", &json!(3), Some(Duration::from_millis(5)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(cache.get("short").await.unwrap(), None);
        assert!(!cache.exists("short").await.unwrap());
        assert!(!cache.delete("short").await.unwrap());
        assert!(
            !cache
                .keys(None)
                .await
                .unwrap()
                .contains(&"short".to_string())
        );
        assert_eq!(cache.ttl("short").await.unwrap(), KeyTtl::Missing);

        // Only TTL'd writes, never a read of them: the store stays bounded.
        let before = store.entry_count();
        for round in 0..20 {
            let entries: Vec<CacheEntry> = (0..100)
                .map(|i| {
                    CacheEntry::new(
                        format!("t{round}:{i}"),
                        json!(i),
                        Some(Duration::from_millis(1)),
                    )
                })
                .collect();
            cache.mset(&entries).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        cache.set("last", &json!(0), None).await.unwrap();
        assert!(
            store.entry_count() <= before + 1,
            "{} entries",
            store.entry_count()
        );
    });
}

#[test]
fn checked_rules_apply() {
    rt().block_on(async {
        let cache = MemoryStore::new().cache("").unwrap();
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        assert_eq!(
            cache.get(&long).await.unwrap_err().kind(),
            ErrorKind::InvalidKey
        );
        assert_eq!(
            cache.set("", &json!(1), None).await.unwrap_err().kind(),
            ErrorKind::InvalidKey
        );
        let e = cache
            .set("k", &json!(1), Some(Duration::ZERO))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().starts_with("in-memory set:"), "{e}");
        let mut deep = json!(0);
        for _ in 0..65 {
            deep = json!([deep]);
        }
        assert_eq!(
            cache.set("k", &deep, None).await.unwrap_err().kind(),
            ErrorKind::InvalidValue
        );
        // A bad entry anywhere in a batch stores nothing.
        let batch = vec![
            CacheEntry::new("ok", json!(1), None),
            CacheEntry::new("bad\0", json!(1), None),
        ];
        assert!(cache.mset(&batch).await.is_err());
        assert!(!cache.exists("ok").await.unwrap());
        assert!(MemoryStore::new().cache(&"p".repeat(257)).is_err());
    });
}

#[test]
fn concurrent_appends_keep_everything() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    rt.block_on(async {
        let db = MemoryStore::new().database("").unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|w| {
                let db = db.clone();
                tokio::spawn(async move {
                    for i in 0..250 {
                        db.append("l", &json!([w, i])).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let items = db.get_range("l", 0, -1).await.unwrap();
        assert_eq!(items.len(), 2000);
        for w in 0..8 {
            let mine: Vec<i64> = items
                .iter()
                .filter(|v| v[0] == w)
                .map(|v| v[1].as_i64().unwrap())
                .collect();
            assert_eq!(mine, (0..250).collect::<Vec<_>>());
        }
    });
}

#[test]
fn closed_backend_refuses() {
    rt().block_on(async {
        let db = MemoryStore::new().database("").unwrap();
        db.close().await.unwrap();
        db.close().await.unwrap();
        assert!(db.get("k").await.is_err());
    });
}

/// A cache that only writes TTL'd keys stays bounded: 10,000 expired entries are gone after the
/// next write, without anyone reading them.
#[test]
fn expired_entries_are_reclaimed_without_reads() {
    rt().block_on(async {
        let store = MemoryStore::new();
        let cache = store.cache("ttl:").unwrap();
        let ttl = Some(std::time::Duration::from_millis(50));
        let batch: Vec<CacheEntry> = (0..10_000)
            .map(|i| CacheEntry::new(format!("k{i}"), json!(i), ttl))
            .collect();
        cache.mset(&batch).await.unwrap();
        assert_eq!(store.entry_count(), 10_000);
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        cache.set("later", &json!(1), ttl).await.unwrap();
        assert_eq!(store.entry_count(), 1, "expired entries left in the map");
    });
}
