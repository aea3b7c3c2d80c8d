//! The blob role on S3-compatible object storage (`s3`): AWS S3, or any server speaking its
//! protocol (MinIO, Ceph, Cloudflare R2, a test server), through Apache Arrow's
//! `object_store` client.
//!
//! Each blob is two objects, its bytes and its metadata, named by the SHA-256 of the bytes; the
//! metadata object is written last and only if absent, so a blob is visible once complete and
//! the first put of some bytes names them. Large blobs stream in as multipart uploads while they
//! are hashed, with memory bounded by two parts. Every whole read is checked against the id.
//! Not a database: `list`, `stats` and `cleanup` list the bucket's folder (one request per
//! thousand objects, and `list` reads each listed blob's metadata object).
//!
//! ```no_run
//! # async fn demo() -> storage_core::Result<()> {
//! use storage_core::blob::{BlobStore, PutOptions};
//! let config = storage_s3::S3Config::new("http://127.0.0.1:9000", "attachments", "key", "secret");
//! let store = storage_s3::S3BlobStore::open(config).await?;
//! let meta = store.put_bytes(b"hello", &PutOptions::default()).await?;
//! println!("{}", meta.id); // blob:sha256:2cf24dba…
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod config;
mod error;
mod store;

pub use config::{S3Block, S3Config, S3Factory, parse};
pub use store::{PART_BYTES, S3BlobStore};

/// The type name this crate registers.
pub const TYPE_NAME: &str = "s3";
