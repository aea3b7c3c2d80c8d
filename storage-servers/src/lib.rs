//! Throwaway PostgreSQL, Redis and S3-protocol servers for tests and for `cargo xtask test`.
//!
//! Each server gets its own directory under `/tmp`, listens on 127.0.0.1 on a free port, and is
//! stopped when its handle drops (SIGINT for PostgreSQL's fast shutdown, SIGTERM for Redis,
//! SIGKILL if they linger), and its directory removed. Servers are started through
//! `setpriv --pdeathsig KILL`, so they die with the thread that started them even if the test
//! process is killed. A start that loses its port to another process is retried on a new port.
//! As root, PostgreSQL runs as the `postgres` user, since initdb and postgres refuse root.
//!
//! It has no dependency beyond libc, so that xtask builds fast; the fault proxy (`FaultProxy`,
//! feature `proxy`) adds tokio. It is not a general process
//! supervisor.
//!
//! ```no_run
//! let pg = storage_servers::Postgres::start(&Default::default()).unwrap();
//! println!("{}", pg.url());
//! let redis = storage_servers::Redis::start(&Default::default()).unwrap();
//! println!("{}", redis.url());
//! // Both stop when dropped.
//! ```

#![warn(missing_docs)]

#[cfg(feature = "tls")]
mod certs;
mod postgres;
#[cfg(feature = "proxy")]
mod proxy;
mod redis;
mod redis_cluster;
mod s3;

#[cfg(feature = "tls")]
pub use certs::TestCerts;
pub use postgres::{Postgres, PostgresOptions, TlsFiles};
#[cfg(feature = "proxy")]
pub use proxy::{Fault, FaultProxy};
pub use redis::{Redis, RedisOptions};
pub use redis_cluster::RedisCluster;
pub use s3::{S3S_FS_VERSION, S3Server, find_s3s_fs};

use std::fs;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How many times a start that lost its port is retried on a new one.
const PORT_ATTEMPTS: usize = 6;

/// Whether `STORAGE_TEST_REQUIRE_ALL=1`: then a test that cannot get its server fails.
pub fn require_all() -> bool {
    std::env::var("STORAGE_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1" || v == "true")
}

/// Reports a server a test cannot have: a panic under [`require_all`], otherwise a loud skip
/// message on stderr with the install hint.
pub fn skip_or_fail(test: &str, why: &str) {
    if require_all() {
        panic!("{test}: {why} (STORAGE_TEST_REQUIRE_ALL=1 forbids skipping)");
    }
    eprintln!(
        "\n!!! SKIPPED {test}: {why}\n!!! install: apt-get install -y redis-server postgresql; cargo xtask test installs s3s-fs\n"
    );
}

/// A PostgreSQL server for a test: the shared one (`STORAGE_TEST_POSTGRES_URL`, which `cargo
/// xtask test` sets), or a private one started here and kept alive by the returned guard; `None`
/// after [`skip_or_fail`] when there is neither.
pub fn test_postgres(test: &str) -> Option<(Option<Postgres>, String)> {
    if let Ok(url) = std::env::var("STORAGE_TEST_POSTGRES_URL") {
        return Some((None, url));
    }
    if find_postgres_bin().is_none() {
        skip_or_fail(
            test,
            "no PostgreSQL: set STORAGE_TEST_POSTGRES_URL or install PostgreSQL",
        );
        return None;
    }
    let pg = Postgres::start(&Default::default()).expect("start a private PostgreSQL");
    let url = pg.url();
    Some((Some(pg), url))
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A port for a Redis Cluster node: 55535 or lower, with the port + 10000 (its cluster bus)
/// free as well. The kernel's ephemeral ports run higher, so this walks a range of its own
/// from a start that differs between processes and calls.
pub fn free_cluster_port() -> io::Result<u16> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919) + NEXT.fetch_add(97, Ordering::Relaxed);
    let (low, span) = (20_000u32, 35_000u32);
    for i in 0..span {
        let port = (low + (seed + i) % span) as u16;
        let bus = port + 10_000;
        if let (Ok(_a), Ok(_b)) = (
            TcpListener::bind(("127.0.0.1", port)),
            TcpListener::bind(("127.0.0.1", bus)),
        ) {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free cluster port",
    ))
}

