//! The change log watchers read: every write records its change in the transaction that makes
//! it (so the log and the data commit together), at the next position of the file's log. Every
//! 1,000th change prunes what is 10,000 behind and raises the horizon, which tells a watcher
//! standing before it that it missed changes. Not the writes (which call [`record`]), nor the
//! watch itself (`storage_core::watch`).

use crate::db_error;
use redb::{ReadableTable, TableDefinition};
use storage_core::watch::{Change, ChangeKind, ChangeWindow, RETAINED_CHANGES};
use storage_core::{Result, Version};

/// position -> (namespace, key, kind code, version or 0, unix ms).
const CHANGES: TableDefinition<u64, (&str, &str, u8, u64, u64)> =
    TableDefinition::new("storage_changes");
/// `"pruned"` -> every position at or below it may be gone.
const HORIZON: TableDefinition<&str, u64> = TableDefinition::new("storage_change_horizon");

/// Creates the tables (at open), so that readers find them.
pub(crate) fn create_tables(tx: &redb::WriteTransaction) -> Result<()> {
    tx.open_table(CHANGES)
        .map_err(|e| db_error(e, "creating tables"))?;
    tx.open_table(HORIZON)
        .map_err(|e| db_error(e, "creating tables"))?;
    Ok(())
}

/// Files a change of `key` in `ns`.
pub(crate) fn record(
    tx: &redb::WriteTransaction,
    ns: &str,
    key: &str,
    kind: ChangeKind,
    version: Option<Version>,
) -> Result<()> {
    let what = "filing the change";
    let mut log = tx.open_table(CHANGES).map_err(|e| db_error(e, what))?;
    let mut horizon = tx.open_table(HORIZON).map_err(|e| db_error(e, what))?;
    let pruned = horizon
        .get("pruned")
        .map_err(|e| db_error(e, what))?
        .map_or(0, |g| g.value());
    let last = log
        .last()
        .map_err(|e| db_error(e, what))?
        .map_or(0, |(k, _)| k.value());
    let position = last.max(pruned) + 1;
    let version = version.map_or(0, Version::raw);
    log.insert(
        position,
        (ns, key, kind.code(), version, storage_core::watch::now_ms()),
    )
    .map_err(|e| db_error(e, what))?;
    if position % 1_000 == 0 && position > RETAINED_CHANGES {
        let below = position - RETAINED_CHANGES;
        log.retain_in(..=below, |_, _| false)
            .map_err(|e| db_error(e, what))?;
        horizon
            .insert("pruned", below.max(pruned))
            .map_err(|e| db_error(e, what))?;
    }
    Ok(())
}

/// See [`storage_core::Store::changes`]: `ns`'s changes from `from` on, at most `max`.
pub(crate) fn window(
    tx: &redb::ReadTransaction,
    ns: &str,
    from: Option<u64>,
    max: usize,
) -> Result<ChangeWindow> {
    let what = "reading the change log";
    let log = tx.open_table(CHANGES).map_err(|e| db_error(e, what))?;
    let horizon = tx.open_table(HORIZON).map_err(|e| db_error(e, what))?;
    let pruned = horizon
        .get("pruned")
        .map_err(|e| db_error(e, what))?
        .map_or(0, |g| g.value());
    let end = log
        .last()
        .map_err(|e| db_error(e, what))?
        .map_or(0, |(k, _)| k.value())
        .max(pruned)
        + 1;
    let mut window = ChangeWindow {
        oldest: pruned + 1,
        next: end,
        changes: Vec::new(),
    };
    let Some(from) = from else {
        return Ok(window);
    };
    window.next = end.max(from);
    for row in log.range(from..).map_err(|e| db_error(e, what))? {
        let (position, entry) = row.map_err(|e| db_error(e, what))?;
        let (row_ns, key, kind, version, at) = entry.value();
        if row_ns != ns {
            continue;
        }
        window.changes.push(Change {
            position: position.value(),
            key: key.to_string(),
            kind: ChangeKind::from_code(i64::from(kind))?,
            version: (version != 0).then(|| Version::from_raw(version)),
            at_ms: Some(at),
        });
        if window.changes.len() == max {
            window.next = position.value() + 1;
            break;
        }
    }
    Ok(window)
}
