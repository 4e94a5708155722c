//! The cluster transport: one quinn endpoint per node carrying opaque gossip frames between mutually
//! authenticated peers (DESIGN §6, "Transport").
//!
//! # Why this exists
//!
//! The gossip core is sans-I/O: it decides *what* to say to *whom*. This module is the I/O shell that
//! gets bytes there and tells the core who is reachable, and it owns everything that would otherwise
//! leak into the core: TLS, connection tie-breaks, queues, timeouts and hostile input. It knows nothing of
//! the wire protocol: a frame is an opaque [`Bytes`].
//!
//! # Security
//!
//! One UDP socket (`--gossip`) acts as QUIC server and client. Both directions use mutual TLS 1.3 against
//! the private cluster CA (see [`super::certs`]): the server requires a client certificate from the CA
//! (rustls' `WebPkiClientVerifier`), the client verifies the server against the CA with the peer's node
//! id as server name. A peer without a CA-signed certificate never gets a connection. ALPN is
//! [`ALPN`]; 0-RTT and session resumption are off, so every connection presents a full certificate.
//! The **identity** of a peer is the node id in its certificate (its single DNS SAN), and every event
//! carries that identity — never a claim made in a message. The gossip layer checks that its `Hello`
//! names the same node id.
//!
//! # Connections
//!
//! At most one connection per peer pair. When both sides dial at once, both keep the connection opened
//! by the **lower node id** (byte-wise string order) and close the other with [`close_code::DUPLICATE`].
//! The rule only applies while the kept connection is young ([`SIMULTANEOUS_DIAL_WINDOW`]): a new
//! connection that arrives later means the peer has lost the old one (it restarted), so the newer one
//! wins, which both sides agree on too. A replaced connection does not produce `PeerDown`; its replacement
//! produces a new `PeerUp` (so the owner says Hello again on it).
//!
//! # One live holder per identity
//!
//! A certificate is an identity, so a second process presenting it (a copied key) must not be taken for
//! the node restarting. When a connection arrives for a peer that already has one from **another
//! address**, older than the simultaneous-dial window, the old connection is watched for up to
//! [`LIVENESS_WINDOW`] (a little more than the keep-alive interval, so a live peer's keep-alive or its
//! answer to ours arrives within it): if it receives anything, its holder is alive and answering, and the
//! newcomer is refused ([`RejectReason::IdentityInUse`], logged as a warning). If the old connection stays
//! silent or closes, its holder is gone and the newcomer replaces it — a real restart from another
//! address, delayed by at most the window. A restart from the same address is recognised at once (its
//! stateless reset closes the old connection) and is not delayed.
//!
//! # Deny list
//!
//! [`Transport::set_denied`] names node ids that may not connect, whatever their certificate: their
//! connections are closed ([`close_code::DENIED`]), new ones refused ([`RejectReason::Denied`]) and dials
//! to them not made. It is the revocation path for one node's certificate without a new CA.
//!
//! # Certificate reload
//!
//! [`Transport::prepare_tls`] checks a new CA bundle, certificate and key and builds their TLS configs;
//! [`Transport::install_tls`] swaps them in for every new handshake (the endpoint's server config and the
//! client config of new dials), as Envoy does with a new SDS secret. Live connections stay, except those
//! whose peer certificate the new bundle no longer accepts ([`close_code::UNTRUSTED`]), so a CA dropped
//! from the bundle stops vouching at once rather than whenever a connection happens to break.
//!
//! # Framing: one long-lived unidirectional stream per direction
//!
//! Each side opens exactly one unidirectional stream per connection, writes a 4-byte preamble, then
//! length-delimited frames (tokio-util's `LengthDelimitedCodec`, 4-byte big-endian length, max
//! [`TransportConfig::max_frame`], 64 KiB by default). Why not a stream per message: gossip messages are
//! small and frequent; a long-lived stream keeps them in order per direction, costs no stream setup per
//! message, and lets QUIC flow control provide backpressure end to end. Head-of-line blocking inside one
//! peer's stream does not matter at these sizes. Why not bidirectional: the two directions are
//! independent and each side's writer owns its stream, so neither waits for the other to open it. The
//! peer may open at most one stream (`max_concurrent_uni_streams = 1`, no bidirectional streams).
//!
//! A peer is **up** ([`TransportEvent::PeerUp`]) once its stream preamble has arrived, i.e. it has
//! accepted the connection at the application level — not merely when our side of the handshake ends
//! (in TLS 1.3 a client finishes before the server has checked the client certificate).
//!
//! A frame longer than the receiver's max frame closes that connection ([`close_code::FRAME_TOO_LARGE`])
//! and is counted; the node keeps running and the peer may reconnect.
//!
//! # Backpressure
//!
//! [`Transport::send`] never blocks: each peer has a bounded queue (`peer_queue`); a full queue drops the
//! frame and counts it. A writer task per connection drains the queue into the stream, so a slow peer
//! (flow control) fills only its own queue. Inbound frames go to one bounded event channel; a slow
//! consumer stops the readers, which stops the peers' writers through QUIC flow control.
//!
//! # Driving it
//!
//! ```text
//! let (transport, mut events) = Transport::bind(TransportConfig::new(listen, id, ca, cert, key))?;
//! transport.connect_addr(seed)?;                 // seeds: identity learnt from the certificate
//! transport.send(&PeerAddr { node_id, addr }, frame)?;  // never blocks; dials if needed
//! while let Some(ev) = events.recv().await { /* PeerUp, Frame, PeerDown, Rejected, DialFailed */ }
//! transport.close_all(grace).await;              // after queueing Leave: it is flushed first
//! ```
//!
//! Per connection, events come in order: `PeerUp`, its `Frame`s, then `PeerDown`. A dial that never
//! becomes ready ends in `DialFailed` (its queued frames are dropped). The transport never redials by
//! itself: retries and backoff belong to the membership layer.
//!
//! # Counters
//!
//! `result` of the connections counter is `established`, `failed` (outbound), `duplicate` (tie-break or
//! replacement) or `rejected` (inbound); `reason` of the rejected counter is [`RejectReason::label`];
//! dropped-frame reasons are `queue_full`, `too_large` (refused by `send`), `oversized` (received),
//! `conn_lost`, `unreachable`, `closed` and `denied`:
//! `switchyard_quic_connections_total{direction,result}`, `switchyard_quic_rejected_total{reason}`,
//! `switchyard_gossip_frames_total{direction}`, `switchyard_gossip_frames_dropped_total{reason}` (metrics
//! crate), mirrored in [`Transport::stats`].

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{ClientConfig, ConnectionError, IdleTimeout, VarInt};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::{Encoder, FramedRead, LengthDelimitedCodec, LengthDelimitedCodecError};

use super::certs::{self, IdentityError};

