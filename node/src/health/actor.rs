//! The BackendHealth actor: one per backend host, owning its outlier detector and sweep timer.
//!
//! It is the only writer of the host's [`HostHealth`] flag. Successes arrive fire-and-forget; a failed attempt
//! is sent with a reply port and acknowledged only after the detector has run (and the flag is set), so a
//! retry's host choice already sees the ejection the failure caused (DESIGN §1, §4).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use switchyard_protocol::ObservationClass;
use tokio::task::JoinHandle;

use crate::cluster::gossip::GossipMsg;
use crate::config::model::PassiveHealthConfig;
use crate::health::active::{ActiveProbe, ActiveState};
use crate::health::outlier::{Observation, OutlierDetector, SweepOutcome};
use crate::health::view::{EjectionGroup, HostHealth};

/// What a host is told on (re)configuration: its passive policy and the rule groups it belongs to.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    /// `healthCheck.passive`; `None` disables ejection (Envoy Gateway configures no outlier detection).
    pub passive: Option<PassiveHealthConfig>,
    /// Every route rule this host serves in, for `maxEjectionPercent`.
    pub groups: Vec<Arc<EjectionGroup>>,
    /// `healthCheck.active`: the probe to run, if configured.
    pub active: Option<ActiveProbe>,
}

/// Messages to a BackendHealth actor.
#[derive(Debug)]
pub enum HealthMsg {
    /// An attempt outcome, fire-and-forget.
    Observe(Observation),
    /// A failed attempt's outcome; the reply (true when the host is now ejected) comes after the detector ran.
    ObserveAck(Observation, RpcReplyPort<bool>),
    /// The interval timer fired.
    Sweep,
    /// New policy after a config (re)load; counters and ejection survive. Boxed: reloads are rare, outcomes
    /// are not, and the mailbox slot is sized by the largest variant.
    Configure(Box<HostPolicy>),
    /// Status for `/status`.
    Status(RpcReplyPort<HostStatus>),
    /// An active health-check probe finished (true = passed).
    Probe(bool),
}

/// One host's health as shown by `/status` and `switchyard status`.
#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    /// Whether the host is ejected locally.
    pub ejected: bool,
    /// Why it was last ejected (`consecutive_5xx`, …).
    pub reason: Option<&'static str>,
    /// Milliseconds until the ejection time is up (the host returns at the next sweep after that).
    pub time_left_ms: Option<u64>,
    /// Envoy's ejection multiplier k.
    pub ejection_count: u32,
    /// Consecutive 5xx counter.
    pub consecutive_5xx: u32,
    /// Consecutive gateway-error counter.
    pub consecutive_gateway_errors: u32,
    /// Consecutive local-origin failure counter.
    pub consecutive_local_origin_failures: u32,
    /// Whether passive health checking is configured for this host.
    pub outlier_detection: bool,
    /// Whether active health checking is configured for this host.
    pub active_health_check: bool,
    /// The host is failing its active health check.
    pub active_check_failed: bool,
}

/// Spawn arguments.
pub struct HealthArgs {
    /// The host's key (`namespace/backend|host:port`), for logs and metrics.
    pub key: String,
    /// The published flag.
    pub view: Arc<HostHealth>,
    /// Initial policy.
    pub policy: HostPolicy,
    /// The Gossip actor, when the node is in a cluster: told about local ejections and returns.
    pub gossip: Option<ActorRef<GossipMsg>>,
}

/// The actor's state.
pub struct HealthState {
    key: String,
    view: Arc<HostHealth>,
    policy: HostPolicy,
    detector: Option<OutlierDetector>,
    /// Groups whose slot this host holds while ejected (released on return, even after a reload).
    held: Vec<Arc<EjectionGroup>>,
    timer: Option<(Duration, JoinHandle<()>)>,
    active: ActiveState,
    probe: Option<(ActiveProbe, JoinHandle<()>)>,
    gossip: Option<ActorRef<GossipMsg>>,
}

/// The BackendHealth actor.
pub struct BackendHealth;

