//! The connection side of [`RedisBackend`]: the struct, connecting (one server's pool or a
//! cluster's connections), the full keys of a namespace, `SCAN`, pipelined batches, and
//! redis-rs's errors mapped to the contract's kinds. Not the operations themselves
//! (`backend.rs`), how one command is sent and re-sent (`command.rs`), nor the block's fields
//! (`config.rs`).

/// Keys per `SCAN` step and per `UNLINK` batch.
use crate::cluster::{self, ClusterLinks};
use crate::config::{RedisConfig, TYPE_NAME};
use crate::pool::{LastError, Manager, Pool};
use crate::solo::SoloLink;
use redis::{AsyncConnectionConfig, Client, ConnectionInfo, Pipeline, RedisError};
use serde_json::Value;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use storage_core::config::{BackendSpec, Role};
use storage_core::raw::{Closable, escape_glob};
use storage_core::{Error, Result};

/// Keys per `SCAN` step and per `UNLINK` batch.
pub(crate) const BATCH: usize = 500;

/// Replaces a generic wrong-type error with the contract's message for `key`.
pub(crate) fn wrong_type(
    key: &str,
    message: fn(&str) -> Error,
) -> impl FnOnce(Error) -> Error + '_ {
    move |e| {
        if e.kind() == storage_core::ErrorKind::WrongType {
            message(key)
        } else {
            e
        }
    }
}

/// The error for a key in the namespace that is not UTF-8: named with its bytes escaped (at
/// most 200 of them).
pub(crate) fn not_utf8_key(raw: &[u8]) -> Error {
    let shown: String = raw
        .iter()
        .take(200)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    let more = if raw.len() > 200 { "..." } else { "" };
    Error::invalid_key(format!(
        "the server holds a key in this namespace that is not UTF-8, b\"{shown}{more}\" ({} bytes); \
         keys here are UTF-8, so it cannot be listed, read or copied: rename or delete it with redis-cli",
        raw.len()
    ))
}

pub(crate) fn is_wrong_type(e: &RedisError) -> bool {
    // WRONGTYPE is a reply code redis-rs does not type; the code, not the message, is read.
    e.code() == Some("WRONGTYPE")
}

/// How far a command got when its error came: whether the server may have run it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Sent {
    /// Nothing was written to the server (connecting, or checking a connection out).
    No,
    /// The command was written; its answer may be lost.
    Yes,
}

