//! The `local` block and its factory: the blob role in a directory (by default
//! `.storage/blobs` beside the config file), with the store's limits. Not the store
//! (`lib.rs`).

use crate::{LocalBlobStore, TYPE_NAME};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use storage_core::blob::{BlobLimits, BlobStore};
use storage_core::config::{BackendConfig, BackendSpec, BlockInput, Role, ServerIdentity};
use storage_core::{BackendFactory, Result, async_trait};

/// The fields of a `type: local` block besides the common ones.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(description = "Blobs as files in a local directory.")]
pub struct LocalBlock {
    /// The directory, relative to the config file; `.storage/blobs` when left out.
    #[serde(default)]
    pub path: Option<String>,
    /// The largest blob accepted, in bytes.
    #[serde(default)]
    pub max_blob_bytes: Option<u64>,
    /// The most bytes the store holds in all.
    #[serde(default)]
    pub max_total_bytes: Option<u64>,
}

/// The settings of a `local` blob store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    /// The directory, absolute.
    pub path: PathBuf,
    /// Its limits.
    pub limits: BlobLimits,
}

impl BackendConfig for LocalConfig {
    fn type_name(&self) -> &str {
        TYPE_NAME
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    /// The directory's canonical path: one directory spelled two ways is one store.
    fn identity(&self) -> Option<ServerIdentity> {
        Some(ServerIdentity {
            scheme: TYPE_NAME.to_string(),
            endpoints: [canonical(&self.path).display().to_string()].into(),
            scope: String::new(),
            prefixes_nest: false,
        })
    }
}

/// The canonical form of a directory that may not exist yet: its nearest existing ancestor
/// canonicalised, the rest appended.
fn canonical(path: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut existing = path;
    loop {
        if let Ok(c) = existing.canonicalize() {
            return rest.iter().rev().fold(c, |p, part| p.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// The factory the registry holds for `local`.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalFactory;

#[async_trait]
impl BackendFactory for LocalFactory {
    fn type_names(&self) -> Vec<String> {
        vec![TYPE_NAME.to_string()]
    }

    fn roles(&self) -> Vec<Role> {
        vec![Role::Blob]
    }

    fn parse(&self, block: &mut BlockInput<'_>) -> Result<Arc<dyn BackendConfig>> {
        let b: LocalBlock = block.typed()?;
        let path = block.resolve_path(b.path.as_deref().unwrap_or(".storage/blobs"));
        Ok(Arc::new(LocalConfig {
            path,
            limits: BlobLimits {
                max_blob_bytes: b.max_blob_bytes,
                max_total_bytes: b.max_total_bytes,
            },
        }))
    }

    fn schema(&self) -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(LocalBlock)).unwrap_or_default()
    }

    /// A `keyPrefix` is a namespace of its own: the directory `ns/<prefix, percent-encoded>`
    /// under the store's, which the store's own listing never walks into.
    async fn open_blob(&self, spec: &BackendSpec) -> Result<Arc<dyn BlobStore>> {
        let config = spec.settings::<LocalConfig>()?;
        let prefix = &spec.common.key_prefix;
        let root = if prefix.is_empty() {
            config.path.clone()
        } else {
            const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
                .remove(b'-')
                .remove(b'_')
                .remove(b':');
            let name = percent_encoding::utf8_percent_encode(prefix, KEEP).to_string();
            config.path.join("ns").join(name)
        };
        Ok(Arc::new(LocalBlobStore::open(root, config.limits).await?))
    }
}
