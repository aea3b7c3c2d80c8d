//! Throwaway PostgreSQL and Redis servers for tests and for `cargo xtask test`.
//!
//! Each server gets its own directory under `/tmp`, listens on 127.0.0.1 on a free port, and is
//! stopped when its handle drops (SIGINT for PostgreSQL's fast shutdown, SIGTERM for Redis,
//! SIGKILL if they linger), and its directory removed. Servers are started through
//! `setpriv --pdeathsig KILL`, so they die with the thread that started them even if the test
//! process is killed. A start that loses its port to another process is retried on a new port.
//! As root, PostgreSQL runs as the `postgres` user, since initdb and postgres refuse root.
//!
//! It has no dependency beyond libc, so that xtask builds fast. It is not a general process
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
#[cfg(feature = "tls")]
pub use certs::TestCerts;

use std::fs;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
        "\n!!! SKIPPED {test}: {why}\n!!! install: apt-get install -y redis-server postgresql\n"
    );
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

/// A fresh directory under /tmp, readable by other users (the postgres user must pass through).
pub fn temp_dir(kind: &str) -> io::Result<PathBuf> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
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

    /// Launches on a free port, retrying on a new one when another process takes it first.
    fn start_on_free_port(&mut self) -> io::Result<()> {
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            self.set_port(free_port()?);
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

/// TLS files for a server: its certificate chain and key, in PEM.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Server certificate (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// CA certificate (PEM), for servers that want one.
    pub ca: PathBuf,
}

/// How to start PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// `max_connections` (tests each open their own pools).
    pub max_connections: u32,
    /// Serve TLS (`ssl=on`) with these files.
    pub tls: Option<TlsFiles>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            max_connections: 400,
            tls: None,
        }
    }
}

/// A private PostgreSQL server.
#[derive(Debug)]
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    options: PostgresOptions,
    child: Option<Child>,
}

impl Postgres {
    /// Initialises a data directory and starts a server on a free port.
    pub fn start(options: &PostgresOptions) -> io::Result<Postgres> {
        let bin = find_postgres_bin().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "PostgreSQL server binaries not found",
            )
        })?;
        let dir = temp_dir("pg")?;
        let mut pg = Postgres {
            bin,
            dir,
            port: 0,
            options: options.clone(),
            child: None,
        };
        pg.init()?;
        pg.start_on_free_port()?;
        Ok(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn user(&self) -> Option<&'static str> {
        is_root().then_some("postgres")
    }

    fn init(&self) -> io::Result<()> {
        let data = self.data();
        fs::create_dir_all(&data)?;
        set_mode(&data, 0o700)?;
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&self.dir)
                .status()?;
            if !status.success() {
                return Err(io::Error::other("chown of the data directory failed"));
            }
        }
        let log = self.dir.join("initdb.log");
        let mut cmd = guarded(&self.bin.join("initdb"), self.user());
        cmd.arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ])
            .current_dir(&self.dir)
            .stdout(Stdio::from(fs::File::create(&log)?))
            .stderr(Stdio::from(fs::File::create(self.dir.join("initdb.err"))?));
        let status = cmd.status()?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "initdb failed: {}",
                tail(&self.dir.join("initdb.err"))
            )));
        }
        if let Some(tls) = &self.options.tls {
            // The server reads its key as the postgres user, and insists on 0600.
            for (src, name) in [
                (&tls.cert, "server.crt"),
                (&tls.key, "server.key"),
                (&tls.ca, "root.crt"),
            ] {
                let dst = data.join(name);
                fs::copy(src, &dst)?;
                set_mode(&dst, 0o600)?;
                if is_root() {
                    Command::new("chown")
                        .arg("postgres:postgres")
                        .arg(&dst)
                        .status()?;
                }
            }
        }
        Ok(())
    }

    fn launch_postgres(&mut self) -> io::Result<()> {
        let log_path = self.dir.join("postgres.log");
        let log = fs::File::create(&log_path)?;
        if is_root() {
            Command::new("chown")
                .arg("postgres:postgres")
                .arg(&log_path)
                .status()?;
        }
        let data = self.data();
        let mut cmd = guarded(&self.bin.join("postgres"), self.user());
        cmd.arg("-D")
            .arg(&data)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-k",
            ])
            .arg(&data)
            .args([
                "-c",
                &format!("max_connections={}", self.options.max_connections),
            ])
            // A throwaway server: durability is not what is tested against it.
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        if self.options.tls.is_some() {
            cmd.args([
                "-c",
                "ssl=on",
                "-c",
                "ssl_cert_file=server.crt",
                "-c",
                "ssl_key_file=server.key",
            ]);
        }
        let child = cmd.spawn()?;
        self.child = Some(child);
        let (bin, port) = (self.bin.clone(), self.port.to_string());
        await_ready(
            &mut self.child,
            "postgres",
            &log_path,
            Duration::from_secs(60),
            libc::SIGINT,
            || {
                Command::new(bin.join("pg_isready"))
                    .args(["-q", "-h", "127.0.0.1", "-p", &port, "-U", "postgres"])
                    .status()
                    .is_ok_and(|s| s.success())
            },
        )
    }

    /// `postgresql://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of `psql`, `pg_isready` and the server.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// Stops the server (fast shutdown), keeping its data for [`Postgres::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, libc::SIGINT, Duration::from_secs(30));
        }
    }

    /// Kills the server without a shutdown.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, libc::SIGKILL, Duration::from_secs(10));
        }
    }

    /// Starts a stopped server again, on the same port and data.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.relaunch()
    }
}

