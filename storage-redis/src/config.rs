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
//! - `cluster: true` speaks to a Redis Cluster: `url` (or the host fields) names one seed
//!   node, or `nodes` lists several; TLS and credentials apply to every node. On a cluster the
//!   database role keeps a namespace in one hash slot, so it needs a non-empty `keyPrefix`
//!   (see the crate docs).
//! - The description and the identity come from the parsed `ConnectionInfo`, never from the
//!   string the user wrote.

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};
use schemars::JsonSchema;
use serde::Deserialize;
use std::fmt;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::time::Duration;
use storage_core::config::{
    BackendConfig, BlockInput, CommonField, NumOrEnv, Secret, ServerIdentity, SslField, num,
};
use storage_core::{Result, Role};

/// The type name this crate registers.
pub const TYPE_NAME: &str = "redis";
/// The port when none is given.
pub const DEFAULT_PORT: u16 = 6379;

pub use crate::options::RedisOptions;
use crate::options::{reply_spin, retries};

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
    /// `true` for a Redis Cluster: `url` or the host fields name a seed node, or `nodes`
    /// lists several. Slots, redirections and topology changes are followed by the client.
    #[serde(default)]
    pub cluster: Option<bool>,
    /// Seed nodes of a cluster (`redis://host:port` or `rediss://`), instead of `url`. All
    /// share one TLS mode and one set of credentials.
    #[serde(default)]
    pub nodes: Option<Vec<Secret>>,
    /// Client settings.
    #[serde(default)]
    pub options: Option<RedisOptions>,
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
    /// `options.replySpinMicros`: how long an operation alone on the backend polls for its
    /// reply before it sleeps (zero: never).
    pub reply_spin: Duration,
    /// `options.soloConnection`: whether a lone operation may take the solo connection.
    pub solo_connection: bool,
    /// For a cluster, its seed nodes (`info` is the first); `None` for one server.
    pub cluster: Option<Vec<ConnectionInfo>>,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("server", &self.describe())
            .field("ca", &self.ca)
            .field("max_retries_per_request", &self.max_retries_per_request)
            .field("reply_spin", &self.reply_spin)
            .field("solo_connection", &self.solo_connection)
            .field("cluster", &self.cluster.is_some())
            .finish()
    }
}

