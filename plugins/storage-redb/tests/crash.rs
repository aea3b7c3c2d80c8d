//! Crash durability: a child process appends and sets, printing each acknowledged write; it is
//! killed with SIGKILL at a random moment, and every acknowledged write must be in the file.
//! The binary re-runs itself as the child, so it has no harness.

use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use storage_core::Database;
mod common;
use common::registry;
use storage_core::config::BackendSpec;
use storage_redb::RedbConfig;

fn spec(path: &Path) -> BackendSpec {
    BackendSpec::new(RedbConfig::new(path))
}

async fn open(path: &Path) -> Arc<dyn Database> {
    registry().open_database(&spec(path)).await.unwrap()
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
    if std::env::var("STORAGE_REDB_CHILD").is_ok() {
        return child(Path::new(&args[1]));
    }
    let dir = tempfile::tempdir().unwrap();
    println!("test redb_crash_durability_under_sigkill ...");
    parent(&dir.path().join("crash.redb"));
    println!("test redb_crash_durability_under_sigkill ... ok");
}

fn child(path: &Path) {
    rt().block_on(async {
        let db = open(path).await;
        let mut next = db.get_length("log").await.unwrap();
        let mut out = std::io::stdout().lock();
        loop {
            db.append("log", &json!(next)).await.unwrap();
            writeln!(out, "A {next}").unwrap();
            db.set("last", &json!(next)).await.unwrap();
            writeln!(out, "S {next}").unwrap();
            out.flush().unwrap();
            next += 1;
        }
    })
}

fn parent(path: &Path) {
    let mut acked = 0u64;
    let mut last_set = None;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    for round in 0..8 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .arg(path)
            .env("STORAGE_REDB_CHILD", "1")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let reader = {
            let (lines, stdout) = (lines.clone(), child.stdout.take().unwrap());
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            })
        };
        while lines.lock().unwrap().len() < 4 {
            assert!(
                child.try_wait().unwrap().is_none(),
                "round {round}: the child exited early"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(20 + seed % 250));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        for line in lines.lock().unwrap().iter() {
            let (op, n) = line.split_once(' ').unwrap();
            let n: u64 = n.parse().unwrap();
            match op {
                "A" => acked = acked.max(n + 1),
                _ => last_set = Some(last_set.map_or(n, |m: u64| m.max(n))),
            }
        }
        rt().block_on(async {
            let db = open(path).await;
            let items = db.get_range("log", 0, -1).await.unwrap();
            assert!(
                items.len() as u64 >= acked,
                "round {round}: {} items, {acked} acknowledged",
                items.len()
            );
            for (i, item) in items.iter().enumerate() {
                assert_eq!(item, &json!(i), "round {round}: item {i}");
            }
            if let Some(set) = last_set {
                let last = db
                    .get("last")
                    .await
                    .unwrap()
                    .and_then(|v| v.as_u64())
                    .unwrap();
                assert!(
                    last >= set,
                    "round {round}: last {last} < acknowledged {set}"
                );
            }
            db.close().await.unwrap();
        });
    }
    assert!(acked > 0);
}
