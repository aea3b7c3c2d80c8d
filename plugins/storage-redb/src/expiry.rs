//! The expiry index: keys written with a TTL, listed by `(namespace, deadline, key)`, so that
//! reclaiming expired keys reads only the part of the index that is due. Not the reading side
//! of TTLs (a read checks a key's own header, indexed or not).

use crate::{Header, KEYS, db_error, header_of};
use redb::TableHandle;
use redb::{ReadableTable, TableDefinition};
use storage_core::Result;

/// Keys written with a TTL, by deadline (milliseconds since the epoch).
const EXPIRY: TableDefinition<(&str, i64, &str), ()> = TableDefinition::new("storage_expiry");

/// Lists `key` under its deadline. An entry outlives a later overwrite or delete of the key;
/// reclaiming checks the key's header before removing anything, and drops such entries.
pub(crate) fn index_deadline(
    tx: &redb::WriteTransaction,
    ns: &str,
    key: &str,
    at: i64,
) -> Result<()> {
    tx.open_table(EXPIRY)
        .and_then(|mut t| t.insert((ns, at, key), ()).map(drop).map_err(Into::into))
        .map_err(|e| db_error(e, "indexing the deadline"))
}

/// Drops the index entry of a header about to be replaced or deleted, if it has a deadline.
pub(crate) fn unindex_deadline(
    tx: &redb::WriteTransaction,
    ns: &str,
    key: &str,
    old: &Header,
) -> Result<()> {
    let Some(at) = old.expires_at else {
        return Ok(());
    };
    tx.open_table(EXPIRY)
        .and_then(|mut t| t.remove((ns, at, key)).map(drop).map_err(Into::into))
        .map_err(|e| db_error(e, "unindexing the deadline"))
}

/// Once, when a file from before the expiry index is first opened: index its deadlines.
pub(crate) fn index_existing_deadlines(tx: &redb::WriteTransaction) -> Result<()> {
    let indexed = tx
        .list_tables()
        .map_err(|e| db_error(e, "listing tables"))?
        .any(|t| t.name() == EXPIRY.name());
    if indexed {
        return Ok(());
    }
    let mut deadlines = Vec::new();
    {
        let table = tx
            .open_table(KEYS)
            .map_err(|e| db_error(e, "opening the key table"))?;
        for row in table.iter().map_err(|e| db_error(e, "scanning"))? {
            let (k, v) = row.map_err(|e| db_error(e, "scanning"))?;
            if let Some(at) = Header::decode(v.value())?.expires_at {
                let (ns, key) = k.value();
                deadlines.push((ns.to_string(), key.to_string(), at));
            }
        }
    }
    tx.open_table(EXPIRY)
        .map_err(|e| db_error(e, "creating the expiry index"))?;
    for (ns, key, at) in deadlines {
        index_deadline(tx, &ns, &key, at)?;
    }
    Ok(())
}

/// Removes the keys whose deadline has passed, reading only the expired part of the index.
pub(crate) fn reclaim_expired(tx: &redb::WriteTransaction, ns: &str, now: i64) -> Result<()> {
    let due: Vec<(i64, String)> = {
        let index = tx
            .open_table(EXPIRY)
            .map_err(|e| db_error(e, "opening the expiry index"))?;
        let mut due = Vec::new();
        for row in index
            .range((ns, i64::MIN, "")..(ns, now.saturating_add(1), ""))
            .map_err(|e| db_error(e, "reading the expiry index"))?
        {
            let (k, _) = row.map_err(|e| db_error(e, "reading the expiry index"))?;
            let (_, at, key) = k.value();
            due.push((at, key.to_string()));
        }
        due
    };
    if due.is_empty() {
        return Ok(());
    }
    let mut index = tx
        .open_table(EXPIRY)
        .map_err(|e| db_error(e, "opening the expiry index"))?;
    let mut table = tx
        .open_table(KEYS)
        .map_err(|e| db_error(e, "opening the key table"))?;
    let mut expired = Vec::new();
    for (at, key) in due {
        index
            .remove((ns, at, key.as_str()))
            .map_err(|e| db_error(e, "reclaiming"))?;
        // Only if the key still carries this deadline: it may have been rewritten since.
        let current = header_of(&table, ns, &key)?;
        if current.is_some_and(|h| h.expires_at == Some(at) && !h.live(now)) {
            table
                .remove((ns, key.as_str()))
                .map_err(|e| db_error(e, "reclaiming"))?;
            expired.push(key);
        }
    }
    drop((index, table));
    for key in expired {
        crate::changes::record(tx, ns, &key, storage_core::watch::ChangeKind::Expired, None)?;
    }
    Ok(())
}
