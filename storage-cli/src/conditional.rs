//! `get --version` and `set --if-version / --if-absent`: the CLI's conditional writes. A
//! refused condition exits 3 and says the key's current version on stderr; the other commands
//! are in `main.rs`.

use crate::{Failure, warn_if_per_process};
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;
use storage_core::{Condition, Error, ErrorKind, Version};
use storage_manager::StorageManager;

/// The exit code of a refused condition.
const CONFLICT: u8 = 3;

/// The condition that `--if-version` or `--if-absent` names, if any.
pub(crate) fn condition(
    if_version: Option<&str>,
    if_absent: bool,
) -> Result<Option<Condition>, Failure> {
    if if_absent {
        return Ok(Some(Condition::Absent));
    }
    let Some(text) = if_version else {
        return Ok(None);
    };
    let version: Version = text.parse().map_err(|e: Error| {
        Failure(Error::invalid_input(format!(
            "--if-version: {}",
            e.message()
        )))
    })?;
    Ok(Some(Condition::Version(version)))
}

/// `set` under a condition: prints the new version (databases), or exits 3.
pub(crate) async fn set(
    m: &StorageManager,
    key: &str,
    value: &Value,
    ttl: Option<Duration>,
    cache: bool,
    condition: Condition,
) -> Result<ExitCode, Failure> {
    if cache {
        if condition != Condition::Absent {
            return Err(Failure(Error::invalid_input(
                "--if-version: caches keep no versions; use --if-absent, or --role database",
            )));
        }
        let (cache, status) = m.connect_cache().await?;
        warn_if_per_process(&status);
        if cache.set_if_absent(key, value, ttl).await? {
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!("storage: key {key:?} already holds something: nothing was written");
        return Ok(ExitCode::from(CONFLICT));
    }
    if ttl.is_some() {
        return Err(Failure(Error::invalid_input(
            "--ttl: databases have no TTL; use --role cache",
        )));
    }
    let (db, status) = m.connect_database().await?;
    warn_if_per_process(&status);
    match db.set_if(key, value, &condition).await {
        Ok(version) => {
            println!("{version}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.kind() == ErrorKind::Conflict => Ok(refused(&e)),
        Err(e) => Err(Failure(e)),
    }
}

/// Says why a condition was refused and the key's current version, one line each.
fn refused(e: &Error) -> ExitCode {
    eprintln!("error: {e}");
    let current = e
        .as_conflict()
        .and_then(|c| c.current)
        .map_or_else(|| "none".to_string(), |v| v.to_string());
    eprintln!("current-version: {current}");
    ExitCode::from(CONFLICT)
}

/// `get --version`: one JSON object with the value and its version; exit 1 when missing.
pub(crate) async fn get(m: &StorageManager, key: &str, cache: bool) -> Result<ExitCode, Failure> {
    if cache {
        return Err(Failure(Error::invalid_input(
            "--version: caches keep no versions; use --role database",
        )));
    }
    match m.connect_database().await?.0.get_versioned(key).await? {
        Some((value, version)) => {
            println!(
                "{}",
                serde_json::json!({ "value": value, "version": version })
            );
            Ok(ExitCode::SUCCESS)
        }
        None => Ok(ExitCode::from(1)),
    }
}
