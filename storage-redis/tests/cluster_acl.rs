//! The ACL rules `storage acl` prints, on a Redis Cluster: users made from them on every node
//! (the cache's rules cover its prefix, the database's its hash tag `{prefix}`) run every kind
//! of operation of both roles, and no node logs a refused command or key.

use serde_json::json;
use std::sync::Arc;
use storage_core::Registry;
use storage_core::config::Role;
use storage_servers::{RedisCluster, find_redis_server, skip_or_fail};

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .register(Arc::new(storage_redis::RedisFactory::new()))
        .unwrap();
    registry
}

fn config(cache: &str, database: &str) -> storage_core::config::StorageConfig {
    let yaml = format!("cache: {cache}\ndatabase: {database}");
    storage_manager::config_file::from_yaml_str(&yaml, ".".as_ref())
        .unwrap()
        .resolve(&registry())
        .unwrap()
}

async fn on_every_node(cluster: &RedisCluster, args: &[String]) -> Vec<redis::Value> {
    let mut replies = Vec::new();
    for url in cluster.urls() {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let mut cmd = redis::cmd(&args[0]);
        for arg in &args[1..] {
            cmd.arg(arg);
        }
        replies.push(cmd.query_async(&mut conn).await.unwrap());
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_from_the_printed_rules_run_both_roles_on_a_cluster() {
    if find_redis_server().is_none() {
        return skip_or_fail(
            "users_from_the_printed_rules_run_both_roles_on_a_cluster",
            "redis-server not found",
        );
    }
    let cluster = RedisCluster::start(&Default::default()).expect("start a Redis Cluster");
    let seed = cluster.url();
    let port = seed.rsplit(':').next().unwrap().to_string();
    let plain = config(
        &format!("{{ type: redis, cluster: true, url: '{seed}', keyPrefix: 'acl:c:' }}"),
        &format!("{{ type: redis, cluster: true, url: '{seed}', keyPrefix: 'acl:d:' }}"),
    );
    for (user, role, spec) in [
        ("storage_c", Role::Cache, &plain.cache.primary),
        ("storage_d", Role::Database, &plain.database.primary),
    ] {
        let rules = spec
            .config
            .access_rules(role, &spec.common.key_prefix)
            .expect("Redis has rules");
        if role == Role::Database {
            assert!(rules.contains("~{acl:d:}*"), "the hash tag: {rules}");
        }
        let mut args: Vec<String> = ["ACL", "SETUSER", user, "reset", "on", ">acl-pw"]
            .map(String::from)
            .to_vec();
        args.extend(rules.split_whitespace().map(String::from));
        on_every_node(&cluster, &args).await;
    }
    on_every_node(&cluster, &["ACL".into(), "LOG".into(), "RESET".into()]).await;

    let limited = config(
        &format!(
            "{{ type: redis, cluster: true, url: 'redis://storage_c:acl-pw@127.0.0.1:{port}', keyPrefix: 'acl:c:' }}"
        ),
        &format!(
            "{{ type: redis, cluster: true, url: 'redis://storage_d:acl-pw@127.0.0.1:{port}', keyPrefix: 'acl:d:' }}"
        ),
    );
    let registry = registry();
    let cache = registry.open_cache(&limited.cache.primary).await.unwrap();
    let db = registry
        .open_database(&limited.database.primary)
        .await
        .unwrap();
    for i in 0..20 {
        cache
            .set(
                &format!("k{i}"),
                &json!(i),
                Some(std::time::Duration::from_secs(60)),
            )
            .await
            .unwrap();
    }
    assert_eq!(cache.get("k3").await.unwrap(), Some(json!(3)));
    assert_eq!(cache.keys(None).await.unwrap().len(), 20);
    assert!(cache.delete("k3").await.unwrap());
    cache.clear().await.unwrap();

    let start = db.changes(None, 0).await.unwrap().next;
    db.mset(&[("a".into(), json!(1)), ("b".into(), json!(2))])
        .await
        .unwrap();
    db.append("chat", &json!("hi")).await.unwrap();
    db.append("chat", &json!("there")).await.unwrap();
    db.trim("chat", -1, -1).await.unwrap();
    assert_eq!(
        db.get_range("chat", 0, -1).await.unwrap(),
        vec![json!("there")]
    );
    let (_, version) = db.get_versioned("a").await.unwrap().unwrap();
    db.set_if("a", &json!(3), &storage_core::Condition::Version(version))
        .await
        .unwrap();
    assert!(db.changes(Some(start), 100).await.unwrap().changes.len() >= 3);
    assert_eq!(db.keys(None).await.unwrap().len(), 3);
    db.clear().await.unwrap();

    for log in on_every_node(&cluster, &["ACL".into(), "LOG".into()]).await {
        assert_eq!(log, redis::Value::Array(vec![]), "a node refused something");
    }
}
