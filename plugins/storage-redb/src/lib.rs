//! `redb`: an embedded, transactional database on [redb], shipped as a runtime plugin.
//!
//! This crate is a model for third-party plugin authors (see its README). It serves the
//! database role, and the cache role with TTLs, and keeps the whole contract (`docs/semantics.md`):
//!
//! - **Keys** live in one table keyed by `(namespace, key)`, so namespaces are exact, and
//!   `keys(pattern)` is a range scan over the pattern's literal prefix, filtered by
//!   storage-core's Redis matcher.
//! - **Lists**: a header row holds the length; items live in a second table keyed by
//!   `(namespace, key, seq)` with a dense sequence, so append and tail reads are lookups.
//! - **Transactions**: every write (mset included) is atomic, committed with
//!   `Durability::Immediate` by default, so an acknowledged write survives a crash. Writes
//!   that arrive while a commit runs share the next transaction and its fsync (group commit,
//!   at most [`MAX_GROUP`] writes); a failing write is rolled back alone.
//! - **Expiry** is indexed: a third table keyed by `(namespace, deadline, key)` lists the keys
//!   written with a TTL, so every 128th write reclaims what has expired by reading only the
//!   expired part of that index; a namespace with no TTLs costs one empty range lookup.
//! - **Threads**: point reads (a key, a batch or a list window of at most
//!   [`INLINE_READ_LIMIT`] entries) run where they are awaited: a B-tree lookup in redb's page
//!   cache takes microseconds, less than a handoff to another thread. Scans (`keys`, larger
//!   windows) and every commit (it waits for the disk) run on the plugin runtime's blocking
//!   pool, one commit at a time per backend, taking every write queued behind it (`commit`).
//!
//! Options (`options:` in the backend block): `path` (required; relative to the config file)
//! and `durability` (`immediate`, the default, or `none`).
//!
//! [redb]: https://docs.rs/redb

#![warn(missing_docs)]

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;
use storage_core::watch::ChangeKind;

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use storage_core::config::{BackendSpec, BlockInput, Role};
use storage_core::plugin::PluginRegistrar;
use storage_core::{Error, Result, Version};

mod backend;
mod changes;
mod commit;
mod conditional;
pub mod config;
mod expiry;
mod file;

pub use commit::MAX_GROUP;
use commit::{CommitSettings, Committer};
use file::{OpenFile, open_file};

use expiry::{index_deadline, unindex_deadline};

pub use config::{DurabilityOption, RedbConfig, RedbOptions, TYPE_NAME};

const KEYS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("storage_keys");
const ITEMS: TableDefinition<(&str, &str, u64), &str> = TableDefinition::new("storage_list_items");
const RECLAIM_EVERY: u64 = 128;

/// The most entries a read touches and still runs inline; see the crate docs.
pub const INLINE_READ_LIMIT: u64 = 1024;

/// A key's header: what it holds, its deadline (caches), and a list's length or a value's
/// version (`Version::raw`; 0 for values written before versions existed).
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

    /// A value's version; `None` for a list.
    fn version(&self) -> Option<Version> {
        (!self.list).then_some(Version::from_raw(self.len))
    }

    fn live(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }

    /// A list's first sequence number (its items are `head .. head + len`). A list header keeps
    /// it where a value keeps its JSON; headers written before trimming existed have none: 0.
    fn head(&self) -> u64 {
        match self.json.get(..8).map(<[u8; 8]>::try_from) {
            Some(Ok(bytes)) if self.list => u64::from_le_bytes(bytes),
            _ => 0,
        }
    }

    /// A list's generation, drawn when it was created (after the head in the header); 0 for
    /// headers written before lists had one.
    fn generation(&self) -> u64 {
        match self.json.get(8..16).map(<[u8; 8]>::try_from) {
            Some(Ok(bytes)) if self.list => u64::from_le_bytes(bytes),
            _ => 0,
        }
    }

    fn list(len: u64, head: u64, generation: u64) -> Header {
        let json = match (head, generation) {
            (0, 0) => Vec::new(),
            (head, 0) => head.to_le_bytes().to_vec(),
            (head, generation) => [head.to_le_bytes(), generation.to_le_bytes()].concat(),
        };
        Header {
            list: true,
            expires_at: None,
            len,
            json,
        }
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

/// A namespace of one redb file; serves both roles.
#[derive(Debug)]
pub struct RedbBackend {
    db: RwLock<Option<Arc<OpenFile>>>,
    ns: Arc<str>,
    committer: Arc<Committer>,
    commit_settings: Arc<CommitSettings>,
}

impl RedbBackend {
    /// Opens the file that `spec`'s options name.
    pub fn open(settings: &RedbConfig, spec: &BackendSpec) -> Result<RedbBackend> {
        let path = settings.path.clone();
        let ns: Arc<str> = spec.common.key_prefix.as_str().into();
        let durability = match settings.durability {
            DurabilityOption::Immediate => redb::Durability::Immediate,
            DurabilityOption::None => redb::Durability::None,
        };
        Ok(RedbBackend {
            db: RwLock::new(Some(open_file(&path)?)),
            ns: ns.clone(),
            committer: Arc::default(),
            commit_settings: Arc::new(CommitSettings { ns, durability }),
        })
    }

    /// Write transactions committed since this backend opened. Concurrent writes share
    /// transactions (see the crate docs), so this is at most the number of writes.
    pub fn commits(&self) -> u64 {
        self.committer.commits()
    }

    fn db(&self) -> Result<Arc<OpenFile>> {
        self.db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(Error::closed)
    }

    /// Runs a point read here, on the awaiting thread (see the crate docs).
    fn read_inline<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction, &str) -> Result<T>,
    ) -> Result<T> {
        let db = self.db()?;
        let tx = db
            .begin_read()
            .map_err(|e| db_error(e, "beginning a read"))?;
        f(&tx, &self.ns)
    }

    /// Runs a scan on a blocking thread of the plugin's runtime.
    async fn read_blocking<T: Send + 'static>(
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

    /// Applies `work` in a write transaction committed on a blocking thread, shared with the
    /// writes queued beside it (the `commit` module).
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnMut(&redb::WriteTransaction, &str, i64) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.committer
            .submit(self.db()?, &self.commit_settings, work)
            .await
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

