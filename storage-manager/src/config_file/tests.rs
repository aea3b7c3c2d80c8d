//! The two-step parse read from YAML, with test factories standing in for backends: the file
//! rules, environment references, common fields and synonyms, fallback chains, the default
//! `parse` of a factory, and the assembled schema. Each backend's own fields are tested in its
//! crate, and the whole configuration reference in `tests/config.rs`.

use super::{from_yaml_str, from_yaml_str_with_env};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use storage_core::config::*;
use storage_core::{BackendFactory, Registry, Result};

/// A backend with one field, `level`, and a synonym for `retryDelayMillis`.
struct Leveled;

#[derive(Debug)]
struct Level(u64);

impl BackendConfig for Level {
    fn type_name(&self) -> &str {
        "leveled"
    }
    fn describe(&self) -> String {
        format!("level {}", self.0)
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LevelBlock {
    #[serde(default, deserialize_with = "num::opt")]
    level: Option<u64>,
    #[serde(default, deserialize_with = "num::opt")]
    backoff_millis: Option<u64>,
}

impl BackendFactory for Leveled {
    fn type_names(&self) -> Vec<String> {
        vec!["leveled".into(), "lvl".into()]
    }
    fn roles(&self) -> Vec<Role> {
        vec![Role::Cache, Role::Database]
    }
    fn parse(&self, block: &mut BlockInput<'_>) -> Result<Arc<dyn BackendConfig>> {
        let b: LevelBlock = block.typed()?;
        if let Some(ms) = b.backoff_millis {
            block.synonym(CommonField::RetryDelay, "backoffMillis", ms)?;
        }
        Ok(Arc::new(Level(b.level.unwrap_or(1))))
    }
    fn schema(&self) -> serde_json::Value {
        serde_json::json!({"type": "object", "properties": {"level": {"type": "integer"}}})
    }
    fn default_fallback(&self, _role: Role) -> Vec<String> {
        vec!["plain".into(), "not-compiled-in".into()]
    }
}

/// A backend with no fields of its own: the default `parse`.
struct Plain;
impl BackendFactory for Plain {
    fn type_names(&self) -> Vec<String> {
        vec!["plain".into()]
    }
    fn roles(&self) -> Vec<Role> {
        vec![Role::Cache]
    }
}

pub(super) fn registry() -> Registry {
    let mut r = Registry::new();
    r.register(Arc::new(Leveled)).unwrap();
    r.register(Arc::new(Plain)).unwrap();
    r.set_role_default(Role::Cache, "plain");
    r.set_role_default(Role::Database, "leveled");
    r
}

pub(super) fn parse(yaml: &str) -> Result<StorageConfig> {
    let vars = HashMap::from([("PORT", "6543"), ("PW", "s3cret")]);
    let lookup = move |name: &str| vars.get(name).map(|v| v.to_string());
    from_yaml_str_with_env(yaml, Path::new("/base"), &lookup)?.resolve(&registry())
}

pub(super) fn err(yaml: &str) -> String {
    parse(yaml)
        .expect_err("must be rejected")
        .message()
        .to_string()
}

fn types_of(role: &RoleConfig) -> Vec<&str> {
    role.chain().map(|s| s.type_name.as_str()).collect()
}

#[test]
fn file_rules_blank_unknown_top_level_and_agent_yml() {
    // Decided: a blank document is refused; `storage:` left empty takes every default.
    for blank in ["", "# only a comment\n", "{}"] {
        assert!(err(blank).contains("empty"), "{blank:?}");
    }
    for ok in ["storage:", "storage: {}", "name: agent\nstorage:\n"] {
        let c = parse(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        assert_eq!(types_of(&c.cache), ["plain"]);
        assert_eq!(types_of(&c.database), ["leveled", "plain"]);
    }
    // A misspelt `storage` is named as itself, not as a field inside storage.
    let e = err("storge:\n  cache: { type: plain }\n");
    assert!(e.starts_with("`storge`: unknown top-level field"), "{e}");
    let e = err("name: agent\nllm: { apiKey: $OPENAI_API_KEY }\n");
    assert!(e.contains("`llm`") && e.contains("`name`"), "{e}");
    let e = err("storage:\n  cachee: {}\n");
    assert!(e.starts_with("storage.cachee: unknown field"), "{e}");
    // An unset variable outside `storage:` does not matter.
    parse("llm:\n  apiKey: $OPENAI_API_KEY\nstorage:\n  cache: { type: plain }\n").unwrap();
    // The content of a storage block alone is a storage block.
    assert_eq!(
        types_of(&parse("cache: { type: plain }").unwrap().cache),
        ["plain"]
    );
}

#[test]
fn common_fields_synonyms_and_paths() {
    let c = parse(
        "database: { type: lvl, level: $PORT, keyPrefix: 'db:', maxConnections: 4, pool: { max: 4, min: 1 }, backoffMillis: 250 }",
    )
    .unwrap();
    let db = &c.database.primary;
    assert_eq!(db.type_name, "leveled");
    assert_eq!(db.to_string(), "leveled (level 6543)");
    assert_eq!(db.common.key_prefix, "db:");
    assert_eq!((db.common.pool_min, db.common.pool_max), (1, 4));
    assert_eq!(db.common.retry_delay, Duration::from_millis(250));
    // Fallback entries take the role's prefix.
    assert_eq!(c.database.fallback[0].common.key_prefix, "db:");

    let e = err("database: { type: leveled, maxConnections: 4, pool: { max: 5 } }");
    assert!(e.contains("`maxConnections` (4) and `pool.max` (5)"), "{e}");
    let e = err("database: { type: leveled, retryDelayMillis: 10, backoffMillis: 20 }");
    assert!(
        e.contains("`retryDelayMillis` (10) and `backoffMillis` (20)"),
        "{e}"
    );
    parse("database: { type: leveled, retryDelayMillis: 20, backoffMillis: 20 }").unwrap();
    let e = err("database: { type: leveled, levle: 3 }");
    assert!(
        e.starts_with("storage.database.levle: unknown field"),
        "{e}"
    );
    let e = err("database: { type: leveled, pool: { maxx: 3 } }");
    assert!(
        e.starts_with("storage.database.pool.maxx: unknown field"),
        "{e}"
    );
    let e = err("database: { type: leveled, maxConnections: lots }");
    assert!(e.starts_with("storage.database.maxConnections"), "{e}");
    let e = err("database: { type: leveled, operationTimeoutMillis: 0 }");
    assert!(
        e.contains("operationTimeoutMillis: must be at least 1 ms"),
        "{e}"
    );
    let e = err(&format!(
        "database: {{ type: leveled, keyPrefix: '{}' }}",
        "k".repeat(257)
    ));
    assert!(e.starts_with("storage.database.keyPrefix"), "{e}");
}

#[test]
fn unknown_and_missing_types_list_the_known_ones() {
    let e = err("cache: { type: memcached }");
    assert!(
        e.starts_with("storage.cache.type: unknown backend type \"memcached\""),
        "{e}"
    );
    assert!(e.contains("leveled, lvl, plain"), "{e}");
    let e = err("cache: { keyPrefix: x }");
    assert!(e.starts_with("storage.cache.type: missing field"), "{e}");
    // No default registered for a role that is left out.
    let source = from_yaml_str("cache: { type: plain }", Path::new("/")).unwrap();
    let e = source
        .resolve(&Registry::new())
        .unwrap_err()
        .message()
        .to_string();
    assert!(
        e.contains("storage.cache.type: unknown backend type"),
        "{e}"
    );
}

#[test]
fn the_default_parse_takes_no_fields_and_no_options() {
    let e = err("cache: { type: plain, options: { anything: 1 } }");
    assert!(
        e.starts_with("storage.cache.options: unknown field `options`"),
        "{e}"
    );
    let c = parse("cache: { type: plain, keyPrefix: 'c:' }").unwrap();
    assert_eq!(c.cache.primary.to_string(), "plain");
}

#[test]
fn fallback_chains() {
    let c = parse("database: { type: leveled, fallback: [] }").unwrap();
    assert!(c.database.fallback.is_empty());
    let c = parse("database: { type: leveled, fallback: [plain, { type: leveled, level: 2, keyPrefix: own }] }")
        .unwrap();
    assert_eq!(types_of(&c.database), ["leveled", "plain", "leveled"]);
    assert_eq!(c.database.fallback[1].path, "storage.database.fallback[1]");
    assert_eq!(c.database.fallback[1].common.key_prefix, "own");
    let e = err("database: { type: leveled, fallback: [{ type: leveled, fallback: [] }] }");
    assert!(e.contains("storage.database.fallback[0].fallback"), "{e}");
    let e = err("database: { type: leveled, fallback: [{ type: leveled, bogus: 1 }] }");
    assert!(e.starts_with("storage.database.fallback[0].bogus"), "{e}");
    let e = err("database: { type: leveled, fallback: [7] }");
    assert!(
        e.starts_with("storage.database.fallback[0]: expected a backend block"),
        "{e}"
    );
}

/// The default chain is the composition root's policy: set on the registry, it replaces what
/// the factory declares (here `plain` and an unregistered type, which is left out), for the
/// type under any of its names; a type without a policy keeps its factory's.
#[test]
fn default_fallback_chains_come_from_the_registry_policy() {
    let c = parse("database: { type: leveled }").unwrap();
    assert_eq!(types_of(&c.database), ["leveled", "plain"]);
    let mut registry = registry();
    registry.set_default_fallback("lvl", Role::Database, &["not-compiled-in", "leveled"]);
    let source = from_yaml_str("database: { type: leveled }", Path::new("/b")).unwrap();
    let c = source.resolve(&registry).unwrap();
    assert_eq!(types_of(&c.database), ["leveled", "leveled"]);
    // The cache role has no policy: the factory's own chain.
    let source = from_yaml_str("cache: { type: leveled }", Path::new("/b")).unwrap();
    let c = source.resolve(&registry).unwrap();
    assert_eq!(types_of(&c.cache), ["leveled", "plain"]);
}

#[test]
fn plugins_are_listed_relative_to_the_file() {
    let s = from_yaml_str(
        "plugins: [lib/x.so]\ncache: { type: plain }",
        Path::new("/b"),
    )
    .unwrap();
    assert_eq!(s.plugins(), [Path::new("/b/lib/x.so")]);
    let e = from_yaml_str("plugins: [7]", Path::new("/b")).unwrap_err();
    assert!(e.message().starts_with("storage.plugins[0]"), "{e}");
}

#[test]
fn seed_style_prefixes_ending_in_a_colon_load() {
    let c = parse("storage:\n  cache:\n    type: plain\n    keyPrefix: saiki:cache:\n").unwrap();
    assert_eq!(c.cache.primary.common.key_prefix, "saiki:cache:");
}

#[test]
fn schema_is_assembled_from_the_factories() {
    let schema = json_schema(&registry());
    let db = &schema["properties"]["database"]["anyOf"];
    assert_eq!(
        db.as_array().unwrap().len(),
        1,
        "plain serves only the cache role"
    );
    let leveled = &db[0];
    assert_eq!(
        leveled["properties"]["type"]["enum"],
        serde_json::json!(["leveled", "lvl"])
    );
    assert!(leveled["properties"]["level"].is_object());
    assert!(leveled["properties"]["keyPrefix"].is_object());
    assert!(leveled["properties"]["pool"].is_object());
    assert_eq!(leveled["additionalProperties"], false);
    assert!(schema["$defs"]["PoolBlock"].is_object(), "{schema}");
}
