//! The Envoy outlier detector for one backend host. Pure: time is passed in.
//!
//! This module exists so that passive health reproduces Envoy's consecutive-error outlier detection to the
//! number (DESIGN §5): the same counters, the same "fires when the counter equals the threshold" rule, the
//! same ejection length `min(base * k, max)` with Envoy's back-off multiplier `k` that grows per ejection and
//! decays per healthy interval, and the same `maxEjectionPercent` budget. The BackendHealth actor owns one
//! [`OutlierDetector`] per host, feeds it observations, asks [`ejection_allowed`] over the whole route rule
//! before calling [`OutlierDetector::eject`], and ticks [`OutlierDetector::sweep`] every `interval`.
//!
//! Reference: Envoy `source/common/upstream/outlier_detection_impl.cc` (`DetectorHostMonitorImpl::
//! putHttpResponseCode`, `putResultNoLocalExternalSplit`, `putResultWithLocalExternalSplit`,
//! `DetectorImpl::onConsecutiveErrorWorker`, `ejectHost`, `checkHostForUneject`, `onIntervalTimer`).

use std::fmt;
use std::time::{Duration, Instant};

use crate::config::model::PassiveHealthConfig;

/// A failure that happened on our side of the connection, before or instead of an HTTP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocalOriginFailure {
    /// TCP connect refused, unreachable or timed out.
    ConnectFailed,
    /// TLS handshake failed.
    TlsFailed,
    /// Connection or stream reset before response headers.
    Reset,
    /// The attempt timed out waiting for response headers.
    Timeout,
}

impl LocalOriginFailure {
    /// The status Envoy records for it when local and external errors are not split
    /// (`resultToHttpCode`: connect failures — resets are reported as such by the router — are 503,
    /// timeouts 504).
    fn as_status(self) -> u16 {
        match self {
            LocalOriginFailure::ConnectFailed
            | LocalOriginFailure::TlsFailed
            | LocalOriginFailure::Reset => 503,
            LocalOriginFailure::Timeout => 504,
        }
    }
}

/// One thing learned about a host from an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// The host answered with this status (any status, success included: non-5xx resets the counters).
    Status(u16),
    /// A local-origin failure.
    LocalOriginFailure(LocalOriginFailure),
    /// The connection (and TLS handshake) to the host succeeded; only meaningful when split.
    ConnectSucceeded,
}

impl Observation {
    /// A success: it can only reset counters (a non-5xx answer, or a connect that worked), never count
    /// toward an ejection.
    pub fn is_success(&self) -> bool {
        match self {
            Observation::Status(code) => !(500..=599).contains(code),
            Observation::ConnectSucceeded => true,
            Observation::LocalOriginFailure(_) => false,
        }
    }
}

/// Why a host was ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EjectionReason {
    /// `consecutive5XxErrors` reached.
    Consecutive5xx,
    /// `consecutiveGatewayErrors` reached.
    ConsecutiveGatewayErrors,
    /// `consecutiveLocalOriginFailures` reached (split mode only).
    ConsecutiveLocalOriginFailures,
}

impl EjectionReason {
    /// Envoy's name for the ejection type, as in its `outlier_detection.ejections_*` stats and ejection event
    /// log, so operators can compare the two directly.
    pub fn as_str(self) -> &'static str {
        match self {
            EjectionReason::Consecutive5xx => "consecutive_5xx",
            EjectionReason::ConsecutiveGatewayErrors => "consecutive_gateway_failure",
            EjectionReason::ConsecutiveLocalOriginFailures => "consecutive_local_origin_failure",
        }
    }

    /// Parses [`EjectionReason::as_str`]'s spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [
            EjectionReason::Consecutive5xx,
            EjectionReason::ConsecutiveGatewayErrors,
            EjectionReason::ConsecutiveLocalOriginFailures,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

impl fmt::Display for EjectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The consecutive-error counters of one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Consecutive 5xx (including local-origin failures when not split).
    pub consecutive_5xx: u32,
    /// Consecutive 502/503/504 (including local-origin failures when not split).
    pub consecutive_gateway: u32,
    /// Consecutive local-origin failures (split mode only).
    pub consecutive_local_origin: u32,
}

/// What one interval sweep did to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepOutcome {
    /// The host was ejected and its time is up: it is back in rotation, counters reset.
    Returned,
    /// The host is ejected and stays so.
    StillEjected,
    /// The host was not ejected.
    Healthy,
}

