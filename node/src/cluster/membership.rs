//! SWIM membership (DESIGN §6 "Membership"), as a pure state machine: time comes in through `now`,
//! messages come in through [`Membership::handle`], and everything to send waits in an outbox of
//! [`Outgoing`] for the shell to deliver. No sockets, no clock reads, a seeded RNG — so the simulator can
//! run a thousand of these in one process and a test can replay a scenario exactly.
//!
//! The protocol, after Das et al., "SWIM" (2002), with the refinements memberlist/foca use:
//! - every `probe_interval` one peer is pinged, round-robin over a shuffled list (new members are inserted
//!   at a random position), so every member is probed within a bounded time;
//! - no `Ack` within `ping_timeout` → `PingReq` through `indirect_probes` other live members; still nothing
//!   by the end of the probe interval → the target becomes Suspect;
//! - a Suspect not refuted within `suspicion_timeout` becomes Dead;
//! - a node that hears it is suspected (or dead) refutes by bumping its incarnation; an update wins when its
//!   `(generation, incarnation, state)` is greater, states ordered Alive < Suspect < Dead < Left, so a
//!   restart (new generation) or a refutation (new incarnation) beats any old suspicion;
//! - updates are piggybacked on pings and acks, each retransmitted at most `retransmit_mult · ⌈log2(N+1)⌉`
//!   times; every message also carries the sender's own record (its address, so joiners become dialable);
//!   a message to a non-alive member carries what we believe about it, so it can refute at once;
//! - join: seeds are pinged by address with exponential backoff while no member is live; afterwards one dead
//!   member and one seed are retried every `reconnect_interval`, so healed partitions merge on their own
//!   (DESIGN §6: "keep trying dead nodes and seeds now and then");
//! - `Leave` marks the sender Left at once;
//! - push on join: a node that hears *directly* from a member it did not know, or from a new generation of
//!   one (a restart), or from one it held dead or left, sends it every live member it knows at once, as
//!   many records per Ping as fit a frame (memberlist's push-pull, push half — the other side does the
//!   same for us when it sees our record as new). Without it a joiner learns of the others only when they
//!   happen to contact it, because piggybacked gossip carries *changes*, not the standing membership.
//! - push-pull sync (the other half, for everyone else): every `sync_interval` a node offers its view's
//!   digest to one random live member ([`MemberSync`], phase Offer); if the views differ the member
//!   answers with its whole view and the offerer sends back its own if they still differ — three messages
//!   at most, chunked to fit a frame, digest-only (a few dozen bytes) when nothing changed; while views
//!   differ a node offers again after `sync_busy_interval` instead of `sync_interval`. This is what
//!   spreads a crowd of joiners: the seed knows every joiner at once, and each exchange merges two views,
//!   so full knowledge spreads epidemically (push-pull: about log2 N exchanges) instead of one piggybacked
//!   record at a time. Members first learned this way are not re-gossiped (the sync itself spreads them);
//!   state changes (suspect, dead, refutations) apply with SWIM's precedence as if piggybacked.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use switchyard_protocol::{
    Ack, IndirectAck, Leave, MemberState, MemberSync, MemberUpdate, Message, NodeId, Ping, PingReq,
    SyncPhase,
};

/// Where a message goes. The transport keeps one connection per peer pair and maps a node id to it; an
/// address is used only before we know who is there (seeds).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    /// A member, by node id.
    Node(NodeId),
    /// A gossip address (`host:port`) whose node id is not known yet: dial it, exchange Hellos, send.
    Addr(String),
}

/// One message for the shell to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Destination.
    pub to: Peer,
    /// What to send.
    pub message: Message,
}

/// SWIM timing and fan-out. Defaults suit a LAN cluster of up to a few hundred nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipConfig {
    /// How often one peer is probed (default 1 s).
    pub probe_interval: Duration,
    /// How long to wait for a direct ack before asking others (default 400 ms; < `probe_interval`).
    pub ping_timeout: Duration,
    /// How many members are asked to probe indirectly (SWIM's k, default 3).
    pub indirect_probes: usize,
    /// How long a Suspect has to refute before it is declared Dead (default 5 s).
    pub suspicion_timeout: Duration,
    /// λ in the retransmit limit λ·⌈log2(N+1)⌉ of each piggybacked update (default 4).
    pub retransmit_mult: u32,
    /// Most updates piggybacked on one message, besides the sender's own record (default 16).
    pub max_piggyback: usize,
    /// How often one dead member and one seed are retried once joined (default 10 s).
    pub reconnect_interval: Duration,
    /// Cap of the join backoff while no member is live (starts at `probe_interval`, doubles; default 30 s).
    pub join_backoff_max: Duration,
    /// How long Dead and Left members are remembered (and retried) before being forgotten (default 1 h).
    pub forget_after: Duration,
    /// How often a digest is offered to one random live member for push-pull sync (default 1 s).
    pub sync_interval: Duration,
    /// How soon a node offers again after an exchange found the views different (default 200 ms): fast
    /// while a crowd joins, back to `sync_interval` once an offer meets an equal view.
    pub sync_busy_interval: Duration,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig {
            probe_interval: Duration::from_secs(1),
            ping_timeout: Duration::from_millis(400),
            indirect_probes: 3,
            suspicion_timeout: Duration::from_secs(5),
            retransmit_mult: 4,
            max_piggyback: 16,
            reconnect_interval: Duration::from_secs(10),
            join_backoff_max: Duration::from_secs(30),
            forget_after: Duration::from_secs(3600),
            sync_interval: Duration::from_secs(1),
            sync_busy_interval: Duration::from_millis(200),
        }
    }
}

