//! Hostile and unlucky configuration text: nesting, size, duplicate keys, the trailing-colon
//! repair, control characters and values from the environment in errors. Each test is the
//! regression of one way a file was once read wrong; the ordinary file rules are in `tests.rs`.

use super::tests::{err, parse};
use super::{from_file, from_yaml_str};
use std::io::Write;
use std::path::Path;

/// Regression: 100,000 `[` took about a minute of CPU before serde_norway's recursion limit
/// applied, because libyaml's scanner does work proportional to the depth for every token and
/// the whole event stream was read first. The first pass stops at the 65th level.
#[test]
fn deep_nesting_is_refused_at_the_depth_limit() {
    for (text, what) in [
        ("[".repeat(100_000), "flow sequences"),
        ("{a: ".repeat(50_000), "flow maps"),
        (format!("{}x", "- ".repeat(100_000)), "block sequences"),
        (format!("cache: {}", "[".repeat(300_000)), "inside a block"),
    ] {
        let e = err(&text);
        assert!(e.contains("nested deeper than 64 levels"), "{what}: {e}");
        assert!(e.contains("line 1"), "{what}: {e}");
    }
    // 64 levels are allowed (and then meet the usual rules).
    let e = err(&format!("{}{}", "[".repeat(64), "]".repeat(64)));
    assert!(!e.contains("nested deeper"), "{e}");
}

