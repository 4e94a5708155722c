//! The messages of the gossip protocol (DESIGN §6). Plain serde structs: their field order *is* the wire
//! layout (bincode writes fields in declaration order), so changing, reordering or removing a field is a
//! protocol change that the golden fixtures in `tests/golden/` catch. Add new messages as new kinds in
//! [`crate::envelope::Kind`] rather than changing old ones; old peers skip kinds they do not know.

use serde::{Deserialize, Serialize};

use crate::{PROTO_MAX, PROTO_MIN};

/// A node's identity in the cluster (`--node-id`, which must equal the identity in its certificate).
pub type NodeId = String;

/// First message on every connection, checked before anything else (DESIGN §6 "Transport").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// `--cluster`: peers of another cluster are refused.
    pub cluster: String,
    /// `--node-id`; must match the peer certificate's identity.
    pub node_id: NodeId,
    /// Changes every time the node process starts (e.g. start time in ms): a restarted node's state and
    /// membership supersede its previous life's even though its counters started again from zero.
    pub generation: u64,
    /// Oldest protocol version the sender speaks.
    pub proto_min: u16,
    /// Newest protocol version the sender speaks.
    pub proto_max: u16,
    /// Hash of the cluster-relevant configuration, so operators can spot nodes running different configs.
    /// Informational: a mismatch is reported, not refused.
    pub config_hash: u64,
}

/// Why a [`Hello`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The peer belongs to another cluster.
    #[error("peer {node_id:?} is in cluster {theirs:?}, we are in {ours:?}")]
    WrongCluster {
        /// The peer's node id.
        node_id: NodeId,
        /// Its cluster name.
        theirs: String,
        /// Ours.
        ours: String,
    },
    /// The node id in the Hello is not the identity its certificate proves.
    #[error("peer claims node id {claimed:?} but its certificate says {certified:?}")]
    IdentityMismatch {
        /// What the Hello says.
        claimed: NodeId,
        /// What the certificate says.
        certified: String,
    },
    /// No protocol version in common.
    #[error("peer {node_id:?} speaks protocol {min}..={max}, we speak {our_min}..={our_max}")]
    NoCommonVersion {
        /// The peer's node id.
        node_id: NodeId,
        /// Its oldest version.
        min: u16,
        /// Its newest version.
        max: u16,
        /// Our oldest version.
        our_min: u16,
        /// Our newest version.
        our_max: u16,
    },
}

impl Hello {
    /// The Hello this build sends, speaking [`PROTO_MIN`]`..=`[`PROTO_MAX`].
    pub fn new(cluster: &str, node_id: &str, generation: u64, config_hash: u64) -> Self {
        Hello {
            cluster: cluster.to_owned(),
            node_id: node_id.to_owned(),
            generation,
            proto_min: PROTO_MIN,
            proto_max: PROTO_MAX,
            config_hash,
        }
    }

    /// Checks a peer's Hello (DESIGN §6: cluster name, node id = certificate identity, protocol range) and
    /// returns the protocol version to speak with it: the highest both sides know.
    pub fn check(&self, our_cluster: &str, certified_identity: &str) -> Result<u16, HelloError> {
        if self.cluster != our_cluster {
            return Err(HelloError::WrongCluster {
                node_id: self.node_id.clone(),
                theirs: self.cluster.clone(),
                ours: our_cluster.to_owned(),
            });
        }
        if self.node_id != certified_identity {
            return Err(HelloError::IdentityMismatch {
                claimed: self.node_id.clone(),
                certified: certified_identity.to_owned(),
            });
        }
        let version = self.proto_max.min(PROTO_MAX);
        if self.proto_min > self.proto_max || version < self.proto_min.max(PROTO_MIN) {
            return Err(HelloError::NoCommonVersion {
                node_id: self.node_id.clone(),
                min: self.proto_min,
                max: self.proto_max,
                our_min: PROTO_MIN,
                our_max: PROTO_MAX,
            });
        }
        Ok(version)
    }
}

