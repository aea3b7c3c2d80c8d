//! The blob role on SQLite, for an application that keeps everything in one file: a blob's
//! bytes are rows of 256 KiB chunks, written one transaction per chunk while the stream is
//! hashed, and the blob row that makes them visible is written last, in one transaction. A
//! crash mid-`put` leaves an upload's chunks, which nothing reads and `cleanup` removes once
//! stale. Sensible up to tens of megabytes per blob and a few gigabytes in all: past that, a
//! filesystem or object store serves blobs better (every byte here goes through the database's
//! write lock and its WAL). Not the key-value operations (`backend.rs`).

use crate::config::SqliteConfig;
use crate::core::SqliteBackend;
use crate::schema::sql_error;
use r2d2_sqlite::rusqlite::{self, OptionalExtension, params};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use storage_core::blob::{
    BlobId, BlobLimits, BlobMeta, BlobReader, BlobStats, BlobStore, PutOptions,
};
use storage_core::config::BackendSpec;
use storage_core::raw::{BlobHasher, Verified, check_total};
use storage_core::{Error, Result, Version, async_trait};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The size of a chunk row.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// How old an upload must be before `cleanup` takes it for a crashed write's.
const STALE_UPLOAD: Duration = Duration::from_secs(3600);

/// Blobs in a SQLite file, in the namespace of its `keyPrefix`.
#[derive(Debug)]
pub struct SqliteBlobStore {
    db: std::sync::Arc<SqliteBackend>,
    limits: BlobLimits,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

const META: &str =
    "SELECT id, size, mime, name, source, created_ms, upload FROM blobs WHERE ns = ?1";

fn meta_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<(BlobMeta, Vec<u8>)> {
    let id: Vec<u8> = row.get(0)?;
    let digest: [u8; 32] = id.as_slice().try_into().unwrap_or([0; 32]);
    Ok((
        BlobMeta {
            id: BlobId::from_digest(digest),
            size: row.get::<_, i64>(1)? as u64,
            mime: row.get(2)?,
            name: row.get(3)?,
            source: row.get(4)?,
            created_ms: row.get::<_, i64>(5)? as u64,
        },
        row.get(6)?,
    ))
}

impl SqliteBlobStore {
    /// Opens the file `config` names (creating and migrating it) for blobs in the namespace
    /// `key_prefix`.
    pub async fn open(
        config: SqliteConfig,
        key_prefix: &str,
        limits: BlobLimits,
    ) -> Result<SqliteBlobStore> {
        let spec = BackendSpec::new(config.clone()).with_key_prefix(key_prefix);
        Ok(SqliteBlobStore {
            db: std::sync::Arc::new(SqliteBackend::connect(&config, &spec).await?),
            limits,
        })
    }

    async fn find(&self, id: &BlobId) -> Result<Option<(BlobMeta, Vec<u8>)>> {
        let id = id.digest().to_vec();
        self.db
            .with_conn(move |conn, ns| {
                conn.prepare_cached(&format!("{META} AND id = ?2"))
                    .and_then(|mut s| s.query_row(params![ns, id], meta_of).optional())
                    .map_err(|e| sql_error(e, "reading the blob"))
            })
            .await
    }

    /// A stream of the upload's bytes from `start`, `len` of them, fed by a task that reads
    /// one chunk at a time.
    fn stream(&self, upload: Vec<u8>, start: u64, len: u64) -> BlobReader {
        let (mut tx, rx) = tokio::io::duplex(CHUNK_BYTES);
        let db = self.db.clone();
        tokio::spawn(async move {
            let mut seq = (start / CHUNK_BYTES as u64) as i64;
            let mut skip = (start % CHUNK_BYTES as u64) as usize;
            let mut left = len;
            while left > 0 {
                let upload = upload.clone();
                let chunk: Result<Option<Vec<u8>>> = db
                    .with_conn(move |conn, ns| {
                        conn.prepare_cached(
                            "SELECT data FROM blob_chunks WHERE ns = ?1 AND upload = ?2 AND seq = ?3",
                        )
                        .and_then(|mut s| s.query_row(params![ns, upload, seq], |r| r.get(0)).optional())
                        .map_err(|e| sql_error(e, "reading the blob"))
                    })
                    .await;
                // A missing chunk (the blob deleted meanwhile) ends the stream short, which the
                // verifying reader reports.
                let Ok(Some(chunk)) = chunk else { break };
                let piece = &chunk[skip.min(chunk.len())..];
                let piece = &piece[..(piece.len() as u64).min(left) as usize];
                if piece.is_empty() || tx.write_all(piece).await.is_err() {
                    break;
                }
                left -= piece.len() as u64;
                skip = 0;
                seq += 1;
            }
        });
        Box::pin(rx)
    }
}

#[async_trait]
impl BlobStore for SqliteBlobStore {
    fn backend(&self) -> &str {
        crate::config::TYPE_NAME
    }

