//! The Gossip actor: the thin shell that drives the sans-I/O [`ClusterCore`] over the QUIC [`Transport`]
//! and publishes the cluster's verdicts into the hosts' lock-free health views (DESIGN §1, §6).
//!
//! It owns the core and the transport. Inputs are mailbox messages: transport events (forwarded from the
//! transport's channel), the hosts' record changes (forwarded from the health layer's [`HostEvent`]
//! channel, which `run.rs` owns), a periodic tick, status queries and the shutdown `Leave`. After each input
//! it sends what the core queued; whenever new evidence merged (and on ticks, for expiries) it hands every
//! host whose cluster verdict changed a [`ClusterFact`] (`maxEjectionPercent` over the combined view via
//! [`apply`]), and publishes the live member set the hosts' trials are chosen from. It reads the hosts from
//! the [`HostTable`] the gateway publishes; it never reaches into the gateway. Nothing on the request path
//! waits for it.
//!
//! Peers must say `Hello` first: cluster name, node id equal to the certificate identity and a common
//! protocol version; anything else from a peer that has not done so is dropped and counted, and a bad Hello
//! drops the connection. The node keeps running whatever a peer sends.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use switchyard_protocol::{decode, encode, Decoded, MemberState, Message, ObservationClass};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::cluster::apply::applied_cluster_ejections;
use crate::cluster::membership::{Claim, MembershipEvent, Peer};
use crate::cluster::transport::{PeerAddr, Transport, TransportEvent};
use crate::cluster::{ClusterCore, ClusterEvent};
use crate::health::events::{ClusterEjection, ClusterFact, HostEvent, LiveSet, LiveSetHandle};
use crate::health::key::HostKey;
use crate::health::table::{HostTable, HostTableHandle};

/// How often the actor ticks the core and re-applies the view (expiries happen between messages).
const TICK: Duration = Duration::from_millis(50);

/// Node-level cluster settings.
#[derive(Debug, Clone)]
pub struct GossipSettings {
    /// `--cluster`: peers of another cluster are refused.
    pub cluster: String,
    /// `--share-ejections`: when off, membership and evidence still flow but no remote verdict is applied
    /// (Envoy's per-node behaviour, the benchmarks' baseline).
    pub share_ejections: bool,
}

/// Messages to the Gossip actor.
pub enum GossipMsg {
    /// A new deny list (start and every reload): denied peers are disconnected and forgotten.
    Deny(BTreeSet<String>),
    /// Something happened on the transport.
    Transport(TransportEvent),
    /// A host's record changed on this node (an ejection, a trial's verdict, a return).
    Host(HostEvent),
    /// Periodic tick.
    Tick,
    /// A gossip address name resolved.
    SeedResolved(String, SocketAddr),
    /// `/status`.
    Status(RpcReplyPort<ClusterStatus>),
    /// Shutdown: send `Leave` to everyone, flush, close; replies when done.
    Leave(RpcReplyPort<()>),
}

/// The cluster part of `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    /// `--cluster`.
    pub cluster: String,
    /// This node.
    pub node_id: String,
    /// Whether remote verdicts are applied.
    pub share_ejections: bool,
    /// Every known member but this node.
    pub members: Vec<MemberStatus>,
    /// The cluster view per host key (only hosts with unexpired observations).
    pub backends: BTreeMap<String, BackendClusterStatus>,
    /// Counters.
    pub counters: GossipCounters,
}

/// One member in `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    /// Node id.
    pub node: String,
    /// Gossip address.
    pub addr: String,
    /// `alive`, `suspect`, `dead` or `left`.
    pub state: &'static str,
    /// SWIM incarnation.
    pub incarnation: u64,
    /// QUIC round-trip time, when connected.
    pub rtt_ms: Option<f64>,
    /// Milliseconds since it was last heard from directly.
    pub last_heard_ms_ago: Option<u64>,
}

/// The cluster's view of one host in `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct BackendClusterStatus {
    /// The adoption rule ejects it.
    pub adopted: bool,
    /// This node applies the adoption (sharing on, within `maxEjectionPercent`).
    pub applied: bool,
    /// `provider` or `network`.
    pub class: Option<&'static str>,
    /// Who observed it.
    pub observers: Vec<ObserverStatus>,
    /// Distinct reasons.
    pub reasons: Vec<String>,
    /// Time left of the adoption.
    pub time_left_ms: Option<u64>,
    /// Max ejection count seen.
    pub ejection_count: u32,
    /// Network-class observers needed.
    pub network_quorum_needed: usize,
    /// The longest rate-limit cooldown any node holds on it (extension).
    pub cooling_ms_left: Option<u64>,
}

