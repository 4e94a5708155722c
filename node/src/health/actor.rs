//! The BackendHealth actor: one per host of a route rule, owning its outlier detector, its ejection
//! timeline and their timers.
//!
//! It is the only writer of the host's [`HostHealth`] gate. Successes arrive fire-and-forget; a failed
//! attempt is sent with a reply port and acknowledged only after the detector has run (and the gate is set),
//! so a retry's host choice already sees the ejection the failure caused (DESIGN §1, §4).
//!
//! Two modes, chosen per node:
//! - [`HealthMode::Timeline`] (the default; a standalone node too): the detector only counts; ejections and
//!   returns follow the host's [`Timeline`] — one timeline across the cluster and a single trial at each
//!   expiry (DESIGN §6). The Gossip actor hands it the cluster's verdicts ([`HealthMsg::Cluster`]).
//! - [`HealthMode::Envoy`] (`--share-ejections off`): Envoy's outlier detection on this node alone, returns at
//!   the interval sweep; records still go to the cluster for `/status`, nothing comes back.
//!
//! Either way every change of what this node says about the host goes down the [`HostEvents`] channel.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use switchyard_protocol::{ObservationClass, Verdict};
use tokio::task::JoinHandle;

use crate::config::model::PassiveHealthConfig;
use crate::health::active::{ActiveProbe, ActiveState};
use crate::health::events::{ClusterFact, HostEvent, HostEvents, LiveSetHandle, LocalRecord};
use crate::health::key::HostKey;
use crate::health::outlier::{Observation, OutlierDetector, SweepOutcome};
use crate::health::timeline::{trial_node, Gate, Step, Timeline, TimelineConfig};
use crate::health::view::{EjectionGroup, HostHealth};

/// How the node's hosts eject and return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthMode {
    /// One timeline across the cluster, a single trial at each expiry.
    Timeline,
    /// Envoy's per-node outlier detection, exactly.
    Envoy,
}

/// While another node runs a trial, how often this one checks that the trial node is still live (so the
/// role moves on if it died).
const TRIAL_RECHECK: Duration = Duration::from_millis(100);

/// What a host is told on (re)configuration: its passive policy and its rule's ejection budget.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    /// `healthCheck.passive`; `None` disables ejection (Envoy Gateway configures no outlier detection).
    pub passive: Option<PassiveHealthConfig>,
    /// The route rule's budget for `maxEjectionPercent`.
    pub groups: Vec<Arc<EjectionGroup>>,
    /// `healthCheck.active`: the probe to run, if configured.
    pub active: Option<ActiveProbe>,
}

/// Messages to a BackendHealth actor.
#[derive(Debug)]
pub enum HealthMsg {
    /// An attempt outcome, fire-and-forget.
    Observe(Observation),
    /// A failed attempt's outcome; the reply (true when the host is now held out) comes after the detector
    /// ran.
    ObserveAck(Observation, RpcReplyPort<bool>),
    /// The interval timer fired (Envoy mode).
    Sweep,
    /// The timeline's timer fired (timeline mode).
    Tick,
    /// The cluster's verdict on this host changed (timeline mode, sharing on).
    Cluster(ClusterFact),
    /// New policy after a config (re)load; counters and ejection survive. Boxed: reloads are rare, outcomes
    /// are not, and the mailbox slot is sized by the largest variant.
    Configure(Box<HostPolicy>),
    /// Status for `/status`.
    Status(RpcReplyPort<HostStatus>),
    /// An active health-check probe finished (true = passed).
    Probe(bool),
    /// The request path met a 429 with `Retry-After` under the rate-limit cooldown extension and has
    /// already extended the host's cooldown to this instant (fire-and-forget): share it with the cluster.
    Cooldown(Instant),
}

/// One host's health as shown by `/status` and `switchyard status`.
#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    /// Whether the host is held out on this node (ejected, or at its trial).
    pub ejected: bool,
    /// Why it was last ejected (`consecutive_5xx`, …).
    pub reason: Option<String>,
    /// Milliseconds until the ejection time is up.
    pub time_left_ms: Option<u64>,
    /// When the ejection time is up, as Unix milliseconds of this node's wall clock: for operators and
    /// tests comparing nodes on one machine (the cluster itself never exchanges wall-clock instants).
    pub ejected_until_unix_ms: Option<u64>,
    /// The ejection number (Envoy's multiplier k).
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
    /// The trial at the end of the ejection, while it runs: which node runs it and for how long it has.
    pub trial: Option<TrialStatus>,
    /// Milliseconds left of the host's rate-limit cooldown (extension), from this node's 429 or another's.
    pub cooldown_ms_left: Option<u64>,
}