/// When the host last came back, which gates the decay of the back-off multiplier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LastReturn {
    /// Never ejected and returned.
    Never,
    /// Returned by the sweep at this instant.
    At(Instant),
    /// Returned by a passing active probe, at an instant not passed in; `sweeps` counts the sweeps seen since.
    ByProbe { sweeps: u32 },
}

/// Envoy's consecutive-error outlier detector for one host.
#[derive(Debug, Clone)]
pub struct OutlierDetector {
    cfg: PassiveHealthConfig,
    counters: Counters,
    /// Envoy's `ejectTimeBackoff`: the multiplier of the base ejection time.
    backoff: u32,
    ejected_at: Option<Instant>,
    last_reason: Option<EjectionReason>,
    last_return: LastReturn,
}

impl OutlierDetector {
    /// A detector for a host that has never failed.
    pub fn new(cfg: PassiveHealthConfig) -> Self {
        OutlierDetector {
            cfg,
            counters: Counters::default(),
            backoff: 0,
            ejected_at: None,
            last_reason: None,
            last_return: LastReturn::Never,
        }
    }

    /// Applies a reloaded configuration. Counters, the ejection and its multiplier are kept (DESIGN §2: health
    /// state of backends that still exist survives a reload); the new thresholds and times apply from now on,
    /// including to a current ejection's length, as Envoy reads them at each check.
    pub fn set_config(&mut self, cfg: PassiveHealthConfig) {
        self.cfg = cfg;
    }

    /// The configuration in use.
    pub fn config(&self) -> &PassiveHealthConfig {
        &self.cfg
    }

    /// Feeds one observation; returns the reason when a threshold fired while the host is not ejected, i.e.
    /// the host should be ejected if [`ejection_allowed`] agrees.
    ///
    /// Rules (Envoy `putHttpResponseCode` and `putResult*`):
    /// - any 5xx increments consecutive-5xx; 502/503/504 also increment consecutive-gateway, another 5xx resets
    ///   it; any other status (429 included) resets both;
    /// - a threshold fires when its counter *equals* it, so a threshold of 0 never fires;
    /// - local-origin failures, unsplit: recorded as 503 (connect, TLS, reset) or 504 (timeout) in the
    ///   counters above; `ConnectSucceeded` is no observation at all. Split: they count only towards
    ///   consecutive-local-origin, which `ConnectSucceeded` resets;
    /// - the counter that fired is reset, whether or not the ejection then happens (Envoy
    ///   `onConsecutiveErrorWorker`), so a host refused by the budget needs a fresh run of errors to fire
    ///   again; while ejected, counters keep counting but nothing fires and nothing is reset.
    ///
    /// When the gateway and 5xx thresholds fire on the same response, the gateway reason is reported (Envoy
    /// posts it first) and both counters are reset, which is what Envoy ends with whether the first ejection
    /// succeeds or the budget refuses both.
    pub fn observe(&mut self, obs: Observation) -> Option<EjectionReason> {
        match obs {
            Observation::Status(code) => self.put_status(code),
            Observation::LocalOriginFailure(failure) => {
                if self.cfg.split_external_local_origin_errors {
                    let c = &mut self.counters.consecutive_local_origin;
                    *c = c.saturating_add(1);
                    let fired = *c == self.cfg.consecutive_local_origin_failures;
                    if fired && !self.is_ejected() {
                        self.counters.consecutive_local_origin = 0;
                        return Some(EjectionReason::ConsecutiveLocalOriginFailures);
                    }
                    None
                } else {
                    self.put_status(failure.as_status())
                }
            }
            Observation::ConnectSucceeded => {
                if self.cfg.split_external_local_origin_errors {
                    self.counters.consecutive_local_origin = 0;
                }
                None
            }
        }
    }