impl RedisConfig {
    /// Parses a block's own fields, applying its synonyms of common fields to `block`.
    pub fn parse(block: &mut BlockInput<'_>) -> Result<RedisConfig> {
        let mut b: RedisBlock = block.typed()?;
        if let Some(ms) = b.retry_delay_on_failover {
            block.synonym(CommonField::RetryDelay, "retryDelayOnFailover", ms)?;
        }
        let options = b.options.take().unwrap_or_default();
        if let Some(ms) = options.command_timeout {
            block.synonym(CommonField::OperationTimeout, "options.commandTimeout", ms)?;
        }
        let cluster = b.cluster.unwrap_or(false);
        if b.nodes.is_some() && !cluster {
            return Err(block.error(
                "nodes",
                "seed nodes are for a Redis Cluster; add `cluster: true` or give one `url`",
            ));
        }
        if b.nodes.is_some() && (b.url.is_some() || b.host.is_some()) {
            return Err(block.error(
                "nodes",
                "give the seed nodes either as `nodes` or as one `url`/`host`, not both",
            ));
        }
        let nodes = match &b.nodes {
            Some(nodes) if nodes.is_empty() => {
                return Err(block.error("nodes", "lists no node; give at least one seed node"));
            }
            Some(nodes) => nodes
                .iter()
                .enumerate()
                .map(|(i, url)| parse_url(block, &format!("nodes[{i}]"), url))
                .collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        let mut info = match (&b.url, &b.host) {
            _ if !nodes.is_empty() => nodes[0].clone(),
            (Some(url), _) => parse_url(block, "url", url)?,
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
        if cluster {
            return cluster_config(block, &b, info, nodes, (want_tls, insecure, ca), options);
        }
        if want_tls {
            info = with_tls(block, info, insecure)?;
        }
        Ok(RedisConfig {
            info,
            ca,
            max_retries_per_request: retries(block, &options)?,
            reply_spin: reply_spin(block, &options)?,
            solo_connection: options.solo_connection.unwrap_or(true),
            cluster: None,
        })
    }

    /// Whether connections use TLS.
    pub fn tls(&self) -> bool {
        matches!(self.info.addr(), ConnectionAddr::TcpTls { .. })
    }
}

/// One Redis URL, by redis-rs's own parser; its errors never quote the URL, and neither do ours.
fn parse_url(block: &BlockInput<'_>, field: &str, url: &Secret) -> Result<ConnectionInfo> {
    let parsed = redis::parse_redis_url(url.expose()).ok_or_else(|| {
        block.error(
            field,
            "expected a redis://, rediss:// or unix:// URL (percent-encode `/`, `@`, `#` or `?` in a password)",
        )
    })?;
    let info = parsed
        .into_connection_info()
        .map_err(|e| block.error(field, format!("invalid Redis URL: {e}")))?;
    // redis-rs takes port 0 and any i64 as the database; the connect would fail later, in an
    // error that no longer says which field was wrong. The host fields refuse both.
    if let ConnectionAddr::Tcp(_, 0) | ConnectionAddr::TcpTls { port: 0, .. } = info.addr() {
        return Err(block.error(field, "port 0 is not a port number"));
    }
    let db = info.redis_settings().db();
    if db < 0 {
        return Err(block.error(field, format!("database index {db} in the URL is negative")));
    }
    Ok(info)
}

/// The settings of a cluster: every seed node with the block's TLS, one database (0), and
/// for the database role a prefix that can be a hash tag.
fn cluster_config(
    block: &BlockInput<'_>,
    b: &RedisBlock,
    first: ConnectionInfo,
    nodes: Vec<ConnectionInfo>,
    (want_tls, insecure, ca): (bool, bool, Option<PathBuf>),
    options: RedisOptions,
) -> Result<RedisConfig> {
    let field = if b.nodes.is_some() { "nodes" } else { "url" };
    let seeds = if nodes.is_empty() { vec![first] } else { nodes };
    let mut out = Vec::with_capacity(seeds.len());
    for (i, node) in seeds.into_iter().enumerate() {
        let at = if b.nodes.is_some() {
            format!("nodes[{i}]")
        } else {
            field.to_string()
        };
        if node.redis_settings().db() != 0 {
            return Err(block.error(&at, "a Redis Cluster has only database 0"));
        }
        let node_tls = matches!(node.addr(), ConnectionAddr::TcpTls { .. });
        if node_tls && !want_tls {
            return Err(block.error(&at, "this node is rediss:// but TLS is turned off or the other nodes are plain; one TLS mode for every node"));
        }
        let node = if want_tls {
            with_tls(block, node, insecure)?
        } else {
            node
        };
        if matches!(node.addr(), ConnectionAddr::Unix(_)) {
            return Err(block.error(
                &at,
                "a Redis Cluster is reached over TCP, not a Unix socket",
            ));
        }
        if let Some(first) = out.first().map(|n: &ConnectionInfo| n.redis_settings())
            && (first.username() != node.redis_settings().username()
                || first.password() != node.redis_settings().password())
        {
            return Err(block.error(&at, "every seed node takes the same username and password"));
        }
        out.push(node);
    }
    if b.database.is_some_and(|d| d != 0) {
        return Err(block.error("database", "a Redis Cluster has only database 0"));
    }
    if block.role() == Some(Role::Database) {
        let prefix = &block.common().key_prefix;
        if prefix.is_empty() {
            return Err(block.error("keyPrefix", "is empty; on a Redis Cluster the database role keeps its namespace in one hash slot (the keyPrefix as a hash tag, `{prefix}key`), so that `mset` stays one transaction and lists keep their order: give it a keyPrefix"));
        }
        if prefix.starts_with('}') {
            return Err(block.error("keyPrefix", "starts with `}`, which makes an empty hash tag on a Redis Cluster and spreads the namespace over slots"));
        }
    }
    Ok(RedisConfig {
        info: out[0].clone(),
        ca,
        max_retries_per_request: retries(block, &options)?,
        reply_spin: reply_spin(block, &options)?,
        solo_connection: options.solo_connection.unwrap_or(true),
        cluster: Some(out),
    })
}

/// `info` with its address turned to TLS (`insecure`: encrypt without verifying).
fn with_tls(
    block: &BlockInput<'_>,
    info: ConnectionInfo,
    insecure: bool,
) -> Result<ConnectionInfo> {
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
        _ => return Err(block.error("ssl", "TLS cannot be used over a Unix socket")),
    };
    Ok(info.set_addr(addr))
}

/// Every command the backend sends, and the commands its Lua scripts call (an ACL checks
/// those too): what `storage acl` grants. A command missing here fails the ACL matrix lines
/// with `NOPERM`; nothing that reaches outside the namespace (`KEYS`, `FLUSHDB`, `FLUSHALL`,
/// `CONFIG`) is on it.
pub const ACL_COMMANDS: &[&str] = &[
    // The connection: its health check, and the client's handshake.
    "ping",
    "hello",
    "auth",
    "select",
    // Values, TTLs, batches.
    "get",
    "set",
    "mget",
    "exists",
    "type",
    "pttl",
    "unlink",
    "del",
    "scan",
    // Lists and their headers.
    "llen",
    "lrange",
    "rpush",
    "ltrim",
    "hget",
    "hset",
    // The key index of a database namespace.
    "zadd",
    "zrem",
    "zscore",
    "zrangebylex",
    // The change log.
    "xadd",
    "xrange",
    "xinfo|stream",
    // Scripts (conditional writes, appends, the log) and transactions (batches).
    "evalsha",
    "eval",
    "script|load",
    "multi",
    "exec",
    "discard",
];

/// On a cluster, how the client and the backend learn the slots (and `ASKING`, which the
/// client sends to follow a slot being migrated).
const ACL_CLUSTER_COMMANDS: &[&str] = &["cluster|slots", "cluster|shards", "readonly", "asking"];

impl BackendConfig for RedisConfig {
    fn type_name(&self) -> &str {
        TYPE_NAME
    }

