//! The PostgreSQL backend, registered as `postgresql` (alias `postgres`): the production
//! database shared by many instances, and a cache role with TTLs.
//!
//! It runs on a bb8 pool of tokio-postgres connections, with TLS through rustls (`ssl`,
//! `sslmode`, `sslrootcert`: `require` encrypts, `verify-full` also checks the chain and host).
//!
//! - **Values** are stored as their exact JSON text in a `text` column: JSONB would turn `-0.0`
//!   into `0`, `1e18` into an integer, drop duplicate members, and reject U+0000.
//! - **One kind per key.** set, delete, mset and append all go through the key's row in the key
//!   table, whose row lock serialises them, so no race leaves a key holding a value and a list.
//! - **Lists** are one row per item. The header row holds the length; an append increments it
//!   under the row lock and inserts the item at the old length, so concurrent appends from any
//!   number of instances get a dense sequence with no loss, duplication or gap, and commit in
//!   sequence order. append, `get_length` and tail reads are index lookups.
//! - **keys(pattern)** scans the `"C"`-collated primary key over the pattern's literal prefix
//!   and filters with storage-core's Redis matcher (never LIKE).
//! - **Schema**: versioned and migrated on connect under an advisory lock, in `schema` if given.
//! - **Time limits**: every operation has `operationTimeoutMillis`; a pool checkout waits at most
//!   `acquireTimeoutMillis`. Transient errors (a dropped connection, admin shutdown, a
//!   serialization failure) are retried for idempotent operations only; append never is.
//!   After a server restart the pool replaces its broken connections by itself.
//!
//! ```no_run
//! # async fn demo() -> storage_core::Result<()> {
//! use storage_core::config::ConfigSource;
//! let source = ConfigSource::from_yaml_str(
//!     "database: { type: postgres, url: 'postgresql://app@127.0.0.1/app' }",
//!     ".".as_ref(),
//! )?;
//! let mut registry = storage_core::Registry::new();
//! registry.register(std::sync::Arc::new(storage_postgres::PostgresFactory))?;
//! let config = source.resolve(&registry)?;
//! let db = registry.open_database(&config.database.primary).await?;
//! db.append("history:1", &serde_json::json!({"role": "user"})).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod sql;
mod tls;

pub use tls::client_config as tls_client_config;

use async_trait::async_trait;
use bb8::ManageConnection;
use bb8_postgres::PostgresConnectionManager;
use serde_json::Value;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use storage_core::config::{
    BackendSettings, BackendSpec, PgTarget, PostgresSettings, Role, SslMode,
};
use storage_core::redact::redact_url;
use storage_core::{
    BackendFactory, Cache, CacheEntry, Database, Error, KeyKind, KeyTtl, Result, Store, glob_match,
    literal_prefix, prefix_upper_bound,
};
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The type name this crate registers.
pub const TYPE_NAME: &str = "postgresql";

const KIND_LIST: i16 = 1;
const RECLAIM_EVERY: u64 = 128;
/// Retries of an idempotent operation after a transient error.
const RETRIES: u32 = 2;

type Pool = bb8::Pool<PostgresConnectionManager<MakeRustlsConnect>>;

/// The statements of one backend, with its table names filled in.
struct Statements {
    get: String,
    mget: String,
    header: String,
    ttl: String,
    set: String,
    mset: String,
    delete_items: String,
    delete: String,
    append: String,
    append_many: String,
    range: String,
    keys_all: String,
    keys_range: String,
    keys_from: String,
    clear: String,
    reclaim: String,
}

/// Quotes an identifier that config validation already restricted to `[A-Za-z0-9_$]`.
fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl Statements {
    fn new(schema: Option<&str>) -> Self {
        let (kv, items) = match schema {
            Some(s) => (
                format!("{}.storage_kv", quote_ident(s)),
                format!("{}.storage_list_items", quote_ident(s)),
            ),
            None => ("storage_kv".to_string(), "storage_list_items".to_string()),
        };
        let fill = |t: &str| {
            t.replace("{kv}", &kv)
                .replace("{items}", &items)
                .replace("{now}", sql::NOW_MS)
        };
        Statements {
            get: fill(sql::GET),
            mget: fill(sql::MGET),
            header: fill(sql::HEADER),
            ttl: fill(sql::TTL),
            set: fill(sql::SET),
            mset: fill(sql::MSET),
            delete_items: fill(sql::DELETE_ITEMS),
            delete: fill(sql::DELETE),
            append: fill(sql::APPEND),
            append_many: fill(sql::APPEND_MANY),
            range: fill(sql::RANGE),
            keys_all: fill(sql::KEYS_ALL),
            keys_range: fill(sql::KEYS_RANGE),
            keys_from: fill(sql::KEYS_FROM),
            clear: fill(sql::CLEAR),
            reclaim: fill(sql::RECLAIM),
        }
    }
}

