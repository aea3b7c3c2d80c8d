//! Several processes on one file: crash durability under SIGKILL, and concurrent appenders.
//!
//! This test binary re-runs itself as the child processes (`STORAGE_SQLITE_CHILD` says which),
//! so it uses no harness.

use r2d2_sqlite::rusqlite::Connection;
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use storage_core::config::BackendSpec;
use storage_sqlite::SqliteConfig;
mod common;
use common::open_database;

const CHILD: &str = "STORAGE_SQLITE_CHILD";

fn spec(path: &Path) -> BackendSpec {
    BackendSpec::new(SqliteConfig::file(path))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match std::env::var(CHILD).as_deref() {
        Ok("crash") => return crash_child(Path::new(&args[1])),
        Ok("append") => {
            return append_child(
                Path::new(&args[1]),
                args[2].parse().unwrap(),
                args[3].parse().unwrap(),
            );
        }
        Ok("create") => {
            return create_child(Path::new(&args[1]), &args[2], args[3].parse().unwrap());
        }
        _ => {}
    }
    // `cargo test -- <filter>` passes arguments; this binary has two tests and runs both.
    let dir = tempfile::tempdir().unwrap();
    println!("test crash_durability_under_sigkill ...");
    crash_durability_under_sigkill(&dir.path().join("crash.db"));
    println!("test crash_durability_under_sigkill ... ok");
    println!("test four_processes_append_to_one_key ...");
    four_processes_append_to_one_key(&dir.path().join("multi.db"));
    println!("test four_processes_append_to_one_key ... ok");
    println!("test processes_creating_one_file_at_once_all_write ...");
    processes_creating_one_file_at_once_all_write(dir.path());
    println!("test processes_creating_one_file_at_once_all_write ... ok");
}

/// Waits for `start_ms` (so that every process opens at once), opens `path`, writes `key`.
fn create_child(path: &Path, key: &str, start_ms: u128) {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    while now() < start_ms {
        std::thread::sleep(Duration::from_micros(200));
    }
    rt().block_on(async {
        let db = match open_database(&spec(path)).await {
            Ok(db) => db,
            Err(e) => {
                eprintln!("{key}: open failed: {e}");
                std::process::exit(1);
            }
        };
        if let Err(e) = db.set(key, &json!(key)).await {
            eprintln!("{key}: set failed: {e}");
            std::process::exit(1);
        }
    })
}

