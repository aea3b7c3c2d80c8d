//! A throwaway S3-protocol server (`s3s-fs`, objects as files under a temp dir) on loopback,
//! checking SigV4 signatures with a key pair made for it, stopped when dropped.
//!
//! `s3s-fs` is not packaged by distributions: `cargo xtask test` installs it with
//! `cargo install s3s-fs@0.14.1 --features binary --locked` into `target/tools` (0.15 and later
//! need a newer compiler than this workspace's), and [`find_s3s_fs`] looks there, in
//! `$STORAGE_S3S_FS`, on `PATH` and in `~/.cargo/bin`.

use crate::{Launch, await_ready, guarded, stop_child, temp_dir};
use std::fs;
use std::io;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

/// The version `cargo xtask test` installs.
pub const S3S_FS_VERSION: &str = "0.14.1";

/// The `s3s-fs` binary, if installed.
pub fn find_s3s_fs() -> Option<PathBuf> {
    let explicit = std::env::var_os("STORAGE_S3S_FS").map(PathBuf::from);
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/s3s-fs"));
    explicit
        .into_iter()
        .chain([target.join("tools/bin/s3s-fs")])
        .chain(crate::which("s3s-fs"))
        .chain(home)
        .find(|p| p.is_file())
}

/// A private S3-protocol server.
#[derive(Debug)]
pub struct S3Server {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    access_key: String,
    secret_key: String,
    child: Option<Child>,
}

impl S3Server {
    /// Starts a server on a free port, with one bucket, `test`.
    pub fn start() -> io::Result<S3Server> {
        let bin = find_s3s_fs().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "s3s-fs not found (cargo install s3s-fs@{S3S_FS_VERSION} --features binary --locked)"
                ),
            )
        })?;
        let dir = temp_dir("s3")?;
        fs::create_dir_all(dir.join("data/test"))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut server = S3Server {
            bin,
            dir,
            port: 0,
            access_key: format!("test-{:x}", std::process::id()),
            secret_key: format!("secret-{nanos:x}"),
            child: None,
        };
        server.start_on_free_port()?;
        Ok(server)
    }

    /// The server's URL, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The access key id the server accepts.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The secret key the server checks signatures with.
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// Creates a bucket (a directory of the server's root).
    pub fn create_bucket(&self, name: &str) -> io::Result<()> {
        fs::create_dir_all(self.dir.join("data").join(name))
    }

    /// The directory a bucket's objects are files in, to tamper with in tests.
    pub fn bucket_dir(&self, name: &str) -> PathBuf {
        self.dir.join("data").join(name)
    }

    /// Stops the server (SIGTERM, then SIGKILL). Its files stay until the handle drops.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, libc::SIGTERM, Duration::from_secs(5));
        }
    }
}

impl Launch for S3Server {
    fn set_port(&mut self, port: u16) {
        self.port = port;
    }

    fn launch(&mut self) -> io::Result<()> {
        let log_path = self.dir.join("s3s-fs.log");
        let log = fs::File::create(&log_path)?;
        let mut cmd = guarded(&self.bin, None);
        cmd.args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--access-key",
                &self.access_key,
                "--secret-key",
                &self.secret_key,
            ])
            .arg(self.dir.join("data"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        self.child = Some(cmd.spawn()?);
        let port = self.port;
        await_ready(
            &mut self.child,
            "s3s-fs",
            &log_path,
            Duration::from_secs(20),
            libc::SIGTERM,
            || {
                TcpStream::connect_timeout(
                    &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                    Duration::from_millis(200),
                )
                .is_ok()
            },
        )
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
