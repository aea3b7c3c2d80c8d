//! `storage blob …`: files in the blob role — put one (printing its reference), get one to a
//! file or standard output (checked against its id as it streams), list, remove, remove old
//! ones, count. Not the key-value commands (`main.rs`).

use crate::{Failure, key_line::key_line, warn_if_per_process};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};
use storage_core::Error;
use storage_core::blob::{BlobId, PutOptions};
use storage_manager::StorageManager;

/// What `storage blob` does.
#[derive(Subcommand)]
pub(crate) enum BlobCommand {
    /// Stores a file; prints its reference (`blob:sha256:…`). The same bytes are stored once.
    Put {
        /// The file to store.
        file: PathBuf,
        /// Its MIME type; sniffed from its first bytes when left out.
        #[arg(long = "type", value_name = "MIME")]
        mime: Option<String>,
    },
    /// Writes a blob's bytes to a file, or to standard output; exits 1 when there is no such
    /// blob, 2 when the stored bytes do not match the reference.
    Get {
        /// The reference (`blob:sha256:<hex>`, or the hex alone).
        reference: String,
        /// The file to write (standard output when left out).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Lists blobs, one per line: reference, size, type, name.
    Ls,
    /// Removes a blob; prints whether it existed.
    Rm {
        /// The reference.
        reference: String,
    },
    /// Removes the blobs first stored longer ago than a duration (`30d`, `12h`, `90m`, `45s`).
    Gc {
        /// How old a blob must be to go.
        #[arg(long, value_name = "DURATION")]
        older_than: String,
    },
    /// Prints how many blobs and bytes the store holds.
    Stats,
}

fn reference(text: &str) -> Result<BlobId, Failure> {
    text.parse()
        .map_err(|e: Error| Failure(Error::invalid_input(format!("reference: {}", e.message()))))
}

/// `30d`, `12h`, `90m`, `45s` as a duration.
fn duration(text: &str) -> Result<Duration, Failure> {
    let bad = || {
        Failure(Error::invalid_input(format!(
            "--older-than: {:?} is not a duration (a number and s, m, h or d: 30d)",
            storage_core::redact::excerpt(text, 40)
        )))
    };
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

/// Runs one blob command against the configuration's blob role.
pub(crate) async fn run(m: &StorageManager, command: &BlobCommand) -> Result<ExitCode, Failure> {
    let (store, status) = m.connect_blob().await?;
    match command {
        BlobCommand::Put { file, mime } => {
            warn_if_per_process(&status);
            let opened = tokio::fs::File::open(file)
                .await
                .map_err(|e| Failure(Error::invalid_input(format!("{}: {e}", file.display()))))?;
            let options = PutOptions {
                mime: mime.clone(),
                name: file.file_name().map(|n| n.to_string_lossy().into_owned()),
                source: Some("cli".to_string()),
            };
            let meta = store.put(Box::pin(opened), &options).await?;
            println!("{}", meta.id);
        }
        BlobCommand::Get {
            reference: r,
            output,
        } => {
            let Some((_, mut reader)) = store.get(&reference(r)?).await? else {
                return Ok(ExitCode::from(1));
            };
            let copied = match output {
                Some(path) => {
                    let mut file = tokio::fs::File::create(path).await.map_err(|e| {
                        Failure(Error::invalid_input(format!("{}: {e}", path.display())))
                    })?;
                    let copied = tokio::io::copy(&mut reader, &mut file).await;
                    if copied.is_err() {
                        // Never leave bytes that did not match the reference behind.
                        let _ = tokio::fs::remove_file(path).await;
                    }
                    copied
                }
                None => tokio::io::copy(&mut reader, &mut tokio::io::stdout()).await,
            };
            copied.map_err(|e| Failure(Error::other(format!("reading {r}: {e}"))))?;
        }
        BlobCommand::Ls => {
            let mut after = None;
            loop {
                let page = store.list(after.as_ref(), 1000).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id.clone());
                for meta in &page {
                    let name = meta.name.as_deref().map(key_line).unwrap_or_default();
                    println!("{}\t{}\t{}\t{name}", meta.id, meta.size, meta.mime);
                }
            }
        }
        BlobCommand::Rm { reference: r } => {
            println!("{}", store.delete(&reference(r)?).await?);
        }
        BlobCommand::Gc { older_than } => {
            let cut = SystemTime::now()
                .checked_sub(duration(older_than)?)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            println!("removed {} blobs", store.cleanup(cut).await?);
        }
        BlobCommand::Stats => {
            let stats = store.stats().await?;
            println!("{} blobs, {} bytes", stats.count, stats.bytes);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(duration("30d").ok(), Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(duration("45s").ok(), Some(Duration::from_secs(45)));
        assert_eq!(duration("0s").ok(), Some(Duration::ZERO));
        for bad in ["", "d", "10", "1w", "-1d", "99999999999999999999d"] {
            assert!(duration(bad).is_err(), "{bad:?}");
        }
    }
}
