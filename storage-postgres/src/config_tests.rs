//! The `postgresql` block: each defect the configuration issue named has a regression test
//! here, named after what it guards.

use super::*;
use serde_json::{Value, json};
use std::path::Path;

fn parse(fields: Value) -> Result<PostgresConfig> {
    let Value::Object(map) = fields else {
        unreachable!()
    };
    PostgresConfig::parse(&BlockInput::new(
        "storage.database",
        map,
        Path::new("/base"),
    ))
}

fn err(fields: Value) -> String {
    parse(fields)
        .expect_err("must be rejected")
        .message()
        .to_string()
}

#[test]
fn key_value_sslmode_is_honoured() {
    let c = parse(json!({"connectionString": "host=h user=u dbname=d sslmode=require"})).unwrap();
    assert_eq!(c.ssl.mode, SslMode::Require);
    assert_eq!(
        c.driver.get_ssl_mode(),
        tokio_postgres::config::SslMode::Require
    );
    let c = parse(json!({"url": "host=h sslmode=verify-full sslrootcert=ca.pem"})).unwrap();
    assert_eq!(c.ssl.mode, SslMode::VerifyFull);
    assert_eq!(c.ssl.ca.as_deref(), Some(Path::new("/base/ca.pem")));
    // And the URL form, as before.
    let c = parse(json!({"url": "postgresql://u@h/d?sslmode=require"})).unwrap();
    assert_eq!(c.ssl.mode, SslMode::Require);
    let c = parse(json!({"url": "postgresql://u@h/d"})).unwrap();
    assert_eq!(c.ssl.mode, SslMode::Disable);
    assert_eq!(
        c.driver.get_ssl_mode(),
        tokio_postgres::config::SslMode::Disable
    );
}

#[test]
fn percent_escapes_in_sslrootcert_do_not_panic() {
    let c =
        parse(json!({"url": "postgresql://u@h/x?sslmode=verify-full&sslrootcert=%aé"})).unwrap();
    assert_eq!(c.ssl.ca.as_deref(), Some(Path::new("/base/%aé")));
    let e = err(json!({"url": "postgresql://u@h/x?sslrootcert=%C3%28"}));
    assert!(e.starts_with("storage.database.url:"), "{e}");
}

