//! `update`: read a value with its version, change it, write it back only if nobody wrote it
//! in between, and start over when somebody did. The loop behind
//! [`crate::DatabaseExt::update`]; not the conditional write itself (each backend's
//! `set_if`).

use crate::backend::Database;
use crate::error::{Error, ErrorKind, Result};
use crate::version::{Condition, Version, random_u64};
use serde_json::Value;
use std::time::Duration;

/// How [`crate::DatabaseExt::update_with`] retries after a conflict: at most `max_attempts`
/// tries in all, each retry after a random pause of up to `base_delay * 2^n` (at most
/// `max_delay`), so that writers that collided spread out instead of colliding again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdatePolicy {
    /// Tries in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The ceiling of the first pause; each next one doubles.
    pub base_delay: Duration,
    /// The longest pause.
    pub max_delay: Duration,
}

impl Default for UpdatePolicy {
    /// 100 tries, pauses from up to 1 ms to up to 100 ms: enough for dozens of writers on one
    /// key, and bounded.
    fn default() -> Self {
        UpdatePolicy {
            max_attempts: 100,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(100),
        }
    }
}

impl UpdatePolicy {
    /// The pause before retry `n` (0-based): "full jitter", uniformly random below the
    /// exponential ceiling.
    pub fn pause(&self, n: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << n.min(20))
            .min(self.max_delay);
        let fraction = (random_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(fraction)
    }
}

/// Runs the read-change-write loop; see [`crate::DatabaseExt::update_with`].
pub(crate) async fn update<D, F>(
    db: &D,
    key: &str,
    policy: UpdatePolicy,
    mut change: F,
) -> Result<(Value, Version)>
where
    D: Database + ?Sized,
    F: FnMut(Option<&Value>) -> Result<Value> + Send,
{
    let attempts = policy.max_attempts.max(1);
    let mut tries = 0;
    loop {
        let current = db.get_versioned(key).await?;
        let (condition, old) = match &current {
            Some((value, version)) => (Condition::Version(*version), Some(value)),
            None => (Condition::Absent, None),
        };
        let new = change(old)?;
        match db.set_if(key, &new, &condition).await {
            Ok(version) => return Ok((new, version)),
            Err(e) if e.kind() == ErrorKind::Conflict => {
                tries += 1;
                if tries >= attempts {
                    return Err(gave_up(e, key, tries));
                }
                pause(policy.pause(tries - 1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The last conflict, saying how many tries were made.
fn gave_up(last: Error, key: &str, tries: u32) -> Error {
    let current = last.as_conflict().and_then(|c| c.current);
    let mut error = Error::conflict(key, current);
    error = error.map_message(|m| Some(format!("{m} (gave up after {tries} tries)")));
    error
}

/// Sleeps on tokio's timer inside a tokio runtime; elsewhere yields once (no timer to use).
async fn pause(delay: Duration) {
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::time::sleep(delay).await;
    } else {
        YieldOnce(false).await;
    }
}

/// Returns `Pending` once (waking itself), so that other tasks run before the next try.
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            std::task::Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::UpdatePolicy;
    use std::time::Duration;

    #[test]
    fn pauses_stay_under_their_ceiling_and_vary() {
        let policy = UpdatePolicy::default();
        for n in 0..30 {
            let ceiling = Duration::from_millis(1)
                .saturating_mul(1 << n.min(20))
                .min(Duration::from_millis(100));
            let drawn: Vec<Duration> = (0..50).map(|_| policy.pause(n)).collect();
            assert!(drawn.iter().all(|d| *d <= ceiling), "retry {n}: {drawn:?}");
            assert!(
                drawn.windows(2).any(|w| w[0] != w[1]),
                "retry {n}: no jitter"
            );
        }
        assert!((0..200).any(|_| policy.pause(10) > Duration::from_millis(50)));
    }
}
