//! The evidence store: every node's `NodeState` (its current local ejections) as this node knows it, the
//! merge that keeps them consistent, anti-entropy digests, and the choice of whom to push changes to
//! (DESIGN §6 "State", "Time", "Dissemination").
//!
//! Why a separate module: the merge is the part of the cluster that must be *provably* convergent. Each
//! owner is the only writer of its state, so the merge is a per-owner "keep the higher
//! `(generation, version)`" — a join-semilattice: commutative, associative, idempotent (property tests
//! below), so nodes agree whatever order gossip delivers states in.
//!
//! Time (DESIGN §6 "Time"): an observation arrives with `remaining_ms` and `age_us`, durations as of
//! sending. On receipt they are re-based on this node's monotonic clock — `expires_at = now + remaining`
//! (clamped to the max ejection time), `observed_at = now − age` — and when relayed they are converted
//! back from those instants, so wall clocks never matter and relays do not freeze time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::seq::IndexedRandom;
use rand::Rng;
use switchyard_protocol::{
    DigestEntry, HostReport, NodeId, NodeStateV2, ObservationClass, Verdict,
};

use crate::health::events::LocalRecord;

/// One owner's record of one host, re-based on this node's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObservation {
    /// Ejected, or returned by a trial.
    pub verdict: Verdict,
    /// Ejection reason (`EjectionReason::as_str`).
    pub reason: String,
    /// Provider or network class.
    pub class: ObservationClass,
    /// The owner's ejection count for the backend.
    pub ejection_count: u32,
    /// The owner's version at which this observation last changed.
    pub version: u64,
    /// When the ejection ends, on this node's monotonic clock.
    pub expires_at: Instant,
    /// When the owner made it, on this node's clock (approximate: transit time is not counted).
    pub observed_at: Instant,
}

impl StoredObservation {
    /// Time left at `now` (zero once expired).
    pub fn time_left(&self, now: Instant) -> Duration {
        self.expires_at.saturating_duration_since(now)
    }

    /// Whether the ejection is over at `now` ("remote ejections expire by their own clocks").
    pub fn is_expired(&self, now: Instant) -> bool {
        now >= self.expires_at
    }
}

/// One owner's state as held here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerState {
    /// The owner's process generation.
    pub generation: u64,
    /// The owner's version.
    pub version: u64,
    /// The owner's routing-config hash (0: unknown, an older node): its host keys are applied only where
    /// the hash equals ours.
    pub config_hash: u64,
    /// Its observations, by backend.
    pub observations: BTreeMap<String, StoredObservation>,
    /// When this node last took a newer version of it.
    pub changed_at: Instant,
}

/// Result of merging one received state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeOutcome {
    /// It was newer and replaced what we held (or was unknown).
    Newer,
    /// We already held this version or a newer one.
    NotNewer,
    /// It claimed to be about this node, the only writer of its own state: ignored.
    Ours,
}

/// Every owner's state as this node knows it, this node's own included.
#[derive(Debug, Clone)]
pub struct EvidenceStore {
    me: NodeId,
    max_ejection_time: Duration,
    states: BTreeMap<NodeId, OwnerState>,
}

impl EvidenceStore {
    /// A store for node `me` in generation `generation`; remote `remaining_ms` is clamped to
    /// `max_ejection_time` (DESIGN §5: 300 s).
    pub fn new(me: NodeId, generation: u64, max_ejection_time: Duration, now: Instant) -> Self {
        let mut states = BTreeMap::new();
        states.insert(
            me.clone(),
            OwnerState {
                generation,
                version: 0,
                config_hash: 0,
                observations: BTreeMap::new(),
                changed_at: now,
            },
        );
        EvidenceStore {
            me,
            max_ejection_time,
            states,
        }
    }

    /// This node's id.
    pub fn me(&self) -> &NodeId {
        &self.me
    }

    fn own_mut(&mut self, now: Instant) -> &mut OwnerState {
        // Always present (inserted by `new`, never pruned); the fallback only keeps this total.
        self.states
            .entry(self.me.clone())
            .or_insert_with(|| OwnerState {
                generation: 0,
                version: 0,
                config_hash: 0,
                observations: BTreeMap::new(),
                changed_at: now,
            })
    }

    /// The routing-config hash this node runs (after a reload); a new version when it changed, since the
    /// meaning of the own records changed with it.
    pub fn set_config_hash(&mut self, hash: u64, now: Instant) -> bool {
        let own = self.own_mut(now);
        if own.config_hash == hash {
            return false;
        }
        own.config_hash = hash;
        own.version += 1;
        own.changed_at = now;
        true
    }

