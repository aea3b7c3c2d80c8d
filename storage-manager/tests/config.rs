//! The configuration reference end to end, with every built-in backend registered: the
//! examples that must load, defaults and fallback chains, the shared-namespace guard, and
//! secrets kept out of everything a status line or an error shows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use storage_core::Result;
use storage_core::config::{BackendConfig, BackendSpec, ConfigSource, RoleConfig, StorageConfig};
use storage_manager::{StorageManager, builtin_registry};
use storage_postgres::PostgresConfig;
use storage_redis::RedisConfig;
use storage_sqlite::{SqliteConfig, SqliteLocation, SqliteSync};

fn env() -> HashMap<&'static str, &'static str> {
    HashMap::from([
        ("REDIS_URL", "redis://:redispw@cache.local:6379/2"),
        (
            "POSTGRES_CONNECTION_STRING",
            "postgresql://app:pgpw@db.local:5432/app",
        ),
        ("DATABASE_PASSWORD", "s3cret-pw"),
        ("PG_PORT", "6543"),
    ])
}

fn source(yaml: &str) -> Result<ConfigSource> {
    let vars = env();
    let lookup = move |name: &str| vars.get(name).map(|v| v.to_string());
    storage_manager::config_file::from_yaml_str_with_env(yaml, Path::new("/base"), &lookup)
}

fn parse(yaml: &str) -> Result<StorageConfig> {
    source(yaml)?.resolve(&builtin_registry())
}

fn err(yaml: &str) -> String {
    parse(yaml)
        .expect_err("config must be rejected")
        .message()
        .to_string()
}

/// The manager's own checks too (shared namespaces).
fn manager_err(yaml: &str) -> String {
    StorageManager::from_source(&source(yaml).unwrap())
        .expect_err("config must be rejected")
        .message()
        .to_string()
}

fn sqlite(spec: &BackendSpec) -> &SqliteConfig {
    spec.settings::<SqliteConfig>().unwrap()
}

fn types_of(role: &RoleConfig) -> Vec<&str> {
    role.chain().map(|s| s.type_name.as_str()).collect()
}

fn shown(c: &StorageConfig) -> String {
    let mut out = format!("{c:?}");
    for spec in c.cache.chain().chain(c.database.chain()) {
        out.push_str(&spec.to_string());
    }
    out
}

#[test]
fn saiki_example_one() {
    let c = parse(
        r#"
storage:
  cache:
    type: redis
    url: $REDIS_URL
    maxConnections: 100
    idleTimeoutMillis: 10000
  database:
    type: postgres
    connectionString: $POSTGRES_CONNECTION_STRING
    maxConnections: 25
    idleTimeoutMillis: 30000
"#,
    )
    .unwrap();
    assert_eq!(c.cache.primary.type_name, "redis");
    assert_eq!(c.cache.primary.common.pool_max, 100);
    assert_eq!(
        c.cache.primary.common.idle_timeout,
        Duration::from_millis(10000)
    );
    let r = c.cache.primary.settings::<RedisConfig>().unwrap();
    assert_eq!(r.info.redis_settings().password(), Some("redispw"));
    assert_eq!(r.describe(), "cache.local:6379/2");
    assert_eq!(c.database.primary.type_name, "postgresql");
    assert_eq!(c.database.primary.common.pool_max, 25);
    let p = c.database.primary.settings::<PostgresConfig>().unwrap();
    assert_eq!(p.describe(), "app@db.local:5432/app");
    assert_eq!(types_of(&c.database), ["postgresql", "sqlite", "in-memory"]);
    assert_eq!(types_of(&c.cache), ["redis", "in-memory"]);
    let shown = shown(&c);
    assert!(
        !shown.contains("pgpw") && !shown.contains("redispw"),
        "{shown}"
    );
}

#[test]
fn saiki_example_two() {
    let c = parse(
        "storage:\n  cache:\n    type: in-memory\n  database:\n    type: sqlite\n    database: my-agent.sqlite\n    path: ./data\n",
    )
    .unwrap();
    assert_eq!(c.cache.primary.type_name, "in-memory");
    assert!(c.cache.fallback.is_empty());
    assert_eq!(
        sqlite(&c.database.primary).location,
        SqliteLocation::File(PathBuf::from("/base/./data/my-agent.sqlite"))
    );
    assert_eq!(sqlite(&c.database.primary).synchronous, SqliteSync::Full);
    assert_eq!(types_of(&c.database), ["sqlite", "in-memory"]);
}

