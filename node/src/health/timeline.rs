//! One host's ejection timeline, shared by the whole cluster, with a single trial at each expiry. Pure:
//! time is passed in.
//!
//! Why it exists (DESIGN §6 "One timeline", "Single trial"): Envoy's outlier detector ejects and returns a
//! host on each node's own schedule (sweeps every `interval`, its own multiplier), so N nodes probe a broken
//! provider at N different instants, each with a burst of whatever it has in flight. Here every node holds a
//! host out until the same instant, under the same ejection number `n`, for `min(base × n, max)`:
//! - a local detector firing starts ejection `n + 1` (`n` decayed by one per `interval` spent healthy, as
//!   Envoy decays its multiplier) and the record goes to the cluster;
//! - a cluster ejection with a higher number replaces the local one, one with the same number extends it to
//!   the later end (two nodes that ejected at once), a lower one is stale;
//! - at the end exactly one node — [`trial_node`] of the live set — admits exactly one request (the gate
//!   is [`Gate::Trial`] there, `Closed` everywhere else). Its success returns the host everywhere (a
//!   `Returned` record); its failure starts ejection `n + 1` everywhere;
//! - a node that hears no verdict within one `interval` returns the host on its own evidence (the trial
//!   node died with the verdict, or it had no traffic to try with).
//!
//! A standalone node is a cluster of one: the same trial spares a still-broken provider the burst of every
//! request in flight at each expiry. With `--share-ejections off` the health actor does not use a timeline
//! and stays Envoy-exact.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use switchyard_protocol::{NodeId, ObservationClass, Verdict};

use crate::health::events::LocalRecord;

/// The durations a timeline runs on (the rule's `healthCheck.passive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineConfig {
    /// `baseEjectionTime`.
    pub base: Duration,
    /// Max ejection time: `max(300 s, baseEjectionTime)` (Envoy's default).
    pub max: Duration,
    /// `interval`: the multiplier's decay step and the bounded wait for a trial's verdict.
    pub interval: Duration,
}

/// What the request path may do with the host now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// In service.
    Open,
    /// Held out.
    Closed,
    /// Held out, but this node runs the trial: one request may be sent.
    Trial,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Healthy,
    Ejected { until: Instant },
    Trial { since: Instant, mine: bool },
}

/// What the caller must tell the cluster after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing changed that the cluster needs.
    Quiet,
    /// The node's record of the host is now this.
    Publish(LocalRecord),
    /// The node's record of the host goes (it is back in service here).
    Clear,
}

/// One host's timeline.
#[derive(Debug, Clone)]
pub struct Timeline {
    cfg: TimelineConfig,
    phase: Phase,
    /// The number of the current (or last) ejection.
    count: u32,
    reason: String,
    class: ObservationClass,
    /// When the host last came back, for the decay of `count`.
    returned_at: Option<Instant>,
    /// Whether this node has a record of the host in its cluster state (so a return must clear it).
    published: bool,
}

impl Timeline {
    /// A healthy host that was never ejected.
    pub fn new(cfg: TimelineConfig) -> Self {
        Timeline {
            cfg,
            phase: Phase::Healthy,
            count: 0,
            reason: String::new(),
            class: ObservationClass::Provider,
            returned_at: None,
            published: false,
        }
    }

    /// New durations after a reload; the state is kept.
    pub fn set_config(&mut self, cfg: TimelineConfig) {
        self.cfg = cfg;
    }

    /// The gate the request path sees.
    pub fn gate(&self) -> Gate {
        match self.phase {
            Phase::Healthy => Gate::Open,
            Phase::Ejected { .. } | Phase::Trial { mine: false, .. } => Gate::Closed,
            Phase::Trial { mine: true, .. } => Gate::Trial,
        }
    }

    /// Whether the host is in service.
    pub fn is_healthy(&self) -> bool {
        self.phase == Phase::Healthy
    }

    /// Whether the host is at its trial (this node's or another's).
    pub fn in_trial(&self) -> bool {
        matches!(self.phase, Phase::Trial { .. })
    }

