//! The fallback walk: each candidate of a role's chain gets its retries, with backoff; the
//! first that connects serves, and a credential error stops the walk. Not the chains
//! themselves (the configuration decides them) nor what is built (the registry's factories).

use crate::status::{FailedCandidate, RoleStatus};
use storage_core::config::{BackendSpec, Role, RoleConfig};
use storage_core::raw::{Resend, RetryPolicy};
use storage_core::{Error, Result, telemetry};
use tracing::Instrument;

/// Reports which backend serves `role` and whether it is degraded (gauge
/// `storage.role.degraded`), and counts a walk that did not end on the primary.
fn record_role(role: Role, serving: &str, degraded: bool) {
    let role = role.as_str();
    // The gauge is per serving backend: the one that served before is set back to 0 by a
    // later walk only if it serves again, so a dashboard reads the latest walk's series.
    metrics::gauge!(
        telemetry::ROLE_DEGRADED,
        telemetry::ROLE => role,
        telemetry::SYSTEM => serving.to_string()
    )
    .set(if degraded { 1.0 } else { 0.0 });
    if degraded {
        metrics::counter!(telemetry::FALLBACK_WALKS, telemetry::ROLE => role).increment(1);
    }
}

/// Walks a role's chain: each candidate gets its retries; the first that connects serves.
pub(crate) async fn walk<B, F, Fut>(
    role: Role,
    chain: &RoleConfig,
    open: F,
) -> Result<(B, RoleStatus)>
where
    F: Fn(&BackendSpec) -> Fut,
    Fut: std::future::Future<Output = Result<B>>,
{
    let mut failed = Vec::new();
    for spec in chain.chain() {
        let span = tracing::info_span!("storage.connect", role = role.as_str(), backend = %spec);
        // Connecting is idempotent: each candidate gets the retries its settings give, as the
        // one retry rule allows (only a temporary failure; a bad file stays bad).
        let attempts = std::cell::Cell::new(0u32);
        let outcome = RetryPolicy::from_settings(&spec.common)
            .run(
                Resend::Allowed,
                None,
                |_| {
                    attempts.set(attempts.get() + 1);
                    async {
                        tokio::time::timeout(spec.common.connect_timeout, open(spec))
                            .await
                            .unwrap_or_else(|_| {
                                Err(Error::timeout(format!(
                                    "did not connect within {:?}",
                                    spec.common.connect_timeout
                                ))
                                .not_applied())
                            })
                    }
                },
                tokio::time::sleep,
                |e, retries, delay| {
                    metrics::counter!(
                        telemetry::CONNECT_RETRIES,
                        telemetry::ROLE => role.as_str(),
                        telemetry::SYSTEM => spec.type_name.clone()
                    )
                    .increment(1);
                    tracing::debug!(error = %e, ?delay, retries, "connect failed; retrying");
                },
            )
            .instrument(span)
            .await;
        match outcome {
            Ok(backend) => {
                record_role(role, &spec.type_name, !failed.is_empty());
                if !failed.is_empty() {
                    tracing::warn!(
                        role = role.as_str(),
                        serving = %spec,
                        failed = failed.len(),
                        "storage role is degraded: a fallback serves"
                    );
                }
                return Ok((
                    backend,
                    RoleStatus {
                        role,
                        serving: Some(spec.type_name.clone()),
                        serving_detail: Some(spec.to_string()),
                        failed,
                    },
                ));
            }
            Err(e)
                if e.is_authentication()
                    || e.kind() == storage_core::ErrorKind::PermissionDenied =>
            {
                // Wrong credentials, or an account without the rights the backend needs (a
                // schema it may not create), are configuration mistakes: falling back would
                // hide them.
                return Err(Error::new(
                    e.kind(),
                    format!(
                        "{role}: {spec} at {}: {}",
                        spec.path,
                        storage_core::redact::redact(e.message())
                    ),
                ));
            }
            Err(e) => {
                let attempts = attempts.get();
                tracing::warn!(role = role.as_str(), backend = %spec, error = %e, "storage backend failed to connect");
                failed.push(FailedCandidate {
                    backend: spec.to_string(),
                    path: spec.path.clone(),
                    // Driver text may echo what it was given; scrub it once more.
                    reason: storage_core::redact::redact(&e.to_string()),
                    attempts,
                });
            }
        }
    }
    record_role(role, "none", true);
    let list: Vec<String> = failed
        .iter()
        .map(|f| {
            format!(
                "{} at {} after {} attempt(s): {}",
                f.backend, f.path, f.attempts, f.reason
            )
        })
        .collect();
    Err(Error::connection(format!(
        "no {role} backend could connect; tried {}",
        list.join("; ")
    ))
    .not_applied())
}
