//! The blob role on PostgreSQL, for a deployment that keeps everything in one database: a
//! blob's bytes are `bytea` rows of 1 MiB chunks, each inserted on its own while the stream is
//! hashed, and the blob row that makes them visible is written last, in one transaction. A
//! crash mid-`put` leaves an upload's chunks, which nothing reads and `cleanup` removes once
//! stale. Sensible up to tens of megabytes per blob and some gigabytes in all: every byte goes
//! through the WAL (and to every standby), and backups grow with it; past that an object store
//! serves blobs better. Not the key-value operations (`backend.rs`).

use crate::core::{PostgresBackend, Resend, pg_error};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use storage_core::blob::{
    BlobId, BlobLimits, BlobMeta, BlobReader, BlobStats, BlobStore, PutOptions,
};
use storage_core::raw::{BlobHasher, Verified, check_total};
use storage_core::{Error, Result, Version, async_trait};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The size of a chunk row.
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// How old an upload must be before `cleanup` takes it for a crashed write's.
const STALE_UPLOAD: Duration = Duration::from_secs(3600);

const META: &str = "id, size, mime, name, source, created_ms, upload";

/// Blobs in a PostgreSQL database, in the namespace of its `keyPrefix`.
#[derive(Debug)]
pub struct PostgresBlobStore {
    db: Arc<PostgresBackend>,
    limits: BlobLimits,
}

