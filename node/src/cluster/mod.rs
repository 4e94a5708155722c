//! The cluster core (DESIGN §6): membership + evidence + adoption, as one sans-I/O state machine that the
//! Gossip actor drives. This module exists so the whole cluster protocol can be tested and simulated
//! without sockets or clocks (STYLE: "the gossip core is a state machine that takes bytes and time in and
//! gives messages out"); `cluster-tests/src/sim.rs` runs a thousand of them in one process.
//!
//! - [`membership`]: SWIM failure detection and membership dissemination;
//! - [`evidence`]: per-owner `NodeState` store, merge, anti-entropy digests, push choice;
//! - [`view`]: the adoption rule that turns evidence into the cluster verdict per backend;
//! - [`certs`]: the cluster CA and node certificates (`switchyard certs`);
//! - [`transport`]: the quinn shell — mTLS QUIC connections carrying opaque frames.
//!
//! # How a shell drives [`ClusterCore`]
//!
//! ```text
//! core = ClusterCore::new(ClusterConfig::new(node_id, gossip_addr, generation), Instant::now())
//! loop {
//!     select! {
//!         // every message decoded from a peer's stream, after its Hello was checked
//!         // (Hello::check: cluster, certificate identity, protocol range):
//!         (from, Decoded::Message(m)) => core.handle_message(&from, m, Instant::now()),
//!         (_, Decoded::Skipped{..})   => count it,
//!         // the BackendHealth actors report their hosts' records (ejections, trial verdicts) and clears:
//!         Record{..}   => core.local_record(host, &record, now),
//!         Cleared{..}  => core.local_clear(host, now),
//!         sleep_until(core.next_deadline()) => core.tick(Instant::now()),
//!         shutdown => { core.leave(now); flush the outbox; exit }
//!     }
//!     for Outgoing { to, message } in core.drain_outbox() {
//!         // Peer::Node(id): the one connection to that peer (dial its member address if none);
//!         // Peer::Addr(a): dial a seed address, exchange Hellos, then send. Losing a message is fine:
//!         // SWIM and anti-entropy repair it. Never block the core on a slow peer.
//!     }
//!     for e in core.drain_events() { metrics / logs (ObservationLearned.age → propagation histogram) }
//!     publish core.cluster_view(now) for the health view and `/status`; core.members() for `/status`.
//! }
//! ```
//!
//! The ejection number itself lives with each host's timeline (`health::timeline`): every node adopts the
//! number of the ejection it applies, so the next local ejection continues from the cluster's, and the
//! number decays from the same return instant everywhere.

pub mod apply;
pub mod certs;
pub mod deny;
pub mod evidence;
pub mod gossip;
pub mod identity;
pub mod membership;
pub mod transport;
pub mod view;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::SeedableRng;
use switchyard_protocol::{
    DeltaV2, Digest, DigestEntry, Hello, MemberState, MemberUpdate, Message, NodeId, NodeStateV2,
    ObservationClass,
};

pub use crate::health::events::LocalRecord;
pub use evidence::{DisseminationConfig, MergeOutcome};
pub use membership::{MembershipConfig, MembershipEvent, Outgoing, Peer};
pub use view::BackendView;

use evidence::{Disseminator, EvidenceStore};
use membership::Membership;

/// Everything the core needs to know; [`ClusterConfig::new`] fills in DESIGN §6 defaults.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `--node-id`.
    pub node_id: NodeId,
    /// This node's gossip address as peers should dial it (`host:port`).
    pub gossip_addr: String,
    /// Process generation (e.g. start time in ms since the epoch — only compared, never used as a time).
    pub generation: u64,
    /// `--seeds` addresses (may include this node's own address, which is ignored).
    pub seeds: Vec<String>,
    /// `--network-quorum` (default 2).
    pub network_quorum: usize,
    /// Clamp for received `remaining_ms` (DESIGN §5: 300 s).
    pub max_ejection_time: Duration,
    /// SWIM settings.
    pub membership: MembershipConfig,
    /// Push settings.
    pub dissemination: DisseminationConfig,
    /// Length of one gossip round (pushes in large clusters; default 200 ms).
    pub gossip_interval: Duration,
    /// Anti-entropy digest exchange with one random peer (DESIGN §6: every second).
    pub anti_entropy_interval: Duration,
    /// Seed of the core's RNG (peer choice). Use something node-specific in production.
    pub rng_seed: u64,
}

