//! The `storage` binary end to end, each test in a temp dir of its own.

#[path = "support/run.rs"]
mod run;
use run::{stderr, stdout, storage};

#[test]
fn demo_twice_shows_persisted_history() {
    let dir = tempfile::tempdir().unwrap();
    let first = storage(dir.path(), &["demo"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let out = stdout(&first);
    assert!(out.contains("served by sqlite"), "{out}");
    assert!(out.contains("served by in-memory"), "{out}");
    assert!(
        out.contains("chat history from earlier runs: 0 message(s)"),
        "{out}"
    );
    // The table and the hit rate come from the metrics the backends emit: one row per role,
    // backend and operation, with the demo's exact counts.
    assert!(
        out.contains("latency by operation (db.client.operation.duration)"),
        "{out}"
    );
    let row = |role: &str, backend: &str, op: &str, n: usize| {
        out.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() > 3 && w[0] == role && w[1] == backend && w[2] == op && w[3] == format!("n={n}")
        })
    };
    assert!(row("database", "sqlite", "append", 5), "{out}");
    // The attachment: stored in the blob role, referred to from the history, read back.
    assert!(
        out.contains("attachment blob:sha256:") && out.contains("checked against its id"),
        "{out}"
    );
    assert!(row("database", "sqlite", "get_range", 2), "{out}");
    assert!(row("blob", "local", "blob_put", 1), "{out}");
    assert!(
        out.contains("a second task followed the conversation: saw items 0..=4"),
        "{out}"
    );
    assert!(row("blob", "local", "blob_get", 1), "{out}");
    assert!(row("cache", "in-memory", "get", 23), "{out}");
    assert!(
        out.contains("cache-aside: 22 hits, 1 misses; hit rate 95.7%"),
        "{out}"
    );
    assert!(dir.path().join(".storage/storage.db").is_file());
    let second = storage(dir.path(), &["demo"]);
    assert!(second.status.success(), "{}", stderr(&second));
    let out = stdout(&second);
    assert!(
        out.contains("chat history from earlier runs: 5 message(s)"),
        "{out}"
    );
    assert!(out.contains("this is run 2"), "{out}");
    assert!(
        out.contains("\"attachments\":[{\"blob\":\"blob:sha256:"),
        "{out}"
    );
}

