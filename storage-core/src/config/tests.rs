//! Every example and every rejection of CONFIG.md.

use super::*;
use std::collections::HashMap;

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

fn parse_with(yaml: &str, types: &dyn TypeNames) -> Result<StorageConfig> {
    let vars = env();
    let lookup = move |name: &str| vars.get(name).map(|v| v.to_string());
    ConfigSource::from_yaml_str_with_env(yaml, Path::new("/base"), &lookup)?.resolve(types)
}

fn parse(yaml: &str) -> Result<StorageConfig> {
    parse_with(yaml, &BuiltinTypes)
}

fn err(yaml: &str) -> String {
    parse(yaml)
        .expect_err("config must be rejected")
        .to_string()
}

fn pg(spec: &BackendSpec) -> &PostgresSettings {
    match &spec.settings {
        BackendSettings::Postgres(p) => p,
        other => panic!("expected postgres, got {other:?}"),
    }
}
fn redis(spec: &BackendSpec) -> &RedisSettings {
    match &spec.settings {
        BackendSettings::Redis(r) => r,
        other => panic!("expected redis, got {other:?}"),
    }
}
fn sqlite(spec: &BackendSpec) -> &SqliteSettings {
    match &spec.settings {
        BackendSettings::Sqlite(s) => s,
        other => panic!("expected sqlite, got {other:?}"),
    }
}
fn types_of(role: &RoleConfig) -> Vec<&str> {
    role.chain().map(|s| s.type_name.as_str()).collect()
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
    match &redis(&c.cache.primary).target {
        RedisTarget::Url(u) => assert_eq!(u.expose(), "redis://:redispw@cache.local:6379/2"),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.database.primary.type_name, "postgresql");
    assert_eq!(c.database.primary.common.pool_max, 25);
    assert!(matches!(pg(&c.database.primary).target, PgTarget::Url(_)));
    assert_eq!(types_of(&c.database), ["postgresql", "sqlite", "in-memory"]);
    assert_eq!(types_of(&c.cache), ["redis", "in-memory"]);
    // Neither password appears in Debug or Display.
    let dbg = format!("{c:?}");
    for spec in c.cache.chain().chain(c.database.chain()) {
        let shown = spec.to_string();
        assert!(
            !shown.contains("pgpw") && !shown.contains("redispw"),
            "{shown}"
        );
    }
    assert!(!dbg.contains("pgpw") && !dbg.contains("redispw"), "{dbg}");
}

