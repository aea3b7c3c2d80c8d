//! PostgreSQL on a least-privilege role: an application role with no right to create connects
//! and fails with an error that says to run `storage init` as the owner; once the owner has
//! applied the DDL the backend prints (`schema_ddl`, what `storage init --print-sql` prints)
//! and granted only `USAGE` on the schema, `SELECT, INSERT, UPDATE, DELETE` on its tables and
//! `USAGE` on its sequences, every operation works, the change log included, and the role
//! still cannot change the schema.

use serde_json::json;
use std::sync::Arc;
use storage_core::watch::ChangeKind;
use storage_core::{Database, ErrorKind};

// A server URL: the shared one, or a private server kept alive by the returned guard.
mod common;
use storage_servers::test_postgres as server;

/// Opens the database role of a PostgreSQL block (both roles on PostgreSQL, apart by prefix).
async fn open(block: &str) -> storage_core::Result<Arc<dyn Database>> {
    let yaml = format!(
        "database: {block}\ncache: {{ type: postgresql, url: 'postgres://unused@127.0.0.1:1/x', keyPrefix: 'c:' }}"
    );
    let (registry, config) = common::resolved(&yaml)?;
    registry.open_database(&config.database.primary).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_may_not_create_works_once_the_owner_ran_init() {
    let Some((_guard, owner_url)) =
        server("a_role_that_may_not_create_works_once_the_owner_ran_init")
    else {
        return;
    };
    let (owner, connection) = tokio_postgres::connect(&owner_url, tokio_postgres::NoTls)
        .await
        .expect("connect as the owner");
    tokio::spawn(connection);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let schema = format!("lp_{}_{nanos}", std::process::id());
    let role = format!("{schema}_app");
    owner
        .batch_execute(&format!("CREATE ROLE {role} LOGIN"))
        .await
        .unwrap();
    let mut app_url = url::Url::parse(&owner_url).unwrap();
    app_url.set_username(&role).unwrap();
    let app_block =
        format!("{{ type: postgresql, url: '{app_url}', schema: {schema}, keyPrefix: 'app:' }}");

    // Before the owner ran init: a clear error, not a permission error from the middle of DDL.
    let e = open(&app_block).await.expect_err("no schema yet");
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    let said = e.to_string();
    assert!(
        said.contains("missing or older than this build needs"),
        "{said}"
    );
    assert!(
        said.contains("run `storage init` with the owner's credentials"),
        "{said}"
    );
    assert!(said.contains(&format!("in schema {schema}")), "{said}");

    // The owner applies what `storage init --print-sql` prints, as printed.
    let owner_block =
        format!("{{ type: postgresql, url: '{owner_url}', schema: {schema}, keyPrefix: 'app:' }}");
    let yaml = format!(
        "database: {owner_block}\ncache: {{ type: postgresql, url: 'postgres://unused@127.0.0.1:1/x', keyPrefix: 'c:' }}"
    );
    let (_, config) = common::resolved(&yaml).unwrap();
    let ddl = config
        .database
        .primary
        .config
        .schema_ddl()
        .expect("PostgreSQL prints its DDL");
    owner
        .batch_execute(&ddl)
        .await
        .expect("the printed DDL applies as is");
    // The tables exist, but the role has no grant yet: it is told which.
    let e = open(&app_block).await.expect_err("no grant yet");
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(
        e.to_string()
            .contains("grant this role USAGE on the schema"),
        "{e}"
    );

    owner
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA {schema} TO {role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role};
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {role};"
        ))
        .await
        .unwrap();
    let db = open(&app_block)
        .await
        .expect("the least-privilege role connects");
    let start = db.changes(None, 0).await.unwrap().next;
    db.set("profile", &json!({"name": "ada"})).await.unwrap();
    assert_eq!(
        db.get("profile").await.unwrap(),
        Some(json!({"name": "ada"}))
    );
    db.append("chat", &json!("hi")).await.unwrap();
    db.append("chat", &json!("there")).await.unwrap();
    assert_eq!(
        db.get_range("chat", 0, -1).await.unwrap(),
        vec![json!("hi"), json!("there")]
    );
    db.trim("chat", -1, -1).await.unwrap();
    let (_, version) = db
        .get_versioned("profile")
        .await
        .unwrap()
        .expect("a versioned value");
    db.set_if(
        "profile",
        &json!(2),
        &storage_core::Condition::Version(version),
    )
    .await
    .unwrap();
    assert!(db.delete("profile").await.unwrap());
    let window = db.changes(Some(start), 100).await.unwrap();
    let kinds: Vec<ChangeKind> = window.changes.iter().map(|c| c.kind).collect();
    assert!(
        kinds.contains(&ChangeKind::Delete),
        "the change log works: {kinds:?}"
    );
    db.clear().await.unwrap();
    assert!(db.keys(None).await.unwrap().is_empty());

    // And it may still not change the schema.
    let (app, connection) = tokio_postgres::connect(app_url.as_str(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let e = app
        .batch_execute(&format!("DROP TABLE {schema}.storage_kv"))
        .await
        .expect_err("the role may not drop the table");
    assert_eq!(
        e.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    drop(db);
    owner
        .batch_execute(&format!(
            "DROP SCHEMA {schema} CASCADE; DROP OWNED BY {role}; DROP ROLE {role};"
        ))
        .await
        .unwrap();
}
