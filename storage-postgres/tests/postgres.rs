//! PostgreSQL against real servers: many instances, a restart, namespaces, and query plans.
//!
//! The shared server comes from `STORAGE_TEST_POSTGRES_URL` (set by `cargo xtask test`);
//! without it, each test starts a private server. The restart test always uses its own.

use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use storage_core::{Database, ErrorKind, KeyKind, Registry};
mod common;
use storage_servers::find_postgres_bin;

// A server URL: the shared one, or a private server kept alive by the returned guard.
use storage_servers::test_postgres as server;

fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}:{}:{nanos}:", std::process::id())
}

/// A registry with PostgreSQL (and a stand-in for the cache role's type), and the
/// configuration of `database`, a block for the database role.
fn resolve(database: &str) -> (Registry, storage_core::config::StorageConfig) {
    let yaml = format!("database: {database}\ncache: {{ type: in-memory }}");
    let mut registry = Registry::new();
    registry
        .register(Arc::new(storage_postgres::PostgresFactory::new()))
        .unwrap();
    registry
        .register(Arc::new(storage_memory_stub::Memory))
        .unwrap();
    let config = storage_manager::config_file::from_yaml_str(&yaml, ".".as_ref())
        .unwrap()
        .resolve(&registry)
        .unwrap();
    (registry, config)
}

async fn open(url: &str, extra: &str) -> Arc<dyn Database> {
    let (registry, config) = resolve(&format!("{{ type: postgresql, url: '{url}', {extra} }}"));
    registry
        .open_database(&config.database.primary)
        .await
        .unwrap()
}

