//! The blob role's run: the kit's blob cases against the blob store a block (or a config
//! file's `blob:` block) describes, opened through the registry for each case (the kit empties
//! it first). A case that needs limits gets the same block with `maxBlobBytes` and
//! `maxTotalBytes` set in the parsed document.

use std::sync::Arc;
use storage_core::blob::{BlobLimits, BlobStore};
use storage_core::config::{BackendSpec, ConfigSource, Role};
use storage_core::{Error, Registry, Result};
use storage_testkit::Report;

/// The YAML document of a blob block: the key-value roles plain memory.
pub fn document(block: &str) -> String {
    format!("blob: {block}\ncache: {{ type: in-memory }}\ndatabase: {{ type: in-memory }}\n")
}

/// Opens the blob store of `spec`, or, for a case that asks for limits, of the same block with
/// `maxBlobBytes` and `maxTotalBytes` set.
async fn open(
    registry: &Registry,
    spec: &BackendSpec,
    source: &ConfigSource,
    limits: BlobLimits,
) -> Result<Arc<dyn BlobStore>> {
    if limits == BlobLimits::default() {
        return registry.open_blob(spec).await;
    }
    let mut fields = serde_json::Map::new();
    if let Some(n) = limits.max_blob_bytes {
        fields.insert("maxBlobBytes".into(), n.into());
    }
    if let Some(n) = limits.max_total_bytes {
        fields.insert("maxTotalBytes".into(), n.into());
    }
    let config = source.with_fields(Role::Blob, fields)?.resolve(registry)?;
    let spec = config
        .role(Role::Blob)
        .map(|r| r.primary.clone())
        .ok_or_else(|| Error::config("the block resolved to no blob role"))?;
    registry.open_blob(&spec).await
}

/// Runs the kit's blob cases.
pub async fn run(
    registry: Arc<Registry>,
    spec: BackendSpec,
    source: ConfigSource,
    filter: Option<&str>,
) -> Report {
    storage_testkit::blob::run_blob_suite(
        Arc::new(move |limits: BlobLimits| {
            let (registry, spec, source) = (registry.clone(), spec.clone(), source.clone());
            async move { open(&registry, &spec, &source, limits).await }
        }),
        filter,
    )
    .await
}
