//! Runs the chat-history and config-file examples as a user would, in temp dirs of their own,
//! and checks what they print and keep.

use std::process::{Command, Output};

fn run(bin: &str, dir: &std::path::Path, args: &[&str]) -> String {
    let out: Output = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run the example");
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn chat_history_persists_and_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_chat_history");
    let out = run(bin, dir.path(), &["chat.db", "hello", "how are you?"]);
    assert!(out.starts_with("4 turn(s) in chat.db"), "{out}");
    assert!(
        out.contains("[user] hello\n[assistant] You said 5 characters."),
        "{out}"
    );
    // Eight more messages: sixteen more turns, of which the last ten are kept.
    let more: Vec<String> = (0..8).map(|i| format!("m{i}")).collect();
    let mut args = vec!["chat.db"];
    args.extend(more.iter().map(String::as_str));
    let out = run(bin, dir.path(), &args);
    assert!(out.starts_with("10 turn(s) in chat.db"), "{out}");
    assert!(
        !out.contains("hello"),
        "the oldest turns were trimmed: {out}"
    );
    assert!(
        out.trim_end()
            .ends_with("[assistant] You said 2 characters."),
        "{out}"
    );
    assert!(out.contains("[user] m3\n"), "{out}");
}

#[test]
fn an_application_from_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_app_from_config");
    let out = run(bin, dir.path(), &[]);
    assert!(out.contains("cache: served by in-memory"), "{out}");
    assert!(out.contains("database: served by sqlite"), "{out}");
    assert!(
        out.contains(r#"user:1 = {"name":"Ada","plan":"pro"}; cache-aside: 1 hit(s), 1 miss(es)"#),
        "{out}"
    );
    assert!(dir.path().join(".storage/app.db").is_file());
    // A config whose primary database cannot connect: the declared fallback serves, and the
    // example says so.
    std::fs::write(
        dir.path().join("degraded.yml"),
        "storage:\n  cache: { type: in-memory }\n  database: { type: sqlite, path: '/proc/none/app.db', fallback: [in-memory] }\n",
    )
    .unwrap();
    let out = run(bin, dir.path(), &["degraded.yml"]);
    assert!(
        out.contains("database: served by in-memory (degraded)"),
        "{out}"
    );
}

#[test]
fn a_read_only_layer_through_the_manager() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_read_only_layer");
    let out = run(bin, dir.path(), &[]);
    assert!(
        out.contains("read 3 turn(s) through the read-only layer over sqlite"),
        "{out}"
    );
    assert!(
        out.contains(
            r#"append: refused: unsupported: append "chat:report": this view is read-only"#
        ),
        "{out}"
    );
    assert!(out.contains("cache set: refused"), "{out}");
    assert!(out.contains("still 3 turn(s)"), "{out}");
    // Twice: the layer never let the second run's reader write either.
    let out = run(bin, dir.path(), &[]);
    assert!(out.contains("still 3 turn(s)"), "{out}");
}

#[test]
fn an_append_whose_outcome_is_unknown_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(env!("CARGO_BIN_EXE_append_once"), dir.path(), &[]);
    assert!(out.contains("append failed (unknown)"), "{out}");
    assert!(out.contains("not sent again"), "{out}");
    assert!(out.contains("the list holds the turn 1 time(s)"), "{out}");
}

#[test]
fn concurrent_updates_of_one_session_keep_every_note() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        env!("CARGO_BIN_EXE_shared_session"),
        dir.path(),
        &["session.db", "8", "25"],
    );
    assert!(
        out.contains("8 writers × 25 notes: the session keeps 200 notes"),
        "{out}"
    );
}