fn remove_items(
    tx: &redb::WriteTransaction,
    ns: &str,
    key: &str,
    seqs: std::ops::Range<u64>,
) -> Result<()> {
    let mut items = tx
        .open_table(ITEMS)
        .map_err(|e| db_error(e, "opening the item table"))?;
    for seq in seqs {
        items
            .remove((ns, key, seq))
            .map_err(|e| db_error(e, "removing list items"))?;
    }
    Ok(())
}

/// Stores a value under the key's header at a new version, dropping a list it held.
fn put_value(
    tx: &redb::WriteTransaction,
    ns: &str,
    key: &str,
    json: &[u8],
    expires_at: Option<i64>,
) -> Result<Version> {
    let version = Version::fresh();
    let old = {
        let table = tx
            .open_table(KEYS)
            .map_err(|e| db_error(e, "opening the key table"))?;
        header_of(&table, ns, key)?
    };
    if let Some(h) = &old {
        unindex_deadline(tx, ns, key, h)?;
    }
    if let Some(h) = old.filter(|h| h.list) {
        remove_items(tx, ns, key, h.head()..h.head() + h.len)?;
    }
    let mut table = tx
        .open_table(KEYS)
        .map_err(|e| db_error(e, "opening the key table"))?;
    let header = Header {
        list: false,
        expires_at,
        len: version.raw(),
        json: json.to_vec(),
    };
    table
        .insert((ns, key), header.encode().as_slice())
        .map_err(|e| db_error(e, "storing the value"))?;
    if let Some(at) = expires_at {
        index_deadline(tx, ns, key, at)?;
    }
    drop(table);
    changes::record(tx, ns, key, ChangeKind::Set, Some(version))?;
    Ok(version)
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
    let (head, len, generation) = match header_of(&table, ns, key)?.filter(|h| h.live(now)) {
        Some(h) if h.list => (h.head(), h.len, h.generation()),
        Some(_) => return Err(Error::holds_value(key)),
        // A new list draws its generation, which followers tell incarnations by.
        None => {
            changes::record(tx, ns, key, ChangeKind::Set, None)?;
            (0, 0, Version::fresh().raw())
        }
    };
    let start = head + len;
    let header = Header::list(len + texts.len() as u64, head, generation);
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

/// The factory the plugin registers: [`RedbBackend`], erased by storage-core.
pub type RedbFactory = storage_core::Typed<RedbBackend>;

#[async_trait]
impl storage_core::Backend for RedbBackend {
    type Config = RedbConfig;
    const TYPE_NAMES: &'static [&'static str] = &[TYPE_NAME];

    fn schema() -> Value {
        serde_json::to_value(schemars::schema_for!(config::RedbBlock)).unwrap_or(Value::Null)
    }

    fn parse(block: &mut BlockInput<'_>) -> Result<RedbConfig> {
        RedbConfig::parse(block)
    }

    /// Opens the file on a blocking thread (redb reads and may repair it).
    async fn open(config: &RedbConfig, spec: &BackendSpec, _role: Role) -> Result<Self> {
        let (config, spec) = (config.clone(), spec.clone());
        tokio::task::spawn_blocking(move || RedbBackend::open(&config, &spec))
            .await
            .map_err(|e| Error::other(e.to_string()))?
    }
}

fn register(registrar: &mut PluginRegistrar) {
    registrar.add(storage_plugin::bridged(RedbFactory::new()));
}

storage_core::declare_plugin!(register);