    async fn put(&self, mut data: BlobReader, options: &PutOptions) -> Result<BlobMeta> {
        let upload = [
            Version::fresh().raw().to_le_bytes(),
            Version::fresh().raw().to_le_bytes(),
        ]
        .concat();
        let marker = upload.clone();
        self.db
            .write(move |tx, ns| {
                tx.execute(
                    "INSERT INTO blob_uploads (ns, upload, started_ms) VALUES (?1, ?2, ?3)",
                    params![ns, marker, now_ms()],
                )
                .map_err(|e| sql_error(e, "starting the upload"))
            })
            .await?;
        let mut hasher = BlobHasher::new(self.limits.max_blob_bytes);
        let mut buffer = vec![0u8; CHUNK_BYTES];
        let mut seq = 0i64;
        let streamed: Result<()> = async {
            loop {
                // Fill a whole chunk (the last one may be short).
                let mut filled = 0;
                while filled < CHUNK_BYTES {
                    let n = data.read(&mut buffer[filled..]).await.map_err(|e| {
                        Error::other(format!("reading the blob to store: {e}")).with_source(e)
                    })?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    return Ok(());
                }
                hasher.update(&buffer[..filled])?;
                let (chunk, upload) = (buffer[..filled].to_vec(), upload.clone());
                self.db
                    .write(move |tx, ns| {
                        tx.execute(
                            "INSERT INTO blob_chunks (ns, upload, seq, data) VALUES (?1, ?2, ?3, ?4)",
                            params![ns, upload, seq, chunk],
                        )
                        .map_err(|e| sql_error(e, "storing a chunk of the blob"))
                    })
                    .await?;
                seq += 1;
                if filled < CHUNK_BYTES {
                    return Ok(());
                }
            }
        }
        .await;
        let hashed = streamed.map(|()| hasher.finish());
        let meta = hashed.as_ref().ok().map(|h| h.meta(options));
        let (limits, upload_id) = (self.limits, upload.clone());
        let stored = self
            .db
            .write(move |tx, ns| {
                let drop_upload = |tx: &rusqlite::Transaction<'_>| {
                    tx.execute("DELETE FROM blob_chunks WHERE ns = ?1 AND upload = ?2", params![ns, upload_id])
                        .and_then(|_| tx.execute("DELETE FROM blob_uploads WHERE ns = ?1 AND upload = ?2", params![ns, upload_id]))
                        .map_err(|e| sql_error(e, "dropping the upload"))
                };
                let Some(meta) = meta else {
                    drop_upload(tx)?;
                    return Ok(None);
                };
                let id = meta.id.digest().to_vec();
                let existing = tx
                    .prepare_cached(&format!("{META} AND id = ?2"))
                    .and_then(|mut s| s.query_row(params![ns, id], meta_of).optional())
                    .map_err(|e| sql_error(e, "reading the blob"))?;
                if let Some((first, _)) = existing {
                    drop_upload(tx)?;
                    return Ok(Some(first));
                }
                if limits.max_total_bytes.is_some() {
                    let held: i64 = tx
                        .query_row("SELECT coalesce(sum(size), 0) FROM blobs WHERE ns = ?1", [ns], |r| r.get(0))
                        .map_err(|e| sql_error(e, "counting blob bytes"))?;
                    if let Err(e) = check_total(&limits, held as u64, meta.size) {
                        drop_upload(tx)?;
                        return Err(e);
                        }
                }
                tx.execute(
                    "INSERT INTO blobs (ns, id, upload, size, mime, name, source, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![ns, id, upload_id, meta.size as i64, meta.mime, meta.name, meta.source, meta.created_ms as i64],
                )
                .and_then(|_| tx.execute("DELETE FROM blob_uploads WHERE ns = ?1 AND upload = ?2", params![ns, upload_id]))
                .map_err(|e| sql_error(e, "storing the blob"))?;
                Ok(Some(meta))
            })
            .await?;
        match (hashed, stored) {
            (Err(e), _) => Err(e),
            (Ok(_), Some(meta)) => Ok(meta),
            (Ok(_), None) => Err(Error::other("the blob was not stored")),
        }
    }

    async fn get(&self, id: &BlobId) -> Result<Option<(BlobMeta, BlobReader)>> {
        let Some((meta, upload)) = self.find(id).await? else {
            return Ok(None);
        };
        let reader = Verified::boxed(self.stream(upload, 0, meta.size), &meta);
        Ok(Some((meta, reader)))
    }