#[test]
fn saiki_example_two() {
    let c = parse(
        r#"
storage:
  cache:
    type: in-memory
  database:
    type: sqlite
    database: my-agent.sqlite
    path: ./data
"#,
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
    port: 5432
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
    assert_eq!(db.common.pool_min, 2);
    assert_eq!(db.common.pool_max, 10);
    assert_eq!(db.common.acquire_timeout, Duration::from_millis(30000));
    match &pg(db).target {
        PgTarget::Host {
            host,
            port,
            database,
            user,
            password,
        } => {
            assert_eq!(host, "localhost");
            assert_eq!(*port, 5432);
            assert_eq!(database.as_deref(), Some("saiki"));
            assert_eq!(user.as_deref(), Some("saiki_user"));
            assert_eq!(password.as_ref().unwrap().expose(), "s3cret-pw");
        }
        other => panic!("{other:?}"),
    }
    // Fallback entries inherit the role's keyPrefix.
    for spec in c.database.chain() {
        assert_eq!(spec.common.key_prefix, "saiki:db:");
    }
    assert!(!format!("{c:?}").contains("s3cret-pw"));
    // The default sqlite entry uses its default path.
    assert_eq!(
        sqlite(&c.database.fallback[0]).location,
        SqliteLocation::File(PathBuf::from("/base/.storage/storage.db"))
    );
}

#[test]
fn defaults_when_roles_are_left_out() {
    for yaml in [
        "",
        "storage:",
        "storage: {}",
        "{}",
        "name: agent\nstorage:\n",
    ] {
        let c = parse(yaml).unwrap_or_else(|e| panic!("{yaml:?}: {e}"));
        assert_eq!(types_of(&c.cache), ["in-memory"], "{yaml:?}");
        assert_eq!(types_of(&c.database), ["sqlite", "in-memory"]);
        assert_eq!(
            sqlite(&c.database.primary).location,
            SqliteLocation::File(PathBuf::from("/base/.storage/storage.db"))
        );
        assert_eq!(c.database.primary.common, CommonSettings::default());
    }
    let d = CommonSettings::default();
    assert_eq!(d.max_retries, 3);
    assert_eq!(d.retry_delay, Duration::from_millis(100));
    assert_eq!(d.connect_timeout, Duration::from_millis(5000));
    assert_eq!(d.acquire_timeout, Duration::from_millis(5000));
    assert_eq!(d.operation_timeout, Duration::from_millis(10000));
    assert_eq!((d.pool_min, d.pool_max), (0, 10));
    assert_eq!(d.idle_timeout, Duration::from_millis(30000));
}

#[test]
fn a_document_without_storage_must_be_a_storage_block() {
    let e = err("name: agent\nllm: { apiKey: $OPENAI_API_KEY }\n");
    assert!(e.contains("storage.llm: unknown field"), "{e}");
}

#[test]
fn whole_agent_yml_reads_only_storage() {
    // An unset variable outside `storage:` does not matter.
    let c =
        parse("llm:\n  apiKey: $OPENAI_API_KEY\nstorage:\n  cache:\n    type: memory\n").unwrap();
    assert_eq!(c.cache.primary.type_name, "in-memory");
}

#[test]
fn sqlite_paths() {
    let loc = |yaml: &str| {
        sqlite(&parse(yaml).unwrap().database.primary)
            .location
            .clone()
    };
    let file = |p: &str| SqliteLocation::File(PathBuf::from(p));
    assert_eq!(
        loc("database: { type: sqlite, path: .saiki/saiki.db }"),
        file("/base/.saiki/saiki.db")
    );
    assert_eq!(
        loc("database: { type: sqlite, database: x.db }"),
        file("/base/.storage/x.db")
    );
    assert_eq!(
        loc("database: { type: sqlite, path: /abs/dir, database: x.db }"),
        file("/abs/dir/x.db")
    );
    assert_eq!(
        loc("database: { type: sqlite }"),
        file("/base/.storage/storage.db")
    );
    assert_eq!(
        loc("database: { type: sqlite, path: ':memory:' }"),
        SqliteLocation::Memory
    );
    let c = parse(
        "database: { type: sqlite, options: { synchronous: normal, busyTimeoutMillis: 250 } }",
    )
    .unwrap();
    let s = sqlite(&c.database.primary);
    assert_eq!(s.synchronous, SqliteSync::Normal);
    assert_eq!(s.busy_timeout, Duration::from_millis(250));
    let e = err("database: { type: sqlite, options: { synchronous: off } }");
    assert!(e.contains("storage.database.options.synchronous"), "{e}");
}

#[test]
fn relative_paths_resolve_against_the_config_file() {
    let dir = std::env::temp_dir().join(format!("storage-core-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("agent.yml");
    std::fs::write(
        &file,
        "storage:\n  plugins: [plugins/libx.so]\n  database: { type: sqlite, path: data/a.db }\n",
    )
    .unwrap();
    let source = ConfigSource::from_file(&file).unwrap();
    assert_eq!(source.plugins(), [dir.join("plugins/libx.so")]);
    let c = source.resolve(&BuiltinTypes).unwrap();
    assert_eq!(
        sqlite(&c.database.primary).location,
        SqliteLocation::File(dir.join("data/a.db"))
    );
    // JSON works too.
    let json = dir.join("storage.json");
    std::fs::write(
        &json,
        r#"{"cache": {"type": "in-memory", "keyPrefix": "j:"}}"#,
    )
    .unwrap();
    let c = ConfigSource::from_file(&json)
        .unwrap()
        .resolve(&BuiltinTypes)
        .unwrap();
    assert_eq!(c.cache.primary.common.key_prefix, "j:");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_fields_name_their_path() {
    let e = err("storage:\n  database:\n    type: sqlite\n    pathh: x.db\n");
    assert!(e.contains("storage.database.pathh"), "{e}");
    let e = err("storage:\n  database:\n    type: postgres\n    host: h\n    pool: { maxx: 3 }\n");
    assert!(e.contains("storage.database.pool.maxx"), "{e}");
    let e = err("storage:\n  cachee: {}\n");
    assert!(e.contains("storage.cachee"), "{e}");
    let e = err("cache: { type: in-memory, fallback: [{ type: in-memory, bogus: 1 }] }");
    assert!(e.contains("storage.cache.fallback[0].bogus"), "{e}");
    let e = err("database: { type: sqlite, maxConnections: lots }");
    assert!(e.contains("storage.database.maxConnections"), "{e}");
}

#[test]
fn unknown_type_lists_known_types() {
    let e = err("cache: { type: memcached }");
    assert!(e.contains("storage.cache.type"), "{e}");
    assert!(e.contains("memcached"), "{e}");
    assert!(
        e.contains("in-memory") && e.contains("redis") && e.contains("postgresql"),
        "{e}"
    );
    let e = err("cache: { keyPrefix: x }");
    assert!(e.contains("storage.cache.type"), "{e}");
}

#[test]
fn environment_references() {
    let c = parse(
        "database: { type: postgres, host: h, port: $PG_PORT, password: '${DATABASE_PASSWORD}' }",
    )
    .unwrap();
    match &pg(&c.database.primary).target {
        PgTarget::Host { port, password, .. } => {
            assert_eq!(*port, 6543);
            assert_eq!(password.as_ref().unwrap().expose(), "s3cret-pw");
        }
        other => panic!("{other:?}"),
    }
    let e = err("database: { type: postgres, host: h, password: $NOT_SET_ANYWHERE }");
    assert!(
        e.contains("NOT_SET_ANYWHERE") && e.contains("storage.database.password"),
        "{e}"
    );
    // Numeric fields accept strings of digits, and only those.
    let c = parse("cache: { type: redis, host: h, port: '7000', database: '3' }").unwrap();
    match &redis(&c.cache.primary).target {
        RedisTarget::Host { port, database, .. } => assert_eq!((*port, *database), (7000, 3)),
        other => panic!("{other:?}"),
    }
    let e = err("cache: { type: redis, host: h, port: '70a' }");
    assert!(e.contains("storage.cache.port"), "{e}");
}

#[test]
fn synonyms_must_agree() {
    let cases = [
        (
            "database: { type: sqlite, maxConnections: 5, pool: { max: 6 } }",
            ["maxConnections", "pool.max"],
        ),
        (
            "database: { type: sqlite, idleTimeoutMillis: 5, pool: { idleTimeoutMillis: 6 } }",
            ["idleTimeoutMillis", "pool.idleTimeoutMillis"],
        ),
        (
            "database: { type: postgres, url: 'postgresql://a/b', connectionString: 'postgresql://a/c' }",
            ["url", "connectionString"],
        ),
        (
            "database: { type: postgres, host: h, user: a, username: b }",
            ["user", "username"],
        ),
        (
            "database: { type: postgres, host: h, ssl: true, options: { ssl: false } }",
            ["ssl", "options.ssl"],
        ),
        (
            "database: { type: postgres, url: 'postgresql://h/d?sslmode=require', ssl: false }",
            ["ssl", "sslmode"],
        ),
        (
            "cache: { type: redis, host: h, retryDelayMillis: 1, retryDelayOnFailover: 2 }",
            ["retryDelayMillis", "retryDelayOnFailover"],
        ),
        (
            "cache: { type: redis, host: h, operationTimeoutMillis: 1, options: { commandTimeout: 2 } }",
            ["operationTimeoutMillis", "commandTimeout"],
        ),
    ];
    for (yaml, names) in cases {
        let e = err(yaml);
        for n in names {
            assert!(e.contains(n), "{yaml}: {e}");
        }
    }
    // Agreeing synonyms are fine.
    let c = parse("database: { type: sqlite, maxConnections: 5, pool: { max: 5 } }").unwrap();
    assert_eq!(c.database.primary.common.pool_max, 5);
    let c = parse("cache: { type: redis, host: h, retryDelayOnFailover: 250, options: { commandTimeout: 700 } }").unwrap();
    assert_eq!(
        c.cache.primary.common.retry_delay,
        Duration::from_millis(250)
    );
    assert_eq!(
        c.cache.primary.common.operation_timeout,
        Duration::from_millis(700)
    );
}

#[test]
fn url_and_host_fields() {
    let e = err("database: { type: postgres, url: 'postgresql://u:pw@h/d', host: other }");
    assert!(e.contains("url") && e.contains("host"), "{e}");
    assert!(!e.contains("pw@"), "{e}");
    let e = err("database: { type: postgres, database: d }");
    assert!(e.contains("storage.database") && e.contains("host"), "{e}");
    let e = err("cache: { type: redis, password: x }");
    assert!(e.contains("storage.cache") && e.contains("url"), "{e}");
    // Redis lets url win.
    let c = parse("cache: { type: redis, url: 'redis://u:1', host: ignored, port: 1 }").unwrap();
    assert!(matches!(
        redis(&c.cache.primary).target,
        RedisTarget::Url(_)
    ));
}

#[test]
fn postgres_ssl_and_schema() {
    let ssl = |yaml: &str| pg(&parse(yaml).unwrap().database.primary).ssl.clone();
    assert_eq!(
        ssl("database: { type: postgres, host: h }").mode,
        SslMode::Disable
    );
    assert_eq!(
        ssl("database: { type: postgres, host: h, ssl: false }").mode,
        SslMode::Disable
    );
    assert_eq!(
        ssl("database: { type: postgres, host: h, ssl: true }"),
        SslSettings {
            mode: SslMode::VerifyFull,
            ca: None
        }
    );
    assert_eq!(
        ssl("database: { type: postgres, host: h, ssl: { mode: require } }").mode,
        SslMode::Require
    );
    assert_eq!(
        ssl("database: { type: postgres, host: h, ssl: { mode: verify-full, ca: certs/ca.pem } }"),
        SslSettings {
            mode: SslMode::VerifyFull,
            ca: Some(PathBuf::from("/base/certs/ca.pem"))
        }
    );
    assert_eq!(
        ssl(
            "database: { type: postgres, url: 'postgresql://h/d?sslmode=verify-full&sslrootcert=ca.pem' }"
        ),
        SslSettings {
            mode: SslMode::VerifyFull,
            ca: Some(PathBuf::from("/base/ca.pem"))
        }
    );
    assert_eq!(
        ssl("database: { type: postgres, host: h, options: { ssl: { mode: require } } }").mode,
        SslMode::Require
    );
    let e = err("database: { type: postgres, host: h, ssl: { mode: sometimes } }");
    assert!(e.contains("storage.database.ssl.mode"), "{e}");
    let c = parse("database: { type: postgres, host: h, schema: agent_data, options: { application_name: me, statement_timeout: 1500 } }").unwrap();
    let p = pg(&c.database.primary);
    assert_eq!(p.schema.as_deref(), Some("agent_data"));
    assert_eq!(p.application_name.as_deref(), Some("me"));
    assert_eq!(p.statement_timeout, Some(Duration::from_millis(1500)));
    for bad in ["'a b'", "'x\"; drop table t; --'", "1abc", "''"] {
        let e = err(&format!(
            "database: {{ type: postgres, host: h, schema: {bad} }}"
        ));
        assert!(e.contains("storage.database.schema"), "{e}");
    }
}

#[test]
fn redis_fields() {
    let c = parse("cache: { type: redis, host: r, password: pw, database: 4, ssl: true, maxRetries: 7, options: { maxRetriesPerRequest: 1 } }").unwrap();
    let r = redis(&c.cache.primary);
    assert!(r.tls);
    assert_eq!(r.max_retries_per_request, 1);
    assert_eq!(c.cache.primary.common.max_retries, 7);
    assert!(
        redis(
            &parse("cache: { type: redis, url: 'rediss://h:1' }")
                .unwrap()
                .cache
                .primary
        )
        .tls
    );
    let e = err("cache: { type: redis, url: 'http://h' }");
    assert!(e.contains("storage.cache.url"), "{e}");
}

#[test]
fn key_prefix_limits() {
    let ok = format!(
        "cache: {{ type: in-memory, keyPrefix: '{}' }}",
        "p".repeat(256)
    );
    assert!(parse(&ok).is_ok());
    let e = err(&format!(
        "cache: {{ type: in-memory, keyPrefix: '{}' }}",
        "p".repeat(257)
    ));
    assert!(e.contains("storage.cache.keyPrefix"), "{e}");
}

#[test]
fn fallback_chains() {
    // Exactly the declared list.
    let c = parse("database: { type: postgres, host: h, fallback: [sqlite] }").unwrap();
    assert_eq!(types_of(&c.database), ["postgresql", "sqlite"]);
    // Off.
    let c = parse("database: { type: postgres, host: h, fallback: [] }").unwrap();
    assert_eq!(types_of(&c.database), ["postgresql"]);
    // Blocks, with their own keyPrefix or the role's.
    let c = parse(
        "database: { type: postgres, host: h, keyPrefix: 'app:', fallback: [{ type: sqlite, path: ':memory:', keyPrefix: 'other:' }, memory] }",
    )
    .unwrap();
    assert_eq!(c.database.fallback[0].common.key_prefix, "other:");
    assert_eq!(c.database.fallback[0].path, "storage.database.fallback[0]");
    assert_eq!(c.database.fallback[1].common.key_prefix, "app:");
    assert_eq!(c.database.fallback[1].type_name, "in-memory");
    // Defaults.
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
    // Entries do not bring their own chains, and may not declare one.
    let e = err(
        "database: { type: postgres, host: h, fallback: [{ type: sqlite, fallback: [memory] }] }",
    );
    assert!(e.contains("storage.database.fallback[0].fallback"), "{e}");
    let e = err("database: { type: postgres, host: h, fallback: [nosuch] }");
    assert!(e.contains("storage.database.fallback[0].type"), "{e}");
    let e = err("database: { type: postgres, host: h, fallback: sqlite }");
    assert!(e.contains("storage.database.fallback"), "{e}");
}

/// A registry-like type list with a plugin type, and without sqlite.
struct WithPlugin;
impl TypeNames for WithPlugin {
    fn canonical_type(&self, name: &str) -> Option<String> {
        match name {
            "redb" => Some("redb".into()),
            "in-memory" | "memory" => Some("in-memory".into()),
            "postgresql" | "postgres" => Some("postgresql".into()),
            _ => None,
        }
    }
    fn known_types(&self) -> Vec<String> {
        vec![
            "in-memory".into(),
            "memory".into(),
            "postgresql".into(),
            "postgres".into(),
            "redb".into(),
        ]
    }
}

#[test]
fn plugin_types_get_common_fields_and_options() {
    let c = parse_with(
        "database: { type: redb, keyPrefix: 'r:', maxConnections: 2, options: { path: x.redb, durability: immediate } }",
        &WithPlugin,
    )
    .unwrap();
    let p = &c.database.primary;
    assert_eq!(p.type_name, "redb");
    assert_eq!(p.common.pool_max, 2);
    match &p.settings {
        BackendSettings::Plugin(s) => {
            assert_eq!(s.options["path"], "x.redb");
            assert_eq!(s.block["keyPrefix"], "r:");
        }
        other => panic!("{other:?}"),
    }
    // Plugin types have no default fallback; defaults skip types that are not registered.
    assert!(c.database.fallback.is_empty());
    let c = parse_with("database: { type: postgres, host: h }", &WithPlugin).unwrap();
    assert_eq!(types_of(&c.database), ["postgresql", "in-memory"]);
    let e = parse_with("database: { type: redb, path: x }", &WithPlugin)
        .unwrap_err()
        .to_string();
    assert!(e.contains("storage.database.path"), "{e}");
}

#[test]
fn bad_documents() {
    let e = err("storage: [1, 2]");
    assert!(e.contains("storage"), "{e}");
    let e = err("cache: 5");
    assert!(e.contains("storage.cache"), "{e}");
    let e = err("plugins: [1]");
    assert!(e.contains("storage.plugins[0]"), "{e}");
    let e = ConfigSource::from_yaml_str("cache: [unclosed", Path::new("/")).unwrap_err();
    assert!(e.to_string().contains("YAML"), "{e}");
    let e = ConfigSource::from_file(Path::new("/definitely/not/here.yml")).unwrap_err();
    assert!(e.to_string().contains("/definitely/not/here.yml"), "{e}");
}

#[test]
fn json_schema_describes_the_fields() {
    let schema = StorageConfig::json_schema();
    let text = schema.to_string();
    for field in [
        "keyPrefix",
        "maxConnections",
        "connectionString",
        "retryDelayOnFailover",
        "acquireTimeoutMillis",
        "plugins",
    ] {
        assert!(text.contains(field), "schema lacks {field}");
    }
}
