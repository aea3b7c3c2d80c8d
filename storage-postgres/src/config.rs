//! The `postgresql` block, parsed once into a `tokio_postgres::Config` by the driver's own
//! parser, plus the TLS settings the driver does not know.
//!
//! - `url` or `connectionString` in either libpq form (`postgresql://…` or `host=… dbname=…`),
//!   or the discrete fields `host`, `port`, `database`, `user`/`username`, `password`.
//! - TLS is asked for by `ssl`, `options.ssl`, or `sslmode`/`sslrootcert` inside the
//!   connection string, in either form; all that are given must agree. tokio-postgres knows
//!   neither `verify-full` nor `sslrootcert`, so those two parameters are taken out of the
//!   string here (see [`crate::conninfo`]) and the rest goes to tokio-postgres untouched.
//! - `options.statement_timeout` and `options.application_name` are added to what the
//!   connection string sets; a URL's own `options=` (`-c search_path=…`) is kept.
//! - The description and the identity come from the parsed config, never from the string
//!   the user wrote, so no password can reach a status line or an error.

use crate::conninfo::{self, TlsParams};
pub use crate::tls::{SslMode, SslSettings};
use schemars::JsonSchema;
use serde::Deserialize;
use std::fmt;
use std::net::ToSocketAddrs;
use storage_core::Result;
use storage_core::config::{
    BackendConfig, BlockInput, CommonSettings, NumOrEnv, Secret, ServerIdentity, SslField, num,
};
use tokio_postgres::config::{Host, TargetSessionAttrs};

/// The type name this crate registers.
pub const TYPE_NAME: &str = "postgresql";
/// Its alias.
pub const ALIAS: &str = "postgres";
/// The port when none is given.
pub const DEFAULT_PORT: u16 = 5432;

/// The fields of a `type: postgresql` block besides the common ones.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(description = "The production database, shared by many instances.")]
pub struct PostgresBlock {
    /// `postgresql://user:pass@host:port/db?sslmode=…`, or libpq's `host=… dbname=…` form.
    #[serde(default)]
    pub url: Option<Secret>,
    /// A synonym of `url`.
    #[serde(default)]
    pub connection_string: Option<Secret>,
    /// The server host.
    #[serde(default)]
    pub host: Option<String>,
    /// Several servers (`host:port` or `host`, with `port` as the default port), for a
    /// primary with standbys; the writable one is chosen (see `targetSessionAttrs`).
    #[serde(default)]
    pub hosts: Option<Vec<String>>,
    /// `read-write` (the default with several hosts: new connections land on the primary) or
    /// `any`.
    #[serde(default)]
    pub target_session_attrs: Option<SessionAttrs>,
    /// The server port (default 5432).
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub port: Option<u64>,
    /// The database name.
    #[serde(default)]
    pub database: Option<String>,
    /// The user name.
    #[serde(default)]
    pub user: Option<String>,
    /// A synonym of `user`.
    #[serde(default)]
    pub username: Option<String>,
    /// The password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// `false` (the default), `true` (verify-full against the system's roots), or
    /// `{ mode: disable | prefer | require | verify-full, ca: <file> }`.
    #[serde(default)]
    pub ssl: Option<SslField>,
    /// The schema that holds the tables.
    #[serde(default)]
    pub schema: Option<String>,
    /// Driver settings.
    #[serde(default)]
    pub options: Option<PostgresOptions>,
    /// The blob role: the largest blob accepted, in bytes.
    #[serde(default)]
    pub max_blob_bytes: Option<u64>,
    /// The blob role: the most bytes held in all.
    #[serde(default)]
    pub max_total_bytes: Option<u64>,
}

/// `targetSessionAttrs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SessionAttrs {
    /// Only a server that accepts writes (the primary).
    ReadWrite,
    /// Any server that answers.
    Any,
}

/// `options` of a `postgresql` block.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresOptions {
    /// The `application_name` the server shows for these connections.
    #[serde(default)]
    pub application_name: Option<String>,
    /// A server-side limit on each statement, in ms; added to the connection's `options`.
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub statement_timeout: Option<u64>,
    /// A synonym of `ssl`.
    #[serde(default)]
    pub ssl: Option<SslField>,
}

/// The settings of a `postgresql` backend.
#[derive(Clone)]
pub struct PostgresConfig {
    /// The driver's config, as parsed (password included; never printed).
    pub driver: tokio_postgres::Config,
    /// TLS.
    pub ssl: SslSettings,
    /// The schema holding the tables (a validated identifier).
    pub schema: Option<String>,
    /// The blob role's limits (`maxBlobBytes`, `maxTotalBytes`).
    pub blob_limits: storage_core::blob::BlobLimits,
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("server", &self.describe())
            .field("ssl", &self.ssl)
            .field("schema", &self.schema)
            .finish()
    }
}

