//! `storage demo`: the design's application patterns, end to end.

use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use storage_core::blob::{BlobId, PutOptions};
use storage_core::config::Role;
use storage_core::{CacheExt, Result};
use storage_manager::{CacheAside, CacheAsideOptions, StorageManager};
use tokio::io::AsyncReadExt;

const SESSION_TTL: Duration = Duration::from_secs(3600);

/// The demo's own namespaces start with this; the application's are never written.
pub const NAMESPACE: &str = "storage-demo:";

pub async fn run(manager: &StorageManager) -> Result<()> {
    // The latency table and the hit rate come from the metrics every backend emits, read by
    // a recorder in this process.
    let observed = crate::observed::Observed::install();
    let backends = manager.connect().await?;
    println!("storage demo");
    let config = manager.config();
    println!(
        "  namespaces: keyPrefix {:?} (cache) and {:?} (database), the demo's own",
        config.cache.primary.common.key_prefix, config.database.primary.common.key_prefix
    );
    for status in [Role::Cache, Role::Database]
        .into_iter()
        .filter_map(|role| backends.status(role))
    {
        let note = status.degraded_note();
        println!(
            "  {:<9} served by {}{}",
            status.role.as_str(),
            status.serving_detail.as_deref().unwrap_or("nothing"),
            if note.is_empty() {
                String::new()
            } else {
                format!("  {note}")
            }
        );
    }
    let (cache, db) = (backends.cache.clone(), backends.database.clone());
    let layer = CacheAside::new(
        cache.clone(),
        db.clone(),
        CacheAsideOptions {
            ttl: Some(SESSION_TTL),
            write_behind_capacity: 1024,
            ..CacheAsideOptions::default()
        },
    );

    // 1. What earlier runs persisted.
    let history_key = "history:demo-session";
    let earlier = (db.get_length(history_key)).await?;
    println!("\nchat history from earlier runs: {earlier} message(s)");
    if earlier > 0 {
        for item in (db.get_range(history_key, -3, -1)).await? {
            println!("  {}", item);
        }
    }
    let runs = match (db.get("demo:runs")).await? {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0) + 1,
        _ => 1,
    };
    (db.set("demo:runs", &json!(runs))).await?;
    println!("this is run {runs} in this directory");

    // 2. A session, cached with a TTL and persisted.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let session =
        json!({ "id": "demo-session", "createdAt": now, "lastActivity": now, "run": runs });
    cache
        .set_as("session:demo-session", &session, Some(SESSION_TTL))
        .await?;
    (db.set("session:demo-session", &session)).await?;
    println!(
        "\nsession cached for {}s and persisted",
        SESSION_TTL.as_secs()
    );

    // 3. Cache-aside reads: a hit, then a miss that reads through and warms the cache.
    (layer.get("session:demo-session")).await?;
    cache.delete("session:demo-session").await?;
    (layer.get("session:demo-session")).await?;
    (layer.get("session:demo-session")).await?;
    for i in 0..20 {
        let key = format!("user:{}", i % 5);
        if i < 5 {
            layer
                .set(&key, &json!({ "name": format!("user {i}") }))
                .await?;
        }
        (layer.get(&key)).await?;
    }

    // 4. Chat history: a second task follows the conversation from its current end while this
    // one appends to it, as a chat UI on another instance would.
    let start = db.get_length(history_key).await?;
    let follower = {
        let mut tail = storage_core::feed::Tail::new(db.clone(), history_key, start);
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while seen.len() < 5 {
                match tokio::time::timeout(Duration::from_secs(10), tail.next()).await {
                    Ok(Some(Ok(item))) => seen.push(item.index),
                    _ => break,
                }
            }
            seen
        })
    };
    let turns = [
        ("user", "What is the capital of France?"),
        ("assistant", "Paris."),
        ("user", "And its population?"),
        ("assistant", "About 2.1 million in the city proper."),
    ];
    for (role, content) in turns {
        let message = json!({ "role": role, "content": content, "run": runs, "timestamp": now });
        (db.append(history_key, &message)).await?;
    }
    // 5. An attachment: the file goes to the blob role, the history refers to it by id.
    let attachment = attach(manager, runs, now).await?;
    if let Some(message) = &attachment {
        db.append(history_key, message).await?;
    }
    let len = (db.get_length(history_key)).await?;
    // Chat backends that cannot follow lists say so instead.
    match follower.await {
        Ok(seen) if !seen.is_empty() => println!(
            "a second task followed the conversation: saw items {}..={} as they were appended",
            seen[0],
            seen[seen.len() - 1]
        ),
        _ => println!("a second task could not follow the conversation on this backend"),
    }
    println!(
        "\nappended {} messages; history now holds {len}",
        turns.len() + usize::from(attachment.is_some())
    );
    let page = (db.get_range(history_key, -5, -1)).await?;
    println!("latest page (get_range -5 -1):");
    for m in &page {
        println!(
            "  [{}] {}",
            m["role"].as_str().unwrap_or("?"),
            m["content"].as_str().unwrap_or("")
        );
    }
    if let Some(message) = &attachment {
        show_attachment(manager, message).await?;
    }
    let first = (db.get_range(history_key, 0, 1)).await?;
    println!("first page (get_range 0 1): {} message(s)", first.len());

    match &observed {
        Some(observed) => observed.print(),
        None => println!("\n(another metrics recorder is installed; no latency table)"),
    }
    // After the table, which shows the one application above.
    crate::demo_shared::run(cache.clone(), db.clone()).await?;
    if let Some((n, p50, max)) = observed.as_ref().and_then(|o| o.staleness()) {
        println!(
            "  the near caches applied {n} changes {:.1} ms after their writes (median; max {:.1} ms)",
            p50 * 1e3,
            max * 1e3
        );
    }
    let report = layer.shutdown(Duration::from_secs(5)).await;
    if !report.unwritten.is_empty() {
        println!("write-behind could not write: {:?}", report.unwritten);
    }
    println!(
        "\nrun the demo again: the history above will have grown by {} messages.",
        turns.len()
    );
    Ok(())
}

