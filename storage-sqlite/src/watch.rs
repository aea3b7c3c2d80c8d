//! Watching a namespace on SQLite: reading the change log the schema's triggers fill (see
//! `schema.rs`, version 5), and the wait for a new change, by polling the log's end every few
//! milliseconds, which sees changes committed by any process on the file. Not the writes that
//! file the changes (the triggers do, whichever statement writes).

use crate::core::SqliteBackend;
use crate::schema::sql_error;
use crate::sql;
use std::time::{Duration, Instant};
use storage_core::watch::{Change, ChangeKind, ChangeWindow};
use storage_core::{Result, Version};

/// How often a waiting watcher reads the log's end.
const POLL: Duration = Duration::from_millis(5);

fn ends(conn: &r2d2_sqlite::rusqlite::Connection) -> Result<(u64, u64)> {
    conn.prepare_cached(sql::CHANGE_ENDS)
        .and_then(|mut s| s.query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))))
        .map(|(last, pruned)| (last.max(0) as u64, pruned.max(0) as u64))
        .map_err(|e| sql_error(e, "reading the change log"))
}

impl SqliteBackend {
    /// See [`storage_core::Store::changes`]: the log's ends and the changes in one read
    /// transaction, so one snapshot. Positions are the log's sequence numbers.
    pub(crate) async fn change_window(
        &self,
        from: Option<u64>,
        max: usize,
    ) -> Result<ChangeWindow> {
        self.read(move |tx, ns| {
            let (last, pruned) = ends(tx)?;
            let end = last + 1;
            let Some(from) = from else {
                return Ok(ChangeWindow {
                    oldest: pruned + 1,
                    next: end,
                    changes: Vec::new(),
                });
            };
            let map = |e| sql_error(e, "reading the change log");
            let mut stmt = tx.prepare_cached(sql::CHANGES).map_err(map)?;
            let start = i64::try_from(from).unwrap_or(i64::MAX);
            let mut rows = stmt.query((ns, start, max as i64)).map_err(map)?;
            let mut changes = Vec::new();
            while let Some(row) = rows.next().map_err(map)? {
                let version: Option<i64> = row.get(3).map_err(map)?;
                let at: i64 = row.get(4).map_err(map)?;
                changes.push(Change {
                    position: row.get::<_, i64>(0).map_err(map)? as u64,
                    key: row.get(1).map_err(map)?,
                    kind: ChangeKind::from_code(row.get(2).map_err(map)?)?,
                    version: version.map(|v| Version::from_raw(v as u64)),
                    at_ms: u64::try_from(at).ok(),
                });
            }
            // A full batch may stop before the end: go on after its last change.
            let next = match changes.last() {
                Some(c) if changes.len() == max => c.position + 1,
                _ => end.max(from),
            };
            Ok(ChangeWindow {
                oldest: pruned + 1,
                next,
                changes,
            })
        })
        .await
    }

    /// See [`storage_core::Store::wait_for_changes`]: returns once the log's end is past
    /// `from` (a change in any namespace of the file wakes the watcher), or `limit` has passed.
    pub(crate) async fn wait_changes(&self, from: u64, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let (last, _) = self.with_conn(|conn, _| ends(conn)).await?;
            if last >= from || Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(POLL.min(deadline - Instant::now())).await;
        }
    }
}