/// A member's state as SWIM sees it. The declaration order is the precedence at equal
/// `(generation, incarnation)`: Alive < Suspect < Dead < Left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Missed a direct and indirect probe; declared dead unless it refutes in time.
    Suspect,
    /// Suspected for longer than the suspicion timeout.
    Dead,
    /// Left gracefully (sent `Leave`).
    Left,
}

/// One piggybacked membership fact (SWIM's dissemination component).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberUpdate {
    /// Whom the fact is about.
    pub node: NodeId,
    /// Its gossip address (`host:port`), so receivers can dial it.
    pub addr: String,
    /// Its incarnation; only the node itself increases it, to refute a suspicion.
    pub incarnation: u64,
    /// The state claimed.
    pub state: MemberState,
    /// The node's process generation (see [`Hello::generation`]).
    pub generation: u64,
}

/// SWIM direct probe. The receiver answers [`Ack`] with the same `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Probe sequence number, chosen by the prober.
    pub seq: u64,
    /// Piggybacked membership updates.
    pub updates: Vec<MemberUpdate>,
}

/// Answer to [`Ping`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The `seq` of the ping answered.
    pub seq: u64,
    /// Piggybacked membership updates.
    pub updates: Vec<MemberUpdate>,
}

/// SWIM indirect probe: "please ping `target` for me". The helper answers [`IndirectAck`] if the target acks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingReq {
    /// The prober's sequence number, echoed in the [`IndirectAck`].
    pub seq: u64,
    /// The node the prober could not reach directly.
    pub target: NodeId,
    /// Piggybacked membership updates.
    pub updates: Vec<MemberUpdate>,
}

/// A helper's report that `target` answered the ping it sent on the prober's behalf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndirectAck {
    /// The prober's sequence number from [`PingReq`].
    pub seq: u64,
    /// The node that answered.
    pub target: NodeId,
    /// Piggybacked membership updates.
    pub updates: Vec<MemberUpdate>,
}

/// Graceful departure (DESIGN §7: sent on shutdown). Receivers mark the node Left at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leave {
    /// The node leaving (must be the sender).
    pub node: NodeId,
    /// Its generation.
    pub generation: u64,
    /// Its incarnation at departure.
    pub incarnation: u64,
}

/// Whether one node's failure seen is about the provider or possibly about that node's own network
/// (DESIGN §6 "Adoption rule").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ObservationClass {
    /// HTTP 5xx/429 from the provider: adopted from a single observer.
    Provider,
    /// Connect/TLS failure, reset, timeout: needs `--network-quorum` distinct live observers.
    Network,
}

/// One backend's local ejection as seen by the owner (DESIGN §6 "State"). Times are durations relative to
/// the moment of sending, never wall-clock instants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// The backend host key (as the node's health registry names it).
    pub backend: String,
    /// Why it was ejected (`EjectionReason::as_str`, e.g. `consecutive_5xx`).
    pub reason: String,
    /// Provider or network class.
    pub class: ObservationClass,
    /// Time left of the ejection when the message was sent; the receiver re-bases it on its own monotonic
    /// clock and clamps it to the max ejection time.
    pub remaining_ms: u64,
    /// The owner's ejection count (Envoy's back-off multiplier) for this backend.
    pub ejection_count: u32,
    /// The owner's state version at which this observation last changed.
    pub version: u64,
    /// Time since the owner made the observation, as of sending (for the propagation-delay metric).
    pub age_ms: u64,
}

/// Everything one node currently observes; only the owner writes it (DESIGN §6 "State").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// The owner.
    pub node: NodeId,
    /// The owner's process generation.
    pub generation: u64,
    /// Bumped by the owner on every change; merge keeps the higher `(generation, version)`.
    pub version: u64,
    /// The owner's current ejections, one per backend.
    pub observations: Vec<Observation>,
}