/// A change in what this node believes about a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipEvent {
    /// First heard of (alive or suspect).
    Joined(NodeId),
    /// Back to alive (refuted a suspicion, recovered from dead, or restarted).
    Alive(NodeId),
    /// Suspected.
    Suspect(NodeId),
    /// Declared dead.
    Dead(NodeId),
    /// Left gracefully.
    Left(NodeId),
    /// Another process announces this node's own id: a later generation, or this generation at another
    /// address. Only a copy of this node's certificate and key can do that (issue 18); the record is not
    /// taken, and the operator must hear of it.
    IdentityConflict {
        /// This node's id.
        node: NodeId,
        /// The address the other process announces.
        addr: String,
        /// Its generation.
        generation: u64,
    },
    /// A member's record that cannot be taken as it stands ([`Claim::Deferred`] or [`Claim::Conflict`]);
    /// reported once per record.
    ClaimRefused {
        /// The member.
        node: NodeId,
        /// The address the record names.
        addr: String,
        /// Its generation.
        generation: u64,
        /// Deferred (may be taken later) or Conflict (never).
        claim: Claim,
    },
}

/// What becomes of a record about another member (issue 18: a copy of a node's certificate must not
/// take over its membership record). See [`judge_claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Not newer than the record held (SWIM precedence): ignored, as always.
    Stale,
    /// Newer: taken.
    Apply,
    /// A new process at another address, reported by a third node while the process held is Alive: not
    /// taken until the new process says so itself (its own record in a message it sends) or SWIM stops
    /// holding the old one Alive.
    Deferred,
    /// The same process (generation) at another address: a process's address never changes, so two
    /// processes claim one generation. Never taken.
    Conflict,
}

/// The rule for a newer record about a member, pure so it is table-tested.
///
/// `held` is the record this node holds, `claim` the one received, `direct` whether it came from the
/// member itself (its own record in a message whose sender the transport authenticated as that node).
/// Generations are announced by the process itself and can be forged by whoever holds the certificate,
/// so a restart at another address is believed only from the process itself while the old one is still
/// held Alive; hearsay cannot move a live member. A copy therefore wins only on a node it reaches
/// directly, and the transport refuses it there while the real node answers on its connection.
pub fn judge_claim(held: &MemberUpdate, claim: &MemberUpdate, direct: bool) -> Claim {
    if rank(claim) <= rank(held) {
        return Claim::Stale;
    }
    if claim.addr == held.addr {
        return Claim::Apply;
    }
    if claim.generation == held.generation {
        return Claim::Conflict;
    }
    if !direct && held.state == MemberState::Alive {
        return Claim::Deferred;
    }
    Claim::Apply
}

/// Whether a record about this node itself comes from another process holding its identity: alive (or
/// suspected) in a later generation, or in this generation at another address. Older generations are
/// this node's own past lives and are ignored.
pub fn is_impostor(me: &MemberUpdate, claim: &MemberUpdate) -> bool {
    matches!(claim.state, MemberState::Alive | MemberState::Suspect)
        && (claim.generation > me.generation
            || (claim.generation == me.generation && claim.addr != me.addr))
}

/// What this node knows about one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Node id.
    pub node: NodeId,
    /// Gossip address.
    pub addr: String,
    /// Highest incarnation known.
    pub incarnation: u64,
    /// Current state.
    pub state: MemberState,
    /// Process generation.
    pub generation: u64,
    /// When we last received any message from it directly.
    pub last_heard: Option<Instant>,
    /// When its state last changed here.
    pub state_since: Instant,
}

impl Member {
    /// Alive or Suspect: still a member (a suspect keeps its vote until declared dead).
    pub fn is_live(&self) -> bool {
        matches!(self.state, MemberState::Alive | MemberState::Suspect)
    }

