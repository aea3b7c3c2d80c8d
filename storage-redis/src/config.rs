//! The `redis` block, parsed once into redis-rs's own `ConnectionInfo`.
//!
//! - `url` (`redis://`, `rediss://`, `unix://`) is parsed by redis-rs; or `host`, `port`
//!   (default 6379), `username`, `password` and `database` build the same `ConnectionInfo`.
//!   `url` wins when both are given.
//! - TLS is asked for by `rediss://` or by `ssl` (`true`, `{ ca }`, `{ mode }`); with a
//!   `redis://` URL or the host fields, `ssl` upgrades the connection to TLS: it is never
//!   ignored. The CA given is the one the client trusts. `ssl: false` with `rediss://` is a
//!   contradiction, refused.
//! - `retryDelayOnFailover` is a synonym of `retryDelayMillis`, `options.commandTimeout` of
//!   `operationTimeoutMillis`.
//! - The description and the identity come from the parsed `ConnectionInfo`, never from the
//!   string the user wrote.

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};
use schemars::JsonSchema;
use serde::Deserialize;
use std::any::Any;
use std::fmt;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::Arc;
use storage_core::config::{
    BackendConfig, BlockInput, CommonField, NumOrEnv, Secret, ServerIdentity, SslField, num,
};
use storage_core::{Result, Role};

/// The type name this crate registers.
pub const TYPE_NAME: &str = "redis";
/// The port when none is given.
pub const DEFAULT_PORT: u16 = 6379;

/// The fields of a `type: redis` block besides the common ones.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(description = "The production cache, and a list-capable database.")]
pub struct RedisBlock {
    /// `redis://user:pass@host:port/db`, `rediss://` for TLS, or `unix:///path`. Wins over
    /// the host fields.
    #[serde(default)]
    pub url: Option<Secret>,
    /// The server host.
    #[serde(default)]
    pub host: Option<String>,
    /// The server port (default 6379).
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub port: Option<u64>,
    /// The ACL user name.
    #[serde(default)]
    pub username: Option<String>,
    /// The password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// The database index.
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub database: Option<u64>,
    /// TLS: `true` (verify against the system's roots), `{ ca: <file> }`, or
    /// `{ mode: require }` (encrypt without verifying).
    #[serde(default)]
    pub ssl: Option<SslField>,
    /// A synonym of `retryDelayMillis`.
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub retry_delay_on_failover: Option<u64>,
    /// Client settings.
    #[serde(default)]
    pub options: Option<RedisOptions>,
}

/// `options` of a `redis` block.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisOptions {
    /// A synonym of `operationTimeoutMillis`, in ms.
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub command_timeout: Option<u64>,
    /// Retries of idempotent commands after a transient error (default 3).
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub max_retries_per_request: Option<u64>,
}

/// The settings of a `redis` backend.
#[derive(Clone)]
pub struct RedisConfig {
    /// redis-rs's connection info (password included; never printed).
    pub info: ConnectionInfo,
    /// Trusted roots (PEM) for TLS, instead of the system's.
    pub ca: Option<PathBuf>,
    /// `options.maxRetriesPerRequest`.
    pub max_retries_per_request: u32,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("server", &self.describe())
            .field("ca", &self.ca)
            .field("max_retries_per_request", &self.max_retries_per_request)
            .finish()
    }
}

impl RedisConfig {
    /// Parses a block's own fields, applying its synonyms of common fields to `block`.
    pub fn parse(block: &mut BlockInput<'_>) -> Result<RedisConfig> {
        let b: RedisBlock = block.typed()?;
        if let Some(ms) = b.retry_delay_on_failover {
            block.synonym(CommonField::RetryDelay, "retryDelayOnFailover", ms)?;
        }
        let options = b.options.unwrap_or_default();
        if let Some(ms) = options.command_timeout {
            block.synonym(CommonField::OperationTimeout, "options.commandTimeout", ms)?;
        }
        let mut info = match (&b.url, &b.host) {
            (Some(url), _) => {
                // redis-rs's own parser; its errors never quote the URL, and neither do ours.
                let parsed = redis::parse_redis_url(url.expose()).ok_or_else(|| {
                    block.error(
                        "url",
                        "expected a redis://, rediss:// or unix:// URL (percent-encode `/`, `@`, `#` or `?` in a password)",
                    )
                })?;
                parsed
                    .into_connection_info()
                    .map_err(|e| block.error("url", format!("invalid Redis URL: {e}")))?
            }
            (None, Some(host)) => {
                let port = match b.port {
                    None => DEFAULT_PORT,
                    Some(p) => u16::try_from(p)
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| block.error("port", format!("{p} is not a port number")))?,
                };
                let db = match b.database {
                    None => 0,
                    Some(d) => i64::try_from(d).map_err(|_| {
                        block.error("database", format!("{d} is not a database index"))
                    })?,
                };
                let mut redis = RedisConnectionInfo::default().set_db(db);
                if let Some(u) = &b.username {
                    redis = redis.set_username(u);
                }
                if let Some(p) = &b.password {
                    redis = redis.set_password(p.expose());
                }
                ConnectionAddr::Tcp(host.clone(), port)
                    .into_connection_info()
                    .map_err(|e| block.error("host", e))?
                    .set_redis_settings(redis)
            }
            (None, None) => {
                return Err(block.error("", "one of `url` or `host` is required"));
            }
        };

