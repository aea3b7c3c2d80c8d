//! `storage migrate`: copy one role's namespace between any two backends, then verify it.

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage_core::Role;
use storage_core::config::BackendSpec;
use storage_core::{Cache, CacheEntry, Database, Error, KeyKind, KeyTtl, Result, Store};
use storage_manager::{StorageManager, namespaces_clash};

/// Keys per mget/mset batch.
const BATCH: usize = 1000;
/// List items per read and per append_many.
const LIST_CHUNK: i64 = 1000;

/// What a run does with the target.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Reads the source and reports what would be copied; writes nothing.
    DryRun,
    /// Copies into an empty target namespace; refuses one that holds keys.
    Copy,
    /// Clears the target namespace first, then copies.
    Overwrite,
}

/// Which role to migrate.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Cache,
    Database,
}

/// One side, connected with fallback off.
enum Endpoint {
    Cache(Arc<dyn Cache>),
    Database(Arc<dyn Database>),
}

impl Endpoint {
    async fn connect(m: &StorageManager, side: Side) -> Result<Endpoint> {
        Ok(match side {
            Side::Cache => Endpoint::Cache(m.connect_cache().await?.0),
            Side::Database => Endpoint::Database(m.connect_database().await?.0),
        })
    }

    fn store(&self) -> &dyn Store {
        match self {
            Endpoint::Cache(c) => c.as_ref(),
            Endpoint::Database(d) => d.as_ref(),
        }
    }

    fn db(&self) -> Result<&Arc<dyn Database>> {
        match self {
            Endpoint::Database(d) => Ok(d),
            Endpoint::Cache(_) => Err(Error::unsupported("lists exist only on databases")),
        }
    }
}

/// What the source holds, by kind.
#[derive(Default)]
struct Inventory {
    values: Vec<String>,
    lists: Vec<String>,
}

/// Progress on a terminal as a bar; otherwise a plain line every two seconds.
struct Progress {
    bar: Option<ProgressBar>,
    done: u64,
    total: u64,
    last_line: Instant,
}

