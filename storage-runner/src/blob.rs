//! The blob role's run: the kit's blob cases against the blob store a block describes, opened
//! through the registry for each case (the kit empties it first). A case that needs limits
//! gets the same block with `maxBlobBytes` and `maxTotalBytes` added, so `--block` must be a
//! YAML flow map (`{type: local, path: …}`), as the matrix gives it.

use std::path::Path;
use std::sync::Arc;
use storage_core::blob::{BlobLimits, BlobStore};
use storage_core::config::{BackendSpec, Role};
use storage_core::{Error, Registry, Result};
use storage_testkit::Report;

/// The YAML document of a blob block: the key-value roles plain memory.
pub fn document(block: &str) -> String {
    format!("blob: {block}\ncache: {{ type: in-memory }}\ndatabase: {{ type: in-memory }}\n")
}

/// `block` with the limits added to its flow map.
fn with_limits(block: &str, limits: BlobLimits) -> Result<String> {
    let trimmed = block.trim_end();
    let Some(open) = trimmed.strip_suffix('}') else {
        return Err(Error::config(
            "--block: a case with limits needs the blob block as a YAML flow map `{...}`",
        ));
    };
    let mut fields = Vec::new();
    if let Some(n) = limits.max_blob_bytes {
        fields.push(format!("maxBlobBytes: {n}"));
    }
    if let Some(n) = limits.max_total_bytes {
        fields.push(format!("maxTotalBytes: {n}"));
    }
    Ok(format!("{open}, {}}}", fields.join(", ")))
}

/// Opens the blob store of `block` (or `spec` when no limits are asked).
async fn open(
    registry: &Registry,
    spec: &BackendSpec,
    block: Option<&str>,
    limits: BlobLimits,
) -> Result<Arc<dyn BlobStore>> {
    if limits == BlobLimits::default() {
        return registry.open_blob(spec).await;
    }
    let Some(block) = block else {
        return Err(Error::config(
            "a case with limits needs the blob block given as --block",
        ));
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let yaml = document(&with_limits(block, limits)?);
    let config =
        storage_manager::config_file::from_yaml_str(&yaml, Path::new(&cwd))?.resolve(registry)?;
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
    block: Option<String>,
    filter: Option<&str>,
) -> Report {
    storage_testkit::blob::run_blob_suite(
        Arc::new(move |limits: BlobLimits| {
            let (registry, spec, block) = (registry.clone(), spec.clone(), block.clone());
            async move { open(&registry, &spec, block.as_deref(), limits).await }
        }),
        filter,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::with_limits;
    use storage_core::blob::BlobLimits;

    #[test]
    fn limits_join_a_flow_map() {
        let limits = BlobLimits {
            max_blob_bytes: Some(1),
            max_total_bytes: Some(2),
        };
        assert_eq!(
            with_limits("{type: local, path: x} ", limits).unwrap(),
            "{type: local, path: x, maxBlobBytes: 1, maxTotalBytes: 2}"
        );
        assert!(with_limits("type: local", limits).is_err());
    }
}
