//! The JSON Schema of a `storage:` block, assembled from the registered factories: the common
//! fields (here) merged with each backend's own (from its factory), one block per type.

use super::Role;
use super::common::CommonBlock;
use crate::Registry;
use serde_json::{Map, Value, json};

/// The fields whose value a block may give as a file instead (`<field>File`: the file's text).
pub const SECRET_FILE_FIELDS: &[&str] = &["password", "url", "connectionString", "secretAccessKey"];

/// The schema of a `storage:` block for the types in `registry`, built-ins and plugins alike.
pub fn json_schema(registry: &Registry) -> Value {
    let mut defs = Map::new();
    let common = take_defs(
        serde_json::to_value(schemars::schema_for!(CommonBlock)).unwrap_or(Value::Null),
        &mut defs,
    );
    let mut per_role: [Vec<Value>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for name in registry.types() {
        let Ok(factory) = registry.factory(&name) else {
            continue;
        };
        let own = take_defs(factory.schema(), &mut defs);
        let mut properties = common
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(own) = own.get("properties").and_then(Value::as_object) {
            properties.extend(own.clone());
        }
        // A secret field may come from a file instead (the config reader puts its text in).
        for field in SECRET_FILE_FIELDS {
            if properties.contains_key(*field) {
                properties.insert(
                    format!("{field}File"),
                    json!({
                        "description": format!("A file whose text (one trailing line ending removed) is `{field}`; not with `{field}`."),
                        "type": "string",
                    }),
                );
            }
        }
        let names = factory.type_names();
        properties.insert(
            "type".into(),
            json!({ "description": "The backend type name.", "enum": names }),
        );
        let mut block = json!({
            "title": name,
            "type": "object",
            "properties": properties,
            "required": ["type"],
            "additionalProperties": false,
        });
        if let Some(d) = own.get("description") {
            block["description"] = d.clone();
        }
        for role in factory.roles() {
            let i = match role {
                Role::Cache => 0,
                Role::Database => 1,
                Role::Blob => 2,
            };
            per_role[i].push(block.clone());
        }
    }
    let [cache, database, blob] = per_role;
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "storage",
        "description": "A `storage:` block. The fields of every backend are described in docs/configuration.md.",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "cache": { "description": "The fast, ephemeral role.", "anyOf": cache },
            "database": { "description": "The durable role, with lists.", "anyOf": database },
            "blob": { "description": "Files: content-addressed blobs.", "anyOf": blob },
            "plugins": {
                "description": "Plugin libraries to load, relative to the config file.",
                "type": "array",
                "items": { "type": "string" }
            }
        },
        "$defs": defs,
    })
}

/// Moves a schema's `$defs` (and schemars' older `definitions`) into `defs`.
fn take_defs(mut schema: Value, defs: &mut Map<String, Value>) -> Value {
    for key in ["$defs", "definitions"] {
        if let Some(Value::Object(d)) = schema.as_object_mut().and_then(|o| o.remove(key)) {
            defs.extend(d);
        }
    }
    schema
}