/// Maps a driver error to the contract's kinds; transient ones are those a retry may fix.
fn pg_error(e: tokio_postgres::Error, what: &str) -> Error {
    if let Some(code) = e.code() {
        let transient = [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
        ];
        if transient.contains(code) {
            return Error::connection(format!(
                "{what}: {}",
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_string())
            ));
        }
        if *code == SqlState::QUERY_CANCELED {
            return Error::timeout(format!("{what}: statement timeout")).with_source(e);
        }
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return Error::config(format!("{what}: authentication failed")).with_source(e);
        }
        if *code == SqlState::INVALID_CATALOG_NAME {
            return Error::config(format!("{what}: the database does not exist")).with_source(e);
        }
        return Error::other(what.to_string()).with_source(e);
    }
    // No SQLSTATE: the connection failed or closed (transient), or the client side refused
    // something (not transient).
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io {
        Error::connection(what.to_string()).with_source(e)
    } else {
        Error::other(what.to_string()).with_source(e)
    }
}

/// Keeps the pool's last connection error, so that a checkout timeout can say why.
#[derive(Debug, Clone, Default)]
struct LastError(Arc<Mutex<Option<String>>>);

impl bb8::ErrorSink<tokio_postgres::Error> for LastError {
    fn sink(&self, e: tokio_postgres::Error) {
        let text = pg_error(e, "connecting").to_string();
        tracing::debug!(error = %text, "postgresql connection failed");
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
    }
    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<tokio_postgres::Error>> {
        Box::new(self.clone())
    }
}

impl LastError {
    fn pool_error(&self, e: bb8::RunError<tokio_postgres::Error>) -> Error {
        match e {
            bb8::RunError::User(e) => pg_error(e, "connecting"),
            bb8::RunError::TimedOut => {
                let last = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
                Error::checkout_timeout(last.as_deref())
            }
        }
    }
}

fn decode(key: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        Error::other(format!(
            "the value stored at {key:?} is not valid JSON: {e}"
        ))
    })
}

fn encode(value: &Value) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::invalid_value(format!("cannot encode value: {e}")))
}

fn ttl_ms(ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|t| t.as_millis().min(i64::MAX as u128) as i64)
}

/// The tokio-postgres config for a spec. URL parameters tokio-postgres does not know
/// (`sslmode=verify-full`, `sslrootcert`) are taken out: the config layer already read them.
fn pg_config(settings: &PostgresSettings, spec: &BackendSpec) -> Result<tokio_postgres::Config> {
    let mut cfg = match &settings.target {
        PgTarget::Url(url) => {
            let raw = url.expose();
            let cleaned = match raw.split_once('?') {
                None => raw.to_string(),
                Some((base, query)) => {
                    let kept: Vec<&str> = query
                        .split('&')
                        .filter(|p| !p.starts_with("sslmode=") && !p.starts_with("sslrootcert="))
                        .collect();
                    if kept.is_empty() {
                        base.to_string()
                    } else {
                        format!("{base}?{}", kept.join("&"))
                    }
                }
            };
            cleaned.parse::<tokio_postgres::Config>().map_err(|e| {
                Error::config(format!(
                    "{}: invalid connection URL {}: {e}",
                    spec.path,
                    redact_url(raw)
                ))
            })?
        }
        PgTarget::Host {
            host,
            port,
            database,
            user,
            password,
        } => {
            let mut c = tokio_postgres::Config::new();
            c.host(host).port(*port);
            if let Some(d) = database {
                c.dbname(d);
            }
            if let Some(u) = user {
                c.user(u);
            }
            if let Some(p) = password {
                c.password(p.expose());
            }
            c
        }
    };
    if cfg.get_user().is_none() {
        cfg.user("postgres");
    }
    cfg.connect_timeout(spec.common.connect_timeout);
    cfg.ssl_mode(match settings.ssl.mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
    });
    if let Some(name) = &settings.application_name {
        cfg.application_name(name);
    }
    if let Some(t) = settings.statement_timeout {
        cfg.options(format!("-c statement_timeout={}", t.as_millis()));
    }
    Ok(cfg)
}

