//! The `redis` block: each defect the configuration issue named has a regression test here.

use super::*;
use serde_json::{Value, json};
use std::path::Path;

fn parse_full(fields: Value) -> Result<(RedisConfig, storage_core::config::CommonSettings)> {
    let Value::Object(map) = fields else {
        unreachable!()
    };
    let mut block = BlockInput::new("storage.cache", map, Path::new("/base"));
    let c = RedisConfig::parse(&mut block)?;
    Ok((c, block.common().clone()))
}

fn parse(fields: Value) -> Result<RedisConfig> {
    parse_full(fields).map(|(c, _)| c)
}

fn err(fields: Value) -> String {
    parse(fields)
        .expect_err("must be rejected")
        .message()
        .to_string()
}

fn tls_of(c: &RedisConfig) -> Option<bool> {
    match c.info.addr() {
        ConnectionAddr::TcpTls { insecure, .. } => Some(*insecure),
        _ => None,
    }
}

/// Regression: `ssl: true` (or `{ ca }`) with a `redis://` URL connected in plaintext.
#[test]
fn ssl_with_a_plain_url_is_tls() {
    let c = parse(json!({"url": "redis://h:6379", "ssl": true})).unwrap();
    assert_eq!(tls_of(&c), Some(false), "verified TLS");
    let c = parse(json!({"url": "redis://h:6379", "ssl": {"ca": "ca.pem"}})).unwrap();
    assert_eq!(tls_of(&c), Some(false));
    assert_eq!(c.ca.as_deref(), Some(Path::new("/base/ca.pem")));
    let c = parse(json!({"host": "h", "ssl": {"ca": "/etc/ca.pem"}})).unwrap();
    assert_eq!(tls_of(&c), Some(false));
    assert_eq!(c.ca.as_deref(), Some(Path::new("/etc/ca.pem")));
    let c = parse(json!({"url": "rediss://h:6379"})).unwrap();
    assert_eq!(tls_of(&c), Some(false));
    let c = parse(json!({"url": "redis://h", "ssl": {"mode": "require"}})).unwrap();
    assert_eq!(tls_of(&c), Some(true), "encrypt without verifying");
    let c = parse(json!({"url": "redis://h"})).unwrap();
    assert_eq!(tls_of(&c), None);
    let e = err(json!({"url": "rediss://h", "ssl": false}));
    assert!(e.starts_with("storage.cache.ssl: TLS is turned off"), "{e}");
    let e = err(json!({"url": "unix:///tmp/r.sock", "ssl": true}));
    assert!(e.contains("Unix socket"), "{e}");
    let e = err(json!({"url": "redis://h", "ssl": {"mode": "require", "ca": "ca.pem"}}));
    assert!(e.contains("a CA file is given"), "{e}");
    let e = err(json!({"url": "redis://h", "ssl": {"mode": "prefer"}}));
    assert!(e.starts_with("storage.cache.ssl.mode: unknown mode"), "{e}");
}

