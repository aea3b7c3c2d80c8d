//! `storage tail KEY [--from N]`: follows a list like `tail -f`, one JSON value a line, until
//! Ctrl-C (which ends it with exit 0) or an error that ends the follower (a trim past what it
//! had not printed, the list deleted).

use std::io::Write;
use storage_core::Result;
use storage_core::feed::Tail;
use storage_manager::StorageManager;

/// Follows the list at `key` from the absolute index `from` (its current end when `None`).
pub async fn run(m: &StorageManager, key: &str, from: Option<u64>) -> Result<()> {
    let (db, _status) = m.connect_database().await?;
    let from = match from {
        Some(n) => n,
        None => {
            let window = db.list_window(key, u64::MAX, 0).await?;
            window.next
        }
    };
    let mut tail = Tail::new(db, key, from);
    let mut stdout = std::io::stdout().lock();
    // One listener for the whole run, made before the first read: a Ctrl-C that arrives
    // while a line is being printed is kept for the next wait, not lost with a listener
    // made afresh each time round.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let item = tokio::select! {
            item = tail.next() => item,
            _ = &mut ctrl_c => return Ok(()),
        };
        let Some(item) = item else { return Ok(()) };
        let item = item?;
        // A closed pipe (`storage tail k | head`) ends the follower quietly.
        if writeln!(stdout, "{}", item.value)
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return Ok(());
        }
    }
}