#[test]
fn seed_example() {
    let c = parse(
        r#"
storage:
  cache:
    type: redis
    url: redis://localhost:6379
    keyPrefix: saiki:cache:
  database:
    type: postgresql
    host: localhost
    port: $PG_PORT
    database: saiki
    username: saiki_user
    password: $DATABASE_PASSWORD
    keyPrefix: saiki:db:
    pool: { min: 2, max: 10, acquireTimeoutMillis: 30000, idleTimeoutMillis: 30000 }
"#,
    )
    .unwrap();
    assert_eq!(c.cache.primary.common.key_prefix, "saiki:cache:");
    let db = &c.database.primary;
    assert_eq!(db.common.key_prefix, "saiki:db:");
    assert_eq!((db.common.pool_min, db.common.pool_max), (2, 10));
    assert_eq!(db.common.acquire_timeout, Duration::from_millis(30000));
    let p = db.settings::<PostgresConfig>().unwrap();
    assert_eq!(p.describe(), "saiki_user@localhost:6543/saiki");
    assert_eq!(p.driver.get_password(), Some(&b"s3cret-pw"[..]));
    for spec in c.database.chain() {
        assert_eq!(spec.common.key_prefix, "saiki:db:");
    }
    assert!(!shown(&c).contains("s3cret-pw"));
    // The default sqlite entry uses its default path.
    assert_eq!(
        sqlite(&c.database.fallback[0]).location,
        SqliteLocation::File(PathBuf::from("/base/.storage/storage.db"))
    );
}

#[test]
fn the_embedded_default() {
    for yaml in ["storage:", "storage: {}", "name: agent\nstorage:\n"] {
        let c = parse(yaml).unwrap_or_else(|e| panic!("{yaml:?}: {e}"));
        assert_eq!(types_of(&c.cache), ["in-memory"], "{yaml:?}");
        assert_eq!(types_of(&c.database), ["sqlite", "in-memory"]);
        assert_eq!(
            sqlite(&c.database.primary).location,
            SqliteLocation::File(PathBuf::from("/base/.storage/storage.db"))
        );
    }
    // A blank file is refused, not silently defaulted.
    assert!(err("").contains("empty"));
}

#[test]
fn relative_paths_resolve_against_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.yml");
    std::fs::write(
        &file,
        "storage:\n  plugins: [plugins/libx.so]\n  database: { type: sqlite, path: data/a.db }\n",
    )
    .unwrap();
    let source = storage_manager::config_file::from_file(&file).unwrap();
    assert_eq!(source.plugins(), [dir.path().join("plugins/libx.so")]);
    let c = source.resolve(&builtin_registry()).unwrap();
    assert_eq!(
        sqlite(&c.database.primary).location,
        SqliteLocation::File(dir.path().join("data/a.db"))
    );
    let json = dir.path().join("storage.json");
    std::fs::write(
        &json,
        r#"{"cache": {"type": "in-memory", "keyPrefix": "j:"}}"#,
    )
    .unwrap();
    let c = storage_manager::config_file::from_file(&json)
        .unwrap()
        .resolve(&builtin_registry())
        .unwrap();
    assert_eq!(c.cache.primary.common.key_prefix, "j:");
}

#[test]
fn fallback_chains() {
    let c = parse("database: { type: postgres, host: h, fallback: [sqlite] }").unwrap();
    assert_eq!(types_of(&c.database), ["postgresql", "sqlite"]);
    let c = parse("database: { type: postgres, host: h, fallback: [] }").unwrap();
    assert_eq!(types_of(&c.database), ["postgresql"]);
    let c = parse(
        "database: { type: postgres, host: h, keyPrefix: 'app:', fallback: [{ type: sqlite, path: ':memory:', keyPrefix: 'other:' }, memory] }",
    )
    .unwrap();
    assert_eq!(c.database.fallback[0].common.key_prefix, "other:");
    assert_eq!(c.database.fallback[1].common.key_prefix, "app:");
    assert_eq!(c.database.fallback[1].type_name, "in-memory");
    assert_eq!(
        types_of(&parse("cache: { type: postgres, host: h }").unwrap().cache),
        ["postgresql", "in-memory"]
    );
    assert_eq!(
        types_of(
            &parse("database: { type: redis, host: h }")
                .unwrap()
                .database
        ),
        ["redis", "in-memory"]
    );
    assert_eq!(
        types_of(&parse("database: { type: in-memory }").unwrap().database),
        ["in-memory"]
    );
    let e = err("database: { type: postgres, host: h, fallback: [nosuch] }");
    assert!(e.starts_with("storage.database.fallback[0].type"), "{e}");
    let e = err("database: { type: postgres, host: h, fallback: sqlite }");
    assert!(e.starts_with("storage.database.fallback"), "{e}");
}

#[test]
fn unknown_type_lists_every_built_in() {
    let e = err("cache: { type: memcached }");
    assert!(e.starts_with("storage.cache.type"), "{e}");
    for name in [
        "in-memory",
        "memory",
        "postgres",
        "postgresql",
        "redis",
        "sqlite",
    ] {
        assert!(e.contains(name), "{e}");
    }
}