/// What a [`HostReport`] says about a host (DESIGN §6 "One timeline", "Single trial").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Verdict {
    /// The owner holds the host out for `remaining_ms` more, as ejection number `ejection_count`.
    Ejected,
    /// The owner ran the single trial of ejection number `ejection_count` at its expiry and the host
    /// answered: every node returns it. Kept for `remaining_ms`, then forgotten.
    Returned,
    /// The host answered the owner 429 with a `Retry-After` under the rate-limit cooldown extension: no
    /// node sends it anything for `remaining_ms` (not an ejection: no number, no trial, no budget). Added
    /// after `Returned`, so the two earlier variants keep their encoding; a node that predates it cannot
    /// decode a state holding one, which only happens where the extension is switched on.
    Cooling,
}

/// One host in a [`NodeStateV2`]: an ejection, or the verdict of a trial (protocol version 1, kind 10).
/// Times are durations relative to the moment of sending, never wall-clock instants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReport {
    /// The host key (route, rule, backend, resolved address), as the owner's config names it.
    pub host: String,
    /// Ejected, or returned by a trial.
    pub verdict: Verdict,
    /// Why it was ejected (`EjectionReason::as_str`, e.g. `consecutive_5xx`).
    pub reason: String,
    /// Provider or network class.
    pub class: ObservationClass,
    /// Time left of the record when the message was sent; the receiver re-bases it on its own monotonic
    /// clock and clamps it to the max ejection time.
    pub remaining_ms: u64,
    /// The ejection number (Envoy's back-off multiplier) this record is about.
    pub ejection_count: u32,
    /// The owner's state version at which this record last changed.
    pub version: u64,
    /// Time since the owner made the record, as of sending, in microseconds (for the propagation-delay
    /// metric: a direct push carries well under a millisecond).
    pub age_us: u64,
}

/// Everything one node currently reports about hosts, under the config it runs; only the owner writes it.
/// Supersedes [`NodeState`] (kind 6), which older nodes still send: a receiver reads one as this with
/// `config_hash` 0 (unknown, so never applied) and every record `Ejected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStateV2 {
    /// The owner.
    pub node: NodeId,
    /// The owner's process generation.
    pub generation: u64,
    /// Bumped by the owner on every change; merge keeps the higher `(generation, version)`.
    pub version: u64,
    /// Hash of the owner's routing config: host keys mean the same thing only between nodes whose hashes
    /// are equal, so records under another hash are held and relayed but never applied.
    pub config_hash: u64,
    /// The owner's records, one per host.
    pub hosts: Vec<HostReport>,
}

impl From<NodeState> for NodeStateV2 {
    fn from(s: NodeState) -> Self {
        NodeStateV2 {
            node: s.node,
            generation: s.generation,
            version: s.version,
            config_hash: 0,
            hosts: s
                .observations
                .into_iter()
                .map(|o| HostReport {
                    host: o.backend,
                    verdict: Verdict::Ejected,
                    reason: o.reason,
                    class: o.class,
                    remaining_ms: o.remaining_ms,
                    ejection_count: o.ejection_count,
                    version: o.version,
                    age_us: o.age_ms.saturating_mul(1000),
                })
                .collect(),
        }
    }
}

/// [`Delta`] carrying [`NodeStateV2`]s (kind 11).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaV2 {
    /// Whole owner states, each to be merged.
    pub states: Vec<NodeStateV2>,
}

/// One line of a [`Digest`]: which version of an owner's state the sender holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestEntry {
    /// The owner.
    pub node: NodeId,
    /// Its generation held.
    pub generation: u64,
    /// Its version held.
    pub version: u64,
}

/// Anti-entropy summary (DESIGN §6: "anti-entropy digest exchange with one peer every second"). The
/// receiver answers with a [`Delta`] of what it holds newer, and — if `reply` is set and the sender holds
/// something newer — with its own `Digest` (with `reply: false`, so the exchange ends there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// What the sender holds, per owner.
    pub entries: Vec<DigestEntry>,
    /// Whether the receiver should send its own digest back when the sender holds newer states.
    pub reply: bool,
}

/// States the receiver lacks: an anti-entropy answer, or an eager push of several owners' states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// Whole owner states, each to be merged.
    pub states: Vec<NodeState>,
}

