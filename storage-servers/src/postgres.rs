//! A throwaway PostgreSQL server: initdb into a fresh directory, started as the `postgres` user
//! when running as root, stopped (fast shutdown) when dropped.

use super::*;

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
