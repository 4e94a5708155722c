//! Retry decisions and backoff (Envoy semantics). Pure.
//!
//! This module exists so that "is this attempt's outcome retried, and how long do we wait first" is answered
//! exactly as Envoy's router answers it for the `retryOn` triggers Envoy Gateway passes through (DESIGN §4):
//! `RetryStateImpl::wouldRetryFromHeaders` / `wouldRetryFromReset` for the decision, Envoy's
//! `JitteredExponentialBackOffStrategy` for the delay. Like Envoy with the policy Envoy Gateway configures
//! (no `rate_limited_retry_back_off`), a server's `Retry-After` does not change a retry's delay; it is
//! parsed here for the rate-limit cooldown extension, which acts on it only when enabled. The retry budget
//! (`numRetries`, `maxParallelRetries`) and the route timeout are the proxy's business; nothing here reads a
//! clock.

use std::time::Duration;

use rand::Rng;

use crate::config::model::{RetryConfig, RetryTrigger};

/// How one attempt ended, as far as the retry decision cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptOutcome {
    /// Response headers arrived with this status.
    Status(u16),
    /// TCP connect refused, unreachable or timed out (Envoy: `LocalConnectionFailure` /
    /// `RemoteConnectionFailure` / `ConnectionTimeout`).
    ConnectFailure,
    /// The TLS handshake failed; Envoy reports it as a connection failure, and so is it treated here.
    TlsFailure,
    /// The connection was reset or closed before any of the request was sent.
    ResetBeforeRequest,
    /// The connection or stream was reset after the request was sent, before response headers.
    Reset,
    /// HTTP/2 `REFUSED_STREAM`: the server did not process the request.
    RefusedStream,
    /// `perRetry.timeout` expired before response headers (Envoy resets the stream, reason `LocalReset`).
    PerTryTimeout,
    /// Response headers with this status that carry `x-envoy-ratelimited` or `x-envoy-overloaded`: an
    /// upstream Envoy (a provider behind Envoy, Istio or another AI gateway) refused the request itself.
    /// Envoy never retries these (`wouldRetryFromHeaders`), whatever the status and `retryOn` say; passive
    /// health still counts the status.
    EnvoyRefused(u16),
}

/// The outcome of an attempt that got response headers: [`AttemptOutcome::EnvoyRefused`] when an upstream
/// Envoy marked the answer as its own rate limit or overload, else [`AttemptOutcome::Status`].
pub fn response_outcome(status: u16, headers: &http::HeaderMap) -> AttemptOutcome {
    // No trigger retries a success, so nearly every answer skips the two lookups (and their names are
    // built once, not parsed from text per answer).
    static RATELIMITED: http::HeaderName = http::HeaderName::from_static("x-envoy-ratelimited");
    static OVERLOADED: http::HeaderName = http::HeaderName::from_static("x-envoy-overloaded");
    if (200..300).contains(&status) {
        return AttemptOutcome::Status(status);
    }
    if headers.contains_key(&RATELIMITED) || headers.contains_key(&OVERLOADED) {
        AttemptOutcome::EnvoyRefused(status)
    } else {
        AttemptOutcome::Status(status)
    }
}

impl AttemptOutcome {
    /// Every outcome without a status: Envoy sees each as a stream reset with some reason.
    fn is_local_failure(self) -> bool {
        !matches!(
            self,
            AttemptOutcome::Status(_) | AttemptOutcome::EnvoyRefused(_)
        )
    }

    /// The request never reached the upstream (Envoy's `!upstream_request_started`): connection failures
    /// happen in the pool before the stream exists, and a reset-before-request by definition.
    fn request_not_sent(self) -> bool {
        matches!(
            self,
            AttemptOutcome::ConnectFailure
                | AttemptOutcome::TlsFailure
                | AttemptOutcome::ResetBeforeRequest
        )
    }
}