impl HealthState {
    fn apply(&mut self, myself: &ActorRef<HealthMsg>, policy: HostPolicy) {
        match (&mut self.detector, &policy.passive) {
            (Some(d), Some(cfg)) => d.set_config(cfg.clone()),
            (None, Some(cfg)) => self.detector = Some(OutlierDetector::new(cfg.clone())),
            (_, None) => {
                if self.detector.take().is_some_and(|d| d.is_ejected()) {
                    self.release_slots();
                }
            }
        }
        let keep_probe = matches!((&self.probe, &policy.active), (Some((cur, _)), Some(new)) if cur.same_as(new));
        if !keep_probe {
            if let Some((_, h)) = self.probe.take() {
                h.abort();
            }
            if policy.active.is_none() {
                self.active = ActiveState::default();
            }
            if let Some(probe) = policy.active.clone() {
                let handle = probe.clone().spawn(myself.clone());
                self.probe = Some((probe, handle));
            }
        }
        let interval = policy.passive.as_ref().map(|p| p.interval);
        let keep = matches!((&self.timer, interval), (Some((cur, _)), Some(new)) if *cur == new);
        if !keep {
            if let Some((_, h)) = self.timer.take() {
                h.abort();
            }
            if let Some(every) = interval {
                let every = every.max(Duration::from_millis(10));
                self.timer = Some((every, myself.send_interval(every, || HealthMsg::Sweep)));
            }
        }
        self.policy = policy;
        self.publish();
    }

    /// The published flag: ejected by the outlier detector or failing active checks.
    fn publish(&self) {
        let ejected = self.detector.as_ref().is_some_and(|d| d.is_ejected()) || self.active.failed;
        if ejected != self.view.is_locally_ejected() {
            self.view.set_local_ejected(ejected);
            metrics::gauge!("switchyard_backend_ejected", "backend" => self.key.clone())
                .set(if ejected { 1.0 } else { 0.0 });
        }
    }

    fn on_probe(&mut self, passed: bool) {
        let Some((probe, _)) = &self.probe else {
            return;
        };
        let cfg = probe.config.clone();
        if self.active.record(passed, &cfg) {
            if self.active.failed {
                tracing::warn!(host = %self.key, "backend host failed its active health check");
                metrics::counter!("switchyard_ejections_total", "backend" => self.key.clone(),
                    "reason" => "active_health_check", "source" => "local")
                .increment(1);
            } else {
                tracing::info!(host = %self.key, "backend host passes its active health check again");
            }
        }
        // DESIGN §5: a passing probe returns an outlier-ejected host immediately.
        if passed {
            if let Some(d) = self.detector.as_mut().filter(|d| d.is_ejected()) {
                d.unejected_by_probe();
                self.release_slots();
                tracing::info!(host = %self.key, "active health check passed: ejected host returned");
            }
        }
        self.publish();
    }

    fn observe(&mut self, obs: Observation, now: Instant) {
        let Some(detector) = self.detector.as_mut() else {
            return;
        };
        // DESIGN §6: HTTP answers are the provider's evidence; local-origin failures may be this node's
        // network, so the cluster needs a quorum of observers for them.
        let class = match obs {
            Observation::LocalOriginFailure(_) => ObservationClass::Network,
            Observation::Status(_) | Observation::ConnectSucceeded => ObservationClass::Provider,
        };
        let Some(reason) = detector.observe(obs) else {
            return;
        };
        // Every group the host belongs to must have room (DESIGN §5: over all hosts of the rule).
        let mut taken: Vec<Arc<EjectionGroup>> = Vec::new();
        for g in &self.policy.groups {
            if g.try_reserve() {
                taken.push(g.clone());
            } else {
                for t in &taken {
                    t.release();
                }
                tracing::info!(host = %self.key, reason = reason.as_str(), "ejection refused by maxEjectionPercent");
                return;
            }
        }
        // Continue from the cluster's count so ejection lengths grow alike on every node (`max + 1`).
        detector.raise_ejection_count(self.view.cluster_ejection_count());
        detector.eject(reason, now);
        self.held = taken;
        let left = detector.time_left(now).unwrap_or_default();
        if let Some(g) = &self.gossip {
            let _ = g.cast(GossipMsg::LocalEjection {
                host: self.key.clone(),
                reason: reason.as_str(),
                class,
                remaining: left,
                ejection_count: detector.ejection_count(),
            });
        }
        tracing::warn!(host = %self.key, reason = reason.as_str(), ejection_count = detector.ejection_count(),
            ejection_ms = left.as_millis() as u64, "backend host ejected");
        metrics::counter!("switchyard_ejections_total", "backend" => self.key.clone(),
            "reason" => reason.as_str(), "source" => "local")
        .increment(1);
        self.publish();
    }