fn meta_of(row: &tokio_postgres::Row) -> (BlobMeta, Vec<u8>) {
    let id: Vec<u8> = row.get(0);
    let digest: [u8; 32] = id.as_slice().try_into().unwrap_or([0; 32]);
    (
        BlobMeta {
            id: BlobId::from_digest(digest),
            size: row.get::<_, i64>(1) as u64,
            mime: row.get(2),
            name: row.get(3),
            source: row.get(4),
            created_ms: row.get::<_, i64>(5) as u64,
        },
        row.get(6),
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl PostgresBlobStore {
    /// Blobs in the database `db` reaches (its tables created on connect), with `limits`.
    pub fn new(db: PostgresBackend, limits: BlobLimits) -> PostgresBlobStore {
        PostgresBlobStore {
            db: Arc::new(db),
            limits,
        }
    }

    async fn find(&self, id: &BlobId) -> Result<Option<(BlobMeta, Vec<u8>)>> {
        let id = id.digest().to_vec();
        let ns = &self.db.ns;
        let row = self
            .db
            .run(Resend::Allowed, |mut conn, s| {
                let id = &id;
                async move {
                    let sql = format!("SELECT {META} FROM {} WHERE ns = $1 AND id = $2", s.blobs);
                    let statement = conn.cached(&sql).await?;
                    conn.query_opt(&statement, &[ns, id])
                        .await
                        .map_err(|e| pg_error(e, "reading the blob"))
                }
            })
            .await?;
        Ok(row.as_ref().map(meta_of))
    }

    /// Runs one statement that writes, for blob bookkeeping that is safe to send twice.
    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        what: &str,
    ) -> Result<u64> {
        self.db
            .run(Resend::Allowed, |conn, _| async move {
                conn.execute(sql, params)
                    .await
                    .map_err(|e| pg_error(e, what))
            })
            .await
    }

    /// A stream of the upload's bytes from `start`, `len` of them, fed by a task that reads
    /// one chunk at a time.
    fn stream(&self, upload: Vec<u8>, start: u64, len: u64) -> BlobReader {
        let (mut tx, rx) = tokio::io::duplex(64 * 1024);
        let db = self.db.clone();
        tokio::spawn(async move {
            let mut seq = (start / CHUNK_BYTES as u64) as i64;
            let mut skip = (start % CHUNK_BYTES as u64) as usize;
            let mut left = len;
            while left > 0 {
                let (ns, upload) = (&db.ns, &upload);
                let chunk = db
                    .run(Resend::Allowed, |conn, s| async move {
                        let sql = format!(
                            "SELECT data FROM {} WHERE ns = $1 AND upload = $2 AND seq = $3",
                            s.blob_chunks
                        );
                        conn.query_opt(&sql, &[ns, upload, &seq])
                            .await
                            .map_err(|e| pg_error(e, "reading the blob"))
                    })
                    .await;
                // A missing chunk (the blob deleted meanwhile) ends the stream short, which the
                // verifying reader reports.
                let Ok(Some(row)) = chunk else { break };
                let chunk: Vec<u8> = row.get(0);
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

    /// Writes the chunks of `data` under `upload`, hashing them.
    async fn write_chunks(&self, data: &mut BlobReader, upload: &[u8]) -> Result<BlobHasher> {
        let tables = storage_tables(&self.db);
        let insert = format!(
            "INSERT INTO {} (ns, upload, seq, data) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            tables.1
        );
        let mut hasher = BlobHasher::new(self.limits.max_blob_bytes);
        let mut buffer = vec![0u8; CHUNK_BYTES];
        let mut seq = 0i64;
        loop {
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
                return Ok(hasher);
            }
            hasher.update(&buffer[..filled])?;
            let chunk = &buffer[..filled];
            self.execute(
                &insert,
                &[&self.db.ns, &upload, &seq, &chunk],
                "storing a chunk of the blob",
            )
            .await?;
            seq += 1;
            if filled < CHUNK_BYTES {
                return Ok(hasher);
            }
        }
    }

    /// Removes an upload's chunks and its marker.
    async fn drop_upload(&self, upload: &[u8]) -> Result<()> {
        let (_, chunks, uploads) = storage_tables(&self.db);
        for table in [chunks, uploads] {
            let sql = format!("DELETE FROM {table} WHERE ns = $1 AND upload = $2");
            self.execute(&sql, &[&self.db.ns, &upload], "dropping the upload")
                .await?;
        }
        Ok(())
    }
}

/// The blob tables' names: blobs, chunks, uploads.
fn storage_tables(db: &PostgresBackend) -> (String, String, String) {
    let s = db.statements();
    (
        s.blobs.clone(),
        s.blob_chunks.clone(),
        s.blob_uploads.clone(),
    )
}

#[async_trait]
impl BlobStore for PostgresBlobStore {
    fn backend(&self) -> &str {
        crate::config::TYPE_NAME
    }

    async fn put(&self, mut data: BlobReader, options: &PutOptions) -> Result<BlobMeta> {
        let (blobs, _, uploads) = storage_tables(&self.db);
        let upload = [
            Version::fresh().raw().to_le_bytes(),
            Version::fresh().raw().to_le_bytes(),
        ]
        .concat();
        let mark = format!(
            "INSERT INTO {uploads} (ns, upload, started_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
        );
        self.execute(
            &mark,
            &[&self.db.ns, &upload, &now_ms()],
            "starting the upload",
        )
        .await?;
        let hashed = match self.write_chunks(&mut data, &upload).await {
            Ok(hasher) => hasher.finish(),
            Err(e) => {
                // The first error says why; the upload is garbage either way.
                let _ = self.drop_upload(&upload).await;
                return Err(e);
            }
        };
        let meta = hashed.meta(options);
        let (ns, limits, upload_ref, meta_ref) = (&self.db.ns, self.limits, &upload, &meta);
        let stored: Option<BlobMeta> = self
            .db
            .run(Resend::Allowed, |mut conn, _| {
                let (blobs, uploads) = (&blobs, &uploads);
                async move {
                    let map = |e| pg_error(e, "storing the blob");
                    let tx = conn.transaction().await.map_err(map)?;
                    let id = meta_ref.id.digest().to_vec();
                    // Concurrent puts of the same bytes: one inserts, the others find it.
                    tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0) # hashtextextended(encode($2, 'hex'), 0))", &[ns, &id])
                        .await
                        .map_err(map)?;
                    let existing = tx
                        .query_opt(&format!("SELECT {META} FROM {blobs} WHERE ns = $1 AND id = $2"), &[ns, &id])
                        .await
                        .map_err(map)?;
                    if let Some(row) = existing {
                        tx.commit().await.map_err(map)?;
                        return Ok(Some(meta_of(&row).0));
                    }
                    if limits.max_total_bytes.is_some() {
                        let held: i64 = tx
                            .query_one(&format!("SELECT coalesce(sum(size), 0)::bigint FROM {blobs} WHERE ns = $1"), &[ns])
                            .await
                            .map_err(map)?
                            .get(0);
                        check_total(&limits, held as u64, meta_ref.size)?;
                    }
                    tx.execute(
                        &format!("INSERT INTO {blobs} (ns, id, upload, size, mime, name, source, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"),
                        &[ns, &id, upload_ref, &(meta_ref.size as i64), &meta_ref.mime, &meta_ref.name, &meta_ref.source, &(meta_ref.created_ms as i64)],
                    )
                    .await
                    .map_err(map)?;
                    tx.execute(&format!("DELETE FROM {uploads} WHERE ns = $1 AND upload = $2"), &[ns, upload_ref])
                        .await
                        .map_err(map)?;
                    tx.commit().await.map_err(map)?;
                    Ok(None)
                }
            })
            .await?;
        match stored {
            Some(first) => {
                self.drop_upload(&upload).await?;
                Ok(first)
            }
            None => Ok(meta),
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
        let (blobs, chunks, _) = storage_tables(&self.db);
        let (ns, id) = (&self.db.ns, id.digest().to_vec());
        let sql = format!(
            "WITH b AS (DELETE FROM {blobs} WHERE ns = $1 AND id = $2 RETURNING upload), \
             c AS (DELETE FROM {chunks} WHERE ns = $1 AND upload IN (SELECT upload FROM b)) \
             SELECT count(*) FROM b"
        );
        let removed: i64 = self
            .db
            .run(Resend::Allowed, |conn, _| {
                let (sql, id) = (&sql, &id);
                async move {
                    conn.query_one(sql, &[ns, id])
                        .await
                        .map_err(|e| pg_error(e, "deleting the blob"))
                }
            })
            .await?
            .get(0);
        Ok(removed > 0)
    }

    async fn list(&self, after: Option<&BlobId>, limit: usize) -> Result<Vec<BlobMeta>> {
        let (blobs, _, _) = storage_tables(&self.db);
        let after = after.map(|a| a.digest().to_vec()).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql =
            format!("SELECT {META} FROM {blobs} WHERE ns = $1 AND id > $2 ORDER BY id LIMIT $3");
        let ns = &self.db.ns;
        let rows = self
            .db
            .run(Resend::Allowed, |conn, _| {
                let (sql, after) = (&sql, &after);
                async move {
                    conn.query(sql, &[ns, after, &limit])
                        .await
                        .map_err(|e| pg_error(e, "listing blobs"))
                }
            })
            .await?;
        Ok(rows.iter().map(|r| meta_of(r).0).collect())
    }

    async fn stats(&self) -> Result<BlobStats> {
        let (blobs, _, _) = storage_tables(&self.db);
        let sql =
            format!("SELECT count(*), coalesce(sum(size), 0)::bigint FROM {blobs} WHERE ns = $1");
        let ns = &self.db.ns;
        let row = self
            .db
            .run(Resend::Allowed, |conn, _| {
                let sql = &sql;
                async move {
                    conn.query_one(sql, &[ns])
                        .await
                        .map_err(|e| pg_error(e, "counting blobs"))
                }
            })
            .await?;
        Ok(BlobStats {
            count: row.get::<_, i64>(0) as u64,
            bytes: row.get::<_, i64>(1) as u64,
        })
    }

    async fn cleanup(&self, older_than: SystemTime) -> Result<u64> {
        let (blobs, chunks, uploads) = storage_tables(&self.db);
        let cut = older_than
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let stale = now_ms() - STALE_UPLOAD.as_millis() as i64;
        let sql = format!(
            "WITH b AS (DELETE FROM {blobs} WHERE ns = $1 AND created_ms < $2 RETURNING upload), \
             u AS (DELETE FROM {uploads} WHERE ns = $1 AND started_ms < $3 RETURNING upload), \
             c AS (DELETE FROM {chunks} WHERE ns = $1 AND upload IN (SELECT upload FROM b UNION ALL SELECT upload FROM u)) \
             SELECT count(*) FROM b"
        );
        let ns = &self.db.ns;
        let removed: i64 = self
            .db
            .run(Resend::Allowed, |conn, _| {
                let sql = &sql;
                async move {
                    conn.query_one(sql, &[ns, &cut, &stale])
                        .await
                        .map_err(|e| pg_error(e, "cleaning up blobs"))
                }
            })
            .await?
            .get(0);
        Ok(removed as u64)
    }

    async fn ping(&self) -> Result<()> {
        storage_core::Store::ping(&*self.db).await
    }

    async fn close(&self) -> Result<()> {
        storage_core::Store::close(&*self.db).await
    }
}