impl Progress {
    fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            if let Ok(style) =
                ProgressStyle::with_template("{bar:40} {pos}/{len} keys, {elapsed} {msg}")
            {
                bar.set_style(style);
            }
            bar
        });
        Progress {
            bar,
            done: 0,
            total,
            last_line: Instant::now(),
        }
    }

    fn advance(&mut self, n: u64) {
        self.done += n;
        match &self.bar {
            Some(bar) => bar.set_position(self.done),
            None if self.last_line.elapsed() >= Duration::from_secs(2)
                || self.done == self.total =>
            {
                eprintln!("migrate: copied {}/{} keys", self.done, self.total);
                self.last_line = Instant::now();
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A 64-bit FNV-1a hash of a value's canonical JSON (members sorted; numbers exact).
fn hash_value(v: &Value, h: &mut u64) {
    let text = serde_json::to_string(v).unwrap_or_default();
    for b in text.bytes().chain([0xff]) {
        *h ^= u64::from(b);
        *h = h.wrapping_mul(0x100_0000_01b3);
    }
}

const FNV: u64 = 0xcbf2_9ce4_8422_2325;

/// Per key: its kind, a content hash (per list: over every item), and for caches whether it
/// has a TTL.
type Digest = BTreeMap<String, (KeyKind, u64, u64)>;

/// The source's keys by kind, from its digest.
fn inventory(digest: &Digest) -> Inventory {
    let mut inv = Inventory::default();
    for (key, (kind, _, _)) in digest {
        match kind {
            KeyKind::List => inv.lists.push(key.clone()),
            KeyKind::Value => inv.values.push(key.clone()),
            KeyKind::None => {}
        }
    }
    inv
}

/// Reads the list `key` from its first item in chunks of [`LIST_CHUNK`], hashing every item
/// and handing each chunk to `each`; answers the hash and how many items were read. A list
/// trimmed while it is read ends at the first empty chunk: the hash holds what was read.
async fn walk_list(
    db: &dyn Database,
    key: &str,
    mut each: impl AsyncFnMut(&[Value]) -> Result<()>,
) -> Result<(u64, u64)> {
    let len = db.get_length(key).await?;
    let (mut h, mut read) = (FNV, 0u64);
    while read < len {
        let start = read as i64;
        let items = db.get_range(key, start, start + LIST_CHUNK - 1).await?;
        if items.is_empty() {
            break;
        }
        for item in &items {
            hash_value(item, &mut h);
        }
        read += items.len() as u64;
        each(&items).await?;
    }
    Ok((h, read))
}

async fn digest(side: &Endpoint) -> Result<Digest> {
    let mut out = Digest::new();
    let keys = side.store().keys(None).await?;
    for chunk in keys.chunks(BATCH) {
        let slots = side.store().mget(chunk).await?;
        for (key, slot) in chunk.iter().zip(slots) {
            match slot {
                Some(v) => {
                    let mut h = FNV;
                    hash_value(&v, &mut h);
                    out.insert(key.clone(), (KeyKind::Value, h, 1));
                }
                None => {
                    if side.store().kind(key).await? == KeyKind::List {
                        let (h, len) =
                            walk_list(side.db()?.as_ref(), key, async |_| Ok(())).await?;
                        out.insert(key.clone(), (KeyKind::List, h, len));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// How far a copy got: values (counted by batch, once the batch is written) and whole lists.
#[derive(Default)]
struct Copied {
    values: usize,
    lists: usize,
}

/// Copies every value of `keys`, then every list among them, in one read of the source:
/// what is read is hashed as it is written, and the returned digest (what the target must
/// now hold) is what the verification compares the target with. A key that is gone when its
/// batch is read is left out of both. Counts what is written in `done`.
async fn copy(
    src: &Endpoint,
    dst: &Endpoint,
    keys: &[String],
    done: &mut Copied,
    progress: &mut Progress,
) -> Result<Digest> {
    let mut copied = Digest::new();
    let mut lists = Vec::new();
    for chunk in keys.chunks(BATCH) {
        let slots = src.store().mget(chunk).await?;
        let mut values = Vec::with_capacity(chunk.len());
        let mut listed = 0;
        for (key, slot) in chunk.iter().zip(slots) {
            match slot {
                Some(value) => values.push((key.clone(), value)),
                // `mget` gives no value for a list; a key that is neither is gone.
                None if src.store().kind(key).await? == KeyKind::List => {
                    lists.push(key.clone());
                    listed += 1;
                }
                None => {}
            }
        }
        let written = match (src, dst) {
            (Endpoint::Cache(s), Endpoint::Cache(d)) => {
                let mut entries = Vec::with_capacity(values.len());
                for (key, value) in values {
                    let ttl = match s.ttl(&key).await? {
                        KeyTtl::ExpiresIn(left) => Some(left),
                        KeyTtl::Persistent => None,
                        KeyTtl::Missing => continue,
                    };
                    entries.push(CacheEntry::new(key, value, ttl));
                }
                d.mset(&entries).await?;
                entries.into_iter().map(|e| (e.key, e.value)).collect()
            }
            (_, Endpoint::Database(d)) => {
                d.mset(&values).await?;
                values
            }
            (Endpoint::Database(_), Endpoint::Cache(_)) => {
                return Err(Error::unsupported(
                    "both sides of a migration are the same role",
                ));
            }
        };
        done.values += written.len();
        for (key, value) in written {
            let mut h = FNV;
            hash_value(&value, &mut h);
            copied.insert(key, (KeyKind::Value, h, 1));
        }
        progress.advance((chunk.len() - listed) as u64);
    }
    if !lists.is_empty() {
        let (s, d) = (src.db()?, dst.db()?);
        for key in lists {
            // Replaced, never appended to, so that a rerun gives the same list.
            d.delete(&key).await?;
            let (h, items_read) = walk_list(s.as_ref(), &key, async |items| {
                d.append_many(&key, items).await.map(drop)
            })
            .await?;
            copied.insert(key, (KeyKind::List, h, items_read));
            done.lists += 1;
            progress.advance(1);
        }
    }
    Ok(copied)
}

/// The error of a copy that stopped part way: what was copied, that the source is unchanged,
/// that the target holds a partial copy, and how to finish or undo it, with the cause cut to
/// a bounded summary (a failed batch may carry one error per command).
fn stopped(cause: Error, done: &Copied, keys: usize, to: &Path) -> Error {
    let summary = storage_core::redact::excerpt(&cause.to_string(), 400);
    Error::new(
        cause.kind(),
        format!(
            "the migration stopped after copying {} values and {} lists of the source's {keys} keys: {summary}. \
             The source is unchanged. The target ({}) holds a partial copy: run the same command \
             with --overwrite to replace it with a whole copy (it clears the target's namespace \
             first), or `storage --config {} keys` to see what is there",
            done.values,
            done.lists,
            to.display(),
            to.display(),
        ),
    )
}

/// Refuses, before anything is read or written, a source and a target that can see each other's
/// keys: clearing or filling the target would change the source.
fn refuse_overlap((from, a): (&Path, &BackendSpec), (to, b): (&Path, &BackendSpec)) -> Result<()> {
    let Some(clash) = namespaces_clash(a, b) else {
        return Ok(());
    };
    Err(Error::invalid_input(format!(
        "source {} ({a}, keyPrefix {:?}) and target {} ({b}, keyPrefix {:?}) reach the same data and their namespaces {}: migrating would change the source; nothing was written",
        from.display(),
        a.common.key_prefix,
        to.display(),
        b.common.key_prefix,
        clash.verb()
    )))
}

/// Runs the migration; returns the process exit code (0, or 2 when verification differs).
/// The primary backend of the role migrated.
fn primary(manager: &StorageManager, side: Side) -> BackendSpec {
    match side {
        Side::Cache => manager.config().cache.primary.clone(),
        Side::Database => manager.config().database.primary.clone(),
    }
}

pub async fn run(from: &Path, to: &Path, side: Side, mode: Mode) -> Result<u8> {
    // Fallback off: a missing target must be an error, not a migration into a fallback store.
    let src_manager = StorageManager::from_file(from)?.without_fallback();
    let dst_manager = StorageManager::from_file(to)?.without_fallback();
    let role = match side {
        Side::Cache => Role::Cache,
        Side::Database => Role::Database,
    };
    refuse_overlap(
        (from, &primary(&src_manager, side)),
        (to, &primary(&dst_manager, side)),
    )?;
    let src = Endpoint::connect(&src_manager, side).await?;
    let dst = Endpoint::connect(&dst_manager, side).await?;
    let started = Instant::now();
    // Listed before anything is written: a key no caller can name stops the run here.
    let keys = src.store().keys(None).await?;
    let existing = dst.store().keys(None).await?;

    if mode == Mode::DryRun {
        let inv = inventory(&digest(&src).await?);
        let mut items = 0;
        if !inv.lists.is_empty() {
            let db = src.db()?;
            for k in &inv.lists {
                items += db.get_length(k).await?;
            }
        }
        println!(
            "dry run: would copy {} values and {} lists ({items} items) from {} to {}",
            inv.values.len(),
            inv.lists.len(),
            from.display(),
            to.display()
        );
        if !existing.is_empty() {
            println!(
                "the target namespace already holds {} keys: the migration needs --overwrite, which clears them first",
                existing.len()
            );
        }
        src_manager.disconnect().await?;
        dst_manager.disconnect().await?;
        return Ok(0);
    }
    if !existing.is_empty() {
        if mode != Mode::Overwrite {
            return Err(Error::invalid_input(format!(
                "the target namespace already holds {} keys; refusing to write into it (use --overwrite to replace them)",
                existing.len()
            )));
        }
        // Only the target's own namespace: the backend never reaches past its keyPrefix.
        dst.store().clear().await?;
    }

    let mut progress = Progress::new(keys.len() as u64);
    let mut done = Copied::default();
    let before = match copy(&src, &dst, &keys, &mut done, &mut progress).await {
        Ok(copied) => copied,
        Err(e) => {
            progress.finish();
            return Err(stopped(e, &done, keys.len(), to));
        }
    };
    progress.finish();
    let copied = started.elapsed();

    // Verify the target against what was read from the source and written: every key, its
    // kind and a content hash (per list, over every item), not counts.
    let (a, b) = (&before, digest(&dst).await?);
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut differences = Vec::new();
    for key in keys {
        match (a.get(key), b.get(key)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(_), None) => differences.push(format!("{key:?}: missing in the target")),
            (None, Some(_)) => differences.push(format!("{key:?}: only in the target")),
            (Some(x), Some(y)) => differences.push(format!(
                "{key:?}: source {:?} (len {}), target {:?} (len {}), content differs",
                x.0, x.2, y.0, y.2
            )),
            (None, None) => {}
        }
    }
    src_manager.disconnect().await?;
    dst_manager.disconnect().await?;
    let matching = a.iter().filter(|(k, x)| b.get(*k) == Some(x)).count();
    println!(
        "copied {} values and {} lists in {:.1}s; verified {matching} of {} keys by content",
        done.values,
        done.lists,
        copied.as_secs_f64(),
        a.len()
    );
    if differences.is_empty() && matching == a.len() && b.len() == a.len() {
        println!("verification: identical");
        if role == Role::Database && done.values > 0 {
            // The copy wrote every value anew: versions read from the source match nothing.
            println!(
                "note: versions restart on the target; read values again before a conditional write"
            );
        }
        Ok(0)
    } else {
        println!("verification: {} keys differ", differences.len());
        for d in differences.iter().take(50) {
            println!("  {d}");
        }
        Ok(2)
    }
}
