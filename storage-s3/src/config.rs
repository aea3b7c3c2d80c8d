//! The `s3` block and its factory: which bucket on which S3-compatible server, the credentials,
//! and the store's limits. Not the store (`store.rs`).
//!
//! `endpoint` names a server other than AWS (MinIO, Ceph, R2, a test server); its scheme decides
//! whether plain HTTP is allowed (`http://` is, for a server on a private network or loopback).
//! Without credentials the client looks where AWS clients look (instance metadata, the web
//! identity token). The common `keyPrefix` is the folder of the bucket the store keeps its
//! objects under.

use crate::{S3BlobStore, TYPE_NAME};
use serde::Deserialize;
use std::sync::Arc;
use storage_core::blob::{BlobLimits, BlobStore};
use storage_core::config::{BackendConfig, BackendSpec, BlockInput, Role, Secret, ServerIdentity};
use storage_core::{BackendFactory, Result, async_trait};

/// The fields of a `type: s3` block besides the common ones.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(description = "Blobs as objects in an S3-compatible bucket.")]
pub struct S3Block {
    /// The bucket (it must exist).
    pub bucket: String,
    /// The server's URL, for a server other than AWS: `http://127.0.0.1:9000`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The region (`us-east-1` when left out).
    #[serde(default)]
    pub region: Option<String>,
    /// The access key id.
    #[serde(default)]
    pub access_key_id: Option<Secret>,
    /// The secret access key.
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    /// A session token, with temporary credentials.
    #[serde(default)]
    pub session_token: Option<Secret>,
    /// Address the bucket as `https://<bucket>.<endpoint>` rather than `<endpoint>/<bucket>`
    /// (default false: path style, which S3-compatible servers take).
    #[serde(default)]
    pub virtual_hosted_style: bool,
    /// The largest blob accepted, in bytes.
    #[serde(default)]
    pub max_blob_bytes: Option<u64>,
    /// The most bytes the store holds in all.
    #[serde(default)]
    pub max_total_bytes: Option<u64>,
}

/// The settings of an `s3` blob store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// The server's URL; `None` for AWS.
    pub endpoint: Option<String>,
    /// The region.
    pub region: String,
    /// The access key id.
    pub access_key_id: Option<Secret>,
    /// The secret access key.
    pub secret_access_key: Option<Secret>,
    /// A session token.
    pub session_token: Option<Secret>,
    /// Virtual-hosted-style addressing.
    pub virtual_hosted_style: bool,
    /// The folder of the bucket the objects go under (the common `keyPrefix`, set when the
    /// store is opened from a configuration).
    pub prefix: String,
    /// Its limits.
    pub limits: BlobLimits,
}

impl S3Config {
    /// A bucket on a server at `endpoint`, with these credentials and no limits.
    pub fn new(endpoint: &str, bucket: &str, access_key_id: &str, secret: &str) -> S3Config {
        S3Config {
            bucket: bucket.to_string(),
            endpoint: Some(endpoint.to_string()),
            region: "us-east-1".to_string(),
            access_key_id: Some(Secret::new(access_key_id)),
            secret_access_key: Some(Secret::new(secret)),
            session_token: None,
            virtual_hosted_style: false,
            prefix: String::new(),
            limits: BlobLimits::default(),
        }
    }

    /// Whether the endpoint is plain HTTP (allowed only when it says so).
    pub fn plain_http(&self) -> bool {
        self.endpoint
            .as_deref()
            .and_then(|e| url::Url::parse(e).ok())
            .is_some_and(|u| u.scheme() == "http")
    }
}

impl BackendConfig for S3Config {
    fn type_name(&self) -> &str {
        TYPE_NAME
    }

    fn describe(&self) -> String {
        let server = self.endpoint.as_deref().unwrap_or("aws");
        format!("{server} bucket {}", self.bucket)
    }

    /// The server and the bucket: one bucket reached by two configs is one store.
    fn identity(&self) -> Option<ServerIdentity> {
        let server = match &self.endpoint {
            Some(e) => url::Url::parse(e)
                .ok()
                .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
                .unwrap_or_else(|| e.clone()),
            None => format!("aws:{}", self.region),
        };
        Some(ServerIdentity {
            scheme: TYPE_NAME.to_string(),
            endpoints: [server].into(),
            scope: self.bucket.clone(),
            prefixes_nest: false,
        })
    }
}

/// Parses a block's own fields.
pub fn parse(block: &mut BlockInput<'_>) -> Result<S3Config> {
    let b: S3Block = block.typed()?;
    if b.bucket.is_empty() {
        return Err(block.error("bucket", "must not be empty"));
    }
    if let Some(endpoint) = &b.endpoint {
        match url::Url::parse(endpoint) {
            // Credentials in the URL would be printed wherever the endpoint is (health, errors).
            Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                return Err(block.error(
                    "endpoint",
                    "must not hold credentials: give accessKeyId and secretAccessKey",
                ));
            }
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            Ok(_) => {
                return Err(
                    block.error("endpoint", "must be an http:// or https:// URL with a host")
                );
            }
            Err(e) => return Err(block.error("endpoint", format!("not a URL: {e}"))),
        }
    }
    if b.access_key_id.is_some() != b.secret_access_key.is_some() {
        return Err(block.error(
            if b.access_key_id.is_some() {
                "secretAccessKey"
            } else {
                "accessKeyId"
            },
            "accessKeyId and secretAccessKey go together",
        ));
    }
    let limits = BlobLimits::of_block(block, b.max_blob_bytes, b.max_total_bytes)?;
    Ok(S3Config {
        bucket: b.bucket,
        endpoint: b.endpoint,
        region: b.region.unwrap_or_else(|| "us-east-1".to_string()),
        access_key_id: b.access_key_id,
        secret_access_key: b.secret_access_key,
        session_token: b.session_token,
        virtual_hosted_style: b.virtual_hosted_style,
        prefix: String::new(),
        limits,
    })
}

/// The factory the registry holds for `s3`.
#[derive(Debug, Default, Clone, Copy)]
pub struct S3Factory;

#[async_trait]
impl BackendFactory for S3Factory {
    fn type_names(&self) -> Vec<String> {
        vec![TYPE_NAME.to_string()]
    }

    fn roles(&self) -> Vec<Role> {
        vec![Role::Blob]
    }

    fn parse(&self, block: &mut BlockInput<'_>) -> Result<Arc<dyn BackendConfig>> {
        Ok(Arc::new(parse(block)?))
    }

    fn schema(&self) -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(S3Block)).unwrap_or_default()
    }

    async fn open_blob(&self, spec: &BackendSpec) -> Result<Arc<dyn BlobStore>> {
        let mut config = spec.settings::<S3Config>()?.clone();
        config.prefix = spec.common.key_prefix.clone();
        Ok(Arc::new(S3BlobStore::open(config).await?))
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