/// One observer of a host.
#[derive(Debug, Clone, Serialize)]
pub struct ObserverStatus {
    /// Node id.
    pub node: String,
    /// Reason.
    pub reason: String,
    /// `provider` or `network`.
    pub class: &'static str,
    /// Time left of its ejection, on this node's clock.
    pub time_left_ms: u64,
    /// Its ejection count.
    pub ejection_count: u32,
    /// Whether it is live (counts toward the network quorum).
    pub live: bool,
}

/// Gossip counters for `/status`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct GossipCounters {
    /// Messages handled by the core.
    pub messages_in: u64,
    /// Messages queued by the core.
    pub messages_out: u64,
    /// Frames that did not decode (connection dropped).
    pub malformed_frames: u64,
    /// Envelopes of unknown kinds or versions (skipped).
    pub skipped_frames: u64,
    /// Frames from peers that had not said a valid Hello.
    pub frames_before_hello: u64,
    /// Peers refused at Hello (wrong cluster, identity or protocol).
    pub hello_rejected: u64,
    /// Connections refused by TLS (no certificate from the cluster CA) or identity checks.
    pub connections_rejected: u64,
    /// Frames not sent (peer queue full, unknown address).
    pub frames_dropped: u64,
}

fn class_name(c: ObservationClass) -> &'static str {
    match c {
        ObservationClass::Provider => "provider",
        ObservationClass::Network => "network",
    }
}

fn state_name(s: MemberState) -> &'static str {
    match s {
        MemberState::Alive => "alive",
        MemberState::Suspect => "suspect",
        MemberState::Dead => "dead",
        MemberState::Left => "left",
    }
}

/// Spawn arguments.
pub struct GossipArgs {
    /// The core, configured.
    pub core: ClusterCore,
    /// The bound transport.
    pub transport: Transport,
    /// Its event channel.
    pub events: mpsc::Receiver<TransportEvent>,
    /// Settings.
    pub settings: GossipSettings,
    /// The health layer's record changes.
    pub host_events: mpsc::UnboundedReceiver<HostEvent>,
    /// The hosts the gateway runs (republished on reload).
    pub hosts: HostTableHandle,
    /// Where the live member set goes, for the hosts' trials.
    pub live: LiveSetHandle,
}

/// The actor's state.
pub struct GossipState {
    core: ClusterCore,
    transport: Transport,
    settings: GossipSettings,
    hosts: HostTableHandle,
    live: LiveSetHandle,
    /// The table the last publish used (a reload swaps in another).
    table: Arc<HostTable>,
    /// What each host was last told.
    facts: HashMap<HostKey, ClusterFact>,
    /// The config hash of the Hello the transport sends first on every new connection.
    greeting_hash: Option<u64>,
    /// Peers whose Hello was accepted.
    verified: HashSet<String>,
    /// Seed address → the node id learnt from its certificate.
    addr_ids: HashMap<SocketAddr, String>,
    /// Member gossip address strings already resolved.
    resolved: HashMap<String, SocketAddr>,
    /// Hosts this node currently applies as cluster-ejected.
    applied: BTreeSet<String>,
    counters: GossipCounters,
    tasks: Vec<JoinHandle<()>>,
}

/// The Gossip actor.
pub struct Gossip;

/// Our Hello as a frame, for the transport's greeting (`run.rs` sets the first one before the actor
/// starts; the actor refreshes it when the config's hash changes).
pub(crate) fn hello_frame(
    core: &ClusterCore,
    cluster: &str,
    config_hash: u64,
) -> Result<Bytes, switchyard_protocol::EncodeError> {
    encode(&Message::Hello(core.hello(cluster, config_hash))).map(Bytes::from)
}

impl GossipState {
    /// The hash of the config the gateway runs now (carried in Hello: a mismatch is logged, not refused,
    /// since rolling config changes are normal; and in the node's state, so records under another config are
    /// never applied).
    fn config_hash(&self) -> u64 {
        self.hosts.load().config_hash
    }