/// A fresh directory under /tmp, readable by other users (the postgres user must pass through).
///
/// The first call also removes the directories of processes that are gone: one killed before its
/// servers dropped (or a test binary that exited holding them) leaves its data behind, and a
/// PostgreSQL data directory is hundreds of megabytes.
pub fn temp_dir(kind: &str) -> io::Result<PathBuf> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(remove_dirs_of_gone_processes);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = PathBuf::from(format!(
        "/tmp/storage-{kind}-{}-{}-{nanos:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir)?;
    set_mode(&dir, 0o755)?;
    Ok(dir)
}

/// Removes `/tmp/storage-{kind}-{pid}-{n}-{nanos}` directories whose process no longer runs.
fn remove_dirs_of_gone_processes() {
    let Ok(entries) = fs::read_dir("/tmp") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("storage-")) else {
            continue;
        };
        // The process id is the third field from the end (kinds may contain dashes).
        let Some(pid) = rest.rsplit('-').nth(2).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let alive = Path::new("/proc").join(pid.to_string()).exists();
        if !alive && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The directory of PostgreSQL's server binaries: `$PG_BIN`, `pg_config --bindir`, or the
/// newest `/usr/lib/postgresql/<version>/bin`.
pub fn find_postgres_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN").map(PathBuf::from)
        && dir.join("postgres").is_file()
    {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    dir.join("postgres").is_file().then_some(dir)
}

/// The `redis-server` binary, if installed.
pub fn find_redis_server() -> Option<PathBuf> {
    which("redis-server")
}

/// Runs `program` so that it dies with the calling thread, as `user` when given.
fn guarded(program: &Path, user: Option<&str>) -> Command {
    if which("setpriv").is_none() {
        return Command::new(program);
    }
    let mut cmd = Command::new("setpriv");
    if let Some(user) = user {
        cmd.args([
            &format!("--reuid={user}"),
            &format!("--regid={user}"),
            "--init-groups",
        ]);
    }
    cmd.args(["--pdeathsig", "KILL", "--"]).arg(program);
    cmd
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill with a pid we spawned and still own (not yet reaped).
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

/// Stops a child: `sig`, then SIGKILL after `grace`.
fn stop_child(child: &mut Child, sig: libc::c_int, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    signal(child, sig);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits until `ready()` says the server in `slot` answers. A server that exits first is an
/// error whose kind is `AddrInUse` when it lost its port (so the caller retries elsewhere); one
/// that is not ready by `limit` is stopped with `stop_signal`.
fn await_ready(
    slot: &mut Option<Child>,
    name: &str,
    log_path: &Path,
    limit: Duration,
    stop_signal: libc::c_int,
    mut ready: impl FnMut() -> bool,
) -> io::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let child = slot.as_mut().expect("a spawned server");
        if let Some(status) = child.try_wait()? {
            *slot = None;
            let log = tail(log_path);
            let kind = if lost_port(&log) {
                io::ErrorKind::AddrInUse
            } else {
                io::ErrorKind::Other
            };
            return Err(io::Error::new(
                kind,
                format!("{name} exited ({status}): {log}"),
            ));
        }
        if ready() {
            return Ok(());
        }
        if Instant::now() > deadline {
            if let Some(mut child) = slot.take() {
                stop_child(&mut child, stop_signal, Duration::from_secs(10));
            }
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{name} did not become ready: {}", tail(log_path)),
            ));
        }
        sleep(Duration::from_millis(25));
    }
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn lost_port(log: &str) -> bool {
    log.contains("Address already in use") || log.contains("could not bind")
}

/// Starting a server process on a port, shared by both kinds of server.
trait Launch {
    fn set_port(&mut self, port: u16);
    fn launch(&mut self) -> io::Result<()>;
    fn pick_port(&self) -> io::Result<u16> {
        free_port()
    }

    /// Launches on a free port, retrying on a new one when another process takes it first.
    fn start_on_free_port(&mut self) -> io::Result<()> {
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            self.set_port(self.pick_port()?);
            match self.launch() {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free port")))
    }

    /// Launches again on the same port; the old socket may linger for a moment after a kill.
    fn relaunch(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.launch() {
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                    sleep(Duration::from_millis(200))
                }
                other => return other,
            }
        }
    }
}
