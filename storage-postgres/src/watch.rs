//! Watching a namespace on PostgreSQL: reading the change log the schema's trigger fills (see
//! `sql::MIGRATION_5`), and the wait for a new change by asking every 10 ms whether one has
//! settled, which sees changes from every instance. Not the writes that file the changes (the
//! trigger does, whichever statement writes).
//!
//! A position is a transaction id: a reader reads the changes of transactions from its
//! position up to the oldest one still running, and stands there next. Why not `LISTEN/NOTIFY`
//! for the wake-up: a transaction that notifies takes a database-wide lock from its commit
//! until the commit is durable, so every writer would wait for every other writer's fsync; the
//! poll costs one index probe per watcher every 10 ms instead.

use crate::core::{PostgresBackend, Resend, pg_error};
use std::time::{Duration, Instant};
use storage_core::watch::{Change, ChangeKind, ChangeWindow};
use storage_core::{Result, Version};

/// How often a waiting watcher asks for a settled change.
const POLL: Duration = Duration::from_millis(10);

fn position(raw: i64) -> u64 {
    raw.max(0) as u64
}

impl PostgresBackend {
    /// See [`storage_core::Store::changes`]. Every settled change from `from` on: a
    /// transaction's changes are read together, so `max` is not a bound here.
    pub(crate) async fn change_window(
        &self,
        from: Option<u64>,
        max: usize,
    ) -> Result<ChangeWindow> {
        let _ = max;
        let Some(from) = from else {
            let row = self
                .run(Resend::Allowed, |mut conn, s| async move {
                    let statement = conn.cached(&s.change_ends).await?;
                    conn.query_one(&statement, &[])
                        .await
                        .map_err(|e| pg_error(e, "reading the change log"))
                })
                .await?;
            return Ok(ChangeWindow {
                oldest: position(row.get(1)) + 1,
                next: position(row.get(0)),
                changes: Vec::new(),
            });
        };
        let start = i64::try_from(from).unwrap_or(i64::MAX);
        let rows = self
            .run(Resend::Allowed, |mut conn, s| async move {
                let statement = conn.cached(&s.changes).await?;
                conn.query(&statement, &[&self.ns, &start])
                    .await
                    .map_err(|e| pg_error(e, "reading the change log"))
            })
            .await?;
        let mut window = ChangeWindow {
            oldest: 0,
            next: from,
            changes: Vec::with_capacity(rows.len()),
        };
        for row in &rows {
            window.next = window.next.max(position(row.get(0)));
            window.oldest = position(row.get(1)) + 1;
            let Some(key) = row.get::<_, Option<String>>(2) else {
                continue; // the horizon row alone: no change
            };
            let kind: i16 = row.get(3);
            let version: Option<i64> = row.get(4);
            let at: Option<i64> = row.get(6);
            window.changes.push(Change {
                position: position(row.get(5)),
                key,
                kind: ChangeKind::from_code(i64::from(kind))?,
                version: version.map(|v| Version::from_raw(v as u64)),
                at_ms: at.and_then(|ms| u64::try_from(ms).ok()),
            });
        }
        Ok(window)
    }

    /// See [`storage_core::Store::wait_for_changes`]: returns once the namespace has a settled
    /// change from `from` on, or `limit` has passed.
    pub(crate) async fn wait_changes(&self, from: u64, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        let start = i64::try_from(from).unwrap_or(i64::MAX);
        loop {
            let row = self
                .run(Resend::Allowed, |mut conn, s| async move {
                    let statement = conn.cached(&s.has_changes).await?;
                    conn.query_one(&statement, &[&self.ns, &start])
                        .await
                        .map_err(|e| pg_error(e, "reading the change log"))
                })
                .await?;
            if row.get::<_, bool>(0) || Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(POLL.min(deadline - Instant::now())).await;
        }
    }
}