/// Maps a redis-rs error to the contract's kind, outcome and status, from the driver's typed
/// kinds (never its message): a refused password is an authentication error; a redirection,
/// a slot not served, a replica refusing a write, a loading or failing-over server are
/// temporary and not applied (the server refused the command); a lost connection or a
/// timeout is temporary, and after `Sent::Yes` its outcome is unknown (Redis cannot cancel a
/// command); any other reply from the server is a permanent rejection, not applied.
pub(crate) fn redis_error(e: RedisError, what: &str, sent: Sent) -> Error {
    use redis::{ErrorKind as Kind, ServerErrorKind as Server};
    // A transaction the server aborted (`EXECABORT`) because it refused a command as it
    // queued it: that command's error says why (an ACL, out of memory), and nothing ran.
    if e.kind() == Kind::Server(Server::ExecAbort)
        && let Some(cause) = e
            .clone()
            .into_server_errors()
            .and_then(|errors| errors.first().map(|(_, cause)| cause.clone()))
            .filter(|cause| cause.kind() != Some(Server::ExecAbort))
    {
        return redis_error(RedisError::from(cause), what, Sent::No);
    }
    let lost = |e: Error| match sent {
        Sent::No => e.not_applied(),
        Sent::Yes => e.outcome_unknown(),
    };
    match e.kind() {
        // NOAUTH and WRONGPASS are reply codes redis-rs does not type.
        Kind::AuthenticationFailed => return Error::authentication(what),
        _ if matches!(e.code(), Some("NOAUTH" | "WRONGPASS")) => {
            return Error::authentication(what);
        }
        // An ACL that does not allow the command or the key: the account needs the right.
        Kind::Server(Server::NoPerm) => {
            return Error::new(
                storage_core::ErrorKind::PermissionDenied,
                format!(
                    "{what}: the server's ACL does not allow this account the command or key ({}); `storage acl` prints the rules the backend needs",
                    e.detail().unwrap_or("NOPERM")
                ),
            )
            .permanent()
            .not_applied();
        }
        _ => {}
    }
    if e.is_timeout() {
        return lost(match sent {
            Sent::No => Error::timeout(format!(
                "{what}: the server did not answer in time; nothing was sent"
            )),
            Sent::Yes => Error::timeout(format!(
                "{what}: the server did not answer in time; Redis cannot cancel a command, so it may have run: the outcome is unknown"
            )),
        })
        .with_source(e);
    }
    if e.is_connection_refusal() {
        return Error::connection(what.to_string())
            .not_applied()
            .with_source(e);
    }
    if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
        let said = match sent {
            Sent::No => what.to_string(),
            Sent::Yes => format!(
                "{what}: the connection was lost after the command was sent: the outcome is unknown"
            ),
        };
        return lost(Error::connection(said)).with_source(e);
    }
    match e.kind() {
        Kind::Server(
            Server::Moved | Server::Ask | Server::TryAgain | Server::ClusterDown | Server::ReadOnly,
        ) => Error::connection(format!(
            "{what}: the cluster is moving a slot or failing over"
        ))
        .not_applied()
        .with_source(e),
        Kind::Server(Server::BusyLoading | Server::MasterDown) => {
            Error::connection(format!("{what}: the server is busy"))
                .not_applied()
                .with_source(e)
        }
        // The server answered with an error: it did not run the command.
        Kind::Server(_) | Kind::Extension => {
            Error::other(what.to_string()).not_applied().with_source(e)
        }
        _ => Error::other(what.to_string()).with_source(e),
    }
}

/// Decodes a stored value, with its version in front or without one.
pub(crate) fn decode(key: &str, bytes: &[u8]) -> Result<Value> {
    // A database value carries its version in front (`conditional.rs`).
    decode_json(key, crate::conditional::strip_version(bytes)?)
}

/// Decodes JSON text with no version in front (`conditional.rs` split it off).
pub(crate) fn decode_json(key: &str, bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|_| {
        Error::other(format!(
            "the value at {key:?} is not JSON written by this library ({} bytes)",
            bytes.len()
        ))
    })
}

/// Builds the redis-rs client: plain, or TLS with the system roots or the given CA.
pub(crate) fn client(
    settings: &RedisConfig,
    info: ConnectionInfo,
    spec: &BackendSpec,
) -> Result<Client> {
    if settings.tls() {
        // redis-rs builds its rustls config from the process-wide provider. Install ring (the
        // provider this workspace compiles) unless the application already chose one.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let bad =
        |e: RedisError| Error::config(format!("{}: invalid Redis connection: {e}", spec.path));
    match &settings.ca {
        Some(ca) => {
            let pem = std::fs::read(ca)
                .map_err(|e| Error::config(format!("cannot read CA file {}: {e}", ca.display())))?;
            Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
            .map_err(bad)
        }
        None => Client::open(info).map_err(bad),
    }
}

/// How a backend reaches its server: a pool of connections to one server (and its solo
/// connection, when it can have one), or a cluster's connections.
#[derive(Clone)]
pub(crate) enum Links {
    Node(Pool, Option<Arc<SoloLink>>),
    Cluster(ClusterLinks),
}

/// A namespace on one Redis server or a Redis Cluster; serves both roles.
pub struct RedisBackend {
    pub(crate) links: Closable<Links>,
    /// The full-key prefix: the `keyPrefix`, or `{keyPrefix}` when `hash_tagged`.
    pub(crate) prefix: String,
    pub(crate) is_cluster: bool,
    /// The database role on a cluster: the prefix is a hash tag, one slot per namespace.
    pub(crate) hash_tagged: bool,
    /// The database role: `keys` and `clear` use the namespace's key index (`key_index.rs`).
    pub(crate) key_index: bool,
    /// The prefix with glob characters escaped, for `SCAN MATCH`.
    pub(crate) match_prefix: String,
    pub(crate) describe: String,
    pub(crate) operation_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) last_error: LastError,
    pub(crate) pool_metrics: storage_core::telemetry::PoolReporter,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("server", &self.describe)
            .field("key_prefix", &self.prefix)
            .finish()
    }
}