    /// `resetkeys ~<namespace>* resetchannels -@all +<each command>`: the namespace's keys
    /// only (on a cluster's database role, its hash tag `{prefix}`), no channels (the change
    /// log is a stream in the namespace), and [`ACL_COMMANDS`].
    fn access_rules(&self, role: Role, key_prefix: &str) -> Option<String> {
        let namespace = if self.cluster.is_some() && role == Role::Database {
            format!("{{{key_prefix}}}")
        } else {
            key_prefix.to_string()
        };
        let mut rules = format!(
            "resetkeys ~{}* resetchannels -@all",
            storage_core::raw::escape_glob(&namespace)
        );
        let cluster: &[&str] = if self.cluster.is_some() {
            ACL_CLUSTER_COMMANDS
        } else {
            &[]
        };
        for command in ACL_COMMANDS.iter().chain(cluster) {
            rules.push_str(" +");
            rules.push_str(command);
        }
        Some(rules)
    }

    /// `host:port/db` (or the socket path), plus `tls` when it is on; for a cluster,
    /// `cluster` and its seed nodes.
    fn describe(&self) -> String {
        if let Some(nodes) = &self.cluster {
            let seeds: Vec<String> = nodes
                .iter()
                .filter_map(|n| match n.addr() {
                    ConnectionAddr::Tcp(h, p)
                    | ConnectionAddr::TcpTls {
                        host: h, port: p, ..
                    } => Some(host_port(h, *p)),
                    _ => None,
                })
                .collect();
            let tls = if self.tls() { " tls" } else { "" };
            return format!("cluster {}{tls}", seeds.join(","));
        }
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
    /// spellings of one server and database are one identity. A cluster is known by its seed
    /// nodes (any shared seed is the same cluster); two lists naming disjoint nodes of one
    /// cluster are not recognised as one, as that takes a connection.
    fn identity(&self) -> Option<ServerIdentity> {
        let mut endpoints = std::collections::BTreeSet::new();
        for info in self
            .cluster
            .as_deref()
            .unwrap_or(std::slice::from_ref(&self.info))
        {
            match info.addr() {
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
        }
        Some(ServerIdentity {
            scheme: TYPE_NAME.to_string(),
            endpoints,
            scope: self.info.redis_settings().db().to_string(),
            // Namespaces are key prefixes of one keyspace: `app` and `app:` nest.
            prefixes_nest: true,
        })
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The JSON Schema of a `redis` block's own fields.
pub(crate) fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RedisBlock)).unwrap_or_default()
}

/// Parses and wraps, for the factory.
#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