    /// The number of the current (or last) ejection, undecayed.
    pub fn ejection_count(&self) -> u32 {
        self.count
    }

    /// The number decayed at `now`: −1 per `interval` spent healthy since the last return (Envoy decays its
    /// multiplier at each sweep an interval after the return).
    pub fn decayed_count(&self, now: Instant) -> u32 {
        match (self.phase, self.returned_at) {
            (Phase::Healthy, Some(at)) => {
                let step = self.cfg.interval.as_millis().max(1);
                let steps = now.saturating_duration_since(at).as_millis() / step;
                self.count
                    .saturating_sub(u32::try_from(steps).unwrap_or(u32::MAX))
            }
            _ => self.count,
        }
    }

    /// The reason of the current (or last) ejection.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Time left of the current ejection (`None` when not ejected; zero during the trial).
    pub fn time_left(&self, now: Instant) -> Option<Duration> {
        match self.phase {
            Phase::Healthy => None,
            Phase::Ejected { until } => Some(until.saturating_duration_since(now)),
            Phase::Trial { .. } => Some(Duration::ZERO),
        }
    }

    /// When the trial began and whether this node runs it.
    pub fn trial(&self) -> Option<(Instant, bool)> {
        match self.phase {
            Phase::Trial { since, mine } => Some((since, mine)),
            _ => None,
        }
    }