/// Creates or upgrades the tables, under an advisory lock so that instances starting together
/// take turns.
async fn migrate(
    conn: &mut tokio_postgres::Client,
    schema: Option<&str>,
    describe: &str,
) -> Result<()> {
    let tx = conn
        .transaction()
        .await
        .map_err(|e| pg_error(e, "starting the migration"))?;
    // Several instances may start at once: one migrates, the others wait and then see it done.
    tx.execute("SELECT pg_advisory_xact_lock(7294514218675021137)", &[])
        .await
        .map_err(|e| pg_error(e, "taking the migration lock"))?;
    let (meta, kv, kv_name, items) = match schema {
        Some(s) => {
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(s)))
                .await
                .map_err(|e| pg_error(e, "creating the schema"))?;
            let q = quote_ident(s);
            (
                format!("{q}.storage_meta"),
                format!("{q}.storage_kv"),
                "storage_kv".to_string(),
                format!("{q}.storage_list_items"),
            )
        }
        None => (
            "storage_meta".into(),
            "storage_kv".into(),
            "storage_kv".into(),
            "storage_list_items".into(),
        ),
    };
    tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {meta} (id boolean PRIMARY KEY DEFAULT true CHECK (id), version integer NOT NULL)"
        ))
        .await
        .map_err(|e| pg_error(e, "creating the meta table"))?;
    let version: Option<i32> = tx
        .query_opt(&format!("SELECT version FROM {meta}"), &[])
        .await
        .map_err(|e| pg_error(e, "reading the schema version"))?
        .map(|r| r.get(0));
    let version = version.unwrap_or(0);
    if version > sql::SCHEMA_VERSION {
        return Err(Error::config(format!(
            "{} has storage schema version {version}, newer than this build supports ({})",
            describe,
            sql::SCHEMA_VERSION
        )));
    }
    if version < 1 {
        let ddl = sql::MIGRATION_1
            .replace("{kv}", &kv)
            .replace("{kv_name}", &kv_name)
            .replace("{items}", &items);
        tx.batch_execute(&ddl)
            .await
            .map_err(|e| pg_error(e, "migrating to version 1"))?;
    }
    tx.execute(
            &format!("INSERT INTO {meta} (id, version) VALUES (true, $1) ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version"),
            &[&sql::SCHEMA_VERSION],
        )
        .await
        .map_err(|e| pg_error(e, "stamping the schema version"))?;
    tx.commit()
        .await
        .map_err(|e| pg_error(e, "committing the migration"))?;
    Ok(())
}

/// A namespace of one PostgreSQL database; serves both roles.
pub struct PostgresBackend {
    pool: RwLock<Option<Pool>>,
    ns: String,
    stmts: Arc<Statements>,
    describe: String,
    operation_timeout: Duration,
    writes: AtomicU64,
    last_error: LastError,
}

impl fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("server", &self.describe)
            .field("key_prefix", &self.ns)
            .finish()
    }
}

impl PostgresBackend {
    /// Connects, migrates the schema, and builds the pool.
    pub async fn open(spec: &BackendSpec) -> Result<PostgresBackend> {
        let BackendSettings::Postgres(settings) = &spec.settings else {
            return Err(Error::config(format!(
                "{} is not a postgresql backend",
                spec.type_name
            )));
        };
        let cfg = pg_config(settings, spec)?;
        let tls = tls::connector(&settings.ssl)?;
        let manager = PostgresConnectionManager::new(cfg, tls);
        let describe = spec.to_string();
        // The first connection is made directly, so that a refusal (a closed port, a bad
        // certificate, a wrong password) is reported as itself, at once, not as a pool timeout.
        let connect_limit = spec.common.connect_timeout.max(spec.common.acquire_timeout);
        let first = async {
            let mut client = manager
                .connect()
                .await
                .map_err(|e| pg_error(e, "connecting"))?;
            migrate(&mut client, settings.schema.as_deref(), &describe).await?;
            Ok::<_, Error>(client)
        };
        let first = tokio::time::timeout(connect_limit, first)
            .await
            .map_err(|_| {
                Error::timeout(format!(
                    "connecting to {describe} took longer than {connect_limit:?}"
                ))
            })??;
        let last_error = LastError::default();
        let pool = bb8::Pool::builder()
            .max_size(spec.common.pool_max)
            .min_idle(Some(spec.common.pool_min))
            .connection_timeout(spec.common.acquire_timeout)
            .idle_timeout(Some(spec.common.idle_timeout))
            .error_sink(Box::new(last_error.clone()))
            // A checkout must stay cheap: no ping per checkout. A connection that broke is
            // dropped when it is returned (`has_broken`), and the operation's error is transient.
            .test_on_check_out(false)
            .build_unchecked(manager);
        let _ = pool.add(first);
        let backend = PostgresBackend {
            pool: RwLock::new(Some(pool)),
            ns: spec.common.key_prefix.clone(),
            stmts: Arc::new(Statements::new(settings.schema.as_deref())),
            describe,
            operation_timeout: spec.common.operation_timeout,
            writes: AtomicU64::new(0),
            last_error,
        };
        Ok(backend)
    }

