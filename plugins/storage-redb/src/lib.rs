//! `redb`: an embedded, transactional database on [redb], shipped as a runtime plugin.
//!
//! This crate is a model for third-party plugin authors (see its README). It serves the
//! database role, and the cache role with TTLs, and keeps all of SEMANTICS.md:
//!
//! - **Keys** live in one table keyed by `(namespace, key)`, so namespaces are exact, and
//!   `keys(pattern)` is a range scan over the pattern's literal prefix, filtered by
//!   storage-core's Redis matcher.
//! - **Lists**: a header row holds the length; items live in a second table keyed by
//!   `(namespace, key, seq)` with a dense sequence, so append and tail reads are lookups.
//! - **Transactions**: every write (mset included) is one redb write transaction, committed
//!   with `Durability::Immediate` by default, so an acknowledged write survives a crash.
//! - **No blocking on async threads**: redb calls run on the plugin runtime's blocking pool.
//!
//! Options (`options:` in the backend block): `path` (required; relative to the config file)
//! and `durability` (`immediate`, the default, or `none`).
//!
//! [redb]: https://docs.rs/redb

#![warn(missing_docs)]

use async_trait::async_trait;
use redb::{Database as Redb, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Deserialize;
use serde_json::Value;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use storage_core::config::{BackendSettings, BackendSpec, Role};
use storage_core::plugin::PluginRegistrar;
use storage_core::{
    BackendFactory, Cache, CacheEntry, Database, Error, KeyKind, KeyTtl, Result, Store, glob_match,
    literal_prefix, lrange_window, prefix_upper_bound,
};

/// The type name this plugin registers.
pub const TYPE_NAME: &str = "redb";

const KEYS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("storage_keys");
const ITEMS: TableDefinition<(&str, &str, u64), &str> = TableDefinition::new("storage_list_items");
const RECLAIM_EVERY: u64 = 128;

/// The plugin's options.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedbOptions {
    /// The database file (relative paths are relative to the config file).
    pub path: String,
    /// `immediate` (default: a commit is on disk when it returns) or `none`.
    #[serde(default)]
    pub durability: DurabilityOption,
}

/// Commit durability.
#[derive(Debug, Default, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityOption {
    /// Every commit is persisted before it returns.
    #[default]
    Immediate,
    /// Commits are not persisted until a later immediate one (faster, loses data on a crash).
    None,
}

/// A key's header: what it holds, its deadline (caches), and a list's length.
#[derive(Debug, Clone, PartialEq)]
struct Header {
    list: bool,
    expires_at: Option<i64>,
    len: u64,
    json: Vec<u8>,
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(18 + self.json.len());
        out.push(u8::from(self.list));
        out.push(u8::from(self.expires_at.is_some()));
        out.extend_from_slice(&self.expires_at.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.json);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Header> {
        if bytes.len() < 18 {
            return Err(Error::other("a key header in the redb file is truncated"));
        }
        let expires = i64::from_le_bytes(bytes[2..10].try_into().expect("8 bytes"));
        Ok(Header {
            list: bytes[0] == 1,
            expires_at: (bytes[1] == 1).then_some(expires),
            len: u64::from_le_bytes(bytes[10..18].try_into().expect("8 bytes")),
            json: bytes[18..].to_vec(),
        })
    }

    fn live(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn db_error(e: impl std::fmt::Display, what: &str) -> Error {
    Error::other(format!("{what}: {e}"))
}

fn decode_json(key: &str, bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::other(format!("the value at {key:?} is not valid JSON: {e}")))
}

/// One redb file per path in the process (redb locks a file to one opener).
fn open_file(path: &Path) -> Result<Arc<Redb>> {
    static OPEN: Mutex<Vec<(PathBuf, Weak<Redb>)>> = Mutex::new(Vec::new());
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    open.retain(|(_, w)| w.strong_count() > 0);
    if let Some(db) = open
        .iter()
        .find(|(p, _)| p == path)
        .and_then(|(_, w)| w.upgrade())
    {
        return Ok(db);
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            Error::connection(format!("cannot create directory {}: {e}", parent.display()))
        })?;
    }
    let db = Redb::create(path).map_err(|e| {
        Error::config(format!(
            "cannot open {} as a redb database: {e}",
            path.display()
        ))
    })?;
    let tx = db
        .begin_write()
        .map_err(|e| db_error(e, "creating tables"))?;
    tx.open_table(KEYS)
        .map_err(|e| db_error(e, "creating tables"))?;
    tx.open_table(ITEMS)
        .map_err(|e| db_error(e, "creating tables"))?;
    tx.commit().map_err(|e| db_error(e, "creating tables"))?;
    let db = Arc::new(db);
    open.push((path.to_path_buf(), Arc::downgrade(&db)));
    Ok(db)
}