/// Stores a small chart as a blob and returns the history message that refers to it; `None`
/// when no blob role is configured.
async fn attach(manager: &StorageManager, run: u64, now: u64) -> Result<Option<Value>> {
    if manager.config().blob.is_none() {
        return Ok(None);
    }
    let (blobs, _) = manager.connect_blob().await?;
    let chart = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"120\" height=\"40\"><rect width=\"90\" height=\"12\"/><rect y=\"20\" width=\"40\" height=\"12\"/></svg>\n";
    let options = PutOptions {
        mime: Some("image/svg+xml".into()),
        name: Some("population.svg".into()),
        source: Some("demo".into()),
    };
    let meta = blobs.put_bytes(chart.as_bytes(), &options).await?;
    Ok(Some(json!({
        "role": "assistant",
        "content": "Here is a chart of it.",
        "attachments": [{ "blob": meta.id.to_string(), "name": meta.name, "mime": meta.mime }],
        "run": run,
        "timestamp": now,
    })))
}

/// Reads the attachment back through the reference in the message, as a chat UI would.
async fn show_attachment(manager: &StorageManager, message: &Value) -> Result<()> {
    let reference = message["attachments"][0]["blob"]
        .as_str()
        .unwrap_or_default();
    let id: BlobId = reference.parse()?;
    let (blobs, status) = manager.connect_blob().await?;
    let Some((meta, mut reader)) = blobs.get(&id).await? else {
        return Err(storage_core::Error::other(format!(
            "{reference} is not stored"
        )));
    };
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| storage_core::Error::other(format!("reading {reference}: {e}")))?;
    println!(
        "attachment {reference}: {} bytes of {} read back from {} and checked against its id",
        bytes.len(),
        meta.mime,
        status.serving_detail.as_deref().unwrap_or("the blob role")
    );
    Ok(())
}