/// The ALPN protocol both sides must offer.
pub const ALPN: &[u8] = b"switchyard-gossip/1";
/// Default maximum frame length in bytes.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;
/// Written first on every gossip stream; anything else is a protocol error.
const STREAM_PREAMBLE: &[u8; 4] = b"SYG1";
/// TLS server name used when dialling an address whose node id is not known yet (a seed): the server
/// certificate must still chain to the cluster CA, and its node id becomes the peer's identity.
const SEED_SERVER_NAME: &str = "seed.switchyard.invalid";
/// How long a connection counts as "just opened" for the simultaneous-dial tie-break.
pub const SIMULTANEOUS_DIAL_WINDOW: Duration = Duration::from_secs(5);
/// How long an existing connection is watched for a sign of life before a connection claiming the same
/// identity from another address may replace it (keep-alive 3 s plus a margin for its answer).
pub const LIVENESS_WINDOW: Duration = Duration::from_secs(4);

/// A node id: the single DNS SAN of the node's certificate.
pub type NodeId = String;

/// QUIC application close codes used by the transport.
pub mod close_code {
    /// Orderly shutdown of the sending node ([`super::Transport::close_all`]).
    pub const SHUTDOWN: u32 = 0;
    /// A duplicate connection lost the tie-break (or was replaced by a newer one).
    pub const DUPLICATE: u32 = 1;
    /// The peer sent a frame longer than our maximum.
    pub const FRAME_TOO_LARGE: u32 = 2;
    /// The peer broke the stream protocol (bad preamble, no stream in time).
    pub const PROTOCOL: u32 = 3;
    /// The peer's certificate identity is unusable (no node id, or our own id).
    pub const IDENTITY: u32 = 4;
    /// We hold the peer dead: whatever is still queued or unacknowledged on the connection is stale and
    /// must not be delivered late ([`super::Transport::drop_stale`]).
    pub const STALE: u32 = 5;
    /// The peer's node id is on this node's deny list.
    pub const DENIED: u32 = 6;
    /// Another process holding the same certificate is alive and connected.
    pub const IDENTITY_IN_USE: u32 = 7;
    /// A certificate reload dropped the CA the peer's certificate chains to.
    pub const UNTRUSTED: u32 = 8;
}

/// Where to reach a peer: its node id (the TLS server name, checked against its certificate) and address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerAddr {
    /// The peer's node id.
    pub node_id: NodeId,
    /// Its gossip UDP address.
    pub addr: SocketAddr,
}

/// Transport settings. [`TransportConfig::new`] fills in the defaults.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// UDP address to bind (`--gossip`).
    pub listen: SocketAddr,
    /// This node's id; must match the certificate's DNS SAN.
    pub node_id: NodeId,
    /// The cluster CA certificate(s), PEM.
    pub ca_pem: String,
    /// This node's certificate (chain), PEM.
    pub cert_pem: String,
    /// This node's private key, PEM.
    pub key_pem: String,
    /// Maximum frame length, both for sending and receiving.
    pub max_frame: usize,
    /// Frames queued per peer before [`Transport::send`] drops.
    pub peer_queue: usize,
    /// Capacity of the event channel.
    pub event_queue: usize,
    /// QUIC idle timeout.
    pub idle_timeout: Duration,
    /// QUIC keep-alive interval.
    pub keep_alive: Duration,
    /// How long a peer has after the handshake to open its stream.
    pub ready_timeout: Duration,
    /// Oldest a queued frame may be when its turn to be written comes; older ones are dropped (counted
    /// as `stale`). Frames wait in the queue while a dial is under way, and a dial into a partition can
    /// complete only once it heals, many seconds later: a gossip frame states durations as of sending
    /// (`remaining_ms`), which the receiver re-bases on arrival, so a late one would extend an ejection
    /// that has long ended. What is dropped is repaired by the Hello and anti-entropy of the new
    /// connection.
    pub max_queue_age: Duration,
}

impl TransportConfig {
    /// Settings with defaults: 64 KiB frames, 256 frames per peer, 1024 events, 10 s idle timeout, 3 s
    /// keep-alive, 5 s to become ready, frames dropped after 1 s in the queue.
    pub fn new(
        listen: SocketAddr,
        node_id: impl Into<NodeId>,
        ca_pem: impl Into<String>,
        cert_pem: impl Into<String>,
        key_pem: impl Into<String>,
    ) -> Self {
        TransportConfig {
            listen,
            node_id: node_id.into(),
            ca_pem: ca_pem.into(),
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
            max_frame: DEFAULT_MAX_FRAME,
            peer_queue: 256,
            event_queue: 1024,
            idle_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(3),
            ready_timeout: Duration::from_secs(5),
            max_queue_age: Duration::from_secs(1),
        }
    }
}

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The peer dialled us.
    Inbound,
    /// We dialled the peer.
    Outbound,
}

