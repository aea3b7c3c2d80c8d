//! How `set` and `append` take their values: negative numbers as arguments, keys after `--`,
//! values from a file or standard input (longer than an argument may be), and the warning
//! when a write goes to a role that lives only as long as the command.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn storage(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_storage"))
        .args(args)
        .current_dir(dir)
        .env_remove("STORAGE_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run storage");
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = storage(dir, args, None);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn negative_numbers_and_dash_keys_are_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["set", "k", "-5"]);
    assert_eq!(ok(d, &["get", "k"]), "-5\n");
    ok(d, &["set", "f", "-0.25"]);
    assert_eq!(ok(d, &["get", "f"]), "-0.25\n");
    ok(d, &["append", "chat", "-1"]);
    ok(d, &["append", "chat", "-2"]);
    assert_eq!(ok(d, &["range", "chat", "0", "-1"]), "-1\n-2\n");
    ok(d, &["set", "--", "-dash", "7"]);
    assert_eq!(ok(d, &["get", "--", "-dash"]), "7\n");
    // Without `--` a dash key is an unknown flag: a usage error, nothing written.
    let o = storage(d, &["get", "-dash"], None);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn values_from_a_file_or_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 1 MiB of JSON: more than an argument is allowed to be on some systems.
    let big = serde_json::Value::String("x".repeat(1 << 20));
    std::fs::write(d.join("big.json"), big.to_string()).unwrap();
    ok(d, &["set", "big", "--value-file", "big.json"]);
    let back: serde_json::Value = serde_json::from_str(&ok(d, &["get", "big"])).unwrap();
    assert_eq!(back, big);

    let o = storage(
        d,
        &["append", "chat", "--value-file", "-"],
        Some(br#"{"role":"user","content":"from stdin"}"#),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        ok(d, &["range", "chat", "0", "-1"]),
        "{\"role\":\"user\",\"content\":\"from stdin\"}\n"
    );

    // Not JSON, a missing file, both forms at once, and neither: clear refusals.
    std::fs::write(d.join("bad.json"), "{not json").unwrap();
    for args in [
        &["set", "k", "--value-file", "bad.json"][..],
        &["set", "k", "--value-file", "missing.json"][..],
        &["set", "k", "1", "--value-file", "big.json"][..],
        &["set", "k"][..],
    ] {
        let o = storage(d, args, None);
        assert!(!o.status.success(), "{args:?} was accepted");
        assert!(!String::from_utf8_lossy(&o.stderr).is_empty());
    }
    assert_eq!(storage(d, &["get", "k"], None).status.code(), Some(1));
}

#[test]
fn a_write_to_a_per_process_store_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = storage(d, &["set", "k", "1", "--role", "cache"], None);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning: the cache role is served by an in-memory store of this process"),
        "{err}"
    );
    // The durable default database gets no warning.
    let o = storage(d, &["set", "k", "1"], None);
    assert!(String::from_utf8_lossy(&o.stderr).is_empty());
}

#[test]
fn version_names_what_a_plugin_must_match() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(dir.path(), &["--version"]);
    let fingerprint = storage_core::plugin::ABI_FINGERPRINT.trim_end_matches('\0');
    assert!(out.contains(&format!("fingerprint {fingerprint}")), "{out}");
    assert!(out.contains("rustc "), "{out}");
    let serde_json = storage_core::plugin::SERDE_JSON_VERSION.trim_end_matches('\0');
    assert!(out.contains(&format!("serde_json {serde_json}")), "{out}");
    assert!(
        out.contains(&format!(
            "plugin ABI {}",
            storage_core::plugin::PLUGIN_ABI_VERSION
        )),
        "{out}"
    );
}

#[test]
fn config_goes_where_it_applies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("a.yml"),
        "storage:\n  cache: { type: in-memory }\n  database: { type: sqlite, path: a.db }\n",
    )
    .unwrap();
    let o = storage(
        d,
        &[
            "--config", "a.yml", "migrate", "--from", "a.yml", "--to", "a.yml",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--config does not apply to migrate"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Not offered in the help of a command that ignores it.
    let help = ok(d, &["migrate", "--help"]);
    assert!(!help.contains("--config"), "{help}");
    ok(d, &["--config", "a.yml", "set", "k", "1"]);
    assert!(d.join("a.db").is_file());
}

#[test]
fn a_named_memory_store_is_per_process_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("m.yml"),
        "storage:\n  cache: { type: in-memory, store: shared, keyPrefix: 'c:' }\n  database: { type: in-memory, store: shared, keyPrefix: 'd:' }\n",
    )
    .unwrap();
    let o = storage(d, &["--config", "m.yml", "set", "k", "1"], None);
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("warning: the database role is served by an in-memory store"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Regressions: an integer past 64 bits was stored as a float (`1.8446744073709552e+19`, exit
/// 0), `{"a":1,"a":2}` was stored as `{"a":2}`, and an invalid 128 KiB argument was printed back
/// whole. Now the first two are refused naming what and where, nothing is written, and an error
/// quotes a short escaped excerpt and the length.
#[test]
fn values_that_would_be_stored_changed_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (value, says) in [
        ("18446744073709551616", "does not fit in 64 bits"),
        ("-9223372036854775809", "does not fit in 64 bits"),
        (
            r#"{"n": [1, 123456789012345678901234567890]}"#,
            "at byte 10",
        ),
        (r#"{"a":1,"a":2}"#, "duplicate key `a`"),
        (r#"{"m":{"x":[{"b":1,"b":2}]}}"#, "duplicate key `m.x[0].b`"),
    ] {
        let o = storage(d, &["set", "k", value], None);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{value}: {err}");
        assert!(err.contains(says), "{value}: {err}");
        let o = storage(
            d,
            &["append", "chat", "--value-file", "-"],
            Some(value.as_bytes()),
        );
        assert!(String::from_utf8_lossy(&o.stderr).contains(says), "{value}");
    }
    assert_eq!(storage(d, &["get", "k"], None).status.code(), Some(1));
    assert_eq!(ok(d, &["range", "chat", "0", "-1"]), "");
    // Kept exactly: the extremes of both ranges, and floats as written.
    for value in [
        "18446744073709551615",
        "-9223372036854775808",
        "1e400",
        "0.5",
    ] {
        let o = storage(d, &["set", "k", value], None);
        if value == "1e400" {
            assert_eq!(o.status.code(), Some(2), "{value}");
            continue;
        }
        assert!(o.status.success(), "{value}");
        assert_eq!(ok(d, &["get", "k"]), format!("{value}\n"));
    }

    let huge = format!("{{\"a\": \"{}\x1b[31m", "x".repeat(120 * 1024));
    let o = storage(d, &["set", "k", &huge], None);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.len() < 600, "{} bytes on stderr", err.len());
    assert!(err.contains(&format!("({} bytes)", huge.len())), "{err}");
    assert!(!err.contains('\x1b'), "{err:?}");
}
