//! The fault cases for one backend: its block with `{addr}` standing for the server's address,
//! opened through the kit's fault proxy with the limits each case asks for.

use serde_json::{Map, Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use storage_core::config::{ConfigSource, Role};
use storage_core::{Error, Registry, Result};
use storage_testkit::{FaultTarget, Opened, Report, SuiteOptions};

/// The block as a map, with `{addr}` replaced and the case's common settings applied.
fn block_for(template: &str, target: &FaultTarget) -> Result<Map<String, Value>> {
    let text = template.replace("{addr}", &target.addr.to_string());
    let Ok(Value::Object(mut block)) = serde_norway::from_str::<Value>(&text) else {
        return Err(Error::config(
            "--fault-block: expected a backend block (a map)",
        ));
    };
    let t = target.timeouts;
    block.insert("keyPrefix".into(), json!(target.key_prefix));
    block.insert(
        "connectionTimeoutMillis".into(),
        json!(t.connect.as_millis() as u64),
    );
    block.insert(
        "operationTimeoutMillis".into(),
        json!(t.operation.as_millis() as u64),
    );
    block.insert(
        "pool".into(),
        json!({ "max": t.pool_max, "acquireTimeoutMillis": t.acquire.as_millis() as u64 }),
    );
    block.insert("maxRetries".into(), json!(0));
    block.insert("fallback".into(), json!([]));
    Ok(block)
}

/// Runs the fault suite for `role` against `upstream`.
pub async fn run(
    role: Role,
    template: String,
    upstream: SocketAddr,
    registry: Arc<Registry>,
    options: &SuiteOptions,
) -> Report {
    let opener = move |target: FaultTarget| {
        let (template, registry) = (template.clone(), registry.clone());
        async move {
            let block = block_for(&template, &target)?;
            let other = match role {
                Role::Cache => "database",
                _ => "cache",
            };
            let doc = json!({ role.as_str(): block, other: { "type": "in-memory" } });
            let config = ConfigSource::from_document(doc, ".".as_ref())?.resolve(&registry)?;
            let spec = config
                .role(role)
                .map(|r| r.primary.clone())
                .ok_or_else(|| Error::config(format!("the config has no {role} role")))?;
            Ok(match role {
                Role::Cache => Opened::Cache(registry.open_cache(&spec).await?),
                Role::Database => Opened::Database(registry.open_database(&spec).await?),
                Role::Blob => {
                    return Err(Error::unsupported(
                        "the fault cases are for the key-value roles",
                    ));
                }
            })
        }
    };
    storage_testkit::run_fault_suite(role, upstream, Arc::new(opener), options).await
}