/// Where a [`MemberSync`] stands in its exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SyncPhase {
    /// Opens an exchange: the sender's digest (and own record) only. A receiver whose digest differs
    /// answers with its whole view in `Answer` chunks.
    Offer,
    /// A chunk of the view answering an `Offer`. After the last chunk (`more == false`) the receiver, if its
    /// digest still differs, sends its own view back in `Close` chunks.
    Answer,
    /// A chunk of the view that ends the exchange: never answered.
    Close,
}

/// Membership anti-entropy, push-pull (memberlist's push/pull, with a digest first): SWIM's piggybacking
/// carries *changes*, so without it a large cluster joining through one seed learns the standing
/// membership only as fast as pings happen to travel. Every node offers its digest to one random live
/// member now and then; when the views differ the two exchange them whole, in chunks that fit a frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSync {
    /// Order-independent hash of the sender's live view, itself included: equal digests mean nothing to
    /// exchange.
    pub digest: u64,
    /// Which step of the exchange this is.
    pub phase: SyncPhase,
    /// More chunks of this view follow (the receiver answers only after the last one).
    pub more: bool,
    /// The sender's own record first, then (in `Answer` and `Close`) one chunk of the members it knows.
    pub members: Vec<MemberUpdate>,
}

/// Every message of the protocol; one per envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Connection greeting.
    Hello(Hello),
    /// SWIM direct probe.
    Ping(Ping),
    /// SWIM probe answer.
    Ack(Ack),
    /// SWIM indirect probe request.
    PingReq(PingReq),
    /// SWIM indirect probe answer.
    IndirectAck(IndirectAck),
    /// Eager push of one owner's state.
    NodeState(NodeState),
    /// Anti-entropy digest.
    Digest(Digest),
    /// Anti-entropy answer / batched push.
    Delta(Delta),
    /// Graceful departure.
    Leave(Leave),
    /// Eager push of one owner's state, with its config hash and trial verdicts.
    NodeStateV2(NodeStateV2),
    /// Anti-entropy answer / batched push of [`NodeStateV2`]s.
    DeltaV2(DeltaV2),
    /// Membership anti-entropy (push-pull).
    MemberSync(MemberSync),
}

impl Message {
    /// A short name for logs and per-kind counters.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Ping(_) => "ping",
            Message::Ack(_) => "ack",
            Message::PingReq(_) => "ping_req",
            Message::IndirectAck(_) => "indirect_ack",
            Message::NodeState(_) => "node_state",
            Message::Digest(_) => "digest",
            Message::Delta(_) => "delta",
            Message::Leave(_) => "leave",
            Message::NodeStateV2(_) => "node_state_v2",
            Message::DeltaV2(_) => "delta_v2",
            Message::MemberSync(_) => "member_sync",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello::new("prod", "a", 1, 7)
    }

    #[test]
    fn hello_accepts_same_cluster_and_identity() {
        assert_eq!(hello().check("prod", "a"), Ok(PROTO_MAX));
    }

    #[test]
    fn hello_refuses_other_cluster() {
        assert!(matches!(
            hello().check("staging", "a"),
            Err(HelloError::WrongCluster { .. })
        ));
    }

    #[test]
    fn hello_refuses_identity_mismatch() {
        assert!(matches!(
            hello().check("prod", "b"),
            Err(HelloError::IdentityMismatch { .. })
        ));
    }

    #[test]
    fn hello_refuses_disjoint_versions() {
        let mut h = hello();
        h.proto_min = PROTO_MAX + 1;
        h.proto_max = PROTO_MAX + 3;
        assert!(matches!(
            h.check("prod", "a"),
            Err(HelloError::NoCommonVersion { .. })
        ));
        let mut inverted = hello();
        inverted.proto_min = 2;
        inverted.proto_max = 1;
        assert!(inverted.check("prod", "a").is_err());
    }

    #[test]
    fn member_state_precedence_is_alive_suspect_dead_left() {
        use MemberState::*;
        assert!(Alive < Suspect && Suspect < Dead && Dead < Left);
    }
}
