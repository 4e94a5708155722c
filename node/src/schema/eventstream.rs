//! An incremental decoder for the AWS event-stream binary framing (`application/vnd.amazon.eventstream`),
//! used by Bedrock ConverseStream. Frames are decoded (prelude, header and message CRCs checked) by the
//! `aws-smithy-eventstream` crate; this wrapper buffers bytes that arrive in arbitrary HTTP frames and
//! reduces each message to what the Bedrock translator reads.
//!
//! AWS docs ("Event stream encoding", Amazon Transcribe/S3 Select): each message carries `:message-type`
//! (`event` or `exception`), `:event-type` for events, `:exception-type` for exceptions, and a JSON payload.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::{Buf, Bytes, BytesMut};

/// Largest message accepted (the format's own limit is 16 MiB; payloads here are small JSON).
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMessage {
    /// `:message-type` (`event`, `exception`, `error`).
    pub message_type: String,
    /// `:event-type`, `:exception-type` or `:error-code`, whichever applies.
    pub kind: String,
    /// The payload.
    pub payload: Bytes,
}

/// Why the byte stream is not a valid event stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventStreamError {
    /// A frame failed to decode (bad length, CRC mismatch, bad header).
    #[error("invalid event-stream frame: {0}")]
    Frame(String),
    /// A message is larger than [`MAX_MESSAGE_BYTES`].
    #[error("event-stream message larger than {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
}

/// Decoder state between frames.
#[derive(Debug, Default)]
pub struct EventStreamDecoder {
    buf: BytesMut,
    decoder: MessageFrameDecoder,
    /// Bytes of the current message consumed by the inner decoder (its prelude).
    in_message: bool,
}

fn header_str(msg: &Message, name: &str) -> Option<String> {
    msg.headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| match h.value() {
            HeaderValue::String(s) => Some(s.as_str().to_owned()),
            _ => None,
        })
}

impl EventStreamDecoder {
    /// A new decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the messages completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<StreamMessage>, EventStreamError> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            // The total length is the first 4 bytes of the prelude: refuse huge messages before
            // buffering them.
            if !self.in_message && self.buf.len() >= 4 {
                let total = (&self.buf[..4]).get_u32() as usize;
                if total > MAX_MESSAGE_BYTES {
                    return Err(EventStreamError::TooLarge);
                }
            }
            let before = self.buf.len();
            match self.decoder.decode_frame(&mut self.buf) {
                Ok(DecodedFrame::Complete(msg)) => {
                    self.in_message = false;
                    let message_type =
                        header_str(&msg, ":message-type").unwrap_or_else(|| "event".into());
                    let kind = header_str(&msg, ":event-type")
                        .or_else(|| header_str(&msg, ":exception-type"))
                        .or_else(|| header_str(&msg, ":error-code"))
                        .unwrap_or_default();
                    out.push(StreamMessage {
                        message_type,
                        kind,
                        payload: msg.payload().clone(),
                    });
                }
                Ok(DecodedFrame::Incomplete) => {
                    if self.buf.len() < before {
                        self.in_message = true;
                    }
                    return Ok(out);
                }
                Err(e) => return Err(EventStreamError::Frame(e.to_string())),
            }
        }
    }

    /// Whether bytes of an unfinished message are pending (the stream ended mid-message).
    pub fn has_partial(&self) -> bool {
        self.in_message || !self.buf.is_empty()
    }
}

/// Encodes one event message (`:message-type: event`, `:event-type`, `:content-type: application/json`),
/// as Bedrock sends them. Used by tests and the mock provider.
pub fn encode_event(event_type: &str, payload: &[u8]) -> Result<Bytes, EventStreamError> {
    encode(
        &[
            (":message-type", "event"),
            (":event-type", event_type),
            (":content-type", "application/json"),
        ],
        payload,
    )
}

/// Encodes one exception message (`:message-type: exception`, `:exception-type`).
pub fn encode_exception(exception_type: &str, payload: &[u8]) -> Result<Bytes, EventStreamError> {
    encode(
        &[
            (":message-type", "exception"),
            (":exception-type", exception_type),
            (":content-type", "application/json"),
        ],
        payload,
    )
}

fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Result<Bytes, EventStreamError> {
    use aws_smithy_types::event_stream::Header;
    let mut msg = Message::new(Bytes::copy_from_slice(payload));
    for (name, value) in headers {
        msg = msg.add_header(Header::new(
            (*name).to_owned(),
            HeaderValue::String((*value).to_owned().into()),
        ));
    }
    let mut buf = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&msg, &mut buf)
        .map_err(|e| EventStreamError::Frame(e.to_string()))?;
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_decode_across_any_split() {
        let mut stream = Vec::new();
        stream.extend_from_slice(
            &encode_event("messageStart", br#"{"role":"assistant"}"#).expect("enc"),
        );
        stream.extend_from_slice(
            &encode_exception("throttlingException", br#"{"message":"slow"}"#).expect("enc"),
        );
        for split in 0..=stream.len() {
            let mut d = EventStreamDecoder::new();
            let mut got = d.push(&stream[..split]).expect("push");
            got.extend(d.push(&stream[split..]).expect("push"));
            assert_eq!(got.len(), 2, "split at {split}");
            assert_eq!(
                (got[0].message_type.as_str(), got[0].kind.as_str()),
                ("event", "messageStart")
            );
            assert_eq!(got[0].payload.as_ref(), br#"{"role":"assistant"}"#);
            assert_eq!(
                (got[1].message_type.as_str(), got[1].kind.as_str()),
                ("exception", "throttlingException")
            );
            assert!(!d.has_partial());
        }
    }

    #[test]
    fn corrupt_frames_are_errors_and_partials_are_reported() {
        let mut frame = encode_event("x", b"{}").expect("enc").to_vec();
        let last = frame.len() - 1;
        frame[last] ^= 0xff;
        assert!(EventStreamDecoder::new().push(&frame).is_err());
        let frame = encode_event("x", b"{}").expect("enc");
        let mut d = EventStreamDecoder::new();
        assert!(d.push(&frame[..frame.len() - 1]).expect("push").is_empty());
        assert!(d.has_partial());
        let mut huge = vec![0xff, 0xff, 0xff, 0xff];
        huge.extend_from_slice(&[0; 12]);
        assert_eq!(
            EventStreamDecoder::new().push(&huge),
            Err(EventStreamError::TooLarge)
        );
    }
}
