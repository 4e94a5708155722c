//! One request's retry budget, and the decision after each failed attempt (DESIGN §4). Pure: time comes in
//! as a parameter, randomness from the caller's RNG, and the one effect — taking a slot of the route's
//! `maxParallelRetries` — through a closure the caller passes.
//!
//! Why a type: the attempt loop (`proxy::forward`) sends, classifies and reports; what Envoy's router
//! decides between attempts — is this outcome retried, is there an attempt left, is a parallel-retry slot
//! free, does the backoff still fit before the route timeout — is answered here, in one place, and
//! table-tested row by row. The order is Envoy's: retriable (`retryOn`, or an extension forcing it), then
//! `numRetries`, then the circuit breaker, then the backoff against the route timeout.

use std::time::{Duration, Instant};

use rand::Rng;

use crate::config::model::RetryConfig;
use crate::retry::policy::{backoff, is_retriable, AttemptOutcome};
use crate::routing::select::AttemptHistory;

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The failure is the answer: not retried, or no attempt left.
    Return,
    /// Wait this long, then attempt again.
    Retry(Duration),
    /// The route timeout would expire during the backoff: wait for it, then answer 504.
    RouteTimeout,
    /// `maxParallelRetries` is reached: the failure is the answer (counted as a retry overflow).
    Overflow,
}

/// How an attempt relates to the ones before it (for the retry and fallback counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKind {
    /// The request's first attempt.
    First,
    /// A retry at the same priority as the first attempt.
    Retry,
    /// A retry at another priority.
    Fallback,
}

/// The retry state of one request. `S` is the guard of a parallel-retry slot, held from the first retry
/// to the end of the request.
#[derive(Debug)]
pub struct Attempts<'a, S> {
    policy: Option<&'a RetryConfig>,
    max_attempts: u32,
    deadline: Instant,
    history: AttemptHistory,
    first_priority: Option<u32>,
    slot: Option<S>,
}

impl<'a, S> Attempts<'a, S> {
    /// The budget of a request under `policy` (`None`: no retry at all) that must end by `deadline`.
    pub fn new(policy: Option<&'a RetryConfig>, deadline: Instant) -> Self {
        Attempts {
            policy,
            max_attempts: policy.map_or(1, |r| r.num_retries.saturating_add(1)),
            deadline,
            history: AttemptHistory::default(),
            first_priority: None,
            slot: None,
        }
    }

    /// What earlier attempts tried (selection avoids those hosts).
    pub fn history(&self) -> &AttemptHistory {
        &self.history
    }

    /// The route timeout's instant.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Records that an attempt goes to candidate `host` at `priority`.
    pub fn record(&mut self, host: usize, priority: u32) -> AttemptKind {
        self.history.record(host, priority);
        let first = *self.first_priority.get_or_insert(priority);
        if self.history.attempts() == 1 {
            AttemptKind::First
        } else if first != priority {
            AttemptKind::Fallback
        } else {
            AttemptKind::Retry
        }
    }

    /// Whether an answer with `outcome` could still be retried (`forced`: an extension retries it whatever
    /// `retryOn` says): it is then kept aside instead of being passed on at once. The circuit breaker and
    /// the backoff are only consulted by [`Self::after`].
    pub fn may_retry(&self, outcome: &AttemptOutcome, forced: bool) -> bool {
        self.retriable(outcome, forced) && self.history.attempts() < self.max_attempts
    }

    fn retriable(&self, outcome: &AttemptOutcome, forced: bool) -> bool {
        self.policy
            .is_some_and(|p| forced || is_retriable(p, outcome))
    }