/// The config parser needs the cache role's type registered; these tests never open it.
mod storage_memory_stub {
    use storage_core::config::Role;
    pub struct Memory;
    #[async_trait::async_trait]
    impl storage_core::BackendFactory for Memory {
        fn type_names(&self) -> Vec<String> {
            vec!["in-memory".into()]
        }
        fn roles(&self) -> Vec<Role> {
            vec![]
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_instances_append_while_sets_and_deletes_contend() {
    let Some((_guard, url)) = server("four_instances_append_while_sets_and_deletes_contend") else {
        return;
    };
    let prefix = unique("multi");
    let mut instances = Vec::new();
    for _ in 0..4 {
        instances.push(open(&url, &format!("keyPrefix: '{prefix}', maxConnections: 4")).await);
    }
    let mut tasks = Vec::new();
    for (w, db) in instances.iter().enumerate() {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..1000 {
                db.append("chat", &json!({"w": w, "i": i})).await.unwrap();
            }
        }));
        let db = instances[w].clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..150 {
                let key = format!("shared{}", i % 3);
                let r = match (w + i) % 3 {
                    0 => db.set(&key, &json!([w, i])).await,
                    1 => db.append(&key, &json!([w, i])).await,
                    _ => db.delete(&key).await.map(|_| ()),
                };
                if let Err(e) = r {
                    assert_eq!(e.kind(), ErrorKind::WrongType, "{e}");
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let db = &instances[0];
    let items = db.get_range("chat", 0, -1).await.unwrap();
    assert_eq!(items.len(), 4000);
    assert_eq!(db.get_length("chat").await.unwrap(), 4000);
    let unique_items: BTreeSet<String> = items.iter().map(|v| v.to_string()).collect();
    assert_eq!(unique_items.len(), 4000, "duplicates");
    for w in 0..4 {
        let mine: Vec<i64> = items
            .iter()
            .filter(|v| v["w"] == json!(w))
            .map(|v| v["i"].as_i64().unwrap())
            .collect();
        assert_eq!(mine, (0..1000).collect::<Vec<_>>(), "writer {w}'s order");
    }
    // The server's own view: a dense sequence 0..3999 under the key.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT count(*), min(seq), max(seq), count(DISTINCT seq) FROM storage_list_items WHERE ns = $1 AND key = 'chat'",
            &[&prefix],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2),
            row.get::<_, i64>(3)
        ),
        (4000, 0, 3999, 4000)
    );
    // Never both kinds under one key.
    for i in 0..3 {
        let key = format!("shared{i}");
        match db.kind(&key).await.unwrap() {
            KeyKind::None => {}
            KeyKind::Value => {
                assert!(db.get(&key).await.unwrap().is_some());
                assert_eq!(
                    db.get_length(&key).await.unwrap_err().kind(),
                    ErrorKind::WrongType
                );
            }
            KeyKind::List => {
                assert_eq!(db.get(&key).await.unwrap_err().kind(), ErrorKind::WrongType);
                let n = db.get_length(&key).await.unwrap();
                assert_eq!(db.get_range(&key, 0, -1).await.unwrap().len() as u64, n);
            }
        }
    }
    db.clear().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_of_one_namespace_leaves_the_other_whole() {
    let Some((_guard, url)) = server("clear_of_one_namespace_leaves_the_other_whole") else {
        return;
    };
    let base = unique("ns");
    let a = open(&url, &format!("keyPrefix: '{base}a'")).await;
    let ab = open(&url, &format!("keyPrefix: '{base}ab'")).await;
    for i in 0..20 {
        a.set(&format!("b{i}"), &json!(i)).await.unwrap();
        ab.set(&format!("{i}"), &json!(i)).await.unwrap();
        ab.append("list", &json!(i)).await.unwrap();
    }
    a.clear().await.unwrap();
    assert!(a.keys(None).await.unwrap().is_empty());
    assert_eq!(ab.keys(None).await.unwrap().len(), 21);
    assert_eq!(ab.get_length("list").await.unwrap(), 20);
    ab.clear().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_use_indexes() {
    let Some((_guard, url)) = server("statements_use_indexes") else {
        return;
    };
    let schema = format!("plans_{}", std::process::id());
    let db = open(&url, &format!("schema: {schema}")).await;
    // 20,000 keys, of which 100 start with "p:": a range scan is the planner's only good choice.
    let entries: Vec<(String, serde_json::Value)> = (0..20_000)
        .map(|i| {
            (
                if i % 200 == 0 {
                    format!("p:{i}")
                } else {
                    format!("k{i}")
                },
                json!(i),
            )
        })
        .collect();
    for chunk in entries.chunks(5000) {
        db.mset(chunk).await.unwrap();
    }
    for i in 0..300 {
        db.append("h", &json!(i)).await.unwrap();
    }
    // A long list beside them: an mset must not scan its items.
    let items: Vec<serde_json::Value> = (0..20_000).map(|i| json!(i)).collect();
    db.append_many("long", &items).await.unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "ANALYZE {schema}.storage_kv; ANALYZE {schema}.storage_list_items;"
        ))
        .await
        .unwrap();
    let fill = |t: &str| {
        t.replace("{kv}", &format!("{schema}.storage_kv"))
            .replace("{items}", &format!("{schema}.storage_list_items"))
            .replace("{now}", storage_postgres::sql::NOW_MS)
    };
    let plan = |rows: Vec<tokio_postgres::Row>| {
        rows.iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let ns = String::new();
    let keys = plan(
        client
            .query(
                &format!("EXPLAIN {}", fill(storage_postgres::sql::KEYS_RANGE)),
                &[&ns, &"p:", &"p;"],
            )
            .await
            .unwrap(),
    );
    let header = plan(
        client
            .query(
                &format!("EXPLAIN {}", fill(storage_postgres::sql::HEADER)),
                &[&ns, &"h"],
            )
            .await
            .unwrap(),
    );
    let range = plan(
        client
            .query(
                &format!("EXPLAIN {}", fill(storage_postgres::sql::RANGE)),
                &[&ns, &"h", &-20i64, &-1i64],
            )
            .await
            .unwrap(),
    );
    let batch: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    let values: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let ttls: Vec<Option<i64>> = vec![None; 100];
    let versions: Vec<i64> = (1..=100).collect();
    let mset = plan(
        client
            .query(
                &format!("EXPLAIN {}", fill(storage_postgres::sql::MSET)),
                &[&ns, &batch, &values, &ttls, &versions],
            )
            .await
            .unwrap(),
    );
    // A conditional write finds its row by the primary key, like every other write.
    let set_if = plan(
        client
            .query(
                &format!("EXPLAIN {}", fill(storage_postgres::sql::SET_IF_VERSION)),
                &[&ns, &"k1", &"1", &2i64, &1i64],
            )
            .await
            .unwrap(),
    );
    let delete_if = plan(
        client
            .query(
                &format!("EXPLAIN {}", fill(storage_postgres::sql::DELETE_IF_VERSION)),
                &[&ns, &"k1", &1i64],
            )
            .await
            .unwrap(),
    );
    assert!(!mset.contains("Seq Scan"), "mset:\n{mset}");
    for (name, p) in [
        ("keys(prefix*)", keys),
        ("get_length", header),
        ("tail read", range),
        ("set_if", set_if),
        ("delete_if", delete_if),
    ] {
        assert!(p.contains("Index"), "{name}:\n{p}");
        assert!(!p.contains("Seq Scan"), "{name}:\n{p}");
    }
    // Statements are prepared once per pooled connection, so after five executions the server
    // may switch to a generic plan, which knows neither the namespace nor the batch: the
    // batches must keep their index plans then too (a scan per batch was the cost before).
    client
        .batch_execute(&format!(
            "SET plan_cache_mode = force_generic_plan; PREPARE mget AS {}; PREPARE mset AS {};",
            fill(storage_postgres::sql::MGET),
            fill(storage_postgres::sql::MSET)
        ))
        .await
        .unwrap();
    // EXECUTE takes no bind parameters: the batch goes in as literals (plain ASCII here).
    let array = |items: &[String], ty: &str| {
        let quoted: Vec<String> = items.iter().map(|i| format!("'{i}'")).collect();
        format!("ARRAY[{}]::{ty}[]", quoted.join(","))
    };
    let generic_mget = plan(
        client
            .query(
                &format!("EXPLAIN EXECUTE mget('', {})", array(&batch, "text")),
                &[],
            )
            .await
            .unwrap(),
    );
    let no_ttls = vec!["NULL"; ttls.len()].join(",");
    let some_versions = vec!["1"; ttls.len()].join(",");
    let generic_mset = plan(
        client
            .query(
                &format!(
                    "EXPLAIN EXECUTE mset('', {}, {}, ARRAY[{no_ttls}]::bigint[], ARRAY[{some_versions}]::bigint[])",
                    array(&batch, "text"),
                    array(&values, "text"),
                ),
                &[],
            )
            .await
            .unwrap(),
    );
    for (name, p) in [
        ("mget (generic)", generic_mget),
        ("mset (generic)", generic_mset),
    ] {
        assert!(p.contains("Index"), "{name}:\n{p}");
        assert!(!p.contains("Seq Scan"), "{name}:\n{p}");
    }
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_schema_version_is_refused() {
    let Some((_guard, url)) = server("newer_schema_version_is_refused") else {
        return;
    };
    let schema = format!("future_{}", std::process::id());
    drop(open(&url, &format!("schema: {schema}")).await);
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("UPDATE {schema}.storage_meta SET version = 99"))
        .await
        .unwrap();
    let yaml = format!("database: {{ type: postgresql, url: '{url}', schema: {schema} }}");
    let mut registry = Registry::new();
    registry
        .register(Arc::new(storage_postgres::PostgresFactory::new()))
        .unwrap();
    registry
        .register(Arc::new(storage_memory_stub::Memory))
        .unwrap();
    let config = storage_manager::config_file::from_yaml_str(
        &format!("{yaml}\ncache: {{ type: in-memory }}"),
        ".".as_ref(),
    )
    .unwrap()
    .resolve(&registry)
    .unwrap();
    let err = registry
        .open_database(&config.database.primary)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("newer than this build supports"),
        "{err}"
    );
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// A cache that only writes TTL'd keys stays bounded: 10,000 rows with a 50 ms TTL are gone
/// from the table once later writes run, without anyone reading them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_rows_are_reclaimed_without_reads() {
    let Some((_guard, url)) = server("expired_rows_are_reclaimed_without_reads") else {
        return;
    };
    let schema = format!("ttl_{}", std::process::id());
    let yaml = format!(
        "cache: {{ type: postgresql, url: '{url}', schema: {schema} }}\ndatabase: {{ type: postgresql, url: '{url}', schema: {schema}, keyPrefix: 'db:' }}"
    );
    let (registry, config) = common::resolved(&yaml).unwrap();
    let cache = registry.open_cache(&config.cache.primary).await.unwrap();
    let ttl = Some(std::time::Duration::from_millis(50));
    let batch: Vec<storage_core::CacheEntry> = (0..10_000)
        .map(|i| storage_core::CacheEntry::new(format!("k{i}"), json!(i), ttl))
        .collect();
    cache.mset(&batch).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    // Later writes of other TTL'd keys reclaim (every 128th write sweeps).
    for i in 0..256 {
        cache
            .set(&format!("later{i}"), &json!(i), ttl)
            .await
            .unwrap();
    }
    let out = std::process::Command::new(find_postgres_bin().unwrap().join("psql"))
        .args(["-X", "-tA", "-d", &url, "-c"])
        .arg(format!("SELECT count(*) FROM {schema}.storage_kv"))
        .output()
        .unwrap();
    let rows: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(rows <= 256, "{rows} rows left of 10,256 written");
    cache.close().await.unwrap();
}

