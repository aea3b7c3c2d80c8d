//! The store: how a blob becomes objects in the bucket, and back.
//!
//! Under the folder `<keyPrefix>/blobs/`: `data/<hex>` holds a blob's bytes, `meta/<hex>` its
//! metadata (JSON), `uploads/<random>` a large blob while it streams in. A blob is visible once
//! its metadata object exists, and that is written (create-only, `If-None-Match: *`) after the
//! data object is complete: a crash mid-`put` leaves at most an upload or a data object that
//! nothing reads (`cleanup` removes stale uploads; the server's lifecycle rules should abort
//! incomplete multipart uploads). A blob that fits in one part (8 MiB) is hashed in memory and
//! written straight to `data/`; a larger one streams to `uploads/` as a multipart upload while
//! it is hashed, and is then copied by the server to `data/` (one copy request, so at most
//! 5 GiB on AWS, where a single copy stops). Not the configuration (`config.rs`).

use crate::{S3Config, TYPE_NAME, error::s3_error};
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutPayload, WriteMultipart,
};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use storage_core::blob::{
    BlobId, BlobLimits, BlobMeta, BlobReader, BlobStats, BlobStore, PutOptions,
};
use storage_core::raw::{BlobHasher, Verified, check_total};
use storage_core::{Error, Result, Version, async_trait};
use tokio::io::AsyncReadExt;

/// A part of a multipart upload, and the size up to which a blob is written in one request.
pub const PART_BYTES: usize = 8 * 1024 * 1024;

/// Parts of one upload in flight at once (so memory stays about this many parts).
const PARTS_IN_FLIGHT: usize = 2;

/// How old an upload must be before `cleanup` takes it for a crashed write's.
const STALE_UPLOAD: Duration = Duration::from_secs(3600);

/// Blobs in an S3-compatible bucket.
#[derive(Debug)]
pub struct S3BlobStore {
    client: AmazonS3,
    root: Path,
    limits: BlobLimits,
    closed: AtomicBool,
}

/// The metadata object's body.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaBody {
    size: u64,
    mime: String,
    name: Option<String>,
    source: Option<String>,
    created_ms: u64,
}

impl MetaBody {
    fn of(meta: &BlobMeta) -> MetaBody {
        MetaBody {
            size: meta.size,
            mime: meta.mime.clone(),
            name: meta.name.clone(),
            source: meta.source.clone(),
            created_ms: meta.created_ms,
        }
    }

    fn into_meta(self, id: BlobId) -> BlobMeta {
        BlobMeta {
            id,
            size: self.size,
            mime: self.mime,
            name: self.name,
            source: self.source,
            created_ms: self.created_ms,
        }
    }
}