    fn pool(&self) -> Result<Pool> {
        self.pool
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| Error::connection("backend is closed"))
    }

    /// Runs `op` on a pooled connection under the operation timeout. An idempotent operation is
    /// retried after a transient error; a non-idempotent one (append) never is.
    async fn run<T, F, Fut>(&self, idempotent: bool, op: F) -> Result<T>
    where
        F: Fn(
            bb8::PooledConnection<'static, PostgresConnectionManager<MakeRustlsConnect>>,
            Arc<Statements>,
        ) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let pool = self.pool()?;
        let attempt = async {
            let mut tries = 0;
            loop {
                let result = match pool.get_owned().await {
                    Ok(conn) => op(conn, self.stmts.clone()).await,
                    Err(e) => Err(self.last_error.pool_error(e)),
                };
                match result {
                    Err(e)
                        if idempotent
                            && e.kind() == storage_core::ErrorKind::Connection
                            && tries < RETRIES =>
                    {
                        tries += 1;
                        tracing::debug!(error = %e, tries, "retrying an idempotent operation");
                        tokio::time::sleep(Duration::from_millis(20 * u64::from(tries))).await;
                    }
                    other => return other,
                }
            }
        };
        tokio::time::timeout(self.operation_timeout, attempt)
            .await
            .map_err(|_| {
                Error::timeout(format!(
                    "operation took longer than {:?}",
                    self.operation_timeout
                ))
            })?
    }

    fn reclaim_due(&self) -> bool {
        self.writes
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(RECLAIM_EVERY)
    }

    async fn reclaim(&self) {
        let r = self
            .run(true, |conn, s| async move {
                conn.execute(&s.reclaim, &[])
                    .await
                    .map_err(|e| pg_error(e, "reclaiming"))?;
                Ok(())
            })
            .await;
        if let Err(e) = r {
            tracing::debug!(error = %e, "reclaiming expired keys failed");
        }
    }

    async fn set_value(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<()> {
        let text = encode(value)?;
        let ttl = ttl_ms(ttl);
        if ttl.is_some() && self.reclaim_due() {
            self.reclaim().await;
        }
        self.run(true, |conn, s| {
            let (text, key) = (&text, key);
            async move {
                conn.query_one(&s.set, &[&self.ns, &key, text, &ttl])
                    .await
                    .map_err(|e| pg_error(e, "storing the value"))?;
                Ok(())
            }
        })
        .await
    }

    async fn set_many(&self, entries: Vec<(String, String, Option<i64>)>) -> Result<()> {
        // One statement, one transaction. The last of repeated keys wins: keep only it, since
        // one INSERT ... ON CONFLICT cannot touch a row twice.
        let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (i, (k, _, _)) in entries.iter().enumerate() {
            last.insert(k.as_str(), i);
        }
        let mut keys = Vec::new();
        let mut values = Vec::new();
        let mut ttls = Vec::new();
        for (i, (k, v, t)) in entries.iter().enumerate() {
            if last.get(k.as_str()) == Some(&i) {
                keys.push(k.as_str());
                values.push(v.as_str());
                ttls.push(*t);
            }
        }
        if ttls.iter().any(Option::is_some) && self.reclaim_due() {
            self.reclaim().await;
        }
        self.run(true, |mut conn, s| {
            let (keys, values, ttls) = (&keys, &values, &ttls);
            async move {
                let tx = conn
                    .transaction()
                    .await
                    .map_err(|e| pg_error(e, "starting the batch"))?;
                let lists = tx
                    .query(&s.mset, &[&self.ns, keys, values, ttls])
                    .await
                    .map_err(|e| pg_error(e, "storing the batch"))?;
                for row in lists {
                    let key: &str = row.get(0);
                    tx.execute(&s.delete_items, &[&self.ns, &key])
                        .await
                        .map_err(|e| pg_error(e, "dropping a replaced list"))?;
                }
                tx.commit()
                    .await
                    .map_err(|e| pg_error(e, "committing the batch"))?;
                Ok(())
            }
        })
        .await
    }

    async fn header(&self, key: &str) -> Result<Option<(i16, i64)>> {
        self.run(true, |conn, s| async move {
            Ok(conn
                .query_opt(&s.header, &[&self.ns, &key])
                .await
                .map_err(|e| pg_error(e, "reading the key"))?
                .map(|r| (r.get(0), r.get(1))))
        })
        .await
    }
}