impl Direction {
    fn label(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// What the transport reports to its owner, in order per connection (`PeerUp`, then its `Frame`s, then
/// `PeerDown`).
#[derive(Debug, Clone)]
pub enum TransportEvent {
    /// A peer is connected and ready (it has accepted the connection and opened its stream).
    PeerUp {
        /// Identity from the peer's certificate.
        node_id: NodeId,
        /// The peer's UDP address.
        addr: SocketAddr,
        /// Current RTT estimate.
        rtt: Duration,
        /// Who dialled.
        direction: Direction,
    },
    /// The connection to a peer that was up has ended and no other connection replaced it.
    PeerDown {
        /// Identity from the peer's certificate.
        node_id: NodeId,
        /// The peer's UDP address.
        addr: SocketAddr,
        /// Why.
        reason: DownReason,
    },
    /// A frame from a peer.
    Frame {
        /// Identity from the peer's certificate (not from the frame's content).
        from: NodeId,
        /// The peer's UDP address.
        addr: SocketAddr,
        /// The opaque frame.
        frame: Bytes,
    },
    /// An inbound connection was refused (TLS, identity, protocol) and counted.
    Rejected {
        /// The remote address.
        addr: SocketAddr,
        /// Why.
        reason: RejectReason,
    },
    /// A dial did not produce a usable connection. Frames queued for that peer were dropped.
    DialFailed {
        /// The node id dialled, if known (`None` for [`Transport::connect_addr`]).
        node_id: Option<NodeId>,
        /// The address dialled.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// Why a peer went down.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownReason {
    /// The peer shut down in an orderly way.
    #[error("peer shut down")]
    PeerShutdown,
    /// Nothing heard within the idle timeout.
    #[error("timed out")]
    TimedOut,
    /// The peer sent a frame over our limit; we closed the connection.
    #[error("peer sent a frame over the limit")]
    FrameTooLarge,
    /// We are shutting down ([`Transport::close_all`]).
    #[error("local shutdown")]
    LocalShutdown,
    /// This node closed the connection ([`Transport::disconnect`]).
    #[error("disconnected by this node")]
    Disconnected,
    /// The peer closed the connection for another reason, or it broke.
    #[error("connection lost: {0}")]
    Lost(String),
}

/// Why an inbound connection was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// The TLS handshake failed: no certificate, one not from the cluster CA, wrong ALPN…
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The certificate carries no usable node id.
    #[error("bad identity: {0}")]
    Identity(IdentityError),
    /// The peer is this node (a seed list naming ourselves).
    #[error("connection from this node itself")]
    SelfConnection,
    /// The handshake or the peer's stream did not complete in time.
    #[error("timed out")]
    Timeout,
    /// The peer broke the stream protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The peer's node id is on the deny list.
    #[error("node {0} is denied")]
    Denied(NodeId),
    /// The certificate's node is alive and connected from another address: a second process holds the
    /// same certificate.
    #[error("node {node} is alive at {live_addr}; a second process presents its certificate")]
    IdentityInUse {
        /// The node id in both certificates.
        node: NodeId,
        /// Where the live holder is connected from.
        live_addr: SocketAddr,
    },
}

impl RejectReason {
    /// The `reason` label of `switchyard_quic_rejected_total`.
    pub fn label(&self) -> &'static str {
        match self {
            RejectReason::Tls(_) => "tls",
            RejectReason::Identity(_) => "identity",
            RejectReason::SelfConnection => "self",
            RejectReason::Timeout => "timeout",
            RejectReason::Protocol(_) => "protocol",
            RejectReason::Denied(_) => "denied",
            RejectReason::IdentityInUse { .. } => "identity_in_use",
        }
    }
}

/// Errors building or using the transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The node id cannot be a certificate identity.
    #[error(transparent)]
    NodeId(#[from] certs::CertError),
    /// The CA PEM is unusable.
    #[error("cluster CA: {0}")]
    BadCa(String),
    /// The node certificate PEM is unusable.
    #[error("cluster certificate: {0}")]
    BadCert(String),
    /// The node key PEM is unusable.
    #[error("cluster key: {0}")]
    BadKey(String),
    /// The certificate names another node.
    #[error("the cluster certificate is for node {cert_id:?}, but this node's id is {node_id:?}")]
    IdentityMismatch {
        /// The id in the certificate.
        cert_id: String,
        /// The configured id.
        node_id: String,
    },
    /// rustls or quinn refused the TLS configuration.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// Invalid QUIC transport settings.
    #[error("QUIC configuration: {0}")]
    Config(String),
    /// The UDP socket could not be bound.
    #[error("cannot bind gossip address {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Why [`Transport::send`] did not queue a frame (each case is also counted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The frame is longer than `max_frame`.
    #[error("frame of {len} bytes exceeds the {max} byte limit")]
    TooLarge {
        /// Frame length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The peer's queue is full (slow or unreachable peer).
    #[error("send queue for {0} is full")]
    QueueFull(NodeId),
    /// The frame is addressed to this node.
    #[error("cannot send to this node itself")]
    ToSelf,
    /// The transport is shut down.
    #[error("transport closed")]
    Closed,
    /// The peer is on the deny list.
    #[error("node {0} is denied")]
    Denied(NodeId),
}

/// A snapshot of the transport counters (the same as the metrics, for tests and `/status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Connections established (after tie-breaks), inbound.
    pub connections_inbound: u64,
    /// Connections established (after tie-breaks), outbound.
    pub connections_outbound: u64,
    /// Dials that failed.
    pub dials_failed: u64,
    /// Connections closed as duplicates (tie-break) or replaced.
    pub duplicates: u64,
    /// Inbound connections refused.
    pub rejected: u64,
    /// Frames received.
    pub frames_in: u64,
    /// Frames written to a stream.
    pub frames_out: u64,
    /// Frames dropped because a peer queue was full.
    pub dropped_queue_full: u64,
    /// Frames refused by `send` for being over the limit.
    pub dropped_too_large: u64,
    /// Oversized frames received (each closed its connection).
    pub dropped_oversized: u64,
    /// Queued frames lost with their connection or dial.
    pub dropped_lost: u64,
    /// Queued frames dropped for having waited longer than `max_queue_age`.
    pub dropped_stale: u64,
}

/// Information about one connected peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Identity from the certificate.
    pub node_id: NodeId,
    /// UDP address.
    pub addr: SocketAddr,
    /// Who dialled.
    pub direction: Direction,
    /// Current RTT estimate.
    pub rtt: Duration,
    /// Whether the peer has opened its stream (`PeerUp` was sent).
    pub up: bool,
}

#[derive(Default)]
struct Counters {
    conn_in: AtomicU64,
    conn_out: AtomicU64,
    dials_failed: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_too_large: AtomicU64,
    dropped_oversized: AtomicU64,
    dropped_lost: AtomicU64,
    dropped_stale: AtomicU64,
}