/// A namespace of one redb file; serves both roles.
#[derive(Debug)]
pub struct RedbBackend {
    db: RwLock<Option<Arc<Redb>>>,
    ns: Arc<str>,
    durability: DurabilityOption,
    writes: AtomicU64,
}

impl RedbBackend {
    /// Opens the file that `spec`'s options name.
    pub fn open(spec: &BackendSpec) -> Result<RedbBackend> {
        let BackendSettings::Plugin(settings) = &spec.settings else {
            return Err(Error::config(format!(
                "{} is not a plugin backend",
                spec.type_name
            )));
        };
        let options: RedbOptions = serde_path_to_error::deserialize(Value::Object(
            settings.options.clone(),
        ))
        .map_err(|e| {
            let field = e.path().to_string();
            let at = if field == "." {
                String::new()
            } else {
                format!(".{field}")
            };
            Error::config(format!("{}.options{at}: {}", spec.path, e.inner()))
        })?;
        let path = Path::new(&options.path);
        let path = if path.is_absolute() {
            path.to_path_buf()
        } else {
            settings.base_dir.join(path)
        };
        Ok(RedbBackend {
            db: RwLock::new(Some(open_file(&path)?)),
            ns: spec.common.key_prefix.as_str().into(),
            durability: options.durability,
            writes: AtomicU64::new(0),
        })
    }

    fn db(&self) -> Result<Arc<Redb>> {
        self.db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| Error::connection("backend is closed"))
    }

    /// Runs a read on a blocking thread of the plugin's runtime.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction, &str) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (db, ns) = (self.db()?, self.ns.clone());
        tokio::task::spawn_blocking(move || {
            let tx = db
                .begin_read()
                .map_err(|e| db_error(e, "beginning a read"))?;
            f(&tx, &ns)
        })
        .await
        .map_err(|e| Error::other(format!("blocking task failed: {e}")))?
    }

    /// Runs a write transaction on a blocking thread and commits it.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction, &str, i64) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (db, ns) = (self.db()?, self.ns.clone());
        let durability = match self.durability {
            DurabilityOption::Immediate => redb::Durability::Immediate,
            DurabilityOption::None => redb::Durability::None,
        };
        let reclaim = self
            .writes
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(RECLAIM_EVERY);
        tokio::task::spawn_blocking(move || {
            let mut tx = db
                .begin_write()
                .map_err(|e| db_error(e, "beginning a write"))?;
            tx.set_durability(durability)
                .map_err(|e| db_error(e, "setting durability"))?;
            let now = now_ms();
            if reclaim {
                reclaim_expired(&tx, &ns, now)?;
            }
            let out = f(&tx, &ns, now)?;
            tx.commit().map_err(|e| db_error(e, "committing"))?;
            Ok(out)
        })
        .await
        .map_err(|e| Error::other(format!("blocking task failed: {e}")))?
    }
}

fn header_of(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    ns: &str,
    key: &str,
) -> Result<Option<Header>> {
    match table
        .get((ns, key))
        .map_err(|e| db_error(e, "reading the key"))?
    {
        Some(guard) => Header::decode(guard.value()).map(Some),
        None => Ok(None),
    }
}

fn live_header(
    tx: &redb::ReadTransaction,
    ns: &str,
    key: &str,
    now: i64,
) -> Result<Option<Header>> {
    let table = tx
        .open_table(KEYS)
        .map_err(|e| db_error(e, "opening the key table"))?;
    Ok(header_of(&table, ns, key)?.filter(|h| h.live(now)))
}

