//! The versioned envelope `{kind, version, payload}` around every message, and the bincode settings
//! (DESIGN §6 "Wire format").
//!
//! Why an envelope: a receiver must be able to skip a message it does not understand — a newer peer's new
//! kind, or a kind at a version it does not speak — without failing the connection, and count it. So the
//! payload is encoded separately and the envelope says what it is; [`decode`] returns [`Decoded::Skipped`]
//! for those, and a typed [`DecodeError`] (never a panic) for bytes that are not an envelope at all.
//!
//! Encoding is bincode 2 (`standard()` config: little-endian, variable-length integers) with a decode limit
//! of [`DECODE_LIMIT`] bytes, so no length field can make the decoder claim more memory than a frame holds.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::messages::Message;
use crate::{DECODE_LIMIT, MAX_FRAME, PROTO_MAX, PROTO_MIN};

/// The numeric kind of each message. Numbers are part of the wire format: never reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Kind {
    /// [`crate::Hello`].
    Hello = 1,
    /// [`crate::Ping`].
    Ping = 2,
    /// [`crate::Ack`].
    Ack = 3,
    /// [`crate::PingReq`].
    PingReq = 4,
    /// [`crate::IndirectAck`].
    IndirectAck = 5,
    /// [`crate::NodeState`].
    NodeState = 6,
    /// [`crate::Digest`].
    Digest = 7,
    /// [`crate::Delta`].
    Delta = 8,
    /// [`crate::Leave`].
    Leave = 9,
    /// [`crate::NodeStateV2`].
    NodeStateV2 = 10,
    /// [`crate::DeltaV2`].
    DeltaV2 = 11,
}

impl Kind {
    /// The kind for a wire number, if this build knows it.
    pub fn from_u16(n: u16) -> Option<Kind> {
        Some(match n {
            1 => Kind::Hello,
            2 => Kind::Ping,
            3 => Kind::Ack,
            4 => Kind::PingReq,
            5 => Kind::IndirectAck,
            6 => Kind::NodeState,
            7 => Kind::Digest,
            8 => Kind::Delta,
            9 => Kind::Leave,
            10 => Kind::NodeStateV2,
            11 => Kind::DeltaV2,
            _ => return None,
        })
    }

    /// The kind of a message.
    pub fn of(msg: &Message) -> Kind {
        match msg {
            Message::Hello(_) => Kind::Hello,
            Message::Ping(_) => Kind::Ping,
            Message::Ack(_) => Kind::Ack,
            Message::PingReq(_) => Kind::PingReq,
            Message::IndirectAck(_) => Kind::IndirectAck,
            Message::NodeState(_) => Kind::NodeState,
            Message::Digest(_) => Kind::Digest,
            Message::Delta(_) => Kind::Delta,
            Message::Leave(_) => Kind::Leave,
            Message::NodeStateV2(_) => Kind::NodeStateV2,
            Message::DeltaV2(_) => Kind::DeltaV2,
        }
    }
}

/// The outer layer of every frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// A [`Kind`] number (possibly one this build does not know).
    pub kind: u16,
    /// The protocol version the payload is written in.
    pub version: u16,
    /// The bincode-encoded message.
    pub payload: Vec<u8>,
}

/// Why a well-formed envelope was skipped rather than decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The kind number is not known to this build (a newer peer's message).
    UnknownKind,
    /// The version is outside [`PROTO_MIN`]`..=`[`PROTO_MAX`].
    UnsupportedVersion,
}

/// What one frame decoded to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A message this build understands.
    Message(Message),
    /// A valid envelope to skip and count (DESIGN §6: "unknown kinds are skipped and counted").
    Skipped {
        /// Its kind number.
        kind: u16,
        /// Its version.
        version: u16,
        /// Why it was skipped.
        reason: SkipReason,
    },
}

/// Bytes that could not be decoded. The transport should count it and drop the connection.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The envelope itself is malformed (or exceeds the decode limit).
    #[error("malformed envelope: {0}")]
    Envelope(#[source] bincode::error::DecodeError),
    /// A known kind's payload is malformed.
    #[error("malformed {kind:?} payload: {source}")]
    Payload {
        /// The kind announced.
        kind: Kind,
        /// What bincode said.
        #[source]
        source: bincode::error::DecodeError,
    },
    /// Bytes left over after the envelope or payload: a framing bug or garbage.
    #[error("{extra} trailing bytes after {what}")]
    TrailingBytes {
        /// "envelope" or "payload".
        what: &'static str,
        /// How many bytes.
        extra: usize,
    },
}