impl Counters {
    fn connection(&self, direction: Direction, result: &'static str) {
        metrics::counter!("switchyard_quic_connections_total",
            "direction" => direction.label(), "result" => result)
        .increment(1);
        let c = match (direction, result) {
            (Direction::Inbound, "established") => &self.conn_in,
            (Direction::Outbound, "established") => &self.conn_out,
            (Direction::Outbound, "failed") => &self.dials_failed,
            (_, "duplicate") => &self.duplicates,
            _ => return,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn rejected(&self, reason: &RejectReason) {
        metrics::counter!("switchyard_quic_connections_total",
            "direction" => "inbound", "result" => "rejected")
        .increment(1);
        metrics::counter!("switchyard_quic_rejected_total", "reason" => reason.label())
            .increment(1);
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    fn frame(&self, direction: Direction) {
        let (label, c) = match direction {
            Direction::Inbound => ("in", &self.frames_in),
            Direction::Outbound => ("out", &self.frames_out),
        };
        metrics::counter!("switchyard_gossip_frames_total", "direction" => label).increment(1);
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn dropped(&self, reason: &'static str, n: u64) {
        if n == 0 {
            return;
        }
        metrics::counter!("switchyard_gossip_frames_dropped_total", "reason" => reason)
            .increment(n);
        let c = match reason {
            "queue_full" => &self.dropped_queue_full,
            "too_large" => &self.dropped_too_large,
            "oversized" => &self.dropped_oversized,
            "stale" => &self.dropped_stale,
            _ => &self.dropped_lost,
        };
        c.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> TransportStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransportStats {
            connections_inbound: g(&self.conn_in),
            connections_outbound: g(&self.conn_out),
            dials_failed: g(&self.dials_failed),
            duplicates: g(&self.duplicates),
            rejected: g(&self.rejected),
            frames_in: g(&self.frames_in),
            frames_out: g(&self.frames_out),
            dropped_queue_full: g(&self.dropped_queue_full),
            dropped_too_large: g(&self.dropped_too_large),
            dropped_oversized: g(&self.dropped_oversized),
            dropped_lost: g(&self.dropped_lost),
            dropped_stale: g(&self.dropped_stale),
        }
    }
}

/// A peer's outbound frames, each with the instant it was queued.
type Queue = Arc<tokio::sync::Mutex<mpsc::Receiver<(Instant, Bytes)>>>;

struct Active {
    conn: quinn::Connection,
    direction: Direction,
    dialer_is_lower: bool,
    since: Instant,
    addr: SocketAddr,
}

struct PeerSlot {
    tx: mpsc::Sender<(Instant, Bytes)>,
    rx: Queue,
    active: Option<Active>,
    dialing: bool,
    up: bool,
}

#[derive(Default)]
struct State {
    closed: bool,
    peers: HashMap<NodeId, PeerSlot>,
    addr_dials: HashSet<SocketAddr>,
    denied: HashSet<NodeId>,
}

struct Inner {
    endpoint: quinn::Endpoint,
    /// The client side of the current certificate set; replaced by [`Transport::install_tls`]. Read once
    /// per dial, never on the frame path.
    client: ArcSwap<quinn::ClientConfig>,
    /// QUIC settings shared by every connection, kept so a new certificate set is built with the same.
    quic: Arc<quinn::TransportConfig>,
    node_id: NodeId,
    max_frame: usize,
    peer_queue: usize,
    ready_timeout: Duration,
    max_queue_age: Duration,
    events: mpsc::Sender<TransportEvent>,
    state: Mutex<State>,
    counters: Counters,
    shutdown: watch::Sender<bool>,
    writers: watch::Sender<usize>,
    /// Written first on every connection, before anything queued (the owner's Hello), so the peer never
    /// receives a queued message ahead of it.
    greeting: Mutex<Option<Bytes>>,
}

/// Closes the endpoint when the last [`Transport`] handle is dropped, so that the accept loop and the
/// connection tasks (which hold the shared state) end too.
struct EndpointGuard(quinn::Endpoint);

impl Drop for EndpointGuard {
    fn drop(&mut self) {
        self.0
            .close(VarInt::from_u32(close_code::SHUTDOWN), b"shutdown");
    }
}

/// The gossip transport. Cheap to clone; all methods take `&self`. Must be created inside a tokio
/// runtime: it spawns an accept task and one reader and one writer task per connection.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
    _guard: Arc<EndpointGuard>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("node_id", &self.inner.node_id)
            .field("local_addr", &self.local_addr())
            .finish()
    }
}

fn lock<T>(state: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state is only mutated in short critical sections without panics; a poisoned lock still
    // holds consistent data.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Transport {
    /// Binds the gossip endpoint and starts accepting peers. Returns the handle and the event stream.
    ///
    /// Fails if the PEM material is unusable, the certificate's node id is not `config.node_id`, or the
    /// address cannot be bound.
    pub fn bind(
        config: TransportConfig,
    ) -> Result<(Transport, mpsc::Receiver<TransportEvent>), TransportError> {
        certs::validate_node_id(&config.node_id)?;
        let quic = quic_config(&config)?;
        let tls = build_tls(
            &config.node_id,
            &config.ca_pem,
            &config.cert_pem,
            &config.key_pem,
            quic.clone(),
        )?;
        let (server, client) = (tls.server, tls.client);
        let endpoint = quinn::Endpoint::server(server, config.listen).map_err(|source| {
            TransportError::Bind {
                addr: config.listen,
                source,
            }
        })?;
        let (events_tx, events_rx) = mpsc::channel(config.event_queue.max(1));
        let inner = Arc::new(Inner {
            endpoint: endpoint.clone(),
            client: ArcSwap::from_pointee(client),
            quic,
            node_id: config.node_id,
            max_frame: config.max_frame.max(1),
            peer_queue: config.peer_queue.max(1),
            ready_timeout: config.ready_timeout,
            max_queue_age: config.max_queue_age,
            events: events_tx,
            state: Mutex::new(State::default()),
            counters: Counters::default(),
            shutdown: watch::channel(false).0,
            writers: watch::channel(0).0,
            greeting: Mutex::new(None),
        });
        tokio::spawn(accept_loop(Arc::downgrade(&inner), endpoint.clone()));
        Ok((
            Transport {
                inner,
                _guard: Arc::new(EndpointGuard(endpoint)),
            },
            events_rx,
        ))
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// The bound UDP address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.endpoint.local_addr()
    }

    /// Sets the frame written first on every connection opened from now on (in both directions), ahead of
    /// any frame queued for the peer: the gossip layer's Hello, which the peer must see before anything
    /// else. Frames queued before a connection existed would otherwise overtake a Hello sent on `PeerUp`.
    pub fn set_greeting(&self, frame: Bytes) {
        *lock(&self.inner.greeting) = Some(frame);
    }

    /// Queues `frame` for `peer`, dialling it if there is no connection yet. Never blocks: when the
    /// peer's queue is full the frame is dropped and counted. Frames to one peer arrive in order while
    /// its connection lasts; frames queued when a dial fails or a connection is lost are dropped.
    pub fn send(&self, peer: &PeerAddr, frame: Bytes) -> Result<(), SendError> {
        let inner = &self.inner;
        if frame.len() > inner.max_frame {
            inner.counters.dropped("too_large", 1);
            return Err(SendError::TooLarge {
                len: frame.len(),
                max: inner.max_frame,
            });
        }
        if peer.node_id == inner.node_id {
            return Err(SendError::ToSelf);
        }
        let dial = {
            let mut st = lock(&inner.state);
            if st.closed {
                inner.counters.dropped("closed", 1);
                return Err(SendError::Closed);
            }
            if st.denied.contains(&peer.node_id) {
                return Err(SendError::Denied(peer.node_id.clone()));
            }
            let slot = slot(&mut st, &peer.node_id, inner.peer_queue);
            if slot.tx.try_send((Instant::now(), frame)).is_err() {
                inner.counters.dropped("queue_full", 1);
                return Err(SendError::QueueFull(peer.node_id.clone()));
            }
            start_dial(slot)
        };
        if dial {
            spawn_dial(inner.clone(), Some(peer.node_id.clone()), peer.addr);
        }
        Ok(())
    }

    /// Dials `peer` unless connected or already dialling (useful to connect before there is anything
    /// to send). Outcome: `PeerUp` or `DialFailed`.
    pub fn connect(&self, peer: &PeerAddr) -> Result<(), SendError> {
        if peer.node_id == self.inner.node_id {
            return Err(SendError::ToSelf);
        }
        let dial = {
            let mut st = lock(&self.inner.state);
            if st.closed {
                return Err(SendError::Closed);
            }
            if st.denied.contains(&peer.node_id) {
                return Err(SendError::Denied(peer.node_id.clone()));
            }
            start_dial(slot(&mut st, &peer.node_id, self.inner.peer_queue))
        };
        if dial {
            spawn_dial(self.inner.clone(), Some(peer.node_id.clone()), peer.addr);
        }
        Ok(())
    }

    /// Dials an address whose node id is not known (a `--seeds` entry). The server's certificate must
    /// still chain to the cluster CA; its node id becomes the peer identity in `PeerUp`. Does nothing if
    /// a connection to that address exists or a dial to it is under way. Dialling our own address fails
    /// with `DialFailed` (seed lists may include the node itself).
    pub fn connect_addr(&self, addr: SocketAddr) -> Result<(), SendError> {
        {
            let mut st = lock(&self.inner.state);
            if st.closed {
                return Err(SendError::Closed);
            }
            let connected = st
                .peers
                .values()
                .any(|s| s.active.as_ref().is_some_and(|a| a.addr == addr));
            if connected || !st.addr_dials.insert(addr) {
                return Ok(());
            }
        }
        spawn_dial(self.inner.clone(), None, addr);
        Ok(())
    }

    /// The RTT estimate of the connection to `node`, if connected.
    pub fn rtt(&self, node: &str) -> Option<Duration> {
        let st = lock(&self.inner.state);
        st.peers.get(node)?.active.as_ref().map(|a| a.conn.rtt())
    }

    /// The connected peers.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let st = lock(&self.inner.state);
        let mut v: Vec<PeerInfo> = st
            .peers
            .iter()
            .filter_map(|(id, s)| {
                s.active.as_ref().map(|a| PeerInfo {
                    node_id: id.clone(),
                    addr: a.addr,
                    direction: a.direction,
                    rtt: a.conn.rtt(),
                    up: s.up,
                })
            })
            .collect();
        v.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        v
    }

    /// Closes the connection to `node` (e.g. its `Hello` did not check out). Produces `PeerDown` if it
    /// was up.
    pub fn disconnect(&self, node: &str, reason: &str) {
        let st = lock(&self.inner.state);
        if let Some(a) = st.peers.get(node).and_then(|s| s.active.as_ref()) {
            a.conn
                .close(VarInt::from_u32(close_code::PROTOCOL), reason.as_bytes());
        }
    }

    /// Closes the connection to `node` and discards what is queued for it, because the owner holds the
    /// peer dead. QUIC would otherwise keep retransmitting those frames through a partition (until the
    /// idle timeout) and deliver them when it heals — old state that a receiver would take as new, since
    /// `remaining_ms` is re-based on arrival. The next frame to the peer dials afresh.
    pub fn drop_stale(&self, node: &str) {
        let st = lock(&self.inner.state);
        if let Some(a) = st.peers.get(node).and_then(|s| s.active.as_ref()) {
            a.conn
                .close(VarInt::from_u32(close_code::STALE), b"peer held dead");
        }
    }

    /// Replaces the deny list: connections to newly denied nodes are closed and what is queued for them
    /// dropped; their future connections are refused and dials to them not made.
    pub fn set_denied(&self, denied: HashSet<NodeId>) {
        let mut st = lock(&self.inner.state);
        let mut dropped = 0;
        for id in &denied {
            if let Some(slot) = st.peers.get_mut(id) {
                if let Some(a) = &slot.active {
                    tracing::warn!(peer = %id, addr = %a.addr, "closing the gossip connection of a denied node");
                    a.conn
                        .close(VarInt::from_u32(close_code::DENIED), b"denied");
                }
                dropped += drain(slot);
            }
        }
        st.denied = denied;
        drop(st);
        self.inner.counters.dropped("denied", dropped);
    }

    /// Checks a new CA bundle, certificate and key ([`certs::check_node_identity`] at `now`) and builds
    /// the TLS configs from them, without using them yet: a reload prepares everything it will change
    /// before it changes anything.
    pub fn prepare_tls(
        &self,
        ca_pem: &str,
        cert_pem: &str,
        key_pem: &str,
        now: UnixTime,
    ) -> Result<(TlsSet, certs::CertSummary), certs::IdentityCheckError> {
        let summary =
            certs::check_node_identity(&self.inner.node_id, ca_pem, cert_pem, key_pem, now)?;
        let set = build_tls(
            &self.inner.node_id,
            ca_pem,
            cert_pem,
            key_pem,
            self.inner.quic.clone(),
        )
        .map_err(|e| certs::IdentityCheckError {
            file: match e {
                TransportError::BadCa(_) => certs::IdentityFile::Ca,
                TransportError::BadKey(_) => certs::IdentityFile::Key,
                _ => certs::IdentityFile::Cert,
            },
            reason: e.to_string(),
        })?;
        Ok((set, summary))
    }

    /// Puts a prepared certificate set in use for every handshake from now on, both ways (the endpoint's
    /// server config and the client config of new dials), as Envoy does with a new SDS secret. Live
    /// connections stay up, except those whose peer certificate no longer chains to the new CA bundle
    /// at `now` (the old CA was dropped): keeping those would let a certificate the node no longer
    /// trusts stay in the cluster until its connection happens to break. They are closed with
    /// [`close_code::UNTRUSTED`], and the peer redials with what it holds now. Returns the node ids
    /// whose connections were closed.
    pub fn install_tls(&self, set: TlsSet, now: UnixTime) -> Vec<NodeId> {
        let inner = &self.inner;
        inner.endpoint.set_server_config(Some(set.server));
        inner.client.store(Arc::new(set.client));
        let st = lock(&inner.state);
        let mut closed = Vec::new();
        for (id, slot) in &st.peers {
            if let Some(a) = &slot.active {
                if !still_trusted(&a.conn, &set.verifier, now) {
                    tracing::warn!(peer = %id, addr = %a.addr,
                        "closing a gossip connection whose peer certificate the new CA bundle does not accept");
                    a.conn
                        .close(VarInt::from_u32(close_code::UNTRUSTED), b"untrusted");
                    closed.push(id.clone());
                }
            }
        }
        closed.sort();
        closed
    }

    /// QUIC connections open on the endpoint (including ones being closed or still handshaking).
    pub fn open_connections(&self) -> usize {
        self.inner.endpoint.open_connections()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> TransportStats {
        self.inner.counters.snapshot()
    }

    /// Orderly shutdown: refuses new connections and sends, lets every writer flush its queue (so a
    /// final `Leave` gets out) until `grace` runs out, then closes all connections with
    /// [`close_code::SHUTDOWN`] and waits (within `grace` again) for the endpoint to go idle.
    pub async fn close_all(&self, grace: Duration) {
        let inner = &self.inner;
        lock(&inner.state).closed = true;
        inner.shutdown.send_replace(true);
        let mut writers = inner.writers.subscribe();
        let _ = tokio::time::timeout(grace, writers.wait_for(|n| *n == 0)).await;
        let conns: Vec<quinn::Connection> = lock(&inner.state)
            .peers
            .values()
            .filter_map(|s| s.active.as_ref().map(|a| a.conn.clone()))
            .collect();
        for c in conns {
            c.close(VarInt::from_u32(close_code::SHUTDOWN), b"shutdown");
        }
        inner
            .endpoint
            .close(VarInt::from_u32(close_code::SHUTDOWN), b"shutdown");
        let _ = tokio::time::timeout(grace, inner.endpoint.wait_idle()).await;
    }
}

fn slot<'a>(st: &'a mut State, node: &str, cap: usize) -> &'a mut PeerSlot {
    st.peers.entry(node.to_string()).or_insert_with(|| {
        let (tx, rx) = mpsc::channel(cap);
        PeerSlot {
            tx,
            rx: Arc::new(tokio::sync::Mutex::new(rx)),
            active: None,
            dialing: false,
            up: false,
        }
    })
}

