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
//! - the cluster ejection count is the max count of any unexpired observation (the ejection number every node
//!   holds the host out under, DESIGN §6 "One timeline");
//! - only owners running the same routing config (equal config hash) count: host keys name a route rule,
//!   backend and address, and mean the same thing only under the same config;
//! - `Returned` records (a trial's success) are not evidence of failure; the view reports the highest
//!   ejection number a trial returned.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use switchyard_protocol::{NodeId, ObservationClass, Verdict};

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
    /// The highest ejection number whose trial returned the host (an unexpired `Returned` record).
    pub returned: Option<u32>,
    /// The longest rate-limit cooldown any node holds on it (unexpired `Cooling` records).
    pub cooling: Option<Duration>,
}

/// The network quorum in force: `network_quorum`, or all live nodes if fewer (at least 1).
pub fn quorum_needed(network_quorum: usize, live_nodes: usize) -> usize {
    network_quorum.min(live_nodes).max(1)
}

/// Computes the verdict for every backend with at least one unexpired record.
///
/// `live` holds the live nodes, this node included; `states` every owner's state (owner → state);
/// `config_hash` this node's routing-config hash (owners under another hash are left out).
pub fn compute<'a>(
    states: impl IntoIterator<Item = (&'a NodeId, &'a OwnerState)>,
    live: &BTreeSet<NodeId>,
    network_quorum: usize,
    config_hash: u64,
    now: Instant,
) -> BTreeMap<String, BackendView> {
    let needed = quorum_needed(network_quorum, live.len());
    let mut by_backend: BTreeMap<String, Vec<ObserverView>> = BTreeMap::new();
    let mut returned: BTreeMap<String, u32> = BTreeMap::new();
    let mut cooling: BTreeMap<String, Duration> = BTreeMap::new();
    for (node, state) in states {
        if state.config_hash != config_hash {
            continue;
        }
        for (backend, o) in &state.observations {
            if o.is_expired(now) {
                continue;
            }
            if o.verdict == Verdict::Returned {
                let r = returned.entry(backend.clone()).or_default();
                *r = (*r).max(o.ejection_count);
                // A verdict still names the host, so it has a view even with no ejection left.
                by_backend.entry(backend.clone()).or_default();
                continue;
            }
            if o.verdict == Verdict::Cooling {
                let c = cooling.entry(backend.clone()).or_default();
                *c = (*c).max(o.time_left(now));
                by_backend.entry(backend.clone()).or_default();
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
            let mut view = verdict(observers, needed);
            view.returned = returned.get(&backend).copied();
            view.cooling = cooling.get(&backend).copied();
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
        returned: None,
        cooling: None,
    }
}

#[cfg(test)]
mod tests;