/// A message could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// bincode refused (should not happen for these types).
    #[error("encoding failed: {0}")]
    Bincode(#[from] bincode::error::EncodeError),
    /// The encoded envelope exceeds [`MAX_FRAME`]; the sender must split it (the cluster core does).
    #[error("{kind:?} message is {len} bytes, over the {max}-byte frame limit")]
    TooLarge {
        /// Its kind.
        kind: Kind,
        /// Its encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

fn to_vec<T: Serialize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    Ok(bincode::serde::encode_to_vec(value, config())?)
}

/// Encodes one message as an envelope (without the length prefix; [`crate::Codec`] adds it).
pub fn encode(msg: &Message) -> Result<Vec<u8>, EncodeError> {
    let payload = match msg {
        Message::Hello(m) => to_vec(m)?,
        Message::Ping(m) => to_vec(m)?,
        Message::Ack(m) => to_vec(m)?,
        Message::PingReq(m) => to_vec(m)?,
        Message::IndirectAck(m) => to_vec(m)?,
        Message::NodeState(m) => to_vec(m)?,
        Message::Digest(m) => to_vec(m)?,
        Message::Delta(m) => to_vec(m)?,
        Message::Leave(m) => to_vec(m)?,
        Message::NodeStateV2(m) => to_vec(m)?,
        Message::DeltaV2(m) => to_vec(m)?,
    };
    let kind = Kind::of(msg);
    let bytes = to_vec(&Envelope {
        kind: kind as u16,
        version: PROTO_MAX,
        payload,
    })?;
    if bytes.len() > MAX_FRAME {
        return Err(EncodeError::TooLarge {
            kind,
            len: bytes.len(),
            max: MAX_FRAME,
        });
    }
    Ok(bytes)
}

fn payload<T: DeserializeOwned>(kind: Kind, bytes: &[u8]) -> Result<T, DecodeError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|source| DecodeError::Payload { kind, source })?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes {
            what: "payload",
            extra: bytes.len() - used,
        });
    }
    Ok(value)
}

/// Decodes one envelope (the bytes of one frame). Never panics; allocation is bounded by the input length
/// and [`DECODE_LIMIT`].
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let (env, used): (Envelope, usize) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(DecodeError::Envelope)?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes {
            what: "envelope",
            extra: bytes.len() - used,
        });
    }
    let Some(kind) = Kind::from_u16(env.kind) else {
        return Ok(Decoded::Skipped {
            kind: env.kind,
            version: env.version,
            reason: SkipReason::UnknownKind,
        });
    };
    if !(PROTO_MIN..=PROTO_MAX).contains(&env.version) {
        return Ok(Decoded::Skipped {
            kind: env.kind,
            version: env.version,
            reason: SkipReason::UnsupportedVersion,
        });
    }
    let p = &env.payload[..];
    let msg = match kind {
        Kind::Hello => Message::Hello(payload(kind, p)?),
        Kind::Ping => Message::Ping(payload(kind, p)?),
        Kind::Ack => Message::Ack(payload(kind, p)?),
        Kind::PingReq => Message::PingReq(payload(kind, p)?),
        Kind::IndirectAck => Message::IndirectAck(payload(kind, p)?),
        Kind::NodeState => Message::NodeState(payload(kind, p)?),
        Kind::Digest => Message::Digest(payload(kind, p)?),
        Kind::Delta => Message::Delta(payload(kind, p)?),
        Kind::Leave => Message::Leave(payload(kind, p)?),
        Kind::NodeStateV2 => Message::NodeStateV2(payload(kind, p)?),
        Kind::DeltaV2 => Message::DeltaV2(payload(kind, p)?),
    };
    Ok(Decoded::Message(msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::Leave;

    fn leave() -> Message {
        Message::Leave(Leave {
            node: "a".into(),
            generation: 1,
            incarnation: 2,
        })
    }

    #[test]
    fn round_trips() {
        let bytes = encode(&leave()).expect("encode");
        assert_eq!(decode(&bytes).expect("decode"), Decoded::Message(leave()));
    }

    #[test]
    fn unknown_kind_is_skipped_not_an_error() {
        let bytes = to_vec(&Envelope {
            kind: 999,
            version: 1,
            payload: vec![1, 2, 3],
        })
        .expect("encode");
        assert_eq!(
            decode(&bytes).expect("decode"),
            Decoded::Skipped {
                kind: 999,
                version: 1,
                reason: SkipReason::UnknownKind
            }
        );
    }

    #[test]
    fn future_version_is_skipped() {
        let bytes = to_vec(&Envelope {
            kind: Kind::Leave as u16,
            version: PROTO_MAX + 1,
            payload: vec![],
        })
        .expect("encode");
        assert!(matches!(
            decode(&bytes),
            Ok(Decoded::Skipped {
                reason: SkipReason::UnsupportedVersion,
                ..
            })
        ));
    }

    #[test]
    fn bad_payload_and_trailing_bytes_are_errors() {
        let bad = to_vec(&Envelope {
            kind: Kind::Leave as u16,
            version: 1,
            payload: vec![0xff],
        })
        .expect("encode");
        assert!(matches!(decode(&bad), Err(DecodeError::Payload { .. })));
        let mut trailing = encode(&leave()).expect("encode");
        trailing.push(0);
        assert!(matches!(
            decode(&trailing),
            Err(DecodeError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn huge_length_claims_are_refused_without_allocating() {
        // kind 8 (Delta), version 1, then a payload length of u64::MAX in varint form (0xfd + 8 bytes).
        let mut bytes = vec![8, 1, 0xfd];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode(&bytes).is_err());
    }
}