impl Launch for Postgres {
    fn set_port(&mut self, port: u16) {
        self.port = port;
    }
    fn launch(&mut self) -> io::Result<()> {
        self.launch_postgres()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// How to start Redis.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// Serve TLS only (`--tls-port`, `--port 0`) with these files.
    pub tls: Option<TlsFiles>,
}

/// A private Redis server, without persistence.
#[derive(Debug)]
pub struct Redis {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    options: RedisOptions,
    child: Option<Child>,
}

impl Redis {
    /// Starts a server on a free port.
    pub fn start(options: &RedisOptions) -> io::Result<Redis> {
        let bin = find_redis_server()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "redis-server not found"))?;
        let dir = temp_dir("redis")?;
        let mut redis = Redis {
            bin,
            dir,
            port: 0,
            options: options.clone(),
            child: None,
        };
        redis.start_on_free_port()?;
        Ok(redis)
    }

    fn launch_redis(&mut self) -> io::Result<()> {
        let log_path = self.dir.join("redis.log");
        let log = fs::File::create(&log_path)?;
        let mut cmd = guarded(&self.bin, None);
        cmd.args([
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ])
        .arg("--dir")
        .arg(&self.dir)
        .current_dir(&self.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log));
        match &self.options.tls {
            None => {
                cmd.args(["--port", &self.port.to_string()]);
            }
            Some(tls) => {
                cmd.args(["--port", "0", "--tls-port", &self.port.to_string()])
                    .arg("--tls-cert-file")
                    .arg(&tls.cert)
                    .arg("--tls-key-file")
                    .arg(&tls.key)
                    .arg("--tls-ca-cert-file")
                    .arg(&tls.ca)
                    .args(["--tls-auth-clients", "no"]);
            }
        }
        self.child = Some(cmd.spawn()?);
        let (tls, port) = (self.options.tls.is_some(), self.port);
        await_ready(
            &mut self.child,
            "redis-server",
            &log_path,
            Duration::from_secs(30),
            libc::SIGTERM,
            || {
                if tls {
                    fs::read_to_string(&log_path)
                        .is_ok_and(|l| l.contains("Ready to accept connections"))
                } else {
                    ping(port)
                }
            },
        )
    }

    /// `redis://127.0.0.1:<port>` (`rediss://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.options.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, libc::SIGTERM, Duration::from_secs(10));
        }
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, libc::SIGKILL, Duration::from_secs(10));
        }
    }

    /// Starts a stopped server again on the same port.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.relaunch()
    }
}

impl Launch for Redis {
    fn set_port(&mut self, port: u16) {
        self.port = port;
    }
    fn launch(&mut self) -> io::Result<()> {
        self.launch_redis()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Sends `PING` to a plain Redis port and waits briefly for `+PONG`.
fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
