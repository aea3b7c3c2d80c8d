//! The conformance matrix: every backend × role the runner is started for, the server each
//! needs, its block, and (for network backends) the block the fault cases use.

use storage_servers::{Postgres, Redis, RedisCluster, S3Server};

/// A server a matrix entry needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    None,
    Postgres,
    Redis,
    PostgresTls,
    RedisTls,
    /// A primary with a synchronous streaming standby, reached through a two-host URL.
    PostgresHa,
    /// Six Redis nodes in cluster mode: three primaries, three replicas.
    RedisCluster,
    /// An S3-protocol server (`s3s-fs`) with a bucket `test`.
    S3,
}

/// A running shared server.
pub enum Served {
    Postgres(Postgres),
    Redis(Redis),
    /// Primary, standby.
    PostgresPair(Postgres, Postgres),
    RedisCluster(RedisCluster),
    S3(S3Server),
}

impl Served {
    pub fn url(&self) -> String {
        match self {
            Served::Postgres(p) => p.url(),
            Served::Redis(r) => r.url(),
            Served::RedisCluster(c) => c.url(),
            Served::S3(s) => s.endpoint(),
            Served::PostgresPair(p, s) => format!(
                "postgresql://postgres@127.0.0.1:{},127.0.0.1:{}/postgres",
                p.port(),
                s.port()
            ),
        }
    }

    pub fn addr(&self) -> String {
        let port = match self {
            Served::Postgres(p) | Served::PostgresPair(p, _) => p.port(),
            Served::Redis(r) => r.port(),
            Served::RedisCluster(c) => c.node(0).port(),
            Served::S3(s) => s.port(),
        };
        format!("127.0.0.1:{port}")
    }
}

/// One line of the matrix: a label for the log, the role, the server, and the backend block
/// (`{url}` is replaced by the server's URL, `{tmp}` by a fresh temp dir). A network backend
/// also has a fault block, the same backend with `{addr}` where the server's address goes:
/// the runner puts the kit's fault proxy there and runs the fault cases too.
pub struct Entry {
    pub label: &'static str,
    pub role: &'static str,
    pub server: Server,
    pub block: &'static str,
    pub fault: Option<&'static str>,
}

const SQLITE: &str = "{type: sqlite, path: '{tmp}/kit.db'}";
const LOCAL_BLOBS: &str = "{type: local, path: '{tmp}/blobs'}";
/// `{s3-access}` and `{s3-secret}` are the S3 server's keys.
const S3: &str = "{type: s3, endpoint: '{url}', bucket: test, accessKeyId: '{s3-access}', secretAccessKey: '{s3-secret}', keyPrefix: kit}";
const POSTGRES: &str = "{type: postgresql, url: '{url}'}";
const REDIS: &str = "{type: redis, url: '{url}'}";
const POSTGRES_TLS: &str = "{type: postgresql, url: '{url}?sslmode=verify-full&sslrootcert={ca}', options: {application_name: matrix-tls}}";
/// Plugin entries are whole config files (written to the run's temp dir), so that the runner
/// loads the library the way an application would.
const PLUGIN_MEMORY: &str = "storage:\n  plugins: ['{plugins}/libplugin_memory.so']\n  cache: {type: plugin-memory}\n  database: {type: plugin-memory}\n  blob: {type: plugin-memory}\n";
const REDB: &str = "storage:\n  plugins: ['{plugins}/libstorage_redb.so']\n  cache: {type: redb, options: {path: cache.redb}}\n  database: {type: redb, options: {path: kit.redb}}\n";
/// The cluster has no fault block: its client learns every node's address from the cluster
/// itself, so a proxy in front of one address is not in its path. Its failover test in
/// storage-redis kills a primary instead.
const REDIS_CLUSTER: &str = "{type: redis, cluster: true, url: '{url}', keyPrefix: 'kit:'}";
/// The plugin template, built outside the workspace (`plugins/template`).
const TEMPLATE: &str = "storage:\n  plugins: ['{plugins}/libstorage_plugin_template.so']\n  cache: {type: template-memory}\n  database: {type: template-memory, options: {label: kit}}\n  blob: {type: template-memory}\n";
const REDIS_TLS: &str = "{type: redis, url: '{url}', ssl: {ca: '{ca}'}}";
const POSTGRES_FAULT: &str = "{type: postgresql, url: 'postgresql://postgres@{addr}/postgres'}";
const REDIS_FAULT: &str = "{type: redis, url: 'redis://{addr}'}";
const POSTGRES_TLS_FAULT: &str = "{type: postgresql, url: 'postgresql://postgres@{addr}/postgres?sslmode=verify-full&sslrootcert={ca}'}";
const REDIS_TLS_FAULT: &str = "{type: redis, url: 'rediss://{addr}', ssl: {ca: '{ca}'}}";