fn remove_items(tx: &redb::WriteTransaction, ns: &str, key: &str, len: u64) -> Result<()> {
    let mut items = tx
        .open_table(ITEMS)
        .map_err(|e| db_error(e, "opening the item table"))?;
    for seq in 0..len {
        items
            .remove((ns, key, seq))
            .map_err(|e| db_error(e, "removing list items"))?;
    }
    Ok(())
}

/// Stores a value under the key's header, dropping a list it held.
fn put_value(
    tx: &redb::WriteTransaction,
    ns: &str,
    key: &str,
    json: Vec<u8>,
    expires_at: Option<i64>,
) -> Result<()> {
    let old = {
        let table = tx
            .open_table(KEYS)
            .map_err(|e| db_error(e, "opening the key table"))?;
        header_of(&table, ns, key)?
    };
    if let Some(h) = old.filter(|h| h.list) {
        remove_items(tx, ns, key, h.len)?;
    }
    let mut table = tx
        .open_table(KEYS)
        .map_err(|e| db_error(e, "opening the key table"))?;
    let header = Header {
        list: false,
        expires_at,
        len: 0,
        json,
    };
    table
        .insert((ns, key), header.encode().as_slice())
        .map_err(|e| db_error(e, "storing the value"))?;
    Ok(())
}

fn reclaim_expired(tx: &redb::WriteTransaction, ns: &str, now: i64) -> Result<()> {
    let mut table = tx
        .open_table(KEYS)
        .map_err(|e| db_error(e, "opening the key table"))?;
    let mut expired = Vec::new();
    for row in table
        .range((ns, "")..)
        .map_err(|e| db_error(e, "scanning"))?
    {
        let (k, v) = row.map_err(|e| db_error(e, "scanning"))?;
        let (row_ns, key) = k.value();
        if row_ns != ns {
            break;
        }
        if !Header::decode(v.value())?.live(now) {
            expired.push(key.to_string());
        }
    }
    for key in expired {
        table
            .remove((ns, key.as_str()))
            .map_err(|e| db_error(e, "reclaiming"))?;
    }
    Ok(())
}

fn append_texts(
    tx: &redb::WriteTransaction,
    ns: &str,
    key: &str,
    now: i64,
    texts: &[String],
) -> Result<()> {
    let mut table = tx
        .open_table(KEYS)
        .map_err(|e| db_error(e, "opening the key table"))?;
    let start = match header_of(&table, ns, key)?.filter(|h| h.live(now)) {
        Some(h) if h.list => h.len,
        Some(_) => return Err(Error::holds_value(key)),
        None => 0,
    };
    let header = Header {
        list: true,
        expires_at: None,
        len: start + texts.len() as u64,
        json: Vec::new(),
    };
    table
        .insert((ns, key), header.encode().as_slice())
        .map_err(|e| db_error(e, "growing the list"))?;
    drop(table);
    let mut items = tx
        .open_table(ITEMS)
        .map_err(|e| db_error(e, "opening the item table"))?;
    for (i, text) in texts.iter().enumerate() {
        items
            .insert((ns, key, start + i as u64), text.as_str())
            .map_err(|e| db_error(e, "appending"))?;
    }
    Ok(())
}

fn encode(value: &Value) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::invalid_value(format!("cannot encode value: {e}")))
}

fn deadline(now: i64, ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|t| now.saturating_add(t.as_millis().min(i64::MAX as u128) as i64))
}

#[async_trait]
impl Store for RedbBackend {
    fn backend(&self) -> &str {
        TYPE_NAME
    }

