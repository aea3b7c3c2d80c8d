//! Redis Cluster against real, private clusters of six nodes (three primaries, three
//! replicas): where keys land for each role, batches across slots, TLS, and a primary killed
//! under load. The conformance kit on a cluster is a line of the xtask matrix.

use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use storage_core::{Cache, CacheEntry, Database, ErrorKind};
use storage_servers::{RedisCluster, RedisOptions, TestCerts};

mod common;
use common::{private_cluster as cluster, registry};

fn config(
    cache: &str,
    database: &str,
) -> storage_core::Result<storage_core::config::StorageConfig> {
    let yaml = format!("cache: {cache}\ndatabase: {database}");
    storage_manager::config_file::from_yaml_str(&yaml, ".".as_ref())?.resolve(&registry())
}

async fn open_both(block: &str, prefix: &str) -> (Arc<dyn Cache>, Arc<dyn Database>) {
    let cache = format!("{{ {block}, keyPrefix: '{prefix}c:', fallback: [] }}");
    let database = format!("{{ {block}, keyPrefix: '{prefix}d:', fallback: [] }}");
    let config = config(&cache, &database).unwrap();
    let registry = registry();
    (
        registry.open_cache(&config.cache.primary).await.unwrap(),
        registry
            .open_database(&config.database.primary)
            .await
            .unwrap(),
    )
}

async fn raw(cluster: &RedisCluster) -> redis::cluster_async::ClusterConnection {
    redis::cluster::ClusterClient::new(vec![cluster.url()])
        .unwrap()
        .get_async_connection()
        .await
        .unwrap()
}