/// The production-account lines (`accounts.rs` makes the role and the users).
const POSTGRES_LEAST: &str = "{type: postgresql, url: '{pg-least-url}', schema: least_privilege}";
const REDIS_ACL_CACHE: &str =
    "{type: redis, url: '{redis-acl-cache-url}', keyPrefix: 'acl:cache:'}";
const REDIS_ACL_DATABASE: &str =
    "{type: redis, url: '{redis-acl-database-url}', keyPrefix: 'acl:database:'}";

pub const MATRIX: &[Entry] = &[
    entry(
        "in-memory",
        "cache",
        Server::None,
        "{type: in-memory, store: kit}",
    ),
    entry(
        "in-memory",
        "database",
        Server::None,
        "{type: in-memory, store: kit}",
    ),
    entry("sqlite", "cache", Server::None, SQLITE),
    entry("sqlite", "database", Server::None, SQLITE),
    entry("in-memory", "blob", Server::None, "{type: in-memory}"),
    entry("local", "blob", Server::None, LOCAL_BLOBS),
    entry("sqlite", "blob", Server::None, SQLITE),
    entry("s3", "blob", Server::S3, S3),
    entry("postgresql", "blob", Server::Postgres, POSTGRES),
    faulty(
        "postgresql",
        "database",
        Server::Postgres,
        POSTGRES,
        POSTGRES_FAULT,
    ),
    faulty(
        "postgresql",
        "cache",
        Server::Postgres,
        POSTGRES,
        POSTGRES_FAULT,
    ),
    faulty("redis", "cache", Server::Redis, REDIS, REDIS_FAULT),
    faulty("redis", "database", Server::Redis, REDIS, REDIS_FAULT),
    faulty(
        "postgresql over TLS",
        "database",
        Server::PostgresTls,
        POSTGRES_TLS,
        POSTGRES_TLS_FAULT,
    ),
    faulty(
        "postgresql over TLS",
        "cache",
        Server::PostgresTls,
        POSTGRES_TLS,
        POSTGRES_TLS_FAULT,
    ),
    faulty(
        "redis over TLS",
        "cache",
        Server::RedisTls,
        REDIS_TLS,
        REDIS_TLS_FAULT,
    ),
    faulty(
        "redis over TLS",
        "database",
        Server::RedisTls,
        REDIS_TLS,
        REDIS_TLS_FAULT,
    ),
    entry("postgresql-ha", "database", Server::PostgresHa, POSTGRES),
    entry(
        "postgresql (least privilege)",
        "database",
        Server::Postgres,
        POSTGRES_LEAST,
    ),
    entry("redis (acl)", "cache", Server::Redis, REDIS_ACL_CACHE),
    entry("redis (acl)", "database", Server::Redis, REDIS_ACL_DATABASE),
    entry(
        "redis-cluster",
        "cache",
        Server::RedisCluster,
        REDIS_CLUSTER,
    ),
    entry(
        "redis-cluster",
        "database",
        Server::RedisCluster,
        REDIS_CLUSTER,
    ),
    entry("plugin-memory", "cache", Server::None, PLUGIN_MEMORY),
    entry("plugin-memory", "database", Server::None, PLUGIN_MEMORY),
    entry("plugin-memory", "blob", Server::None, PLUGIN_MEMORY),
    entry("redb", "database", Server::None, REDB),
    entry("redb", "cache", Server::None, REDB),
    entry("plugin template", "cache", Server::None, TEMPLATE),
    entry("plugin template", "database", Server::None, TEMPLATE),
    entry("plugin template", "blob", Server::None, TEMPLATE),
];

const fn entry(
    label: &'static str,
    role: &'static str,
    server: Server,
    block: &'static str,
) -> Entry {
    Entry {
        label,
        role,
        server,
        block,
        fault: None,
    }
}

const fn faulty(
    label: &'static str,
    role: &'static str,
    server: Server,
    block: &'static str,
    fault: &'static str,
) -> Entry {
    Entry {
        label,
        role,
        server,
        block,
        fault: Some(fault),
    }
}