impl PostgresConfig {
    /// Parses a block's own fields.
    pub fn parse(block: &BlockInput<'_>) -> Result<PostgresConfig> {
        let b: PostgresBlock = block.typed()?;
        let (url_field, url) = match (&b.url, &b.connection_string) {
            (Some(a), Some(c)) if a != c => {
                return Err(
                    block.error("", "`url` and `connectionString` are synonyms and disagree")
                );
            }
            (Some(a), _) => ("url", Some(a)),
            (None, Some(c)) => ("connectionString", Some(c)),
            (None, None) => ("url", None),
        };
        let user = match (&b.user, &b.username) {
            (Some(a), Some(c)) if a != c => {
                return Err(block.error(
                    "",
                    format!("`user` ({a:?}) and `username` ({c:?}) are synonyms and disagree"),
                ));
            }
            (a, c) => a.as_ref().or(c.as_ref()),
        };
        if b.host.is_some() && b.hosts.is_some() {
            return Err(block.error("", "`host` and `hosts` given together; use one"));
        }
        let discrete = [
            ("host", b.host.is_some()),
            ("hosts", b.hosts.is_some()),
            ("port", b.port.is_some()),
            ("database", b.database.is_some()),
            ("user", user.is_some()),
            ("password", b.password.is_some()),
        ]
        .into_iter()
        .find_map(|(n, set)| set.then_some(n));

        let host = b.host.clone().map(|h| vec![h]).or(b.hosts.clone());
        let (mut driver, url_tls) = match (url, &host) {
            (Some(url), _) => {
                if let Some(first) = discrete {
                    return Err(block.error(
                        "",
                        format!(
                            "`{url_field}` and `{first}` given together; use either a connection string or discrete host fields"
                        ),
                    ));
                }
                let (rest, tls) = conninfo::take_tls_params(url.expose())
                    .map_err(|e| block.error(url_field, e))?;
                let driver = rest.parse::<tokio_postgres::Config>().map_err(|e| {
                    // The driver's messages name the option, never its value.
                    block.error(url_field, format!("invalid connection string: {e}"))
                })?;
                // The driver takes port 0, which no server listens on; the host fields refuse it.
                if driver.get_ports().contains(&0) {
                    return Err(block.error(url_field, "port 0 is not a port number"));
                }
                (driver, tls)
            }
            (None, Some(hosts)) => {
                let mut c = tokio_postgres::Config::new();
                let default_port = match b.port {
                    None => DEFAULT_PORT,
                    Some(p) => u16::try_from(p)
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| block.error("port", format!("{p} is not a port number")))?,
                };
                if hosts.is_empty() {
                    return Err(block.error("hosts", "must name at least one host"));
                }
                for (i, entry) in hosts.iter().enumerate() {
                    let field = if b.hosts.is_some() {
                        format!("hosts[{i}]")
                    } else {
                        "host".into()
                    };
                    let (h, p) = if b.hosts.is_some() {
                        host_and_port(entry).map_err(|e| block.error(&field, e))?
                    } else {
                        (entry.clone(), None)
                    };
                    c.host(&h);
                    c.port(p.unwrap_or(default_port));
                }
                if let Some(d) = &b.database {
                    c.dbname(d);
                }
                if let Some(u) = user {
                    c.user(u);
                }
                if let Some(p) = &b.password {
                    c.password(p.expose());
                }
                (c, TlsParams::default())
            }
            (None, None) => {
                return Err(
                    block.error("", "one of `url`, `connectionString` or `host` is required")
                );
            }
        };
        if driver.get_hosts().is_empty() {
            return Err(block.error(url_field, "the connection string names no host"));
        }
        if driver.get_user().is_none() {
            driver.user("postgres");
        }
        // With several hosts, new connections go to the writable one unless told otherwise.
        match b.target_session_attrs {
            Some(SessionAttrs::ReadWrite) => {
                driver.target_session_attrs(TargetSessionAttrs::ReadWrite);
            }
            Some(SessionAttrs::Any) => {
                driver.target_session_attrs(TargetSessionAttrs::Any);
            }
            None if driver.get_hosts().len() > 1 => {
                driver.target_session_attrs(TargetSessionAttrs::ReadWrite);
            }
            None => {}
        }