impl ClusterConfig {
    /// DESIGN §6 defaults for a node.
    pub fn new(
        node_id: impl Into<NodeId>,
        gossip_addr: impl Into<String>,
        generation: u64,
    ) -> Self {
        let node_id = node_id.into();
        let rng_seed = node_id
            .bytes()
            .fold(generation ^ 0x9e37_79b9_7f4a_7c15, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        ClusterConfig {
            node_id,
            gossip_addr: gossip_addr.into(),
            generation,
            seeds: Vec::new(),
            network_quorum: 2,
            max_ejection_time: Duration::from_secs(300),
            membership: MembershipConfig::default(),
            dissemination: DisseminationConfig::default(),
            gossip_interval: Duration::from_millis(200),
            anti_entropy_interval: Duration::from_secs(1),
            rng_seed,
        }
    }
}

/// Something the shell may want to log or count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    /// A membership change.
    Member(MembershipEvent),
    /// A remote observation seen for the first time here; `age` is how long ago its owner made it
    /// (the `switchyard_ejection_propagation_seconds` histogram).
    ObservationLearned {
        /// Whose.
        owner: NodeId,
        /// Which backend.
        backend: String,
        /// Its class.
        class: ObservationClass,
        /// Time since the owner made it (sum of the `age_ms` carried plus nothing else: no wall clocks).
        age: Duration,
    },
}

/// A member as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// Node id.
    pub node: NodeId,
    /// Gossip address.
    pub addr: String,
    /// SWIM state.
    pub state: MemberState,
    /// Incarnation.
    pub incarnation: u64,
    /// Generation.
    pub generation: u64,
    /// Last message received directly from it.
    pub last_heard: Option<Instant>,
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// Messages handled.
    pub messages_in: u64,
    /// Messages queued for sending.
    pub messages_out: u64,
    /// Received states that were newer and merged.
    pub states_merged: u64,
    /// Received states already held.
    pub states_redundant: u64,
    /// Anti-entropy digests sent.
    pub digests_sent: u64,
}

/// Largest estimated size of one Delta or Digest before it is split, leaving room under the 64 KiB frame.
const CHUNK_BYTES: usize = 48 * 1024;

/// The sans-I/O cluster core of one node. See the module documentation for how to drive it.
#[derive(Debug)]
pub struct ClusterCore {
    cfg: ClusterConfig,
    membership: Membership,
    evidence: EvidenceStore,
    dissemination: Disseminator,
    rng: StdRng,
    next_gossip: Instant,
    next_anti_entropy: Instant,
    outbox: Vec<Outgoing>,
    events: Vec<ClusterEvent>,
    stats: ClusterStats,
    /// `--deny-nodes`: ignored as senders, members and owners of evidence.
    denied: BTreeSet<NodeId>,
}

impl ClusterCore {
    /// A core starting at `now`; it joins through `cfg.seeds` on the first ticks.
    pub fn new(cfg: ClusterConfig, now: Instant) -> Self {
        let membership = Membership::new(
            cfg.membership.clone(),
            cfg.node_id.clone(),
            cfg.gossip_addr.clone(),
            cfg.generation,
            cfg.seeds.clone(),
            cfg.rng_seed,
            now,
        );
        let evidence = EvidenceStore::new(
            cfg.node_id.clone(),
            cfg.generation,
            cfg.max_ejection_time,
            now,
        );
        ClusterCore {
            membership,
            evidence,
            dissemination: Disseminator::new(cfg.dissemination.clone()),
            rng: StdRng::seed_from_u64(cfg.rng_seed.rotate_left(17)),
            next_gossip: now + cfg.gossip_interval,
            next_anti_entropy: now + cfg.anti_entropy_interval,
            outbox: Vec::new(),
            events: Vec::new(),
            stats: ClusterStats::default(),
            denied: BTreeSet::new(),
            cfg,
        }
    }