/// Whether one trigger covers one outcome.
///
/// Statuses follow `wouldRetryFromHeaders`; everything else is a reset to Envoy and follows
/// `wouldRetryFromReset`:
/// - a connection failure (connect or TLS) is retried under `connect-failure`;
/// - any reset before the request was sent under `reset-before-request`;
/// - any reset at all — connection failures, refused streams and per-try timeouts included — under `reset`,
///   and likewise under `5xx` and `gateway-error` ("we count an upstream reset as a 5xx");
/// - a refused stream under `refused-stream`.
fn trigger_covers(trigger: RetryTrigger, cfg: &RetryConfig, outcome: AttemptOutcome) -> bool {
    use AttemptOutcome as O;
    match trigger {
        RetryTrigger::FiveXx => {
            matches!(outcome, O::Status(500..=599)) || outcome.is_local_failure()
        }
        RetryTrigger::GatewayError => {
            matches!(outcome, O::Status(502..=504)) || outcome.is_local_failure()
        }
        RetryTrigger::Reset => outcome.is_local_failure(),
        RetryTrigger::ResetBeforeRequest => outcome.request_not_sent(),
        RetryTrigger::ConnectFailure => matches!(outcome, O::ConnectFailure | O::TlsFailure),
        RetryTrigger::Retriable4xx => outcome == O::Status(409),
        RetryTrigger::RefusedStream => outcome == O::RefusedStream,
        RetryTrigger::RetriableStatusCodes => {
            matches!(outcome, O::Status(s) if cfg.http_status_codes.contains(&s))
        }
    }
}

/// Whether `outcome` is retried under `cfg.triggers` (any one trigger suffices, as Envoy ORs its
/// `retry_on` bits). Budget checks (`numRetries`, route timeout, parallel-retry limit) are the caller's.
///
/// With the seed's policy (`connect-failure` + `retriable-status-codes` with `[500]`) a 500 and a connect
/// failure are retried and 502/503/504/429/4xx are returned as they are; with the defaults
/// (`connect-failure`, `refused-stream`, `retriable-status-codes` with `[503]`) a 503, a connect/TLS failure
/// and a refused stream are.
pub fn is_retriable(cfg: &RetryConfig, outcome: &AttemptOutcome) -> bool {
    cfg.triggers
        .iter()
        .any(|t| trigger_covers(*t, cfg, *outcome))
}

/// The exclusive upper bound of the backoff before retry `retry_number`, in whole milliseconds.
///
/// Envoy's `JitteredExponentialBackOffStrategy` starts at the base interval and doubles it after each retry
/// until it would pass the maximum, then stays at the maximum: `min(2^(k-1) * base, max)`. Envoy works in
/// milliseconds and rounds a sub-millisecond base up to 1 ms, so this does too. Saturating throughout.
fn backoff_ceiling_ms(cfg: &RetryConfig, retry_number: u32) -> u64 {
    let base_ms = cfg.base_interval.as_nanos().div_ceil(1_000_000);
    let max_ms = cfg.max_interval.as_millis();
    let k = retry_number.max(1);
    let doubled = match 1u128.checked_shl(k - 1) {
        Some(factor) => base_ms.saturating_mul(factor),
        None => u128::MAX,
    };
    u64::try_from(doubled.min(max_ms)).unwrap_or(u64::MAX)
}

/// The fully jittered backoff before retry number `retry_number` (1 for the first retry; 0 is taken as 1):
/// uniform in `[0, min(2^(k-1) * baseInterval, maxInterval))` at millisecond granularity, as Envoy's
/// `random() % next_interval`. A zero ceiling gives no wait.
pub fn backoff(cfg: &RetryConfig, retry_number: u32, rng: &mut impl Rng) -> Duration {
    let ceiling = backoff_ceiling_ms(cfg, retry_number);
    if ceiling == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(rng.random_range(0..ceiling))
}

/// The cooldown a rate-limited answer asks for, under the rate-limit cooldown extension (Envoy itself
/// never acts on it): a 429 whose `retry-after-ms` (milliseconds, as Azure OpenAI and OpenAI send it) or,
/// failing that, `Retry-After` names a wait, at most `cap`. `None`: not a 429, no usable header, or no wait.
///
/// `Retry-After` may be delta-seconds or an HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime
/// forms every recipient must accept, RFC 9110 §5.6.7); a date is turned into a wait against
/// `now_unix_secs`, a date already past meaning none. Malformed values are ignored.
pub fn rate_limit_cooldown(
    status: u16,
    retry_after: Option<&str>,
    retry_after_ms: Option<&str>,
    now_unix_secs: u64,
    cap: Duration,
) -> Option<Duration> {
    if status != 429 {
        return None;
    }
    let from_ms = retry_after_ms
        .map(str::trim)
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms > 0.0)
        .map(|ms| Duration::from_secs_f64((ms / 1000.0).min(cap.as_secs_f64())));
    let wait = match from_ms {
        Some(d) => d,
        None => {
            let value = retry_after?.trim();
            let secs = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
                value.parse::<u64>().unwrap_or(u64::MAX)
            } else {
                parse_http_date(value, now_unix_secs)?.saturating_sub(now_unix_secs)
            };
            Duration::from_secs(secs.min(cap.as_secs().saturating_add(1)))
        }
    };
    Some(wait.min(cap)).filter(|d| !d.is_zero())
}