/// Regression: 20 processes creating one new file together read its identity in three steps,
/// and about one round in 30 one of them saw another's half-made schema (`application_id` 0,
/// 3 schema objects), refused the file as another application's and lost its write. 50 rounds
/// of 20 processes: every process opens the file and every write is there.
fn processes_creating_one_file_at_once_all_write(dir: &Path) {
    const ROUNDS: usize = 50;
    const PROCESSES: usize = 20;
    let exe = std::env::current_exe().unwrap();
    for round in 0..ROUNDS {
        let path = dir.join(format!("first-open-{round}.db"));
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            + 150;
        let children: Vec<_> = (0..PROCESSES)
            .map(|i| {
                Command::new(&exe)
                    .env(CHILD, "create")
                    .arg(&path)
                    .arg(format!("k{i}"))
                    .arg(start.to_string())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let conn = Connection::open(&path).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM kv", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, PROCESSES as i64, "round {round}: writes missing");
    }
}

/// Appends and sets forever, printing each operation once it is acknowledged.
fn crash_child(path: &Path) {
    rt().block_on(async {
        let db = open_database(&spec(path)).await.expect("child open");
        let mut next = db.get_length("log").await.expect("length");
        let mut out = std::io::stdout().lock();
        loop {
            db.append("log", &json!(next)).await.expect("append");
            writeln!(out, "A {next}").unwrap();
            db.set("last", &json!(next)).await.expect("set");
            writeln!(out, "S {next}").unwrap();
            out.flush().unwrap();
            next += 1;
        }
    })
}

fn append_child(path: &Path, writer: u64, count: u64) {
    rt().block_on(async {
        let db = open_database(&spec(path)).await.expect("child open");
        for i in 0..count {
            if let Err(e) = db.append("shared", &json!({"w": writer, "i": i})).await {
                eprintln!("writer {writer}: append {i} failed: {e}");
                std::process::exit(1);
            }
        }
    })
}

fn this_exe() -> PathBuf {
    std::env::current_exe().unwrap()
}

fn crash_durability_under_sigkill(path: &Path) {
    let rounds = 12;
    let mut acked_appends = 0u64;
    let mut last_acked_set: Option<u64> = None;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    for round in 0..rounds {
        let mut child = Command::new(this_exe())
            .arg(path)
            .env(CHILD, "crash")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let reader = {
            let lines = lines.clone();
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            })
        };
        // Wait for the child to be writing, then kill it at a random moment.
        while lines.lock().unwrap().len() < 4 {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("round {round}: child exited early: {status}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(20 + seed % 300));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        for line in lines.lock().unwrap().iter() {
            let (op, n) = line.split_once(' ').unwrap();
            let n: u64 = n.parse().unwrap();
            match op {
                "A" => acked_appends = acked_appends.max(n + 1),
                "S" => last_acked_set = Some(last_acked_set.map_or(n, |m| m.max(n))),
                other => panic!("unexpected child output {other}"),
            }
        }
        // Every acknowledged write is there, with no gaps and no duplicates.
        rt().block_on(async {
            let db = open_database(&spec(path)).await.expect("reopen after kill");
            let items = db.get_range("log", 0, -1).await.unwrap();
            assert!(
                items.len() as u64 >= acked_appends,
                "round {round}: {} items, {acked_appends} acknowledged",
                items.len()
            );
            for (i, item) in items.iter().enumerate() {
                assert_eq!(
                    item,
                    &json!(i),
                    "round {round}: item {i} (gap or duplicate)"
                );
            }
            assert_eq!(db.get_length("log").await.unwrap(), items.len() as u64);
            if let Some(set) = last_acked_set {
                let last = db
                    .get("last")
                    .await
                    .unwrap()
                    .and_then(|v| v.as_u64())
                    .expect("last set");
                assert!(
                    last >= set,
                    "round {round}: last = {last}, acknowledged {set}"
                );
            }
            db.close().await.unwrap();
        });
        let conn = Connection::open(path).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "round {round}");
    }
    assert!(
        acked_appends > 0,
        "no append was acknowledged in {rounds} rounds"
    );
}

fn four_processes_append_to_one_key(path: &Path) {
    let (writers, count) = (4u64, 1000u64);
    // Create the file first so that the children race on appends, not on the migration.
    rt().block_on(async {
        open_database(&spec(path))
            .await
            .unwrap()
            .close()
            .await
            .unwrap()
    });
    let children: Vec<_> = (0..writers)
        .map(|w| {
            Command::new(this_exe())
                .args([path.to_str().unwrap(), &w.to_string(), &count.to_string()])
                .env(CHILD, "append")
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        let status = c.wait().unwrap();
        assert!(status.success(), "a writer failed: {status}");
    }
    rt().block_on(async {
        let db = open_database(&spec(path)).await.unwrap();
        let items = db.get_range("shared", 0, -1).await.unwrap();
        assert_eq!(items.len() as u64, writers * count);
        assert_eq!(db.get_length("shared").await.unwrap(), writers * count);
        let unique: std::collections::BTreeSet<String> =
            items.iter().map(|v| v.to_string()).collect();
        assert_eq!(unique.len(), items.len(), "duplicated items");
        for w in 0..writers {
            let mine: Vec<u64> = items
                .iter()
                .filter(|v| v["w"] == json!(w))
                .map(|v| v["i"].as_u64().unwrap())
                .collect();
            assert_eq!(mine, (0..count).collect::<Vec<_>>(), "writer {w}'s order");
        }
    });
}
