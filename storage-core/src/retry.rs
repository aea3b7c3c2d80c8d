//! The one retry rule: which failed operations are sent again, and after how long. Every
//! runner that sends again (PostgreSQL's, Redis's, the manager's connect walk, the cache-aside
//! write-behind worker) asks [`RetryPolicy`], and loops through [`RetryPolicy::run`]. Not a
//! timer: the caller gives the sleep (its runtime's) and bounds the whole under its own
//! operation timeout.

use crate::config::CommonSettings;
use crate::error::{Error, Outcome, Result};
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

/// Whether an operation may be sent again after it failed with its outcome unknown: a
/// property of the operation, decided where the operation is written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Resend {
    /// Idempotent (a read, `set`, `delete`, `clear`): sending it twice leaves what sending it
    /// once does.
    Allowed,
    /// Not idempotent (`append`, `append_many`, `trim`): sent again only when the error proves
    /// it did not take effect ([`Outcome::NotApplied`]).
    Never,
}

/// When to send a failed operation again.
///
/// An error is worth another try when it is temporary, and either the operation did not take
/// effect ([`Outcome::NotApplied`]) or sending it twice is harmless ([`Resend::Allowed`]); at
/// most `max_retries` times, each after an exponential backoff with jitter.
///
/// ```
/// use std::time::Duration;
/// use storage_core::raw::{Resend, RetryPolicy};
/// use storage_core::Error;
///
/// let policy = RetryPolicy::new(3, Duration::from_millis(20));
/// let lost = Error::connection("appending: connection closed"); // outcome unknown
/// assert!(policy.next_delay(&lost, Resend::Never, 0).is_none());
/// assert!(policy.next_delay(&lost, Resend::Allowed, 0).is_some());
/// let refused = Error::connection("connecting: refused").not_applied();
/// assert!(policy.next_delay(&refused, Resend::Never, 0).is_some());
/// assert!(policy.next_delay(&refused, Resend::Never, 3).is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How many times an operation is sent again at most.
    pub max_retries: u32,
    /// The first backoff; each next one doubles, up to `max_delay`.
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// Up to `max_retries` retries, the first after about `base_delay`, none longer than 2 s.
    pub fn new(max_retries: u32, base_delay: Duration) -> Self {
        RetryPolicy {
            max_retries,
            base_delay,
            max_delay: Duration::from_secs(2),
        }
    }

    /// The policy of a backend's common settings (`maxRetries`, `retryDelayMillis`).
    pub fn from_settings(common: &CommonSettings) -> Self {
        Self::new(common.max_retries, common.retry_delay)
    }

    /// The same policy with at most `max_retries` retries.
    pub fn with_max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// Whether `error` may be sent again at all, whatever the count.
    pub fn retryable(error: &Error, resend: Resend) -> bool {
        error.is_temporary()
            && (error.outcome() == Outcome::NotApplied || resend == Resend::Allowed)
    }

    /// How long to wait before sending again an operation that failed with `error` after
    /// `retries` retries, or `None` to give up and return the error.
    pub fn next_delay(&self, error: &Error, resend: Resend, retries: u32) -> Option<Duration> {
        (retries < self.max_retries && Self::retryable(error, resend))
            .then(|| self.backoff(retries))
    }

    /// The backoff before retry `n` (0-based): `base_delay * 2^n`, at most `max_delay`, its
    /// upper half drawn at random so that clients that failed together do not retry together.
    pub fn backoff(&self, n: u32) -> Duration {
        let full = self
            .base_delay
            .saturating_mul(1u32 << n.min(16))
            .min(self.max_delay);
        // A fresh `RandomState` is seeded per instance: a cheap source of jitter without a
        // random-number crate.
        let draw = RandomState::new().hash_one(n);
        let fraction = (draw % 1024) as f64 / 1024.0;
        full.mul_f64(0.5 + 0.5 * fraction)
    }

    /// Runs `attempt` (given the retry number, 0 for the first try) until it succeeds or
    /// [`RetryPolicy::next_delay`] gives up, waiting with `sleep` between tries; `on_retry`
    /// sees each error that is retried. With a `deadline` (the operation timeout as a whole),
    /// no retry starts whose backoff would end past it: the last error is returned instead.
    pub async fn run<T, A, AF, S, SF>(
        &self,
        resend: Resend,
        deadline: Option<Instant>,
        mut attempt: A,
        sleep: S,
        mut on_retry: impl FnMut(&Error, u32, Duration),
    ) -> Result<T>
    where
        A: FnMut(u32) -> AF,
        AF: Future<Output = Result<T>>,
        S: Fn(Duration) -> SF,
        SF: Future<Output = ()>,
    {
        let mut retries = 0;
        loop {
            let error = match attempt(retries).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let delay = self
                .next_delay(&error, resend, retries)
                .filter(|delay| deadline.is_none_or(|end| Instant::now() + *delay < end));
            let Some(delay) = delay else {
                return Err(error);
            };
            on_retry(&error, retries, delay);
            sleep(delay).await;
            retries += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn block_on<F: Future>(f: F) -> F::Output {
        // The futures here never wait: one poll finishes them.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[test]
    fn only_temporary_errors_that_did_not_apply_or_may_repeat_are_retried() {
        let policy = RetryPolicy::new(2, Duration::from_millis(10));
        let unknown = Error::timeout("no answer");
        let refused = Error::connection("refused").not_applied();
        let rejected = Error::wrong_type("a list");
        let auth = Error::authentication("connecting");
        assert!(policy.next_delay(&unknown, Resend::Allowed, 0).is_some());
        assert!(policy.next_delay(&unknown, Resend::Never, 0).is_none());
        assert!(policy.next_delay(&refused, Resend::Never, 1).is_some());
        assert!(policy.next_delay(&refused, Resend::Never, 2).is_none());
        assert!(policy.next_delay(&rejected, Resend::Allowed, 0).is_none());
        assert!(policy.next_delay(&auth, Resend::Allowed, 0).is_none());
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_cap() {
        let policy = RetryPolicy::new(10, Duration::from_millis(100));
        for n in 0..12 {
            let full = Duration::from_millis(100)
                .saturating_mul(1 << n)
                .min(Duration::from_secs(2));
            let d = policy.backoff(n);
            assert!(d >= full / 2 && d <= full, "retry {n}: {d:?} of {full:?}");
        }
        let draws: std::collections::BTreeSet<_> = (0..20).map(|_| policy.backoff(3)).collect();
        assert!(draws.len() > 1, "no jitter: {draws:?}");
    }

    /// How many times `policy` tries an operation that always fails with `error()`.
    fn tries_until_given_up(
        policy: &RetryPolicy,
        resend: Resend,
        deadline: Option<Instant>,
        error: impl Fn() -> Error,
    ) -> u32 {
        let tries = Cell::new(0);
        let out: Result<()> = block_on(policy.run(
            resend,
            deadline,
            |_| {
                tries.set(tries.get() + 1);
                std::future::ready(Err(error()))
            },
            |_| std::future::ready(()),
            |_, _, _| {},
        ));
        assert!(out.is_err());
        tries.get()
    }

    #[test]
    fn run_retries_until_success_and_stops_at_the_first_final_error() {
        let policy = RetryPolicy::new(5, Duration::from_millis(1));
        let slept = Cell::new(0);
        let out = block_on(policy.run(
            Resend::Never,
            None,
            |n| async move {
                if n < 2 {
                    Err(Error::connection("refused").not_applied())
                } else {
                    Ok(n)
                }
            },
            |_| {
                slept.set(slept.get() + 1);
                std::future::ready(())
            },
            |_, _, _| {},
        ));
        assert_eq!(out.unwrap(), 2);
        assert_eq!(slept.get(), 2);
        let lost = || Error::connection("lost after sending");
        assert_eq!(
            tries_until_given_up(&policy, Resend::Never, None, lost),
            1,
            "an append whose outcome is unknown is sent once"
        );
        let slow = RetryPolicy::new(5, Duration::from_secs(60));
        let soon = Some(Instant::now() + Duration::from_secs(1));
        let no_answer = || Error::timeout("no answer");
        assert_eq!(
            tries_until_given_up(&slow, Resend::Allowed, soon, no_answer),
            1,
            "no retry whose backoff ends past the deadline"
        );
        let far = Some(Instant::now() + Duration::from_secs(60));
        assert_eq!(
            tries_until_given_up(&policy, Resend::Allowed, far, no_answer),
            6,
            "a deadline far off leaves room for the first try and five retries"
        );
    }
}
