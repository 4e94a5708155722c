//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz), and a seeded stand-in that runs them on
//! stable Rust: the parsers that read provider bytes (SSE, AWS event stream) and the stream translators
//! built on them must never panic, whatever the upstream sends, however it is split into frames.

use bytes::BytesMut;

use super::eventstream::EventStreamDecoder;
use super::sse::SseParser;
use super::{anthropic, bedrock, messages, ResponseCtx};

fn ctx() -> ResponseCtx {
    ResponseCtx {
        operation: super::Operation::Chat,
        model: "m".into(),
        stream: true,
        include_usage: true,
        id: "chatcmpl-fuzz".into(),
        created: 0,
    }
}

/// Splits `data` into frames at points derived from its first byte, so one input exercises many splits.
fn frames(data: &[u8]) -> Vec<&[u8]> {
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    data.chunks(step).collect()
}

/// Feeds `data` frame by frame to `t` until it fails, then finishes it.
fn drive(t: &mut dyn super::BodyTransform, data: &[u8]) {
    let mut out = BytesMut::new();
    for f in frames(data) {
        if t.feed(f, &mut out).is_err() {
            let _ = t.truncation_event("fuzz");
            return;
        }
    }
    let _ = t.finish(&mut out);
}

/// Fuzz target `sse`: the SSE parser, the Anthropic stream translator and the Messages stream watch.
pub fn fuzz_sse(data: &[u8]) {
    let mut parser = SseParser::new();
    for f in frames(data) {
        let _ = parser.push(f);
    }
    let _ = parser.has_partial();
    drive(&mut anthropic::StreamTransform::new(ctx()), data);
    drive(&mut messages::MessagesStream::new(), data);
}

/// Fuzz target `eventstream`: the event-stream decoder and the Bedrock stream translator.
pub fn fuzz_eventstream(data: &[u8]) {
    let mut decoder = EventStreamDecoder::new();
    let mut t = bedrock::StreamTransform::new(ctx());
    let mut out = BytesMut::new();
    let mut failed = (false, false);
    for f in frames(data) {
        if !failed.0 {
            failed.0 = decoder.push(f).is_err();
        }
        if !failed.1 {
            failed.1 = super::BodyTransform::feed(&mut t, f, &mut out).is_err();
        }
    }
    if !failed.1 {
        let _ = super::BodyTransform::finish(&mut t, &mut out);
    }
    // InvokeModelWithResponseStream: chunk events unwrapped into Anthropic events.
    drive(
        &mut messages::InvokeStream::new(messages::MessagesStream::new()),
        data,
    );
    drive(
        &mut messages::InvokeStream::new(anthropic::StreamTransform::new(ctx())),
        data,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::eventstream::{encode_event, encode_exception};
    use rand::{Rng, SeedableRng};

    fn mutate(rng: &mut rand::rngs::SmallRng, seed: &[u8]) -> Vec<u8> {
        let mut v = seed.to_vec();
        for _ in 0..rng.random_range(1..8) {
            match rng.random_range(0..5) {
                0 if !v.is_empty() => {
                    let i = rng.random_range(0..v.len());
                    v[i] = rng.random();
                }
                1 if !v.is_empty() => {
                    let i = rng.random_range(0..v.len());
                    v.truncate(i);
                }
                2 => {
                    let i = rng.random_range(0..=v.len());
                    let b: u8 = rng.random();
                    v.insert(i, b);
                }
                3 if !v.is_empty() => {
                    let i = rng.random_range(0..v.len());
                    let j = rng.random_range(i..v.len());
                    let dup = v[i..=j].to_vec();
                    v.extend_from_slice(&dup);
                }
                _ => {
                    let n = rng.random_range(0..64);
                    v.extend((0..n).map(|_| rng.random::<u8>()));
                }
            }
        }
        v
    }

    fn corpus_sse() -> Vec<Vec<u8>> {
        vec![
            b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"x\"}}\n\nevent: content_block_delta\ndata: {\"delta\":{\"text\":\"hi\"}}\n\nevent: message_delta\ndata: {\"delta\":{\"stop_reason\":\"end_turn\"}}\n\nevent: message_stop\ndata: {}\n\n".to_vec(),
            b"event: error\ndata: {\"error\":{\"type\":\"overloaded_error\",\"message\":\"x\"}}\r\n\r\n".to_vec(),
            b": comment\rdata:\rdata\r\r".to_vec(),
        ]
    }

    fn corpus_eventstream() -> Vec<Vec<u8>> {
        let mut ok = Vec::new();
        for (k, p) in [
            ("messageStart", &br#"{"role":"assistant"}"#[..]),
            ("contentBlockDelta", br#"{"delta":{"text":"hi"}}"#),
            ("messageStop", br#"{"stopReason":"end_turn"}"#),
            (
                "metadata",
                br#"{"usage":{"inputTokens":1,"outputTokens":1}}"#,
            ),
        ] {
            ok.extend_from_slice(&encode_event(k, p).expect("encode"));
        }
        let mut chunks = Vec::new();
        for event in [
            &br#"{"type":"message_start","message":{"id":"m"}}"#[..],
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"#,
            br#"{"type":"message_stop"}"#,
        ] {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD.encode(event);
            let payload = format!("{{\"bytes\":\"{b64}\"}}");
            chunks.extend_from_slice(&encode_event("chunk", payload.as_bytes()).expect("encode"));
        }
        vec![
            ok,
            chunks,
            encode_exception("throttlingException", br#"{"message":"x"}"#)
                .expect("encode")
                .to_vec(),
            vec![0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ]
    }

    /// Stand-in for `cargo fuzz run`: random and mutated inputs, seeded so failures reproduce.
    #[test]
    fn fuzz_targets_never_panic_on_random_or_mutated_input() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(0x5eed_f022);
        for (target, corpus) in [
            (fuzz_sse as fn(&[u8]), corpus_sse()),
            (fuzz_eventstream as fn(&[u8]), corpus_eventstream()),
        ] {
            for seed in &corpus {
                target(seed);
            }
            for _ in 0..3000 {
                let input = if rng.random_bool(0.2) {
                    let n = rng.random_range(0..512);
                    (0..n).map(|_| rng.random::<u8>()).collect()
                } else {
                    let i = rng.random_range(0..corpus.len());
                    mutate(&mut rng, &corpus[i])
                };
                target(&input);
            }
        }
    }
}