#[test]
fn passwords_never_reach_descriptions_or_errors() {
    // Read as a URL, `/` ends the authority: refused, and not echoed.
    let e = err(json!({"url": "redis://:ab/cd@h:6379"}));
    assert!(e.contains("percent-encode"), "{e}");
    assert!(!e.contains("ab/cd") && !e.contains("cd@"), "{e}");
    let c = parse(json!({"url": "redis://:ab%2Fcd@h:6379"})).unwrap();
    assert_eq!(c.info.redis_settings().password(), Some("ab/cd"));
    let shown = format!("{} {:?}", c.describe(), c);
    assert!(
        !shown.contains("ab/cd") && !shown.contains("ab%2F"),
        "{shown}"
    );
    // A URL without a scheme is refused without being echoed.
    let e = err(json!({"url": ":hunter2@h:6379"}));
    assert!(
        e.starts_with("storage.cache.url: expected a redis://"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "{e}");
    let e = err(json!({"url": "redis://:hunter2@h:6379/notadb"}));
    assert!(!e.contains("hunter2"), "{e}");
    let c = parse(json!({"host": "h", "password": 123456})).unwrap();
    assert_eq!(c.info.redis_settings().password(), Some("123456"));
    assert!(!format!("{} {c:?}", c.describe()).contains("123456"));
    let e = err(json!({"host": "h", "password": true}));
    assert!(
        e.starts_with("storage.cache.password: expected a string"),
        "{e}"
    );
}

#[test]
fn fields_synonyms_and_options() {
    let (c, common) = parse_full(json!({
        "host": "h", "port": "6380", "database": 2, "username": "app",
        "retryDelayOnFailover": 250, "options": {"commandTimeout": 700, "maxRetriesPerRequest": 1}
    }))
    .unwrap();
    assert_eq!(c.describe(), "h:6380/2");
    assert_eq!(c.info.redis_settings().username(), Some("app"));
    assert_eq!(c.max_retries_per_request, 1);
    assert_eq!(common.retry_delay.as_millis(), 250);
    assert_eq!(common.operation_timeout.as_millis(), 700);
    // `url` wins over the host fields.
    let c = parse(json!({"url": "redis://u:6379/3", "host": "h"})).unwrap();
    assert_eq!(c.describe(), "u:6379/3");
    let e = err(json!({"host": "h", "options": {"commandTimeot": 5}}));
    assert!(
        e.starts_with("storage.cache.options.commandTimeot: unknown field"),
        "{e}"
    );
    let e = err(json!({"port": 6379}));
    assert!(e.contains("one of `url` or `host` is required"), "{e}");
    let e = err(json!({"host": "h", "port": 0}));
    assert!(e.starts_with("storage.cache.port"), "{e}");
}

/// Regression: the shared-namespace guard compared raw strings, so one server spelled three
/// ways was three servers to it.
#[test]
fn identity_is_normalised_by_the_driver() {
    let id = |v: Value| parse(v).unwrap().identity().unwrap();
    let a = id(json!({"url": "redis://localhost:6379"}));
    for same in [
        json!({"url": "redis://127.0.0.1:6379/0"}),
        json!({"host": "127.0.0.1", "port": 6379}),
        json!({"host": "localhost"}),
        json!({"url": "rediss://:pw@localhost"}),
    ] {
        assert!(a.overlaps(&id(same.clone())), "{same}: {a:?}");
    }
    for different in [
        json!({"url": "redis://localhost:6379/1"}),
        json!({"url": "redis://localhost:6380"}),
    ] {
        assert!(!a.overlaps(&id(different.clone())), "{different}");
    }
    assert!(a.prefixes_nest);
}

/// Regression: a negative database (`redis://h/-1`) or port 0 in a URL was accepted and failed
/// only at connect time, in an error that named no field; the host fields refused both.
#[test]
fn a_negative_database_or_port_zero_is_refused_in_every_form() {
    let e = err(json!({"url": "redis://:hunter2@h:6379/-1"}));
    assert_eq!(
        e, "storage.cache.url: database index -1 in the URL is negative",
        "{e}"
    );
    let e = err(json!({"url": "unix:///tmp/r.sock?db=-2"}));
    assert!(e.starts_with("storage.cache.url: database index -2"), "{e}");
    let e = err(json!({"nodes": ["redis://a:7000", "redis://b:7000/-1"], "cluster": true}));
    assert!(
        e.starts_with("storage.cache.nodes[1]: database index -1"),
        "{e}"
    );
    let e = err(json!({"host": "h", "database": -3}));
    assert!(e.starts_with("storage.cache.database:"), "{e}");
    assert!(e.contains("-3 is negative"), "{e}");
    let e = err(json!({"url": "redis://:hunter2@h:0"}));
    assert_eq!(e, "storage.cache.url: port 0 is not a port number");
    let e = err(json!({"url": "rediss://h:0/1"}));
    assert_eq!(e, "storage.cache.url: port 0 is not a port number");
    let c = parse(json!({"url": "redis://h:6379/15"})).unwrap();
    assert_eq!(c.describe(), "h:6379/15");
}

fn parse_as(role: Role, fields: Value) -> Result<RedisConfig> {
    let Value::Object(map) = fields else {
        unreachable!()
    };
    let mut block = BlockInput::new("storage.x", map, Path::new("/base"));
    block.set_role(role);
    RedisConfig::parse(&mut block)
}

/// What the mutation run found unpinned: the type name, `Debug`, `tls()`, the default retry
/// count, each form `describe` and `identity` take, and the schema.
#[test]
fn names_descriptions_and_identities_of_every_form() {
    let plain = parse(json!({"url": "redis://h:6379/2"})).unwrap();
    assert_eq!(plain.type_name(), "redis");
    assert!(!plain.tls());
    assert_eq!(plain.describe(), "h:6379/2");
    assert_eq!(plain.max_retries_per_request, 3, "the default");
    let debug = format!("{plain:?}");
    assert!(
        debug.starts_with("RedisConfig {") && debug.contains("h:6379/2"),
        "{debug}"
    );
    let tls = parse(json!({"url": "rediss://h:6380/0"})).unwrap();
    assert!(tls.tls());
    assert_eq!(tls.describe(), "h:6380/0 tls");
    let unix = parse(json!({"url": "unix:///tmp/r.sock?db=1"})).unwrap();
    assert_eq!(unix.describe(), "/tmp/r.sock/1");
    let id = unix.identity().unwrap();
    assert!(id.endpoints.contains("/tmp/r.sock"), "{id:?}");
    assert_eq!(id.scope, "1");
    let retries =
        parse(json!({"url": "redis://h", "options": {"maxRetriesPerRequest": 5}})).unwrap();
    assert_eq!(retries.max_retries_per_request, 5);
    let cluster =
        parse(json!({"cluster": true, "nodes": ["redis://a:7000", "redis://b:7001"]})).unwrap();
    assert_eq!(cluster.describe(), "cluster a:7000,b:7001");
    assert_eq!(cluster.cluster.as_ref().map(Vec::len), Some(2));
    let schema = schema();
    assert!(schema["properties"]["url"].is_object(), "{schema}");
    assert!(schema["properties"]["nodes"].is_object(), "{schema}");
}

/// The seed-node rules: given as `nodes` or one URL, never both; at least one; the first is
/// the connection info; database 0 only; one TLS mode and one set of credentials for all.
#[test]
fn cluster_seed_nodes_rules() {
    let c = parse(json!({"cluster": true, "nodes": ["redis://a:7000/0"]})).unwrap();
    assert_eq!(c.describe(), "cluster a:7000");
    assert!(matches!(c.info.addr(), ConnectionAddr::Tcp(h, 7000) if h == "a"));
    for (fields, says) in [
        (
            json!({"cluster": true, "nodes": ["redis://a"], "url": "redis://b"}),
            "not both",
        ),
        (
            json!({"cluster": true, "nodes": ["redis://a"], "host": "b"}),
            "not both",
        ),
        (json!({"cluster": true, "nodes": []}), "lists no node"),
        (
            json!({"cluster": true, "nodes": ["redis://a/1"]}),
            "only database 0",
        ),
        (
            json!({"cluster": true, "nodes": ["redis://a"], "database": 1}),
            "only database 0",
        ),
        (
            json!({"cluster": true, "nodes": ["redis://a", "rediss://b"]}),
            "one TLS mode",
        ),
        (
            json!({"cluster": true, "nodes": ["redis://:x@a", "redis://:y@b"]}),
            "same username and password",
        ),
        (
            json!({"cluster": true, "nodes": ["redis://u:x@a", "redis://v:x@b"]}),
            "same username and password",
        ),
    ] {
        let e = err(fields.clone());
        assert!(e.contains(says), "{fields}: {e}");
    }
    parse(json!({"cluster": true, "nodes": ["redis://:x@a", "redis://:x@b"], "database": 0}))
        .unwrap();
    // The database role keeps its namespace in one slot: it needs a keyPrefix; a cache does not.
    let e = parse_as(
        Role::Database,
        json!({"cluster": true, "nodes": ["redis://a"]}),
    )
    .expect_err("an empty keyPrefix")
    .to_string();
    assert!(e.contains("keyPrefix"), "{e}");
    parse_as(
        Role::Cache,
        json!({"cluster": true, "nodes": ["redis://a"]}),
    )
    .unwrap();
}

/// `#insecure` on a `rediss://` URL is kept when `ssl` is also given.
#[test]
fn an_insecure_url_stays_insecure_under_ssl() {
    let c = parse(json!({"url": "rediss://h:6379/#insecure", "ssl": true})).unwrap();
    assert_eq!(tls_of(&c), Some(true));
    let c = parse(json!({"url": "rediss://h:6379/", "ssl": true})).unwrap();
    assert_eq!(tls_of(&c), Some(false));
}

/// How long a lone operation polls for its reply: 100 µs unless given, 0 turns polling off,
/// and a spin long enough to hold a runtime thread is refused, naming the field.
#[test]
fn reply_spin_defaults_turns_off_and_is_bounded() {
    let default = parse(json!({"url": "redis://h"})).unwrap();
    assert_eq!(default.reply_spin, std::time::Duration::from_micros(100));
    let off = parse(json!({"url": "redis://h", "options": {"replySpinMicros": 0}})).unwrap();
    assert_eq!(off.reply_spin, std::time::Duration::ZERO);
    assert!(default.solo_connection);
    let pooled = parse(json!({"url": "redis://h", "options": {"soloConnection": false}})).unwrap();
    assert!(!pooled.solo_connection);
    let e = err(json!({"url": "redis://h", "options": {"replySpinMicros": 5000}}));
    assert!(
        e.starts_with("storage.cache.options.replySpinMicros: 5000 µs is too long"),
        "{e}"
    );
}
