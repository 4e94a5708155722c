//! The OpenAI schema: the client already speaks it, so requests and answers pass through untouched
//! (DESIGN §8, "OpenAI (passthrough)"). It exists so the attempt loop treats every backend alike.
//!
//! It also holds [`StreamWatch`], which reads an OpenAI chunk stream as it passes: whether its first
//! content has come (until then the attempt can still fail over, DESIGN §3.6), whether it carried an error
//! event before that, and whether it reached its end marker (`data: [DONE]` or a finish reason), so that a
//! stream the upstream closes early is reported as truncated instead of looking complete.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::{BodyTransform, RequestCtx, ResponseCtx, TranslateError, Translator, UpstreamRequest};

/// Passthrough translator.
#[derive(Debug, Clone, Copy)]
pub struct OpenAi;

impl Translator for OpenAi {
    fn provider_name(&self) -> &'static str {
        "openai"
    }

    fn request(
        &self,
        ctx: &RequestCtx<'_>,
        body: &Bytes,
    ) -> Result<UpstreamRequest, TranslateError> {
        if ctx.operation.is_messages() {
            return Err(super::Operation::messages_unsupported("OpenAI"));
        }
        if ctx.operation == super::Operation::Rerank {
            return Err(super::Operation::rerank_unsupported("OpenAI"));
        }
        Ok(UpstreamRequest {
            path_and_query: ctx.path_and_query.clone(),
            body: if ctx.model_overridden {
                super::with_model(body, ctx.model)?
            } else {
                body.clone()
            },
            headers: Vec::new(),
        })
    }

    fn response(
        &self,
        _ctx: &ResponseCtx,
        _status: StatusCode,
        _headers: &HeaderMap,
    ) -> Option<Box<dyn BodyTransform>> {
        None
    }
}

/// Longest SSE line [`StreamWatch`] carries over between frames; past it the watch gives up judging the
/// stream (it never cuts an answer it cannot read).
const MAX_WATCHED_LINE: usize = 4 << 20;

/// What [`StreamWatch::feed`] found in the bytes it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamSignal {
    /// Nothing decisive yet: no content, no error (role-only deltas, comments, partial lines).
    Hold,
    /// The first content (or the answer's end) has been seen: the answer is committed to this attempt.
    Content,
    /// An error event came before any content: the attempt failed as if it had answered `status`.
    Error {
        /// The HTTP status the error stands for (429 throttled, 503 overloaded, 500 otherwise).
        status: u16,
        /// The provider's message (no body beyond it).
        message: String,
    },
}

/// Reads an OpenAI-schema chunk stream (`data: {…}` lines) as it passes. Pure: bytes in, signals out.
///
/// Before the first content every `data:` line is parsed (a handful of small events); after it only the
/// end marker is looked for, by bytes, and once that is seen nothing more is read.
#[derive(Debug, Default)]
pub struct StreamWatch {
    /// The unfinished last line of the previous frame.
    partial: Vec<u8>,
    content: bool,
    ended: bool,
    /// A line grew past [`MAX_WATCHED_LINE`]: the stream is no longer judged.
    blind: bool,
    /// A Responses API stream (typed events, `schema::responses`) rather than chat chunks.
    responses: bool,
    /// Responses: the `sequence_number` of the latest event.
    last_sequence: Option<u64>,
}

impl StreamWatch {
    /// A watch at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// A watch at the start of a Responses API stream (`/v1/responses`).
    pub fn responses() -> Self {
        StreamWatch {
            responses: true,
            ..Self::default()
        }
    }

    /// Whether this watches a Responses API stream.
    pub fn is_responses(&self) -> bool {
        self.responses
    }

    /// Responses: the `sequence_number` of the latest event seen.
    pub fn last_sequence(&self) -> Option<u64> {
        self.last_sequence
    }

    /// Whether content (or the end) has been seen.
    pub fn has_content(&self) -> bool {
        self.content || self.blind
    }

    /// Whether the stream reached its end marker (`[DONE]` or a non-null `finish_reason`), or can no
    /// longer be judged. A stream that ends otherwise was cut.
    pub fn ended(&self) -> bool {
        self.ended || self.blind
    }