    /// Replaces the deny list (issue 18): denied nodes are dropped from membership and their evidence
    /// forgotten at once, so their ejections stop applying; from then on their messages, records about
    /// them and states they own are ignored. This node itself cannot be denied.
    pub fn set_denied(&mut self, mut denied: BTreeSet<NodeId>, now: Instant) {
        denied.remove(&self.cfg.node_id);
        for node in &denied {
            self.evidence.forget(node);
        }
        self.membership.set_denied(denied.clone());
        self.denied = denied;
        self.collect(now);
    }

    /// This node's id.
    pub fn node_id(&self) -> &NodeId {
        &self.cfg.node_id
    }

    /// The Hello this node sends first on every connection.
    pub fn hello(&self, cluster: &str, config_hash: u64) -> Hello {
        Hello::new(cluster, &self.cfg.node_id, self.cfg.generation, config_hash)
    }

    /// This node's health layer recorded something about `host` (DESIGN §6 "State"): an ejection or a
    /// trial's verdict. Records it in the own state (new version) and pushes it — to every live peer at once
    /// in a small cluster, to `fanout` random peers per round otherwise.
    pub fn local_record(&mut self, host: &str, record: &LocalRecord, now: Instant) {
        self.evidence.set_local(host, record, now);
        self.own_changed(now);
    }

    /// [`ClusterCore::local_record`] of an ejection, spelled out (the simulator and tests eject this way).
    pub fn local_ejection(
        &mut self,
        host: &str,
        reason: &str,
        class: ObservationClass,
        remaining: Duration,
        ejection_count: u32,
        now: Instant,
    ) {
        let record = LocalRecord {
            verdict: switchyard_protocol::Verdict::Ejected,
            reason: reason.to_owned(),
            class,
            remaining,
            ejection_count,
        };
        self.local_record(host, &record, now);
    }

    /// [`ClusterCore::local_clear`] under the name the simulator and tests use.
    pub fn local_return(&mut self, host: &str, now: Instant) {
        self.local_clear(host, now);
    }

    /// `host` is back in service here with nothing to tell: removes the own record (new version) and pushes
    /// that.
    pub fn local_clear(&mut self, host: &str, now: Instant) {
        if self.evidence.clear_local(host, now) {
            self.own_changed(now);
        }
    }

    /// The routing-config hash this node runs (after a load or reload): records under another hash are
    /// never applied (their host keys may mean something else there).
    pub fn set_config_hash(&mut self, hash: u64, now: Instant) {
        if self.evidence.set_config_hash(hash, now) {
            self.own_changed(now);
        }
    }

    fn own_changed(&mut self, now: Instant) {
        let me = self.cfg.node_id.clone();
        let peers = self.membership.live_peers();
        let to = self.dissemination.changed(&me, true, &peers, &mut self.rng);
        if let Some(state) = self.evidence.wire_state(&me, now) {
            for peer in to {
                self.send(Peer::Node(peer), Message::NodeStateV2(state.clone()));
            }
        }
    }

    /// One decoded message from `from` — the node id the transport authenticated (certificate + Hello).
    /// Hello itself is the transport's business and is ignored here.
    pub fn handle_message(&mut self, from: &NodeId, msg: Message, now: Instant) {
        if self.denied.contains(from) {
            return;
        }
        self.stats.messages_in += 1;
        if self.membership.handle(from, &msg, now) {
            self.collect(now);
            return;
        }
        match msg {
            Message::NodeStateV2(state) => self.merge_states(from, vec![state], now),
            Message::DeltaV2(delta) => self.merge_states(from, delta.states, now),
            // Older nodes: their records carry no config hash, so they are held and relayed, never applied.
            Message::NodeState(state) => self.merge_states(from, vec![state.into()], now),
            Message::Delta(delta) => {
                let states = delta.states.into_iter().map(Into::into).collect();
                self.merge_states(from, states, now)
            }
            Message::Digest(digest) => self.answer_digest(from, &digest, now),
            _ => {}
        }
        self.collect(now);
    }