    fn release_slots(&mut self) {
        for g in self.held.drain(..) {
            g.release();
        }
        if let Some(g) = &self.gossip {
            let _ = g.cast(GossipMsg::LocalReturn {
                host: self.key.clone(),
            });
        }
    }

    fn status(&self, now: Instant) -> HostStatus {
        let active_health_check = self.probe.is_some();
        let active_check_failed = self.active.failed;
        let mut status = self.outlier_status(now);
        status.active_health_check = active_health_check;
        status.active_check_failed = active_check_failed;
        if active_check_failed {
            status.ejected = true;
            if status.reason.is_none() || status.time_left_ms.is_none() {
                status.reason = Some("active_health_check");
            }
        }
        status
    }

    fn outlier_status(&self, now: Instant) -> HostStatus {
        match &self.detector {
            Some(d) => {
                let c = d.counters();
                HostStatus {
                    ejected: d.is_ejected(),
                    reason: d
                        .last_reason()
                        .filter(|_| d.is_ejected())
                        .map(|r| r.as_str()),
                    time_left_ms: d.time_left(now).map(|t| t.as_millis() as u64),
                    ejection_count: d.ejection_count(),
                    consecutive_5xx: c.consecutive_5xx,
                    consecutive_gateway_errors: c.consecutive_gateway,
                    consecutive_local_origin_failures: c.consecutive_local_origin,
                    outlier_detection: true,
                    active_health_check: false,
                    active_check_failed: false,
                }
            }
            None => HostStatus {
                ejected: false,
                reason: None,
                time_left_ms: None,
                ejection_count: 0,
                consecutive_5xx: 0,
                consecutive_gateway_errors: 0,
                consecutive_local_origin_failures: 0,
                outlier_detection: false,
                active_health_check: false,
                active_check_failed: false,
            },
        }
    }
}

impl Actor for BackendHealth {
    type Msg = HealthMsg;
    type State = HealthState;
    type Arguments = HealthArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = HealthState {
            key: args.key,
            view: args.view,
            policy: HostPolicy {
                passive: None,
                groups: Vec::new(),
                active: None,
            },
            detector: None,
            held: Vec::new(),
            timer: None,
            active: ActiveState::default(),
            probe: None,
            gossip: args.gossip,
        };
        state.apply(&myself, args.policy);
        state.publish_quiet();
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some((_, h)) = state.timer.take() {
            h.abort();
        }
        if let Some((_, h)) = state.probe.take() {
            h.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let now = Instant::now();
        let counts = !matches!(message, HealthMsg::Status(_));
        state.handle(&myself, message, now);
        if counts {
            state.publish_quiet();
        }
        Ok(())
    }
}

impl HealthState {
    /// Publishes whether a success would be a no-op (every consecutive counter 0), for
    /// [`crate::health::registry::HostEntry::report`].
    fn publish_quiet(&self) {
        let quiet = self.detector.as_ref().is_none_or(|d| {
            let c = d.counters();
            c.consecutive_5xx == 0 && c.consecutive_gateway == 0 && c.consecutive_local_origin == 0
        });
        self.view.set_quiet(quiet);
    }