    /// Keeps the transport's greeting — our Hello, written first on every new connection — in step with
    /// the config in force (cheap when nothing was reloaded).
    fn refresh_greeting(&mut self, now: Instant) {
        let hash = self.config_hash();
        if self.greeting_hash == Some(hash) {
            return;
        }
        self.core.set_config_hash(hash, now);
        match hello_frame(&self.core, &self.settings.cluster, hash) {
            Ok(frame) => {
                self.transport.set_greeting(frame);
                self.greeting_hash = Some(hash);
            }
            Err(e) => tracing::warn!(error = %e, "cannot encode our Hello"),
        }
    }

    fn send_message(&mut self, to: &PeerAddr, msg: &Message) {
        match encode(msg) {
            Ok(bytes) => {
                if self.transport.send(to, Bytes::from(bytes)).is_err() {
                    self.counters.frames_dropped += 1;
                }
            }
            Err(e) => {
                self.counters.frames_dropped += 1;
                tracing::warn!(error = %e, message = msg.name(), "cannot encode a gossip message");
            }
        }
    }

    /// Sends everything the core queued.
    fn flush(&mut self, myself: &ActorRef<GossipMsg>) {
        // Member addresses, looked up at most once per flush (not once per message).
        let mut member_addrs: Option<HashMap<String, String>> = None;
        for out in self.core.drain_outbox() {
            match out.to {
                Peer::Node(id) => {
                    let addrs = member_addrs.get_or_insert_with(|| {
                        self.core
                            .members()
                            .into_iter()
                            .map(|m| (m.node, m.addr))
                            .collect()
                    });
                    let addr = addrs.get(&id).cloned();
                    match addr.and_then(|a| self.address(&a, myself)) {
                        Some(addr) => {
                            self.send_message(&PeerAddr { node_id: id, addr }, &out.message)
                        }
                        None => self.counters.frames_dropped += 1,
                    }
                }
                Peer::Addr(a) => match self.address(&a, myself) {
                    // A seed: when its id is known and the connection is verified, send; otherwise dial it.
                    // The message itself may be lost: the core retries seeds until it has joined.
                    Some(sa) => match self.addr_ids.get(&sa).cloned() {
                        Some(id) if self.verified.contains(&id) => self.send_message(
                            &PeerAddr {
                                node_id: id,
                                addr: sa,
                            },
                            &out.message,
                        ),
                        _ => {
                            let _ = self.transport.connect_addr(sa);
                            self.counters.frames_dropped += 1;
                        }
                    },
                    None => self.counters.frames_dropped += 1,
                },
            }
        }
        for event in self.core.drain_events() {
            match event {
                ClusterEvent::ObservationLearned {
                    age,
                    owner,
                    backend,
                    ..
                } => {
                    // The owner's decision to here: how long it held the record before sending (carried in
                    // the record) plus the one-way trip, half the connection's RTT (no clocks compared).
                    let trip = self.transport.rtt(&owner).map_or(Duration::ZERO, |r| r / 2);
                    let delay = age + trip;
                    metrics::histogram!("switchyard_ejection_propagation_seconds")
                        .record(delay.as_secs_f64());
                    tracing::info!(owner = %owner, host = %backend, delay_us = delay.as_micros() as u64, "cluster observation learned");
                }
                ClusterEvent::Member(MembershipEvent::IdentityConflict {
                    node,
                    addr,
                    generation,
                }) => {
                    metrics::counter!("switchyard_membership_events_total", "event" => "identity_conflict")
                        .increment(1);
                    tracing::error!(node = %node, other_addr = %addr, other_generation = generation,
                        "another process announces this node's id: a copy of its certificate and key is in use elsewhere (rotate the CA, docs/operations.md)");
                }
                ClusterEvent::Member(MembershipEvent::ClaimRefused {
                    node,
                    addr,
                    generation,
                    claim,
                }) => {
                    if claim == Claim::Conflict {
                        metrics::counter!("switchyard_membership_events_total", "event" => "claim_conflict")
                            .increment(1);
                        tracing::warn!(member = %node, addr = %addr, generation,
                            "two processes claim the same member and generation from different addresses; keeping the one held");
                    } else {
                        metrics::counter!("switchyard_membership_events_total", "event" => "claim_deferred")
                            .increment(1);
                        tracing::info!(member = %node, addr = %addr, generation,
                            "a restart of a live member elsewhere was reported by another node; waiting for the member itself");
                    }
                }
                ClusterEvent::Member(m) => {
                    let (what, node) = match &m {
                        MembershipEvent::Joined(n) => ("joined", n),
                        MembershipEvent::Alive(n) => ("alive", n),
                        MembershipEvent::Suspect(n) => ("suspect", n),
                        MembershipEvent::Dead(n) => ("dead", n),
                        MembershipEvent::Left(n) => ("left", n),
                        MembershipEvent::IdentityConflict { .. }
                        | MembershipEvent::ClaimRefused { .. } => continue,
                    };
                    metrics::counter!("switchyard_membership_events_total", "event" => what)
                        .increment(1);
                    tracing::info!(member = %node, event = what, "membership");
                    if matches!(m, MembershipEvent::Dead(_)) {
                        // Nothing queued for a dead peer may arrive late (after a partition heals).
                        self.transport.drop_stale(node);
                    }
                }
            }
        }
    }

