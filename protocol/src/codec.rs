//! Framing for a QUIC stream (DESIGN §6 "Wire format"): tokio-util's `LengthDelimitedCodec` (4-byte
//! big-endian length prefix, [`MAX_FRAME`] limit) around the envelopes of [`crate::envelope`].
//!
//! Use it as `tokio_util::codec::Framed::new(stream, Codec::new())` (or `FramedRead`/`FramedWrite` on the
//! two halves of a quinn bi-stream). Items out are [`Decoded`]: skipped kinds come out as
//! [`Decoded::Skipped`] and are also counted in [`Codec::skipped`]; an oversized frame or malformed envelope
//! is a [`CodecError`], after which the transport should drop the connection (garbage never panics).

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

use crate::envelope::{self, DecodeError, Decoded, EncodeError};
use crate::messages::Message;
use crate::MAX_FRAME;

/// Why a stream could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The stream failed, or a frame exceeded [`MAX_FRAME`] (tokio-util reports both as I/O errors).
    #[error("framing: {0}")]
    Io(#[from] std::io::Error),
    /// A frame held bytes that are not a valid envelope.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A message could not be encoded (e.g. larger than a frame).
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// Encoder of [`Message`]s and decoder of [`Decoded`] frames.
#[derive(Debug)]
pub struct Codec {
    frames: LengthDelimitedCodec,
    skipped: u64,
}

impl Default for Codec {
    fn default() -> Self {
        Self::new()
    }
}

impl Codec {
    /// A codec with the protocol's framing: u32 length prefix, [`MAX_FRAME`] maximum.
    pub fn new() -> Self {
        Codec {
            frames: LengthDelimitedCodec::builder()
                .length_field_type::<u32>()
                .max_frame_length(MAX_FRAME)
                .new_codec(),
            skipped: 0,
        }
    }

    /// Envelopes skipped so far because of an unknown kind or unsupported version.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

impl Decoder for Codec {
    type Item = Decoded;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Decoded>, CodecError> {
        let Some(frame) = self.frames.decode(src)? else {
            return Ok(None);
        };
        let decoded = envelope::decode(&frame)?;
        if matches!(decoded, Decoded::Skipped { .. }) {
            self.skipped += 1;
        }
        Ok(Some(decoded))
    }
}

impl Encoder<&Message> for Codec {
    type Error = CodecError;

    fn encode(&mut self, msg: &Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        let bytes = envelope::encode(msg)?;
        self.frames.encode(Bytes::from(bytes), dst)?;
        Ok(())
    }
}

impl Encoder<Message> for Codec {
    type Error = CodecError;

    fn encode(&mut self, msg: Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        <Self as Encoder<&Message>>::encode(self, &msg, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::Leave;

    #[test]
    fn frames_round_trip_across_partial_reads() {
        let msg = Message::Leave(Leave {
            node: "n".into(),
            generation: 3,
            incarnation: 4,
        });
        let mut codec = Codec::new();
        let mut buf = BytesMut::new();
        codec.encode(&msg, &mut buf).expect("encode");
        codec.encode(msg.clone(), &mut buf).expect("encode");
        let mut partial = buf.split_to(3);
        assert!(codec.decode(&mut partial).expect("partial").is_none());
        partial.unsplit(buf);
        let mut all = partial;
        assert_eq!(
            codec.decode(&mut all).expect("first"),
            Some(Decoded::Message(msg.clone()))
        );
        assert_eq!(
            codec.decode(&mut all).expect("second"),
            Some(Decoded::Message(msg))
        );
        assert!(codec.decode(&mut all).expect("empty").is_none());
    }

    #[test]
    fn oversized_frame_is_an_error() {
        let mut codec = Codec::new();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&((MAX_FRAME as u32) + 1).to_be_bytes());
        assert!(matches!(codec.decode(&mut buf), Err(CodecError::Io(_))));
    }
}
