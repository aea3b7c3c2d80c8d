//! `keys` against a model, through the namespace's ordered index: random writes, deletes,
//! list appends and trims, clears and listings, with every listing's answer compared to the
//! model's keys that match, and the index compared to the map after each step. Not the
//! contract's `keys` cases (the conformance kit runs those against every backend).

use super::*;
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;
use storage_core::raw::glob_match;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// Patterns with a literal prefix (served by the index), without one (a walk of the map), and
/// with classes and escapes after the prefix.
const PATTERNS: &[&str] = &[
    "a*", "ab*", "aba*", "b*", "ba?", "a[ab]*", "*", "*b", "ab", "a\\*b*", "?b*",
];

#[derive(Debug, Clone)]
enum Step {
    Set(String),
    Delete(String),
    Append(String),
    /// Trims the list at the key to nothing, which removes it.
    Empty(String),
    Clear,
    Keys(&'static str),
}

fn key() -> impl Strategy<Value = String> {
    // Short keys over a small alphabet, so that keys collide, share prefixes and contain `*`.
    "[ab*]{1,4}"
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => key().prop_map(Step::Set),
        2 => key().prop_map(Step::Delete),
        2 => key().prop_map(Step::Append),
        1 => key().prop_map(Step::Empty),
        1 => Just(Step::Clear),
        4 => proptest::sample::select(PATTERNS).prop_map(Step::Keys),
    ]
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum Held {
    Value,
    List,
}

fn index_is_whole(store: &MemoryStore, ns: &str) -> bool {
    store
        .read()
        .namespaces
        .get(ns)
        .is_none_or(|map| map.index_matches_map())
}

proptest! {
    #[test]
    fn keys_matches_the_model(
        steps in proptest::collection::vec(step(), 1..80),
        deadline_elsewhere in any::<bool>(),
    ) {
        rt().block_on(async {
            let store = MemoryStore::new();
            let db: Arc<dyn Database> = Arc::new(store.handle("ns:").unwrap());
            // Another namespace beside it, whose keys must never be listed.
            let other: Arc<dyn Database> = Arc::new(store.handle("ns:a").unwrap());
            other.set("b", &json!(0)).await.unwrap();
            if deadline_elsewhere {
                // A key with a deadline in the store: listings check each match's entry.
                let cache: Arc<dyn Cache> = Arc::new(store.handle("elsewhere:").unwrap());
                let hour = Some(std::time::Duration::from_secs(3600));
                cache.set("t", &json!(0), hour).await.unwrap();
            }
            let mut model: BTreeMap<String, Held> = BTreeMap::new();
            for step in steps {
                match step {
                    Step::Set(k) => {
                        db.set(&k, &json!(1)).await.unwrap();
                        model.insert(k, Held::Value);
                    }
                    Step::Delete(k) => {
                        let gone = db.delete(&k).await.unwrap();
                        prop_assert_eq!(gone, model.remove(&k).is_some());
                    }
                    Step::Append(k) => {
                        let out = db.append(&k, &json!(1)).await;
                        match model.get(&k) {
                            Some(Held::Value) => prop_assert!(out.is_err()),
                            _ => {
                                prop_assert!(out.is_ok());
                                model.insert(k, Held::List);
                            }
                        }
                    }
                    Step::Empty(k) => {
                        let out = db.trim(&k, 1, 0).await;
                        match model.get(&k) {
                            Some(Held::Value) => prop_assert!(out.is_err()),
                            _ => {
                                prop_assert!(out.is_ok());
                                model.remove(&k);
                            }
                        }
                    }
                    Step::Clear => {
                        db.clear().await.unwrap();
                        model.clear();
                    }
                    Step::Keys(pattern) => {
                        let mut listed = db.keys(Some(pattern)).await.unwrap();
                        listed.sort();
                        let expected: Vec<String> = model
                            .keys()
                            .filter(|k| glob_match(pattern, k))
                            .cloned()
                            .collect();
                        prop_assert_eq!(listed, expected, "keys({:?})", pattern);
                    }
                }
                prop_assert!(index_is_whole(&store, "ns:"), "the index drifted from the map");
            }
            prop_assert_eq!(other.keys(None).await.unwrap(), vec!["b".to_string()]);
            Ok(())
        })?;
    }
}

/// A listing with a literal prefix builds the index and one without leaves the map as it is;
/// a key that expires leaves the index with the map.
#[test]
fn the_index_is_built_by_a_prefix_listing_and_follows_expiry() {
    rt().block_on(async {
        let store = MemoryStore::new();
        let db: Arc<dyn Database> = Arc::new(store.handle("ns:").unwrap());
        let cache: Arc<dyn Cache> = Arc::new(store.handle("ns:").unwrap());
        let ordered = |store: &MemoryStore| store.read().namespaces["ns:"].is_ordered();
        db.set("p:1", &json!(1)).await.unwrap();
        db.set("q:1", &json!(1)).await.unwrap();
        assert_eq!(db.keys(None).await.unwrap().len(), 2);
        assert_eq!(db.keys(Some("*:1")).await.unwrap().len(), 2);
        assert!(
            !ordered(&store),
            "a listing without a prefix built the index"
        );
        assert_eq!(db.keys(Some("p:*")).await.unwrap(), ["p:1"]);
        assert!(ordered(&store), "a prefix listing did not build the index");
        db.set("p:0", &json!(0)).await.unwrap();
        let ttl = Some(std::time::Duration::from_millis(20));
        cache.set("p:2", &json!(2), ttl).await.unwrap();
        assert_eq!(db.keys(Some("p:*")).await.unwrap(), ["p:0", "p:1", "p:2"]);
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        assert_eq!(db.keys(Some("p:*")).await.unwrap(), ["p:0", "p:1"]);
        // The next write reclaims the expired key, from the map and the index alike.
        db.set("q:2", &json!(2)).await.unwrap();
        assert!(index_is_whole(&store, "ns:"));
        assert_eq!(store.entry_count(), 4);
    });
}