#[test]
fn passwords_never_reach_descriptions_or_debug() {
    for (fields, secret) in [
        (json!({"url": "postgresql://app:Pa/ss#1@h/app"}), "ss#1"),
        (
            json!({"url": "host=h user=app password = x9secret dbname=app"}),
            "x9secret",
        ),
        (
            json!({"host": "h", "user": "app", "password": 123456}),
            "123456",
        ),
        (
            json!({"url": "postgresql://h/app?user=app&password=qq7secret"}),
            "qq7secret",
        ),
    ] {
        let c = parse(fields.clone()).unwrap();
        let shown = format!("{} {:?}", c.describe(), c);
        assert!(!shown.contains(secret), "{fields}: {shown}");
        assert!(
            c.describe().starts_with("app@h:5432/app"),
            "{}",
            c.describe()
        );
    }
    // tokio-postgres reads the password up to the last `@`: the host is `h`.
    let c = parse(json!({"url": "postgresql://app:Pa/ss#1@h/app"})).unwrap();
    assert_eq!(c.driver.get_password(), Some(&b"Pa/ss#1"[..]));
    // Errors about the string do not quote it.
    let e = err(json!({"url": "postgresql://app:hunter2@h:99999/app"}));
    assert!(
        e.starts_with("storage.database.url: invalid connection string"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "{e}");
    let e = err(json!({"url": "host=h password='hunter2"}));
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn statement_timeout_combines_with_the_url_options() {
    let c = parse(json!({
        "url": "postgresql://u@h/d?options=-c%20search_path%3Dtenant_a",
        "options": {"statement_timeout": 1500, "application_name": "agent"}
    }))
    .unwrap();
    assert_eq!(
        c.driver.get_options(),
        Some("-c search_path=tenant_a -c statement_timeout=1500")
    );
    assert_eq!(c.driver.get_application_name(), Some("agent"));
    let c = parse(json!({"host": "h", "options": {"statement_timeout": 10}})).unwrap();
    assert_eq!(c.driver.get_options(), Some("-c statement_timeout=10"));
}

#[test]
fn unknown_options_are_errors() {
    let e = err(json!({"host": "h", "options": {"statement_timout": 10}}));
    assert!(
        e.starts_with("storage.database.options.statement_timout: unknown field"),
        "{e}"
    );
    let e = err(json!({"host": "h", "hostt": "x"}));
    assert!(
        e.starts_with("storage.database.hostt: unknown field"),
        "{e}"
    );
}

#[test]
fn tls_sources_must_agree_and_a_ca_is_never_unused() {
    let e = err(json!({"url": "postgresql://h/d?sslmode=require", "ssl": true}));
    assert!(
        e.contains("`ssl` (verify-full) and `sslmode in `url`` (require) disagree"),
        "{e}"
    );
    let e = err(json!({"url": "postgresql://h/d?sslmode=require&sslrootcert=ca.pem"}));
    assert!(
        e.contains("a CA file is given but the TLS mode is require"),
        "{e}"
    );
    let c = parse(json!({"host": "h", "ssl": {"ca": "certs/ca.pem"}})).unwrap();
    assert_eq!(c.ssl.mode, SslMode::VerifyFull);
    assert_eq!(c.ssl.ca.as_deref(), Some(Path::new("/base/certs/ca.pem")));
    let c = parse(
        json!({"host": "h", "options": {"ssl": {"mode": "require"}}, "ssl": {"mode": "require"}}),
    )
    .unwrap();
    assert_eq!(c.ssl.mode, SslMode::Require);
    let e = err(json!({"host": "h", "ssl": {"mode": "verify-ca"}}));
    assert!(
        e.starts_with("storage.database.ssl.mode: unknown mode"),
        "{e}"
    );
    let e = err(json!({"host": "h", "ssl": {"mode": "require", "cert": "x"}}));
    assert!(e.starts_with("storage.database.ssl"), "{e}");
}

#[test]
fn url_and_host_fields_and_synonyms() {
    let e = err(json!({"url": "postgresql://h/d", "port": 5}));
    assert!(e.contains("`url` and `port` given together"), "{e}");
    let e = err(json!({"url": "postgresql://h/d", "connectionString": "postgresql://g/d"}));
    assert!(e.contains("synonyms and disagree"), "{e}");
    let e = err(json!({"host": "h", "user": "a", "username": "b"}));
    assert!(e.contains("`user` (\"a\") and `username` (\"b\")"), "{e}");
    let e = err(json!({"database": "d"}));
    assert!(
        e.contains("one of `url`, `connectionString` or `host` is required"),
        "{e}"
    );
    let e = err(json!({"host": "h", "port": 70000}));
    assert!(
        e.starts_with("storage.database.port: 70000 is not a port number"),
        "{e}"
    );
    let e = err(json!({"host": "h", "schema": "1bad"}));
    assert!(e.starts_with("storage.database.schema"), "{e}");
    let c = parse(json!({"host": "h", "port": "6543", "database": "d", "username": "u", "schema": "tenant_a"}))
        .unwrap();
    assert_eq!(c.describe(), "u@h:6543/d");
    assert_eq!(c.schema.as_deref(), Some("tenant_a"));
}

#[test]
fn identity_is_normalised_by_the_driver() {
    let id = |v: Value| parse(v).unwrap().identity().unwrap();
    let a = id(json!({"url": "postgresql://u@localhost/app"}));
    for same in [
        json!({"url": "postgres://other@127.0.0.1:5432/app"}),
        json!({"host": "127.0.0.1", "database": "app"}),
        json!({"url": "host=localhost port=5432 dbname=app"}),
    ] {
        assert!(a.overlaps(&id(same.clone())), "{same}: {a:?}");
    }
    for different in [
        json!({"url": "postgresql://u@localhost/other"}),
        json!({"url": "postgresql://u@localhost:5433/app"}),
        json!({"url": "postgresql://u@localhost/app", "schema": "s"}),
    ] {
        assert!(!a.overlaps(&id(different.clone())), "{different}");
    }
    // libpq's default database is the user name.
    let a = id(json!({"url": "postgresql://app@127.0.0.1"}));
    assert!(a.overlaps(&id(json!({"host": "127.0.0.1", "database": "app"}))));
}

#[test]
fn several_hosts_choose_the_writable_one() {
    use tokio_postgres::config::TargetSessionAttrs;
    for fields in [
        json!({"url": "postgresql://app@h1:5432,h2:5433/db"}),
        json!({"url": "host=h1,h2 port=5432,5433 user=app dbname=db"}),
        json!({"hosts": ["h1:5432", "h2:5433"], "user": "app", "database": "db"}),
    ] {
        let c = parse(fields.clone()).unwrap();
        assert_eq!(c.describe(), "app@h1:5432,h2:5433/db", "{fields}");
        assert_eq!(
            c.driver.get_target_session_attrs(),
            TargetSessionAttrs::ReadWrite,
            "{fields}"
        );
    }
    let c = parse(json!({"hosts": ["h1", "[::1]:7"], "port": 6000, "targetSessionAttrs": "any"}))
        .unwrap();
    assert_eq!(c.describe(), "postgres@h1:6000,[::1]:7/postgres");
    assert_eq!(c.driver.get_target_session_attrs(), TargetSessionAttrs::Any);
    let one = parse(json!({"host": "h"})).unwrap();
    assert_eq!(
        one.driver.get_target_session_attrs(),
        TargetSessionAttrs::Any
    );
    let e = err(json!({"hosts": ["h1:x"]}));
    assert!(
        e.starts_with("storage.database.hosts[0]: \"x\" is not a port number"),
        "{e}"
    );
    let e = err(json!({"hosts": ["h1"], "host": "h"}));
    assert!(e.contains("`host` and `hosts`"), "{e}");
    let e = err(json!({"hosts": ["h1"], "url": "postgresql://h/d"}));
    assert!(e.contains("`url` and `hosts` given together"), "{e}");
    let e = err(json!({"hosts": ["h1"], "targetSessionAttrs": "primary"}));
    assert!(e.starts_with("storage.database.targetSessionAttrs"), "{e}");
    // Identity covers every host: a role on the standby's address is the same data.
    let a = parse(json!({"hosts": ["127.0.0.1:5432", "127.0.0.1:5433"]}))
        .unwrap()
        .identity()
        .unwrap();
    let b = parse(json!({"url": "postgresql://postgres@127.0.0.1:5433/postgres"}))
        .unwrap()
        .identity()
        .unwrap();
    assert!(a.overlaps(&b));
}

/// Regression: port 0 in a connection string was accepted and failed only at connect time
/// ("error connecting to server"); the host fields refused it.
#[test]
fn port_zero_is_refused_in_a_connection_string() {
    for url in [
        "postgresql://u:hunter2@h:0/d",
        "postgresql://u@a:5432,b:0/d",
        "host=h port=0 user=u password=hunter2",
    ] {
        let e = err(json!({ "url": url }));
        assert_eq!(
            e, "storage.database.url: port 0 is not a port number",
            "{url}"
        );
    }
    let e = err(json!({"connectionString": "postgresql://h:0/d"}));
    assert!(
        e.starts_with("storage.database.connectionString: port 0"),
        "{e}"
    );
    assert_eq!(
        parse(json!({"url": "postgresql://u@h:1/d"}))
            .unwrap()
            .describe(),
        "u@h:1/d"
    );
}

/// What the mutation run found unpinned: the type name, `Debug`, the driver's config with the
/// common settings, ports shared by several hosts, synonyms that agree, schema names with `_`
/// and `$`, an empty `options=` in the URL, and the schema.
#[test]
fn names_synonyms_and_the_drivers_config() {
    let c = parse(json!({"url": "postgresql://u@h/d"})).unwrap();
    assert_eq!(c.type_name(), "postgresql");
    let debug = format!("{c:?}");
    assert!(
        debug.starts_with("PostgresConfig {") && debug.contains("u@h:5432/d"),
        "{debug}"
    );
    let common = storage_core::config::CommonSettings {
        connect_timeout: std::time::Duration::from_millis(1234),
        ..Default::default()
    };
    let driver = c.driver_config(&common);
    assert_eq!(driver.get_connect_timeout(), Some(&common.connect_timeout));
    assert_eq!(driver.get_dbname(), Some("d"));
    // One port for every host, and none at all.
    let c = parse(json!({"url": "host=a,b port=6000 user=u dbname=d"})).unwrap();
    assert_eq!(c.describe(), "u@a:6000,b:6000/d");
    let c = parse(json!({"url": "host=a,b user=u dbname=d"})).unwrap();
    assert_eq!(c.describe(), "u@a:5432,b:5432/d");
    let c = parse(json!({"url": "host=a,b port=1,2 user=u dbname=d"})).unwrap();
    assert_eq!(c.describe(), "u@a:1,b:2/d");
    // Synonyms may both be given when they agree.
    parse(json!({"url": "postgresql://h/d", "connectionString": "postgresql://h/d"})).unwrap();
    let c = parse(json!({"host": "h", "user": "u", "username": "u"})).unwrap();
    assert!(c.describe().starts_with("u@h:"), "{}", c.describe());
    for ok in ["_s", "a$b", "s_1"] {
        let c = parse(json!({"url": "postgresql://h/d", "schema": ok})).unwrap();
        assert_eq!(c.schema.as_deref(), Some(ok));
    }
    for bad in ["$a", "1a", "a-b", ""] {
        let e = err(json!({"url": "postgresql://h/d", "schema": bad}));
        assert!(e.contains("not a valid schema name"), "{bad:?}: {e}");
    }
    // An empty `options=` in the URL does not leave a leading space.
    let c =
        parse(json!({"url": "postgresql://h/d?options=%20", "options": {"statement_timeout": 5}}))
            .unwrap();
    assert_eq!(c.driver.get_options(), Some("-c statement_timeout=5"));
    assert!(schema()["properties"]["url"].is_object());
}

/// `hosts` entries: a bracketed IPv6 address with or without a port, a bare IPv6 address, a
/// name with a port, and what is not an entry.
#[test]
fn host_entries() {
    assert_eq!(host_and_port("[::1]:7").unwrap(), ("::1".into(), Some(7)));
    assert_eq!(host_and_port("[::1]").unwrap(), ("::1".into(), None));
    assert_eq!(host_and_port("fe80::1").unwrap(), ("fe80::1".into(), None));
    assert_eq!(host_and_port("h:9").unwrap(), ("h".into(), Some(9)));
    assert_eq!(host_and_port("h").unwrap(), ("h".into(), None));
    assert!(
        host_and_port("[::1]x")
            .unwrap_err()
            .contains("after the address")
    );
    assert!(host_and_port("[::1").is_err());
    assert!(host_and_port("").unwrap_err().contains("empty"));
    assert!(host_and_port("h:0").is_err());
}
