//! One session that several instances change at once, with no change lost.
//!
//! ```text
//! cargo run -p storage-examples --bin shared_session -- [DB_FILE] [WRITERS] [NOTES_EACH]
//! ```
//!
//! WRITERS tasks (default 8), each with a backend of its own on the same SQLite file (as
//! separate application instances would have), add NOTES_EACH notes (default 25) to the
//! session `session:shared` through `update` (the function the README shows). A plain
//! read-change-`set` would lose notes whenever two writers overlap; `update` writes only if
//! nobody wrote in between and starts over otherwise, so every note is kept.

use storage_core::prelude::*;

/// Adds a note to a session that other instances change too: no note is lost.
async fn add_note(db: &dyn Database, session: &str, note: &str) -> Result<Version> {
    let (_, version) = db
        .update(session, |current| {
            let mut doc = current.cloned().unwrap_or_else(|| json!({"notes": []}));
            if let Some(notes) = doc["notes"].as_array_mut() {
                notes.push(json!(note));
            }
            Ok(doc)
        })
        .await?;
    Ok(version)
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "session.db".into());
    let number =
        |text: Option<String>, default: usize| text.and_then(|t| t.parse().ok()).unwrap_or(default);
    let (writers, each) = (number(args.next(), 8), number(args.next(), 25));
    let session = "session:shared";
    storage_sqlite::open(&path).await?.delete(session).await?;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let db = storage_sqlite::open(&path).await?;
        tasks.push(tokio::spawn(async move {
            for n in 0..each {
                add_note(&*db, session, &format!("writer {w} note {n}")).await?;
            }
            Ok::<_, Error>(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| Error::other(format!("a writer failed: {e}")))??;
    }
    let db = storage_sqlite::open(&path).await?;
    let (doc, version) = db
        .get_versioned(session)
        .await?
        .ok_or_else(|| Error::other("the session is missing"))?;
    let kept = doc["notes"].as_array().map_or(0, Vec::len);
    println!(
        "{writers} writers × {each} notes: the session keeps {kept} notes (version {version})"
    );
    Ok(())
}
