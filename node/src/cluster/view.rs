//! The adoption rule: from every node's observations, the cluster's verdict on each backend (DESIGN §6
//! "Adoption rule"). Pure and deterministic: the same evidence and live set give the same verdict on every
//! node, because nothing here depends on who computes it, on arrival order or on wall clocks.
//!
//! Rules, each with a table test in `view/tests.rs`:
//! - an observation counts while it has not expired on this node's monotonic clock (remote ejections
//!   "expire by their own clocks"); only `remaining_ms`, re-based at receipt, matters — never `age_ms` nor
//!   any wall clock, so clock skew cannot change an ejection's length;
//! - provider-class observations (HTTP 5xx/429) are adopted from a single observer, live or not: a dead
//!   node's evidence outlives it only until it expires;
//! - network-class observations (connect/TLS failure, reset, timeout) are adopted only when at least
//!   `min(network_quorum, live nodes)` distinct *live* nodes (Alive or Suspect, this node included) report
//!   one, so one node's broken network cannot eject a healthy provider for everyone;
//! - an adopted ejection lasts as long as the evidence that adopts it: the longest remaining provider
//!   observation, or for the network class the time until fewer than the quorum of observations remain
//!   (which is the longest one when the quorum is 1); `time_left` is the later of the two;
//! - the cluster ejection count is the max count of any unexpired observation; a node's next local ejection
//!   uses `max + 1` ([`next_ejection_count`]) so lengths grow the same on every node.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use switchyard_protocol::{NodeId, ObservationClass};

use crate::cluster::evidence::OwnerState;

/// One node's unexpired observation of a backend, as shown in status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObserverView {
    /// The observer.
    pub node: NodeId,
    /// Its reason.
    pub reason: String,
    /// Its class.
    pub class: ObservationClass,
    /// Time left of its ejection.
    pub time_left: Duration,
    /// Its ejection count.
    pub ejection_count: u32,
    /// Whether the observer is live (counts towards the network quorum).
    pub live: bool,
}

/// The cluster's verdict on one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendView {
    /// Whether the cluster view ejects it.
    pub adopted: bool,
    /// Which class adopted it (provider wins when both do).
    pub adopted_class: Option<ObservationClass>,
    /// Every unexpired observation, in node-id order.
    pub observers: Vec<ObserverView>,
    /// Distinct reasons among them, sorted.
    pub reasons: Vec<String>,
    /// How long the adoption lasts on current evidence (`None` when not adopted).
    pub time_left: Option<Duration>,
    /// Max ejection count of any unexpired observation.
    pub ejection_count: u32,
    /// Live network-class observers needed for adoption, given the live set.
    pub network_quorum_needed: usize,
}

/// The network quorum in force: `network_quorum`, or all live nodes if fewer (at least 1).
pub fn quorum_needed(network_quorum: usize, live_nodes: usize) -> usize {
    network_quorum.min(live_nodes).max(1)
}

/// The count a node's next local ejection of a backend should reach: one more than both its own and the
/// cluster's (DESIGN §6: "a node's next local ejection uses `max + 1`"). The shell raises the local
/// detector's multiplier to `result − 1` before ejecting (the detector adds the 1).
pub fn next_ejection_count(cluster_count: u32, local_count: u32) -> u32 {
    cluster_count.max(local_count).saturating_add(1)
}

/// Computes the verdict for every backend with at least one unexpired observation.
///
/// `live` holds the live nodes, this node included; `states` every owner's state (owner → state).
pub fn compute<'a>(
    states: impl IntoIterator<Item = (&'a NodeId, &'a OwnerState)>,
    live: &BTreeSet<NodeId>,
    network_quorum: usize,
    now: Instant,
) -> BTreeMap<String, BackendView> {
    let needed = quorum_needed(network_quorum, live.len());
    let mut by_backend: BTreeMap<String, Vec<ObserverView>> = BTreeMap::new();
    for (node, state) in states {
        for (backend, o) in &state.observations {
            if o.is_expired(now) {
                continue;
            }
            by_backend
                .entry(backend.clone())
                .or_default()
                .push(ObserverView {
                    node: node.clone(),
                    reason: o.reason.clone(),
                    class: o.class,
                    time_left: o.time_left(now),
                    ejection_count: o.ejection_count,
                    live: live.contains(node),
                });
        }
    }
    by_backend
        .into_iter()
        .map(|(backend, mut observers)| {
            observers.sort_by(|a, b| a.node.cmp(&b.node));
            let view = verdict(observers, needed);
            (backend, view)
        })
        .collect()
}

