//! A throwaway PostgreSQL server: initdb into a fresh directory, started as the `postgres` user
//! when running as root, stopped (fast shutdown) when dropped.

use crate::{
    Launch, await_ready, find_postgres_bin, guarded, is_root, set_mode, stop_child, tail, temp_dir,
};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
    /// A commit waits until a standby has it (`synchronous_standby_names = '*'`,
    /// `synchronous_commit = on`); otherwise commits do not wait even for the local disk.
    pub synchronous_standby: bool,
    /// Require this password over TCP (`scram-sha-256`) for the `postgres` user; the server's
    /// own socket stays `trust`. `None`: every connection is trusted.
    pub password: Option<String>,
    /// Production's durability: `fsync=on`, `full_page_writes=on`, `synchronous_commit=on`
    /// (a commit waits for its WAL flush). Off, the server skips all three, which is faster
    /// and enough for tests; a benchmark's published figures run durable.
    pub durable: bool,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            max_connections: 400,
            tls: None,
            synchronous_standby: false,
            password: None,
            durable: false,
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
        let auth: Vec<String> = match &self.options.password {
            None => vec!["--auth=trust".into()],
            Some(password) => {
                let file = self.dir.join("pwfile");
                fs::write(&file, format!("{password}\n"))?;
                if is_root() {
                    Command::new("chown")
                        .arg("postgres:postgres")
                        .arg(&file)
                        .status()?;
                }
                vec![
                    "--auth-local=trust".into(),
                    "--auth-host=scram-sha-256".into(),
                    format!("--pwfile={}", file.display()),
                ]
            }
        };
        let log = self.dir.join("initdb.log");
        let mut cmd = guarded(&self.bin.join("initdb"), self.user());
        cmd.arg("-D")
            .arg(&data)
            .args(&auth)
            .args([
                "-U",
                "postgres",
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
            // A throwaway server: durability is not what is tested against it, except that
            // a synchronous standby makes every commit wait for the standby.
            .args(if self.options.durable {
                ["-c", "fsync=on", "-c", "full_page_writes=on"]
            } else {
                ["-c", "fsync=off", "-c", "full_page_writes=off"]
            })
            .args(
                if self.options.synchronous_standby || self.options.durable {
                    [
                        "-c",
                        "synchronous_commit=on",
                        "-c",
                        if self.options.synchronous_standby {
                            "synchronous_standby_names=*"
                        } else {
                            "synchronous_standby_names="
                        },
                    ]
                } else {
                    [
                        "-c",
                        "synchronous_commit=off",
                        "-c",
                        "synchronous_standby_names=",
                    ]
                },
            )
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

    /// A streaming standby of `primary` (`pg_basebackup -R -X stream`) on a free port, with the
    /// same options but no synchronous standby of its own.
    pub fn start_standby(primary: &Postgres) -> io::Result<Postgres> {
        let dir = temp_dir("pg-standby")?;
        let mut standby = Postgres {
            bin: primary.bin.clone(),
            dir,
            port: 0,
            options: PostgresOptions {
                synchronous_standby: false,
                ..primary.options.clone()
            },
            child: None,
        };
        if is_root() {
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&standby.dir)
                .status()?;
        }
        let err = standby.dir.join("basebackup.err");
        let status = guarded(&standby.bin.join("pg_basebackup"), standby.user())
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg("-D")
            .arg(standby.data())
            .args(["-R", "-X", "stream", "--no-sync"])
            .current_dir(&standby.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::from(fs::File::create(&err)?))
            .status()?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "pg_basebackup failed: {}",
                tail(&err)
            )));
        }
        standby.start_on_free_port()?;
        Ok(standby)
    }

    /// Promotes a standby to primary and waits until it accepts writes.
    pub fn promote(&self) -> io::Result<()> {
        let status = guarded(&self.bin.join("pg_ctl"), self.user())
            .args(["promote", "-w", "-D"])
            .arg(self.data())
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other("pg_ctl promote failed"))
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