    /// A gossip address as a socket address: literal, or resolved in the background (None until then).
    fn address(&mut self, addr: &str, myself: &ActorRef<GossipMsg>) -> Option<SocketAddr> {
        if let Ok(sa) = addr.parse::<SocketAddr>() {
            return Some(sa);
        }
        if let Some(sa) = self.resolved.get(addr) {
            return Some(*sa);
        }
        let name = addr.to_string();
        let me = myself.clone();
        self.tasks.retain(|t| !t.is_finished());
        self.tasks.push(tokio::spawn(async move {
            if let Ok(Ok(mut it)) = tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::lookup_host(name.clone()),
            )
            .await
            {
                if let Some(sa) = it.next() {
                    let _ = me.cast(GossipMsg::SeedResolved(name, sa));
                }
            }
        }));
        None
    }

    fn on_transport(&mut self, ev: TransportEvent, now: Instant) {
        match ev {
            TransportEvent::PeerUp { node_id, addr, .. } => {
                // Our Hello already went first on this connection (the transport's greeting).
                self.addr_ids.insert(addr, node_id);
            }
            TransportEvent::PeerDown {
                node_id, reason, ..
            } => {
                self.verified.remove(&node_id);
                tracing::debug!(peer = %node_id, reason = ?reason, "gossip connection down");
            }
            TransportEvent::Frame { from, frame, .. } => match decode(&frame) {
                Ok(Decoded::Message(Message::Hello(h))) => {
                    match h.check(&self.settings.cluster, &from) {
                        Ok(_) => {
                            if h.config_hash != self.config_hash() {
                                tracing::warn!(peer = %from, "peer runs a different routing config");
                            }
                            self.verified.insert(from);
                        }
                        Err(e) => {
                            self.counters.hello_rejected += 1;
                            metrics::counter!("switchyard_gossip_rejected_total", "reason" => "hello").increment(1);
                            tracing::warn!(peer = %from, error = %e, "peer refused at Hello");
                            self.transport.disconnect(&from, "hello refused");
                        }
                    }
                }
                Ok(Decoded::Message(m)) => {
                    if self.verified.contains(&from) {
                        self.core.handle_message(&from, m, now);
                    } else {
                        self.counters.frames_before_hello += 1;
                        metrics::counter!("switchyard_gossip_rejected_total", "reason" => "before_hello").increment(1);
                    }
                }
                Ok(Decoded::Skipped { kind, version, .. }) => {
                    self.counters.skipped_frames += 1;
                    metrics::counter!("switchyard_gossip_skipped_total").increment(1);
                    tracing::debug!(peer = %from, kind, version, "skipped an unknown gossip message");
                }
                Err(e) => {
                    self.counters.malformed_frames += 1;
                    metrics::counter!("switchyard_gossip_rejected_total", "reason" => "malformed")
                        .increment(1);
                    tracing::warn!(peer = %from, error = %e, "malformed gossip frame; dropping the connection");
                    self.verified.remove(&from);
                    self.transport.disconnect(&from, "malformed frame");
                }
            },
            TransportEvent::Rejected { addr, reason } => {
                self.counters.connections_rejected += 1;
                tracing::warn!(peer = %addr, reason = ?reason, "gossip connection refused");
            }
            TransportEvent::DialFailed { addr, reason, .. } => {
                // Forget a resolved name that led here, so it is resolved again next time (DESIGN §2:
                // seeds are DNS names, re-resolved).
                self.resolved.retain(|_, sa| *sa != addr);
                tracing::debug!(peer = %addr, reason = %reason, "gossip dial failed");
            }
        }
    }

    /// Hands every host whose cluster verdict changed its new [`ClusterFact`], and publishes the live set.
    fn publish(&mut self, now: Instant) {
        let live = LiveSet {
            me: self.core.node_id().clone(),
            live: self.core.live_nodes(),
        };
        if **self.live.load() != live {
            self.live.store(Arc::new(live));
        }
        let table = self.hosts.load_full();
        if !Arc::ptr_eq(&table, &self.table) {
            self.facts
                .retain(|k, _| table.hosts.iter().any(|h| h.key == *k));
            self.table = table.clone();
        }
        if !self.settings.share_ejections {
            return;
        }
        let view = self.core.cluster_view(now);
        let adopted: BTreeSet<String> = view
            .iter()
            .filter(|(_, v)| v.adopted)
            .map(|(k, _)| k.clone())
            .collect();
        // This node's own ejections already hold their slots of each rule's budget.
        let me = self.core.node_id();
        let local: HashSet<String> = view
            .iter()
            .filter(|(_, v)| v.observers.iter().any(|o| o.node == *me))
            .map(|(k, _)| k.clone())
            .collect();
        let applied = applied_cluster_ejections(&table.groups, &local, &adopted);
        for entry in &table.hosts {
            let key = entry.key.as_str();
            let v = view.get(key);
            let fact = ClusterFact {
                ejected: v
                    .filter(|_| applied.contains(key) || local.contains(key))
                    .and_then(|v| {
                        Some(ClusterEjection {
                            count: v.ejection_count,
                            until: now + v.time_left?,
                            reason: v.reasons.first().cloned().unwrap_or_default(),
                            class: v.adopted_class?,
                        })
                    }),
                returned: v.and_then(|v| v.returned),
                cooling: v.and_then(|v| v.cooling).map(|d| now + d),
            };
            let unchanged = self.facts.get(&entry.key) == Some(&fact);
            let empty = fact.ejected.is_none() && fact.returned.is_none() && fact.cooling.is_none();
            if unchanged || empty && !self.facts.contains_key(&entry.key) {
                continue;
            }
            entry.cluster(fact.clone());
            if empty {
                self.facts.remove(&entry.key);
            } else {
                self.facts.insert(entry.key.clone(), fact);
            }
            metrics::gauge!("switchyard_backend_cluster_ejected", "backend" => entry.key.shared())
                .set(if applied.contains(key) { 1.0 } else { 0.0 });
        }
        // For `/status`, a host this node ejected itself is applied too (it holds it out under the cluster's
        // verdict like any other), not "adopted, not applied".
        let mut shown = applied;
        shown.extend(local.into_iter().filter(|k| adopted.contains(k)));
        self.applied = shown;
    }

    fn status(&self, now: Instant) -> ClusterStatus {
        let members = self
            .core
            .members()
            .into_iter()
            .map(|m| MemberStatus {
                rtt_ms: self
                    .transport
                    .rtt(&m.node)
                    .map(|d| d.as_secs_f64() * 1000.0),
                last_heard_ms_ago: m
                    .last_heard
                    .map(|t| now.saturating_duration_since(t).as_millis() as u64),
                node: m.node,
                addr: m.addr,
                state: state_name(m.state),
                incarnation: m.incarnation,
            })
            .collect();
        let backends = self
            .core
            .cluster_view(now)
            .into_iter()
            .map(|(k, v)| {
                let applied = self.applied.contains(&k);
                let observers = v
                    .observers
                    .iter()
                    .map(|o| ObserverStatus {
                        node: o.node.clone(),
                        reason: o.reason.clone(),
                        class: class_name(o.class),
                        time_left_ms: o.time_left.as_millis() as u64,
                        ejection_count: o.ejection_count,
                        live: o.live,
                    })
                    .collect();
                (
                    k,
                    BackendClusterStatus {
                        adopted: v.adopted,
                        applied,
                        class: v.adopted_class.map(class_name),
                        observers,
                        reasons: v.reasons,
                        time_left_ms: v.time_left.map(|t| t.as_millis() as u64),
                        ejection_count: v.ejection_count,
                        network_quorum_needed: v.network_quorum_needed,
                        cooling_ms_left: v.cooling.map(|d| d.as_millis() as u64),
                    },
                )
            })
            .collect();
        let stats = self.core.stats();
        let mut counters = self.counters;
        counters.messages_in = stats.messages_in;
        counters.messages_out = stats.messages_out;
        ClusterStatus {
            cluster: self.settings.cluster.clone(),
            node_id: self.core.node_id().clone(),
            share_ejections: self.settings.share_ejections,
            members,
            backends,
            counters,
        }
    }

    fn export_gauges(&self) {
        let mut by_state: BTreeMap<&'static str, f64> = ["alive", "suspect", "dead", "left"]
            .iter()
            .map(|s| (*s, 0.0))
            .collect();
        for m in self.core.members() {
            *by_state.entry(state_name(m.state)).or_default() += 1.0;
        }
        for (state, n) in by_state {
            metrics::gauge!("switchyard_cluster_members", "state" => state).set(n);
        }
        let stats = self.core.stats();
        metrics::gauge!("switchyard_gossip_messages_in").set(stats.messages_in as f64);
        metrics::gauge!("switchyard_gossip_messages_out").set(stats.messages_out as f64);
    }
}