impl RedisBackend {
    /// Connects for `role` and checks that the server (or the cluster) answers.
    pub(crate) async fn connect(
        settings: &RedisConfig,
        spec: &BackendSpec,
        role: Role,
    ) -> Result<RedisBackend> {
        // tokio's I/O needs its runtime: say so instead of panicking inside the driver.
        tokio::runtime::Handle::try_current().map_err(|_| {
            Error::unsupported(
                "the redis backend needs a tokio runtime: call it from inside one (for example under #[tokio::main])",
            )
        })?;
        if let Some(nodes) = &settings.cluster {
            let hash_tagged = role == Role::Database;
            if hash_tagged && spec.common.key_prefix.is_empty() {
                return Err(Error::config(format!(
                    "{}.keyPrefix: the database role on a Redis Cluster needs a keyPrefix (its namespace is one hash slot)",
                    spec.path
                )));
            }
            let links = cluster::connect(nodes, settings, spec).await?;
            let prefix = if hash_tagged {
                format!("{{{}}}", spec.common.key_prefix)
            } else {
                spec.common.key_prefix.clone()
            };
            return Ok(RedisBackend {
                links: Closable::new(Links::Cluster(links)),
                match_prefix: escape_glob(&prefix),
                prefix,
                is_cluster: true,
                hash_tagged,
                key_index: role == Role::Database,
                describe: spec.to_string(),
                operation_timeout: spec.common.operation_timeout,
                connect_timeout: spec.common.connect_timeout,
                retries: settings.max_retries_per_request,
                last_error: LastError::new(TYPE_NAME, crate::pool::classify),
                // A cluster has no pool: nothing is reported.
                pool_metrics: storage_core::telemetry::PoolReporter::new(
                    TYPE_NAME,
                    &spec.to_string(),
                    0,
                ),
            });
        }
        let info = settings
            .info
            .clone()
            .set_tcp_settings(crate::options::tcp_settings());
        let manager = Manager {
            client: client(settings, info.clone(), spec)?,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(spec.common.connect_timeout))
                .set_response_timeout(Some(spec.common.operation_timeout)),
        };
        // The first connection is made directly, so that a refusal is reported as itself, at
        // once, and the manager's fallback moves on without waiting for a pool timeout.
        let describe = spec.to_string();
        let limit = spec.common.connect_timeout.max(spec.common.acquire_timeout);
        let first = tokio::time::timeout(limit, manager.open())
            .await
            .map_err(|_| Error::connect_timeout(&describe, limit))?
            .map_err(|e| {
                let error = redis_error(e, "connecting", Sent::No);
                let no_password = manager
                    .client
                    .get_connection_info()
                    .redis_settings()
                    .password()
                    .is_none();
                if error.is_authentication() && no_password {
                    Error::authentication(
                        "connecting: the server asks for a password and the configuration gives none",
                    )
                } else {
                    error
                }
            })?;
        let last_error = LastError::new(TYPE_NAME, crate::pool::classify);
        let pool = storage_pool::builder(&spec.common, &last_error)
            // Checked in `with_conn` instead: a flag always, a PING only after idling.
            .test_on_check_out(false)
            .build_unchecked(manager);
        let _ = pool.add(first);
        let solo = settings
            .solo_connection
            .then(|| SoloLink::for_server(&info, spec.common.connect_timeout, settings.reply_spin))
            .flatten();
        if let Some(solo) = &solo {
            solo.warm().await;
        }
        let backend = RedisBackend {
            links: Closable::new(Links::Node(pool, solo)),
            prefix: spec.common.key_prefix.clone(),
            is_cluster: false,
            hash_tagged: false,
            key_index: role == Role::Database,
            match_prefix: escape_glob(&spec.common.key_prefix),
            describe,
            operation_timeout: spec.common.operation_timeout,
            connect_timeout: spec.common.connect_timeout,
            retries: settings.max_retries_per_request,
            last_error,
            pool_metrics: storage_core::telemetry::PoolReporter::new(
                TYPE_NAME,
                &spec.to_string(),
                spec.common.pool_max,
            ),
        };
        Ok(backend)
    }

    pub(crate) fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Every full key of this namespace matching `pattern`, as the server holds it (bytes: `clear`
    /// removes a key that is not UTF-8 too; `keys` reports one), by `SCAN` (on every primary of a
    /// cluster whose namespace spans slots), without duplicates.
    pub(crate) async fn scan(&self, pattern: Option<&str>) -> Result<Vec<Vec<u8>>> {
        let matcher = format!("{}{}", self.match_prefix, pattern.unwrap_or("*"));
        let mut seen = HashSet::new();
        for route in self.scan_targets().await? {
            let mut cursor: u64 = 0;
            loop {
                let (next, batch) = self.scan_step(route.as_ref(), cursor, &matcher).await?;
                seen.extend(
                    batch
                        .into_iter()
                        .filter(|raw| raw.starts_with(self.prefix.as_bytes())),
                );
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(seen.into_iter().collect())
    }

    /// One pipeline (`MULTI`/`EXEC` when `atomic`); on a cluster whose namespace spans slots,
    /// one atomic pipeline per slot, all sent at once.
    pub(crate) async fn mset_pipe(
        &self,
        entries: Vec<(String, (String, Option<Duration>))>,
        atomic: bool,
    ) -> Result<()> {
        let groups = self.slot_groups(entries);
        // A batch is applied whole or not at all only as one `MULTI`/`EXEC`: a pipeline of
        // plain commands, or one transaction per slot, may fail after part of it landed.
        let one_transaction = atomic && groups.len() == 1;
        // Filing the changes makes a batch one transaction with its log entries.
        let atomic = atomic || groups.len() > 1 || self.logs_changes();
        let pipes: Vec<Pipeline> = groups
            .iter()
            .map(|group| {
                let mut pipe = redis::pipe();
                if atomic {
                    pipe.atomic();
                }
                for (k, (v, ttl)) in group {
                    let mut cmd = redis::cmd("SET");
                    cmd.arg(self.key(k)).arg(v);
                    if let Some(t) = ttl {
                        cmd.arg("PX").arg(t.as_millis() as u64);
                    }
                    pipe.add_command(cmd).ignore();
                    if self.logs_changes() {
                        let version = crate::conditional::split_version(v.as_bytes())
                            .ok()
                            .map(|(_, version)| version)
                            .filter(|version| *version != storage_core::Version::UNVERSIONED);
                        pipe.add_command(self.log_command(
                            k,
                            storage_core::watch::ChangeKind::Set,
                            version,
                        ))
                        .ignore();
                    }
                }
                if self.logs_changes() && self.key_index {
                    let keys = group.iter().map(|(k, _)| k.as_str());
                    for cmd in self.index_add_commands(keys) {
                        pipe.add_command(cmd).ignore();
                    }
                }
                pipe
            })
            .collect();
        futures::future::try_join_all(
            pipes
                .iter()
                .map(|pipe| self.pipeline::<()>(pipe, "storing the batch")),
        )
        .await
        .map_err(|e| {
            if one_transaction {
                e
            } else {
                e.outcome_unknown()
            }
        })?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
