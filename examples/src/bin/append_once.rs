//! Appending a chat turn exactly once when an error says its outcome is unknown.
//!
//! ```text
//! cargo run -p storage-examples --bin append_once
//! ```
//!
//! A lost reply is simulated by a layer of this example's own, `LosesFirstReply`: the first
//! append reaches the database and then fails with `Outcome::Unknown`, as an append does whose
//! connection is cut after it was sent. `append_once` (the function the README shows) reads the
//! end of the list before sending again, so the turn is stored once, not twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use storage_core::async_trait;
use storage_core::layer::{ForwardDatabase, ForwardStore};
use storage_core::prelude::*;

/// Appends `turn` to `chat` once: retried while it was not applied, and after an unknown
/// outcome only if the list does not end with it already. `turn` carries an id (two turns
/// with the same text are still told apart).
async fn append_once(db: &dyn Database, chat: &str, turn: &Value) -> Result<()> {
    let mut tries = 0;
    loop {
        let e = match db.append(chat, turn).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        tries += 1;
        println!("append failed ({}): {e}", e.outcome().code());
        if !e.is_temporary() || tries == 3 {
            return Err(e);
        }
        if e.outcome() == Outcome::Unknown {
            // The last items tell whether the append landed before its answer was lost.
            if db.get_range(chat, -10, -1).await?.contains(turn) {
                println!("the turn is already in the list: not sent again");
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100 * tries)).await;
    }
}

/// Applies the first append, then reports it lost, as a cut connection would.
#[derive(Debug)]
struct LosesFirstReply {
    inner: Arc<dyn Database>,
    lost: AtomicBool,
}

#[async_trait]
impl ForwardStore for LosesFirstReply {
    fn inner_store(&self) -> &dyn Store {
        &*self.inner
    }
}

#[async_trait]
impl ForwardDatabase for LosesFirstReply {
    fn inner_database(&self) -> &dyn Database {
        &*self.inner
    }

    async fn append(&self, key: &str, value: &Value) -> Result<()> {
        self.inner.append(key, value).await?;
        if !self.lost.swap(true, Ordering::Relaxed) {
            return Err(Error::connection(
                "appending: the connection was lost after the command was sent",
            )
            .outcome_unknown());
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let db = LosesFirstReply {
        inner: storage_sqlite::open_in_memory().await?,
        lost: AtomicBool::new(false),
    };
    let turn = json!({"id": "turn-1", "role": "user", "content": "hello"});
    append_once(&db, "chat:1", &turn).await?;
    let list = Database::get_range(&db, "chat:1", 0, -1).await?;
    let times = list.iter().filter(|t| **t == turn).count();
    println!("the list holds the turn {times} time(s)");
    Ok(())
}
