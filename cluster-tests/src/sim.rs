//! The sans-I/O cluster simulator (DESIGN §9: "many nodes in one process, simulated latency, loss and
//! partitions"). It runs N [`ClusterCore`]s on a simulated clock and a discrete-event queue; every message
//! is framed and parsed by the real protocol [`Codec`], so the simulator also exercises the wire format
//! and its frame limit at scale. It answers the questions the design must: how many gossip rounds does a
//! single ejection need to reach every node, how long does membership take to converge, and does a healed
//! partition merge on its own.
//!
//! Time is an offset from one base `Instant`; nodes tick at their own [`ClusterCore::next_deadline`], so a
//! thousand idle nodes cost nothing between events.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchyard::cluster::{ClusterConfig, ClusterCore, Peer};
use switchyard_protocol::{Codec, Decoded, MemberState, MemberUpdate, ObservationClass};
use tokio_util::codec::{Decoder, Encoder};

/// Network conditions and cluster size.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Number of nodes.
    pub nodes: usize,
    /// One-way latency, uniform in `[latency_min, latency_max]`.
    pub latency_min: Duration,
    /// See `latency_min`.
    pub latency_max: Duration,
    /// Probability that a message is lost.
    pub loss: f64,
    /// RNG seed (the run is deterministic for a given seed).
    pub seed: u64,
    /// Start with every node knowing every other (skips the join) instead of joining through node 0.
    pub bootstrap_membership: bool,
}

impl SimConfig {
    /// `nodes` nodes on a LAN-like network: 1–5 ms latency, 1 % loss, joining through node 0.
    pub fn lan(nodes: usize) -> Self {
        SimConfig {
            nodes,
            latency_min: Duration::from_millis(1),
            latency_max: Duration::from_millis(5),
            loss: 0.01,
            seed: 1,
            bootstrap_membership: false,
        }
    }
}

#[derive(Debug)]
enum Ev {
    Tick(usize),
    Deliver {
        from: usize,
        to: usize,
        bytes: BytesMut,
    },
}

#[derive(Debug)]
struct Queued {
    at: Duration,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    // Reversed: BinaryHeap is a max-heap, we want the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The simulated cluster.
pub struct Sim {
    cfg: SimConfig,
    base: Instant,
    now: Duration,
    cores: Vec<ClusterCore>,
    index: HashMap<String, usize>,
    up: Vec<bool>,
    group: Vec<u32>,
    queue: BinaryHeap<Queued>,
    next_tick: Vec<Option<Duration>>,
    seq: u64,
    rng: StdRng,
    watch: Option<(String, u64)>,
    reached: Vec<Option<Duration>>,
    /// Messages sent (including lost ones).
    pub messages: u64,
    /// Bytes framed.
    pub bytes: u64,
    /// Messages that failed to encode or decode (must stay 0).
    pub codec_errors: u64,
}

fn node_id(i: usize) -> String {
    format!("node-{i}")
}

fn addr(i: usize) -> String {
    format!("10.0.{}.{}:7946", i / 250, i % 250 + 1)
}

impl Sim {
    /// Builds the cluster; nothing has happened yet.
    pub fn new(cfg: SimConfig) -> Sim {
        let base = Instant::now();
        let mut cores = Vec::with_capacity(cfg.nodes);
        let mut index = HashMap::new();
        for i in 0..cfg.nodes {
            let mut c = ClusterConfig::new(node_id(i), addr(i), 1);
            c.seeds = vec![addr(0)];
            c.rng_seed = cfg.seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
            cores.push(ClusterCore::new(c, base));
            index.insert(node_id(i), i);
            index.insert(addr(i), i);
        }
        if cfg.bootstrap_membership {
            for (i, core) in cores.iter_mut().enumerate() {
                for j in (0..cfg.nodes).filter(|j| *j != i) {
                    core.learn_member(
                        MemberUpdate {
                            node: node_id(j),
                            addr: addr(j),
                            incarnation: 0,
                            state: MemberState::Alive,
                            generation: 1,
                        },
                        base,
                    );
                }
                core.drain_events();
            }
        }
        let n = cfg.nodes;
        let mut sim = Sim {
            rng: StdRng::seed_from_u64(cfg.seed),
            cfg,
            base,
            now: Duration::ZERO,
            cores,
            index,
            up: vec![true; n],
            group: vec![0; n],
            queue: BinaryHeap::new(),
            next_tick: vec![None; n],
            seq: 0,
            watch: None,
            reached: vec![None; n],
            messages: 0,
            bytes: 0,
            codec_errors: 0,
        };
        for i in 0..n {
            sim.schedule_tick(i);
        }
        sim
    }

