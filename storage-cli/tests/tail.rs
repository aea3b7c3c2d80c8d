//! `storage tail` end to end on the embedded default: a follower process prints what other
//! processes append, one JSON value a line, from `--from` or from the end, and Ctrl-C (SIGINT)
//! ends it with exit 0.

#[path = "support/run.rs"]
mod run;

use run::{ok, storage};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `storage tail ARGS` in `dir`; its stdout lines arrive on the returned channel.
fn follow(
    dir: &std::path::Path,
    args: &[&str],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_storage"))
        .arg("tail")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

fn lines(rx: &std::sync::mpsc::Receiver<String>, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => got.push(line),
            Err(_) => panic!("{} of {n} lines within 20 s: {got:?}", got.len()),
        }
    }
    got
}

fn interrupt(mut child: std::process::Child) {
    // SAFETY: kill with the pid of a child we spawned and have not reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(status.success(), "Ctrl-C ends tail cleanly: {status}");
}

#[test]
fn tail_prints_what_other_processes_append_until_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&storage(d, &["append", "chat", r#"{"n":0}"#]));
    ok(&storage(d, &["append", "chat", r#"{"n":1}"#]));

    // From the first append: the two items there, then what comes.
    let (all, all_rx) = follow(d, &["chat", "--from", "0"]);
    assert_eq!(lines(&all_rx, 2), [r#"{"n":0}"#, r#"{"n":1}"#]);
    // From the end: only what comes next.
    let (new, new_rx) = follow(d, &["chat"]);
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
