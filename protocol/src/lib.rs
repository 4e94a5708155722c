//! Switchyard's cluster wire format (DESIGN §6 "Wire format"): the message types nodes exchange over QUIC,
//! the versioned envelope around them, and the length-delimited codec that frames envelopes on a stream.
//!
//! This crate exists so the layout of every byte that crosses the network is defined, versioned and pinned
//! (golden fixtures in `tests/golden/`) in one place with no sockets and no clocks: the node's pure cluster
//! core (`switchyard::cluster`) builds and consumes [`Message`]s, the quinn shell moves them with [`Codec`],
//! and the simulator in `cluster-tests` encodes every simulated message through the very same code.
//!
//! - [`messages`]: `Hello`, SWIM membership (`Ping`, `Ack`, `PingReq`, `IndirectAck`, `Leave`) with
//!   piggybacked [`MemberUpdate`]s, evidence (`NodeState`, `Observation`) and anti-entropy (`Digest`, `Delta`).
//! - [`envelope`]: `{kind, version, payload}` around each message; unknown kinds or versions decode to
//!   [`Decoded::Skipped`], never to a panic (DESIGN §6: "unknown kinds are skipped and counted").
//! - [`codec`]: a tokio-util `Encoder`/`Decoder` over `LengthDelimitedCodec` with a [`MAX_FRAME`] limit, for
//!   `tokio_util::codec::Framed` on a QUIC stream.

pub mod codec;
pub mod envelope;
pub mod messages;

pub use codec::{Codec, CodecError};
pub use envelope::{decode, encode, DecodeError, Decoded, EncodeError, Envelope, Kind, SkipReason};
pub use messages::{
    Ack, Delta, DeltaV2, Digest, DigestEntry, Hello, HelloError, HostReport, IndirectAck, Leave,
    MemberState, MemberUpdate, Message, NodeId, NodeState, NodeStateV2, Observation,
    ObservationClass, Ping, PingReq, Verdict,
};

/// The ALPN protocol id of the gossip endpoint (DESIGN §6 "Transport"). Peers offering anything else are
/// refused during the TLS handshake.
pub const ALPN: &[u8] = b"switchyard-gossip/1";

/// Oldest protocol version this build speaks (sent as `Hello::proto_min`).
pub const PROTO_MIN: u16 = 1;

/// Newest protocol version this build speaks (sent as `Hello::proto_max`, and the version this build writes
/// into every envelope).
pub const PROTO_MAX: u16 = 1;

/// Largest frame (envelope bytes, excluding the 4-byte length prefix) accepted or produced. Small on
/// purpose (DESIGN §6: "a small max frame"): a peer cannot make us buffer more than this per stream. The
/// cluster core splits digests and deltas so that each message fits.
pub const MAX_FRAME: usize = 64 * 1024;

/// Bound handed to bincode when decoding one envelope or one payload: no length field inside a frame can
/// make the decoder claim more than this many bytes.
pub const DECODE_LIMIT: usize = MAX_FRAME;