    fn merge_states(&mut self, from: &NodeId, states: Vec<NodeStateV2>, now: Instant) {
        for state in states {
            if self.denied.contains(&state.node) {
                continue;
            }
            let old_versions: BTreeMap<String, u64> = self
                .evidence
                .state(&state.node)
                .map(|s| {
                    s.observations
                        .iter()
                        .map(|(b, o)| (b.clone(), o.version))
                        .collect()
                })
                .unwrap_or_default();
            match self.evidence.merge(&state, now) {
                MergeOutcome::Newer => {
                    self.stats.states_merged += 1;
                    for o in &state.hosts {
                        if old_versions.get(&o.host) != Some(&o.version) {
                            self.events.push(ClusterEvent::ObservationLearned {
                                owner: state.node.clone(),
                                backend: o.host.clone(),
                                class: o.class,
                                age: Duration::from_micros(o.age_us),
                            });
                        }
                    }
                    // A large cluster's relays pass a new state on at once, once (evidence.rs).
                    let peers = self.membership.live_peers();
                    let to = self.dissemination.learned(
                        &state.node,
                        (state.generation, state.version),
                        from,
                        &peers,
                        &mut self.rng,
                    );
                    if !to.is_empty() {
                        if let Some(wire) = self.evidence.wire_state(&state.node, now) {
                            for peer in to {
                                self.send(Peer::Node(peer), Message::NodeStateV2(wire.clone()));
                            }
                        }
                    }
                }
                MergeOutcome::NotNewer => {
                    self.stats.states_redundant += 1;
                    self.dissemination.already_held(&state.node);
                }
                MergeOutcome::Ours => {}
            }
        }
    }

    /// Anti-entropy answer (DESIGN §6): what we hold newer goes back as Delta; if the peer holds newer and
    /// asked for a reply, our digest goes back so it sends those.
    fn answer_digest(&mut self, from: &NodeId, digest: &Digest, now: Instant) {
        let owners = self.evidence.newer_than(&digest.entries);
        self.send_states(from, &owners, now);
        if digest.reply && self.evidence.peer_has_newer(&digest.entries) {
            self.send_digest(from, false);
        }
    }

    fn send_states(&mut self, to: &NodeId, owners: &[NodeId], now: Instant) {
        let mut chunk: Vec<NodeStateV2> = Vec::new();
        let mut size = 0;
        for owner in owners {
            let Some(state) = self.evidence.wire_state(owner, now) else {
                continue;
            };
            let est = 32
                + state.node.len()
                + state
                    .hosts
                    .iter()
                    .map(|o| 56 + o.host.len() + o.reason.len())
                    .sum::<usize>();
            if !chunk.is_empty() && size + est > CHUNK_BYTES {
                let states = std::mem::take(&mut chunk);
                self.send(Peer::Node(to.clone()), Message::DeltaV2(DeltaV2 { states }));
                size = 0;
            }
            size += est;
            chunk.push(state);
        }
        if !chunk.is_empty() {
            self.send(
                Peer::Node(to.clone()),
                Message::DeltaV2(DeltaV2 { states: chunk }),
            );
        }
    }

    fn send_digest(&mut self, to: &NodeId, reply: bool) {
        self.stats.digests_sent += 1;
        let entries = self.evidence.digest();
        let mut chunk: Vec<DigestEntry> = Vec::new();
        let mut size = 0;
        for e in entries {
            let est = 24 + e.node.len();
            if !chunk.is_empty() && size + est > CHUNK_BYTES {
                let entries = std::mem::take(&mut chunk);
                self.send(
                    Peer::Node(to.clone()),
                    Message::Digest(Digest { entries, reply }),
                );
                size = 0;
            }
            size += est;
            chunk.push(e);
        }
        self.send(
            Peer::Node(to.clone()),
            Message::Digest(Digest {
                entries: chunk,
                reply,
            }),
        );
    }

    /// Advances all timers: SWIM probes and suspicion, gossip rounds, anti-entropy, pruning.
    pub fn tick(&mut self, now: Instant) {
        self.membership.tick(now);
        if now >= self.next_gossip {
            self.next_gossip = now + self.cfg.gossip_interval;
            let peers = self.membership.live_peers();
            for (peer, owners) in self.dissemination.round(&peers, &mut self.rng) {
                self.send_states(&peer, &owners, now);
            }
        }
        if now >= self.next_anti_entropy {
            self.next_anti_entropy = now + self.cfg.anti_entropy_interval;
            let peers = self.membership.live_peers();
            if let Some(peer) = peers.choose(&mut self.rng).cloned() {
                self.send_digest(&peer, true);
            }
            let membership = &self.membership;
            self.evidence.prune(now, |n| membership.is_live(n));
            let evidence = &self.evidence;
            self.dissemination
                .retain(|owner| evidence.state(owner).is_some());
        }
        self.collect(now);
    }