    /// The decision after a failed attempt that ended with `outcome` at `now`. `acquire` takes a parallel
    /// retry slot (asked once per request, at its first retry).
    pub fn after(
        &mut self,
        outcome: &AttemptOutcome,
        forced: bool,
        now: Instant,
        acquire: impl FnOnce() -> Option<S>,
        rng: &mut impl Rng,
    ) -> Decision {
        let Some(policy) = self.policy.filter(|_| self.retriable(outcome, forced)) else {
            return Decision::Return;
        };
        if self.history.attempts() >= self.max_attempts {
            return Decision::Return;
        }
        if self.slot.is_none() {
            match acquire() {
                Some(s) => self.slot = Some(s),
                None => return Decision::Overflow,
            }
        }
        // Envoy's jittered backoff; a `Retry-After` on the failed answer changes nothing.
        let wait = backoff(policy, self.history.attempts(), rng);
        if now + wait >= self.deadline {
            Decision::RouteTimeout
        } else {
            Decision::Retry(wait)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::RetryTrigger;
    use rand::SeedableRng;

    fn seed_policy() -> RetryConfig {
        RetryConfig {
            num_retries: 2,
            triggers: vec![
                RetryTrigger::ConnectFailure,
                RetryTrigger::RetriableStatusCodes,
            ],
            http_status_codes: vec![500],
            base_interval: Duration::from_millis(100),
            max_interval: Duration::from_secs(10),
            ..RetryConfig::default()
        }
    }

    struct Row {
        name: &'static str,
        policy: Option<RetryConfig>,
        /// Attempts already made (each recorded at priority 0).
        made: u32,
        outcome: AttemptOutcome,
        forced: bool,
        slot_free: bool,
        /// Time left before the route timeout.
        left: Duration,
        want: fn(Decision) -> bool,
    }

    #[test]
    fn decisions_follow_envoys_order() {
        let retry = |d: Decision| matches!(d, Decision::Retry(w) if w < Duration::from_millis(200));
        let rows = [
            Row {
                name: "a retried status with attempts left backs off",
                policy: Some(seed_policy()),
                made: 1,
                outcome: AttemptOutcome::Status(500),
                forced: false,
                slot_free: true,
                left: Duration::from_secs(60),
                want: retry,
            },
            Row {
                name: "a status retryOn does not name is the answer",
                policy: Some(seed_policy()),
                made: 1,
                outcome: AttemptOutcome::Status(503),
                forced: false,
                slot_free: true,
                left: Duration::from_secs(60),
                want: |d| d == Decision::Return,
            },
            Row {
                name: "an upstream Envoy's refusal is never retried",
                policy: Some(seed_policy()),
                made: 1,
                outcome: AttemptOutcome::EnvoyRefused(500),
                forced: false,
                slot_free: true,
                left: Duration::from_secs(60),
                want: |d| d == Decision::Return,
            },
            Row {
                name: "numRetries + 1 attempts and no more",
                policy: Some(seed_policy()),
                made: 3,
                outcome: AttemptOutcome::Status(500),
                forced: false,
                slot_free: true,
                left: Duration::from_secs(60),
                want: |d| d == Decision::Return,
            },
            Row {
                name: "no retry block: never retried",
                policy: None,
                made: 1,
                outcome: AttemptOutcome::ConnectFailure,
                forced: false,
                slot_free: true,
                left: Duration::from_secs(60),
                want: |d| d == Decision::Return,
            },
            Row {
                name: "no retry block: not even when an extension forces it",
                policy: None,
                made: 1,
                outcome: AttemptOutcome::PerTryTimeout,
                forced: true,
                slot_free: true,
                left: Duration::from_secs(60),
                want: |d| d == Decision::Return,
            },
            Row {
                name: "forced (first-token timeout, cooldown) retries what retryOn does not name",
                policy: Some(seed_policy()),
                made: 1,
                outcome: AttemptOutcome::PerTryTimeout,
                forced: true,
                slot_free: true,
                left: Duration::from_secs(60),
                want: retry,
            },
            Row {
                name: "forced still stops at numRetries",
                policy: Some(seed_policy()),
                made: 3,
                outcome: AttemptOutcome::Status(429),
                forced: true,
                slot_free: true,
                left: Duration::from_secs(60),
                want: |d| d == Decision::Return,
            },
            Row {
                name: "no free parallel-retry slot overflows",
                policy: Some(seed_policy()),
                made: 1,
                outcome: AttemptOutcome::Status(500),
                forced: false,
                slot_free: false,
                left: Duration::from_secs(60),
                want: |d| d == Decision::Overflow,
            },
            Row {
                name: "a backoff past the route timeout waits for it",
                policy: Some(RetryConfig {
                    base_interval: Duration::from_secs(9),
                    ..seed_policy()
                }),
                made: 1,
                outcome: AttemptOutcome::Status(500),
                forced: false,
                slot_free: true,
                left: Duration::from_millis(1),
                want: |d| d == Decision::RouteTimeout,
            },
        ];
        for row in rows {
            // Many seeds: the backoff is random, the decision must not be.
            for seed in 0..50 {
                let now = Instant::now();
                let mut a: Attempts<'_, ()> = Attempts::new(row.policy.as_ref(), now + row.left);
                for i in 0..row.made {
                    a.record(i as usize, 0);
                }
                let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
                let slot = row.slot_free.then_some(());
                let d = a.after(&row.outcome, row.forced, now, || slot, &mut rng);
                assert!((row.want)(d), "{}: {d:?}", row.name);
            }
        }
    }

    #[test]
    fn the_slot_is_taken_once_and_kept() {
        let policy = seed_policy();
        let now = Instant::now();
        let mut a: Attempts<'_, u8> = Attempts::new(Some(&policy), now + Duration::from_secs(60));
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        a.record(0, 0);
        let mut asked = 0;
        let d = a.after(
            &AttemptOutcome::Status(500),
            false,
            now,
            || {
                asked += 1;
                Some(7)
            },
            &mut rng,
        );
        assert!(matches!(d, Decision::Retry(_)));
        a.record(1, 0);
        let d = a.after(
            &AttemptOutcome::Status(500),
            false,
            now,
            || {
                asked += 1;
                None
            },
            &mut rng,
        );
        assert!(
            matches!(d, Decision::Retry(_)),
            "the slot held since the first retry still counts"
        );
        assert_eq!(asked, 1);
    }

    #[test]
    fn attempts_are_first_retry_or_fallback_by_priority() {
        let now = Instant::now();
        let mut a: Attempts<'_, ()> = Attempts::new(None, now);
        assert_eq!(a.record(0, 0), AttemptKind::First);
        assert_eq!(a.record(1, 0), AttemptKind::Retry);
        assert_eq!(a.record(2, 1), AttemptKind::Fallback);
        assert_eq!(a.history().attempts(), 3);
        assert!(
            !a.may_retry(&AttemptOutcome::Status(500), false),
            "no policy"
        );
        let policy = seed_policy();
        let mut b: Attempts<'_, ()> = Attempts::new(Some(&policy), now);
        b.record(0, 0);
        assert!(b.may_retry(&AttemptOutcome::Status(500), false));
        assert!(!b.may_retry(&AttemptOutcome::Status(404), false));
        assert!(b.may_retry(&AttemptOutcome::Status(404), true));
        b.record(1, 1);
        b.record(2, 1);
        assert!(
            !b.may_retry(&AttemptOutcome::Status(500), false),
            "three of three attempts made"
        );
    }
}
