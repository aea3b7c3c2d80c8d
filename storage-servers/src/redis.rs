//! A throwaway Redis server without persistence, plain or TLS-only, stopped when dropped.

use crate::{
    Launch, TlsFiles, await_ready, find_redis_server, free_cluster_port, free_port, guarded,
    stop_child, temp_dir,
};
use std::fs;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

/// How to start Redis.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// Serve TLS only (`--tls-port`, `--port 0`) with these files.
    pub tls: Option<TlsFiles>,
    /// Require this password (`--requirepass`).
    pub password: Option<String>,
    /// Run as a Redis Cluster node (`--cluster-enabled`) with this node timeout; the port is
    /// then 55535 or lower, as the cluster bus listens on the port + 10000.
    pub cluster_node_timeout: Option<Duration>,
}

/// A private Redis server, without persistence.
#[derive(Debug)]
pub struct Redis {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    options: RedisOptions,
    pub(crate) child: Option<Child>,
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
        if let Some(pw) = &self.options.password {
            cmd.args(["--requirepass", pw, "--masterauth", pw]);
        }
        if let Some(timeout) = self.options.cluster_node_timeout {
            cmd.args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                &timeout.as_millis().to_string(),
            ]);
            if self.options.tls.is_some() {
                cmd.args(["--tls-cluster", "yes", "--tls-replication", "yes"]);
            }
        }
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
        let password = self.options.password.clone();
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
                    ping(port, password.as_deref())
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

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
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
    fn pick_port(&self) -> io::Result<u16> {
        if self.options.cluster_node_timeout.is_some() {
            free_cluster_port()
        } else {
            free_port()
        }
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

/// Sends `PING` (after `AUTH` when a password is set) to a plain Redis port and waits briefly
/// for `+PONG`.
fn ping(port: u16, password: Option<&str>) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if let Some(pw) = password {
        let auth = format!("AUTH {pw}\r\n");
        let mut ok = [0u8; 5];
        if s.write_all(auth.as_bytes()).is_err()
            || s.read_exact(&mut ok).is_err()
            || &ok != b"+OK\r\n"
        {
            return false;
        }
    }
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