    async fn get_range(
        &self,
        id: &BlobId,
        start: u64,
        end: u64,
    ) -> Result<Option<(BlobMeta, BlobReader)>> {
        let Some((meta, upload)) = self.find(id).await? else {
            return Ok(None);
        };
        let from = start.min(meta.size);
        let to = end.min(meta.size).max(from);
        Ok(Some((meta, self.stream(upload, from, to - from))))
    }

    async fn head(&self, id: &BlobId) -> Result<Option<BlobMeta>> {
        Ok(self.find(id).await?.map(|(meta, _)| meta))
    }

    async fn delete(&self, id: &BlobId) -> Result<bool> {
        let id = id.digest().to_vec();
        self.db.write(move |tx, ns| delete_blob(tx, ns, &id)).await
    }

    async fn list(&self, after: Option<&BlobId>, limit: usize) -> Result<Vec<BlobMeta>> {
        let after = after.map(|a| a.digest().to_vec()).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .read(move |tx, ns| {
                let mut s = tx
                    .prepare_cached(&format!("{META} AND id > ?2 ORDER BY id LIMIT ?3"))
                    .map_err(|e| sql_error(e, "listing blobs"))?;
                let rows = s
                    .query_map(params![ns, after, limit], meta_of)
                    .map_err(|e| sql_error(e, "listing blobs"))?;
                rows.map(|r| r.map(|(m, _)| m).map_err(|e| sql_error(e, "listing blobs")))
                    .collect()
            })
            .await
    }

    async fn stats(&self) -> Result<BlobStats> {
        self.db
            .with_conn(|conn, ns| {
                conn.query_row(
                    "SELECT count(*), coalesce(sum(size), 0) FROM blobs WHERE ns = ?1",
                    [ns],
                    |r| {
                        Ok(BlobStats {
                            count: r.get::<_, i64>(0)? as u64,
                            bytes: r.get::<_, i64>(1)? as u64,
                        })
                    },
                )
                .map_err(|e| sql_error(e, "counting blobs"))
            })
            .await
    }

    async fn cleanup(&self, older_than: SystemTime) -> Result<u64> {
        let cut = older_than
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let stale = now_ms() - STALE_UPLOAD.as_millis() as i64;
        self.db
            .write(move |tx, ns| {
                let map = |e| sql_error(e, "cleaning up blobs");
                let old: Vec<Vec<u8>> = tx
                    .prepare("SELECT id FROM blobs WHERE ns = ?1 AND created_ms < ?2")
                    .and_then(|mut s| s.query_map(params![ns, cut], |r| r.get(0))?.collect())
                    .map_err(map)?;
                for id in &old {
                    delete_blob(tx, ns, id)?;
                }
                let abandoned: Vec<Vec<u8>> = tx
                    .prepare("SELECT upload FROM blob_uploads WHERE ns = ?1 AND started_ms < ?2")
                    .and_then(|mut s| s.query_map(params![ns, stale], |r| r.get(0))?.collect())
                    .map_err(map)?;
                for upload in abandoned {
                    tx.execute(
                        "DELETE FROM blob_chunks WHERE ns = ?1 AND upload = ?2",
                        params![ns, upload],
                    )
                    .and_then(|_| {
                        tx.execute(
                            "DELETE FROM blob_uploads WHERE ns = ?1 AND upload = ?2",
                            params![ns, upload],
                        )
                    })
                    .map_err(map)?;
                }
                Ok(old.len() as u64)
            })
            .await
    }

    async fn ping(&self) -> Result<()> {
        storage_core::Store::ping(&*self.db).await
    }

    async fn close(&self) -> Result<()> {
        storage_core::Store::close(&*self.db).await
    }
}

/// Removes a blob row and its chunks; whether it was there.
fn delete_blob(tx: &rusqlite::Transaction<'_>, ns: &str, id: &[u8]) -> Result<bool> {
    let map = |e| sql_error(e, "deleting the blob");
    let upload: Option<Vec<u8>> = tx
        .query_row(
            "DELETE FROM blobs WHERE ns = ?1 AND id = ?2 RETURNING upload",
            params![ns, id],
            |r| r.get(0),
        )
        .optional()
        .map_err(map)?;
    let Some(upload) = upload else {
        return Ok(false);
    };
    tx.execute(
        "DELETE FROM blob_chunks WHERE ns = ?1 AND upload = ?2",
        params![ns, upload],
    )
    .map_err(map)?;
    Ok(true)
}
