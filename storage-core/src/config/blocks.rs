//! The serde shapes of a backend block, exactly as CONFIG.md defines them.
//!
//! These are what a config file holds; [`super::BackendSpec`] is what they mean once synonyms,
//! defaults and relative paths are resolved. Every struct rejects unknown fields, and none uses
//! `#[serde(flatten)]`, so that every error names its field path.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use std::fmt;

/// A password: deserialized like a string, never printed.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The password itself, for the driver.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// A connection URL that may hold a password: its `Debug` and `Display` redact it.
#[derive(Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps a URL.
    pub fn new(s: impl Into<String>) -> Self {
        SecretUrl(s.into())
    }
    /// The URL with its password, for the driver.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", crate::redact::redact_url(&self.0))
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::redact::redact_url(&self.0))
    }
}

/// Schema of a number field that also accepts a string of digits (for `port: $PG_PORT`).
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(crate) enum NumOrEnv {
    Number(u64),
    Text(String),
}

/// Schema of the `ssl` field.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(crate) enum SslSchema {
    /// `false` (the default) or `true` (verify-full against the system roots).
    Flag(bool),
    /// An explicit mode and CA file.
    Detailed {
        /// `disable`, `prefer`, `require` or `verify-full`.
        mode: Option<String>,
        /// A PEM file of trusted roots, relative to the config file.
        ca: Option<String>,
    },
}

/// Deserializers for numeric fields that accept a string of digits.
pub(crate) mod num {
    use super::*;

    struct U64Visitor;
    impl serde::de::Visitor<'_> for U64Visitor {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a non-negative integer, or a string of digits")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom(format!("{v} is negative")))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u64, E> {
            let t = v.trim();
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(E::custom(format!("{v:?} is not a string of digits")));
            }
            t.parse()
                .map_err(|_| E::custom(format!("{v:?} is too large")))
        }
    }

    pub fn opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        d.deserialize_any(U64Visitor).map(Some)
    }
}

/// `pool: { min, max, acquireTimeoutMillis, idleTimeoutMillis }`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoolBlock {
    /// Connections kept open when idle (default 0).
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub min: Option<u64>,
    /// Pool size (default 10); the same as `maxConnections`.
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub max: Option<u64>,
    /// Time allowed to wait for a pooled connection (default 5000).
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub acquire_timeout_millis: Option<u64>,
    /// Idle connection timeout (default 30000); the same as `idleTimeoutMillis`.
    #[serde(default, deserialize_with = "num::opt")]
    #[schemars(with = "Option<NumOrEnv>")]
    pub idle_timeout_millis: Option<u64>,
}

/// Writes a backend block struct: the fields every backend shares, then its own.
macro_rules! backend_block {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty,)* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default, Deserialize, JsonSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            /// The backend type name.
            #[serde(rename = "type")]
            pub type_name: String,
            /// The namespace (default empty, at most 256 bytes).
            #[serde(default)]
            pub key_prefix: Option<String>,
            /// Pool size; the same as `pool.max`.
            #[serde(default, deserialize_with = "num::opt")]
            #[schemars(with = "Option<NumOrEnv>")]
            pub max_connections: Option<u64>,
            /// The connection pool.
            #[serde(default)]
            pub pool: Option<PoolBlock>,
            /// Idle connection timeout; the same as `pool.idleTimeoutMillis`.
            #[serde(default, deserialize_with = "num::opt")]
            #[schemars(with = "Option<NumOrEnv>")]
            pub idle_timeout_millis: Option<u64>,
            /// Time allowed to open one connection (default 5000).
            #[serde(default, deserialize_with = "num::opt")]
            #[schemars(with = "Option<NumOrEnv>")]
            pub connection_timeout_millis: Option<u64>,
            /// Connect retries for this candidate (default 3).
            #[serde(default, deserialize_with = "num::opt")]
            #[schemars(with = "Option<NumOrEnv>")]
            pub max_retries: Option<u64>,
            /// First retry delay, doubled each time with jitter, capped at 2 s (default 100).
            #[serde(default, deserialize_with = "num::opt")]
            #[schemars(with = "Option<NumOrEnv>")]
            pub retry_delay_millis: Option<u64>,
            /// Client-side limit on any one operation (default 10000).
            #[serde(default, deserialize_with = "num::opt")]
            #[schemars(with = "Option<NumOrEnv>")]
            pub operation_timeout_millis: Option<u64>,
            /// The chain tried after this backend fails to connect: type names or blocks.
            #[serde(default)]
            pub fallback: Option<Vec<Value>>,
            /// Backend-specific settings; unknown keys are logged, not rejected.
            #[serde(default)]
            pub options: Option<Map<String, Value>>,
            $($(#[$fmeta])* pub $field: $ty,)*
        }
    };
}