    /// When [`ClusterCore::tick`] next has work; the shell sleeps until then (or until a message).
    pub fn next_deadline(&self) -> Instant {
        self.membership
            .next_deadline()
            .min(self.next_gossip)
            .min(self.next_anti_entropy)
    }

    /// Graceful departure: `Leave` to every live member (then flush the outbox and stop).
    pub fn leave(&mut self, now: Instant) {
        self.membership.leave();
        self.collect(now);
    }

    /// Applies a membership fact learned outside SWIM (static peers, or a simulator bootstrapping a large
    /// cluster without waiting for joins).
    pub fn learn_member(&mut self, update: MemberUpdate, now: Instant) {
        self.membership.learn(update, now);
        self.collect(now);
    }

    fn collect(&mut self, _now: Instant) {
        for out in self.membership.drain_outbox() {
            self.stats.messages_out += 1;
            self.outbox.push(out);
        }
        for e in self.membership.drain_events() {
            // A member back from suspect or dead (a healed partition, a restart) gets an anti-entropy
            // round at once instead of at the next interval: whatever stale state reached it late is
            // corrected right behind it, and it learns what changed while it was away.
            if let MembershipEvent::Alive(node) = &e {
                let node = node.clone();
                self.send_digest(&node, true);
            }
            self.events.push(ClusterEvent::Member(e));
        }
    }

    fn send(&mut self, to: Peer, message: Message) {
        self.stats.messages_out += 1;
        self.outbox.push(Outgoing { to, message });
    }

    /// Takes the messages to send, in order.
    pub fn drain_outbox(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.outbox)
    }

    /// Takes the events since the last call.
    pub fn drain_events(&mut self) -> Vec<ClusterEvent> {
        std::mem::take(&mut self.events)
    }

    /// The live nodes, this one included (Alive or Suspect): whom trials and quorums are counted over.
    pub fn live_nodes(&self) -> BTreeSet<NodeId> {
        self.live_set()
    }

    /// The live set for adoption: this node plus Alive/Suspect members.
    fn live_set(&self) -> BTreeSet<NodeId> {
        let mut live: BTreeSet<NodeId> = self.membership.live_peers().into_iter().collect();
        live.insert(self.cfg.node_id.clone());
        live
    }

    /// The cluster verdict for every backend with unexpired observations (DESIGN §6 "Adoption rule").
    pub fn cluster_view(&self, now: Instant) -> BTreeMap<String, BackendView> {
        view::compute(
            self.evidence.states(),
            &self.live_set(),
            self.cfg.network_quorum,
            self.evidence.config_hash(),
            now,
        )
    }

    /// The verdict for one backend (`None`: no unexpired observation anywhere).
    pub fn backend_view(&self, backend: &str, now: Instant) -> Option<BackendView> {
        self.cluster_view(now).remove(backend)
    }

    /// Every known member other than this node, in node-id order.
    pub fn members(&self) -> Vec<MemberInfo> {
        self.membership
            .members()
            .map(|m| MemberInfo {
                node: m.node.clone(),
                addr: m.addr.clone(),
                state: m.state,
                incarnation: m.incarnation,
                generation: m.generation,
                last_heard: m.last_heard,
            })
            .collect()
    }

    /// How many other members are live (Alive or Suspect).
    pub fn live_member_count(&self) -> usize {
        self.membership.members().filter(|m| m.is_live()).count()
    }

    /// This node's own membership record (its incarnation shows refutations).
    pub fn me(&self) -> &MemberUpdate {
        self.membership.me()
    }

    /// The `(generation, version)` held for `owner`'s state, for tests and `/status`.
    pub fn state_version(&self, owner: &str) -> Option<(u64, u64)> {
        self.evidence
            .state(owner)
            .map(|s| (s.generation, s.version))
    }

    /// Counters.
    pub fn stats(&self) -> ClusterStats {
        self.stats
    }
}

#[cfg(test)]
mod tests;
