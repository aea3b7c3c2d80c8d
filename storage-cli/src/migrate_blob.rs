//! `storage migrate --role blob`: copy every blob from one config's blob store to another's,
//! streaming each one, then read every copied blob back from the target through its hash check.
//! Not the key-value roles (`migrate.rs`).

use crate::migrate::Mode;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use storage_core::blob::{BlobMeta, BlobStore, PutOptions};
use storage_core::config::BackendSpec;
use storage_core::{Error, Result};
use storage_manager::{StorageManager, namespaces_clash};
use tokio::io::AsyncReadExt;

/// Blobs per listing page.
const PAGE: usize = 500;

/// The blob role's primary backend, or an error naming the config without one.
fn primary(manager: &StorageManager, file: &Path) -> Result<BackendSpec> {
    match &manager.config().blob {
        Some(chain) => Ok(chain.primary.clone()),
        None => Err(Error::config(format!(
            "{}: no blob role is configured (add a `blob:` block)",
            file.display()
        ))),
    }
}

/// Every blob's metadata, in id order.
async fn all(store: &dyn BlobStore) -> Result<Vec<BlobMeta>> {
    let mut out: Vec<BlobMeta> = Vec::new();
    loop {
        let page = store.list(out.last().map(|m| &m.id), PAGE).await?;
        let done = page.len() < PAGE;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// Reads the blob whole from `store`, which checks it against its id; the bytes read.
async fn read_verified(store: &dyn BlobStore, meta: &BlobMeta) -> Result<u64> {
    let Some((_, mut reader)) = store.get(&meta.id).await? else {
        return Err(Error::other(format!("{}: missing in the target", meta.id)));
    };
    let mut buffer = vec![0u8; storage_core::raw::BLOB_BUFFER_BYTES];
    let mut read = 0u64;
    loop {
        let n = reader
            .read(&mut buffer)
            .await
            .map_err(|e| Error::other(format!("{}: {e}", meta.id)))?;
        if n == 0 {
            return Ok(read);
        }
        read += n as u64;
    }
}

/// Runs the migration; returns the exit code (0, or 2 when verification differs).
pub async fn run(from: &Path, to: &Path, mode: Mode) -> Result<u8> {
    let src_manager = StorageManager::from_file(from)?.without_fallback();
    let dst_manager = StorageManager::from_file(to)?.without_fallback();
    let (a, b) = (primary(&src_manager, from)?, primary(&dst_manager, to)?);
    if let Some(clash) = namespaces_clash(&a, &b) {
        return Err(Error::invalid_input(format!(
            "source {} ({a}) and target {} ({b}) reach the same blobs and their namespaces {}: nothing was written",
            from.display(),
            to.display(),
            clash.verb()
        )));
    }
    let src: Arc<dyn BlobStore> = src_manager.connect_blob().await?.0;
    let dst: Arc<dyn BlobStore> = dst_manager.connect_blob().await?.0;
    let started = Instant::now();
    let blobs = all(src.as_ref()).await?;
    let bytes: u64 = blobs.iter().map(|m| m.size).sum();
    let existing = dst.stats().await?;
    if mode == Mode::DryRun {
        println!(
            "dry run: would copy {} blobs ({bytes} bytes) from {} to {}",
            blobs.len(),
            from.display(),
            to.display()
        );
        if existing.count > 0 {
            println!(
                "the target already holds {} blobs: the migration needs --overwrite, which removes them first",
                existing.count
            );
        }
        return Ok(0);
    }
    if existing.count > 0 {
        if mode != Mode::Overwrite {
            return Err(Error::invalid_input(format!(
                "the target already holds {} blobs; refusing to write into it (use --overwrite to replace them)",
                existing.count
            )));
        }
        for old in all(dst.as_ref()).await? {
            dst.delete(&old.id).await?;
        }
    }
    for (done, meta) in blobs.iter().enumerate() {
        let stopped = |e: Error| {
            Error::new(
                e.kind(),
                format!(
                    "copying {}: {}; {done} of {} blobs were copied before it, the rest were not",
                    meta.id,
                    e.message(),
                    blobs.len()
                ),
            )
        };
        // A blob deleted from the source since the listing is skipped.
        let Some((_, reader)) = src.get(&meta.id).await.map_err(stopped)? else {
            continue;
        };
        let options = PutOptions {
            mime: Some(meta.mime.clone()),
            name: meta.name.clone(),
            source: meta.source.clone(),
        };
        let stored = dst.put(reader, &options).await.map_err(stopped)?;
        if stored.id != meta.id {
            return Err(stopped(Error::other(format!(
                "the target stored it as {}",
                stored.id
            ))));
        }
    }
    let copied = started.elapsed();
    // Every blob read back from the target, whole, through its SHA-256 check.
    let mut differences = Vec::new();
    for meta in &blobs {
        match read_verified(dst.as_ref(), meta).await {
            Ok(n) if n == meta.size => {}
            Ok(n) => differences.push(format!("{}: {n} bytes, not {}", meta.id, meta.size)),
            Err(e) => differences.push(e.to_string()),
        }
    }
    src_manager.disconnect().await?;
    dst_manager.disconnect().await?;
    println!(
        "copied {} blobs ({bytes} bytes) in {:.1}s; verified {} by SHA-256",
        blobs.len(),
        copied.as_secs_f64(),
        blobs.len() - differences.len()
    );
    if differences.is_empty() {
        println!("verification: identical");
        println!(
            "note: creation times restart on the target (cleanup --older-than counts from the copy)"
        );
        Ok(0)
    } else {
        println!("verification: {} blobs differ", differences.len());
        for d in differences.iter().take(50) {
            println!("  {d}");
        }
        Ok(2)
    }
}
