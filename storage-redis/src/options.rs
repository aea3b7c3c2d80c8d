//! `options` of a `redis` block: the client settings that are not the connection's address,
//! credentials or TLS, and how each is checked. Not the common fields (`storage-core`).

use schemars::JsonSchema;
use serde::Deserialize;
use std::time::Duration;
use storage_core::Result;
use storage_core::config::{BlockInput, NumOrEnv, num};

/// The longest `replySpinMicros` taken: polling longer would hold a runtime thread past the
/// time tokio allows a task between yields.
pub const MAX_REPLY_SPIN_MICROS: u64 = 1_000;
/// `replySpinMicros` when none is given.
pub const DEFAULT_REPLY_SPIN_MICROS: u64 = 100;

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
    /// How long, in µs, an operation alone on one server polls its connection for the reply
    /// before it sleeps until the reply wakes it (default 100, at most 1000; 0 never polls).
    /// Polling spares the wake-up of a sleeping thread, most of an operation's time at one
    /// task; it costs that much CPU per operation, and only when no other operation of the
    /// backend is in flight. Not used over TLS or on a cluster.
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub reply_spin_micros: Option<u64>,
    /// Whether an operation alone on one server may take the solo connection (default
    /// `true`); `false` sends every operation through the pool's shared connections, one
    /// connection fewer per backend. A cluster, TLS or RESP3 has no solo connection, so
    /// there it changes nothing.
    #[serde(default)]
    pub solo_connection: Option<bool>,
}

/// `options.maxRetriesPerRequest`, 3 when not given.
pub(crate) fn retries(block: &BlockInput<'_>, options: &RedisOptions) -> Result<u32> {
    match options.max_retries_per_request {
        None => Ok(3),
        Some(v) => u32::try_from(v)
            .map_err(|_| block.error("options.maxRetriesPerRequest", format!("{v} is too large"))),
    }
}

/// `options.replySpinMicros` as a duration; more than [`MAX_REPLY_SPIN_MICROS`] is refused.
pub(crate) fn reply_spin(block: &BlockInput<'_>, options: &RedisOptions) -> Result<Duration> {
    let micros = options
        .reply_spin_micros
        .unwrap_or(DEFAULT_REPLY_SPIN_MICROS);
    if micros > MAX_REPLY_SPIN_MICROS {
        return Err(block.error(
            "options.replySpinMicros",
            format!(
                "{micros} µs is too long: polling holds a runtime thread, so at most {MAX_REPLY_SPIN_MICROS} (0 turns polling off)"
            ),
        ));
    }
    Ok(Duration::from_micros(micros))
}

/// How long a connection to a server sits idle before the kernel probes its peer.
const KEEPALIVE_AFTER: Duration = Duration::from_secs(60);

/// The TCP settings of every connection, to a single server (the pool's and the solo one) or
/// to a cluster's nodes: no Nagle delay (a command waits for its reply, and one written behind
/// another in flight must not wait for an acknowledgement first), and keep-alive probes after a
/// minute idle, so that a server gone without a word (a host down, a connection dropped by
/// something between) is noticed by the kernel, not only by the check before the next use.
/// redis-rs sets neither by default.
pub(crate) fn tcp_settings() -> redis::io::tcp::TcpSettings {
    redis::io::tcp::TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(socket2::TcpKeepalive::new().with_time(KEEPALIVE_AFTER))
}
