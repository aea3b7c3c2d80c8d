//! What a key costs at rest, for the scale run: the bytes each backend holds (SQLite's file,
//! PostgreSQL's database size, Redis's `used_memory`) read before and after the namespace
//! curve's fills, and, for the in-process stores, the resident-size growth of a process that
//! fills only the project's in-memory store, a raw `HashMap<String, Value>` or a moka cache
//! (`storage-bench --footprint-probe <kind> <keys>`, one fresh process each, so that one
//! fill's freed memory does not hide the next's). Not the raw bulk loads (`scale_raw.rs`).

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// Where a backend's bytes at rest are read.
pub enum Footprint {
    /// Measured by [`memory_probe`] in processes of their own.
    InProcess,
    Sqlite(PathBuf),
    Postgres(String),
    Redis(String),
}

impl Footprint {
    /// The bytes the backend holds now; `None` for the in-process stores.
    pub async fn bytes(&self) -> Result<Option<u64>, String> {
        Ok(Some(match self {
            Footprint::InProcess => return Ok(None),
            Footprint::Sqlite(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || sqlite_bytes(&path))
                    .await
                    .map_err(|e| e.to_string())??
            }
            Footprint::Postgres(url) => {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                let size: i64 = client
                    .query_one("SELECT pg_database_size(current_database())", &[])
                    .await
                    .map_err(|e| e.to_string())?
                    .get(0);
                size as u64
            }
            Footprint::Redis(url) => {
                let mut conn = redis::Client::open(url.as_str())
                    .map_err(|e| e.to_string())?
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(|e| e.to_string())?;
                crate::scale_raw::used_memory(&mut conn).await?
            }
        }))
    }
}

impl Footprint {
    /// The server's count of WAL fsyncs so far (PostgreSQL's `pg_stat_wal.wal_sync`); `None`
    /// where none is kept.
    pub async fn wal_syncs(&self) -> Option<i64> {
        let Footprint::Postgres(url) = self else {
            return None;
        };
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .ok()?;
        tokio::spawn(conn);
        let row = client
            .query_one("SELECT wal_sync FROM pg_stat_wal", &[])
            .await
            .ok()?;
        Some(row.get(0))
    }
}

/// The pages in use (the file less its free list: pages freed by earlier work stay in the
/// file and are reused), after a checkpoint moved the write-ahead log into the file.
fn sqlite_bytes(path: &std::path::Path) -> Result<u64, String> {
    let c = r2d2_sqlite::rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
    let e = |e: r2d2_sqlite::rusqlite::Error| e.to_string();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .map_err(e)?;
    let pragma = |name: &str| -> Result<i64, String> {
        c.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .map_err(e)
    };
    let used = pragma("page_count")? - pragma("freelist_count")?;
    Ok((used * pragma("page_size")?) as u64)
}

/// `Err(why)` when `count` more keys of about `per_key` bytes might not fit where `footprint`
/// keeps its bytes (the disk under the temporary directory, or memory), with room to spare
/// for write-ahead logs and indexes (three times the estimate).
pub fn room_for(footprint: &Footprint, per_key: f64, count: usize) -> Result<(), String> {
    let needed = per_key * count as f64 * 3.0;
    let (free, what) = match footprint {
        Footprint::InProcess | Footprint::Redis(_) => (available_memory(), "memory available"),
        Footprint::Sqlite(path) => (free_disk(path.parent().unwrap_or(path)), "disk free"),
        Footprint::Postgres(_) => (free_disk(&std::env::temp_dir()), "disk free"),
    };
    if (free as f64) < needed {
        return Err(format!(
            "about {:.1} GB needed, {:.1} GB {what}",
            needed / 1e9,
            free as f64 / 1e9
        ));
    }
    Ok(())
}

/// `MemAvailable` of `/proc/meminfo`, in bytes.
fn available_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(u64::MAX, |kb| kb * 1024)
}

/// Bytes free to an unprivileged user on the file system holding `dir`.
fn free_disk(dir: &std::path::Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return u64::MAX;
    };
    // SAFETY: `path` is a NUL-terminated string that outlives the call; `stat` is written by it.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return u64::MAX;
    }
    stat.f_bavail as u64 * stat.f_frsize as u64
}

/// The in-process stores a probe can fill.
pub const PROBES: [&str; 3] = ["in-memory", "hashmap", "moka"];

/// Bytes of resident memory per key of a fresh process that filled `kind` with `keys` keys
/// of `value` (the scale run's 200-byte value).
pub fn memory_probe(kind: &str, keys: usize) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .args(["--footprint-probe", kind, &keys.to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "the {kind} probe failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let bytes: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("the {kind} probe printed {text:?}"))?;
    Ok(bytes / keys as f64)
}

/// The resident set size of this process, in bytes.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf reads a constant of the system; no memory is touched.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(1) as u64
}

/// `--footprint-probe <kind> <keys>`: fills `kind` and prints the resident-size growth.
pub async fn probe_main(kind: &str, keys: usize) {
    let value = crate::scale::value_of(200);
    let entries = |from: usize| -> Vec<(String, Value)> {
        (from..(from + 1000).min(keys))
            .map(|i| (format!("k{i}"), value.clone()))
            .collect()
    };
    let before = resident_bytes();
    let grown = match kind {
        "in-memory" => {
            let db = crate::open("database: { type: in-memory }\ncache: { type: in-memory }").await;
            let before = resident_bytes();
            for from in (0..keys).step_by(1000) {
                db.mset(&entries(from)).await.expect("a fill");
            }
            let grown = resident_bytes().saturating_sub(before);
            std::mem::forget(db); // measured; not worth the time to free
            grown
        }
        "hashmap" => {
            let mut map = std::collections::HashMap::<String, Value>::new();
            for from in (0..keys).step_by(1000) {
                map.extend(entries(from));
            }
            let grown = resident_bytes().saturating_sub(before);
            std::mem::forget(map);
            grown
        }
        "moka" => {
            let cache = moka::sync::Cache::<String, Value>::builder()
                .max_capacity(keys as u64 * 2)
                .time_to_live(std::time::Duration::from_secs(3600))
                .build();
            for from in (0..keys).step_by(1000) {
                for (k, v) in entries(from) {
                    cache.insert(k, v);
                }
            }
            cache.run_pending_tasks();
            let grown = resident_bytes().saturating_sub(before);
            std::mem::forget(cache);
            grown
        }
        other => panic!("--footprint-probe: no probe named {other:?} (one of {PROBES:?})"),
    };
    println!("{grown}");
}