        let options_ssl = b.options.as_ref().and_then(|o| o.ssl.as_ref());
        let ssl = crate::tls::settle(block, b.ssl.as_ref(), options_ssl, url_field, url_tls)?;
        let schema = match b.schema {
            None => None,
            Some(s) => {
                let valid = !s.is_empty()
                    && s.len() <= 63
                    && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
                if !valid {
                    return Err(block.error(
                        "schema",
                        format!("{s:?} is not a valid schema name (letters, digits, `_` and `$`, at most 63 bytes, not starting with a digit)"),
                    ));
                }
                Some(s)
            }
        };
        let options = b.options.unwrap_or_default();
        if let Some(name) = &options.application_name {
            driver.application_name(name);
        }
        if let Some(ms) = options.statement_timeout {
            // Added to, never instead of, what the connection string's `options=` sets.
            let ours = format!("-c statement_timeout={ms}");
            let combined = match driver.get_options() {
                Some(theirs) if !theirs.trim().is_empty() => format!("{theirs} {ours}"),
                _ => ours,
            };
            driver.options(combined);
        }
        driver.ssl_mode(match ssl.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        });
        Ok(PostgresConfig {
            driver,
            ssl,
            schema,
            blob_limits: storage_core::blob::BlobLimits::of_block(
                block,
                b.max_blob_bytes,
                b.max_total_bytes,
            )?,
        })
    }

    /// The driver's config for one connection attempt with the common settings applied.
    pub fn driver_config(&self, common: &CommonSettings) -> tokio_postgres::Config {
        let mut c = self.driver.clone();
        c.connect_timeout(common.connect_timeout);
        c
    }

    /// The database the connections use (libpq's default is the user name).
    pub fn dbname(&self) -> &str {
        self.driver
            .get_dbname()
            .or(self.driver.get_user())
            .unwrap_or("postgres")
    }

    /// `host:port` for every host, in order (sockets as their directory).
    fn endpoints(&self) -> Vec<(String, u16)> {
        let ports = self.driver.get_ports();
        self.driver
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, host)| {
                // One port serves every host; otherwise each host its own, 5432 when none.
                let port = match ports.len() {
                    1 => ports[0],
                    _ => ports.get(i).copied().unwrap_or(DEFAULT_PORT),
                };
                let name = match host {
                    Host::Tcp(h) => h.clone(),
                    Host::Unix(p) => p.display().to_string(),
                };
                (name, port)
            })
            .collect()
    }
}

impl BackendConfig for PostgresConfig {
    fn type_name(&self) -> &str {
        TYPE_NAME
    }

    /// The tables of every role (key-value, lists, blobs, the change log) in this config's
    /// schema, from nothing to this build's version, in one transaction.
    fn schema_ddl(&self) -> Option<String> {
        Some(crate::schema::schema_sql(self.schema.as_deref()))
    }

    /// `user@host:port[,host:port…]/database`, plus the TLS mode when it is on.
    fn describe(&self) -> String {
        let hosts: Vec<String> = self
            .endpoints()
            .into_iter()
            .map(|(h, p)| {
                if h.contains(':') {
                    format!("[{h}]:{p}")
                } else {
                    format!("{h}:{p}")
                }
            })
            .collect();
        let user = self.driver.get_user().unwrap_or("postgres");
        let mut out = format!("{user}@{}/{}", hosts.join(","), self.dbname());
        if self.ssl.mode != SslMode::Disable {
            out.push_str(&format!(" tls={}", self.ssl.mode.name()));
        }
        out
    }

    /// Every host resolved to `ip:port` (a socket directory as itself), the database, and the
    /// schema: two spellings of one server and database are one identity.
    fn identity(&self) -> Option<ServerIdentity> {
        let hostaddrs = self.driver.get_hostaddrs();
        let mut endpoints = std::collections::BTreeSet::new();
        for (i, (host, port)) in self.endpoints().into_iter().enumerate() {
            if let Some(addr) = hostaddrs.get(i) {
                endpoints.insert(std::net::SocketAddr::new(*addr, port).to_string());
                continue;
            }
            if host.starts_with('/') {
                endpoints.insert(format!("{host}/.s.PGSQL.{port}"));
                continue;
            }
            match (host.as_str(), port).to_socket_addrs() {
                Ok(addrs) => endpoints.extend(addrs.map(|a| a.to_string())),
                Err(_) => {
                    endpoints.insert(format!("{}:{port}", host.to_ascii_lowercase()));
                }
            }
        }
        Some(ServerIdentity {
            scheme: TYPE_NAME.to_string(),
            endpoints,
            scope: format!("{}/{}", self.dbname(), self.schema.as_deref().unwrap_or("")),
            // Namespaces are a column: `app` and `app:` are distinct.
            prefixes_nest: false,
        })
    }
}

/// `host:port`, `[v6]:port` or `host` from a `hosts` entry.
fn host_and_port(entry: &str) -> std::result::Result<(String, Option<u16>), String> {
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{p:?} is not a port number"))
    };
    if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("an unclosed `[`")?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host.to_string(), Some(port(p)?))),
            None if after.is_empty() => Ok((host.to_string(), None)),
            None => Err(format!("unexpected {after:?} after the address")),
        };
    }
    match entry.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Ok((h.to_string(), Some(port(p)?))),
        _ if entry.is_empty() => Err("an empty host".into()),
        _ => Ok((entry.to_string(), None)),
    }
}

/// The JSON Schema of a `postgresql` block's own fields.
pub(crate) fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(PostgresBlock)).unwrap_or_default()
}

/// Parses and wraps, for the factory.
/// For code that builds a config without a file: the discrete fields.
pub fn from_host(host: &str, port: u16, database: &str, user: &str) -> PostgresConfig {
    let mut driver = tokio_postgres::Config::new();
    driver.host(host).port(port).dbname(database).user(user);
    driver.ssl_mode(tokio_postgres::config::SslMode::Disable);
    PostgresConfig {
        driver,
        ssl: SslSettings::disabled(),
        schema: None,
        blob_limits: Default::default(),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
