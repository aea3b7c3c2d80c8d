//! The schema, its identification, and migrations.

use r2d2_sqlite::rusqlite::{Connection, ErrorCode, TransactionBehavior};
use storage_core::{Error, Result};

/// `PRAGMA application_id` of our files: "STOR" in ASCII.
pub const APPLICATION_ID: i32 = 0x5354_4f52;

/// The schema version this build writes. Migrations bring older files up to it.
pub const SCHEMA_VERSION: i32 = 5;

/// Each migration takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the key table (values, list headers, TTLs) and the list items.
    r#"
    CREATE TABLE kv (
        ns         TEXT    NOT NULL,
        key        TEXT    NOT NULL,
        kind       INTEGER NOT NULL,            -- 0 value, 1 list
        value      TEXT,                        -- exact JSON text of a value
        expires_at INTEGER,                     -- unix ms; caches only
        list_len   INTEGER NOT NULL DEFAULT 0,  -- items of a list: seq 0 .. list_len-1
        PRIMARY KEY (ns, key)
    ) WITHOUT ROWID;
    CREATE INDEX kv_expiry ON kv (expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE list_items (
        ns    TEXT    NOT NULL,
        key   TEXT    NOT NULL,
        seq   INTEGER NOT NULL,
        value TEXT    NOT NULL,
        PRIMARY KEY (ns, key, seq)
    ) WITHOUT ROWID;
    "#,
    // 1 -> 2: a list's first sequence number, so that trimming its head removes only the
    // removed items (a list's items are seq list_head .. list_head+list_len-1).
    "ALTER TABLE kv ADD COLUMN list_head INTEGER NOT NULL DEFAULT 0;",
    // 2 -> 3: a value's version (random, drawn by each write; 0 for values written before).
    "ALTER TABLE kv ADD COLUMN version INTEGER NOT NULL DEFAULT 0;",
    // 3 -> 4: blobs. A blob's bytes are chunks of its upload; the blob row, written last in
    // one transaction, is what makes it visible. An upload row marks chunks being written.
    r#"
    CREATE TABLE blobs (
        ns         TEXT    NOT NULL,
        id         BLOB    NOT NULL,              -- SHA-256, 32 bytes
        upload     BLOB    NOT NULL,              -- whose chunks hold the bytes
        size       INTEGER NOT NULL,
        mime       TEXT    NOT NULL,
        name       TEXT,
        source     TEXT,
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (ns, id)
    ) WITHOUT ROWID;
    CREATE TABLE blob_chunks (
        ns     TEXT    NOT NULL,
        upload BLOB    NOT NULL,
        seq    INTEGER NOT NULL,
        data   BLOB    NOT NULL,
        PRIMARY KEY (ns, upload, seq)
    ) WITHOUT ROWID;
    CREATE TABLE blob_uploads (
        ns         TEXT    NOT NULL,
        upload     BLOB    NOT NULL,
        started_ms INTEGER NOT NULL,
        PRIMARY KEY (ns, upload)
    ) WITHOUT ROWID;
    "#,
    // 4 -> 5: the change log watchers read. Triggers file every change of a key, whichever
    // statement makes it, in the writing transaction: SQLite has one writer at a time, so the
    // sequence is commit order. Appends and trims change a list's length, not its row's
    // identity, and are not filed (followers of a list read the list). Every 1,000th change
    // prunes what is 10,000 behind and raises the horizon, which tells a watcher standing
    // before it that it missed changes. `clearing` is set by a clear, which files one change.
    r#"
    CREATE TABLE changes (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        ns      TEXT    NOT NULL,
        key     TEXT    NOT NULL,
        kind    INTEGER NOT NULL,   -- 0 set, 1 delete, 2 expired, 3 cleared
        version INTEGER,
        at      INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
    );
    CREATE INDEX changes_by_ns ON changes (ns, seq);
    CREATE TABLE change_horizon (
        id       INTEGER PRIMARY KEY CHECK (id = 0),
        pruned   INTEGER NOT NULL,  -- every change at or below was pruned
        clearing INTEGER NOT NULL
    );
    INSERT INTO change_horizon (id, pruned, clearing) VALUES (0, 0, 0);
    CREATE TRIGGER kv_inserted AFTER INSERT ON kv BEGIN
        INSERT INTO changes (ns, key, kind, version)
        VALUES (NEW.ns, NEW.key, 0, CASE WHEN NEW.kind = 0 THEN NEW.version END);
    END;
    CREATE TRIGGER kv_updated AFTER UPDATE ON kv
    WHEN NEW.kind IS NOT OLD.kind OR NEW.version IS NOT OLD.version OR NEW.value IS NOT OLD.value
    BEGIN
        INSERT INTO changes (ns, key, kind, version)
        VALUES (NEW.ns, NEW.key, 0, CASE WHEN NEW.kind = 0 THEN NEW.version END);
    END;
    CREATE TRIGGER kv_deleted AFTER DELETE ON kv
    WHEN (SELECT clearing FROM change_horizon WHERE id = 0) = 0
    BEGIN
        INSERT INTO changes (ns, key, kind, version)
        VALUES (OLD.ns, OLD.key,
                CASE WHEN OLD.expires_at IS NOT NULL AND OLD.expires_at
                          <= CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
                     THEN 2 ELSE 1 END,
                NULL);
    END;
    CREATE TRIGGER changes_pruned AFTER INSERT ON changes WHEN NEW.seq % 1000 = 0 BEGIN
        DELETE FROM changes WHERE seq <= NEW.seq - 10000;
        UPDATE change_horizon SET pruned = max(pruned, NEW.seq - 10000) WHERE id = 0;
    END;
    "#,
];