fn verdict(observers: Vec<ObserverView>, needed: usize) -> BackendView {
    let provider = observers
        .iter()
        .filter(|o| o.class == ObservationClass::Provider)
        .map(|o| o.time_left)
        .max();
    let mut network: Vec<Duration> = observers
        .iter()
        .filter(|o| o.class == ObservationClass::Network && o.live)
        .map(|o| o.time_left)
        .collect();
    network.sort_unstable_by(|a, b| b.cmp(a));
    // The quorum holds until the `needed`-th longest observation expires.
    let network = network.get(needed - 1).copied();
    let (adopted_class, time_left) = match (provider, network) {
        (Some(p), n) => (
            Some(ObservationClass::Provider),
            Some(p.max(n.unwrap_or_default())),
        ),
        (None, Some(n)) => (Some(ObservationClass::Network), Some(n)),
        (None, None) => (None, None),
    };
    let reasons: BTreeSet<String> = observers.iter().map(|o| o.reason.clone()).collect();
    BackendView {
        adopted: adopted_class.is_some(),
        adopted_class,
        ejection_count: observers
            .iter()
            .map(|o| o.ejection_count)
            .max()
            .unwrap_or(0),
        reasons: reasons.into_iter().collect(),
        time_left,
        observers,
        network_quorum_needed: needed,
    }
}

/// Remembers the highest cluster ejection count per backend after its observations expire, decaying it by
/// one per `decay_interval` spent without any observation — Envoy's "−1 per interval sweep spent healthy"
/// (DESIGN §5) applied to the cluster count, so a backend that failed on another node a minute ago still
/// gets a longer ejection here, and one that has been healthy long enough starts again from 1.
#[derive(Debug, Clone, Default)]
pub struct CountMemory {
    seen: BTreeMap<String, (u32, Instant)>,
}

impl CountMemory {
    /// Records the counts of a freshly computed view at `now`: while a backend has observations, the
    /// remembered count is the max of theirs and the decayed memory, and the decay clock restarts.
    pub fn record(
        &mut self,
        view: &BTreeMap<String, BackendView>,
        decay_interval: Duration,
        now: Instant,
    ) {
        for (backend, v) in view {
            if v.observers.is_empty() {
                continue;
            }
            let remembered = self.count(backend, decay_interval, now);
            self.seen
                .insert(backend.clone(), (v.ejection_count.max(remembered), now));
        }
    }

    /// The remembered count for `backend` at `now`, decayed.
    pub fn count(&self, backend: &str, decay_interval: Duration, now: Instant) -> u32 {
        let Some((count, at)) = self.seen.get(backend) else {
            return 0;
        };
        let elapsed = now.saturating_duration_since(*at);
        let steps = if decay_interval.is_zero() {
            u128::from(u32::MAX)
        } else {
            elapsed.as_millis() / decay_interval.as_millis().max(1)
        };
        count.saturating_sub(u32::try_from(steps).unwrap_or(u32::MAX))
    }

    /// Drops entries that have decayed to zero.
    pub fn prune(&mut self, decay_interval: Duration, now: Instant) {
        let keep: BTreeSet<String> = self
            .seen
            .keys()
            .filter(|b| self.count(b, decay_interval, now) > 0)
            .cloned()
            .collect();
        self.seen.retain(|b, _| keep.contains(b));
    }
}

#[cfg(test)]
mod tests;