    async fn get(&self, key: &str) -> Result<Option<Value>> {
        let key = key.to_string();
        self.read(move |tx, ns| match live_header(tx, ns, &key, now_ms())? {
            None => Ok(None),
            Some(h) if h.list => Err(Error::holds_list(&key)),
            Some(h) => decode_json(&key, &h.json).map(Some),
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let key = key.to_string();
        self.write(move |tx, ns, now| {
            let old = {
                let mut table = tx
                    .open_table(KEYS)
                    .map_err(|e| db_error(e, "opening the key table"))?;
                let removed = table
                    .remove((ns, key.as_str()))
                    .map_err(|e| db_error(e, "deleting"))?;
                match removed {
                    Some(guard) => Some(Header::decode(guard.value())?),
                    None => None,
                }
            };
            match old {
                None => Ok(false),
                Some(h) => {
                    if h.list {
                        remove_items(tx, ns, &key, h.len)?;
                    }
                    Ok(h.live(now))
                }
            }
        })
        .await
    }

    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Value>>> {
        let keys = keys.to_vec();
        self.read(move |tx, ns| {
            let now = now_ms();
            keys.iter()
                .map(|k| match live_header(tx, ns, k, now)? {
                    Some(h) if !h.list => decode_json(k, &h.json).map(Some),
                    _ => Ok(None),
                })
                .collect()
        })
        .await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.kind(key).await? != KeyKind::None)
    }

    async fn kind(&self, key: &str) -> Result<KeyKind> {
        let key = key.to_string();
        self.read(move |tx, ns| {
            Ok(match live_header(tx, ns, &key, now_ms())? {
                None => KeyKind::None,
                Some(h) if h.list => KeyKind::List,
                Some(_) => KeyKind::Value,
            })
        })
        .await
    }

    async fn keys(&self, pattern: Option<&str>) -> Result<Vec<String>> {
        let pattern = pattern.map(str::to_string);
        self.read(move |tx, ns| {
            let now = now_ms();
            let (prefix, _) = pattern.as_deref().map(literal_prefix).unwrap_or_default();
            let upper = prefix_upper_bound(&prefix);
            let table = tx
                .open_table(KEYS)
                .map_err(|e| db_error(e, "opening the key table"))?;
            let mut out = Vec::new();
            // The range of the literal prefix, within the namespace.
            for row in table
                .range((ns, prefix.as_str())..)
                .map_err(|e| db_error(e, "scanning keys"))?
            {
                let (k, v) = row.map_err(|e| db_error(e, "scanning keys"))?;
                let (row_ns, key) = k.value();
                if row_ns != ns
                    || upper.as_deref().is_some_and(|u| key >= u)
                    || !key.starts_with(&prefix)
                {
                    break;
                }
                if Header::decode(v.value())?.live(now)
                    && pattern.as_deref().is_none_or(|p| glob_match(p, key))
                {
                    out.push(key.to_string());
                }
            }
            Ok(out)
        })
        .await
    }

    async fn clear(&self) -> Result<()> {
        self.write(|tx, ns, _| {
            let mut keys = Vec::new();
            {
                let table = tx
                    .open_table(KEYS)
                    .map_err(|e| db_error(e, "opening the key table"))?;
                for row in table
                    .range((ns, "")..)
                    .map_err(|e| db_error(e, "scanning"))?
                {
                    let (k, v) = row.map_err(|e| db_error(e, "scanning"))?;
                    let (row_ns, key) = k.value();
                    if row_ns != ns {
                        break;
                    }
                    keys.push((key.to_string(), Header::decode(v.value())?));
                }
            }
            let mut table = tx
                .open_table(KEYS)
                .map_err(|e| db_error(e, "opening the key table"))?;
            for (key, h) in &keys {
                table
                    .remove((ns, key.as_str()))
                    .map_err(|e| db_error(e, "clearing"))?;
                if h.list {
                    remove_items(tx, ns, key, h.len)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.read(|tx, _| {
            tx.open_table(KEYS).map_err(|e| db_error(e, "ping"))?;
            Ok(())
        })
        .await
    }

    async fn close(&self) -> Result<()> {
        self.db.write().unwrap_or_else(|e| e.into_inner()).take();
        Ok(())
    }
}

#[async_trait]
impl Cache for RedbBackend {
    async fn set(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<()> {
        let (key, json) = (key.to_string(), encode(value)?.into_bytes());
        self.write(move |tx, ns, now| put_value(tx, ns, &key, json, deadline(now, ttl)))
            .await
    }

    async fn mset(&self, entries: &[CacheEntry]) -> Result<()> {
        let entries = entries
            .iter()
            .map(|e| Ok((e.key.clone(), encode(&e.value)?.into_bytes(), e.ttl)))
            .collect::<Result<Vec<_>>>()?;
        self.write(move |tx, ns, now| {
            for (k, json, ttl) in entries {
                put_value(tx, ns, &k, json, deadline(now, ttl))?;
            }
            Ok(())
        })
        .await
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        let key = key.to_string();
        self.read(move |tx, ns| {
            let now = now_ms();
            Ok(match live_header(tx, ns, &key, now)? {
                None => KeyTtl::Missing,
                Some(Header {
                    expires_at: None, ..
                }) => KeyTtl::Persistent,
                Some(Header {
                    expires_at: Some(at),
                    ..
                }) => KeyTtl::ExpiresIn(Duration::from_millis((at - now).max(1) as u64)),
            })
        })
        .await
    }
}

#[async_trait]
impl Database for RedbBackend {
    async fn set(&self, key: &str, value: &Value) -> Result<()> {
        Cache::set(self, key, value, None).await
    }

    async fn mset(&self, entries: &[(String, Value)]) -> Result<()> {
        let entries: Vec<CacheEntry> = entries
            .iter()
            .map(|(k, v)| CacheEntry::new(k.clone(), v.clone(), None))
            .collect();
        Cache::mset(self, &entries).await
    }

    async fn append(&self, key: &str, value: &Value) -> Result<()> {
        self.append_many(key, std::slice::from_ref(value)).await
    }

    async fn append_many(&self, key: &str, values: &[Value]) -> Result<()> {
        let key = key.to_string();
        let texts = values.iter().map(encode).collect::<Result<Vec<_>>>()?;
        self.write(move |tx, ns, now| append_texts(tx, ns, &key, now, &texts))
            .await
    }

    async fn get_range(&self, key: &str, start: i64, end: i64) -> Result<Vec<Value>> {
        let key = key.to_string();
        self.read(move |tx, ns| {
            let len = match live_header(tx, ns, &key, now_ms())? {
                None => return Ok(Vec::new()),
                Some(h) if h.list => h.len,
                Some(_) => return Err(Error::holds_value(&key)),
            };
            let Some((first, last)) = lrange_window(len, start, end) else {
                return Ok(Vec::new());
            };
            let items = tx
                .open_table(ITEMS)
                .map_err(|e| db_error(e, "opening the item table"))?;
            let mut out = Vec::with_capacity((last - first + 1) as usize);
            for row in items
                .range((ns, key.as_str(), first)..=(ns, key.as_str(), last))
                .map_err(|e| db_error(e, "reading the list"))?
            {
                let (_, v) = row.map_err(|e| db_error(e, "reading the list"))?;
                out.push(decode_json(&key, v.value().as_bytes())?);
            }
            Ok(out)
        })
        .await
    }

    async fn get_length(&self, key: &str) -> Result<u64> {
        let key = key.to_string();
        self.read(move |tx, ns| match live_header(tx, ns, &key, now_ms())? {
            None => Ok(0),
            Some(h) if h.list => Ok(h.len),
            Some(_) => Err(Error::holds_value(&key)),
        })
        .await
    }
}

/// The factory.
#[derive(Debug, Default, Clone, Copy)]
pub struct RedbFactory;

#[async_trait]
impl BackendFactory for RedbFactory {
    fn type_names(&self) -> Vec<String> {
        vec![TYPE_NAME.to_string()]
    }

    fn roles(&self) -> Vec<Role> {
        vec![Role::Database, Role::Cache]
    }

    fn options_schema(&self) -> Value {
        serde_json::to_value(schemars::schema_for!(RedbOptions)).unwrap_or(Value::Null)
    }

    async fn open_cache(&self, spec: &BackendSpec) -> Result<Arc<dyn Cache>> {
        let spec = spec.clone();
        Ok(Arc::new(
            tokio::task::spawn_blocking(move || RedbBackend::open(&spec))
                .await
                .map_err(|e| Error::other(e.to_string()))??,
        ))
    }

    async fn open_database(&self, spec: &BackendSpec) -> Result<Arc<dyn Database>> {
        let spec = spec.clone();
        Ok(Arc::new(
            tokio::task::spawn_blocking(move || RedbBackend::open(&spec))
                .await
                .map_err(|e| Error::other(e.to_string()))??,
        ))
    }
}

fn register(registrar: &mut PluginRegistrar) {
    registrar.add(storage_plugin::bridged(RedbFactory));
}

storage_core::declare_plugin!(register);
