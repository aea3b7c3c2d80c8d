//! Following a list on SQLite: a window of a list by absolute index (its items' sequence
//! numbers are those indices), and the wait for a change, by polling the list's header every
//! few milliseconds, which sees appends committed by any process on the file. Not the list
//! operations themselves (`backend.rs`).

use crate::core::{KIND_LIST, SqliteBackend, decode, now_ms};
use crate::schema::sql_error;
use crate::sql;
use r2d2_sqlite::rusqlite::OptionalExtension;
use std::time::{Duration, Instant};
use storage_core::{Error, ListWindow, Result};

/// How often a waiting follower reads the list's header.
const POLL: Duration = Duration::from_millis(5);

/// A list's header: kind, length, head, generation; `None` when the key holds nothing live.
type Header = Option<(i64, i64, i64, i64)>;

fn list_header(conn: &r2d2_sqlite::rusqlite::Connection, ns: &str, key: &str) -> Result<Header> {
    conn.prepare_cached(sql::LIST_HEADER)
        .and_then(|mut s| {
            s.query_row((ns, key, now_ms()), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
        })
        .map_err(|e| sql_error(e, "reading the list"))
}

impl SqliteBackend {
    /// See [`storage_core::Database::list_window`]: the header and the items in one read
    /// transaction, so one snapshot.
    pub(crate) async fn window(&self, key: &str, from: u64, max: usize) -> Result<ListWindow> {
        let key = key.to_string();
        self.read(move |tx, ns| {
            let (len, head, generation) = match list_header(tx, ns, &key)? {
                None => return Ok(ListWindow::default()),
                Some((KIND_LIST, len, head, generation)) => (len, head, generation),
                Some(_) => return Err(Error::holds_value(&key)),
            };
            let next = head + len;
            // Past i64 is past every list's end: clamped, never wrapped to a negative index.
            let start = i64::try_from(from).unwrap_or(i64::MAX).max(head);
            let end = next.min(start.saturating_add(max as i64)) - 1;
            let mut items = Vec::new();
            if start <= end {
                let map = |e| sql_error(e, "reading the list");
                let mut stmt = tx.prepare_cached(sql::RANGE).map_err(map)?;
                let mut rows = stmt.query((ns, &key, start, end)).map_err(map)?;
                while let Some(row) = rows.next().map_err(map)? {
                    let text: String = row.get(0).map_err(map)?;
                    items.push(decode(&key, &text)?);
                }
            }
            Ok(ListWindow {
                generation: generation as u64,
                first: head as u64,
                next: next as u64,
                items,
            })
        })
        .await
    }

    /// See [`storage_core::Database::wait_for_change`]: returns once the list's header differs
    /// from what it was at the call, or `limit` has passed.
    pub(crate) async fn wait_list_change(&self, key: &str, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        let header = |key: String| self.with_conn(move |conn, ns| list_header(conn, ns, &key));
        let seen = header(key.to_string()).await?;
        while Instant::now() < deadline {
            tokio::time::sleep(POLL.min(deadline - Instant::now())).await;
            if header(key.to_string()).await? != seen {
                return Ok(());
            }
        }
        Ok(())
    }
}
