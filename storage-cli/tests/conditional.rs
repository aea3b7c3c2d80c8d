//! `get --version` and `set --if-version / --if-absent` end to end on the embedded default
//! (SQLite) and a SQLite cache: the JSON object, the new version, exit 3 with the current
//! version on stderr, and the argument errors.

use std::path::Path;
use std::process::Output;

#[path = "support/run.rs"]
mod run;
use run::{stderr as err, storage};

fn out(o: &Output) -> String {
    run::stdout(o).trim().to_string()
}

fn versioned(dir: &Path, key: &str) -> (serde_json::Value, String) {
    let o = storage(dir, &["get", key, "--version"]);
    assert!(o.status.success(), "{}", err(&o));
    let doc: serde_json::Value = serde_json::from_str(&out(&o)).expect("one JSON object");
    let version = doc["version"].as_str().expect("a version").to_string();
    assert_eq!(version.len(), 16, "{doc}");
    (doc["value"].clone(), version)
}

#[test]
fn versions_and_conditional_sets_on_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(
        storage(d, &["get", "s", "--version"]).status.code(),
        Some(1)
    );
    assert!(storage(d, &["set", "s", r#"{"n":1}"#]).status.success());
    let (value, v1) = versioned(d, "s");
    assert_eq!(value, serde_json::json!({"n": 1}));

    let o = storage(d, &["set", "s", r#"{"n":2}"#, "--if-version", &v1]);
    assert!(o.status.success(), "{}", err(&o));
    let v2 = out(&o);
    assert_ne!(v2, v1);
    assert_eq!(versioned(d, "s"), (serde_json::json!({"n": 2}), v2.clone()));

    // A stale version: exit 3, nothing written, the current version on stderr.
    let o = storage(d, &["set", "s", r#"{"n":3}"#, "--if-version", &v1]);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(
        err(&o).contains(&format!("current-version: {v2}")),
        "{}",
        err(&o)
    );
    assert_eq!(versioned(d, "s").1, v2);

    let o = storage(d, &["set", "s", "0", "--if-absent"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        err(&o).contains(&format!("current-version: {v2}")),
        "{}",
        err(&o)
    );
    let o = storage(d, &["set", "fresh", "0", "--if-absent"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(versioned(d, "fresh").1, out(&o));
    let o = storage(d, &["set", "missing", "0", "--if-version", &v2]);
    assert_eq!(o.status.code(), Some(3));
    assert!(err(&o).contains("current-version: none"), "{}", err(&o));

    // Argument errors: exit 2, naming the flag.
    let o = storage(d, &["set", "s", "1", "--if-version", "12"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("--if-version"), "{}", err(&o));
    let o = storage(d, &["set", "s", "1", "--if-version", &v2, "--if-absent"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
}

#[test]
fn if_absent_on_a_cache_is_a_lease() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = d.join("agent.yml");
    std::fs::write(
        &cfg,
        "storage:\n  cache: { type: sqlite, path: cache.db }\n  database: { type: sqlite, path: db.db }\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let lease = |holder: &str| {
        storage(
            d,
            &[
                "--config",
                cfg,
                "set",
                "lock",
                holder,
                "--if-absent",
                "--ttl",
                "60000",
                "--role",
                "cache",
            ],
        )
    };
    assert!(lease("1").status.success());
    let o = lease("2");
    assert_eq!(o.status.code(), Some(3));
    assert!(err(&o).contains("already holds"), "{}", err(&o));
    let o = storage(d, &["--config", cfg, "get", "lock", "--role", "cache"]);
    assert_eq!(out(&o), "1");
    for args in [
        &[
            "--config",
            cfg,
            "get",
            "lock",
            "--role",
            "cache",
            "--version",
        ][..],
        &[
            "--config",
            cfg,
            "set",
            "lock",
            "1",
            "--role",
            "cache",
            "--if-version",
            "0000000000000001",
        ][..],
    ] {
        let o = storage(d, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(err(&o).contains("caches keep no versions"), "{}", err(&o));
    }
}
