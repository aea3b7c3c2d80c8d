//! What every blob backend does with bytes in flight: hash a stream while copying it (with the
//! size limit checked as it goes), build a blob's metadata from what was hashed, and check a
//! stream being read against its id. For backend authors (`raw`); not the contract
//! (`blob.rs`).

use crate::blob::{BlobId, BlobMeta, BlobReader, PutOptions, sniff_mime};
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// The copy buffer: what a streamed blob holds in memory at once.
pub const BLOB_BUFFER_BYTES: usize = 64 * 1024;

/// How many first bytes are kept for sniffing the MIME type.
const SNIFF_BYTES: usize = 512;

/// What a stream was: its id, its size and its first bytes.
#[derive(Debug, Clone)]
pub struct Hashed {
    /// The SHA-256 of every byte.
    pub id: BlobId,
    /// How many bytes there were.
    pub size: u64,
    /// The first bytes (up to 512), for sniffing.
    pub head: Vec<u8>,
}

impl Hashed {
    /// The metadata of a blob first stored now.
    pub fn meta(&self, options: &PutOptions) -> BlobMeta {
        let created_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        BlobMeta {
            id: self.id.clone(),
            size: self.size,
            mime: options
                .mime
                .clone()
                .unwrap_or_else(|| sniff_mime(&self.head).to_string()),
            name: options.name.clone(),
            source: options.source.clone(),
            created_ms,
        }
    }
}

/// The error of a blob past `maxBlobBytes`: nothing is stored.
pub fn too_large(limit: u64) -> Error {
    Error::invalid_input(format!(
        "the blob is larger than maxBlobBytes ({limit} bytes); nothing was stored"
    ))
}

/// Hashes a blob's bytes as they arrive in pieces, with the size limit checked as it goes:
/// for a backend that stores a stream in chunks of its own (rows) rather than through
/// [`copy_hashed`].
pub struct BlobHasher {
    hasher: Sha256,
    size: u64,
    head: Vec<u8>,
    max_bytes: Option<u64>,
}

impl BlobHasher {
    /// A hasher that refuses more than `max_bytes` in all.
    pub fn new(max_bytes: Option<u64>) -> BlobHasher {
        BlobHasher {
            hasher: Sha256::new(),
            size: 0,
            head: Vec::new(),
            max_bytes,
        }
    }

    /// Takes the next piece; [`too_large`] once the limit is passed.
    pub fn update(&mut self, piece: &[u8]) -> Result<()> {
        self.size += piece.len() as u64;
        if let Some(limit) = self.max_bytes
            && self.size > limit
        {
            return Err(too_large(limit));
        }
        if self.head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - self.head.len()).min(piece.len());
            self.head.extend_from_slice(&piece[..take]);
        }
        self.hasher.update(piece);
        Ok(())
    }

    /// What the pieces were.
    pub fn finish(self) -> Hashed {
        Hashed {
            id: BlobId::from_digest(self.hasher.finalize().into()),
            size: self.size,
            head: self.head,
        }
    }
}

/// Checks `maxTotalBytes`: `Ok` when a store holding `held` bytes may take `adding` more,
/// else the error (nothing stored). The one rule every blob backend applies.
pub fn check_total(limits: &crate::blob::BlobLimits, held: u64, adding: u64) -> Result<()> {
    match limits.max_total_bytes {
        Some(limit) if held.saturating_add(adding) > limit => Err(Error::invalid_input(format!(
            "storing {adding} more bytes would pass maxTotalBytes ({limit}; {held} held); nothing was stored"
        ))),
        _ => Ok(()),
    }
}

/// Copies `src` into `dst` through one buffer, hashing as it goes, and stops with
/// [`too_large`] as soon as more than `max_bytes` arrive. Flushes `dst` at the end.
pub async fn copy_hashed<W: AsyncWrite + Unpin + ?Sized>(
    src: &mut BlobReader,
    dst: &mut W,
    max_bytes: Option<u64>,
) -> Result<Hashed> {
    let mut hasher = BlobHasher::new(max_bytes);
    let mut buffer = vec![0u8; BLOB_BUFFER_BYTES];
    loop {
        let n = src
            .read(&mut buffer)
            .await
            .map_err(|e| Error::other(format!("reading the blob to store: {e}")).with_source(e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n])?;
        dst.write_all(&buffer[..n])
            .await
            .map_err(|e| Error::other(format!("writing the blob: {e}")).with_source(e))?;
    }
    dst.flush()
        .await
        .map_err(|e| Error::other(format!("writing the blob: {e}")).with_source(e))?;
    Ok(hasher.finish())
}