impl Actor for Gossip {
    type Msg = GossipMsg;
    type State = GossipState;
    type Arguments = GossipArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: GossipArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let GossipArgs {
            core,
            transport,
            mut events,
            settings,
            mut host_events,
            hosts,
            live,
        } = args;
        let me = myself.clone();
        let forward = tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if me.cast(GossipMsg::Transport(ev)).is_err() {
                    return;
                }
            }
        });
        let me = myself.clone();
        let forward_hosts = tokio::spawn(async move {
            while let Some(ev) = host_events.recv().await {
                if me.cast(GossipMsg::Host(ev)).is_err() {
                    return;
                }
            }
        });
        let ticker = myself.send_interval(TICK, || GossipMsg::Tick);
        let table = hosts.load_full();
        Ok(GossipState {
            core,
            transport,
            settings,
            hosts,
            live,
            table,
            facts: HashMap::new(),
            greeting_hash: None,
            verified: HashSet::new(),
            addr_ids: HashMap::new(),
            resolved: HashMap::new(),
            applied: BTreeSet::new(),
            counters: GossipCounters::default(),
            tasks: vec![forward, forward_hosts, ticker],
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for t in state.tasks.drain(..) {
            t.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let now = Instant::now();
        match message {
            GossipMsg::Transport(ev) => {
                let merged = state.core.stats().states_merged;
                state.on_transport(ev, now);
                // New evidence reaches the request path at once, not at the next tick: a peer's ejection
                // is applied within the message's own hop (DESIGN §6, "every other live node routes away").
                if state.core.stats().states_merged != merged {
                    state.publish(now);
                }
            }
            GossipMsg::Host(HostEvent::Record(host, record)) => {
                state.core.local_record(host.as_str(), &record, now);
                // Sent before anything else: peers hold the host out within one hop (DESIGN §6).
                state.flush(&myself);
                state.publish(now);
            }
            GossipMsg::Host(HostEvent::Cleared(host)) => {
                state.core.local_clear(host.as_str(), now);
                state.flush(&myself);
                state.publish(now);
            }
            GossipMsg::Tick => {
                state.refresh_greeting(now);
                if now >= state.core.next_deadline() {
                    state.core.tick(now);
                }
                state.publish(now);
                state.export_gauges();
            }
            GossipMsg::SeedResolved(name, sa) => {
                // Kept until the next restart; names are re-resolved by restarting resolution when the
                // address stops answering (dial failures drop the entry).
                state.resolved.insert(name, sa);
                let _ = state.transport.connect_addr(sa);
            }
            GossipMsg::Deny(denied) => {
                state.transport.set_denied(denied.iter().cloned().collect());
                for id in &denied {
                    state.verified.remove(id);
                }
                state.core.set_denied(denied, now);
                state.publish(now);
            }
            GossipMsg::Status(reply) => {
                let _ = reply.send(state.status(now));
            }
            GossipMsg::Leave(reply) => {
                state.core.leave(now);
                state.flush(&myself);
                state.transport.close_all(Duration::from_secs(2)).await;
                let _ = reply.send(());
                return Ok(());
            }
        }
        state.flush(&myself);
        Ok(())
    }
}