/// Seconds since the Unix epoch for an HTTP-date in any of its three forms, or `None` if malformed.
/// `now_unix_secs` resolves RFC 850's two-digit year.
fn parse_http_date(s: &str, now_unix_secs: u64) -> Option<u64> {
    let tokens: Vec<&str> = s.split_ascii_whitespace().collect();
    let (day, month, year, time) = match tokens.as_slice() {
        // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
        [wkday, day, month, year, time, "GMT"] if is_day_name(wkday, true) && year.len() == 4 => (
            parse_num(day, 1, 2)?,
            month_number(month)?,
            parse_num(year, 4, 4)?,
            *time,
        ),
        // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
        [wkday, date, time, "GMT"] if is_day_name(wkday, true) => {
            let mut parts = date.split('-');
            let (d, m, y) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() {
                return None;
            }
            let yy = parse_num(y, 2, 2)?;
            (
                parse_num(d, 2, 2)?,
                month_number(m)?,
                two_digit_year(yy, now_unix_secs),
                *time,
            )
        }
        // asctime: "Sun Nov  6 08:49:37 1994"
        [wkday, month, day, time, year] if is_day_name(wkday, false) => (
            parse_num(day, 1, 2)?,
            month_number(month)?,
            parse_num(year, 4, 4)?,
            *time,
        ),
        _ => return None,
    };
    let mut hms = time.split(':');
    let (h, m, sec) = (hms.next()?, hms.next()?, hms.next()?);
    if hms.next().is_some() {
        return None;
    }
    let (h, m, sec) = (
        parse_num(h, 2, 2)?,
        parse_num(m, 2, 2)?,
        parse_num(sec, 2, 2)?,
    );
    // RFC 9110 allows second 60 (leap second).
    if h > 23 || m > 59 || sec > 60 || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(h * 3600 + m * 60 + sec);
    Some(u64::try_from(secs).unwrap_or(0))
}

/// A day name, with a trailing comma when `comma` (IMF-fixdate and RFC 850) and without otherwise (asctime).
fn is_day_name(token: &str, comma: bool) -> bool {
    let name = if comma {
        match token.strip_suffix(',') {
            Some(n) => n,
            None => return false,
        }
    } else {
        token
    };
    const SHORT: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const LONG: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    SHORT.contains(&name) || LONG.contains(&name)
}