    /// The routing-config hash of this node.
    pub fn config_hash(&self) -> u64 {
        self.states.get(&self.me).map_or(0, |s| s.config_hash)
    }

    /// Records (or replaces) this node's own record of `host`; bumps the own version.
    pub fn set_local(&mut self, host: &str, record: &LocalRecord, now: Instant) {
        let remaining = record.remaining.min(self.max_ejection_time);
        let own = self.own_mut(now);
        own.version += 1;
        own.changed_at = now;
        let version = own.version;
        own.observations.insert(
            host.to_owned(),
            StoredObservation {
                verdict: record.verdict,
                reason: record.reason.clone(),
                class: record.class,
                ejection_count: record.ejection_count,
                version,
                expires_at: now + remaining,
                observed_at: now,
            },
        );
    }

    /// Removes this node's own ejection of `backend` (the host returned); bumps the version if there was
    /// one. Returns whether anything changed.
    pub fn clear_local(&mut self, backend: &str, now: Instant) -> bool {
        let own = self.own_mut(now);
        if own.observations.remove(backend).is_none() {
            return false;
        }
        own.version += 1;
        own.changed_at = now;
        true
    }

    /// Merges a received state (DESIGN §6: "Merge keeps the higher `(generation, version)` per owner").
    pub fn merge(&mut self, state: &NodeStateV2, now: Instant) -> MergeOutcome {
        if state.node == self.me {
            return MergeOutcome::Ours;
        }
        if let Some(held) = self.states.get(&state.node) {
            if (state.generation, state.version) <= (held.generation, held.version) {
                return MergeOutcome::NotNewer;
            }
        }
        let observations = state
            .hosts
            .iter()
            .map(|o| (o.host.clone(), self.rebase(o, now)))
            .collect();
        self.states.insert(
            state.node.clone(),
            OwnerState {
                generation: state.generation,
                version: state.version,
                config_hash: state.config_hash,
                observations,
                changed_at: now,
            },
        );
        MergeOutcome::Newer
    }

    /// DESIGN §6 "Time": re-base durations on our monotonic clock, clamping `remaining_ms`.
    fn rebase(&self, o: &HostReport, now: Instant) -> StoredObservation {
        let remaining = Duration::from_millis(o.remaining_ms).min(self.max_ejection_time);
        StoredObservation {
            verdict: o.verdict,
            reason: o.reason.clone(),
            class: o.class,
            ejection_count: o.ejection_count,
            version: o.version,
            expires_at: now + remaining,
            observed_at: now
                .checked_sub(Duration::from_micros(o.age_us))
                .unwrap_or(now),
        }
    }

    /// One owner's state as it goes on the wire at `now` (durations recomputed from our instants).
    pub fn wire_state(&self, owner: &str, now: Instant) -> Option<NodeStateV2> {
        let s = self.states.get(owner)?;
        Some(NodeStateV2 {
            node: owner.to_owned(),
            generation: s.generation,
            version: s.version,
            config_hash: s.config_hash,
            hosts: s
                .observations
                .iter()
                .map(|(host, o)| HostReport {
                    host: host.clone(),
                    verdict: o.verdict,
                    reason: o.reason.clone(),
                    class: o.class,
                    remaining_ms: millis(o.time_left(now)),
                    ejection_count: o.ejection_count,
                    version: o.version,
                    age_us: u64::try_from(now.saturating_duration_since(o.observed_at).as_micros())
                        .unwrap_or(u64::MAX),
                })
                .collect(),
        })
    }

    /// Every owner's state held, in owner order.
    pub fn states(&self) -> impl Iterator<Item = (&NodeId, &OwnerState)> {
        self.states.iter()
    }

    /// One owner's state.
    pub fn state(&self, owner: &str) -> Option<&OwnerState> {
        self.states.get(owner)
    }

    /// The anti-entropy digest: `(owner, generation, version)` of every non-empty-history state held.
    /// Version-0 states carry nothing and are left out, which keeps digests proportional to the owners that
    /// ever ejected something.
    pub fn digest(&self) -> Vec<DigestEntry> {
        self.states
            .iter()
            .filter(|(_, s)| s.version > 0)
            .map(|(node, s)| DigestEntry {
                node: node.clone(),
                generation: s.generation,
                version: s.version,
            })
            .collect()
    }