/// A trial in progress.
#[derive(Debug, Clone, Serialize)]
pub struct TrialStatus {
    /// The node that sends the one trial request.
    pub node: String,
    /// Milliseconds since the trial began.
    pub since_ms: u64,
    /// Whether the trial request has been sent (on this node).
    pub sent: bool,
}

/// Spawn arguments.
pub struct HealthArgs {
    /// The host.
    pub key: HostKey,
    /// The published gate.
    pub view: Arc<HostHealth>,
    /// Initial policy.
    pub policy: HostPolicy,
    /// Timeline or Envoy.
    pub mode: HealthMode,
    /// Where changes of this node's record of the host go (the Gossip actor reads them).
    pub events: Option<HostEvents>,
    /// The cluster's live set (`None`: a standalone node, which runs every trial itself).
    pub live: Option<LiveSetHandle>,
}

/// The actor's state.
pub struct HealthState {
    key: HostKey,
    view: Arc<HostHealth>,
    policy: HostPolicy,
    mode: HealthMode,
    detector: Option<OutlierDetector>,
    timeline: Option<Timeline>,
    /// Whether the timeline's current hold comes from the cluster (for `/status`).
    by_cluster: bool,
    /// The ejection number the cluster last said it holds the host out under (its [`ClusterFact`]): only a
    /// shared ejection has its trial on another node; one only this node holds (network evidence below
    /// the quorum) is tried here.
    shared_count: Option<u32>,
    /// Groups whose slot this host holds while held out (released on return, even after a reload).
    held: Vec<Arc<EjectionGroup>>,
    timer: Option<(Duration, JoinHandle<()>)>,
    tick: Option<(Instant, TickHandle)>,
    active: ActiveState,
    probe: Option<(ActiveProbe, JoinHandle<()>)>,
    events: Option<HostEvents>,
    live: Option<LiveSetHandle>,
}

/// The BackendHealth actor.
pub struct BackendHealth;

/// The pending timeline timer.
type TickHandle = JoinHandle<Result<(), ractor::MessagingErr<HealthMsg>>>;

fn timeline_config(p: &PassiveHealthConfig) -> TimelineConfig {
    TimelineConfig {
        base: p.base_ejection_time,
        max: p.max_ejection_time,
        interval: p.interval.max(Duration::from_millis(10)),
    }
}