    /// Reads the next bytes of the stream.
    pub fn feed(&mut self, data: &[u8]) -> StreamSignal {
        if self.ended() && self.has_content() {
            return StreamSignal::Content;
        }
        let mut rest = data;
        if !self.partial.is_empty() {
            let Some(pos) = rest.iter().position(|&b| b == b'\n') else {
                self.carry(rest);
                return self.signal();
            };
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&rest[..pos]);
            rest = &rest[pos + 1..];
            if let Some(err) = self.line(&line) {
                return err;
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            if let Some(err) = self.line(&rest[..pos]) {
                return err;
            }
            rest = &rest[pos + 1..];
        }
        self.carry(rest);
        self.signal()
    }

    fn signal(&self) -> StreamSignal {
        if self.has_content() {
            StreamSignal::Content
        } else {
            StreamSignal::Hold
        }
    }

    fn carry(&mut self, tail: &[u8]) {
        if self.partial.len() + tail.len() > MAX_WATCHED_LINE {
            self.blind = true;
            self.partial = Vec::new();
        } else {
            self.partial.extend_from_slice(tail);
        }
    }

    /// One complete line (without its `\n`); an error event before content is returned.
    fn line(&mut self, line: &[u8]) -> Option<StreamSignal> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let payload = line.strip_prefix(b"data:")?;
        let payload = payload.strip_prefix(b" ").unwrap_or(payload);
        if self.responses {
            return self.responses_line(payload);
        }
        if payload == b"[DONE]" {
            self.ended = true;
            self.content = true;
            return None;
        }
        if self.content {
            // Only the end marker matters now, found by its bytes: a `"finish_reason"` key whose value is
            // a string. Inside a content string the key's quotes would be escaped, so it cannot match.
            if has_finish_reason(payload) {
                self.ended = true;
            }
            return None;
        }
        let Ok(v) = serde_json::from_slice::<Value>(payload) else {
            // Not JSON: not ours to judge; the client gets it as it is.
            self.content = true;
            return None;
        };
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            return Some(StreamSignal::Error {
                status: error_event_status(err),
                message: err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("error event without a message")
                    .to_owned(),
            });
        }
        let choices = v.get("choices").and_then(Value::as_array);
        let finished = choices.is_some_and(|cs| {
            cs.iter()
                .any(|c| c.get("finish_reason").is_some_and(|f| !f.is_null()))
        });
        let content = finished
            || choices.is_some_and(|cs| cs.iter().any(choice_has_content))
            || (choices.is_none_or(Vec::is_empty) && v.get("usage").is_some_and(|u| !u.is_null()))
            || !v.is_object();
        self.ended |= finished;
        self.content |= content;
        None
    }
}

impl StreamWatch {
    /// One Responses event's payload. Every event is classified (by its top-level `type`, without parsing
    /// the rest), because the end is a typed event, not a marker that bytes can find.
    fn responses_line(&mut self, payload: &[u8]) -> Option<StreamSignal> {
        use super::responses::{classify_event, EventClass};
        let Some((class, seq)) = classify_event(payload) else {
            // Not a typed event: not ours to judge; the client gets it as it is.
            self.content = true;
            return None;
        };
        if seq.is_some() {
            self.last_sequence = seq;
        }
        match class {
            EventClass::Hold => {}
            EventClass::Content => self.content = true,
            EventClass::End => {
                self.content = true;
                self.ended = true;
            }
            // After content the upstream ended honestly itself; before it the attempt failed.
            EventClass::Failed { .. } if self.content => self.ended = true,
            EventClass::Failed { status, message } => {
                return Some(StreamSignal::Error { status, message })
            }
        }
        None
    }
}

/// Whether a chunk choice carries something a user sees: text, a refusal, reasoning, a tool call.
fn choice_has_content(choice: &Value) -> bool {
    let non_empty = |v: Option<&Value>| match v {
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        _ => false,
    };
    // `text`: the legacy completions endpoint's chunks.
    if non_empty(choice.get("text")) {
        return true;
    }
    let Some(delta) = choice.get("delta") else {
        return false;
    };
    [
        "content",
        "refusal",
        "reasoning_content",
        "reasoning",
        "tool_calls",
        "function_call",
        "audio",
    ]
    .iter()
    .any(|k| non_empty(delta.get(*k)))
}