    /// Simulated time elapsed.
    pub fn now(&self) -> Duration {
        self.now
    }

    fn instant(&self) -> Instant {
        self.base + self.now
    }

    /// The gossip round length of the nodes.
    pub fn gossip_interval(&self) -> Duration {
        ClusterConfig::new("x", "x", 0).gossip_interval
    }

    fn push(&mut self, at: Duration, ev: Ev) {
        self.seq += 1;
        self.queue.push(Queued {
            at,
            seq: self.seq,
            ev,
        });
    }

    fn schedule_tick(&mut self, i: usize) {
        let at = self.cores[i]
            .next_deadline()
            .saturating_duration_since(self.base)
            .max(self.now);
        if self.next_tick[i].is_none_or(|t| at < t) {
            self.next_tick[i] = Some(at);
            self.push(at, Ev::Tick(i));
        }
    }

    fn flush(&mut self, i: usize) {
        for out in self.cores[i].drain_outbox() {
            let Some(&to) = (match &out.to {
                Peer::Node(n) => self.index.get(n),
                Peer::Addr(a) => self.index.get(a),
            }) else {
                continue;
            };
            let mut buf = BytesMut::new();
            if Codec::new().encode(&out.message, &mut buf).is_err() {
                self.codec_errors += 1;
                continue;
            }
            self.messages += 1;
            self.bytes += buf.len() as u64;
            if self.rng.random_bool(self.cfg.loss) {
                continue;
            }
            let span = self.cfg.latency_max.saturating_sub(self.cfg.latency_min);
            let jitter = span.mul_f64(self.rng.random::<f64>());
            let at = self.now + self.cfg.latency_min + jitter;
            self.push(
                at,
                Ev::Deliver {
                    from: i,
                    to,
                    bytes: buf,
                },
            );
        }
        self.cores[i].drain_events();
        self.schedule_tick(i);
    }

    /// Processes events until simulated time `until`.
    pub fn run_until(&mut self, until: Duration) {
        while let Some(top) = self.queue.peek() {
            if top.at > until {
                break;
            }
            let Some(q) = self.queue.pop() else { break };
            self.now = q.at;
            let now = self.instant();
            match q.ev {
                Ev::Tick(i) => {
                    if self.next_tick[i] != Some(q.at) {
                        continue;
                    }
                    self.next_tick[i] = None;
                    if self.up[i] {
                        self.cores[i].tick(now);
                        self.flush(i);
                    }
                }
                Ev::Deliver {
                    from,
                    to,
                    mut bytes,
                } => {
                    if !self.up[to] || self.group[from] != self.group[to] {
                        continue;
                    }
                    match Codec::new().decode(&mut bytes) {
                        Ok(Some(Decoded::Message(m))) => {
                            let from_id = node_id(from);
                            self.cores[to].handle_message(&from_id, m, now);
                            self.note_reached(to);
                            self.flush(to);
                        }
                        _ => self.codec_errors += 1,
                    }
                }
            }
        }
        self.now = self.now.max(until);
    }

    /// Runs for `d` more simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn note_reached(&mut self, i: usize) {
        if self.reached[i].is_some() {
            return;
        }
        if let Some((owner, version)) = &self.watch {
            if self.cores[i]
                .state_version(owner)
                .is_some_and(|(_, v)| v >= *version)
            {
                self.reached[i] = Some(self.now);
            }
        }
    }

    /// Node `i` ejects `backend` locally now; returns the simulated instant.
    pub fn eject(&mut self, i: usize, backend: &str, class: ObservationClass, remaining: Duration) {
        let now = self.instant();
        self.cores[i].local_ejection(backend, "consecutive_5xx", class, remaining, 1, now);
        self.flush(i);
    }

    /// Whether node `i`'s cluster view adopts `backend`.
    pub fn adopted(&self, i: usize, backend: &str) -> bool {
        self.cores[i]
            .backend_view(backend, self.instant())
            .is_some_and(|v| v.adopted)
    }