backend_block!(
    /// `type: in-memory` (alias `memory`).
    MemoryBlock {}
);

backend_block!(
    /// `type: sqlite`.
    SqliteBlock {
        /// The database file; or, with `database`, its directory. `:memory:` for a shared
        /// in-memory database.
        #[serde(default)]
        path: Option<String>,
        /// The file name (in `path`, or in `.storage/`).
        #[serde(default)]
        database: Option<String>,
    }
);

backend_block!(
    /// `type: postgresql` (alias `postgres`).
    PostgresBlock {
        /// `postgresql://user:pass@host:port/db?sslmode=...`.
        #[serde(default)]
        url: Option<SecretUrl>,
        /// A synonym of `url`.
        #[serde(default)]
        connection_string: Option<SecretUrl>,
        /// The server host.
        #[serde(default)]
        host: Option<String>,
        /// The server port (default 5432).
        #[serde(default, deserialize_with = "num::opt")]
        #[schemars(with = "Option<NumOrEnv>")]
        port: Option<u64>,
        /// The database name.
        #[serde(default)]
        database: Option<String>,
        /// The user name.
        #[serde(default)]
        user: Option<String>,
        /// A synonym of `user`.
        #[serde(default)]
        username: Option<String>,
        /// The password.
        #[serde(default)]
        password: Option<Secret>,
        /// `false`, `true`, or `{ mode, ca }`.
        #[serde(default)]
        #[schemars(with = "Option<SslSchema>")]
        ssl: Option<Value>,
        /// The schema that holds the tables.
        #[serde(default)]
        schema: Option<String>,
    }
);

backend_block!(
    /// `type: redis`.
    RedisBlock {
        /// `redis://user:pass@host:port/db`, or `rediss://` for TLS. Wins over the host fields.
        #[serde(default)]
        url: Option<SecretUrl>,
        /// The server host.
        #[serde(default)]
        host: Option<String>,
        /// The server port (default 6379).
        #[serde(default, deserialize_with = "num::opt")]
        #[schemars(with = "Option<NumOrEnv>")]
        port: Option<u64>,
        /// The password.
        #[serde(default)]
        password: Option<Secret>,
        /// The database index.
        #[serde(default, deserialize_with = "num::opt")]
        #[schemars(with = "Option<NumOrEnv>")]
        database: Option<u64>,
        /// TLS for the host form: `true`, or `{ ca }`.
        #[serde(default)]
        #[schemars(with = "Option<SslSchema>")]
        ssl: Option<Value>,
        /// A synonym of `retryDelayMillis` (the seed's name).
        #[serde(default, deserialize_with = "num::opt")]
        #[schemars(with = "Option<NumOrEnv>")]
        retry_delay_on_failover: Option<u64>,
    }
);

backend_block!(
    /// A plugin's type: the common fields plus `options`, which the plugin's factory checks.
    PluginBlock {}
);

/// Schema of one backend block.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(crate) enum BackendBlockSchema {
    Memory(MemoryBlock),
    Sqlite(SqliteBlock),
    Postgres(PostgresBlock),
    Redis(RedisBlock),
    Plugin(PluginBlock),
}

/// Schema of the `storage:` block.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct StorageBlockSchema {
    /// The fast, ephemeral role (default `in-memory`).
    cache: Option<BackendBlockSchema>,
    /// The durable role (default `sqlite` at `.storage/storage.db`).
    database: Option<BackendBlockSchema>,
    /// Plugin libraries to load, relative to the config file.
    plugins: Option<Vec<String>>,
}