    /// When [`Timeline::tick`] next has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Healthy => None,
            Phase::Ejected { until } => Some(until),
            Phase::Trial { since, .. } => Some(since + self.cfg.interval),
        }
    }

    /// Ejection number `n + 1`, capped like Envoy's multiplier: it grows only while `n × base < max + base`.
    fn next_count(&self, from: u32) -> u32 {
        let grown = self.cfg.base.checked_mul(from).unwrap_or(Duration::MAX);
        if grown < self.cfg.max.saturating_add(self.cfg.base) {
            from.saturating_add(1)
        } else {
            from
        }
    }

    fn length(&self, count: u32) -> Duration {
        self.cfg
            .base
            .checked_mul(count)
            .unwrap_or(Duration::MAX)
            .min(self.cfg.max)
    }

    fn eject(&mut self, count: u32, reason: &str, class: ObservationClass, now: Instant) -> Step {
        let length = self.length(count);
        self.count = count;
        self.reason = reason.to_owned();
        self.class = class;
        self.phase = Phase::Ejected {
            until: now + length,
        };
        self.published = true;
        Step::Publish(LocalRecord {
            verdict: Verdict::Ejected,
            reason: self.reason.clone(),
            class,
            remaining: length,
            ejection_count: count,
        })
    }

    fn back(&mut self, now: Instant) -> Step {
        self.phase = Phase::Healthy;
        self.returned_at = Some(now);
        if std::mem::take(&mut self.published) {
            Step::Clear
        } else {
            Step::Quiet
        }
    }

    /// This node's detector fired (the caller checked the rule's ejection budget). A healthy host starts a
    /// new ejection; the failure of this node's own trial starts the next one; anything else (the host is
    /// already held out) changes nothing, as Envoy never ejects an ejected host.
    pub fn fire(&mut self, reason: &str, class: ObservationClass, now: Instant) -> Step {
        match self.phase {
            Phase::Healthy => {
                let next = self.next_count(self.decayed_count(now));
                self.eject(next, reason, class, now)
            }
            Phase::Trial { mine: true, .. } => {
                let next = self.next_count(self.count);
                self.eject(next, reason, class, now)
            }
            _ => Step::Quiet,
        }
    }

    /// The outcome of this node's trial request. Success returns the host and tells the cluster; failure
    /// starts the next ejection.
    pub fn trial_outcome(
        &mut self,
        success: bool,
        reason: &str,
        class: ObservationClass,
        now: Instant,
    ) -> Step {
        if !matches!(self.phase, Phase::Trial { mine: true, .. }) {
            return Step::Quiet;
        }
        if !success {
            return self.fire(reason, class, now);
        }
        self.phase = Phase::Healthy;
        self.returned_at = Some(now);
        self.published = true;
        Step::Publish(LocalRecord {
            verdict: Verdict::Returned,
            reason: self.reason.clone(),
            class: self.class,
            remaining: self.cfg.interval,
            ejection_count: self.count,
        })
    }

    /// The host passed an active health check: back at once everywhere (Envoy unejects on a passing probe),
    /// told to the cluster as a trial's success would be.
    pub fn probe_passed(&mut self, now: Instant) -> Step {
        if self.is_healthy() {
            return Step::Quiet;
        }
        self.phase = Phase::Trial {
            since: now,
            mine: true,
        };
        self.trial_outcome(true, "", self.class, now)
    }

    /// The cluster holds the host out as ejection `count` until `until`. Returns whether the gate changed.
    pub fn adopt(
        &mut self,
        count: u32,
        until: Instant,
        reason: &str,
        class: ObservationClass,
        now: Instant,
    ) -> bool {
        if until <= now {
            return false;
        }
        let before = self.gate();
        match self.phase {
            Phase::Ejected { until: mine } if count == self.count => {
                // Two nodes ejected at once under the same number: everyone ends at the later of the two.
                self.phase = Phase::Ejected {
                    until: mine.max(until),
                };
            }
            // A lower number, or the same one during its trial: a late copy of an ejection that ended.
            _ if count <= self.count && !self.is_healthy() => {}
            // The same number just after its trial returned the host: also a late copy (a new ejection
            // would carry a higher number, since no node's count has decayed yet).
            Phase::Healthy
                if count == self.count
                    && self
                        .returned_at
                        .is_some_and(|at| now < at + self.cfg.interval) => {}
            _ => {
                self.count = count;
                self.reason = reason.to_owned();
                self.class = class;
                self.phase = Phase::Ejected { until };
            }
        }
        before != self.gate()
    }

    /// Some node's trial returned the host from ejection `count`. Returns the step (a clear of this node's
    /// own record, if it had one).
    pub fn returned(&mut self, count: u32, now: Instant) -> Step {
        if self.is_healthy() || count != self.count {
            return Step::Quiet;
        }
        self.back(now)
    }

    /// Advances time: an ejection that ends becomes its trial (run here when `trial_mine`); a trial whose
    /// verdict has not come within one `interval` ends with the host back, unless this node's own trial
    /// request is still out (`trial_taken`).
    pub fn tick(&mut self, now: Instant, trial_mine: bool, trial_taken: bool) -> Step {
        match self.phase {
            Phase::Ejected { until } if now >= until => {
                self.phase = Phase::Trial {
                    since: now,
                    mine: trial_mine,
                };
                Step::Quiet
            }
            Phase::Trial { since, mine } if now >= since + self.cfg.interval => {
                if mine && trial_taken {
                    return Step::Quiet;
                }
                self.back(now)
            }
            _ => Step::Quiet,
        }
    }

    /// The trial role moved (the live set changed during the trial).
    pub fn set_trial_mine(&mut self, trial_mine: bool) {
        if let Phase::Trial { since, .. } = self.phase {
            self.phase = Phase::Trial {
                since,
                mine: trial_mine,
            };
        }
    }
}

/// The node that runs the single trial when ejection number `count` of `host` ends (DESIGN §6 "Single
/// trial"): a rendezvous hash over the live nodes, so every node with the same live set names the same one,
/// the role moves to another node when that one dies, and different hosts and ejection numbers spread
/// over the cluster.
pub fn trial_node<'a>(host: &str, count: u32, live: &'a BTreeSet<NodeId>) -> Option<&'a NodeId> {
    live.iter().max_by_key(|node| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in node
            .bytes()
            .chain([0xff])
            .chain(host.bytes())
            .chain(count.to_le_bytes())
        {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        // FNV leaves the high bits of short inputs poorly mixed; a final avalanche spreads them.
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 33)
    })
}

#[cfg(test)]
mod tests;