    fn put_status(&mut self, code: u16) -> Option<EjectionReason> {
        if !(500..=599).contains(&code) {
            self.counters.consecutive_5xx = 0;
            self.counters.consecutive_gateway = 0;
            return None;
        }
        let mut gateway_fired = false;
        if matches!(code, 502..=504) {
            let c = &mut self.counters.consecutive_gateway;
            *c = c.saturating_add(1);
            gateway_fired = *c == self.cfg.consecutive_gateway_errors;
        } else {
            self.counters.consecutive_gateway = 0;
        }
        let c = &mut self.counters.consecutive_5xx;
        *c = c.saturating_add(1);
        let fivexx_fired = *c == self.cfg.consecutive_5xx;

        if self.is_ejected() {
            return None;
        }
        if gateway_fired {
            self.counters.consecutive_gateway = 0;
        }
        if fivexx_fired {
            self.counters.consecutive_5xx = 0;
        }
        if gateway_fired {
            Some(EjectionReason::ConsecutiveGatewayErrors)
        } else if fivexx_fired {
            Some(EjectionReason::Consecutive5xx)
        } else {
            None
        }
    }

    /// Ejects the host at `now` (the caller has checked [`ejection_allowed`]). The multiplier `k` grows by
    /// one — unless `k * base` already reaches `max + base`, Envoy's cap that keeps `k` from growing without
    /// bound and so bounds the decay time — and the host stays out for `min(base * k, max)`. Ejecting a host
    /// that is already ejected does nothing (Envoy never does it: its worker checks first).
    pub fn eject(&mut self, reason: EjectionReason, now: Instant) {
        if self.is_ejected() {
            return;
        }
        self.ejected_at = Some(now);
        self.last_reason = Some(reason);
        let grown = mul(self.cfg.base_ejection_time, self.backoff);
        let limit = self
            .cfg
            .max_ejection_time
            .saturating_add(self.cfg.base_ejection_time);
        if grown < limit {
            self.backoff = self.backoff.saturating_add(1);
        }
    }

    /// Raises the ejection multiplier to at least `count` (never lowers it), so that the next ejection lasts
    /// `base × (count + 1)`: DESIGN §6, a node's next local ejection continues from the cluster's count
    /// (`max + 1`), so ejection lengths grow alike on every node. Capped like Envoy's own growth.
    pub fn raise_ejection_count(&mut self, count: u32) {
        let base = self.cfg.base_ejection_time.max(Duration::from_millis(1));
        let cap = (self.cfg.max_ejection_time.as_millis() / base.as_millis()).saturating_add(1);
        let cap = u32::try_from(cap).unwrap_or(u32::MAX);
        self.backoff = self.backoff.max(count.min(cap));
    }

    /// The interval tick at `now` (Envoy `onIntervalTimer`).
    ///
    /// An ejected host returns at the first sweep with `now >= ejected_at + min(base * k, max)` (so with a 5 s
    /// base and 2 s sweeps it is back after 6 s), and its counters are reset so a few errors cannot re-eject
    /// it at once. A host that is not ejected has `k` decreased by one per sweep, once at least one `interval`
    /// has passed since it returned (the sweep that returns it does not count). After a return by probe,
    /// whose instant is not known, the first sweep is taken as less than an interval after it and the decay
    /// starts at the second, which is what a regular sweep schedule gives.
    pub fn sweep(&mut self, now: Instant) -> SweepOutcome {
        let outcome = match self.ejected_at {
            Some(at) if now.saturating_duration_since(at) >= self.ejection_duration() => {
                self.return_host(LastReturn::At(now));
                SweepOutcome::Returned
            }
            Some(_) => return SweepOutcome::StillEjected,
            None => SweepOutcome::Healthy,
        };
        let decays = match &mut self.last_return {
            LastReturn::Never => false,
            LastReturn::At(t) => now.saturating_duration_since(*t) >= self.cfg.interval,
            LastReturn::ByProbe { sweeps } => {
                *sweeps = sweeps.saturating_add(1);
                *sweeps > 1
            }
        };
        if decays {
            self.backoff = self.backoff.saturating_sub(1);
        }
        outcome
    }

    /// An active health check passed: an ejected host returns at once with its counters reset (Envoy's
    /// `successful_active_health_check_uneject_host`). A host that is not ejected is left as it is, counters
    /// included, as in Envoy.
    pub fn unejected_by_probe(&mut self) {
        if self.is_ejected() {
            self.return_host(LastReturn::ByProbe { sweeps: 0 });
        }
    }

    /// Resets the consecutive counters, as a return does: the timeline (DESIGN §6) returned the host, and a
    /// few old errors must not re-eject it at once.
    pub fn reset_counters(&mut self) {
        self.counters = Counters::default();
    }

    fn return_host(&mut self, how: LastReturn) {
        self.ejected_at = None;
        self.counters = Counters::default();
        self.last_return = how;
    }