    fn update(&self) -> MemberUpdate {
        MemberUpdate {
            node: self.node.clone(),
            addr: self.addr.clone(),
            incarnation: self.incarnation,
            state: self.state,
            generation: self.generation,
        }
    }
}

/// Largest estimated size of the member records in one [`MemberSync`] chunk, leaving room under the
/// 64 KiB frame for the envelope and varint overhead.
const SYNC_CHUNK_BYTES: usize = 48 * 1024;

/// Estimated encoded size of one record: two length-prefixed strings, three varints, a state tag.
fn record_bytes(u: &MemberUpdate) -> usize {
    u.node.len() + u.addr.len() + 32
}

/// A well-mixed 64-bit hash of one member's presence in a view, identical on every build (FNV-1a, then a
/// splitmix64 finaliser so that XOR-combining records stays well distributed).
fn record_hash(node: &str, generation: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes().chain([0xff]).chain(generation.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The precedence of an update: greater wins.
fn rank(u: &MemberUpdate) -> (u64, u64, MemberState) {
    (u.generation, u.incarnation, u.state)
}

#[derive(Debug)]
struct Probe {
    target: NodeId,
    seq: u64,
    sent_at: Instant,
    indirect_sent: bool,
}

#[derive(Debug)]
struct Relay {
    requester: NodeId,
    seq: u64,
    target: NodeId,
    expires: Instant,
}

/// One node's SWIM state machine.
#[derive(Debug)]
pub struct Membership {
    cfg: MembershipConfig,
    me: MemberUpdate,
    members: BTreeMap<NodeId, Member>,
    suspects: BTreeSet<NodeId>,
    seeds: Vec<String>,
    probe_order: Vec<NodeId>,
    probe_pos: usize,
    probe: Option<Probe>,
    relays: HashMap<u64, Relay>,
    gossip: BTreeMap<NodeId, (MemberUpdate, u32)>,
    /// Member records still owed to a node that joined (or came back) through us (push on join).
    sync: BTreeMap<NodeId, Vec<MemberUpdate>>,
    next_seq: u64,
    next_probe: Instant,
    next_reconnect: Instant,
    next_join: Instant,
    join_backoff: Duration,
    next_forget: Instant,
    next_sync: Instant,
    leaving: bool,
    outbox: Vec<Outgoing>,
    events: Vec<MembershipEvent>,
    rng: StdRng,
    /// Node ids on the deny list: never members, whoever vouches for them.
    denied: BTreeSet<NodeId>,
    /// The last refused record per member (and `me` for impostors), so each is reported once; bounded by
    /// the members (pruned with them).
    refused: BTreeMap<NodeId, (u64, String)>,
}

impl Membership {
    /// A node `node` reachable at `addr`, in process generation `generation`, joining through `seeds`
    /// (addresses; its own address among them is ignored). `rng_seed` makes probe order reproducible.
    pub fn new(
        cfg: MembershipConfig,
        node: NodeId,
        addr: String,
        generation: u64,
        seeds: Vec<String>,
        rng_seed: u64,
        now: Instant,
    ) -> Self {
        let seeds = seeds.into_iter().filter(|s| *s != addr).collect();
        Membership {
            join_backoff: cfg.probe_interval,
            next_probe: now,
            next_reconnect: now + cfg.reconnect_interval,
            next_join: now,
            next_forget: now + cfg.reconnect_interval,
            next_sync: now + cfg.sync_interval,
            cfg,
            me: MemberUpdate {
                node,
                addr,
                incarnation: 0,
                state: MemberState::Alive,
                generation,
            },
            members: BTreeMap::new(),
            suspects: BTreeSet::new(),
            seeds,
            probe_order: Vec::new(),
            probe_pos: 0,
            probe: None,
            relays: HashMap::new(),
            gossip: BTreeMap::new(),
            sync: BTreeMap::new(),
            next_seq: 1,
            leaving: false,
            outbox: Vec::new(),
            events: Vec::new(),
            rng: StdRng::seed_from_u64(rng_seed),
            denied: BTreeSet::new(),
            refused: BTreeMap::new(),
        }
    }

    /// This node's own record (its incarnation grows with each refutation).
    pub fn me(&self) -> &MemberUpdate {
        &self.me
    }

    /// Every other member known, in node-id order.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// One member.
    pub fn member(&self, node: &str) -> Option<&Member> {
        self.members.get(node)
    }

    /// Whether `node` is this node or a live (Alive or Suspect) member.
    pub fn is_live(&self, node: &str) -> bool {
        node == self.me.node || self.members.get(node).is_some_and(Member::is_live)
    }

    /// Live members other than this node, in node-id order.
    pub fn live_peers(&self) -> Vec<NodeId> {
        self.members
            .values()
            .filter(|m| m.is_live())
            .map(|m| m.node.clone())
            .collect()
    }

    /// Takes the messages to send.
    pub fn drain_outbox(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.outbox)
    }

    /// Takes the events since the last call.
    pub fn drain_events(&mut self) -> Vec<MembershipEvent> {
        std::mem::take(&mut self.events)
    }

    /// The earliest instant at which [`Membership::tick`] has something to do.
    pub fn next_deadline(&self) -> Instant {
        let mut t = self.next_probe.min(self.next_forget).min(self.next_sync);
        t = t.min(if self.live_count() == 0 {
            self.next_join
        } else {
            self.next_reconnect
        });
        if let Some(p) = &self.probe {
            let d = if p.indirect_sent {
                p.sent_at + self.cfg.probe_interval
            } else {
                p.sent_at + self.cfg.ping_timeout
            };
            t = t.min(d);
        }
        for s in &self.suspects {
            if let Some(m) = self.members.get(s) {
                t = t.min(m.state_since + self.cfg.suspicion_timeout);
            }
        }
        t
    }

    fn live_count(&self) -> usize {
        self.members.values().filter(|m| m.is_live()).count()
    }

    /// Applies a membership fact learned outside SWIM (e.g. static configuration, or a simulator
    /// bootstrapping a large cluster). Same precedence rules as a piggybacked update, but the fact is not
    /// gossiped: whoever configured it is assumed to have told every node.
    pub fn learn(&mut self, update: MemberUpdate, now: Instant) {
        let node = update.node.clone();
        // Configured facts are as good as the node's own word.
        if self.apply_from(update, Some(&node), now) {
            self.gossip.remove(&node);
        }
    }

    /// Advances timers: probe timeouts, indirect probes, suspicion expiry, the next probe, join and
    /// reconnect attempts, forgetting long-dead members.
    pub fn tick(&mut self, now: Instant) {
        if self.leaving {
            return;
        }
        // Probe state machine (SWIM §3.1): direct ping, then k indirect, then suspect.
        let mut failed = None;
        if let Some(p) = &mut self.probe {
            if !p.indirect_sent && now >= p.sent_at + self.cfg.ping_timeout {
                p.indirect_sent = true;
                let (target, seq) = (p.target.clone(), p.seq);
                let helpers: Vec<NodeId> = self
                    .live_peers()
                    .into_iter()
                    .filter(|n| *n != target)
                    .collect();
                let chosen: Vec<NodeId> = helpers
                    .choose_multiple(&mut self.rng, self.cfg.indirect_probes)
                    .cloned()
                    .collect();
                for helper in chosen {
                    let updates = self.piggyback(None);
                    self.send(
                        Peer::Node(helper),
                        Message::PingReq(PingReq {
                            seq,
                            target: target.clone(),
                            updates,
                        }),
                    );
                }
            }
            if let Some(p) = &self.probe {
                if now >= p.sent_at + self.cfg.probe_interval {
                    failed = Some(p.target.clone());
                }
            }
        }
        if let Some(target) = failed {
            self.probe = None;
            self.suspect(&target, now);
        }
        if now >= self.next_probe {
            self.next_probe = now + self.cfg.probe_interval;
            if self.probe.is_none() {
                self.start_probe(now);
            }
        }
        // Suspicion timeout → Dead (SWIM §4.2).
        let expired: Vec<NodeId> = self
            .suspects
            .iter()
            .filter(|s| {
                self.members
                    .get(*s)
                    .is_some_and(|m| now >= m.state_since + self.cfg.suspicion_timeout)
            })
            .cloned()
            .collect();
        for node in expired {
            if let Some(m) = self.members.get(&node) {
                let mut u = m.update();
                u.state = MemberState::Dead;
                self.apply(u, now);
            }
        }
        self.relays.retain(|_, r| r.expires > now);
        self.reconnect(now);
        if now >= self.next_sync {
            self.next_sync = now + self.cfg.sync_interval;
            if let Some(peer) = self.live_peers().choose(&mut self.rng).cloned() {
                let digest = self.view_digest();
                self.send(
                    Peer::Node(peer),
                    Message::MemberSync(MemberSync {
                        digest,
                        phase: SyncPhase::Offer,
                        more: false,
                        members: vec![self.me.clone()],
                    }),
                );
            }
        }
        if now >= self.next_forget {
            self.next_forget = now + self.cfg.reconnect_interval;
            let forget = self.cfg.forget_after;
            self.members
                .retain(|_, m| m.is_live() || now < m.state_since + forget);
            let (members, me) = (&self.members, &self.me.node);
            self.refused
                .retain(|n, _| n == me || members.contains_key(n));
        }
    }

    /// Join with backoff while alone; once joined, retry one dead member and one seed now and then
    /// (DESIGN §6: "Keep trying dead nodes and seeds now and then so healed partitions merge").
    fn reconnect(&mut self, now: Instant) {
        if self.live_count() == 0 {
            if now < self.next_join {
                return;
            }
            self.next_join = now + self.join_backoff;
            self.join_backoff = (self.join_backoff * 2).min(self.cfg.join_backoff_max);
            for seed in self.seeds.clone() {
                self.ping(Peer::Addr(seed), None);
            }
            let dead: Vec<NodeId> = self.members.keys().cloned().collect();
            for node in dead {
                self.ping(Peer::Node(node.clone()), Some(&node));
            }
            return;
        }
        self.join_backoff = self.cfg.probe_interval;
        if now < self.next_reconnect {
            return;
        }
        self.next_reconnect = now + self.cfg.reconnect_interval;
        let dead: Vec<NodeId> = self
            .members
            .values()
            .filter(|m| !m.is_live())
            .map(|m| m.node.clone())
            .collect();
        if let Some(node) = dead.choose(&mut self.rng).cloned() {
            self.ping(Peer::Node(node.clone()), Some(&node));
        }
        let live_addrs: BTreeSet<&str> = self
            .members
            .values()
            .filter(|m| m.is_live())
            .map(|m| m.addr.as_str())
            .collect();
        let unjoined: Vec<String> = self
            .seeds
            .iter()
            .filter(|s| !live_addrs.contains(s.as_str()))
            .cloned()
            .collect();
        if let Some(seed) = unjoined.choose(&mut self.rng).cloned() {
            self.ping(Peer::Addr(seed), None);
        }
    }

    fn start_probe(&mut self, now: Instant) {
        for _ in 0..2 {
            while self.probe_pos < self.probe_order.len() {
                let node = self.probe_order[self.probe_pos].clone();
                self.probe_pos += 1;
                if self.members.get(&node).is_some_and(Member::is_live) {
                    let seq = self.ping(Peer::Node(node.clone()), Some(&node));
                    self.probe = Some(Probe {
                        target: node,
                        seq,
                        sent_at: now,
                        indirect_sent: false,
                    });
                    return;
                }
            }
            // End of the round: reshuffle (SWIM §4.3, round-robin over a random permutation).
            self.probe_order = self.live_peers();
            self.probe_order.shuffle(&mut self.rng);
            self.probe_pos = 0;
        }
    }

    fn ping(&mut self, to: Peer, about: Option<&NodeId>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let updates = self.piggyback(about);
        self.send(to, Message::Ping(Ping { seq, updates }));
        seq
    }

    fn send(&mut self, to: Peer, message: Message) {
        self.outbox.push(Outgoing { to, message });
    }

    /// The retransmit limit λ·⌈log2(N+1)⌉ (SWIM §4.1 / memberlist).
    fn retransmit_limit(&self) -> u32 {
        let n = self.members.len() as u64 + 2;
        self.cfg.retransmit_mult * (u64::BITS - (n - 1).leading_zeros())
    }

    /// Our own record, what we believe about `about` when it is not alive (so it can refute), and the
    /// least-sent pending updates.
    fn piggyback(&mut self, about: Option<&NodeId>) -> Vec<MemberUpdate> {
        let mut out = vec![self.me.clone()];
        if let Some(m) = about.and_then(|a| self.members.get(a)) {
            if m.state != MemberState::Alive {
                out.push(m.update());
            }
        }
        // Records owed to this node since it joined go first, as many as fit SYNC_CHUNK_BYTES (the rest go
        // on further Pings): one message for a whole view instead of one per 16 records. Piggybacked
        // gossip keeps its own budget; with node ids and addresses of hostname length the message stays
        // under the frame (48 KiB + 17 records of < 600 bytes).
        if let Some((a, owed)) = about.and_then(|a| Some((a, self.sync.get_mut(a)?))) {
            let mut size = 0;
            let n = owed
                .iter()
                .take_while(|u| {
                    size += record_bytes(u);
                    size <= SYNC_CHUNK_BYTES
                })
                .count()
                .max(1)
                .min(owed.len());
            out.extend(owed.drain(..n));
            if owed.is_empty() {
                self.sync.remove(a);
            }
        }
        let budget = self.cfg.max_piggyback;
        if budget == 0 || self.gossip.is_empty() {
            return out;
        }
        // The `budget` least-sent updates (ties by node id), found in O(gossip) rather than by sorting it
        // all: this runs for every message sent.
        let mut pending: Vec<(u32, &NodeId)> = self
            .gossip
            .iter()
            .map(|(k, (_, sent))| (*sent, k))
            .collect();
        if pending.len() > budget {
            pending.select_nth_unstable(budget);
            pending.truncate(budget);
        }
        pending.sort_unstable();
        let keys: Vec<NodeId> = pending.into_iter().map(|(_, k)| k.clone()).collect();
        let limit = self.retransmit_limit();
        for key in keys {
            if let Some((u, sent)) = self.gossip.get_mut(&key) {
                out.push(u.clone());
                *sent += 1;
                if *sent >= limit {
                    self.gossip.remove(&key);
                }
            }
        }
        out
    }

    fn suspect(&mut self, node: &NodeId, now: Instant) {
        if let Some(m) = self.members.get(node) {
            if m.state == MemberState::Alive {
                let mut u = m.update();
                u.state = MemberState::Suspect;
                self.apply(u, now);
            }
        }
    }

    /// Replaces the deny list and forgets every denied member at once (no Dead/Left record is kept or
    /// gossiped: the node is simply not a member any more, and hearsay about it is ignored).
    pub fn set_denied(&mut self, denied: BTreeSet<NodeId>) {
        for node in &denied {
            self.members.remove(node);
            self.suspects.remove(node);
            self.gossip.remove(node);
            self.sync.remove(node);
            self.probe_order.retain(|n| n != node);
            self.relays
                .retain(|_, r| r.target != *node && r.requester != *node);
            if self.probe.as_ref().is_some_and(|p| p.target == *node) {
                self.probe = None;
            }
        }
        self.probe_pos = self.probe_pos.min(self.probe_order.len());
        self.denied = denied;
    }

    /// Applies one membership fact, received from `from` (None: this node's own conclusion); returns
    /// whether it changed anything.
    fn apply_from(&mut self, u: MemberUpdate, from: Option<&NodeId>, now: Instant) -> bool {
        if self.denied.contains(&u.node) {
            return false;
        }
        if u.node == self.me.node {
            if is_impostor(&self.me, &u) && self.first_refusal(&u) {
                self.events.push(MembershipEvent::IdentityConflict {
                    node: u.node.clone(),
                    addr: u.addr.clone(),
                    generation: u.generation,
                });
            }
            // Refutation (SWIM §4.2): someone believes we are suspect/dead at our incarnation or later.
            if u.generation == self.me.generation
                && u.state != MemberState::Alive
                && u.incarnation >= self.me.incarnation
                && !self.leaving
            {
                self.me.incarnation = u.incarnation + 1;
            }
            return false;
        }
        let event = match self.members.get_mut(&u.node) {
            None => {
                if !matches!(u.state, MemberState::Alive | MemberState::Suspect) {
                    return false; // never resurrect a forgotten node from hearsay about its death
                }
                self.members.insert(
                    u.node.clone(),
                    Member {
                        node: u.node.clone(),
                        addr: u.addr.clone(),
                        incarnation: u.incarnation,
                        state: u.state,
                        generation: u.generation,
                        last_heard: None,
                        state_since: now,
                    },
                );
                let at = self
                    .rng
                    .random_range(self.probe_pos..=self.probe_order.len());
                self.probe_order.insert(at, u.node.clone());
                // The view grew: others may not know this member yet (or we may be the one joining).
                self.next_sync = self.next_sync.min(now + self.cfg.sync_busy_interval);
                Some(MembershipEvent::Joined(u.node.clone()))
            }
            Some(m) => {
                let direct = from == Some(&u.node);
                match judge_claim(&m.update(), &u, direct) {
                    Claim::Stale => return false,
                    Claim::Apply => {}
                    claim @ (Claim::Deferred | Claim::Conflict) => {
                        if self.first_refusal(&u) {
                            self.events.push(MembershipEvent::ClaimRefused {
                                node: u.node.clone(),
                                addr: u.addr.clone(),
                                generation: u.generation,
                                claim,
                            });
                        }
                        return false;
                    }
                }
                let Some(m) = self.members.get_mut(&u.node) else {
                    return false;
                };
                let was = m.state;
                m.addr.clone_from(&u.addr);
                m.incarnation = u.incarnation;
                m.generation = u.generation;
                m.state = u.state;
                if was == u.state {
                    None
                } else {
                    m.state_since = now;
                    Some(match u.state {
                        MemberState::Alive => MembershipEvent::Alive(u.node.clone()),
                        MemberState::Suspect => MembershipEvent::Suspect(u.node.clone()),
                        MemberState::Dead => MembershipEvent::Dead(u.node.clone()),
                        MemberState::Left => MembershipEvent::Left(u.node.clone()),
                    })
                }
            }
        };
        if u.state == MemberState::Suspect {
            self.suspects.insert(u.node.clone());
        } else {
            self.suspects.remove(&u.node);
        }
        if matches!(u.state, MemberState::Dead | MemberState::Left) {
            self.sync.remove(&u.node);
        }
        if let Some(e) = event {
            if matches!(e, MembershipEvent::Alive(_))
                && !self.probe_order[self.probe_pos.min(self.probe_order.len())..].contains(&u.node)
            {
                self.probe_order.push(u.node.clone());
            }
            self.events.push(e);
        }
        self.gossip.insert(u.node.clone(), (u, 0));
        true
    }

    /// This node's own conclusions (suspicion, death) go through the same rule as received records.
    fn apply(&mut self, u: MemberUpdate, now: Instant) -> bool {
        self.apply_from(u, None, now)
    }

    /// Whether a refused record is new (so it is reported once, not on every retransmission).
    fn first_refusal(&mut self, u: &MemberUpdate) -> bool {
        let key = (u.generation, u.addr.clone());
        if self.refused.get(&u.node) == Some(&key) {
            return false;
        }
        self.refused.insert(u.node.clone(), key);
        true
    }

    /// The digest of this node's live view (itself included): XOR of [`record_hash`] over who is in it,
    /// so independent of order. It covers `(node, generation)` only: incarnations and suspicions are
    /// SWIM's gossip to settle, and counting them would turn every suspicion into full-view exchanges
    /// across the cluster. Dead and Left members are left out, so that two nodes that forgot a long-dead
    /// member at different times still agree.
    pub fn view_digest(&self) -> u64 {
        self.members
            .values()
            .filter(|m| m.is_live())
            .fold(record_hash(&self.me.node, self.me.generation), |d, m| {
                d ^ record_hash(&m.node, m.generation)
            })
    }

    /// Sends `to` this node's whole view (own record first in every chunk, then every member still
    /// remembered, dead and left ones included so that their fate converges too), in chunks that fit a
    /// frame; all but the last marked `more`.
    fn send_view(&mut self, to: &NodeId, phase: SyncPhase) {
        let digest = self.view_digest();
        let mut chunks: Vec<Vec<MemberUpdate>> = Vec::new();
        let mut chunk = vec![self.me.clone()];
        let mut size = record_bytes(&self.me);
        for m in self.members.values() {
            let u = m.update();
            let est = record_bytes(&u);
            if chunk.len() > 1 && size + est > SYNC_CHUNK_BYTES {
                chunks.push(std::mem::replace(&mut chunk, vec![self.me.clone()]));
                size = record_bytes(&self.me);
            }
            size += est;
            chunk.push(u);
        }
        chunks.push(chunk);
        let last = chunks.len() - 1;
        for (i, members) in chunks.into_iter().enumerate() {
            self.send(
                Peer::Node(to.clone()),
                Message::MemberSync(MemberSync {
                    digest,
                    phase,
                    more: i < last,
                    members,
                }),
            );
        }
    }

    /// One push-pull message: apply its records, then answer as its phase says (see [`SyncPhase`]).
    fn handle_sync(&mut self, from: &NodeId, s: &MemberSync, now: Instant) {
        for u in &s.members {
            let node = u.node.clone();
            let known = node == self.me.node || self.members.contains_key(&node);
            // A member first learned through sync is not re-gossiped: the exchange itself spreads it.
            if self.apply_from(u.clone(), Some(from), now) && !known {
                self.gossip.remove(&node);
            }
        }
        let answer = match s.phase {
            SyncPhase::Offer => Some(SyncPhase::Answer),
            SyncPhase::Answer if !s.more => Some(SyncPhase::Close),
            SyncPhase::Answer | SyncPhase::Close => None,
        };
        let differs = self.view_digest() != s.digest;
        if let Some(phase) = answer.filter(|_| differs) {
            self.send_view(from, phase);
        }
        // Views differed (an answer or a close came, or we answer): more may be missing elsewhere, so the
        // next offer comes soon; an offer that meets an equal view sets the pace back to sync_interval.
        if differs || s.phase != SyncPhase::Offer {
            self.next_sync = self.next_sync.min(now + self.cfg.sync_busy_interval);
        }
    }

    fn apply_all(&mut self, from: &NodeId, updates: &[MemberUpdate], now: Instant) {
        for u in updates {
            self.apply_from(u.clone(), Some(from), now);
        }
    }

    /// Handles one membership message from `from` (the node id the transport authenticated). Returns false
    /// for messages that are not membership's (Hello, evidence), which are left to the caller.
    pub fn handle(&mut self, from: &NodeId, msg: &Message, now: Instant) -> bool {
        if self.leaving {
            return matches!(
                msg,
                Message::Ping(_)
                    | Message::Ack(_)
                    | Message::PingReq(_)
                    | Message::IndirectAck(_)
                    | Message::Leave(_)
                    | Message::MemberSync(_)
            );
        }
        let fresh = self.is_fresh(from, msg);
        match msg {
            Message::Ping(p) => {
                self.apply_all(from, &p.updates, now);
                if fresh {
                    self.queue_sync(from);
                }
                let updates = self.piggyback(Some(from));
                self.send(
                    Peer::Node(from.clone()),
                    Message::Ack(Ack {
                        seq: p.seq,
                        updates,
                    }),
                );
            }
            Message::Ack(a) => {
                self.apply_all(from, &a.updates, now);
                if self
                    .probe
                    .as_ref()
                    .is_some_and(|p| p.seq == a.seq && p.target == *from)
                {
                    self.probe = None;
                }
                if self.relays.get(&a.seq).is_some_and(|r| r.target == *from) {
                    if let Some(r) = self.relays.remove(&a.seq) {
                        let updates = self.piggyback(None);
                        self.send(
                            Peer::Node(r.requester),
                            Message::IndirectAck(IndirectAck {
                                seq: r.seq,
                                target: r.target,
                                updates,
                            }),
                        );
                    }
                }
            }
            Message::PingReq(r) => {
                self.apply_all(from, &r.updates, now);
                let seq = self.ping(Peer::Node(r.target.clone()), Some(&r.target));
                self.relays.insert(
                    seq,
                    Relay {
                        requester: from.clone(),
                        seq: r.seq,
                        target: r.target.clone(),
                        expires: now + self.cfg.probe_interval,
                    },
                );
            }
            Message::IndirectAck(a) => {
                self.apply_all(from, &a.updates, now);
                if self
                    .probe
                    .as_ref()
                    .is_some_and(|p| p.seq == a.seq && p.target == a.target)
                {
                    self.probe = None;
                }
            }
            Message::Leave(l) => {
                // Only the node itself may say it leaves.
                if l.node == *from {
                    let addr = self
                        .members
                        .get(from)
                        .map(|m| m.addr.clone())
                        .unwrap_or_default();
                    self.apply_from(
                        MemberUpdate {
                            node: l.node.clone(),
                            addr,
                            incarnation: l.incarnation,
                            state: MemberState::Left,
                            generation: l.generation,
                        },
                        Some(from),
                        now,
                    );
                }
            }
            Message::MemberSync(sync) => self.handle_sync(from, sync, now),
            _ => return false,
        }
        if fresh && !matches!(msg, Message::Ping(_)) {
            self.queue_sync(from);
        }
        // What did not fit on the reply goes out now, in Pings of its own (their Acks are harmless).
        while self.sync.contains_key(from) {
            self.ping(Peer::Node(from.clone()), Some(from));
        }
        if let Some(m) = self.members.get_mut(from) {
            m.last_heard = Some(now);
        }
        true
    }

    /// Whether `msg` is `from` speaking for itself as a member we did not know, a new generation of one,
    /// or one we held dead or left: then it gets every live member we know (push on join).
    fn is_fresh(&self, from: &NodeId, msg: &Message) -> bool {
        let updates = match msg {
            Message::Ping(p) => &p.updates,
            Message::Ack(a) => &a.updates,
            Message::PingReq(r) => &r.updates,
            Message::IndirectAck(a) => &a.updates,
            _ => return false,
        };
        let Some(own) = updates
            .iter()
            .find(|u| u.node == *from && u.state == MemberState::Alive)
        else {
            return false;
        };
        match self.members.get(from) {
            None => true,
            Some(m) => own.generation > m.generation || !m.is_live(),
        }
    }

    /// Owes `to` the current record of every other live member.
    fn queue_sync(&mut self, to: &NodeId) {
        let owed: Vec<MemberUpdate> = self
            .members
            .values()
            .filter(|m| m.is_live() && m.node != *to)
            .map(Member::update)
            .collect();
        // With no piggyback budget nothing could ever be sent (and the caller would loop).
        if owed.is_empty() || self.cfg.max_piggyback == 0 {
            self.sync.remove(to);
        } else {
            self.sync.insert(to.clone(), owed);
        }
    }

    /// Graceful departure (DESIGN §7 shutdown): `Leave` to every live member; afterwards this node sends
    /// nothing more and ignores membership messages.
    pub fn leave(&mut self) {
        if self.leaving {
            return;
        }
        self.leaving = true;
        for node in self.live_peers() {
            self.send(
                Peer::Node(node),
                Message::Leave(Leave {
                    node: self.me.node.clone(),
                    generation: self.me.generation,
                    incarnation: self.me.incarnation,
                }),
            );
        }
    }
}

#[cfg(test)]
mod tests;