    /// Owners whose state we hold newer than the peer's digest says it holds (or that it lacks): what to
    /// send it.
    pub fn newer_than(&self, digest: &[DigestEntry]) -> Vec<NodeId> {
        let theirs: BTreeMap<&str, (u64, u64)> = digest
            .iter()
            .map(|e| (e.node.as_str(), (e.generation, e.version)))
            .collect();
        self.states
            .iter()
            .filter(|(node, s)| {
                s.version > 0
                    && theirs
                        .get(node.as_str())
                        .is_none_or(|t| (s.generation, s.version) > *t)
            })
            .map(|(node, _)| node.clone())
            .collect()
    }

    /// Whether the peer's digest shows a state newer than ours (so we should ask for it).
    pub fn peer_has_newer(&self, digest: &[DigestEntry]) -> bool {
        digest.iter().any(|e| {
            e.node != self.me
                && self
                    .states
                    .get(&e.node)
                    .is_none_or(|s| (e.generation, e.version) > (s.generation, s.version))
        })
    }

    /// Drops everything `owner` said (it was denied); this node's own state is never dropped.
    pub fn forget(&mut self, owner: &str) -> bool {
        owner != self.me && self.states.remove(owner).is_some()
    }

    /// Forgets states of owners that are no longer live once everything they said has expired and nothing
    /// changed for a max ejection time (DESIGN §6: "A node's observations outlive its death only until they
    /// expire"). Live owners are kept: their state is bounded by the cluster size.
    pub fn prune(&mut self, now: Instant, is_live: impl Fn(&str) -> bool) {
        let grace = self.max_ejection_time;
        let me = self.me.clone();
        self.states.retain(|node, s| {
            *node == me
                || is_live(node)
                || s.observations.values().any(|o| !o.is_expired(now))
                || now < s.changed_at + grace
        });
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Dissemination settings (DESIGN §6 "Dissemination").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisseminationConfig {
    /// Up to this many live peers, a node pushes its own changes to all of them at once (default 32).
    pub push_all_max: usize,
    /// Above it, peers pushed to per round (default 3).
    pub fanout: usize,
    /// Above it, a state is also passed on at once, by its owner and by every node that learns it, to
    /// `⌈ln N⌉ + relay_margin` random peers (default 6; see [`Disseminator::immediate_fanout`]).
    pub relay_margin: usize,
}

impl Default for DisseminationConfig {
    fn default() -> Self {
        DisseminationConfig {
            push_all_max: 32,
            fanout: 3,
            relay_margin: 6,
        }
    }
}

/// Decides whom to push which owner's state to.
///
/// - Small cluster (≤ `push_all_max` live peers): the owner pushes its change to every peer at once and
///   nobody relays (everyone got it first-hand; anti-entropy repairs losses).
/// - Large cluster: the owner pushes its change at once to [`Disseminator::immediate_fanout`] random
///   peers, and every node that learns a *newer* state passes it on at once, exactly once per
///   `(owner, generation, version)`, to as many random peers (not back to the sender, not to the owner).
///   That wave is a one-shot epidemic ("infect and die"): with fanout `ln N + c` it reaches every node with
///   probability about `exp(−exp(−c))` (Kermarrec, Massoulié, Ganesh, "Probabilistic reliable dissemination
///   in large-scale systems", 2003), in about `log N / log fanout` network hops — milliseconds, where the
///   rounds below need hundreds. It costs `N · fanout` messages per change, once; nobody relays twice.
/// - Repair, large cluster: whoever learned the state also pushes it to `fanout` random peers per round for
///   ⌈log2(N+1)⌉ rounds (the retransmit limit), and each time a peer shows it already has it, one round
///   less ("do not re-broadcast what the cluster already holds") — after a complete wave every node has
///   seen the state several times, so the rounds die out at once. Receiving a state that is not newer never
///   starts a push. Anti-entropy (every second) repairs whatever is still missing.
#[derive(Debug, Clone, Default)]
pub struct Disseminator {
    cfg: DisseminationConfig,
    rounds_left: BTreeMap<NodeId, u32>,
    /// The `(generation, version)` of each owner's state last passed on at once: the "exactly once" of the
    /// immediate relay. Bounded by the owners held (see [`Disseminator::retain`]).
    relayed: BTreeMap<NodeId, (u64, u64)>,
}

impl Disseminator {
    /// With these settings.
    pub fn new(cfg: DisseminationConfig) -> Self {
        Disseminator {
            cfg,
            rounds_left: BTreeMap::new(),
            relayed: BTreeMap::new(),
        }
    }

    /// Peers a change is passed on to at once in a cluster of `live_peers + 1` nodes: `⌈ln N⌉ +
    /// relay_margin`, at least `fanout`, at most every peer. With the default margin of 6, at 1 % loss, a
    /// one-shot wave over 1000 nodes is incomplete with probability ≈ 0.3 % (`1 − exp(−exp(−c))`, c ≈ 6);
    /// the repair rounds (≤ 200 ms later) and anti-entropy cover that. A margin of 4 missed a node in one
    /// of five simulated runs.
    pub fn immediate_fanout(&self, live_peers: usize) -> usize {
        let n = (live_peers + 1) as f64;
        // ln of at most usize::MAX is < 45: the cast cannot truncate meaningfully.
        let ln = n.ln().ceil() as usize;
        (ln + self.cfg.relay_margin)
            .max(self.cfg.fanout)
            .min(live_peers)
    }

    /// Whether `live_peers` is small enough for push-to-all.
    pub fn is_small(&self, live_peers: usize) -> bool {
        live_peers <= self.cfg.push_all_max
    }

    /// An owner's state became newer here (`own`: we are the owner). Returns the peers to push it to right
    /// away; later pushes come from [`Disseminator::round`].
    pub fn changed(
        &mut self,
        owner: &NodeId,
        own: bool,
        live_peers: &[NodeId],
        rng: &mut impl Rng,
    ) -> Vec<NodeId> {
        if self.is_small(live_peers.len()) {
            return if own { live_peers.to_vec() } else { Vec::new() };
        }
        let limit = retransmit_limit(live_peers.len() + 1);
        if own {
            self.rounds_left
                .insert(owner.clone(), limit.saturating_sub(1));
            return live_peers
                .choose_multiple(rng, self.immediate_fanout(live_peers.len()))
                .cloned()
                .collect();
        }
        self.rounds_left.insert(owner.clone(), limit);
        Vec::new()
    }

    /// A relay learned a newer state of `owner` — `(generation, version)` — from `from`. Returns the
    /// peers to pass it on to at once: in a large cluster [`Disseminator::immediate_fanout`] random live
    /// peers other than `from` and `owner`, the first time this `(owner, generation, version)` is seen and
    /// never again; nothing in a small cluster (the owner pushed to all). Either way the repair rounds
    /// start, as [`Disseminator::changed`] does for a relay.
    pub fn learned(
        &mut self,
        owner: &NodeId,
        generation_version: (u64, u64),
        from: &str,
        live_peers: &[NodeId],
        rng: &mut impl Rng,
    ) -> Vec<NodeId> {
        let _ = self.changed(owner, false, live_peers, rng);
        if self.is_small(live_peers.len())
            || self
                .relayed
                .get(owner)
                .is_some_and(|done| *done >= generation_version)
        {
            return Vec::new();
        }
        self.relayed.insert(owner.clone(), generation_version);
        let candidates: Vec<&NodeId> = live_peers
            .iter()
            .filter(|p| p.as_str() != from && *p != owner)
            .collect();
        candidates
            .choose_multiple(rng, self.immediate_fanout(live_peers.len()))
            .map(|p| (*p).clone())
            .collect()
    }

    /// Forgets relay bookkeeping of owners for which `keep` is false (the evidence store pruned them), so
    /// it stays bounded by the owners held.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.relayed.retain(|owner, _| keep(owner));
        self.rounds_left.retain(|owner, _| keep(owner));
    }

    /// A peer showed it already holds the state we are pushing: one round less.
    pub fn already_held(&mut self, owner: &str) {
        if let Some(n) = self.rounds_left.get_mut(owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.rounds_left.remove(owner);
            }
        }
    }

    /// One gossip round: `(peer, owners to push to it)`, each pending owner to `fanout` random peers.
    pub fn round(
        &mut self,
        live_peers: &[NodeId],
        rng: &mut impl Rng,
    ) -> BTreeMap<NodeId, Vec<NodeId>> {
        let mut out: BTreeMap<NodeId, Vec<NodeId>> = BTreeMap::new();
        if live_peers.is_empty() {
            return out;
        }
        for (owner, left) in &mut self.rounds_left {
            for peer in live_peers.choose_multiple(rng, self.cfg.fanout) {
                if peer != owner {
                    out.entry(peer.clone()).or_default().push(owner.clone());
                }
            }
            *left = left.saturating_sub(1);
        }
        self.rounds_left.retain(|_, left| *left > 0);
        out
    }

    /// Owners still being pushed.
    pub fn pending(&self) -> usize {
        self.rounds_left.len()
    }
}

/// ⌈log2(n)⌉, at least 1: the number of rounds a rumour is repeated.
pub fn retransmit_limit(n: usize) -> u32 {
    let n = n.max(2) as u64;
    u64::BITS - (n - 1).leading_zeros()
}

#[cfg(test)]
mod tests;
