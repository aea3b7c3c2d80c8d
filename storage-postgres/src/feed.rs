//! Following a list on PostgreSQL: a window of a list by absolute index (its items' sequence
//! numbers are those indices) in one statement, and the wait for a change by reading the
//! list's header every 10 ms, which sees appends from every instance. Not the list operations
//! themselves (`backend.rs`).

use crate::core::{KIND_LIST, PostgresBackend, Resend, decode, pg_error};
use std::time::{Duration, Instant};
use storage_core::{Error, ListWindow, Result};

/// How often a waiting follower reads the list's header.
const POLL: Duration = Duration::from_millis(10);

impl PostgresBackend {
    /// See [`storage_core::Database::list_window`].
    pub(crate) async fn window(&self, key: &str, from: u64, max: usize) -> Result<ListWindow> {
        // Past i64 is past every list's end: clamped, never wrapped to a negative index.
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let rows = self
            .run(Resend::Allowed, |mut conn, s| async move {
                let statement = conn.cached(&s.list_window).await?;
                conn.query(&statement, &[&self.ns, &key, &from, &max])
                    .await
                    .map_err(|e| pg_error(e, "reading the list"))
            })
            .await?;
        let Some(first) = rows.first() else {
            return Ok(ListWindow::default());
        };
        let kind: Option<i16> = first.get(1);
        if kind != Some(KIND_LIST) {
            return Err(Error::holds_value(key));
        }
        let (len, head, generation): (i64, i64, i64) = (first.get(2), first.get(3), first.get(4));
        let items = rows[1..]
            .iter()
            .map(|r| decode(key, r.get::<_, Option<&str>>(5).unwrap_or("null")))
            .collect::<Result<Vec<_>>>()?;
        Ok(ListWindow {
            generation: generation as u64,
            first: head as u64,
            next: (head + len) as u64,
            items,
        })
    }

    /// See [`storage_core::Database::wait_for_change`]: returns once the list's header differs
    /// from what it was at the call, or `limit` has passed.
    pub(crate) async fn wait_list_change(&self, key: &str, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        let seen = self.list_header(key).await?;
        while Instant::now() < deadline {
            tokio::time::sleep(POLL.min(deadline - Instant::now())).await;
            if self.list_header(key).await? != seen {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn list_header(&self, key: &str) -> Result<Option<(i16, i64, i64, i64)>> {
        let row = self
            .run(Resend::Allowed, |mut conn, s| async move {
                let statement = conn.cached(&s.list_header).await?;
                conn.query_opt(&statement, &[&self.ns, &key])
                    .await
                    .map_err(|e| pg_error(e, "reading the list"))
            })
            .await?;
        Ok(row.map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))))
    }
}