    fn handle(&mut self, myself: &ActorRef<HealthMsg>, message: HealthMsg, now: Instant) {
        match message {
            HealthMsg::Observe(obs) => self.observe(obs, now),
            HealthMsg::ObserveAck(obs, reply) => {
                self.observe(obs, now);
                let _ = reply.send(self.view.is_ejected());
            }
            HealthMsg::Sweep => {
                let returned = self
                    .detector
                    .as_mut()
                    .is_some_and(|d| matches!(d.sweep(now), SweepOutcome::Returned));
                if returned {
                    self.release_slots();
                    tracing::info!(host = %self.key, "backend host returned");
                    self.publish();
                }
            }
            HealthMsg::Configure(policy) => self.apply(myself, *policy),
            HealthMsg::Status(reply) => {
                let _ = reply.send(self.status(now));
            }
            HealthMsg::Probe(passed) => self.on_probe(passed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::outlier::LocalOriginFailure;

    async fn host(passive: Option<PassiveHealthConfig>) -> (ActorRef<HealthMsg>, Arc<HostHealth>) {
        let view = Arc::new(HostHealth::default());
        let (actor, _) = Actor::spawn(
            None,
            BackendHealth,
            HealthArgs {
                key: "default/b|127.0.0.1:1".into(),
                view: view.clone(),
                policy: HostPolicy {
                    passive,
                    groups: vec![Arc::new(EjectionGroup::new(1, 0, 100, false))],
                    active: None,
                },
                gossip: None,
            },
        )
        .await
        .expect("spawn");
        (actor, view)
    }

    async fn observe(actor: &ActorRef<HealthMsg>, obs: Observation) {
        let r = actor
            .call(|port| HealthMsg::ObserveAck(obs, port), None)
            .await
            .expect("call");
        assert!(matches!(r, ractor::rpc::CallResult::Success(_)));
    }

    /// The flag that lets the request path skip reporting successes: set while every counter is 0, cleared
    /// by the first failure that counts, set again by the success that resets the counters.
    #[tokio::test]
    async fn success_is_a_noop_exactly_while_every_counter_is_zero() {
        let cfg = PassiveHealthConfig {
            consecutive_5xx: 3,
            consecutive_local_origin_failures: 3,
            ..PassiveHealthConfig::default()
        };
        let (actor, view) = host(Some(cfg.clone())).await;
        assert!(view.success_is_noop(), "fresh host");
        observe(&actor, Observation::Status(500)).await;
        assert!(!view.success_is_noop(), "one 5xx counted");
        observe(&actor, Observation::Status(200)).await;
        assert!(view.success_is_noop(), "reset by a 200");
        observe(
            &actor,
            Observation::LocalOriginFailure(LocalOriginFailure::ConnectFailed),
        )
        .await;
        assert!(
            !view.success_is_noop(),
            "an unsplit connect failure counts as 503"
        );
        observe(&actor, Observation::Status(429)).await;
        assert!(view.success_is_noop(), "429 resets too");
        actor.stop(None);

        let split = PassiveHealthConfig {
            split_external_local_origin_errors: true,
            ..cfg
        };
        let (actor, view) = host(Some(split)).await;
        observe(
            &actor,
            Observation::LocalOriginFailure(LocalOriginFailure::Reset),
        )
        .await;
        assert!(
            !view.success_is_noop(),
            "split: a local-origin failure counts"
        );
        observe(&actor, Observation::Status(200)).await;
        assert!(
            !view.success_is_noop(),
            "split: an answer does not reset local-origin"
        );
        observe(&actor, Observation::ConnectSucceeded).await;
        assert!(view.success_is_noop(), "split: a connect that worked does");
        actor.stop(None);

        let (actor, view) = host(None).await;
        observe(&actor, Observation::Status(500)).await;
        assert!(
            view.success_is_noop(),
            "no outlier detection: nothing ever counts"
        );
        actor.stop(None);
    }

    #[test]
    fn successes_are_non_5xx_answers_and_working_connects() {
        assert!(Observation::Status(200).is_success());
        assert!(Observation::Status(429).is_success());
        assert!(Observation::Status(404).is_success());
        assert!(!Observation::Status(500).is_success());
        assert!(!Observation::Status(503).is_success());
        assert!(Observation::ConnectSucceeded.is_success());
        assert!(!Observation::LocalOriginFailure(LocalOriginFailure::Timeout).is_success());
    }
}