    /// `min(base * k, max)` for the current `k` and configuration.
    fn ejection_duration(&self) -> Duration {
        mul(self.cfg.base_ejection_time, self.backoff).min(self.cfg.max_ejection_time)
    }

    /// Whether the host is ejected (until a sweep or a probe returns it, even if its time is up).
    pub fn is_ejected(&self) -> bool {
        self.ejected_at.is_some()
    }

    /// Envoy's back-off multiplier `k`: +1 per ejection, −1 per healthy interval. DESIGN §6 shares it as the
    /// host's ejection count.
    pub fn ejection_count(&self) -> u32 {
        self.backoff
    }

    /// When the current ejection's time is up (`None` when not ejected, or if the instant is unrepresentable).
    pub fn ejected_until(&self) -> Option<Instant> {
        self.ejected_at?.checked_add(self.ejection_duration())
    }

    /// Time left of the current ejection at `now` (zero once it is up but no sweep has returned the host yet);
    /// `None` when not ejected.
    pub fn time_left(&self, now: Instant) -> Option<Duration> {
        let at = self.ejected_at?;
        Some(
            self.ejection_duration()
                .saturating_sub(now.saturating_duration_since(at)),
        )
    }

    /// The reason of the most recent ejection (kept after the host returns).
    pub fn last_reason(&self) -> Option<EjectionReason> {
        self.last_reason
    }

    /// The consecutive-error counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }
}

/// `d * k`, saturating instead of panicking on overflow.
fn mul(d: Duration, k: u32) -> Duration {
    d.checked_mul(k).unwrap_or(Duration::MAX)
}

