//! `storage tail` end to end on the embedded default: a follower process prints what other
//! processes append, one JSON value a line, from `--from` or from the end, and Ctrl-C (SIGINT)
//! ends it with exit 0.

#[path = "support/run.rs"]
mod run;

use run::{follow, interrupt, lines, ok, storage};
use std::process::Command;
use std::time::Duration;

#[test]
fn tail_prints_what_other_processes_append_until_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&storage(d, &["append", "chat", r#"{"n":0}"#]));
    ok(&storage(d, &["append", "chat", r#"{"n":1}"#]));

    // From the first append: the two items there, then what comes.
    let (all, all_rx) = follow(d, &["tail", "chat", "--from", "0"]);
    assert_eq!(lines(&all_rx, 2), [r#"{"n":0}"#, r#"{"n":1}"#]);
    // From the end: only what comes next.
    let (new, new_rx) = follow(d, &["tail", "chat"]);
    std::thread::sleep(Duration::from_millis(300));
    ok(&storage(d, &["append", "chat", r#"{"n":2}"#]));
    ok(&storage(d, &["append", "chat", r#""three""#]));
    assert_eq!(lines(&all_rx, 2), [r#"{"n":2}"#, r#""three""#]);
    assert_eq!(lines(&new_rx, 2), [r#"{"n":2}"#, r#""three""#]);
    interrupt(all);
    interrupt(new);
}

#[test]
fn tail_ends_with_an_error_when_the_list_is_trimmed_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for i in 0..5 {
        ok(&storage(d, &["append", "chat", &i.to_string()]));
    }
    // A follower from index 1 of a list whose head is trimmed to 3 before it starts.
    ok(&storage(d, &["trim", "chat", "3", "-1"]));
    let out = Command::new(env!("CARGO_BIN_EXE_storage"))
        .args(["tail", "chat", "--from", "1"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("trimmed") && err.contains("1..3"), "{err}");
}