async fn slot_of(conn: &mut redis::cluster_async::ClusterConnection, key: &str) -> u16 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_namespace_is_one_slot_and_cache_keys_spread() {
    let Some(cluster) = cluster(
        "database_namespace_is_one_slot_and_cache_keys_spread",
        &Default::default(),
    ) else {
        return;
    };
    let block = format!("type: redis, cluster: true, url: '{}'", cluster.url());
    let (cache, db) = open_both(&block, "app:").await;
    let mut conn = raw(&cluster).await;

    // Database: every key and list of the namespace in the slot of its hash tag.
    let entries: Vec<(String, serde_json::Value)> =
        (0..200).map(|i| (format!("k{i}"), json!(i))).collect();
    db.mset(&entries).await.unwrap();
    db.append_many("chat", &[json!("a"), json!("b")])
        .await
        .unwrap();
    db.append("chat", &json!("c")).await.unwrap();
    let mut slots = BTreeSet::new();
    for i in 0..200 {
        slots.insert(slot_of(&mut conn, &format!("{{app:d:}}k{i}")).await);
    }
    slots.insert(slot_of(&mut conn, "{app:d:}chat").await);
    assert_eq!(slots.len(), 1, "database keys over slots {slots:?}");
    let stored: Option<String> = redis::cmd("GET")
        .arg("{app:d:}k7")
        .query_async(&mut conn)
        .await
        .unwrap();
    // A database value carries its version in front: 0x01, 16 hex digits, then the JSON.
    let stored = stored.as_deref().map(|s| s.get(17..).unwrap_or(s));
    assert_eq!(stored, Some("7"), "the stored key is {{prefix}}key");
    assert_eq!(db.keys(None).await.unwrap().len(), 201);
    assert_eq!(
        db.get_range("chat", 0, -1).await.unwrap(),
        vec![json!("a"), json!("b"), json!("c")]
    );
    db.trim("chat", 1, -1).await.unwrap();
    assert_eq!(db.get_length("chat").await.unwrap(), 2);

    // Cache: keys spread over slots and primaries; batches still read and write in order.
    let keys: Vec<String> = (0..300).map(|i| format!("s{i}")).collect();
    let batch: Vec<CacheEntry> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            CacheEntry::new(
                k.clone(),
                json!(i),
                (i % 2 == 0).then_some(Duration::from_secs(60)),
            )
        })
        .chain([CacheEntry::new("s0", json!("last"), None)])
        .collect();
    cache.mset(&batch).await.unwrap();
    let mut cache_slots = BTreeSet::new();
    for k in &keys {
        cache_slots.insert(slot_of(&mut conn, &format!("app:c:{k}")).await);
    }
    assert!(
        cache_slots.len() > 100,
        "cache keys in {} slots",
        cache_slots.len()
    );
    let mut asked = keys.clone();
    asked.insert(5, "missing".into());
    let got = cache.mget(&asked).await.unwrap();
    assert_eq!(
        got[0],
        Some(json!("last")),
        "the last of repeated keys wins"
    );
    assert_eq!(got[5], None);
    for (i, slot) in got.iter().enumerate().skip(1) {
        let expected = if i < 5 {
            i
        } else if i == 5 {
            continue;
        } else {
            i - 1
        };
        assert_eq!(slot, &Some(json!(expected)), "slot {i}");
    }
    assert!(matches!(
        cache.ttl("s2").await.unwrap(),
        storage_core::KeyTtl::ExpiresIn(_)
    ));
    assert_eq!(
        cache.ttl("s0").await.unwrap(),
        storage_core::KeyTtl::Persistent
    );
    let listed: BTreeSet<String> = cache.keys(None).await.unwrap().into_iter().collect();
    assert_eq!(
        listed,
        keys.iter().cloned().collect(),
        "keys from every primary"
    );
    assert!(cluster.primaries().len() == 3);

    // Each namespace's clear leaves the other's keys.
    cache.clear().await.unwrap();
    assert!(cache.keys(None).await.unwrap().is_empty());
    assert_eq!(db.keys(None).await.unwrap().len(), 201);
    db.clear().await.unwrap();
    assert!(db.keys(None).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_errors_name_the_field() {
    let url = "redis://127.0.0.1:7000";
    let cases = [
        (
            format!("{{ type: redis, cluster: true, url: '{url}' }}"),
            "storage.database.keyPrefix",
        ),
        (
            format!("{{ type: redis, nodes: ['{url}'], keyPrefix: 'a:' }}"),
            "storage.database.nodes",
        ),
        (
            format!("{{ type: redis, cluster: true, url: '{url}/2', keyPrefix: 'a:' }}"),
            "storage.database.url",
        ),
        (
            format!(
                "{{ type: redis, cluster: true, nodes: ['{url}', 'rediss://127.0.0.1:7001'], keyPrefix: 'a:' }}"
            ),
            "storage.database.nodes[1]",
        ),
        (
            "{ type: redis, cluster: true, nodes: [], keyPrefix: 'a:' }".to_string(),
            "storage.database.nodes",
        ),
        (
            format!("{{ type: redis, cluster: true, url: '{url}', keyPrefix: '}}x' }}"),
            "storage.database.keyPrefix",
        ),
    ];
    for (database, field) in cases {
        let e = config("{ type: in-memory }", &database).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration, "{database}: {e}");
        assert!(
            e.to_string().contains(field),
            "{database}: {e} does not name {field}"
        );
    }
    // The cache role spreads keys, so it needs no prefix; secrets stay out of descriptions.
    let config = config(
        "{ type: redis, cluster: true, nodes: ['redis://:s3cret@127.0.0.1:7000', 'redis://:s3cret@127.0.0.1:7001'] }",
        "{ type: in-memory }",
    )
    .unwrap();
    let described = config.cache.primary.to_string();
    assert!(
        described.contains("cluster 127.0.0.1:7000,127.0.0.1:7001"),
        "{described}"
    );
    assert!(!described.contains("s3cret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_over_tls_verifies_the_ca() {
    let certs = TestCerts::generate().unwrap();
    let options = RedisOptions {
        tls: Some(certs.server.clone()),
        ..Default::default()
    };
    let Some(cluster) = cluster("cluster_over_tls_verifies_the_ca", &options) else {
        return;
    };
    assert!(cluster.url().starts_with("rediss://"));
    let block = format!(
        "type: redis, cluster: true, url: '{}', ssl: {{ ca: '{}' }}",
        cluster.url(),
        certs.server.ca.display()
    );
    let (cache, db) = open_both(&block, "tls:").await;
    cache.set("k", &json!({"a": 1}), None).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), Some(json!({"a": 1})));
    db.append("l", &json!(1)).await.unwrap();
    assert_eq!(db.get_range("l", 0, -1).await.unwrap(), vec![json!(1)]);

    // Another CA: refused, never connected in the clear.
    let wrong = format!(
        "{{ type: redis, cluster: true, url: '{}', ssl: {{ ca: '{}' }}, keyPrefix: 'w:', fallback: [], connectionTimeoutMillis: 2000 }}",
        cluster.url(),
        certs.other_ca.display()
    );
    let config = config(&wrong, "{ type: in-memory }").unwrap();
    let e = registry()
        .open_cache(&config.cache.primary)
        .await
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout),
        "{e}"
    );
}

