//! A downstream crate's smallest program: an in-memory SQLite database through
//! `storage_sqlite::open_in_memory`, a value written and read back, a list appended to. It is
//! not an example to copy (see `examples/src/bin`); it proves that a crate outside the
//! workspace builds against the storage crates with its own serde_json release.

use storage_core::prelude::*;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let db = storage_sqlite::open_in_memory().await?;
    db.set("greeting", &json!({ "text": "hello", "n": 1.5 }))
        .await?;
    db.append("chat", &json!("first")).await?;
    db.append("chat", &json!("second")).await?;
    let greeting = db.get("greeting").await?;
    let chat = db.get_range("chat", 0, -1).await?;
    println!(
        "greeting={} chat={} serde_json={}",
        serde_json::to_string(&greeting).expect("a value serializes"),
        serde_json::to_string(&chat).expect("a list serializes"),
        storage_core::plugin::SERDE_JSON_VERSION.trim_end_matches('\0')
    );
    Ok(())
}
