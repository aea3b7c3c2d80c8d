//! Where the store's files are and how each is written: `ab/cd/<hex>` for a blob's bytes,
//! `ab/cd/<hex>.meta` for its metadata, `tmp/` for writes in progress; the renames and syncs
//! that make a write atomic and durable. Not the operations' rules (`lib.rs`).

use crate::io_error;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use storage_core::blob::{BlobId, BlobMeta};
use storage_core::{Error, Result};
use tokio::io::AsyncWriteExt;

/// A stored blob, as the directory walk finds it.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) id: BlobId,
    pub(crate) size: u64,
}

/// What the `.meta` file holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaFile {
    size: u64,
    mime: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    source: Option<String>,
    created_ms: u64,
}

#[derive(Debug)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: PathBuf) -> Layout {
        Layout { root }
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn shard(&self, id: &BlobId) -> PathBuf {
        let hex = id.hex();
        self.root.join(&hex[..2]).join(&hex[2..4])
    }

    fn data_path(&self, id: &BlobId) -> PathBuf {
        self.shard(id).join(id.hex())
    }

    fn meta_path(&self, id: &BlobId) -> PathBuf {
        self.shard(id).join(format!("{}.meta", id.hex()))
    }

    pub(crate) async fn create(&self) -> Result<()> {
        tokio::fs::create_dir_all(self.tmp_dir())
            .await
            .map_err(|e| {
                io_error(
                    &format!("creating the blob directory {}", self.root.display()),
                    e,
                )
            })
    }

    pub(crate) async fn check(&self) -> Result<()> {
        let meta = tokio::fs::metadata(&self.root)
            .await
            .map_err(|e| io_error(&format!("reading {}", self.root.display()), e))?;
        if meta.is_dir() {
            Ok(())
        } else {
            Err(Error::config(format!(
                "{} is not a directory",
                self.root.display()
            )))
        }
    }

    /// A new temporary file for a write in progress.
    pub(crate) async fn temporary(&self) -> Result<(PathBuf, tokio::fs::File)> {
        let name = format!("{}.part", storage_core::Version::fresh());
        let path = self.tmp_dir().join(name);
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| io_error("creating a temporary file for the blob", e))?;
        Ok((path, file))
    }

    /// The blob's metadata, if its data file is there.
    pub(crate) async fn meta(&self, id: &BlobId) -> Result<Option<BlobMeta>> {
        let size = match tokio::fs::metadata(self.data_path(id)).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("reading the blob", e)),
        };
        let text = tokio::fs::read(self.meta_path(id))
            .await
            .map_err(|e| io_error(&format!("reading the metadata of {id}"), e))?;
        let file: MetaFile = serde_json::from_slice(&text)
            .map_err(|e| Error::other(format!("the metadata of {id} is corrupt: {e}")))?;
        if file.size != size {
            return Err(Error::other(format!(
                "{id}: the stored file has {size} bytes, its metadata says {}; the store is corrupt",
                file.size
            )));
        }
        Ok(Some(BlobMeta {
            id: id.clone(),
            size,
            mime: file.mime,
            name: file.name,
            source: file.source,
            created_ms: file.created_ms,
        }))
    }

    /// The blob's metadata and its data file, open for reading.
    pub(crate) async fn open(&self, id: &BlobId) -> Result<Option<(BlobMeta, tokio::fs::File)>> {
        let Some(meta) = self.meta(id).await? else {
            return Ok(None);
        };
        match tokio::fs::File::open(self.data_path(id)).await {
            Ok(file) => Ok(Some((meta, file))),
            // Deleted between the two steps.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("opening the blob", e)),
        }
    }

    /// Moves a complete, synced temporary file into place with its metadata: the metadata
    /// first (a metadata file without data is invisible), then the data, then a sync of the
    /// directory that names both.
    pub(crate) async fn commit(&self, temp: &Path, meta: &BlobMeta) -> Result<()> {
        let shard = self.shard(&meta.id);
        tokio::fs::create_dir_all(&shard)
            .await
            .map_err(|e| io_error("creating the blob's directory", e))?;
        let text = serde_json::to_vec(&MetaFile {
            size: meta.size,
            mime: meta.mime.clone(),
            name: meta.name.clone(),
            source: meta.source.clone(),
            created_ms: meta.created_ms,
        })
        .map_err(|e| Error::other(format!("encoding the metadata: {e}")))?;
        let (meta_temp, mut file) = self.temporary().await?;
        let written = async {
            file.write_all(&text).await?;
            file.sync_all().await?;
            drop(file);
            tokio::fs::rename(&meta_temp, self.meta_path(&meta.id)).await
        }
        .await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&meta_temp).await;
            return Err(io_error("writing the blob's metadata", e));
        }
        tokio::fs::rename(temp, self.data_path(&meta.id))
            .await
            .map_err(|e| io_error("moving the blob into place", e))?;
        sync_dir(&shard).await
    }

    /// Removes a blob (its data first: it is gone for readers at once); its size if it was
    /// there.
    pub(crate) async fn remove(&self, id: &BlobId) -> Result<Option<u64>> {
        let data = self.data_path(id);
        let size = match tokio::fs::metadata(&data).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("reading the blob", e)),
        };
        match tokio::fs::remove_file(&data).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("removing the blob", e)),
        }
        let _ = tokio::fs::remove_file(self.meta_path(id)).await;
        sync_dir(&self.shard(id)).await?;
        Ok(Some(size))
    }

    /// Every stored blob (a data file), in id order.
    pub(crate) async fn all(&self) -> Result<Vec<Stored>> {
        let root = self.root.clone();
        let mut found = tokio::task::spawn_blocking(move || walk(&root))
            .await
            .map_err(|e| Error::other(format!("listing blobs: {e}")))??;
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }

    /// Removes temporary files and metadata without data older than `age`: what crashed
    /// writes left.
    pub(crate) async fn remove_stale(&self, age: Duration) -> Result<()> {
        let (root, tmp) = (self.root.clone(), self.tmp_dir());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let stale = |p: &Path| {
                std::fs::metadata(p)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_some_and(|d| d > age)
            };
            for entry in std::fs::read_dir(&tmp)? {
                let path = entry?.path();
                if stale(&path) {
                    let _ = std::fs::remove_file(&path);
                }
            }
            for meta in shard_files(&root)?.into_iter().filter(|p| {
                p.extension().is_some_and(|e| e == "meta") && !p.with_extension("").exists()
            }) {
                if stale(&meta) {
                    let _ = std::fs::remove_file(&meta);
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::other(format!("removing stale files: {e}")))?
        .map_err(|e| io_error("removing stale files", e))
    }
}

/// Every file two shard levels down.
fn shard_files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let shard_name = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    for first in std::fs::read_dir(root)? {
        let first = first?.path();
        if !first.is_dir() || !shard_name(&first) {
            continue;
        }
        for second in std::fs::read_dir(&first)? {
            let second = second?.path();
            if !second.is_dir() || !shard_name(&second) {
                continue;
            }
            for file in std::fs::read_dir(&second)? {
                out.push(file?.path());
            }
        }
    }
    Ok(out)
}

fn walk(root: &Path) -> Result<Vec<Stored>> {
    let files = shard_files(root).map_err(|e| io_error("listing blobs", e))?;
    let mut out = Vec::new();
    for path in files {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Ok(id) = BlobId::from_hex(name) else {
            continue;
        };
        match std::fs::metadata(&path) {
            Ok(m) => out.push(Stored { id, size: m.len() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("listing blobs", e)),
        }
    }
    Ok(out)
}

/// Syncs a directory, so that a rename in it survives a crash.
async fn sync_dir(dir: &Path) -> Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir).and_then(|d| d.sync_all()))
        .await
        .map_err(|e| Error::other(format!("syncing the directory: {e}")))?
        .map_err(|e| io_error("syncing the blob's directory", e))
}