/// What the writer saw: acknowledged sets and appends, and when operations failed.
#[derive(Default)]
struct Load {
    sets: Vec<u64>,
    appends: Vec<u64>,
    errors: Vec<(Duration, String)>,
    successes: Vec<Duration>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_replaced_and_the_backend_recovers_without_reopening() {
    let Some(mut cluster) = cluster(
        "a_killed_primary_is_replaced_and_the_backend_recovers_without_reopening",
        &Default::default(),
    ) else {
        return;
    };
    let database = format!(
        "{{ type: redis, cluster: true, nodes: {:?}, keyPrefix: 'fo:', fallback: [], operationTimeoutMillis: 1000 }}",
        cluster.urls()
    );
    let config = config("{ type: in-memory }", &database).unwrap();
    let db = registry()
        .open_database(&config.database.primary)
        .await
        .unwrap();
    let victim = cluster
        .primary_of("{fo:}log")
        .expect("the namespace's primary");

    let started = std::time::Instant::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        tokio::spawn(async move {
            let mut load = Load::default();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let result = if i.is_multiple_of(2) {
                    db.set(&format!("v{i}"), &json!(i))
                        .await
                        .map(|_| load.sets.push(i))
                } else {
                    db.append("log", &json!(i))
                        .await
                        .map(|_| load.appends.push(i))
                };
                match result {
                    Ok(()) => load.successes.push(started.elapsed()),
                    Err(e) => load.errors.push((started.elapsed(), e.to_string())),
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            load
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed_at = started.elapsed();
    cluster.kill(victim);
    // Run until writes have gone through for two seconds after the last error, or 30 s.
    let bound = Duration::from_secs(15);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if started.elapsed() > killed_at + Duration::from_secs(30) {
            break;
        }
        let healthy = cluster.primary_of("{fo:}log").is_some_and(|p| p != victim);
        if healthy && started.elapsed() > killed_at + Duration::from_secs(8) {
            break;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let load = writer.await.unwrap();

    let first_error = load.errors.first().map(|(t, _)| *t);
    let last_error = load.errors.last().map(|(t, _)| *t);
    let recovered = load
        .successes
        .iter()
        .find(|t| last_error.is_none_or(|last| **t > last))
        .copied();
    let recovered_after = recovered.map(|t| t.saturating_sub(killed_at));
    // Everything acknowledged, read back through the same backend.
    let list: Vec<u64> = db
        .get_range("log", 0, -1)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let unique: BTreeSet<u64> = list.iter().copied().collect();
    let lost_appends = load.appends.iter().filter(|i| !unique.contains(i)).count();
    let mut lost_sets = 0;
    for i in &load.sets {
        if db.get(&format!("v{i}")).await.unwrap() != Some(json!(i)) {
            lost_sets += 1;
        }
    }
    eprintln!(
        "cluster failover: killed at {killed_at:?}; {} errors from {first_error:?} to {last_error:?}; \
         writes back {recovered_after:?} after the kill; acknowledged: {} sets, {} appends; \
         lost: {lost_sets} sets, {lost_appends} appends; first errors: {:?}",
        load.errors.len(),
        load.sets.len(),
        load.appends.len(),
        load.errors
            .iter()
            .take(3)
            .map(|(_, e)| e)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        unique.len(),
        list.len(),
        "an append was applied twice: {list:?}"
    );
    assert!(list.windows(2).all(|w| w[0] < w[1]), "appends out of order");
    assert!(
        list.iter().all(|i| i % 2 == 1),
        "only appended values are in the list"
    );
    let recovered_after = recovered_after.expect("writes succeeded after the failover");
    assert!(
        recovered_after < bound,
        "the backend recovered {recovered_after:?} after the kill; the bound is {bound:?}"
    );
    assert!(
        !load.successes.is_empty()
            && load.successes.last().unwrap() > &(killed_at + Duration::from_secs(2)),
        "writes go on after the failover"
    );
}

/// A database namespace's lists can be followed on a cluster: the list and the namespace's
/// list headers share the namespace's slot, so the append, trim and window scripts run there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_followed_on_a_cluster() {
    let Some(c) = cluster("lists_are_followed_on_a_cluster", &RedisOptions::default()) else {
        return;
    };
    let block = format!("type: redis, cluster: true, url: '{}'", c.url());
    let (_, db) = open_both(&block, "tail:").await;
    let items: Vec<_> = (0..6).map(|i| json!(i)).collect();
    db.append_many("chat", &items).await.unwrap();
    db.trim("chat", 2, -1).await.unwrap();
    let window = db.list_window("chat", 0, 10).await.unwrap();
    assert_eq!((window.first, window.next), (2, 6));
    assert_eq!(window.items, items[2..]);
    assert_ne!(window.generation, 0);
    let mut tail = storage_core::feed::Tail::new(db.clone(), "chat", 4);
    db.append("chat", &json!(6)).await.unwrap();
    for i in 4..7 {
        let item = tokio::time::timeout(Duration::from_secs(10), tail.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!((item.index, item.value), (i, json!(i)));
    }
    // The headers' hash is not a caller's key.
    assert_eq!(db.keys(None).await.unwrap(), vec!["chat".to_string()]);
}