/// Marks a dial as started if one is needed.
fn start_dial(slot: &mut PeerSlot) -> bool {
    if slot.active.is_none() && !slot.dialing {
        slot.dialing = true;
        true
    } else {
        false
    }
}

/// A certificate set ready to be swapped in: the server and client TLS configs built from one CA bundle,
/// certificate and key, and the verifier live connections are re-checked with.
pub struct TlsSet {
    server: quinn::ServerConfig,
    client: quinn::ClientConfig,
    verifier: Arc<WebPkiServerVerifier>,
}

impl std::fmt::Debug for TlsSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key: only that there is a set.
        f.debug_struct("TlsSet").finish_non_exhaustive()
    }
}

fn quic_config(config: &TransportConfig) -> Result<Arc<quinn::TransportConfig>, TransportError> {
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(Some(
            IdleTimeout::try_from(config.idle_timeout)
                .map_err(|e| TransportError::Config(format!("idle timeout: {e}")))?,
        ))
        .keep_alive_interval(Some(config.keep_alive))
        .max_concurrent_uni_streams(VarInt::from_u32(1))
        .max_concurrent_bidi_streams(VarInt::from_u32(0))
        .datagram_receive_buffer_size(None);
    Ok(Arc::new(transport))
}

fn build_tls(
    node_id: &str,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
    transport: Arc<quinn::TransportConfig>,
) -> Result<TlsSet, TransportError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| TransportError::BadCa(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| TransportError::BadCa(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(TransportError::BadCa("no PEM certificate found".into()));
    }
    let roots = Arc::new(roots);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| TransportError::BadCert(e.to_string()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| TransportError::BadCert("no PEM certificate found".into()))?;
    let cert_id =
        certs::node_id_from_cert(leaf).map_err(|e| TransportError::BadCert(e.to_string()))?;
    if cert_id != node_id {
        return Err(TransportError::IdentityMismatch {
            cert_id,
            node_id: node_id.to_string(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| TransportError::BadKey(e.to_string()))?;
    let tls = |e: rustls::Error| TransportError::Tls(e.to_string());

    let client_verifier =
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TransportError::Tls(e.to_string()))?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(tls)?;
    server.alpn_protocols = vec![ALPN.to_vec()];
    server.max_early_data_size = 0;
    server.send_tls13_tickets = 0;
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});

    let server_verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| TransportError::Tls(e.to_string()))?;
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ClusterServerVerifier {
            inner: server_verifier.clone(),
        }))
        .with_client_auth_cert(chain, key)
        .map_err(tls)?;
    client.alpn_protocols = vec![ALPN.to_vec()];
    client.enable_early_data = false;
    client.resumption = rustls::client::Resumption::disabled();

    let server_crypto =
        QuicServerConfig::try_from(server).map_err(|e| TransportError::Tls(e.to_string()))?;
    let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
    server_config.transport_config(transport.clone());
    let client_crypto =
        QuicClientConfig::try_from(client).map_err(|e| TransportError::Tls(e.to_string()))?;
    let mut client_config = quinn::ClientConfig::new(Arc::new(client_crypto));
    client_config.transport_config(transport);
    Ok(TlsSet {
        server: server_config,
        client: client_config,
        verifier: server_verifier,
    })
}

