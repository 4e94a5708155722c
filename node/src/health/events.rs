//! What the health layer tells the rest of the node, as data flowing down a channel that `run.rs` owns
//! (aesthetics review §5.1): a host's record changed (an ejection, a trial's verdict) or was cleared. The
//! Gossip actor reads the channel; health never addresses the gossip actor. What flows the other way —
//! the cluster's verdicts and the live member set — arrives as messages and shared snapshots handed to
//! health from outside ([`ClusterFact`], [`LiveSet`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use switchyard_protocol::{NodeId, ObservationClass, Verdict};
use tokio::sync::mpsc;

use crate::health::key::HostKey;

/// What this node's health layer decided about one of its hosts, as it goes into the node's cluster
/// state: an ejection (its number and time left) or a trial's success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRecord {
    /// Ejected, or returned by a trial.
    pub verdict: Verdict,
    /// Ejection reason (`EjectionReason::as_str`, or `active_health_check`).
    pub reason: String,
    /// Provider (HTTP answers) or network (local-origin failures) evidence.
    pub class: ObservationClass,
    /// How long the record holds: the ejection's time left, or how long a trial's verdict is kept.
    pub remaining: Duration,
    /// The ejection number it is about.
    pub ejection_count: u32,
}

/// A change to what this node says about a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEvent {
    /// The host's record is now this.
    Record(HostKey, LocalRecord),
    /// The host is back in service here with nothing more to say.
    Cleared(HostKey),
}

/// The sending half of the host-event channel (unbounded: one event per ejection or return, which the
/// detectors bound).
pub type HostEvents = mpsc::UnboundedSender<HostEvent>;

/// The cluster's applied verdict on one host, as the Gossip actor hands it to the host's health actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterFact {
    /// The cluster holds the host out: ejection number, until when (this node's clock), why.
    pub ejected: Option<ClusterEjection>,
    /// The highest ejection number whose trial returned the host.
    pub returned: Option<u32>,
    /// Until when another node's rate-limit cooldown holds the host (this node's clock).
    pub cooling: Option<Instant>,
}

/// An adopted ejection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterEjection {
    /// The ejection number.
    pub count: u32,
    /// When it ends, on this node's monotonic clock.
    pub until: Instant,
    /// One of its reasons.
    pub reason: String,
    /// The class that adopted it.
    pub class: ObservationClass,
}

/// The live members of the cluster, this node included, as the Gossip actor last published them; health
/// reads it to know which node runs a trial. A standalone node is a cluster of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSet {
    /// This node.
    pub me: NodeId,
    /// Every live node (Alive or Suspect), this one included.
    pub live: BTreeSet<NodeId>,
}

/// Shared handle to the current [`LiveSet`].
pub type LiveSetHandle = Arc<ArcSwap<LiveSet>>;
