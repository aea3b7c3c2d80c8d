//! Step two of the parse: each role's block typed by its factory, fallback chains settled.
//!
//! The resolver knows no backend. It asks the [`Registry`] for the role's default type when a
//! role is left out, for the factory of each `type`, and for a backend's default fallback chain
//! when the block declares none.

use super::common::{BlockInput, common_settings, split_block};
use super::fields::json_type;
use super::spec::BackendSpec;
use super::{Role, RoleConfig, StorageConfig};
use crate::Registry;
use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

pub(crate) fn resolve(
    storage: &Map<String, Value>,
    base_dir: &Path,
    plugins: &[PathBuf],
    registry: &Registry,
) -> Result<StorageConfig> {
    let cx = Cx { registry, base_dir };
    Ok(StorageConfig {
        cache: cx.role(Role::Cache, storage.get("cache"))?,
        database: cx.role(Role::Database, storage.get("database"))?,
        // Optional: left out, it is served only where the registry names a default.
        blob: match storage.get("blob") {
            None | Some(Value::Null) if registry.role_default(Role::Blob).is_none() => None,
            block => Some(cx.role(Role::Blob, block)?),
        },
        plugins: plugins.to_vec(),
        base_dir: base_dir.to_path_buf(),
    })
}

struct Cx<'a> {
    registry: &'a Registry,
    base_dir: &'a Path,
}

impl Cx<'_> {
    fn role(&self, role: Role, block: Option<&Value>) -> Result<RoleConfig> {
        let path = format!("storage.{role}");
        let block = match block {
            None | Some(Value::Null) => match self.registry.role_default(role) {
                Some(name) => serde_json::json!({ "type": name }),
                None => {
                    return Err(Error::config(format!(
                        "{path}: missing, and no default {role} backend is registered; known types: {}",
                        self.known()
                    )));
                }
            },
            Some(b) => b.clone(),
        };
        let (primary, declared) = self.backend(role, &block, &path, None, false)?;
        let fallback = match declared {
            Some(entries) => entries
                .iter()
                .enumerate()
                .map(|(i, entry)| {
                    let entry = match entry {
                        Value::String(name) => serde_json::json!({ "type": name }),
                        other => other.clone(),
                    };
                    self.fallback_entry(role, &entry, &format!("{path}.fallback[{i}]"), &primary)
                })
                .collect::<Result<Vec<_>>>()?,
            None => {
                // A default entry whose backend is not compiled in is left out.
                self.registry
                    .default_fallback(&primary.type_name, role)
                    .into_iter()
                    .enumerate()
                    .map(|(i, name)| {
                        let entry = serde_json::json!({ "type": name });
                        self.fallback_entry(
                            role,
                            &entry,
                            &format!("{path}.fallback[{i}]"),
                            &primary,
                        )
                    })
                    .collect::<Result<Vec<_>>>()?
            }
        };
        Ok(RoleConfig { primary, fallback })
    }

    fn fallback_entry(
        &self,
        role: Role,
        entry: &Value,
        path: &str,
        primary: &BackendSpec,
    ) -> Result<BackendSpec> {
        self.backend(role, entry, path, Some(&primary.common.key_prefix), true)
            .map(|(spec, _)| spec)
    }

    fn known(&self) -> String {
        let known = self.registry.known_types();
        if known.is_empty() {
            "(none)".to_string()
        } else {
            known.join(", ")
        }
    }

    /// Types one block. Returns the spec and its declared `fallback` list, if any.
    fn backend(
        &self,
        role: Role,
        block: &Value,
        path: &str,
        inherited_prefix: Option<&str>,
        is_fallback_entry: bool,
    ) -> Result<(BackendSpec, Option<Vec<Value>>)> {
        let Value::Object(map) = block else {
            return Err(Error::config(format!(
                "{path}: expected a backend block (a map with `type`), found {}",
                json_type(block)
            )));
        };
        let type_name = match map.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(other) => {
                return Err(Error::config(format!(
                    "{path}.type: expected a type name, found {}",
                    json_type(other)
                )));
            }
            None => {
                return Err(Error::config(format!(
                    "{path}.type: missing field `type`; known types: {}",
                    self.known()
                )));
            }
        };
        let Ok(factory) = self.registry.factory(&type_name) else {
            return Err(Error::config(format!(
                "{path}.type: unknown backend type {type_name:?}; known types: {}",
                self.known()
            )));
        };
        let (common_block, own) = split_block(map, path)?;
        if is_fallback_entry && common_block.fallback.is_some() {
            return Err(Error::config(format!(
                "{path}.fallback: a fallback entry cannot declare its own fallback; the chain is exactly the role's list"
            )));
        }
        let common = common_settings(&common_block, path, inherited_prefix)?;
        let mut input =
            BlockInput::new(path, own, self.base_dir).with_common(common, &common_block);
        input.set_role(role);
        let config = factory.parse(&mut input)?;
        if !factory.type_names().iter().any(|n| n == config.type_name()) {
            return Err(Error::config(format!(
                "{path}: the {type_name:?} factory returned settings for {:?}",
                config.type_name()
            )));
        }
        Ok((
            BackendSpec {
                type_name: config.type_name().to_string(),
                path: path.to_string(),
                common: input.into_common(),
                config,
            },
            common_block.fallback,
        ))
    }
}