/// Whether a live connection's peer certificate still chains to the (new) CA bundle at `now`, its own
/// node id as the name, as a fresh handshake would require.
fn still_trusted(conn: &quinn::Connection, verifier: &WebPkiServerVerifier, now: UnixTime) -> bool {
    let Some(chain) = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
    else {
        return false;
    };
    let Some((leaf, rest)) = chain.split_first() else {
        return false;
    };
    let Ok(name) = certs::node_id_from_cert(leaf).map(ServerName::try_from) else {
        return false;
    };
    name.is_ok_and(|name| {
        verifier
            .verify_server_cert(leaf, rest, &name, &[], now)
            .is_ok()
    })
}

/// Verifies a server certificate against the cluster CA using the node id *in the certificate* as the
/// name, then requires it to equal the name dialled (unless dialling a seed by address).
#[derive(Debug)]
struct ClusterServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ClusterServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let id = certs::node_id_from_cert(end_entity).map_err(|e| {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
        })?;
        let name = ServerName::try_from(id)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::NotValidForName))?;
        self.inner
            .verify_server_cert(end_entity, intermediates, &name, ocsp_response, now)?;
        let seed = matches!(server_name, ServerName::DnsName(d) if d.as_ref() == SEED_SERVER_NAME);
        if !seed && *server_name != name {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName,
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The node id from a connection's (already verified) peer certificate.
fn peer_node_id(conn: &quinn::Connection) -> Result<NodeId, IdentityError> {
    let any = conn
        .peer_identity()
        .ok_or_else(|| IdentityError::Parse("no peer certificate".into()))?;
    let chain = any
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| IdentityError::Parse("unexpected peer identity type".into()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| IdentityError::Parse("empty peer certificate chain".into()))?;
    certs::node_id_from_cert(leaf)
}

async fn emit(inner: &Inner, event: TransportEvent) {
    // The owner may have dropped the receiver while shutting down; nothing to do then.
    let _ = inner.events.send(event).await;
}

async fn accept_loop(inner: std::sync::Weak<Inner>, endpoint: quinn::Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        let Some(inner) = inner.upgrade() else {
            incoming.refuse();
            break;
        };
        if lock(&inner.state).closed {
            incoming.refuse();
            continue;
        }
        tokio::spawn(accept_one(inner, incoming));
    }
}

async fn accept_one(inner: Arc<Inner>, incoming: quinn::Incoming) {
    let addr = incoming.remote_address();
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(e) => {
            let reason = match e {
                ConnectionError::TimedOut => RejectReason::Timeout,
                other => RejectReason::Tls(other.to_string()),
            };
            reject(&inner, addr, reason).await;
            return;
        }
    };
    match peer_node_id(&conn) {
        Ok(id) if id == inner.node_id => {
            conn.close(VarInt::from_u32(close_code::IDENTITY), b"self");
            reject(&inner, addr, RejectReason::SelfConnection).await;
        }
        Ok(id) if lock(&inner.state).denied.contains(&id) => {
            conn.close(VarInt::from_u32(close_code::DENIED), b"denied");
            reject(&inner, addr, RejectReason::Denied(id)).await;
        }
        Ok(id) => run_connection(inner, conn, id, Direction::Inbound).await,
        Err(e) => {
            conn.close(VarInt::from_u32(close_code::IDENTITY), b"identity");
            reject(&inner, addr, RejectReason::Identity(e)).await;
        }
    }
}

async fn reject(inner: &Inner, addr: SocketAddr, reason: RejectReason) {
    match &reason {
        // Someone holds a certificate of this cluster and is refused: operators must hear of it.
        RejectReason::Denied(_) | RejectReason::IdentityInUse { .. } => {
            tracing::warn!(%addr, %reason, "gossip connection refused");
        }
        _ => tracing::debug!(%addr, %reason, "gossip connection refused"),
    }
    inner.counters.rejected(&reason);
    emit(inner, TransportEvent::Rejected { addr, reason }).await;
}

fn spawn_dial(inner: Arc<Inner>, node_id: Option<NodeId>, addr: SocketAddr) {
    tokio::spawn(async move {
        let result = dial(&inner, node_id.as_deref(), addr).await;
        if node_id.is_none() {
            lock(&inner.state).addr_dials.remove(&addr);
        }
        match result {
            Ok((conn, id)) => run_connection(inner, conn, id, Direction::Outbound).await,
            Err(reason) => {
                inner.counters.connection(Direction::Outbound, "failed");
                tracing::debug!(%addr, node = ?node_id, %reason, "gossip dial failed");
                if let Some(id) = &node_id {
                    let dropped = {
                        let mut st = lock(&inner.state);
                        match st.peers.get_mut(id) {
                            Some(slot) => {
                                slot.dialing = false;
                                if slot.active.is_none() {
                                    drain(slot)
                                } else {
                                    0
                                }
                            }
                            None => 0,
                        }
                    };
                    inner.counters.dropped("unreachable", dropped);
                }
                emit(
                    &inner,
                    TransportEvent::DialFailed {
                        node_id,
                        addr,
                        reason,
                    },
                )
                .await;
            }
        }
    });
}