impl HealthState {
    fn configure(&mut self, myself: &ActorRef<HealthMsg>, policy: HostPolicy) {
        match (&mut self.detector, &policy.passive) {
            (Some(d), Some(cfg)) => d.set_config(cfg.clone()),
            (None, Some(cfg)) => self.detector = Some(OutlierDetector::new(cfg.clone())),
            (_, None) => {
                self.detector = None;
            }
        }
        match (self.mode, &mut self.timeline, &policy.passive) {
            (HealthMode::Timeline, Some(t), Some(cfg)) => t.set_config(timeline_config(cfg)),
            (HealthMode::Timeline, None, Some(cfg)) => {
                self.timeline = Some(Timeline::new(timeline_config(cfg)))
            }
            _ => {
                if self.timeline.take().is_some_and(|t| !t.is_healthy()) {
                    self.emit(HostEvent::Cleared(self.key.clone()));
                }
            }
        }
        if policy.passive.is_none() {
            self.release_slots();
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
                let me = myself.clone();
                let handle = probe
                    .clone()
                    .spawn(move |passed| me.cast(HealthMsg::Probe(passed)).is_ok());
                self.probe = Some((probe, handle));
            }
        }
        // Envoy's interval sweep runs in Envoy mode only; the timeline keeps its own deadlines.
        let interval = policy
            .passive
            .as_ref()
            .filter(|_| self.mode == HealthMode::Envoy)
            .map(|p| p.interval);
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
        // A reload builds the rule's budget anew, counting the hosts held out now (this one included): the
        // hold moves to the new groups without taking a second slot, and the old groups are left behind.
        if !self.held.is_empty() {
            self.held = policy.groups.clone();
        }
        self.policy = policy;
        self.publish(myself, Instant::now());
    }

    fn emit(&self, event: HostEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }

    fn apply_step(&mut self, step: Step) {
        match step {
            Step::Quiet => {}
            Step::Publish(record) => self.emit(HostEvent::Record(self.key.clone(), record)),
            Step::Clear => self.emit(HostEvent::Cleared(self.key.clone())),
        }
    }

    /// Whether this node runs the trial of the timeline's current ejection.
    fn trial_mine(&self) -> bool {
        let Some(live) = &self.live else {
            return true;
        };
        let count = self.timeline.as_ref().map_or(0, |t| t.ejection_count());
        if self.shared_count != Some(count) {
            return true;
        }
        let live = live.load();
        trial_node(self.key.as_str(), count, &live.live).is_none_or(|n| *n == live.me)
    }

    fn trial_status(&self, now: Instant) -> Option<TrialStatus> {
        let (since, mine) = self.timeline.as_ref()?.trial()?;
        let count = self.timeline.as_ref().map_or(0, |t| t.ejection_count());
        let node = match &self.live {
            None => "this node".to_string(),
            Some(live) => {
                let live = live.load();
                let other = trial_node(self.key.as_str(), count, &live.live).filter(|_| !mine);
                other.cloned().unwrap_or_else(|| live.me.clone())
            }
        };
        Some(TrialStatus {
            node,
            since_ms: now.saturating_duration_since(since).as_millis() as u64,
            sent: self.view.trial_taken(),
        })
    }

    /// Publishes the gate (and the ejection budget's slots) from the detector or timeline, the active
    /// check, and re-arms the timeline's timer.
    fn publish(&mut self, myself: &ActorRef<HealthMsg>, now: Instant) {
        let (held, trial) = match (&self.timeline, &self.detector) {
            (Some(t), _) => (t.gate() != Gate::Open, t.gate() == Gate::Trial),
            (None, Some(d)) => (d.is_ejected(), false),
            (None, None) => (false, false),
        };
        if held && self.held.is_empty() {
            // Held out: the rule's budget counts this host (a local firing reserved already).
            for g in &self.policy.groups {
                g.force_reserve();
            }
            self.held = self.policy.groups.clone();
        } else if !held {
            self.release_slots();
        }
        let out = held || self.active.failed;
        let trial = trial && !self.active.failed;
        if self
            .view
            .set_gate(out, trial, self.by_cluster && self.timeline.is_some())
        {
            metrics::gauge!("switchyard_backend_ejected", "backend" => self.key.shared())
                .set(if out { 1.0 } else { 0.0 });
        }
        self.arm_tick(myself, now);
    }

    fn arm_tick(&mut self, myself: &ActorRef<HealthMsg>, now: Instant) {
        let Some(t) = &self.timeline else {
            return;
        };
        let Some(mut at) = t.next_deadline() else {
            if let Some((_, h)) = self.tick.take() {
                h.abort();
            }
            return;
        };
        if t.trial().is_some_and(|(_, mine)| !mine) && self.live.is_some() {
            at = at.min(now + TRIAL_RECHECK);
        }
        if self.tick.as_ref().is_some_and(|(cur, _)| *cur == at) {
            return;
        }
        if let Some((_, h)) = self.tick.take() {
            h.abort();
        }
        let wait = at.saturating_duration_since(now);
        self.tick = Some((at, myself.send_after(wait, || HealthMsg::Tick)));
    }

    fn on_probe(&mut self, myself: &ActorRef<HealthMsg>, passed: bool, now: Instant) {
        let Some((probe, _)) = &self.probe else {
            return;
        };
        let cfg = probe.config.clone();
        if self.active.record(passed, &cfg) {
            if self.active.failed {
                tracing::warn!(host = %self.key, "backend host failed its active health check");
                metrics::counter!("switchyard_ejections_total", "backend" => self.key.shared(),
                    "reason" => "active_health_check", "source" => "local")
                .increment(1);
            } else {
                tracing::info!(host = %self.key, "backend host passes its active health check again");
            }
        }
        // DESIGN §5: a passing probe returns an outlier-ejected host immediately.
        if passed {
            if let Some(t) = self.timeline.as_mut().filter(|t| !t.is_healthy()) {
                let step = t.probe_passed(now);
                self.by_cluster = false;
                self.apply_step(step);
                if let Some(d) = self.detector.as_mut() {
                    d.reset_counters();
                }
                tracing::info!(host = %self.key, "active health check passed: ejected host returned");
            } else if let Some(d) = self.detector.as_mut().filter(|d| d.is_ejected()) {
                d.unejected_by_probe();
                self.emit(HostEvent::Cleared(self.key.clone()));
                tracing::info!(host = %self.key, "active health check passed: ejected host returned");
            }
        }
        self.publish(myself, now);
    }

    /// Whether every rule group has room for one more ejection; takes the slots if so.
    fn reserve(&mut self, reason: &str) -> bool {
        let mut taken: Vec<Arc<EjectionGroup>> = Vec::new();
        for g in &self.policy.groups {
            if g.try_reserve() {
                taken.push(g.clone());
            } else {
                for t in &taken {
                    t.release();
                }
                tracing::info!(host = %self.key, reason, "ejection refused by maxEjectionPercent");
                return false;
            }
        }
        self.held = taken;
        true
    }

    fn observe(&mut self, myself: &ActorRef<HealthMsg>, obs: Observation, now: Instant) {
        // DESIGN §6: HTTP answers are the provider's evidence; local-origin failures may be this node's
        // network, so the cluster needs a quorum of observers for them.
        let class = match obs {
            Observation::LocalOriginFailure(_) => ObservationClass::Network,
            Observation::Status(_) | Observation::ConnectSucceeded => ObservationClass::Provider,
        };
        // This node's trial request answered: its outcome is the verdict, whatever the thresholds.
        if self.view.trial_taken() && !matches!(obs, Observation::ConnectSucceeded) {
            if let Some(t) = self.timeline.as_mut() {
                let success = obs.is_success();
                let step = t.trial_outcome(success, "trial_failed", class, now);
                if success {
                    if let Some(d) = self.detector.as_mut() {
                        d.reset_counters();
                    }
                    tracing::info!(host = %self.key, "trial request succeeded: host returned across the cluster");
                } else {
                    self.ejected_log("trial_failed", now);
                }
                self.apply_step(step);
                self.by_cluster = false;
                self.publish(myself, now);
                return;
            }
        }
        let Some(detector) = self.detector.as_mut() else {
            return;
        };
        let Some(reason) = detector.observe(obs) else {
            return;
        };
        let reason = reason.as_str();
        match self.mode {
            HealthMode::Timeline => {
                if !self.timeline.as_ref().is_some_and(|t| t.is_healthy()) {
                    return;
                }
                if !self.reserve(reason) {
                    return;
                }
                let Some(t) = self.timeline.as_mut() else {
                    return;
                };
                let step = t.fire(reason, class, now);
                self.by_cluster = false;
                self.apply_step(step);
            }
            HealthMode::Envoy => {
                if !self.reserve(reason) {
                    return;
                }
                let Some(detector) = self.detector.as_mut() else {
                    return;
                };
                detector.eject(reason_of(reason), now);
                let left = detector.time_left(now).unwrap_or_default();
                let count = detector.ejection_count();
                self.emit(HostEvent::Record(
                    self.key.clone(),
                    LocalRecord {
                        verdict: Verdict::Ejected,
                        reason: reason.to_owned(),
                        class,
                        remaining: left,
                        ejection_count: count,
                    },
                ));
            }
        }
        self.ejected_log(reason, now);
        self.publish(myself, now);
    }

    fn ejected_log(&self, reason: &str, now: Instant) {
        let (count, left) = match (&self.timeline, &self.detector) {
            (Some(t), _) => (t.ejection_count(), t.time_left(now)),
            (None, Some(d)) => (d.ejection_count(), d.time_left(now)),
            (None, None) => (0, None),
        };
        let ejection_ms = left.unwrap_or_default().as_millis() as u64;
        tracing::warn!(host = %self.key, reason, ejection_count = count, ejection_ms, "backend host ejected");
        metrics::counter!("switchyard_ejections_total", "backend" => self.key.shared(),
            "reason" => reason.to_owned(), "source" => "local")
        .increment(1);
    }

    fn on_cluster(&mut self, myself: &ActorRef<HealthMsg>, fact: ClusterFact, now: Instant) {
        if let Some(until) = fact.cooling {
            if self.view.cool_until(until) {
                tracing::warn!(host = %self.key, cooldown_ms = until.saturating_duration_since(now).as_millis() as u64,
                    "backend host rate limited on another node: cooling down");
                metrics::counter!("switchyard_cooldowns_total", "backend" => self.key.shared(),
                    "source" => "cluster")
                .increment(1);
            }
        }
        let Some(t) = self.timeline.as_mut() else {
            return;
        };
        let was_healthy = t.is_healthy();
        if let Some(count) = fact.returned {
            let step = t.returned(count, now);
            if !was_healthy && t.is_healthy() {
                if let Some(d) = self.detector.as_mut() {
                    d.reset_counters();
                }
                tracing::info!(host = %self.key, "backend host returned by the cluster's trial");
            }
            self.apply_step(step);
        }
        if let Some(e) = &fact.ejected {
            self.shared_count = Some(e.count);
            let Some(t) = self.timeline.as_mut() else {
                return;
            };
            let count_before = t.ejection_count();
            t.adopt(e.count, e.until, &e.reason, e.class, now);
            if t.ejection_count() != count_before || was_healthy && !t.is_healthy() {
                self.by_cluster = true;
                tracing::warn!(host = %self.key, reason = %e.reason, ejection_count = e.count,
                    "backend host ejected by the cluster view");
                metrics::counter!("switchyard_ejections_total", "backend" => self.key.shared(),
                    "reason" => e.reason.clone(), "source" => "cluster")
                .increment(1);
            }
        }
        self.publish(myself, now);
    }

    fn on_tick(&mut self, myself: &ActorRef<HealthMsg>, now: Instant) {
        self.tick = None;
        let mine = self.trial_mine();
        let taken = self.view.trial_taken();
        let Some(t) = self.timeline.as_mut() else {
            return;
        };
        if t.in_trial() {
            t.set_trial_mine(mine);
        }
        let was_healthy = t.is_healthy();
        let step = t.tick(now, mine, taken);
        if !was_healthy && t.is_healthy() {
            if let Some(d) = self.detector.as_mut() {
                d.reset_counters();
            }
            self.by_cluster = false;
            tracing::info!(host = %self.key, "no trial verdict within an interval: backend host returned");
        }
        self.apply_step(step);
        self.publish(myself, now);
    }

    fn release_slots(&mut self) {
        for g in self.held.drain(..) {
            g.release();
        }
    }

    fn status(&self, now: Instant) -> HostStatus {
        let mut status = self.outlier_status(now);
        status.active_health_check = self.probe.is_some();
        status.active_check_failed = self.active.failed;
        status.trial = self.trial_status(now);
        status.cooldown_ms_left = self.view.cooling_left(now).map(|d| d.as_millis() as u64);
        if self.active.failed {
            status.ejected = true;
            if status.reason.is_none() || status.time_left_ms.is_none() {
                status.reason = Some("active_health_check".into());
            }
        }
        status
    }

    fn outlier_status(&self, now: Instant) -> HostStatus {
        let c = self
            .detector
            .as_ref()
            .map(|d| d.counters())
            .unwrap_or_default();
        let (ejected, reason, time_left, count) = match (&self.timeline, &self.detector) {
            (Some(t), _) => (
                !t.is_healthy(),
                (!t.is_healthy()).then(|| t.reason().to_owned()),
                t.time_left(now),
                t.decayed_count(now),
            ),
            (None, Some(d)) => (
                d.is_ejected(),
                d.last_reason()
                    .filter(|_| d.is_ejected())
                    .map(|r| r.as_str().to_owned()),
                d.time_left(now),
                d.ejection_count(),
            ),
            (None, None) => (false, None, None, 0),
        };
        let wall = std::time::SystemTime::now();
        HostStatus {
            ejected,
            reason,
            time_left_ms: time_left.map(|t| t.as_millis() as u64),
            ejected_until_unix_ms: time_left
                .and_then(|t| (wall + t).duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as u64),
            ejection_count: count,
            consecutive_5xx: c.consecutive_5xx,
            consecutive_gateway_errors: c.consecutive_gateway,
            consecutive_local_origin_failures: c.consecutive_local_origin,
            outlier_detection: self.detector.is_some(),
            active_health_check: false,
            active_check_failed: false,
            trial: None,
            cooldown_ms_left: None,
        }
    }
}