/// Installs the ring provider as the process's rustls default when none is, so that the
/// HTTPS client has one (this workspace builds rustls with ring only).
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may install one first: then that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl S3BlobStore {
    /// Connects to the bucket `config` names and checks that it answers.
    pub async fn open(config: S3Config) -> Result<S3BlobStore> {
        ensure_crypto_provider();
        // A few quick retries: the manager's own retry and fallback decide past them.
        let retry = object_store::RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            ..Default::default()
        };
        let mut builder = AmazonS3Builder::new()
            .with_retry(retry)
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_virtual_hosted_style_request(config.virtual_hosted_style)
            .with_allow_http(config.plain_http());
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
            builder = builder
                .with_access_key_id(id.expose())
                .with_secret_access_key(secret.expose());
        }
        if let Some(token) = &config.session_token {
            builder = builder.with_token(token.expose());
        }
        let client = builder
            .build()
            .map_err(|e| s3_error(e, "configuring the S3 client"))?;
        let prefix = config.prefix.trim_matches('/');
        let root = if prefix.is_empty() {
            Path::from("blobs")
        } else {
            Path::from(prefix).join("blobs")
        };
        let store = S3BlobStore {
            client,
            root,
            limits: config.limits,
            closed: AtomicBool::new(false),
        };
        store.ping().await?;
        Ok(store)
    }

    fn path(&self, folder: &str, name: &str) -> Path {
        self.root.clone().join(folder).join(name)
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::closed());
        }
        Ok(())
    }

    async fn read_meta(&self, id: &BlobId) -> Result<Option<BlobMeta>> {
        self.check_open()?;
        let body = match self.client.get(&self.path("meta", &id.hex())).await {
            Ok(found) => found
                .bytes()
                .await
                .map_err(|e| s3_error(e, "reading blob metadata"))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(s3_error(e, "reading blob metadata")),
        };
        let body: MetaBody = serde_json::from_slice(&body).map_err(|e| {
            Error::other(format!(
                "the metadata object of {id} is not what this store writes: {e}"
            ))
        })?;
        Ok(Some(body.into_meta(id.clone())))
    }

    /// A stream of the data object's bytes in `range`.
    async fn read_data(&self, id: &BlobId, range: Option<GetRange>) -> Result<BlobReader> {
        let options = GetOptions {
            range,
            ..Default::default()
        };
        let found = self
            .client
            .get_opts(&self.path("data", &id.hex()), options)
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => Error::other(format!(
                    "{id} has metadata but no data object (deleted meanwhile?)"
                )),
                e => s3_error(e, "reading the blob"),
            })?;
        let bytes = found
            .into_stream()
            .map_err(|e| std::io::Error::other(s3_error(e, "reading the blob")));
        Ok(Box::pin(tokio_util::io::StreamReader::new(bytes)))
    }

    /// Bytes held: the sizes of the data objects that have metadata.
    async fn held(&self) -> Result<BlobStats> {
        let metas: std::collections::HashSet<String> = self
            .list_folder("meta", None)
            .await?
            .into_iter()
            .map(|o| o.0)
            .collect();
        let mut stats = BlobStats::default();
        for (hex, size, _) in self.list_folder("data", None).await? {
            if metas.contains(&hex) {
                stats.count += 1;
                stats.bytes += size;
            }
        }
        Ok(stats)
    }

    /// The objects of a folder (name, size, last modified in ms), in name order, after `after`.
    async fn list_folder(
        &self,
        folder: &str,
        after: Option<&str>,
    ) -> Result<Vec<(String, u64, i64)>> {
        self.check_open()?;
        let prefix = self.root.clone().join(folder);
        let listing = match after {
            Some(a) => self
                .client
                .list_with_offset(Some(&prefix), &prefix.clone().join(a)),
            None => self.client.list(Some(&prefix)),
        };
        let objects: Vec<_> = listing
            .try_collect()
            .await
            .map_err(|e| s3_error(e, "listing blobs"))?;
        let mut out: Vec<_> = objects
            .into_iter()
            .filter_map(|o| {
                let name = o.location.filename()?.to_string();
                Some((name, o.size, o.last_modified.timestamp_millis()))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Streams a blob past one part to `uploads/` while hashing it; the upload's path and the
    /// hash. `first` is the first part, already read.
    async fn upload(
        &self,
        first: Vec<u8>,
        data: &mut BlobReader,
        hasher: &mut BlobHasher,
    ) -> Result<Path> {
        let random = format!("{}{}", Version::fresh(), Version::fresh());
        let path = self.path("uploads", &random);
        let upload = self
            .client
            .put_multipart(&path)
            .await
            .map_err(|e| s3_error(e, "starting the upload"))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        writer.write(&first);
        drop(first);
        let mut buffer = vec![0u8; storage_core::raw::BLOB_BUFFER_BYTES];
        let streamed: Result<()> = async {
            loop {
                let n = data.read(&mut buffer).await.map_err(|e| {
                    Error::other(format!("reading the blob to store: {e}")).with_source(e)
                })?;
                if n == 0 {
                    return Ok(());
                }
                hasher.update(&buffer[..n])?;
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| s3_error(e, "uploading a part of the blob"))?;
                writer.write(&buffer[..n]);
            }
        }
        .await;
        match streamed {
            Ok(()) => {
                writer
                    .finish()
                    .await
                    .map_err(|e| s3_error(e, "completing the upload"))?;
                Ok(path)
            }
            Err(e) => {
                // Best effort: the upload is garbage either way, and the first error says why.
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    fn backend(&self) -> &str {
        TYPE_NAME
    }

    async fn put(&self, mut data: BlobReader, options: &PutOptions) -> Result<BlobMeta> {
        self.check_open()?;
        let mut hasher = BlobHasher::new(self.limits.max_blob_bytes);
        // The first part: a blob that fits is written in one request.
        let mut first = Vec::with_capacity(PART_BYTES.min(1 << 20));
        (&mut data)
            .take(PART_BYTES as u64)
            .read_to_end(&mut first)
            .await
            .map_err(|e| Error::other(format!("reading the blob to store: {e}")).with_source(e))?;
        hasher.update(&first)?;
        let upload = if first.len() < PART_BYTES {
            None
        } else {
            Some(
                self.upload(first.split_off(0), &mut data, &mut hasher)
                    .await?,
            )
        };
        let hashed = hasher.finish();
        let meta = hashed.meta(options);
        let id = meta.id.clone();
        let drop_upload = async |upload: &Option<Path>| {
            if let Some(path) = upload {
                let _ = self.client.delete(path).await;
            }
        };
        if let Some(existing) = self.read_meta(&id).await? {
            drop_upload(&upload).await;
            return Ok(existing);
        }
        if self.limits.max_total_bytes.is_some() {
            let held = self.held().await?;
            if let Err(e) = check_total(&self.limits, held.bytes, meta.size) {
                drop_upload(&upload).await;
                return Err(e);
            }
        }
        let data_path = self.path("data", &id.hex());
        // Same bytes under the same name: a concurrent put of this blob writes what is there.
        let written = match &upload {
            None => self
                .client
                .put(&data_path, PutPayload::from(first))
                .await
                .map(drop),
            Some(path) => self.client.copy(path, &data_path).await,
        };
        drop_upload(&upload).await;
        written.map_err(|e| s3_error(e, "storing the blob"))?;
        let body = serde_json::to_vec(&MetaBody::of(&meta))
            .map_err(|e| Error::other(format!("encoding blob metadata: {e}")))?;
        let created = self
            .client
            .put_opts(
                &self.path("meta", &id.hex()),
                PutPayload::from(body),
                PutMode::Create.into(),
            )
            .await;
        match created {
            Ok(_) => Ok(meta),
            // Another put of the same bytes finished first: its metadata stands.
            Err(object_store::Error::AlreadyExists { .. }) => {
                Ok(self.read_meta(&id).await?.unwrap_or(meta))
            }
            Err(e) => Err(s3_error(e, "storing blob metadata")),
        }
    }

    async fn get(&self, id: &BlobId) -> Result<Option<(BlobMeta, BlobReader)>> {
        let Some(meta) = self.read_meta(id).await? else {
            return Ok(None);
        };
        let reader = Verified::boxed(self.read_data(id, None).await?, &meta);
        Ok(Some((meta, reader)))
    }

    async fn get_range(
        &self,
        id: &BlobId,
        start: u64,
        end: u64,
    ) -> Result<Option<(BlobMeta, BlobReader)>> {
        let Some(meta) = self.read_meta(id).await? else {
            return Ok(None);
        };
        let from = start.min(meta.size);
        let to = end.min(meta.size).max(from);
        if from == to {
            return Ok(Some((meta, Box::pin(tokio::io::empty()))));
        }
        let reader = self
            .read_data(id, Some(GetRange::Bounded(from..to)))
            .await?;
        Ok(Some((meta, reader)))
    }

    async fn head(&self, id: &BlobId) -> Result<Option<BlobMeta>> {
        self.read_meta(id).await
    }

    async fn delete(&self, id: &BlobId) -> Result<bool> {
        if self.read_meta(id).await?.is_none() {
            return Ok(false);
        }
        // Metadata first: the blob is gone once it is, whatever happens to the data after.
        for folder in ["meta", "data"] {
            match self.client.delete(&self.path(folder, &id.hex())).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(s3_error(e, "deleting the blob")),
            }
        }
        Ok(true)
    }

    async fn list(&self, after: Option<&BlobId>, limit: usize) -> Result<Vec<BlobMeta>> {
        let after = after.map(BlobId::hex);
        let names = self.list_folder("meta", after.as_deref()).await?;
        let ids: Vec<BlobId> = names
            .into_iter()
            .filter_map(|(hex, _, _)| BlobId::from_hex(&hex).ok())
            .take(limit)
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        // Eight metadata reads at a time.
        for batch in ids.chunks(8) {
            let reads: Vec<_> = batch.iter().map(|id| self.read_meta(id)).collect();
            for meta in futures::future::join_all(reads).await {
                // One deleted between the listing and the read is simply not listed.
                if let Some(meta) = meta? {
                    out.push(meta);
                }
            }
        }
        Ok(out)
    }

    async fn stats(&self) -> Result<BlobStats> {
        self.held().await
    }

    async fn cleanup(&self, older_than: SystemTime) -> Result<u64> {
        let cut = older_than
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut removed = 0;
        for (hex, _, _) in self.list_folder("meta", None).await? {
            let Ok(id) = BlobId::from_hex(&hex) else {
                continue;
            };
            if let Some(meta) = self.read_meta(&id).await?
                && meta.created_ms < cut
                && self.delete(&id).await?
            {
                removed += 1;
            }
        }
        let stale = SystemTime::now()
            .checked_sub(STALE_UPLOAD)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64);
        for (name, _, modified) in self.list_folder("uploads", None).await? {
            if modified < stale {
                match self.client.delete(&self.path("uploads", &name)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(s3_error(e, "removing a stale upload")),
                }
            }
        }
        Ok(removed)
    }

    /// A `HEAD` of an object nobody writes: not found is the answer of a server that took the
    /// credentials (a listing's refusal would not say it was the credentials).
    async fn ping(&self) -> Result<()> {
        self.check_open()?;
        match self.client.head(&self.root.clone().join("ping")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(s3_error(e, "reaching the bucket")),
        }
    }

    async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}