/// Regression: there was no size limit; 50 MB of tiny nodes aborted the process on a failed
/// allocation. A file over 1 MiB, or a device that never ends, is refused before parsing.
#[test]
fn a_file_over_the_size_limit_is_refused_before_parsing() {
    let dir = std::env::temp_dir().join(format!("storage-config-size-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join("big.yml");
    let mut f = std::fs::File::create(&big).unwrap();
    f.write_all(b"storage:\n").unwrap();
    f.write_all("a: [1]\n".repeat(150_000).as_bytes()).unwrap();
    drop(f);
    let e = from_file(&big).unwrap_err().to_string();
    assert!(e.contains("over the limit of 1048576 bytes"), "{e}");
    assert!(e.contains("big.yml"), "{e}");
    let e = from_file(Path::new("/dev/zero")).unwrap_err().to_string();
    assert!(e.contains("over the limit"), "{e}");
    let e = from_yaml_str(&" ".repeat(1024 * 1024 + 1), Path::new("/b"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("over the limit"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Regression: a key written twice in one map kept the last silently, so a file with two
/// `database:` blocks served one and never mentioned the other. YAML and JSON both refuse it,
/// naming the key's path (and in YAML both lines).
#[test]
fn a_key_written_twice_is_refused_in_yaml_and_json() {
    let e = err("storage:\n  database: { type: lvl }\n  database: { type: plain }\n");
    assert!(
        e.contains("`storage.database` is written twice in one map (lines 2 and 3)"),
        "{e}"
    );
    let e = err("cache:\n  type: plain\n  keyPrefix: 'tenant-a:'\n  keyPrefix: 'tenant-b:'\n");
    assert!(
        e.contains("`cache.keyPrefix`") && e.contains("lines 3 and 4"),
        "{e}"
    );
    // Outside `storage:` too, in sequences, and quoted keys equal to plain ones.
    let e = err("name: a\nname: b\nstorage:\n");
    assert!(e.contains("`name`"), "{e}");
    let e = err("storage:\n  plugins:\n    - { a: 1, \"a\": 2 }\n");
    assert!(e.contains("`storage.plugins[0].a`"), "{e}");
    // The retry that quotes Saiki's `keyPrefix: a:` values does not hide a duplicate.
    let e = err("cache:\n  type: plain\n  keyPrefix: saiki:cache:\n  type: plain\n");
    assert!(e.contains("`cache.type`"), "{e}");

    let dir = std::env::temp_dir().join(format!("storage-config-dup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("storage.json");
    std::fs::write(
        &file,
        r#"{"storage": {"cache": {"type": "plain"}, "cache": {"type": "plain"}}}"#,
    )
    .unwrap();
    let e = from_file(&file).unwrap_err().to_string();
    assert!(
        e.contains("duplicate key `storage.cache`") && e.contains("line 1"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // Same value as serde's own for every kind the two formats carry.
    let text = r#"{"a": [1, -2, 18446744073709551615, 1.5, "s", true, null, {}], "b": {"c": []}}"#;
    let strict = storage_core::json::parse_strict(text).unwrap();
    assert_eq!(
        strict,
        serde_json::from_str::<serde_json::Value>(text).unwrap()
    );
    let yaml = "a: [1, -2, 18446744073709551615, 1.5, s, true, ~, .inf, {}]\nb: { c: [] }\n";
    let strict = serde_norway::from_str::<storage_core::json::Document>(yaml)
        .unwrap()
        .0;
    assert_eq!(
        strict,
        serde_norway::from_str::<serde_json::Value>(yaml).unwrap()
    );
}

/// Regression: the pass that quotes `keyPrefix: saiki:cache:` rewrote every line of that shape
/// once any line needed it, a literal block scalar's content included (`mend: x:` became
/// `mend: 'x:'`, changing the namespace). Now only the line the parser rejects is quoted; every
/// other scalar style reads as written.
#[test]
fn the_trailing_colon_repair_touches_only_the_rejected_line() {
    let prefix = |text: &str| {
        parse(text)
            .unwrap()
            .database
            .primary
            .common
            .key_prefix
            .clone()
    };
    let needs_repair = "cache:\n  type: plain\n  keyPrefix: saiki:cache:\n";
    for (block, expected) in [
        ("  keyPrefix: |-\n    mend: x:\n", "mend: x:"),
        ("  keyPrefix: >-\n    mend: x:\n", "mend: x:"),
        ("  keyPrefix: 'mend: x:'\n", "mend: x:"),
        ("  keyPrefix: \"mend: x:\"\n", "mend: x:"),
        ("  keyPrefix: mend:x\n", "mend:x"),
        ("  keyPrefix: db:app:\n", "db:app:"),
    ] {
        let text = format!("{needs_repair}database:\n  type: lvl\n{block}");
        assert_eq!(prefix(&text), expected, "{block:?}");
        // And in a file that needs no repair at all.
        if !block.contains("db:app:") {
            let text = format!("database:\n  type: lvl\n{block}");
            assert_eq!(prefix(&text), expected, "{block:?}");
        }
    }
    let flow = format!("{needs_repair}database: {{ type: lvl, keyPrefix: \"mend: x:\" }}\n");
    assert_eq!(prefix(&flow), "mend: x:");
    let c = parse(needs_repair).unwrap();
    assert_eq!(c.cache.primary.common.key_prefix, "saiki:cache:");
}

/// Regression: a field name holding terminal escapes was printed raw in the error. Every error
/// escapes control characters in what it quotes.
#[test]
fn control_characters_in_errors_are_escaped() {
    for text in [
        "storage:\n  cache:\n    type: plain\n    \"\\e]0;pwned\\a\\e[31mRED\": 1\n",
        "\"\\e[2Jwiped\": 1\n",
        "storage:\n  \"cache\\nnewline\": {}\n",
    ] {
        let e = parse(text).unwrap_err().to_string();
        assert!(!e.chars().any(char::is_control), "{e:?}");
        assert!(e.contains("\\u{1b}") || e.contains("\\n"), "{e}");
    }
}

/// Regression: `port: $DB_PASSWORD` printed the password in the error about the port. An error
/// about a value that came from the environment names the variable instead.
#[test]
fn an_error_never_quotes_a_value_from_the_environment() {
    // `PW` is `s3cret` in the test environment.
    for text in [
        "database: { type: lvl, level: $PW }",
        "database: { type: lvl, level: \"x${PW}y\" }",
        "database: { type: lvl, maxConnections: $PW }",
        "cache: { type: $PW }",
    ] {
        let e = parse(text).unwrap_err().to_string();
        assert!(!e.contains("s3cret"), "{text}: {e}");
        assert!(e.contains("$PW"), "{text}: {e}");
    }
}