/// Drops whatever is queued for a peer (when no writer holds the queue).
fn drain(slot: &mut PeerSlot) -> u64 {
    let mut n = 0;
    if let Ok(mut rx) = slot.rx.try_lock() {
        while rx.try_recv().is_ok() {
            n += 1;
        }
    }
    n
}

async fn dial(
    inner: &Inner,
    node_id: Option<&str>,
    addr: SocketAddr,
) -> Result<(quinn::Connection, NodeId), String> {
    let name = node_id.unwrap_or(SEED_SERVER_NAME);
    let connecting = inner
        .endpoint
        .connect_with(ClientConfig::clone(&inner.client.load()), addr, name)
        .map_err(|e| e.to_string())?;
    let conn = connecting.await.map_err(|e| e.to_string())?;
    let id = match peer_node_id(&conn) {
        Ok(id) => id,
        Err(e) => {
            conn.close(VarInt::from_u32(close_code::IDENTITY), b"identity");
            return Err(e.to_string());
        }
    };
    if id == inner.node_id {
        conn.close(VarInt::from_u32(close_code::IDENTITY), b"self");
        return Err("the address is this node itself".into());
    }
    if lock(&inner.state).denied.contains(&id) {
        conn.close(VarInt::from_u32(close_code::DENIED), b"denied");
        return Err(format!("node {id} is denied"));
    }
    if node_id.is_some_and(|n| n != id) {
        // Unreachable in practice: the verifier already required the name to match.
        conn.close(VarInt::from_u32(close_code::IDENTITY), b"identity");
        return Err(format!("peer certificate names {id:?}"));
    }
    Ok((conn, id))
}

/// The existing connection of `peer` when a new one from `addr` needs the liveness check: it comes from
/// another address and the existing one is past the simultaneous-dial window (see the module comment).
fn settled_elsewhere(inner: &Inner, peer: &str, addr: SocketAddr) -> Option<quinn::Connection> {
    let st = lock(&inner.state);
    let active = st.peers.get(peer)?.active.as_ref()?;
    (active.addr != addr && active.since.elapsed() >= SIMULTANEOUS_DIAL_WINDOW)
        .then(|| active.conn.clone())
}

/// Whether `conn` receives anything (a frame, a keep-alive, an acknowledgement) within `window`. A closed
/// connection does not answer.
async fn answers_within(conn: &quinn::Connection, window: Duration) -> bool {
    let before = conn.stats().udp_rx.datagrams;
    let watch = async {
        let mut every = tokio::time::interval(Duration::from_millis(50));
        loop {
            every.tick().await;
            if conn.stats().udp_rx.datagrams > before {
                return true;
            }
        }
    };
    tokio::select! {
        answered = tokio::time::timeout(window, watch) => answered.unwrap_or(false),
        _ = conn.closed() => false,
    }
}

/// Whether an existing connection survives a new one to the same peer (see the module comment).
fn keep_existing(existing: &Active, new_dialer_is_lower: bool) -> bool {
    existing.dialer_is_lower
        && !new_dialer_is_lower
        && existing.since.elapsed() < SIMULTANEOUS_DIAL_WINDOW
}

/// Registers a connection (tie-break), then runs its writer and reader until it closes.
async fn run_connection(inner: Arc<Inner>, conn: quinn::Connection, peer: NodeId, dir: Direction) {
    let addr = conn.remote_address();
    let id = conn.stable_id();
    let dialer_is_lower = match dir {
        Direction::Outbound => inner.node_id < peer,
        Direction::Inbound => peer < inner.node_id,
    };
    if let Some(old) = settled_elsewhere(&inner, &peer, addr) {
        let live_addr = old.remote_address();
        if answers_within(&old, LIVENESS_WINDOW).await {
            conn.close(
                VarInt::from_u32(close_code::IDENTITY_IN_USE),
                b"identity in use",
            );
            let reason = RejectReason::IdentityInUse {
                node: peer.clone(),
                live_addr,
            };
            match dir {
                Direction::Inbound => reject(&inner, addr, reason).await,
                Direction::Outbound => {
                    // Our own dial (a seed address) reached the node by another of its addresses, or a
                    // copy of it: either way the live connection stays, and no alarm is raised for what
                    // is most likely a multi-homed peer.
                    tracing::debug!(%addr, %reason, "dialled address answers for a peer connected elsewhere; keeping the live connection");
                    inner.counters.connection(dir, "failed");
                }
            }
            return;
        }
        tracing::info!(peer = %peer, old = %live_addr, new = %addr,
            "the old connection of a peer stayed silent: taking the new one (restart from another address)");
    }
    let queue = {
        let mut st = lock(&inner.state);
        if st.closed {
            conn.close(VarInt::from_u32(close_code::SHUTDOWN), b"shutdown");
            return;
        }
        let slot = slot(&mut st, &peer, inner.peer_queue);
        if dir == Direction::Outbound {
            slot.dialing = false;
        }
        if let Some(existing) = &slot.active {
            if keep_existing(existing, dialer_is_lower) {
                conn.close(VarInt::from_u32(close_code::DUPLICATE), b"duplicate");
                inner.counters.connection(dir, "duplicate");
                tracing::debug!(peer = %peer, ?dir, "duplicate gossip connection closed (tie-break)");
                return;
            }
            existing
                .conn
                .close(VarInt::from_u32(close_code::DUPLICATE), b"duplicate");
            inner.counters.connection(existing.direction, "duplicate");
            tracing::debug!(peer = %peer, ?dir, "gossip connection replaced by a newer one");
            // The newer connection must announce itself (`PeerUp`) once its preamble arrives: the owner
            // has to say Hello on it (a restarted peer knows nothing of the old connection). Without this,
            // `up` stayed true from the replaced connection and the restarted peer never heard a Hello.
            slot.up = false;
        }
        slot.active = Some(Active {
            conn: conn.clone(),
            direction: dir,
            dialer_is_lower,
            since: Instant::now(),
            addr,
        });
        slot.rx.clone()
    };
    inner.counters.connection(dir, "established");
    let writer = tokio::spawn(write_loop(inner.clone(), conn.clone(), queue));
    let (ready, local_reason) = read_loop(&inner, &conn, &peer, dir).await;
    let err = conn.closed().await;
    // Wait for the writer to release the queue, so it can be drained if nobody took over.
    let _ = writer.await;
    let (was_up, dropped) = {
        let mut st = lock(&inner.state);
        match st.peers.get_mut(&peer) {
            Some(slot)
                if slot
                    .active
                    .as_ref()
                    .is_some_and(|a| a.conn.stable_id() == id) =>
            {
                slot.active = None;
                let was_up = std::mem::take(&mut slot.up);
                let dropped = if slot.dialing { 0 } else { drain(slot) };
                (Some(was_up), dropped)
            }
            _ => (None, 0),
        }
    };
    inner.counters.dropped("conn_lost", dropped);
    match was_up {
        Some(true) => {
            let reason = local_reason.unwrap_or_else(|| down_reason(&inner, &err));
            tracing::debug!(peer = %peer, %addr, %reason, "gossip peer down");
            emit(
                &inner,
                TransportEvent::PeerDown {
                    node_id: peer,
                    addr,
                    reason,
                },
            )
            .await;
        }
        Some(false) if !ready && dir == Direction::Outbound => {
            // Our handshake ended but the peer never accepted us (e.g. it refused our certificate).
            inner.counters.connection(dir, "failed");
            emit(
                &inner,
                TransportEvent::DialFailed {
                    node_id: Some(peer),
                    addr,
                    reason: err.to_string(),
                },
            )
            .await;
        }
        _ => {}
    }
}