        // TLS: asked for by the URL's scheme or by `ssl`; never dropped.
        let url_tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
        let (want_tls, insecure, ca) = match &b.ssl {
            None => (url_tls, false, None),
            Some(SslField::Flag(on)) => (*on, false, None),
            Some(SslField::Detailed(d)) => {
                let (on, insecure) = match d.mode.as_deref() {
                    None | Some("verify-full") => (true, false),
                    Some("require") => (true, true),
                    Some("disable") => (false, false),
                    Some(other) => {
                        return Err(block.error(
                            "ssl.mode",
                            format!(
                                "unknown mode {other:?}; expected disable, require or verify-full"
                            ),
                        ));
                    }
                };
                (on, insecure, d.ca.as_ref().map(|p| block.resolve_path(p)))
            }
        };
        if url_tls && !want_tls {
            return Err(block.error(
                "ssl",
                "TLS is turned off here but the URL is rediss://; remove one of them",
            ));
        }
        if ca.is_some() && insecure {
            return Err(block.error("ssl", "a CA file is given but the mode is require, which does not verify; use verify-full"));
        }
        if want_tls {
            let addr = match info.addr().clone() {
                ConnectionAddr::Tcp(host, port) => ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure,
                    tls_params: None,
                },
                ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: url_insecure,
                    ..
                } => ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: insecure || url_insecure,
                    tls_params: None,
                },
                _ => {
                    return Err(block.error("ssl", "TLS cannot be used over a Unix socket"));
                }
            };
            info = info.set_addr(addr);
        }
        let max_retries_per_request = match options.max_retries_per_request {
            None => 3,
            Some(v) => u32::try_from(v).map_err(|_| {
                block.error("options.maxRetriesPerRequest", format!("{v} is too large"))
            })?,
        };
        Ok(RedisConfig {
            info,
            ca,
            max_retries_per_request,
        })
    }

    /// Whether connections use TLS.
    pub fn tls(&self) -> bool {
        matches!(self.info.addr(), ConnectionAddr::TcpTls { .. })
    }
}

impl BackendConfig for RedisConfig {
    fn type_name(&self) -> &str {
        TYPE_NAME
    }

    /// `host:port/db` (or the socket path), plus `tls` when it is on.
    fn describe(&self) -> String {
        let db = self.info.redis_settings().db();
        match self.info.addr() {
            ConnectionAddr::Tcp(h, p) => format!("{}/{db}", host_port(h, *p)),
            ConnectionAddr::TcpTls { host, port, .. } => {
                format!("{}/{db} tls", host_port(host, *port))
            }
            ConnectionAddr::Unix(path) => format!("{}/{db}", path.display()),
            _ => format!("{}", db),
        }
    }

    /// The host resolved to `ip:port` pairs (or the socket path) and the database number: two
    /// spellings of one server and database are one identity.
    fn identity(&self) -> Option<ServerIdentity> {
        let mut endpoints = std::collections::BTreeSet::new();
        match self.info.addr() {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                match (host.as_str(), *port).to_socket_addrs() {
                    Ok(addrs) => endpoints.extend(addrs.map(|a| a.to_string())),
                    Err(_) => {
                        endpoints.insert(format!("{}:{port}", host.to_ascii_lowercase()));
                    }
                }
            }
            ConnectionAddr::Unix(path) => {
                endpoints.insert(path.display().to_string());
            }
            _ => return None,
        }
        Some(ServerIdentity {
            scheme: TYPE_NAME.to_string(),
            endpoints,
            scope: self.info.redis_settings().db().to_string(),
            // Namespaces are key prefixes of one keyspace: `app` and `app:` nest.
            prefixes_nest: true,
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The fallback a `redis` block gets when it declares none.
pub(crate) fn default_fallback(_role: Role) -> Vec<String> {
    vec!["in-memory".into()]
}

/// The JSON Schema of a `redis` block's own fields.
pub(crate) fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RedisBlock)).unwrap_or_default()
}

/// Parses and wraps, for the factory.
pub(crate) fn parse(block: &mut BlockInput<'_>) -> Result<Arc<dyn BackendConfig>> {
    Ok(Arc::new(RedisConfig::parse(block)?))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
