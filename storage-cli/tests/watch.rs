//! `storage watch` end to end on the embedded default: a watcher process prints the changes
//! other processes make to keys under its prefix, one JSON object a line, and nothing outside
//! it; `--from` replays from a printed position; Ctrl-C (SIGINT) ends it with exit 0.

#[path = "support/run.rs"]
mod run;

use run::{follow, interrupt, lines, ok, storage};
use serde_json::Value;
use std::time::Duration;

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}"))
}

#[test]
fn watch_prints_changes_under_its_prefix_from_other_processes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&storage(d, &["set", "user:0", "0"])); // creates the file before the watcher starts
    let (watcher, rx) = follow(d, &["watch", "user:"]);
    std::thread::sleep(Duration::from_millis(500));
    ok(&storage(d, &["set", "user:1", r#"{"name":"ada"}"#]));
    ok(&storage(d, &["set", "other", "1"]));
    ok(&storage(d, &["delete", "user:1"]));
    let got: Vec<Value> = lines(&rx, 2).iter().map(|l| parse(l)).collect();
    assert_eq!(
        (&got[0]["key"], &got[0]["kind"]),
        (&"user:1".into(), &"set".into())
    );
    assert!(
        got[0]["version"].is_string(),
        "a set carries its version: {got:?}"
    );
    assert_eq!(
        (&got[1]["key"], &got[1]["kind"]),
        (&"user:1".into(), &"delete".into())
    );
    interrupt(watcher);

    // From the set's position: both changes again, then it waits.
    let from = got[0]["position"].as_u64().unwrap().to_string();
    let (replay, replay_rx) = follow(d, &["watch", "user:", "--from", &from]);
    let again: Vec<Value> = lines(&replay_rx, 2).iter().map(|l| parse(l)).collect();
    assert_eq!(again, got);
    interrupt(replay);
}