    /// Runs until every up node sees every other up node alive; returns the time taken, or `None` by
    /// `limit`.
    pub fn converge_membership(&mut self, limit: Duration) -> Option<Duration> {
        let start = self.now;
        let step = Duration::from_millis(100);
        loop {
            let ups = self.up.iter().filter(|u| **u).count();
            let done = (0..self.cores.len())
                .filter(|i| self.up[*i])
                .all(|i| self.cores[i].live_member_count() + 1 >= ups);
            if done {
                return Some(self.now - start);
            }
            if self.now - start >= limit {
                return None;
            }
            self.run_for(step);
        }
    }

    /// Node `origin` ejects a backend (provider class); runs until every up node holds the new state.
    /// Returns `(time, gossip rounds)` for the last node, or `None` by `limit`.
    pub fn propagate_ejection(
        &mut self,
        origin: usize,
        backend: &str,
        limit: Duration,
    ) -> Option<(Duration, u32)> {
        let start = self.now;
        self.eject(
            origin,
            backend,
            ObservationClass::Provider,
            Duration::from_secs(300),
        );
        let owner = node_id(origin);
        let version = self.cores[origin]
            .state_version(&owner)
            .map_or(0, |(_, v)| v);
        self.watch = Some((owner, version));
        self.reached = vec![None; self.cores.len()];
        self.reached[origin] = Some(self.now);
        let step = Duration::from_millis(10);
        loop {
            if (0..self.cores.len()).all(|i| !self.up[i] || self.reached[i].is_some()) {
                let last = self
                    .reached
                    .iter()
                    .flatten()
                    .max()
                    .copied()
                    .unwrap_or(start);
                let took = last - start;
                let round = self.gossip_interval().as_nanos().max(1);
                let rounds = took.as_nanos().div_ceil(round);
                self.watch = None;
                return Some((took, u32::try_from(rounds).unwrap_or(u32::MAX)));
            }
            if self.now - start >= limit {
                self.watch = None;
                return None;
            }
            self.run_for(step);
        }
    }

    /// Splits the cluster: node `i` goes to group `group_of(i)`; messages between groups are dropped.
    pub fn partition(&mut self, group_of: impl Fn(usize) -> u32) {
        for i in 0..self.group.len() {
            self.group[i] = group_of(i);
        }
    }

    /// Heals every partition.
    pub fn heal(&mut self) {
        self.group.iter_mut().for_each(|g| *g = 0);
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.cores.len()
    }

    /// Whether the cluster has no nodes.
    pub fn is_empty(&self) -> bool {
        self.cores.is_empty()
    }

    /// A node's core, to inspect.
    pub fn core(&self, i: usize) -> &ClusterCore {
        &self.cores[i]
    }
}

/// One line of the simulator report.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Cluster size.
    pub nodes: usize,
    /// Time for every node to see every other alive after joining through one seed (`None`: not within
    /// the limit).
    pub membership: Option<Duration>,
    /// Time for one ejection to reach every node.
    pub ejection_time: Option<Duration>,
    /// The same in gossip rounds (200 ms each).
    pub ejection_rounds: Option<u32>,
    /// Messages sent during the ejection's propagation.
    pub ejection_messages: u64,
}

/// Runs the standard scenario for `nodes` nodes: join through node 0, then one ejection on the last node.
pub fn measure(nodes: usize, seed: u64, join: bool) -> Figures {
    let mut cfg = SimConfig::lan(nodes);
    cfg.seed = seed;
    cfg.bootstrap_membership = !join;
    let mut sim = Sim::new(cfg);
    let membership = if join {
        sim.converge_membership(Duration::from_secs(600))
    } else {
        None
    };
    // Let bootstrap/join traffic settle one probe period so the ejection is measured on a quiet cluster.
    sim.run_for(Duration::from_secs(1));
    let before = sim.messages;
    let result = sim.propagate_ejection(nodes - 1, "api.example:443", Duration::from_secs(60));
    Figures {
        nodes,
        membership,
        ejection_time: result.map(|r| r.0),
        ejection_rounds: result.map(|r| r.1),
        ejection_messages: sim.messages - before,
    }
}
