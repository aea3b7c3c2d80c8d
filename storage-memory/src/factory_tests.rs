//! The factory as the registry uses it: names, roles, the `store` field, what a named store
//! shares, its description, identity and schema; and the expiry boundary.

use super::*;
use crate::*;
use serde_json::json;
use std::time::Instant;
use storage_core::{BackendFactory, Registry};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

fn resolve(block: &str) -> storage_core::Result<BackendSpec> {
    let mut registry = Registry::new();
    registry.register(Arc::new(MemoryFactory::new()))?;
    let yaml = format!("cache: {{ type: in-memory }}\ndatabase: {block}");
    let config =
        storage_manager::config_file::from_yaml_str(&yaml, ".".as_ref())?.resolve(&registry)?;
    Ok(config.database.primary)
}

/// Blob limits belong to a blob block; a blob store from the factory has them.
#[test]
fn blob_limits_and_the_blob_role() {
    let registry = storage_manager::builtin_registry();
    let yaml = "blob: { type: in-memory, maxBlobBytes: 3 }\ncache: { type: in-memory, maxTotalBytes: 5 }\n";
    let e = storage_manager::config_file::from_yaml_str(yaml, ".".as_ref())
        .unwrap()
        .resolve(&registry)
        .unwrap_err();
    assert!(e.to_string().contains("storage.cache.maxTotalBytes"), "{e}");
    let yaml = "blob: { type: in-memory, maxBlobBytes: 3 }\n";
    let config = storage_manager::config_file::from_yaml_str(yaml, ".".as_ref())
        .unwrap()
        .resolve(&registry)
        .unwrap();
    let spec = config.blob.unwrap().primary;
    rt().block_on(async {
        let store = registry.open_blob(&spec).await.unwrap();
        let e = store
            .put_bytes(b"four", &storage_core::blob::PutOptions::default())
            .await
            .unwrap_err();
        assert!(e.message().contains("maxBlobBytes (3 bytes)"), "{e}");
    });
}

#[test]
fn names_and_roles() {
    assert_eq!(MemoryFactory::new().type_names(), ["in-memory", "memory"]);
    assert_eq!(
        MemoryFactory::new().roles(),
        [Role::Cache, Role::Database, Role::Blob]
    );
    let spec = resolve("{ type: memory }").unwrap();
    assert_eq!(spec.type_name, "in-memory");
    assert_eq!(spec.config.type_name(), "in-memory");
    assert_eq!(spec.config.describe(), "");
    assert!(spec.config.identity().is_none());
}

#[test]
fn a_named_store_is_shared_and_known_by_its_name() {
    let one = resolve("{ type: in-memory, store: factory-test-a }").unwrap();
    let two = resolve("{ type: in-memory, store: factory-test-a }").unwrap();
    let other = resolve("{ type: in-memory, store: factory-test-b }").unwrap();
    let own = resolve("{ type: in-memory }").unwrap();
    assert_eq!(one.config.describe(), "store \"factory-test-a\"");
    let identity = one.config.identity().unwrap();
    assert_eq!(identity.scheme, "in-memory");
    assert!(!identity.prefixes_nest);
    assert!(identity.overlaps(&two.config.identity().unwrap()));
    assert!(!identity.overlaps(&other.config.identity().unwrap()));
    rt().block_on(async {
        let a = MemoryFactory::new().open_database(&one).await.unwrap();
        let b = MemoryFactory::new().open_database(&two).await.unwrap();
        let c = MemoryFactory::new().open_cache(&other).await.unwrap();
        let d = MemoryFactory::new().open_database(&own).await.unwrap();
        let e = MemoryFactory::new().open_database(&own).await.unwrap();
        a.set("k", &json!(1)).await.unwrap();
        assert_eq!(b.get("k").await.unwrap(), Some(json!(1)), "one named store");
        assert_eq!(
            c.get("k").await.unwrap(),
            None,
            "another name, another store"
        );
        d.set("k", &json!(2)).await.unwrap();
        assert_eq!(
            e.get("k").await.unwrap(),
            None,
            "no name: a store of its own"
        );
        a.clear().await.unwrap();
    });
}

#[test]
fn an_empty_or_unknown_field_is_refused_with_its_path() {
    let e = resolve("{ type: in-memory, store: '' }").unwrap_err();
    assert!(e.to_string().contains("storage.database.store"), "{e}");
    let e = resolve("{ type: in-memory, stor: x }").unwrap_err();
    assert!(e.to_string().contains("stor"), "{e}");
}

#[test]
fn the_schema_documents_the_store_field() {
    let schema = MemoryFactory::new().schema();
    assert!(schema["properties"]["store"].is_object(), "{schema}");
}

#[test]
fn a_closed_backend_fails_its_ping() {
    rt().block_on(async {
        let db = MemoryStore::new().handle("").unwrap();
        Store::ping(&db).await.unwrap();
        Store::close(&db).await.unwrap();
        assert!(Store::ping(&db).await.is_err());
    });
}

#[test]
fn an_entry_expires_at_its_deadline() {
    let now = Instant::now();
    let entry = |deadline| Entry {
        slot: Slot::Value(json!(1)),
        version: 1,
        expiry: Some((deadline, 0)),
    };
    let at = Now(now.into());
    assert!(entry(now + Duration::from_millis(1)).live(&at));
    assert!(!entry(now).live(&at), "due at its deadline");
    let mut state = State::default();
    for (i, deadline) in [now, now + Duration::from_secs(1)].into_iter().enumerate() {
        let key = format!("k{i}");
        state
            .namespaces
            .entry(String::new())
            .or_default()
            .insert(key.clone(), entry(deadline));
        state
            .expiry
            .insert((deadline, i as u64), (String::new(), key));
    }
    state.reclaim(&at);
    let left: Vec<&String> = state.namespaces[""].iter().map(|(k, _)| k).collect();
    assert_eq!(
        left,
        ["k1"],
        "the entry due now is reclaimed, the later one kept"
    );
}

#[test]
fn the_clock_is_read_only_for_keys_with_a_deadline() {
    let unread = Now::default();
    let mut state = State::default();
    let _ = state.put("", "k", Slot::Value(json!(1)), None, &unread);
    assert!(state.live("", "k", &unread).is_some());
    state.reclaim(&unread);
    assert!(
        unread.0.get().is_none(),
        "no deadline anywhere, no clock read"
    );
    let _ = state.put(
        "",
        "t",
        Slot::Value(json!(2)),
        Some(Duration::from_secs(60)),
        &unread,
    );
    assert!(unread.0.get().is_some(), "a TTL needs the time");
}
