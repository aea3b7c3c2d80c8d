//! Redis over TLS (`rediss://`) against a TLS-only server started with certificates made for
//! this run.

use std::sync::Arc;
use storage_core::{Database, Result};
use storage_servers::{Redis, RedisOptions, TestCerts, find_redis_server, skip_or_fail};

mod common;

fn tls_server(test: &str) -> Option<(TestCerts, Redis)> {
    if find_redis_server().is_none() {
        skip_or_fail(test, "redis-server not found");
        return None;
    }
    let certs = TestCerts::generate().unwrap();
    let redis = Redis::start(&RedisOptions {
        tls: Some(certs.server.clone()),
        ..Default::default()
    })
    .unwrap();
    Some((certs, redis))
}

async fn open(block: &str) -> Result<Arc<dyn Database>> {
    let registry = common::registry();
    let yaml = format!("database: {block}\ncache: {{ type: in-memory }}");
    let config =
        storage_manager::config_file::from_yaml_str(&yaml, ".".as_ref())?.resolve(&registry)?;
    registry.open_database(&config.database.primary).await
}

const FAST: &str = "maxRetries: 0, connectionTimeoutMillis: 2000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_rediss_with_the_right_ca_works() {
    let Some((certs, redis)) = tls_server("tls_rediss_with_the_right_ca_works") else {
        return;
    };
    assert!(redis.url().starts_with("rediss://"));
    let ca = certs.server.ca.display();
    let db = open(&format!(
        "{{ type: redis, url: '{}', ssl: {{ ca: '{ca}' }}, {FAST} }}",
        redis.url()
    ))
    .await
    .unwrap();
    db.append("l", &serde_json::json!(1)).await.unwrap();
    assert_eq!(db.get_length("l").await.unwrap(), 1);
    // The host form with `ssl`, by name.
    let db = open(&format!(
        "{{ type: redis, host: localhost, port: {}, ssl: {{ ca: '{ca}' }}, {FAST} }}",
        redis.port()
    ))
    .await
    .unwrap();
    assert_eq!(db.get_length("l").await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_rediss_with_a_wrong_ca_is_refused() {
    let Some((certs, redis)) = tls_server("tls_rediss_with_a_wrong_ca_is_refused") else {
        return;
    };
    let err = open(&format!(
        "{{ type: redis, url: '{}', ssl: {{ ca: '{}' }}, {FAST} }}",
        redis.url(),
        certs.other_ca.display()
    ))
    .await
    .expect_err("an unrelated CA must be refused");
    assert!(
        err.is_temporary() || err.to_string().contains("certificate"),
        "{err}"
    );
    // Plain text against the TLS-only port is refused too.
    let plain = redis.url().replace("rediss://", "redis://");
    assert!(
        open(&format!("{{ type: redis, url: '{plain}', {FAST} }}"))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_redis_password_never_appears_in_errors() {
    let Some((certs, redis)) = tls_server("tls_redis_password_never_appears_in_errors") else {
        return;
    };
    let url = redis
        .url()
        .replace("rediss://", "rediss://:Red1s-Secret-pw@");
    let err = open(&format!(
        "{{ type: redis, url: '{url}', ssl: {{ ca: '{}' }}, {FAST} }}",
        certs.other_ca.display()
    ))
    .await
    .expect_err("wrong CA");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("Red1s-Secret-pw"), "{text}");
}

/// Regression: `ssl: true` or `ssl: { ca }` with a `redis://` URL connected in plaintext. TLS
/// asked for in any spelling is TLS, and the CA given is the one used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_ssl_field_upgrades_a_plain_redis_url() {
    let Some((certs, redis)) = tls_server("tls_ssl_field_upgrades_a_plain_redis_url") else {
        return;
    };
    // `localhost` is the name in the server's certificate.
    let plain = format!("redis://localhost:{}", redis.port());
    let ca = certs.server.ca.display();
    let db = open(&format!(
        "{{ type: redis, url: '{plain}', ssl: {{ ca: '{ca}' }}, {FAST} }}"
    ))
    .await
    .expect("ssl: { ca } with redis:// must speak TLS to a TLS-only server");
    db.append("upgraded", &serde_json::json!(1)).await.unwrap();
    assert_eq!(db.get_length("upgraded").await.unwrap(), 1);
    // The CA given is the one trusted: an unrelated CA is refused.
    let other = certs.other_ca.display();
    assert!(
        open(&format!(
            "{{ type: redis, url: '{plain}', ssl: {{ ca: '{other}' }}, {FAST} }}"
        ))
        .await
        .is_err()
    );
    // `ssl: true` trusts only the system's roots, which did not sign this server's certificate:
    // refused, where plaintext would have been refused differently. `mode: require` encrypts
    // without verifying, and works.
    assert!(
        open(&format!(
            "{{ type: redis, url: '{plain}', ssl: true, {FAST} }}"
        ))
        .await
        .is_err()
    );
    let db = open(&format!(
        "{{ type: redis, url: '{plain}', ssl: {{ mode: require }}, {FAST} }}"
    ))
    .await
    .expect("ssl: { mode: require } encrypts without verifying");
    assert_eq!(db.get_length("upgraded").await.unwrap(), 1);
}
