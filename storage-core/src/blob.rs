//! The blob role's contract: content-addressed files (images a user attaches, files a tool
//! produces) beside the cache and the database. What a blob's id and metadata are and what
//! each operation promises; not how a backend stores bytes (each backend crate), nor the
//! hashing reader backends share (`blob_io.rs`).

use crate::error::{Error, Result};
use async_trait::async_trait;
use std::fmt;
use std::pin::Pin;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A stream of a blob's bytes, read or written.
pub type BlobReader = Pin<Box<dyn tokio::io::AsyncRead + Send>>;

/// A blob's id: the SHA-256 of its bytes, so that the same bytes are one blob. Its text form,
/// which chat messages refer to, is `blob:sha256:<64 lowercase hex digits>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId([u8; 32]);

impl BlobId {
    /// The id of a digest.
    pub fn from_digest(digest: [u8; 32]) -> BlobId {
        BlobId(digest)
    }

    /// The SHA-256 digest.
    pub fn digest(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest as 64 lowercase hex digits (what backends name files and rows by).
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 64 hex digits.
    pub fn from_hex(hex: &str) -> Result<BlobId> {
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid_input(format!(
                "{:?} is not a blob id (`blob:sha256:` and 64 hex digits)",
                crate::redact::excerpt(hex, 80)
            )));
        }
        let mut digest = [0u8; 32];
        for (i, byte) in digest.iter_mut().enumerate() {
            // Both digits were checked above.
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or_default();
        }
        Ok(BlobId(digest))
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blob:sha256:{}", self.hex())
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({self})")
    }
}

impl FromStr for BlobId {
    type Err = Error;

    /// `blob:sha256:<hex>` (the reference form) or the bare 64 hex digits.
    fn from_str(text: &str) -> Result<BlobId> {
        BlobId::from_hex(text.strip_prefix("blob:sha256:").unwrap_or(text))
    }
}

/// What is known of a blob besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    /// The id (the SHA-256 of the bytes).
    pub id: BlobId,
    /// Its length in bytes.
    pub size: u64,
    /// The MIME type: given when stored, or sniffed from the first bytes.
    pub mime: String,
    /// The name the file had where it came from, if given.
    pub name: Option<String>,
    /// Who stored it (a tool's name, `user`), if given.
    pub source: Option<String>,
    /// When it was first stored, in milliseconds since the Unix epoch.
    pub created_ms: u64,
}

impl BlobMeta {
    /// When it was first stored.
    pub fn created(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.created_ms)
    }
}

/// What a caller says about a blob it stores.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// The MIME type; sniffed from the first bytes when `None`.
    pub mime: Option<String>,
    /// The original file name.
    pub name: Option<String>,
    /// Who stores it.
    pub source: Option<String>,
}

/// How much a blob store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlobStats {
    /// Blobs.
    pub count: u64,
    /// Their bytes, each blob counted once.
    pub bytes: u64,
}

/// The limits of a blob store (`maxBlobBytes`, `maxTotalBytes`); `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlobLimits {
    /// The largest blob accepted.
    pub max_blob_bytes: Option<u64>,
    /// The most bytes the store holds in all.
    pub max_total_bytes: Option<u64>,
}

impl BlobLimits {
    /// The limits a block gives (`maxBlobBytes`, `maxTotalBytes`), refused on a block that
    /// serves another role: a backend serving several roles takes them only for blobs.
    pub fn of_block(
        block: &crate::config::BlockInput<'_>,
        max_blob_bytes: Option<u64>,
        max_total_bytes: Option<u64>,
    ) -> Result<BlobLimits> {
        let limits = BlobLimits {
            max_blob_bytes,
            max_total_bytes,
        };
        if limits != BlobLimits::default()
            && block.role().is_some_and(|r| r != crate::config::Role::Blob)
        {
            let field = if max_blob_bytes.is_some() {
                "maxBlobBytes"
            } else {
                "maxTotalBytes"
            };
            return Err(block.error(
                field,
                "blob limits are for the blob role; this block serves another",
            ));
        }
        Ok(limits)
    }
}