#[async_trait]
impl Store for PostgresBackend {
    fn backend(&self) -> &str {
        TYPE_NAME
    }

    async fn get(&self, key: &str) -> Result<Option<Value>> {
        let row = self
            .run(true, |conn, s| async move {
                conn.query_opt(&s.get, &[&self.ns, &key])
                    .await
                    .map_err(|e| pg_error(e, "reading the key"))
            })
            .await?;
        match row {
            None => Ok(None),
            Some(r) if r.get::<_, i16>(0) == KIND_LIST => Err(Error::holds_list(key)),
            Some(r) => decode(key, r.get::<_, Option<&str>>(1).unwrap_or("null")).map(Some),
        }
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let row = self
            .run(true, |conn, s| async move {
                conn.query_opt(&s.delete, &[&self.ns, &key])
                    .await
                    .map_err(|e| pg_error(e, "deleting the key"))
            })
            .await?;
        Ok(row.is_some_and(|r| r.get::<_, bool>(0)))
    }

    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Value>>> {
        let rows = self
            .run(true, |conn, s| async move {
                conn.query(&s.mget, &[&self.ns, &keys])
                    .await
                    .map_err(|e| pg_error(e, "reading the keys"))
            })
            .await?;
        // Rows come back in no order: place each value in the slots of its key. A key asked for
        // more than once is cloned for all but its last slot.
        let mut slots: std::collections::HashMap<&str, Vec<usize>> =
            std::collections::HashMap::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            slots.entry(k.as_str()).or_default().push(i);
        }
        let mut out = vec![None; keys.len()];
        for r in rows {
            if r.get::<_, i16>(1) == KIND_LIST {
                continue;
            }
            let key: &str = r.get(0);
            let value = decode(key, r.get::<_, Option<&str>>(2).unwrap_or("null"))?;
            if let Some((last, rest)) = slots.get(key).and_then(|s| s.split_last()) {
                for &i in rest {
                    out[i] = Some(value.clone());
                }
                out[*last] = Some(value);
            }
        }
        Ok(out)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.header(key).await?.is_some())
    }

    async fn kind(&self, key: &str) -> Result<KeyKind> {
        Ok(match self.header(key).await? {
            None => KeyKind::None,
            Some((KIND_LIST, _)) => KeyKind::List,
            Some(_) => KeyKind::Value,
        })
    }

    async fn keys(&self, pattern: Option<&str>) -> Result<Vec<String>> {
        let (prefix, _) = pattern.map(literal_prefix).unwrap_or_default();
        let upper = prefix_upper_bound(&prefix);
        let rows = self
            .run(true, |conn, s| {
                let (prefix, upper) = (&prefix, &upper);
                async move {
                    let r = if prefix.is_empty() {
                        conn.query(&s.keys_all, &[&self.ns]).await
                    } else if let Some(upper) = upper {
                        conn.query(&s.keys_range, &[&self.ns, prefix, upper]).await
                    } else {
                        conn.query(&s.keys_from, &[&self.ns, prefix]).await
                    };
                    r.map_err(|e| pg_error(e, "listing keys"))
                }
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| r.get::<_, String>(0))
            .take_while(|k| k.starts_with(&prefix))
            .filter(|k| pattern.is_none_or(|p| glob_match(p, k)))
            .collect())
    }

    async fn clear(&self) -> Result<()> {
        self.run(true, |conn, s| async move {
            conn.query_one(&s.clear, &[&self.ns])
                .await
                .map_err(|e| pg_error(e, "clearing the namespace"))?;
            Ok(())
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.run(true, |conn, _| async move {
            conn.simple_query("")
                .await
                .map_err(|e| pg_error(e, "ping"))?;
            Ok(())
        })
        .await
    }

    async fn close(&self) -> Result<()> {
        self.pool.write().unwrap_or_else(|e| e.into_inner()).take();
        Ok(())
    }
}

#[async_trait]
impl Cache for PostgresBackend {
    async fn set(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<()> {
        self.set_value(key, value, ttl).await
    }

    async fn mset(&self, entries: &[CacheEntry]) -> Result<()> {
        let encoded = entries
            .iter()
            .map(|e| Ok((e.key.clone(), encode(&e.value)?, ttl_ms(e.ttl))))
            .collect::<Result<Vec<_>>>()?;
        self.set_many(encoded).await
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        let row = self
            .run(true, |conn, s| async move {
                conn.query_opt(&s.ttl, &[&self.ns, &key])
                    .await
                    .map_err(|e| pg_error(e, "reading the TTL"))
            })
            .await?;
        Ok(match row {
            None => KeyTtl::Missing,
            Some(r) => match r.get::<_, Option<i64>>(0) {
                None => KeyTtl::Persistent,
                Some(ms) => KeyTtl::ExpiresIn(Duration::from_millis(ms.max(1) as u64)),
            },
        })
    }
}

#[async_trait]
impl Database for PostgresBackend {
    async fn set(&self, key: &str, value: &Value) -> Result<()> {
        self.set_value(key, value, None).await
    }

    async fn mset(&self, entries: &[(String, Value)]) -> Result<()> {
        let encoded = entries
            .iter()
            .map(|(k, v)| Ok((k.clone(), encode(v)?, None)))
            .collect::<Result<Vec<_>>>()?;
        self.set_many(encoded).await
    }

    async fn append(&self, key: &str, value: &Value) -> Result<()> {
        let text = encode(value)?;
        // Not idempotent: a lost acknowledgement may hide a committed append, so never retried.
        let row = self
            .run(false, |conn, s| {
                let text = &text;
                async move {
                    conn.query_opt(&s.append, &[&self.ns, &key, text])
                        .await
                        .map_err(|e| pg_error(e, "appending"))
                }
            })
            .await?;
        match row {
            Some(_) => Ok(()),
            None => Err(Error::holds_value(key)),
        }
    }

    async fn append_many(&self, key: &str, values: &[Value]) -> Result<()> {
        let texts = values.iter().map(encode).collect::<Result<Vec<_>>>()?;
        // One statement, one transaction; not idempotent, so never retried.
        let rows = self
            .run(false, |conn, s| {
                let texts = &texts;
                async move {
                    conn.query(&s.append_many, &[&self.ns, &key, texts])
                        .await
                        .map_err(|e| pg_error(e, "appending"))
                }
            })
            .await?;
        if rows.is_empty() {
            return Err(Error::holds_value(key));
        }
        Ok(())
    }

    async fn get_range(&self, key: &str, start: i64, end: i64) -> Result<Vec<Value>> {
        let rows = self
            .run(true, |conn, s| async move {
                conn.query(&s.range, &[&self.ns, &key, &start, &end])
                    .await
                    .map_err(|e| pg_error(e, "reading the list"))
            })
            .await?;
        let Some(first) = rows.first() else {
            return Ok(Vec::new());
        };
        if first.get::<_, i16>(0) != KIND_LIST {
            return Err(Error::holds_value(key));
        }
        rows.iter()
            .filter_map(|r| r.get::<_, Option<&str>>(2))
            .map(|text| decode(key, text))
            .collect()
    }

    async fn get_length(&self, key: &str) -> Result<u64> {
        match self.header(key).await? {
            None => Ok(0),
            Some((KIND_LIST, len)) => Ok(len as u64),
            Some(_) => Err(Error::holds_value(key)),
        }
    }
}

/// The factory for the registry.
#[derive(Debug, Default, Clone, Copy)]
pub struct PostgresFactory;

#[async_trait]
impl BackendFactory for PostgresFactory {
    fn type_names(&self) -> Vec<String> {
        vec![TYPE_NAME.to_string(), "postgres".to_string()]
    }

    fn roles(&self) -> Vec<Role> {
        vec![Role::Cache, Role::Database]
    }

    fn options_schema(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "properties": {
                "application_name": { "type": "string" },
                "statement_timeout": { "type": "integer", "minimum": 0 },
                "ssl": {}
            }
        })
    }

    async fn open_cache(&self, spec: &BackendSpec) -> Result<Arc<dyn Cache>> {
        Ok(Arc::new(PostgresBackend::open(spec).await?))
    }

    async fn open_database(&self, spec: &BackendSpec) -> Result<Arc<dyn Database>> {
        Ok(Arc::new(PostgresBackend::open(spec).await?))
    }
}
