//! Chat history on SQLite alone: no config file, no manager.
//!
//! ```text
//! cargo run -p storage-examples --bin chat_history -- [DB_FILE] [MESSAGE...]
//! ```
//!
//! Appends each MESSAGE as a user turn (and a canned assistant reply) to the conversation
//! `chat:demo` in DB_FILE (default `chat.db`), keeps only the last 10 turns with `trim`, and
//! prints the history. Run it twice: the history persists in the file.

use storage_core::prelude::*;

/// The most turns a conversation keeps.
const KEEP: i64 = 10;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "chat.db".into());
    let db = storage_sqlite::open(&path).await?;
    let key = "chat:demo";
    for message in args {
        db.append(key, &json!({ "role": "user", "content": message }))
            .await?;
        db.append(
            key,
            &json!({ "role": "assistant", "content": format!("You said {} characters.", message.chars().count()) }),
        )
        .await?;
    }
    // Bounded history: keep the last KEEP turns, dropping from the head in O(removed).
    db.trim(key, -KEEP, -1).await?;
    let turns = db.get_range(key, 0, -1).await?;
    println!("{} turn(s) in {path}", turns.len());
    for turn in turns {
        println!(
            "[{}] {}",
            turn["role"].as_str().unwrap_or("?"),
            turn["content"].as_str().unwrap_or("")
        );
    }
    Ok(())
}