/// The blob role: content-addressed, immutable files, streamed both ways.
///
/// A blob is visible only once all of it is stored (a crash mid-`put` leaves nothing readable);
/// storing the same bytes again stores nothing new and returns the first blob's metadata; every
/// whole read is checked against the id, and a mismatch is an error at the end of the stream,
/// never wrong bytes taken for right.
#[async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// The backend's type name.
    fn backend(&self) -> &str;

    /// Stores the bytes `data` yields, streaming: memory stays bounded by a buffer whatever
    /// the size. Refuses a blob past `maxBlobBytes`, or one that would take the store past
    /// `maxTotalBytes`, with nothing stored.
    async fn put(&self, data: BlobReader, options: &PutOptions) -> Result<BlobMeta>;

    /// [`BlobStore::put`] of bytes in memory.
    async fn put_bytes(&self, data: &[u8], options: &PutOptions) -> Result<BlobMeta> {
        let owned = std::io::Cursor::new(data.to_vec());
        self.put(Box::pin(owned), options).await
    }

    /// The blob's metadata and a stream of its bytes, checked against its id as it is read;
    /// `None` when there is no such blob.
    async fn get(&self, id: &BlobId) -> Result<Option<(BlobMeta, BlobReader)>>;

    /// Bytes `start..end` of the blob (`end` past its size reads to the end; an empty range
    /// reads nothing). A part cannot be checked against the id: a backend checks what it can
    /// (the size, its own checksum).
    async fn get_range(
        &self,
        id: &BlobId,
        start: u64,
        end: u64,
    ) -> Result<Option<(BlobMeta, BlobReader)>>;

    /// The blob's metadata, or `None`.
    async fn head(&self, id: &BlobId) -> Result<Option<BlobMeta>>;

    /// Whether the blob is stored.
    async fn exists(&self, id: &BlobId) -> Result<bool> {
        Ok(self.head(id).await?.is_some())
    }

    /// Removes the blob; true when it was there.
    async fn delete(&self, id: &BlobId) -> Result<bool>;

    /// Up to `limit` blobs in id order, after `after` (a page: pass the last id of the previous
    /// one), with their metadata.
    async fn list(&self, after: Option<&BlobId>, limit: usize) -> Result<Vec<BlobMeta>>;

    /// How many blobs and bytes the store holds.
    async fn stats(&self) -> Result<BlobStats>;

    /// Removes every blob stored before `older_than`; returns how many went.
    async fn cleanup(&self, older_than: SystemTime) -> Result<u64>;

    /// A cheap check that the store answers, writing nothing.
    async fn ping(&self) -> Result<()>;

    /// Releases what the store holds open. Later operations fail. Calling it twice is fine.
    async fn close(&self) -> Result<()>;
}

/// The MIME type of bytes that start with `head`, from their signature; `text/plain` (or
/// `application/json`) for UTF-8 text without control characters; `application/octet-stream`
/// otherwise.
pub fn sniff_mime(head: &[u8]) -> &'static str {
    const SIGNATURES: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"%PDF-", "application/pdf"),
        (b"PK\x03\x04", "application/zip"),
        (b"\x1f\x8b", "application/gzip"),
    ];
    if let Some((_, mime)) = SIGNATURES.iter().find(|(sig, _)| head.starts_with(sig)) {
        return mime;
    }
    if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return "image/webp";
    }
    let text = match std::str::from_utf8(head) {
        Ok(t) => Some(t),
        // A sniffing window may cut a character in two.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok(),
        Err(_) => None,
    };
    match text {
        Some(t)
            if !t.is_empty()
                && !t
                    .chars()
                    .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c')) =>
        {
            let trimmed = t.trim_start();
            if trimmed.starts_with('{') || trimmed.starts_with('[') {
                "application/json"
            } else {
                "text/plain"
            }
        }
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::{BlobId, sniff_mime};

    #[test]
    fn ids_read_back_in_both_forms_and_refuse_other_text() {
        let id = BlobId::from_digest([0xab; 32]);
        let text = id.to_string();
        assert_eq!(text, format!("blob:sha256:{}", "ab".repeat(32)));
        assert_eq!(text.parse::<BlobId>().unwrap(), id);
        assert_eq!(id.hex().parse::<BlobId>().unwrap(), id);
        assert_eq!(id.hex().to_uppercase().parse::<BlobId>().unwrap(), id);
        for bad in [
            "",
            "blob:sha256:",
            "blob:sha256:ab",
            &"g".repeat(64),
            &"a".repeat(65),
        ] {
            assert!(bad.parse::<BlobId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mime_types_from_signatures() {
        assert_eq!(sniff_mime(b"\x89PNG\r\n\x1a\nrest"), "image/png");
        assert_eq!(sniff_mime(b"\xff\xd8\xff\xe0"), "image/jpeg");
        assert_eq!(sniff_mime(b"RIFF\0\0\0\0WEBPVP8"), "image/webp");
        assert_eq!(sniff_mime(b"%PDF-1.7"), "application/pdf");
        assert_eq!(sniff_mime(b"  {\"a\": 1}"), "application/json");
        assert_eq!(sniff_mime("héllo".as_bytes()), "text/plain");
        assert_eq!(sniff_mime(&"é".as_bytes()[..1]), "application/octet-stream");
        assert_eq!(
            sniff_mime(b"ab\xc3"),
            "text/plain",
            "a character cut by the window"
        );
        assert_eq!(sniff_mime(b"\0\x01\x02"), "application/octet-stream");
        assert_eq!(sniff_mime(b""), "application/octet-stream");
    }
}