fn reason_of(s: &str) -> crate::health::outlier::EjectionReason {
    crate::health::outlier::EjectionReason::parse(s)
        .unwrap_or(crate::health::outlier::EjectionReason::Consecutive5xx)
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
            mode: args.mode,
            detector: None,
            timeline: None,
            by_cluster: false,
            shared_count: None,
            held: Vec::new(),
            timer: None,
            tick: None,
            active: ActiveState::default(),
            probe: None,
            events: args.events,
            live: args.live,
        };
        state.configure(&myself, args.policy);
        state.publish_quiet();
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for h in [
            state.timer.take().map(|t| t.1),
            state.probe.take().map(|p| p.1),
        ]
        .into_iter()
        .flatten()
        {
            h.abort();
        }
        if let Some((_, h)) = state.tick.take() {
            h.abort();
        }
        state.release_slots();
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
    /// Publishes whether a success would be a no-op: every consecutive counter 0 and the host in service
    /// (a held-out host's successes matter: one may be its trial's verdict), for
    /// [`crate::health::registry::HostEntry::report`].
    fn publish_quiet(&self) {
        let counters_zero = self.detector.as_ref().is_none_or(|d| {
            let c = d.counters();
            c.consecutive_5xx == 0 && c.consecutive_gateway == 0 && c.consecutive_local_origin == 0
        });
        let in_service = self.timeline.as_ref().is_none_or(|t| t.is_healthy());
        self.view.set_quiet(counters_zero && in_service);
    }

    fn handle(&mut self, myself: &ActorRef<HealthMsg>, message: HealthMsg, now: Instant) {
        match message {
            HealthMsg::Observe(obs) => self.observe(myself, obs, now),
            HealthMsg::ObserveAck(obs, reply) => {
                self.observe(myself, obs, now);
                let _ = reply.send(self.view.is_ejected());
            }
            HealthMsg::Sweep => {
                let returned = self
                    .detector
                    .as_mut()
                    .is_some_and(|d| matches!(d.sweep(now), SweepOutcome::Returned));
                if returned {
                    self.emit(HostEvent::Cleared(self.key.clone()));
                    tracing::info!(host = %self.key, "backend host returned");
                    self.publish(myself, now);
                }
            }
            HealthMsg::Tick => self.on_tick(myself, now),
            HealthMsg::Cluster(fact) => self.on_cluster(myself, fact, now),
            HealthMsg::Configure(policy) => self.configure(myself, *policy),
            HealthMsg::Status(reply) => {
                let _ = reply.send(self.status(now));
            }
            HealthMsg::Probe(passed) => self.on_probe(myself, passed, now),
            HealthMsg::Cooldown(until) => self.on_cooldown(until, now),
        }
    }

    /// Shares this node's cooldown as the host's record, unless the host is held out: then its ejection is
    /// the record the cluster needs, and the cooldown stays local.
    fn on_cooldown(&mut self, until: Instant, now: Instant) {
        let Some(left) = self.view.cooling_left(now).filter(|_| until > now) else {
            return;
        };
        tracing::warn!(host = %self.key, cooldown_ms = left.as_millis() as u64,
            "backend host rate limited: cooling down");
        metrics::counter!("switchyard_cooldowns_total", "backend" => self.key.shared(),
            "source" => "local")
        .increment(1);
        if self.timeline.as_ref().is_some_and(|t| !t.is_healthy()) || self.view.is_ejected() {
            return;
        }
        self.emit(HostEvent::Record(
            self.key.clone(),
            LocalRecord {
                verdict: Verdict::Cooling,
                reason: "rate_limited".to_owned(),
                class: ObservationClass::Provider,
                remaining: left,
                ejection_count: 0,
            },
        ));
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
                key: HostKey::new("default/r", 0, "default/b", "127.0.0.1:1"),
                view: view.clone(),
                policy: HostPolicy {
                    passive,
                    groups: vec![Arc::new(EjectionGroup::new(1, 0, 100, false))],
                    active: None,
                },
                mode: HealthMode::Envoy,
                events: None,
                live: None,
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