/// Whether one more host of a route rule may be ejected (Envoy `ejectHost`): when
/// `100 * (ejected_now + 1) / total_hosts <= max_ejection_percent` (compared exactly, as Envoy compares a
/// real-valued percentage; `max_ejection_percent` above 100 acts as 100), or, with
/// `always_eject_one_endpoint`, when no host is ejected yet. `total_hosts` counts every host of the rule, all
/// priorities (Envoy does not check per priority).
pub fn ejection_allowed(
    ejected_now: usize,
    total_hosts: usize,
    max_ejection_percent: u32,
    always_eject_one_endpoint: bool,
) -> bool {
    let max = u128::from(max_ejection_percent.min(100));
    let within = total_hosts > 0 && 100 * (ejected_now as u128 + 1) <= max * total_hosts as u128;
    within || (always_eject_one_endpoint && ejected_now == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use EjectionReason as R;
    use LocalOriginFailure as L;
    use Observation as O;

    fn cfg(c5xx: u32, gateway: u32, local: u32, split: bool) -> PassiveHealthConfig {
        PassiveHealthConfig {
            consecutive_5xx: c5xx,
            consecutive_gateway_errors: gateway,
            consecutive_local_origin_failures: local,
            split_external_local_origin_errors: split,
            ..PassiveHealthConfig::default()
        }
    }

    fn counters(c5xx: u32, gateway: u32, local: u32) -> Counters {
        Counters {
            consecutive_5xx: c5xx,
            consecutive_gateway: gateway,
            consecutive_local_origin: local,
        }
    }

    /// (name, config, observations, reason fired per observation, final counters)
    type ObservationCase = (
        &'static str,
        PassiveHealthConfig,
        Vec<Observation>,
        Vec<Option<R>>,
        Counters,
    );

    #[test]
    fn observation_table() {
        // (name, config, observations, reasons fired (one per observation), final counters)
        let cases: Vec<ObservationCase> = vec![
            (
                "any_5xx_counts_and_fires_at_threshold",
                cfg(3, 0, 5, false),
                vec![O::Status(500), O::Status(501), O::Status(599)],
                vec![None, None, Some(R::Consecutive5xx)],
                counters(0, 0, 0),
            ),
            (
                "gateway_statuses_count_both",
                cfg(5, 5, 5, false),
                vec![O::Status(502), O::Status(503), O::Status(504)],
                vec![None, None, None],
                counters(3, 3, 0),
            ),
            (
                "non_gateway_5xx_resets_gateway_counter",
                cfg(5, 5, 5, false),
                vec![O::Status(502), O::Status(503), O::Status(500)],
                vec![None, None, None],
                counters(3, 0, 0),
            ),
            (
                "gateway_errors_fire_at_threshold",
                cfg(5, 2, 5, false),
                vec![O::Status(502), O::Status(504)],
                vec![None, Some(R::ConsecutiveGatewayErrors)],
                counters(2, 0, 0),
            ),
            (
                "consecutive_gateway_errors_0_never_ejects",
                cfg(0, 0, 5, false),
                vec![O::Status(503); 20],
                vec![None; 20],
                counters(20, 20, 0),
            ),
            (
                "consecutive_5xx_0_never_ejects",
                cfg(0, 0, 5, false),
                vec![O::Status(500); 5],
                vec![None; 5],
                counters(5, 0, 0),
            ),
            (
                "status_429_resets_counters",
                cfg(3, 3, 5, false),
                vec![
                    O::Status(503),
                    O::Status(503),
                    O::Status(429),
                    O::Status(503),
                ],
                vec![None, None, None, None],
                counters(1, 1, 0),
            ),
            (
                "success_resets_counters",
                cfg(3, 3, 5, false),
                vec![O::Status(500), O::Status(500), O::Status(200)],
                vec![None, None, None],
                counters(0, 0, 0),
            ),
            (
                "4xx_resets_counters",
                cfg(3, 3, 5, false),
                vec![O::Status(502), O::Status(404)],
                vec![None, None],
                counters(0, 0, 0),
            ),
            (
                "both_thresholds_at_once_report_gateway_and_reset_both",
                cfg(2, 2, 5, false),
                vec![O::Status(503), O::Status(503)],
                vec![None, Some(R::ConsecutiveGatewayErrors)],
                counters(0, 0, 0),
            ),
            (
                "fired_counter_reset_other_kept",
                cfg(3, 2, 5, false),
                vec![O::Status(503), O::Status(503)],
                vec![None, Some(R::ConsecutiveGatewayErrors)],
                counters(2, 0, 0),
            ),
            (
                "unsplit_connect_failure_counts_as_503",
                cfg(5, 5, 1, false),
                vec![O::LocalOriginFailure(L::ConnectFailed)],
                vec![None],
                counters(1, 1, 0),
            ),
            (
                "unsplit_tls_and_reset_count_as_503",
                cfg(5, 5, 1, false),
                vec![
                    O::LocalOriginFailure(L::TlsFailed),
                    O::LocalOriginFailure(L::Reset),
                ],
                vec![None, None],
                counters(2, 2, 0),
            ),
            (
                "unsplit_timeout_counts_as_504",
                cfg(5, 1, 5, false),
                vec![O::LocalOriginFailure(L::Timeout)],
                vec![Some(R::ConsecutiveGatewayErrors)],
                counters(1, 0, 0),
            ),
            (
                "unsplit_local_failures_eject_as_5xx",
                cfg(2, 0, 1, false),
                vec![
                    O::LocalOriginFailure(L::ConnectFailed),
                    O::LocalOriginFailure(L::Timeout),
                ],
                vec![None, Some(R::Consecutive5xx)],
                counters(0, 2, 0),
            ),
            (
                "unsplit_connect_succeeded_is_no_op",
                cfg(5, 5, 5, false),
                vec![O::Status(500), O::ConnectSucceeded],
                vec![None, None],
                counters(1, 0, 0),
            ),
            (
                "split_local_failures_count_only_as_local_origin",
                cfg(1, 1, 5, true),
                vec![
                    O::LocalOriginFailure(L::ConnectFailed),
                    O::LocalOriginFailure(L::TlsFailed),
                    O::LocalOriginFailure(L::Reset),
                    O::LocalOriginFailure(L::Timeout),
                ],
                vec![None, None, None, None],
                counters(0, 0, 4),
            ),
            (
                "split_local_origin_fires_at_threshold",
                cfg(5, 5, 2, true),
                vec![
                    O::LocalOriginFailure(L::ConnectFailed),
                    O::LocalOriginFailure(L::Timeout),
                ],
                vec![None, Some(R::ConsecutiveLocalOriginFailures)],
                counters(0, 0, 0),
            ),
            (
                "split_connect_succeeded_resets_local_origin",
                cfg(5, 5, 2, true),
                vec![
                    O::LocalOriginFailure(L::ConnectFailed),
                    O::ConnectSucceeded,
                    O::LocalOriginFailure(L::ConnectFailed),
                ],
                vec![None, None, None],
                counters(0, 0, 1),
            ),
            (
                "split_status_does_not_reset_local_origin",
                cfg(5, 5, 3, true),
                vec![
                    O::LocalOriginFailure(L::Reset),
                    O::Status(200),
                    O::Status(500),
                ],
                vec![None, None, None],
                counters(1, 0, 1),
            ),
            (
                "split_local_origin_threshold_0_never_fires",
                cfg(5, 5, 0, true),
                vec![O::LocalOriginFailure(L::ConnectFailed); 3],
                vec![None; 3],
                counters(0, 0, 3),
            ),
            (
                "refused_by_budget_fires_again_after_fresh_run",
                cfg(2, 0, 5, false),
                vec![O::Status(500); 4],
                vec![None, Some(R::Consecutive5xx), None, Some(R::Consecutive5xx)],
                counters(0, 0, 0),
            ),
        ];
        for (name, config, observations, fired, want) in cases {
            let mut d = OutlierDetector::new(config);
            let got: Vec<Option<R>> = observations.into_iter().map(|o| d.observe(o)).collect();
            assert_eq!(got, fired, "{name}: fired");
            assert_eq!(d.counters(), want, "{name}: counters");
        }
    }

    #[test]
    fn while_ejected_observations_count_but_never_fire() {
        let t0 = Instant::now();
        let mut d = OutlierDetector::new(cfg(1, 0, 5, false));
        assert_eq!(d.observe(O::Status(500)), Some(R::Consecutive5xx));
        d.eject(R::Consecutive5xx, t0);
        let fired: Vec<_> = (0..3).map(|_| d.observe(O::Status(500))).collect();
        assert_eq!(fired, vec![None, None, None]);
        assert_eq!(d.counters(), counters(3, 0, 0));
    }

    /// Base 5 s, interval 2 s, max 300 s.
    fn timed() -> PassiveHealthConfig {
        PassiveHealthConfig {
            consecutive_5xx: 1,
            interval: Duration::from_secs(2),
            base_ejection_time: Duration::from_secs(5),
            max_ejection_time: Duration::from_secs(300),
            ..PassiveHealthConfig::default()
        }
    }

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn sweep_returns_between_5_and_7_seconds() {
        let t0 = Instant::now();
        let mut d = OutlierDetector::new(timed());
        d.observe(O::Status(500));
        d.eject(R::Consecutive5xx, t0);
        assert_eq!(d.ejected_until(), Some(secs(t0, 5)));
        let outcomes: Vec<_> = [2, 4, 6].iter().map(|s| d.sweep(secs(t0, *s))).collect();
        assert_eq!(
            outcomes,
            vec![
                SweepOutcome::StillEjected,
                SweepOutcome::StillEjected,
                SweepOutcome::Returned
            ]
        );
        assert!(!d.is_ejected());
        assert_eq!(d.last_reason(), Some(R::Consecutive5xx));
    }

    #[test]
    fn return_at_exactly_the_end_and_resets_counters() {
        let t0 = Instant::now();
        let mut d = OutlierDetector::new(PassiveHealthConfig {
            consecutive_5xx: 3,
            ..timed()
        });
        d.observe(O::Status(500));
        d.observe(O::Status(500));
        d.observe(O::Status(500));
        d.eject(R::Consecutive5xx, t0);
        d.observe(O::Status(502));
        assert_eq!(d.sweep(secs(t0, 5)), SweepOutcome::Returned);
        assert_eq!(d.counters(), Counters::default());
        assert_eq!(d.sweep(secs(t0, 7)), SweepOutcome::Healthy);
    }

    #[test]
    fn ejection_length_grows_and_caps() {
        // Repeated ejections with no decay between: returns are driven at exactly the end of each ejection
        // and the next ejection follows at once, so no healthy interval passes.
        let cases = [
            ("first_ejection_is_base", timed(), 1, 5),
            ("third_ejection_lasts_15s", timed(), 3, 15),
            ("cap_at_300s", timed(), 70, 300),
            (
                "max_below_base_caps_at_max",
                PassiveHealthConfig {
                    base_ejection_time: Duration::from_secs(30),
                    max_ejection_time: Duration::from_secs(10),
                    ..timed()
                },
                2,
                10,
            ),
        ];
        for (name, config, ejections, want_secs) in cases {
            let t0 = Instant::now();
            let mut d = OutlierDetector::new(config);
            let mut now = t0;
            let mut last = Duration::ZERO;
            for _ in 0..ejections {
                d.eject(R::Consecutive5xx, now);
                let until = d.ejected_until().expect("ejected");
                last = until - now;
                now = until;
                assert_eq!(d.sweep(now), SweepOutcome::Returned, "{name}");
            }
            assert_eq!(last, Duration::from_secs(want_secs), "{name}");
        }
    }

    #[test]
    fn multiplier_growth_is_capped_like_envoy() {
        // k grows while k * base < max + base: 5 s base, 300 s max -> k stops at 61.
        let t0 = Instant::now();
        let mut d = OutlierDetector::new(timed());
        for _ in 0..100 {
            d.eject(R::Consecutive5xx, t0);
            d.unejected_by_probe();
        }
        assert_eq!(d.ejection_count(), 61);
    }

    #[test]
    fn decay_table() {
        // (name, sweep times in seconds on a clock where the 3rd ejection returns at 15, expected k after each)
        let cases: [(&str, Vec<u64>, Vec<u32>); 3] = [
            (
                "decays_one_per_healthy_interval",
                vec![17, 19, 21, 23],
                vec![2, 1, 0, 0],
            ),
            (
                "sweep_sooner_than_interval_does_not_decay",
                vec![16, 17],
                vec![3, 2],
            ),
            ("long_gap_decays_only_once_per_sweep", vec![100], vec![2]),
        ];
        for (name, sweeps, want) in cases {
            let t0 = Instant::now();
            let mut d = OutlierDetector::new(timed());
            // Three back-to-back ejections: 5 s, 10 s, 15 s; the last returns at 30 s.
            let mut now = t0;
            for _ in 0..3 {
                d.eject(R::Consecutive5xx, now);
                now = d.ejected_until().expect("ejected");
                assert_eq!(d.sweep(now), SweepOutcome::Returned, "{name}");
            }
            assert_eq!(d.ejection_count(), 3, "{name}");
            let got: Vec<u32> = sweeps
                .iter()
                .map(|s| {
                    assert_eq!(
                        d.sweep(now + Duration::from_secs(*s - 15)),
                        SweepOutcome::Healthy
                    );
                    d.ejection_count()
                })
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn decayed_multiplier_shortens_next_ejection() {
        let t0 = Instant::now();
        let mut d = OutlierDetector::new(timed());
        d.eject(R::Consecutive5xx, t0);
        assert_eq!(d.sweep(secs(t0, 6)), SweepOutcome::Returned);
        d.eject(R::Consecutive5xx, secs(t0, 6)); // k = 2: 10 s
        assert_eq!(d.time_left(secs(t0, 6)), Some(Duration::from_secs(10)));
        assert_eq!(d.sweep(secs(t0, 16)), SweepOutcome::Returned);
        assert_eq!(d.sweep(secs(t0, 18)), SweepOutcome::Healthy); // k = 1
        assert_eq!(d.sweep(secs(t0, 20)), SweepOutcome::Healthy); // k = 0
        d.eject(R::Consecutive5xx, secs(t0, 21)); // k = 1: 5 s
        assert_eq!(d.ejection_count(), 1);
        assert_eq!(d.ejected_until(), Some(secs(t0, 26)));
    }

    #[test]
    fn time_left_table() {
        let t0 = Instant::now();
        let mut d = OutlierDetector::new(timed());
        assert_eq!(d.time_left(t0), None, "not_ejected_has_no_time_left");
        d.eject(R::ConsecutiveGatewayErrors, t0);
        let cases = [
            ("full_at_ejection", 0, Duration::from_secs(5)),
            ("partial", 3, Duration::from_secs(2)),
            ("zero_when_up_before_sweep", 9, Duration::ZERO),
        ];
        for (name, at, want) in cases {
            assert_eq!(d.time_left(secs(t0, at)), Some(want), "{name}");
        }
        assert!(d.is_ejected(), "still ejected until a sweep returns it");
    }

    #[test]
    fn eject_while_ejected_is_ignored() {
        let t0 = Instant::now();
        let mut d = OutlierDetector::new(timed());
        d.eject(R::Consecutive5xx, t0);
        d.eject(R::ConsecutiveGatewayErrors, secs(t0, 1));
        assert_eq!(d.ejection_count(), 1);
        assert_eq!(d.last_reason(), Some(R::Consecutive5xx));
        assert_eq!(d.ejected_until(), Some(secs(t0, 5)));
    }

    #[test]
    fn probe_table() {
        let t0 = Instant::now();
        // Ejected host: returns at once, counters reset, decay skips the first sweep after.
        let mut d = OutlierDetector::new(PassiveHealthConfig {
            consecutive_5xx: 5,
            ..timed()
        });
        d.observe(O::Status(500));
        d.eject(R::Consecutive5xx, t0);
        d.observe(O::Status(500));
        d.unejected_by_probe();
        assert!(!d.is_ejected(), "probe_returns_ejected_host");
        assert_eq!(d.counters(), Counters::default(), "probe_resets_counters");
        assert_eq!(d.sweep(secs(t0, 2)), SweepOutcome::Healthy);
        assert_eq!(
            d.ejection_count(),
            1,
            "first_sweep_after_probe_does_not_decay"
        );
        d.sweep(secs(t0, 4));
        assert_eq!(d.ejection_count(), 0, "second_sweep_after_probe_decays");

        // Host not ejected: left alone, counters kept (Envoy only acts on ejected hosts).
        let mut d = OutlierDetector::new(PassiveHealthConfig {
            consecutive_5xx: 5,
            ..timed()
        });
        d.observe(O::Status(500));
        d.unejected_by_probe();
        assert_eq!(
            d.counters(),
            counters(1, 0, 0),
            "probe_on_healthy_host_is_no_op"
        );
    }

    #[test]
    fn set_config_keeps_counters_and_ejection() {
        let t0 = Instant::now();
        let mut d = OutlierDetector::new(cfg(3, 0, 5, false));
        d.observe(O::Status(500));
        d.observe(O::Status(500));
        d.set_config(cfg(3, 0, 5, false));
        assert_eq!(d.counters(), counters(2, 0, 0), "reload_keeps_counters");
        assert_eq!(d.observe(O::Status(500)), Some(R::Consecutive5xx));
        d.eject(R::Consecutive5xx, t0);
        d.set_config(PassiveHealthConfig {
            base_ejection_time: Duration::from_secs(60),
            ..d.config().clone()
        });
        assert!(d.is_ejected(), "reload_keeps_ejection");
        assert_eq!(
            d.ejected_until(),
            Some(secs(t0, 60)),
            "new_base_applies_to_current_ejection"
        );
    }

    #[test]
    fn ejection_allowed_table() {
        // (name, ejected now, total hosts, max %, always eject one, allowed)
        let cases = [
            ("max_50_two_hosts_first_allowed", 0, 2, 50, false, true),
            ("max_50_two_hosts_second_refused", 1, 2, 50, false, false),
            (
                "default_10_percent_refuses_small_group",
                0,
                2,
                10,
                false,
                false,
            ),
            (
                "always_eject_one_with_max_0_first_allowed",
                0,
                2,
                0,
                true,
                true,
            ),
            (
                "always_eject_one_with_max_0_second_refused",
                1,
                2,
                0,
                true,
                false,
            ),
            (
                "always_eject_one_does_not_block_budget",
                1,
                4,
                50,
                true,
                true,
            ),
            ("max_100_allows_last_host", 2, 3, 100, false, true),
            ("exact_comparison_not_rounded_down", 0, 3, 33, false, false),
            ("exact_boundary_allowed", 0, 3, 34, false, true),
            ("max_above_100_acts_as_100", 3, 3, 250, false, false),
            ("no_hosts_refused", 0, 0, 100, false, false),
        ];
        for (name, ejected, total, max, always, want) in cases {
            assert_eq!(
                ejection_allowed(ejected, total, max, always),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn reason_names_round_trip() {
        let cases = [
            (R::Consecutive5xx, "consecutive_5xx"),
            (R::ConsecutiveGatewayErrors, "consecutive_gateway_failure"),
            (
                R::ConsecutiveLocalOriginFailures,
                "consecutive_local_origin_failure",
            ),
        ];
        for (reason, name) in cases {
            assert_eq!(reason.as_str(), name);
            assert_eq!(reason.to_string(), name);
            assert_eq!(R::parse(name), Some(reason));
        }
        assert_eq!(R::parse("nonsense"), None);
    }
}
