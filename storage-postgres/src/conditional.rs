//! The conditional operations of [`PostgresBackend`]: a read with the value's version, and
//! writes whose condition is part of their one statement (an `UPDATE ... WHERE version`, an
//! `INSERT ... ON CONFLICT ... WHERE`), so the row's lock orders them with every other write
//! of the key. Not the plain operations (`backend.rs`).
//!
//! A write draws its version before it is sent, and its statement also accepts the row at that
//! version: sent again after a lost answer, it finds its own write and succeeds instead of
//! reporting a conflict with itself.

use crate::core::{KIND_LIST, PostgresBackend, Resend, decode, pg_error};
use serde_json::Value;
use storage_core::raw::encode_value;
use storage_core::{Condition, Error, Result, Version};

impl PostgresBackend {
    pub(crate) async fn versioned(&self, key: &str) -> Result<Option<(Value, Version)>> {
        let row = self
            .run(Resend::Allowed, |mut conn, s| async move {
                let statement = conn.cached(&s.get_versioned).await?;
                conn.query_opt(&statement, &[&self.ns, &key])
                    .await
                    .map_err(|e| pg_error(e, "reading the key"))
            })
            .await?;
        match row {
            None => Ok(None),
            Some(r) if r.get::<_, i16>(0) == KIND_LIST => Err(Error::holds_list(key)),
            Some(r) => Ok(Some((
                decode(key, r.get::<_, Option<&str>>(1).unwrap_or("null"))?,
                Version::from_raw(r.get::<_, i64>(2) as u64),
            ))),
        }
    }

    pub(crate) async fn put_if(
        &self,
        key: &str,
        value: &Value,
        condition: &Condition,
    ) -> Result<Version> {
        let text = encode_value(value)?;
        let version = Version::fresh();
        let stored = match condition {
            Condition::Any => return self.store_value(key, &text, None, version).await,
            Condition::Absent => self.put_if_absent_at(key, &text, None, version).await?,
            Condition::Version(expected) => {
                let (new, old) = (version.raw() as i64, expected.raw() as i64);
                let text = &text;
                self.run(Resend::Allowed, |mut conn, s| async move {
                    let statement = conn.cached(&s.set_if_version).await?;
                    conn.query_opt(&statement, &[&self.ns, &key, text, &new, &old])
                        .await
                        .map_err(|e| pg_error(e, "storing the value"))
                })
                .await?
                .map(|_| version)
            }
        };
        match stored {
            Some(version) => Ok(version),
            None => Err(self.refusal(key, condition).await?),
        }
    }

    pub(crate) async fn remove_if(&self, key: &str, condition: &Condition) -> Result<bool> {
        match condition {
            Condition::Any => storage_core::Store::delete(self, key).await,
            Condition::Absent => match self.current(key).await? {
                None => Ok(false),
                Some(_) => Err(self.refusal(key, condition).await?),
            },
            Condition::Version(expected) => {
                let old = expected.raw() as i64;
                // Not sent again: a resend after a lost answer would find the key gone and
                // report a conflict for a delete that happened.
                let row = self
                    .run(Resend::Never, |mut conn, s| async move {
                        let statement = conn.cached(&s.delete_if_version).await?;
                        conn.query_opt(&statement, &[&self.ns, &key, &old])
                            .await
                            .map_err(|e| pg_error(e, "deleting the key"))
                    })
                    .await?;
                match row {
                    Some(_) => Ok(true),
                    None => Err(self.refusal(key, condition).await?),
                }
            }
        }
    }

    /// The cache role's `set_if_absent` (with a TTL in ms) and `Condition::Absent`.
    pub(crate) async fn put_if_absent(
        &self,
        key: &str,
        text: &str,
        ttl: Option<i64>,
    ) -> Result<Option<Version>> {
        if ttl.is_some() && self.reclaim_due() {
            self.reclaim().await;
        }
        self.put_if_absent_at(key, text, ttl, Version::fresh())
            .await
    }

    async fn put_if_absent_at(
        &self,
        key: &str,
        text: &str,
        ttl: Option<i64>,
        version: Version,
    ) -> Result<Option<Version>> {
        let raw = version.raw() as i64;
        let row = self
            .run(Resend::Allowed, |mut conn, s| async move {
                let statement = conn.cached(&s.set_if_absent).await?;
                conn.query_opt(&statement, &[&self.ns, &key, &text, &raw, &ttl])
                    .await
                    .map_err(|e| pg_error(e, "storing the value"))
            })
            .await?;
        Ok(row.map(|_| version))
    }

    /// A live key's kind and version.
    async fn current(&self, key: &str) -> Result<Option<(i16, i64)>> {
        self.run(Resend::Allowed, |mut conn, s| async move {
            let statement = conn.cached(&s.version_of).await?;
            Ok(conn
                .query_opt(&statement, &[&self.ns, &key])
                .await
                .map_err(|e| pg_error(e, "reading the key's version"))?
                .map(|r| (r.get(0), r.get(1))))
        })
        .await
    }

    /// The error of a condition that did not hold: the key's version read after the refusal
    /// (it may be newer than the one the statement saw), or the wrong-type error of a version
    /// condition on a list.
    async fn refusal(&self, key: &str, condition: &Condition) -> Result<Error> {
        Ok(match self.current(key).await? {
            Some((KIND_LIST, _)) if matches!(condition, Condition::Version(_)) => {
                Error::holds_list(key)
            }
            Some((KIND_LIST, _)) | None => Error::conflict(key, None),
            Some((_, version)) => Error::conflict(key, Some(Version::from_raw(version as u64))),
        })
    }
}