/// A decimal number of `min..=max` ASCII digits.
fn parse_num(s: &str, min: usize, max: usize) -> Option<u32> {
    if s.len() < min || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `Jan` → 1 … `Dec` → 12 (case-sensitive, as the grammar is).
fn month_number(s: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS
        .iter()
        .position(|m| *m == s)
        .and_then(|i| u32::try_from(i + 1).ok())
}

/// RFC 9110: a two-digit year that would be more than 50 years in the future is the most recent past year
/// with those digits.
fn two_digit_year(yy: u32, now_unix_secs: u64) -> u32 {
    let now_days = i64::try_from(now_unix_secs / 86_400).unwrap_or(i64::MAX);
    let current = civil_year(now_days);
    let candidate = current - current % 100 + yy;
    if candidate > current + 50 {
        candidate - 100
    } else {
        candidate
    }
}

fn is_leap(year: u32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: u32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The Gregorian year containing day `days` since 1970-01-01 (inverse of [`days_from_civil`], year only).
fn civil_year(days: i64) -> u32 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let year = yoe + era * 400 + i64::from(mp >= 10);
    u32::try_from(year).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use AttemptOutcome as O;

    fn policy(triggers: &[RetryTrigger], codes: &[u16]) -> RetryConfig {
        RetryConfig {
            triggers: triggers.to_vec(),
            http_status_codes: codes.to_vec(),
            ..RetryConfig::default()
        }
    }

    /// Every outcome the table below checks, so each row states the complete retried set.
    fn all_outcomes() -> Vec<AttemptOutcome> {
        let mut v: Vec<AttemptOutcome> = [200, 400, 404, 409, 429, 500, 501, 502, 503, 504, 599]
            .into_iter()
            .map(O::Status)
            .collect();
        v.extend([
            O::ConnectFailure,
            O::TlsFailure,
            O::ResetBeforeRequest,
            O::Reset,
            O::RefusedStream,
            O::PerTryTimeout,
        ]);
        // An upstream Envoy's own refusals: no row retries them, whatever the status.
        v.extend([429, 500, 503].map(O::EnvoyRefused));
        v
    }

    #[test]
    fn envoy_marked_answers_are_refusals_whatever_the_status() {
        let marked = |name: &str, value: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                http::HeaderValue::from_str(value).expect("value"),
            );
            h
        };
        let cases = [
            ("plain 503", 503, http::HeaderMap::new(), O::Status(503)),
            (
                "rate limited 429",
                429,
                marked("x-envoy-ratelimited", "true"),
                O::EnvoyRefused(429),
            ),
            (
                "overloaded 503",
                503,
                marked("x-envoy-overloaded", "true"),
                O::EnvoyRefused(503),
            ),
            (
                "any value counts, as Envoy checks presence",
                500,
                marked("X-Envoy-Overloaded", ""),
                O::EnvoyRefused(500),
            ),
            (
                "other envoy headers do not",
                503,
                marked("x-envoy-upstream-service-time", "3"),
                O::Status(503),
            ),
        ];
        for (name, status, headers, want) in cases {
            assert_eq!(response_outcome(status, &headers), want, "{name}");
        }
        let five_xx = policy(&[RetryTrigger::FiveXx], &[503]);
        assert!(!is_retriable(&five_xx, &O::EnvoyRefused(503)));
        assert!(is_retriable(&five_xx, &O::Status(503)));
    }

    #[test]
    fn trigger_table() {
        use RetryTrigger as T;
        let local = [
            O::ConnectFailure,
            O::TlsFailure,
            O::ResetBeforeRequest,
            O::Reset,
            O::RefusedStream,
            O::PerTryTimeout,
        ];
        let with = |mut v: Vec<AttemptOutcome>, extra: &[AttemptOutcome]| {
            v.extend_from_slice(extra);
            v
        };
        // (name, config, exactly the outcomes retried)
        let cases: Vec<(&str, RetryConfig, Vec<AttemptOutcome>)> = vec![
            (
                "seed_policy_connect_failure_and_500",
                policy(&[T::ConnectFailure, T::RetriableStatusCodes], &[500]),
                vec![O::Status(500), O::ConnectFailure, O::TlsFailure],
            ),
            (
                "default_policy_503_connect_failure_refused_stream",
                RetryConfig::default(),
                vec![
                    O::Status(503),
                    O::ConnectFailure,
                    O::TlsFailure,
                    O::RefusedStream,
                ],
            ),
            (
                "5xx_any_5xx_and_every_local_failure",
                policy(&[T::FiveXx], &[]),
                with(
                    [500, 501, 502, 503, 504, 599]
                        .into_iter()
                        .map(O::Status)
                        .collect(),
                    &local,
                ),
            ),
            (
                "gateway_error_502_503_504_and_every_local_failure",
                policy(&[T::GatewayError], &[]),
                with(vec![O::Status(502), O::Status(503), O::Status(504)], &local),
            ),
            (
                "reset_every_local_failure_no_status",
                policy(&[T::Reset], &[]),
                local.to_vec(),
            ),
            (
                "reset_before_request_only_when_request_never_sent",
                policy(&[T::ResetBeforeRequest], &[]),
                vec![O::ConnectFailure, O::TlsFailure, O::ResetBeforeRequest],
            ),
            (
                "connect_failure_connect_and_tls",
                policy(&[T::ConnectFailure], &[]),
                vec![O::ConnectFailure, O::TlsFailure],
            ),
            (
                "retriable_4xx_is_409_only",
                policy(&[T::Retriable4xx], &[]),
                vec![O::Status(409)],
            ),
            (
                "refused_stream_only",
                policy(&[T::RefusedStream], &[]),
                vec![O::RefusedStream],
            ),
            (
                "retriable_status_codes_listed_only",
                policy(&[T::RetriableStatusCodes], &[429, 504]),
                vec![O::Status(429), O::Status(504)],
            ),
            (
                "retriable_status_codes_empty_list_retries_nothing",
                policy(&[T::RetriableStatusCodes], &[]),
                vec![],
            ),
            (
                "status_codes_ignored_without_their_trigger",
                policy(&[T::ConnectFailure], &[500]),
                vec![O::ConnectFailure, O::TlsFailure],
            ),
            ("no_triggers_retries_nothing", policy(&[], &[503]), vec![]),
        ];
        for (name, cfg, retried) in cases {
            for outcome in all_outcomes() {
                assert_eq!(
                    is_retriable(&cfg, &outcome),
                    retried.contains(&outcome),
                    "{name}: {outcome:?}"
                );
            }
        }
    }

    #[test]
    fn per_try_timeout_only_under_reset_5xx_gateway_error() {
        use RetryTrigger as T;
        let cases = [
            (T::FiveXx, true),
            (T::GatewayError, true),
            (T::Reset, true),
            (T::ResetBeforeRequest, false),
            (T::ConnectFailure, false),
            (T::Retriable4xx, false),
            (T::RefusedStream, false),
            (T::RetriableStatusCodes, false),
        ];
        for (trigger, want) in cases {
            let cfg = policy(&[trigger], &[504]);
            assert_eq!(
                is_retriable(&cfg, &O::PerTryTimeout),
                want,
                "{}",
                trigger.as_str()
            );
        }
    }

    #[test]
    fn backoff_ranges_k1_to_k6() {
        let cfg = RetryConfig {
            base_interval: Duration::from_millis(100),
            max_interval: Duration::from_secs(10),
            ..RetryConfig::default()
        };
        let mut rng = StdRng::seed_from_u64(11);
        for (k, cap_ms) in [
            (1u32, 100u64),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1600),
            (6, 3200),
        ] {
            let cap = Duration::from_millis(cap_ms);
            let mut max_seen = Duration::ZERO;
            for _ in 0..1000 {
                let d = backoff(&cfg, k, &mut rng);
                assert!(d < cap, "k={k}: {d:?} >= {cap:?}");
                max_seen = max_seen.max(d);
            }
            assert!(
                max_seen * 100 >= cap * 95,
                "k={k}: max {max_seen:?} far below {cap:?}"
            );
        }
    }

    #[test]
    fn backoff_ceiling_table() {
        let cfg = |base_ms: u64, max_ms: u64| RetryConfig {
            base_interval: Duration::from_millis(base_ms),
            max_interval: Duration::from_millis(max_ms),
            ..RetryConfig::default()
        };
        let cases = [
            ("first_retry_is_base", cfg(25, 250), 1, 25),
            ("doubles_each_retry", cfg(25, 250), 3, 100),
            ("capped_at_max", cfg(25, 250), 5, 250),
            ("k_zero_taken_as_first", cfg(25, 250), 0, 25),
            ("huge_k_saturates_to_max", cfg(25, 250), 10_000, 250),
            ("k_7_base_100_max_10s_capped", cfg(100, 10_000), 8, 10_000),
            ("zero_base_no_wait", cfg(0, 250), 3, 0),
            (
                "sub_millisecond_base_rounds_up",
                RetryConfig {
                    base_interval: Duration::from_micros(300),
                    max_interval: Duration::from_millis(10),
                    ..RetryConfig::default()
                },
                1,
                1,
            ),
        ];
        for (name, c, k, want) in cases {
            assert_eq!(backoff_ceiling_ms(&c, k), want, "{name}");
        }
        let mut rng = StdRng::seed_from_u64(5);
        assert_eq!(backoff(&cfg(0, 0), 4, &mut rng), Duration::ZERO);
    }

    #[test]
    fn rate_limit_cooldown_table() {
        let cap = Duration::from_secs(60);
        // 1994-11-06T08:49:37Z
        let now = 784_111_777;
        let secs = Duration::from_secs;
        #[allow(clippy::type_complexity)]
        let cases: &[(&str, u16, Option<&str>, Option<&str>, Option<Duration>)] = &[
            ("delta_seconds", 429, Some("3"), None, Some(secs(3))),
            ("whitespace_trimmed", 429, Some(" 2 "), None, Some(secs(2))),
            ("only_429", 503, Some("3"), None, None),
            ("zero_is_no_cooldown", 429, Some("0"), None, None),
            ("capped", 429, Some("120"), None, Some(cap)),
            (
                "overflowing_number_capped",
                429,
                Some("99999999999999999999999"),
                None,
                Some(cap),
            ),
            ("missing_header", 429, None, None, None),
            ("malformed", 429, Some("soon"), None, None),
            ("negative", 429, Some("-1"), None, None),
            ("fractional_seconds_malformed", 429, Some("1.5"), None, None),
            (
                "imf_fixdate",
                429,
                Some("Sun, 06 Nov 1994 08:49:42 GMT"),
                None,
                Some(secs(5)),
            ),
            (
                "date_in_past_no_cooldown",
                429,
                Some("Sun, 06 Nov 1994 08:00:00 GMT"),
                None,
                None,
            ),
            (
                "rfc850_date",
                429,
                Some("Sunday, 06-Nov-94 08:49:40 GMT"),
                None,
                Some(secs(3)),
            ),
            (
                "asctime_date",
                429,
                Some("Sun Nov  6 08:49:38 1994"),
                None,
                Some(secs(1)),
            ),
            (
                "retry_after_ms_first",
                429,
                Some("9"),
                Some("1500"),
                Some(Duration::from_millis(1500)),
            ),
            (
                "retry_after_ms_capped",
                429,
                None,
                Some("3600000"),
                Some(cap),
            ),
            (
                "bad_retry_after_ms_falls_back",
                429,
                Some("4"),
                Some("x"),
                Some(secs(4)),
            ),
            (
                "zero_retry_after_ms_falls_back",
                429,
                Some("4"),
                Some("0"),
                Some(secs(4)),
            ),
        ];
        for (name, status, header, ms, want) in cases {
            assert_eq!(
                rate_limit_cooldown(*status, *header, *ms, now, cap),
                *want,
                "{name}"
            );
        }
    }

    #[test]
    fn http_date_table() {
        let now = 1_700_000_000; // 2023-11-14
        let cases = [
            (
                "imf_fixdate_rfc_example",
                "Sun, 06 Nov 1994 08:49:37 GMT",
                Some(784_111_777),
            ),
            (
                "rfc850_rfc_example",
                "Sunday, 06-Nov-94 08:49:37 GMT",
                Some(784_111_777),
            ),
            (
                "asctime_rfc_example",
                "Sun Nov  6 08:49:37 1994",
                Some(784_111_777),
            ),
            ("epoch", "Thu, 01 Jan 1970 00:00:00 GMT", Some(0)),
            (
                "leap_day",
                "Thu, 29 Feb 2024 00:00:00 GMT",
                Some(1_709_164_800),
            ),
            (
                "rfc850_near_future_year_kept",
                "Monday, 01-Jan-30 00:00:00 GMT",
                Some(1_893_456_000),
            ),
            (
                "not_leap_year_feb_29_rejected",
                "Wed, 29 Feb 2023 00:00:00 GMT",
                None,
            ),
            ("bad_month_rejected", "Sun, 06 Foo 1994 08:49:37 GMT", None),
            ("bad_hour_rejected", "Sun, 06 Nov 1994 24:49:37 GMT", None),
            ("missing_gmt_rejected", "Sun, 06 Nov 1994 08:49:37", None),
            ("other_zone_rejected", "Sun, 06 Nov 1994 08:49:37 PST", None),
            (
                "bad_day_name_rejected",
                "Fun, 06 Nov 1994 08:49:37 GMT",
                None,
            ),
            ("empty_rejected", "", None),
        ];
        for (name, input, want) in cases {
            assert_eq!(parse_http_date(input, now), want, "{name}");
        }
    }

    #[test]
    fn two_digit_year_table() {
        let now_2023 = 1_700_000_000;
        let cases = [
            ("same_century_past", 94, 2094 - 100),
            ("within_50_years_future_kept", 30, 2030),
            ("more_than_50_years_future_goes_back", 80, 1980),
            ("current_year", 23, 2023),
        ];
        for (name, yy, want) in cases {
            assert_eq!(two_digit_year(yy, now_2023), want, "{name}");
        }
    }
}