pub(crate) fn sql_error(e: r2d2_sqlite::rusqlite::Error, what: &str) -> Error {
    use r2d2_sqlite::rusqlite::Error as E;
    // Every write is one transaction, rolled back on any error before its commit: SQLite's
    // error means the operation did not take effect, unless the disk failed under the commit
    // itself (an I/O error), whose outcome is unknown.
    let code = match &e {
        E::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    };
    let error = match code {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::timeout(format!(
            "{what}: the database stayed locked by another writer past the busy timeout"
        ))
        .not_applied(),
        Some(ErrorCode::NotADatabase) => {
            Error::config(format!("{what}: the file is not a SQLite database"))
        }
        Some(ErrorCode::DatabaseCorrupt) => {
            Error::other(format!("{what}: the database file is corrupt")).not_applied()
        }
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly) => {
            Error::connection(format!("{what}: cannot open or write the database file"))
                .not_applied()
        }
        Some(ErrorCode::DiskFull) => {
            Error::connection(format!("{what}: the disk is full")).not_applied()
        }
        Some(ErrorCode::SystemIoFailure) => {
            Error::connection(format!("{what}: I/O error")).outcome_unknown()
        }
        Some(_) => Error::other(what.to_string()).not_applied(),
        None => Error::other(what.to_string()),
    };
    error.with_source(e)
}

/// Checks that the file is ours (or empty), refuses it otherwise without writing to it, and
/// migrates it to [`SCHEMA_VERSION`].
///
/// The identity is read in one snapshot, and judged again inside the write transaction that
/// creates the schema: processes opening a new file at once each see either an empty file or
/// another's finished schema, never half of one (three separate reads once saw `application_id`
/// 0 before another process committed, and its tables after, and refused the file).
pub(crate) fn prepare(
    conn: &mut Connection,
    wal: bool,
    busy: std::time::Duration,
    location: &str,
) -> Result<()> {
    // A read transaction: the three reads see one committed state. They fail on a file that is
    // not a database, or whose first page is corrupt, before anything is written.
    let identity = {
        let tx = conn
            .transaction()
            .map_err(|e| sql_error(e, &format!("reading {location}")))?;
        identify(&tx, location)?
    };
    identity.judge(location)?;
    if wal {
        enable_wal(conn, busy)?;
    }
    if identity.is_current() {
        return Ok(());
    }
    // Migrate under a write lock, judging the file again: another process may have created or
    // migrated it since.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| sql_error(e, "starting the migration"))?;
    let identity = identify(&tx, location)?;
    identity.judge(location)?;
    if identity.is_current() {
        return Ok(());
    }
    for (from, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(identity.version as usize)
    {
        tx.execute_batch(sql)
            .map_err(|e| sql_error(e, &format!("migrating the schema from version {from}")))?;
    }
    tx.execute_batch(&format!(
        "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
    ))
    .map_err(|e| sql_error(e, "stamping the schema"))?;
    tx.commit()
        .map_err(|e| sql_error(e, "committing the migration"))?;
    Ok(())
}

/// What a file says it is.
struct Identity {
    app_id: i64,
    version: i64,
    objects: i64,
}

impl Identity {
    /// Ours at this build's version: nothing to do.
    fn is_current(&self) -> bool {
        self.version == i64::from(SCHEMA_VERSION) && self.app_id == i64::from(APPLICATION_ID)
    }

    /// Refuses another application's database, or one newer than this build.
    fn judge(&self, location: &str) -> Result<()> {
        let Identity {
            app_id,
            version,
            objects,
        } = *self;
        if app_id != i64::from(APPLICATION_ID) && (app_id != 0 || objects != 0) {
            return Err(Error::config(format!(
                "{location} is a SQLite database of another application (application_id {app_id:#x}, {objects} schema objects); refusing to use it"
            )));
        }
        if version > i64::from(SCHEMA_VERSION) {
            return Err(Error::config(format!(
                "{location} has schema version {version}, newer than this build supports ({SCHEMA_VERSION}); upgrade storage-sqlite"
            )));
        }
        Ok(())
    }
}

/// Reads the identity inside `conn`'s current transaction.
fn identify(conn: &Connection, location: &str) -> Result<Identity> {
    let read = |sql: &str| -> Result<i64> {
        conn.query_row(sql, [], |r| r.get(0))
            .map_err(|e| sql_error(e, &format!("reading {location}")))
    };
    Ok(Identity {
        app_id: read("PRAGMA application_id")?,
        version: read("PRAGMA user_version")?,
        objects: read("SELECT count(*) FROM sqlite_master")?,
    })
}

/// Switches the file to WAL, once. The switch needs the file to itself, and SQLite answers
/// "busy" at once, without waiting, when another process holds a lock it might need (to avoid
/// a deadlock), as processes opening a new file together do; so it is tried again until the
/// busy timeout has passed.
fn enable_wal(conn: &Connection, busy: std::time::Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + busy;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
            Ok(_) => return Ok(()),
            Err(e)
                if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && std::time::Instant::now() + pause < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(sql_error(e, "enabling WAL")),
        }
    }
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