#[test]
fn data_commands_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = |args: &[&str]| {
        let o = storage(d, args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    ok(&["set", "greeting", "\"hi\""]);
    assert_eq!(ok(&["get", "greeting"]), "\"hi\"\n");
    ok(&["set", "n", "42"]);
    ok(&["set", "obj", r#"{"a":1}"#]);
    ok(&["set", "nothing", "null"]);
    // A stored null prints null and exits 0; a missing key exits 1 with no output.
    assert_eq!(ok(&["get", "nothing"]), "null\n");
    let missing = storage(d, &["get", "missing"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(stdout(&missing), "");
    assert_eq!(ok(&["keys"]), "greeting\nn\nnothing\nobj\n");
    assert_eq!(ok(&["keys", "n*"]), "n\nnothing\n");
    assert_eq!(ok(&["keys", "--json", "?"]), "[\"n\"]\n");
    // Regression: keys were printed raw, so a key with a newline read as two keys and a stored
    // escape sequence reached the terminal. Such keys print as JSON strings; `--json` is exact.
    let dir2 = tempfile::tempdir().unwrap();
    let odd = [
        "two\nlines",
        "\u{1b}[2Jwipe",
        "\"starts quoted",
        "plain key",
    ];
    for k in odd {
        let o = storage(dir2.path(), &["set", "--", k, "1"]);
        assert!(o.status.success(), "{k:?}: {}", stderr(&o));
    }
    let o = storage(dir2.path(), &["keys"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "\"\\u001b[2Jwipe\"\n\"\\\"starts quoted\"\nplain key\n\"two\\nlines\"\n"
    );
    let read_back: Vec<String> = stdout(&o)
        .lines()
        .map(|l| match l.starts_with('"') {
            true => serde_json::from_str(l).unwrap(),
            false => l.to_string(),
        })
        .collect();
    let mut want: Vec<String> = odd.iter().map(|k| k.to_string()).collect();
    want.sort();
    assert_eq!(read_back, want);
    let o = storage(dir2.path(), &["keys", "--json"]);
    let listed: Vec<String> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(listed, want);
    assert_eq!(ok(&["delete", "n"]), "true\n");
    assert_eq!(ok(&["delete", "n"]), "false\n");
    for i in 0..30 {
        ok(&["append", "chat", &format!(r#"{{"i":{i}}}"#)]);
    }
    assert_eq!(ok(&["len", "chat"]), "30\n");
    assert_eq!(
        ok(&["range", "chat", "-2", "-1"]),
        "{\"i\":28}\n{\"i\":29}\n"
    );
    assert_eq!(ok(&["range", "chat", "0", "0"]), "{\"i\":0}\n");
    // Wrong type, bad JSON, bad key: one error line, exit 2.
    for args in [
        vec!["get", "chat"],
        vec!["append", "greeting", "1"],
        vec!["set", "k", "not json"],
        vec!["set", "", "1"],
        vec!["set", "k", "1", "--ttl", "5"],
    ] {
        let o = storage(d, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert_eq!(stderr(&o).lines().count(), 1, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));
    }
}

#[test]
fn cache_role_with_ttl_through_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.yml");
    std::fs::write(
        &cfg,
        "name: x\nstorage:\n  cache: { type: sqlite, path: data/cache.db }\n  database: { type: sqlite, path: data/db.db }\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let o = storage(
        dir.path(),
        &[
            "--config", cfg, "set", "s", "1", "--ttl", "60000", "--role", "cache",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = storage(
        dir.path(),
        &["--config", cfg, "get", "s", "--role", "cache"],
    );
    assert_eq!(stdout(&o), "1\n");
    // The database is a different file: the key is not there.
    assert_eq!(
        storage(dir.path(), &["--config", cfg, "get", "s"])
            .status
            .code(),
        Some(1)
    );
    assert!(dir.path().join("data/cache.db").is_file());
}

#[test]
fn health_reports_each_role() {
    let dir = tempfile::tempdir().unwrap();
    let o = storage(dir.path(), &["health"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.lines()
            .any(|l| l.starts_with("cache") && l.contains("in-memory") && l.contains(" ok ")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("database") && l.contains("sqlite") && l.contains(" ok ")),
        "{out}"
    );
}

#[test]
fn health_degrades_and_fallback_off_fails_without_passwords() {
    let dir = tempfile::tempdir().unwrap();
    // A SQLite path that is a directory cannot open: the chain moves on to memory.
    std::fs::create_dir_all(dir.path().join("blocked.db")).unwrap();
    let degraded = dir.path().join("degraded.yml");
    std::fs::write(
        &degraded,
        "storage:\n  database: { type: sqlite, path: blocked.db, maxRetries: 0 }\n",
    )
    .unwrap();
    let o = storage(
        dir.path(),
        &["--config", degraded.to_str().unwrap(), "health"],
    );
    // Degraded: a fallback serves, so the exit code tells a monitor.
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("degraded"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("database") && l.contains("in-memory")),
        "{out}"
    );
    let off = dir.path().join("off.yml");
    std::fs::write(
        &off,
        "storage:\n  database: { type: sqlite, path: blocked.db, maxRetries: 0, fallback: [] }\n",
    )
    .unwrap();
    let o = storage(dir.path(), &["--config", off.to_str().unwrap(), "health"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
}

#[test]
fn bad_config_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.yml");
    std::fs::write(
        &cfg,
        "storage:\n  database:\n    type: sqlite\n    pathh: x.db\n",
    )
    .unwrap();
    let o = storage(dir.path(), &["--config", cfg.to_str().unwrap(), "get", "k"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("storage.database.pathh"), "{err}");
}

#[test]
fn schema_is_json() {
    let dir = tempfile::tempdir().unwrap();
    let o = storage(dir.path(), &["schema"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.to_string().contains("keyPrefix"));
}

#[test]
fn unreachable_postgres_health_is_degraded_to_sqlite_and_never_shows_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let block = format!(
        "type: postgres\n    url: postgresql://agent:pw-Xy9-secret@127.0.0.1:{port}/agent\n    maxRetries: 1\n    retryDelayMillis: 10\n    connectionTimeoutMillis: 500"
    );
    let cfg = dir.path().join("that.yml");
    std::fs::write(&cfg, format!("storage:\n  database:\n    {block}\n")).unwrap();
    let o = storage(dir.path(), &["--config", cfg.to_str().unwrap(), "health"]);
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(1), "{all}");
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.starts_with("database") && l.contains("sqlite") && l.contains("degraded")),
        "{all}"
    );
    assert!(!all.contains("pw-Xy9-secret"), "{all}");
    let off = dir.path().join("off.yml");
    std::fs::write(
        &off,
        format!("storage:\n  database:\n    {block}\n    fallback: []\n"),
    )
    .unwrap();
    let o = storage(dir.path(), &["--config", off.to_str().unwrap(), "health"]);
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(2), "{all}");
    assert!(!all.contains("pw-Xy9-secret"), "{all}");
}

/// Regression: passwords were printed by `health` and `demo` when the redactor and the driver
/// read a URL differently (`Pa/ss#1`: the driver reads the password up to the last `@`), and
/// for the key/value form with spaces around `=`.
#[test]
fn health_and_demo_never_print_passwords_the_driver_reads_differently() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (conn, secret) in [
        (
            format!("postgresql://app:Pa/ss#1@127.0.0.1:{port}/app"),
            "ss#1",
        ),
        (
            format!("host=127.0.0.1 port={port} user=app password = kv-Secret-9 dbname=app"),
            "kv-Secret-9",
        ),
    ] {
        let cfg = dir.path().join("pw.yml");
        std::fs::write(
            &cfg,
            format!(
                "storage:\n  database:\n    type: postgres\n    url: '{conn}'\n    maxRetries: 0\n    connectionTimeoutMillis: 500\n    fallback: [{{ type: sqlite, path: ':memory:' }}]\n"
            ),
        )
        .unwrap();
        for command in ["health", "demo"] {
            let o = storage(dir.path(), &["--config", cfg.to_str().unwrap(), command]);
            let all = format!("{}{}", stdout(&o), stderr(&o));
            assert!(all.contains("127.0.0.1"), "{command}: {all}");
            assert!(!all.contains(secret), "{command} printed {secret}: {all}");
        }
    }
}

/// The schema is assembled from the registered factories, so a config's plugins add theirs.
#[test]
fn schema_with_a_plugin_config_includes_the_plugins_options() {
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_storage"));
    let lib = exe.parent().unwrap().join("libplugin_memory.so");
    if !lib.is_file() {
        storage_servers::skip_or_fail(
            "schema_with_a_plugin_config_includes_the_plugins_options",
            "libplugin_memory.so is not built: run cargo build --workspace --all-targets --all-features",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("with-plugin.yml");
    std::fs::write(
        &cfg,
        format!(
            "storage:\n  plugins: ['{}']\n  cache: {{ type: in-memory }}\n",
            lib.display()
        ),
    )
    .unwrap();
    let o = storage(dir.path(), &["--config", cfg.to_str().unwrap(), "schema"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let blocks = v["properties"]["database"]["anyOf"].as_array().unwrap();
    let plugin = blocks
        .iter()
        .find(|b| b["title"] == "plugin-memory")
        .unwrap_or_else(|| panic!("no plugin-memory block: {v}"));
    assert!(
        plugin["properties"]["options"]["properties"]["panicOn"].is_object(),
        "{plugin}"
    );
    assert!(plugin["properties"]["keyPrefix"].is_object(), "{plugin}");
    // Without the config, only the built-ins.
    let o = storage(dir.path(), &["schema"]);
    assert!(!stdout(&o).contains("plugin-memory"));
}

/// `storage health`: 0 when every role is served by its primary, 1 when a fallback serves, 2
/// when a role is not served; `--json` says the same for machines.
#[test]
fn health_exit_codes_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let o = storage(dir.path(), &["health", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["roles"][1]["serving"], "sqlite");
    assert_eq!(v["roles"][1]["degraded"], false);

    std::fs::create_dir_all(dir.path().join("blocked.db")).unwrap();
    let degraded = dir.path().join("degraded.yml");
    std::fs::write(
        &degraded,
        "storage:\n  database: { type: sqlite, path: blocked.db, maxRetries: 0 }\n",
    )
    .unwrap();
    let o = storage(
        dir.path(),
        &["--config", degraded.to_str().unwrap(), "health", "--json"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "degraded");
    assert_eq!(v["roles"][1]["serving"], "in-memory");
    assert_eq!(v["roles"][1]["failed"][0]["path"], "storage.database");

    let off = dir.path().join("off.yml");
    std::fs::write(
        &off,
        "storage:\n  database: { type: sqlite, path: blocked.db, maxRetries: 0, fallback: [] }\n",
    )
    .unwrap();
    let o = storage(
        dir.path(),
        &["--config", off.to_str().unwrap(), "health", "--json"],
    );
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "failed");
    assert!(v["roles"][1]["serving"].is_null());
}

/// Regression: `storage demo --config app.yml` wrote its keys and history into the
/// application's namespace. It uses namespaces of its own now, and says which.
#[test]
fn demo_never_writes_into_the_applications_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.yml");
    std::fs::write(
        &app,
        "storage:\n  database: { type: sqlite, path: app.db }\n",
    )
    .unwrap();
    storage(
        dir.path(),
        &["--config", app.to_str().unwrap(), "set", "mine", "1"],
    );
    let o = storage(dir.path(), &["--config", app.to_str().unwrap(), "demo"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("\"storage-demo:db:\" (database)"),
        "{}",
        stdout(&o)
    );
    // The application's namespace holds only what the application wrote.
    let o = storage(dir.path(), &["--config", app.to_str().unwrap(), "keys"]);
    assert_eq!(stdout(&o).trim(), "mine");
}

/// On Redis, namespaces are string prefixes: an application with an empty keyPrefix would see
/// the demo's keys (and its `clear` delete them), so the demo refuses.
#[test]
fn demo_refuses_where_its_namespace_would_nest_in_the_applications() {
    let (_guard, url) = match std::env::var("STORAGE_TEST_REDIS_URL") {
        Ok(url) => (None, url),
        Err(_) if storage_servers::find_redis_server().is_some() => {
            let r = storage_servers::Redis::start(&Default::default()).unwrap();
            let url = r.url();
            (Some(r), url)
        }
        Err(_) => {
            return storage_servers::skip_or_fail(
                "demo_refuses_where_its_namespace_would_nest",
                "redis-server not found",
            );
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.yml");
    std::fs::write(
        &app,
        format!("storage:\n  cache: {{ type: redis, url: '{url}', keyPrefix: '' }}\n"),
    )
    .unwrap();
    let o = storage(dir.path(), &["--config", app.to_str().unwrap(), "demo"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("refusing to write under keyPrefix \"storage-demo:cache:\""),
        "{err}"
    );
    assert!(err.contains("storage.cache"), "{err}");
}

/// `storage acl` escapes a key prefix's glob characters (non-ASCII kept as is), refuses one
/// with whitespace (a rule line is split at spaces), and says so when no role is on Redis.
#[test]
fn acl_rules_from_hostile_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = |prefix: &str| {
        let path = d.join("acl.yml");
        let yaml = format!(
            "storage:\n  cache: {{ type: redis, url: 'redis://127.0.0.1:1', keyPrefix: '{prefix}' }}\n  database: {{ type: in-memory }}\n"
        );
        std::fs::write(&path, yaml).unwrap();
        path.display().to_string()
    };
    let out = storage(d, &["--config", &config("ä*[x]:"), "acl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("resetkeys ~ä\\*\\[x\\]:* resetchannels -@all +"),
        "{}",
        stdout(&out)
    );
    for forbidden in ["+keys", "+flushdb", "+flushall", "+config"] {
        assert!(!stdout(&out).contains(forbidden), "{forbidden}");
    }
    let out = storage(d, &["--config", &config("a b:"), "acl"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("storage.cache.keyPrefix: holds whitespace"),
        "{}",
        stderr(&out)
    );
    let out = storage(d, &["acl"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no role"), "{}", stderr(&out));
}