fn down_reason(inner: &Inner, err: &ConnectionError) -> DownReason {
    match err {
        ConnectionError::ApplicationClosed(c)
            if c.error_code == VarInt::from_u32(close_code::SHUTDOWN) =>
        {
            DownReason::PeerShutdown
        }
        ConnectionError::TimedOut => DownReason::TimedOut,
        ConnectionError::LocallyClosed if *inner.shutdown.borrow() => DownReason::LocalShutdown,
        ConnectionError::LocallyClosed => DownReason::Disconnected,
        other => DownReason::Lost(other.to_string()),
    }
}

/// Accepts the peer's stream, checks its preamble, announces the peer and forwards its frames. Returns
/// whether the peer became ready, and the reason if this side closed the connection.
async fn read_loop(
    inner: &Inner,
    conn: &quinn::Connection,
    peer: &NodeId,
    dir: Direction,
) -> (bool, Option<DownReason>) {
    let addr = conn.remote_address();
    let opened = tokio::time::timeout(inner.ready_timeout, async {
        let mut recv = conn.accept_uni().await.map_err(|e| Some(e.to_string()))?;
        let mut preamble = [0u8; 4];
        recv.read_exact(&mut preamble)
            .await
            .map_err(|e| Some(e.to_string()))?;
        if &preamble != STREAM_PREAMBLE {
            return Err(None);
        }
        Ok::<_, Option<String>>(recv)
    })
    .await;
    let recv = match opened {
        Ok(Ok(recv)) => recv,
        Ok(Err(Some(_))) => return (false, None), // the connection went away; the caller reports it
        Ok(Err(None)) => {
            conn.close(VarInt::from_u32(close_code::PROTOCOL), b"bad preamble");
            if dir == Direction::Inbound {
                reject(
                    inner,
                    addr,
                    RejectReason::Protocol("bad stream preamble".into()),
                )
                .await;
            }
            return (false, None);
        }
        Err(_) => {
            conn.close(VarInt::from_u32(close_code::PROTOCOL), b"no stream");
            if dir == Direction::Inbound {
                reject(inner, addr, RejectReason::Timeout).await;
            }
            return (false, None);
        }
    };
    let announce = {
        let mut st = lock(&inner.state);
        match st.peers.get_mut(peer) {
            Some(slot)
                if !slot.up
                    && slot
                        .active
                        .as_ref()
                        .is_some_and(|a| a.conn.stable_id() == conn.stable_id()) =>
            {
                slot.up = true;
                true
            }
            _ => false,
        }
    };
    if announce {
        tracing::debug!(peer = %peer, %addr, ?dir, "gossip peer up");
        emit(
            inner,
            TransportEvent::PeerUp {
                node_id: peer.clone(),
                addr,
                rtt: conn.rtt(),
                direction: dir,
            },
        )
        .await;
    }
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(inner.max_frame)
        .new_codec();
    let mut frames = FramedRead::new(recv, codec);
    while let Some(next) = frames.next().await {
        match next {
            Ok(frame) => {
                inner.counters.frame(Direction::Inbound);
                emit(
                    inner,
                    TransportEvent::Frame {
                        from: peer.clone(),
                        addr,
                        frame: frame.freeze(),
                    },
                )
                .await;
            }
            Err(e) => {
                let oversized = e
                    .get_ref()
                    .is_some_and(|inner| inner.is::<LengthDelimitedCodecError>());
                if oversized {
                    tracing::warn!(peer = %peer, %addr, "gossip frame over the limit: closing the connection");
                    inner.counters.dropped("oversized", 1);
                    conn.close(
                        VarInt::from_u32(close_code::FRAME_TOO_LARGE),
                        b"frame too large",
                    );
                    return (true, Some(DownReason::FrameTooLarge));
                }
                break;
            }
        }
    }
    (true, None)
}

/// Opens our stream, then moves frames from the peer's queue into it until the connection ends. On
/// shutdown it flushes what is queued, finishes the stream and waits for the peer's acknowledgement.
async fn write_loop(inner: Arc<Inner>, conn: quinn::Connection, queue: Queue) {
    inner.writers.send_modify(|n| *n += 1);
    write_frames(&inner, &conn, queue).await;
    inner.writers.send_modify(|n| *n = n.saturating_sub(1));
}

async fn write_frames(inner: &Inner, conn: &quinn::Connection, queue: Queue) {
    let Ok(mut send) = conn.open_uni().await else {
        return;
    };
    if send.write_all(STREAM_PREAMBLE).await.is_err() {
        return;
    }
    // A replaced connection's writer still holds the queue until its connection is closed.
    let mut rx = tokio::select! {
        rx = queue.lock_owned() => rx,
        _ = conn.closed() => return,
    };
    let mut codec = LengthDelimitedCodec::builder()
        .max_frame_length(inner.max_frame)
        .new_codec();
    let mut buf = BytesMut::new();
    let greeting = lock(&inner.greeting).clone();
    if let Some(frame) = greeting {
        if codec.encode(frame, &mut buf).is_ok() {
            if send.write_all(&buf).await.is_err() {
                return;
            }
            inner.counters.frame(Direction::Outbound);
        }
    }
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        let frame = tokio::select! {
            biased;
            _ = conn.closed() => return,
            _ = shutdown.wait_for(|s| *s) => break,
            frame = rx.recv() => frame,
        };
        let Some((queued, frame)) = frame else { break };
        if queued.elapsed() > inner.max_queue_age {
            inner.counters.dropped("stale", 1);
            continue;
        }
        buf.clear();
        if codec.encode(frame, &mut buf).is_err() {
            // Unreachable: `send` refuses frames over the same limit.
            inner.counters.dropped("too_large", 1);
            continue;
        }
        if send.write_all(&buf).await.is_err() {
            inner.counters.dropped("conn_lost", 1);
            return;
        }
        inner.counters.frame(Direction::Outbound);
    }
    // Shutdown: flush what is queued, then finish the stream and wait until the peer has it.
    while let Ok((_, frame)) = rx.try_recv() {
        buf.clear();
        if codec.encode(frame, &mut buf).is_err() {
            continue;
        }
        if send.write_all(&buf).await.is_err() {
            return;
        }
        inner.counters.frame(Direction::Outbound);
    }
    if send.finish().is_ok() {
        let _ = send.stopped().await;
    }
}
