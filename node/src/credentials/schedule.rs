//! When a credential is refreshed, and what happens when a refresh fails: pure, time passed in.
//!
//! A temporary credential (STS keys, an Entra or OIDC access token) is replaced *before* it expires, so
//! that requests never carry an expired one: at the earlier of five minutes before expiry (what the AWS
//! and Azure SDKs do for hour-long credentials) and half its lifetime (so a short-lived one is not
//! refreshed continuously, nor too late). A failed refresh is retried with capped exponential backoff;
//! while the current credential is still valid it stays in use, and the moment it expires the failure is
//! what requests get (a 401 naming the cause), never an expired credential.

use std::time::{Duration, SystemTime};

/// How long before expiry a long-lived credential is refreshed.
pub(crate) const REFRESH_AHEAD: Duration = Duration::from_secs(300);
/// The first retry delay after a failed refresh.
pub(crate) const RETRY_BASE: Duration = Duration::from_millis(500);
/// The longest retry delay: a broken token endpoint is asked at most twice a minute.
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(30);

/// When to refresh a credential obtained at `obtained` that expires at `expiry`; `None` for one that
/// never expires (long-term keys), which is never refreshed.
pub(crate) fn refresh_after(obtained: SystemTime, expiry: Option<SystemTime>) -> Option<Duration> {
    let expiry = expiry?;
    let life = expiry.duration_since(obtained).unwrap_or_default();
    Some(life - REFRESH_AHEAD.min(life / 2))
}

/// What to do after the `failures`-th consecutive failed refresh at `now`, while the credential in use
/// is valid until `valid_until` (`None`: there is none, or it has no expiry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AfterFailure {
    /// Publish the failure now: requests get it instead of a credential.
    pub(crate) publish: bool,
    /// Try again after this long.
    pub(crate) retry_in: Duration,
}

/// Plans the next step after a failed refresh (see [`AfterFailure`]). A still-valid credential is kept,
/// and the retry is brought forward to its expiry, when the failure is published if the retry fails.
pub(crate) fn after_failure(
    now: SystemTime,
    valid_until: Option<SystemTime>,
    failures: u32,
) -> AfterFailure {
    let shift = failures.saturating_sub(1).min(16);
    let backoff = RETRY_BASE.saturating_mul(1 << shift).min(RETRY_MAX);
    match valid_until.and_then(|e| e.duration_since(now).ok()) {
        Some(left) if !left.is_zero() => AfterFailure {
            publish: false,
            retry_in: backoff.min(left),
        },
        _ => AfterFailure {
            publish: true,
            retry_in: backoff,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: SystemTime = SystemTime::UNIX_EPOCH;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn refresh_times() {
        for (name, life, want) in [
            (
                "an hour-long credential five minutes ahead",
                Some(3600),
                Some(s(3300)),
            ),
            ("a ten-minute one at half-life", Some(600), Some(s(300))),
            ("a six-second one at three seconds", Some(6), Some(s(3))),
            ("an already expired one at once", Some(0), Some(s(0))),
            ("long-term keys never", None, None),
        ] {
            let expiry = life.map(|l| T0 + s(l));
            assert_eq!(refresh_after(T0, expiry), want, "{name}");
        }
        // Expiry before `obtained` (clock step): refresh at once.
        assert_eq!(refresh_after(T0 + s(10), Some(T0 + s(5))), Some(s(0)));
    }

    #[test]
    fn failures_back_off_and_publish_only_once_nothing_valid_is_left() {
        let ms = Duration::from_millis;
        for (name, valid_for, failures, publish, retry_in) in [
            ("no credential yet: publish, 0.5 s", None, 1, true, ms(500)),
            ("second failure: 1 s", None, 2, true, s(1)),
            ("fourth failure: 4 s", None, 4, true, s(4)),
            ("capped at 30 s", None, 9, true, s(30)),
            ("no overflow after many", None, 1000, true, s(30)),
            (
                "valid for 60 s: keep it, retry on backoff",
                Some(60),
                3,
                false,
                s(2),
            ),
            (
                "valid for 1 s: retry at its expiry",
                Some(1),
                5,
                false,
                s(1),
            ),
            ("expired: publish", Some(0), 1, true, ms(500)),
        ] {
            let valid_until = valid_for.map(|v| T0 + s(v));
            assert_eq!(
                after_failure(T0, valid_until, failures),
                AfterFailure { publish, retry_in },
                "{name}"
            );
        }
    }
}