/// Regression: the guard compared raw strings, so one Redis server spelled three ways (and
/// `localhost` vs `127.0.0.1`, `postgresql://` vs `postgres://`) passed, and the cache's
/// `clear()` could delete the database's keys.
#[test]
fn shared_namespace_guard_uses_each_backends_identity() {
    for (cache, database) in [
        (
            "{ type: redis, url: 'redis://localhost:6379', keyPrefix: '' }",
            "{ type: redis, host: 127.0.0.1, port: 6379, keyPrefix: 'db:' }",
        ),
        (
            "{ type: redis, url: 'redis://127.0.0.1:6379/0', keyPrefix: 'app' }",
            "{ type: redis, url: 'redis://localhost', keyPrefix: 'app:' }",
        ),
        (
            "{ type: postgresql, url: 'postgresql://u@localhost/app', keyPrefix: 'x' }",
            "{ type: postgres, url: 'postgres://v@127.0.0.1:5432/app', keyPrefix: 'x' }",
        ),
        (
            "{ type: postgresql, host: localhost, database: app }",
            "{ type: postgres, url: 'host=127.0.0.1 dbname=app' }",
        ),
    ] {
        let yaml = format!("cache: {cache}\ndatabase: {database}\n");
        let e = manager_err(&yaml);
        assert!(e.contains("reach the same data"), "{yaml}: {e}");
        assert!(
            e.contains("storage.cache") && e.contains("storage.database"),
            "{e}"
        );
    }
    // Distinct databases, numbers or nested-safe prefixes pass.
    for (cache, database) in [
        (
            "{ type: redis, url: 'redis://localhost:6379/1', keyPrefix: '' }",
            "{ type: redis, url: 'redis://localhost:6379/0', keyPrefix: 'db:' }",
        ),
        (
            "{ type: redis, url: 'redis://localhost', keyPrefix: 'c:' }",
            "{ type: redis, url: 'redis://localhost', keyPrefix: 'd:' }",
        ),
        (
            "{ type: postgresql, url: 'postgresql://u@localhost/app', keyPrefix: 'x' }",
            "{ type: postgres, url: 'postgres://u@localhost/app', keyPrefix: 'x:' }",
        ),
    ] {
        let yaml = format!("cache: {cache}\ndatabase: {database}\n");
        StorageManager::from_source(&source(&yaml).unwrap())
            .unwrap_or_else(|e| panic!("{yaml}: {e}"));
    }
}

#[test]
fn secrets_stay_out_of_errors() {
    // A type error on a password does not echo it; a number is a valid password.
    let e = err("database: { type: postgres, host: h, password: [123456] }");
    assert!(
        e.starts_with("storage.database.password: expected a string"),
        "{e}"
    );
    assert!(!e.contains("123456"), "{e}");
    parse("database: { type: postgres, host: h, password: 123456 }").unwrap();
    // A Redis URL with no scheme is not echoed.
    let e = err("cache: { type: redis, url: ':hunter2@cache.local:6379' }");
    assert!(!e.contains("hunter2"), "{e}");
    // An unclosed `${` does not echo the value.
    let e = source("database: { type: postgres, host: h, password: 'pa${ss hunter2' }")
        .unwrap_err()
        .to_string();
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn schema_covers_every_built_in_block() {
    let schema = storage_manager::json_schema(None).unwrap();
    let text = schema.to_string();
    for field in [
        "keyPrefix",
        "maxConnections",
        "connectionString",
        "retryDelayOnFailover",
        "acquireTimeoutMillis",
        "plugins",
        "busyTimeoutMillis",
        "statement_timeout",
        "commandTimeout",
        "docs/configuration.md",
    ] {
        assert!(text.contains(field), "schema lacks {field}");
    }
    let db = schema["properties"]["database"]["anyOf"]
        .as_array()
        .unwrap();
    assert_eq!(db.len(), 4, "in-memory, postgresql, redis and sqlite");
}

/// Every YAML example in docs/configuration.md loads (those that load plugins are read, and
/// their plugin-free part resolved).
#[test]
fn every_example_in_the_configuration_docs_loads() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md"),
    )
    .unwrap();
    let vars = HashMap::from([
        (
            "POSTGRES_CONNECTION_STRING",
            "postgresql://app:pw@db.local/app",
        ),
        ("DATABASE_PASSWORD", "pw"),
        ("DB_HOST", "db.local"),
        ("S3_ACCESS_KEY_ID", "key"),
        ("S3_SECRET_ACCESS_KEY", "secret"),
    ]);
    let lookup = move |name: &str| vars.get(name).map(|v| v.to_string());
    let mut examples = 0;
    for block in doc.split("```yaml\n").skip(1) {
        let yaml = block.split("```").next().unwrap();
        let source =
            storage_manager::config_file::from_yaml_str_with_env(yaml, Path::new("/base"), &lookup)
                .unwrap_or_else(|e| panic!("{yaml}: {e}"));
        if source.plugins().is_empty() {
            source
                .resolve(&builtin_registry())
                .unwrap_or_else(|e| panic!("{yaml}: {e}"));
        }
        examples += 1;
    }
    assert!(examples >= 6, "found {examples} examples");
}