/// Whether a chunk's bytes hold `"finish_reason"` with a string value.
fn has_finish_reason(payload: &[u8]) -> bool {
    const KEY: &[u8] = b"\"finish_reason\"";
    let mut from = 0;
    while let Some(at) = payload[from..].windows(KEY.len()).position(|w| w == KEY) {
        let after = &payload[from + at + KEY.len()..];
        let mut rest = after.iter().skip_while(|b| b.is_ascii_whitespace());
        if rest.next() == Some(&b':') && rest.find(|b| !b.is_ascii_whitespace()) == Some(&b'"') {
            return true;
        }
        from += at + KEY.len();
    }
    false
}

/// The status an in-stream OpenAI-style error event stands for: a numeric `code` when it is an HTTP
/// status, else by its `type`/`code` words (rate limit or quota → 429, overloaded → 503, timeout → 504),
/// else 500 (OpenAI's in-stream errors are `server_error`).
pub fn error_event_status(err: &Value) -> u16 {
    if let Some(n) = err
        .get("code")
        .and_then(Value::as_u64)
        .filter(|n| (400..=599).contains(n))
    {
        return n as u16;
    }
    let words: String = ["type", "code"]
        .iter()
        .filter_map(|k| err.get(*k).and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase();
    if words.contains("rate_limit") || words.contains("throttl") || words.contains("quota") {
        429
    } else if words.contains("overload") || words.contains("unavailable") {
        503
    } else if words.contains("timeout") {
        504
    } else {
        500
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Operation;
    use http::uri::PathAndQuery;

    #[test]
    fn passthrough_keeps_path_and_body() {
        let ctx = RequestCtx {
            operation: Operation::Chat,
            path_and_query: &PathAndQuery::from_static("/v1/chat/completions?x=1"),
            model: "m",
            model_overridden: false,
            stream: false,
            schema_version: None,
            client_headers: &http::HeaderMap::new(),
            gcp: None,
        };
        let body = Bytes::from_static(b"{\"model\":\"m\"}");
        let r = OpenAi.request(&ctx, &body).expect("translate");
        assert_eq!(r.path_and_query, "/v1/chat/completions?x=1");
        assert_eq!(r.body, body);
        assert!(r.headers.is_empty());
    }

    #[test]
    fn an_overridden_model_is_written_into_the_body() {
        let ctx = RequestCtx {
            operation: Operation::Chat,
            path_and_query: &PathAndQuery::from_static("/v1/chat/completions"),
            model: "gpt-4o-mini",
            model_overridden: true,
            stream: false,
            schema_version: None,
            gcp: None,
            client_headers: &http::HeaderMap::new(),
        };
        let body = Bytes::from_static(b"{\"model\":\"gpt-4o\",\"messages\":[]}");
        let r = OpenAi.request(&ctx, &body).expect("translate");
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["model"], "gpt-4o-mini");
        assert_eq!(v["messages"], serde_json::json!([]));
    }
}

#[cfg(test)]
mod watch_tests {
    use super::*;

    const ROLE: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n";
    const TEXT: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n";
    const STOP: &str =
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    /// Feeds `stream` split at every byte offset; returns the last signal and the end flag of each split.
    fn fed(stream: &str) -> Vec<(StreamSignal, bool)> {
        (0..=stream.len())
            .map(|split| {
                let mut w = StreamWatch::new();
                let (a, b) = stream.as_bytes().split_at(split);
                let first = w.feed(a);
                let second = w.feed(b);
                let last = match first {
                    StreamSignal::Error { .. } => first,
                    _ => second,
                };
                (last, w.ended())
            })
            .collect()
    }

    #[test]
    fn signals_at_every_split() {
        let rows: [(&str, String, StreamSignal, bool); 9] = [
            ("role chunk only holds", ROLE.into(), StreamSignal::Hold, false),
            ("text is content", format!("{ROLE}{TEXT}"), StreamSignal::Content, false),
            ("finish reason ends", format!("{ROLE}{TEXT}{STOP}"), StreamSignal::Content, true),
            ("done ends", format!("{ROLE}{TEXT}{DONE}"), StreamSignal::Content, true),
            ("an empty answer is an answer", format!("{ROLE}{STOP}{DONE}"), StreamSignal::Content, true),
            (
                "tool call is content",
                "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0}]}}]}\n".into(),
                StreamSignal::Content,
                false,
            ),
            (
                "completions text is content",
                "data: {\"choices\":[{\"text\":\"x\",\"finish_reason\":null}]}\n".into(),
                StreamSignal::Content,
                false,
            ),
            (
                "error before content",
                format!("{ROLE}data: {{\"error\":{{\"message\":\"busy\",\"type\":\"server_error\",\"code\":null}}}}\n\n"),
                StreamSignal::Error { status: 500, message: "busy".into() },
                false,
            ),
            (
                "comments and crlf",
                ": keep-alive\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\r\n\r\n".into(),
                StreamSignal::Content,
                false,
            ),
        ];
        for (name, stream, want, ended) in rows {
            for (split, (got, got_end)) in fed(&stream).into_iter().enumerate() {
                assert_eq!(got, want, "{name}, split at {split}");
                assert_eq!(got_end, ended, "{name} (ended), split at {split}");
            }
        }
    }

    #[test]
    fn finish_reason_inside_content_does_not_end_the_stream() {
        let mut w = StreamWatch::new();
        w.feed(TEXT.as_bytes());
        let tricky = "data: {\"choices\":[{\"delta\":{\"content\":\"\\\"finish_reason\\\": \\\"stop\\\"\"},\"finish_reason\":null}]}\n\n";
        assert_eq!(w.feed(tricky.as_bytes()), StreamSignal::Content);
        assert!(!w.ended(), "escaped key in content counted as an end");
        w.feed(b"data: {\"choices\":[{\"delta\":{},\"finish_reason\" : \"length\"}]}\n");
        assert!(w.ended());
    }

    #[test]
    fn error_statuses_follow_their_words() {
        let rows = [
            (
                serde_json::json!({"type": "server_error", "code": null}),
                500,
            ),
            (serde_json::json!({"type": "rate_limit_exceeded"}), 429),
            (serde_json::json!({"code": "insufficient_quota"}), 429),
            (serde_json::json!({"type": "overloaded_error"}), 503),
            (serde_json::json!({"code": 529}), 529),
            (serde_json::json!({"code": 42, "type": "timeout"}), 504),
        ];
        for (err, want) in rows {
            assert_eq!(error_event_status(&err), want, "{err}");
        }
    }

    #[test]
    fn responses_streams_are_judged_by_their_typed_events() {
        const CREATED: &str = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\"}}\n\n";
        const DELTA: &str = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":4,\"delta\":\"Hi\"}\n\n";
        const COMPLETED: &str = "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":9,\"response\":{}}\n\n";
        const ERROR: &str = "event: error\ndata: {\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":\"slow\",\"param\":null,\"sequence_number\":1}\n\n";
        // (stream, last signal, ended, last sequence number)
        let rows: [(String, StreamSignal, bool, Option<u64>); 5] = [
            (CREATED.into(), StreamSignal::Hold, false, Some(0)),
            (
                format!("{CREATED}{DELTA}"),
                StreamSignal::Content,
                false,
                Some(4),
            ),
            (
                format!("{CREATED}{DELTA}{COMPLETED}"),
                StreamSignal::Content,
                true,
                Some(9),
            ),
            (
                format!("{CREATED}{ERROR}"),
                StreamSignal::Error {
                    status: 429,
                    message: "slow".into(),
                },
                false,
                Some(1),
            ),
            // An error after content is the upstream's own honest end.
            (
                format!("{CREATED}{DELTA}{ERROR}"),
                StreamSignal::Content,
                true,
                Some(1),
            ),
        ];
        for (stream, want, ended, seq) in rows {
            for split in 0..=stream.len() {
                let mut w = StreamWatch::responses();
                let (a, b) = stream.as_bytes().split_at(split);
                let first = w.feed(a);
                let got = match first {
                    StreamSignal::Error { .. } => first,
                    _ => w.feed(b),
                };
                assert_eq!(got, want, "{stream:?} split at {split}");
                assert_eq!(w.ended(), ended, "{stream:?} (ended) split at {split}");
                if !matches!(want, StreamSignal::Error { .. }) {
                    assert_eq!(w.last_sequence(), seq, "{stream:?} split at {split}");
                }
            }
        }
    }

    #[test]
    fn an_endless_line_stops_the_judging() {
        let mut w = StreamWatch::new();
        let big = vec![b'x'; MAX_WATCHED_LINE + 1];
        assert_eq!(w.feed(&big), StreamSignal::Content);
        assert!(w.ended());
    }
}