/// Regression: a refused connection said only "connection error: connecting" or "error
/// connecting to server"; the operating system's reason under the driver's error was lost.
/// Nothing listens on the port, so nothing was sent: the outcome is "not applied".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_names_its_cause_and_applied_nothing() {
    let port = storage_servers::free_port().unwrap();
    let (registry, config) = resolve(&format!(
        "{{ type: postgresql, url: 'postgresql://postgres@127.0.0.1:{port}/postgres', connectionTimeoutMillis: 2000 }}"
    ));
    let Err(e) = registry.open_database(&config.database.primary).await else {
        panic!("connected to a port nothing listens on");
    };
    let shown = e.to_string();
    assert_eq!(e.kind(), ErrorKind::Connection, "{shown}");
    assert!(shown.to_lowercase().contains("refused"), "{shown}");
    assert_eq!(e.outcome(), storage_core::Outcome::NotApplied, "{shown}");
}

/// A statement the server cancels itself (its `statement_timeout` passed while another session
/// held the key's row lock) is a timeout that applied nothing, and the value stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_the_server_cancels_is_a_timeout_that_applied_nothing() {
    let Some((_guard, url)) = server("a_statement_the_server_cancels") else {
        return;
    };
    let ns = unique("cancel");
    let db = open(
        &url,
        &format!("keyPrefix: '{ns}', options: {{ statement_timeout: 300 }}"),
    )
    .await;
    db.set("k", &json!("before")).await.unwrap();
    let (holder, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    holder.batch_execute("BEGIN").await.unwrap();
    holder
        .execute(
            "SELECT 1 FROM storage_kv WHERE ns = $1 AND key = 'k' FOR UPDATE",
            &[&ns],
        )
        .await
        .unwrap();
    let e = db.set("k", &json!("after")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_eq!(e.outcome(), storage_core::Outcome::NotApplied, "{e}");
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(db.get("k").await.unwrap(), Some(json!("before")));
}

/// A database that does not exist is a configuration error naming it so, not a connection
/// error to retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_does_not_exist_is_a_configuration_error() {
    let Some((_guard, url)) = server("a_database_that_does_not_exist") else {
        return;
    };
    let (base, _) = url.rsplit_once('/').unwrap();
    let (registry, config) = resolve(&format!(
        "{{ type: postgresql, url: '{base}/storage_no_such_database' }}"
    ));
    let Err(e) = registry.open_database(&config.database.primary).await else {
        panic!("connected to a database that does not exist");
    };
    assert_eq!(e.kind(), ErrorKind::Configuration, "{e}");
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert!(!e.is_temporary(), "{e}");
}

/// A role the server does not know (SQLSTATE 28000) is refused credentials: an
/// authentication error, never retried nor fallen back past.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_role_is_an_authentication_error() {
    let Some((_guard, url)) = server("an_unknown_role") else {
        return;
    };
    let unknown = url.replacen("postgres@", "storage_no_such_role@", 1);
    assert_ne!(unknown, url, "the URL names its user: {url}");
    let (registry, config) = resolve(&format!("{{ type: postgresql, url: '{unknown}' }}"));
    let Err(e) = registry.open_database(&config.database.primary).await else {
        panic!("connected as a role that does not exist");
    };
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert!(!e.is_temporary(), "{e}");
}