/// A reader of a whole blob that hashes what passes and, at the end, fails with
/// `InvalidData` unless the bytes match the id and the size: a corrupt or truncated store is
/// an error, never wrong bytes taken for right.
pub struct Verified {
    inner: BlobReader,
    hasher: Option<Sha256>,
    expected: BlobId,
    size: u64,
    seen: u64,
}

impl Verified {
    /// Checks `inner` against `meta`.
    pub fn new(inner: BlobReader, meta: &BlobMeta) -> Verified {
        Verified {
            inner,
            hasher: Some(Sha256::new()),
            expected: meta.id.clone(),
            size: meta.size,
            seen: 0,
        }
    }

    /// Boxed, as [`BlobReader`].
    pub fn boxed(inner: BlobReader, meta: &BlobMeta) -> BlobReader {
        Box::pin(Verified::new(inner, meta))
    }
}

impl AsyncRead for Verified {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match this.inner.as_mut().poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let new = &buf.filled()[before..];
        this.seen += new.len() as u64;
        if !new.is_empty() {
            if let Some(h) = this.hasher.as_mut() {
                h.update(new);
            }
            if this.seen > this.size {
                // Nothing of a read that fails is handed on.
                buf.set_filled(before);
                return Poll::Ready(Err(mismatch(&this.expected, "is longer than its size")));
            }
            return Poll::Ready(Ok(()));
        }
        // The end: check once.
        if let Some(h) = this.hasher.take() {
            if this.seen != this.size {
                return Poll::Ready(Err(mismatch(&this.expected, "is shorter than its size")));
            }
            if BlobId::from_digest(h.finalize().into()) != this.expected {
                return Poll::Ready(Err(mismatch(&this.expected, "does not match its id")));
            }
        }
        Poll::Ready(Ok(()))
    }
}

fn mismatch(id: &BlobId, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{id}: the stored content {what}; the store is corrupt"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    async fn hashed(bytes: &[u8], max: Option<u64>) -> Result<(Hashed, Vec<u8>)> {
        let mut src: BlobReader = Box::pin(std::io::Cursor::new(bytes.to_vec()));
        let mut out = Vec::new();
        let h = copy_hashed(&mut src, &mut out, max).await?;
        Ok((h, out))
    }

    #[test]
    fn copies_hash_and_limit() {
        rt().block_on(async {
            let (h, out) = hashed(b"abc", None).await.unwrap();
            assert_eq!(out, b"abc");
            assert_eq!(
                h.id.hex(),
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
            );
            assert_eq!((h.size, h.head.as_slice()), (3, &b"abc"[..]));
            assert!(hashed(b"abc", Some(3)).await.is_ok());
            let e = hashed(b"abcd", Some(3)).await.unwrap_err();
            assert!(e.message().contains("maxBlobBytes (3 bytes)"), "{e}");
            let big = vec![7u8; 3 * BLOB_BUFFER_BYTES + 5];
            let (h, out) = hashed(&big, None).await.unwrap();
            assert_eq!(
                (h.size as usize, out.len(), h.head.len()),
                (big.len(), big.len(), 512)
            );
            let meta = h.meta(&PutOptions::default());
            assert_eq!(meta.mime, "application/octet-stream");
        });
    }

    #[test]
    fn reads_are_checked_against_the_id() {
        rt().block_on(async {
            let (h, _) = hashed(b"hello world", None).await.unwrap();
            let meta = h.meta(&PutOptions::default());
            assert_eq!(meta.mime, "text/plain");
            let read = |bytes: &[u8]| {
                let mut r = Verified::boxed(Box::pin(std::io::Cursor::new(bytes.to_vec())), &meta);
                async move {
                    let mut out = Vec::new();
                    r.read_to_end(&mut out).await.map(|_| out)
                }
            };
            assert_eq!(read(b"hello world").await.unwrap(), b"hello world");
            for (bad, says) in [
                (&b"hello worle"[..], "does not match"),
                (b"hello", "shorter"),
                (b"hello world!", "longer"),
            ] {
                let e = read(bad).await.unwrap_err();
                assert_eq!(e.kind(), io::ErrorKind::InvalidData);
                assert!(e.to_string().contains(says), "{e}");
            }
        });
    }
}
