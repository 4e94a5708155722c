//! Anthropic Messages in (`POST /anthropic/v1/messages` and `…/count_tokens`, as Envoy AI Gateway v1.1
//! serves them): the client's body goes to a backend that speaks Messages without translation, and the
//! answer comes back in Anthropic's own shape — events, errors and all.
//!
//! Two backends speak it. `Anthropic` takes the body as it is at `/v1/messages` (with the client's
//! `anthropic-version` and `anthropic-beta`). `AWSAnthropic` is Claude on Bedrock through InvokeModel /
//! InvokeModelWithResponseStream (Bedrock "Anthropic Claude Messages API" parameters): the model is in the
//! path, not the body; the body carries `anthropic_version: bedrock-2023-05-31` and the beta flags as
//! `anthropic_beta`, and has no `stream`; a streamed answer is an AWS event stream whose `chunk` events
//! hold the Anthropic events, base64-encoded in `bytes`. [`InvokeStream`] unwraps those back into SSE.
//!
//! A stream is held until its first content ([`MessagesStream`]), so an `error` event (Anthropic's
//! `overloaded_error`), an exception or an early end before it fails the attempt over, as chat streams do;
//! after it, a cut stream ends with an Anthropic `error` event. Pure: bytes in, bytes out.

use base64::Engine;
use bytes::{Bytes, BytesMut};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::utf8_percent_encode;
use serde_json::{json, Value};

use super::azure::UNRESERVED;
use super::eventstream::EventStreamDecoder;
use super::sse::SseParser;
use super::{
    json_content_type, BodyTransform, Operation, RequestCtx, TranslateError, UpstreamRequest,
    MAX_BUFFERED_BODY,
};

/// `anthropic_version` of a Bedrock InvokeModel body when the backend's `schema.version` gives none (the
/// only value Bedrock documents, and Envoy AI Gateway's default).
pub const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// The client header naming the Messages API version.
pub const VERSION_HEADER: HeaderName = HeaderName::from_static("anthropic-version");
/// The client header naming beta features (comma-separated; may repeat).
pub const BETA_HEADER: HeaderName = HeaderName::from_static("anthropic-beta");

/// Most output held before the first content: an upstream that sends this much without any (pings) is
/// committed to, so a hold never grows without bound.
const MAX_HELD: usize = 256 << 10;

/// Anthropic's error `type` for an HTTP status (its "Errors" page).
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 405 | 409 | 415 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

/// An Anthropic error body: `{"type":"error","error":{"type","message"}}`.
pub fn error_json(kind: &str, message: &str) -> Bytes {
    Bytes::from(json!({"type": "error", "error": {"type": kind, "message": message}}).to_string())
}

/// A Bedrock error (`{"message"}` with the exception in `x-amzn-errortype`) in Anthropic's shape, so an
/// Anthropic client reads a Bedrock fallback's failure as it reads Anthropic's own. Throttling is
/// `rate_limit_error` and an unavailable service `overloaded_error`, the types Anthropic's clients retry.
pub fn bedrock_error(status: u16, error_type_header: Option<&str>, body: &[u8]) -> Bytes {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let text = v
        .as_ref()
        .and_then(|v| v.get("message").or_else(|| v.get("Message")))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let e = super::excerpt(body);
            if e.trim().is_empty() {
                format!("AWS Bedrock answered HTTP {status}")
            } else {
                format!("AWS Bedrock answered HTTP {status}: {e}")
            }
        });
    let exception = error_type_header.map(|t| t.split(':').next().unwrap_or(t));
    let kind = match exception {
        Some("ThrottlingException") => "rate_limit_error",
        Some("ServiceUnavailableException") => "overloaded_error",
        Some("ModelTimeoutException") => "timeout_error",
        _ => error_type(status),
    };
    error_json(kind, &text)
}

/// The request for an `Anthropic` backend: the body as the client sent it (its `model` replaced only
/// under a `modelNameOverride`), with the client's `anthropic-version` (else [`super::anthropic::API_VERSION`])
/// and `anthropic-beta`.
pub fn anthropic_request(
    ctx: &RequestCtx<'_>,
    body: &Bytes,
) -> Result<UpstreamRequest, TranslateError> {
    let path = match ctx.operation {
        Operation::CountTokens => "/v1/messages/count_tokens",
        _ => "/v1/messages",
    };
    let version = ctx
        .client_headers
        .get(VERSION_HEADER)
        .cloned()
        .unwrap_or(HeaderValue::from_static(super::anthropic::API_VERSION));
    let mut headers = vec![json_content_type(), (VERSION_HEADER, version)];
    for beta in ctx.client_headers.get_all(BETA_HEADER) {
        headers.push((BETA_HEADER, beta.clone()));
    }
    Ok(UpstreamRequest {
        path_and_query: PathAndQuery::from_static(path),
        body: if ctx.model_overridden {
            super::with_model(body, ctx.model)?
        } else {
            body.clone()
        },
        headers,
    })
}

/// The beta flags of the client's `anthropic-beta` headers (each a comma list).
fn betas(headers: &HeaderMap) -> Vec<Value> {
    headers
        .get_all(BETA_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(|b| Value::String(b.to_owned()))
        .collect()
}

/// A Messages body as Bedrock's InvokeModel takes it: no `model` (it is in the path) and no `stream` (the
/// operation says it), `anthropic_version` from `version` (the backend's `schema.version`) and the beta
/// flags as `anthropic_beta` unless the body has its own.
pub fn invoke_body(
    body: &serde_json::Map<String, Value>,
    version: Option<&str>,
    client_headers: &HeaderMap,
) -> Result<Bytes, TranslateError> {
    let mut m = body.clone();
    m.remove("model");
    m.remove("stream");
    m.insert(
        "anthropic_version".into(),
        Value::String(version.unwrap_or(BEDROCK_ANTHROPIC_VERSION).to_owned()),
    );
    let betas = betas(client_headers);
    if !betas.is_empty() && !m.contains_key("anthropic_beta") {
        m.insert("anthropic_beta".into(), Value::Array(betas));
    }
    serde_json::to_vec(&m)
        .map(Bytes::from)
        .map_err(|e| TranslateError::BadRequest(e.to_string()))
}

/// The InvokeModel (or InvokeModelWithResponseStream, or CountTokens) path for `model`, the model id
/// URL-encoded as one path segment as the bedrock-runtime service model binds it.
pub fn invoke_path(model: &str, operation: &str) -> Result<PathAndQuery, TranslateError> {
    super::provider_path(format!(
        "/model/{}/{operation}",
        utf8_percent_encode(model, UNRESERVED)
    ))
}

/// Bedrock CountTokens' body for a Messages count request: the InvokeModel body it would count,
/// base64-encoded (`CountTokensInput.invokeModel.body`).
pub fn count_tokens_body(invoke_body: &[u8]) -> Bytes {
    let b64 = base64::engine::general_purpose::STANDARD.encode(invoke_body);
    Bytes::from(json!({"input": {"invokeModel": {"body": b64}}}).to_string())
}

/// Bedrock CountTokens' answer (`{"inputTokens": n}`) as Anthropic's (`{"input_tokens": n}`).
pub fn count_tokens_answer(body: &[u8]) -> Result<Bytes, TranslateError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| TranslateError::BadUpstream {
        provider: "aws.bedrock",
        detail: e.to_string(),
    })?;
    let n = v
        .get("inputTokens")
        .and_then(Value::as_u64)
        .ok_or_else(|| TranslateError::BadUpstream {
            provider: "aws.bedrock",
            detail: "CountTokens answer without inputTokens".into(),
        })?;
    Ok(Bytes::from(json!({ "input_tokens": n }).to_string()))
}

/// One Anthropic event as SSE, in the spelling Anthropic sends (`event:` line, a `data:` line per line of
/// data, which SSE joins back with `\n`).
fn event_bytes(kind: &str, data: &str, out: &mut BytesMut) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\n");
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\n");
    }
    out.extend_from_slice(b"\n");
}

/// An Anthropic event stream on its way to an Anthropic client: passed on event by event, but held until
/// its first content (a content block, or the answer's end) so that an `error` event before it — an
/// overloaded or rate-limited provider — is the attempt's failure and fails over (DESIGN §3.6). An
/// `error` event after content, or an end without `message_stop`, is a truncation, which the body turns
/// into an Anthropic `error` event and an aborted connection.
#[derive(Debug, Default)]
pub struct MessagesStream {
    parser: SseParser,
    held: BytesMut,
    committed: bool,
    stopped: bool,
    /// The `error.type` of the provider's error event, for the truncation event the client gets.
    error_kind: Option<String>,
}

impl MessagesStream {
    /// A watch at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// One Anthropic event (its `type` and JSON text): held or passed on.
    fn on_event(
        &mut self,
        kind: &str,
        data: &str,
        v: &Value,
        out: &mut BytesMut,
    ) -> Result<(), TranslateError> {
        match kind {
            "error" => {
                let err = v.get("error").unwrap_or(&Value::Null);
                let field = |k: &str| err.get(k).and_then(Value::as_str);
                let error_kind = field("type").unwrap_or("api_error").to_owned();
                self.error_kind = Some(error_kind.clone());
                return Err(TranslateError::StreamError {
                    provider: "anthropic",
                    kind: error_kind,
                    message: field("message")
                        .unwrap_or("error event without a message")
                        .to_owned(),
                });
            }
            "content_block_start" | "content_block_delta" | "message_delta" => {
                self.committed = true
            }
            "message_stop" => {
                self.committed = true;
                self.stopped = true;
            }
            // message_start, ping, content_block_stop and events newer than this code.
            _ => {}
        }
        if self.committed {
            if !self.held.is_empty() {
                out.extend_from_slice(&std::mem::take(&mut self.held));
            }
            event_bytes(kind, data, out);
        } else {
            event_bytes(kind, data, &mut self.held);
            if self.held.len() > MAX_HELD {
                self.committed = true;
                out.extend_from_slice(&std::mem::take(&mut self.held));
            }
        }
        Ok(())
    }

    /// Parses `data` as one event and handles it; the `type` member names it when `event:` is missing.
    fn on_json(
        &mut self,
        event: &str,
        data: &str,
        out: &mut BytesMut,
    ) -> Result<(), TranslateError> {
        let v: Value = serde_json::from_str(data).map_err(|e| TranslateError::BadUpstream {
            provider: "anthropic",
            detail: format!("event {event:?}: {e}"),
        })?;
        let kind = if event.is_empty() {
            v.get("type").and_then(Value::as_str).unwrap_or_default()
        } else {
            event
        };
        let kind = kind.to_owned();
        self.on_event(&kind, data, &v, out)
    }
}

impl BodyTransform for MessagesStream {
    fn content_type(&self) -> &'static str {
        "text/event-stream"
    }
    fn is_sse(&self) -> bool {
        true
    }
    fn feed(&mut self, data: &[u8], out: &mut BytesMut) -> Result<(), TranslateError> {
        let events = self
            .parser
            .push(data)
            .map_err(|e| TranslateError::BadUpstream {
                provider: "anthropic",
                detail: e.to_string(),
            })?;
        for e in events {
            self.on_json(&e.event, &e.data, out)?;
        }
        Ok(())
    }
    fn finish(&mut self, out: &mut BytesMut) -> Result<(), TranslateError> {
        if !self.stopped || self.parser.has_partial() {
            return Err(TranslateError::Incomplete("anthropic"));
        }
        out.extend_from_slice(&std::mem::take(&mut self.held));
        Ok(())
    }
    fn truncation_event(&self, message: &str) -> Option<Bytes> {
        let kind = self.error_kind.as_deref().unwrap_or("api_error");
        let mut out = BytesMut::new();
        let data = json!({"type": "error", "error": {"type": kind, "message": message}});
        event_bytes("error", &data.to_string(), &mut out);
        Some(out.freeze())
    }
    fn self_watched(&self) -> bool {
        true
    }
}

/// InvokeModelWithResponseStream's event stream → Anthropic SSE, fed to `inner` (a [`MessagesStream`] for
/// Anthropic clients, the OpenAI chunk translation for chat clients). Each `chunk` event's payload is
/// `{"bytes": base64}` holding one Anthropic event's JSON; an exception message (throttling, model
/// stream error, …) is the provider's error.
pub struct InvokeStream<T> {
    decoder: EventStreamDecoder,
    inner: T,
}

impl<T: BodyTransform> InvokeStream<T> {
    /// Unwraps Bedrock's stream into `inner`.
    pub fn new(inner: T) -> Self {
        InvokeStream {
            decoder: EventStreamDecoder::new(),
            inner,
        }
    }
}

fn bad_bedrock(detail: impl Into<String>) -> TranslateError {
    TranslateError::BadUpstream {
        provider: "aws.bedrock",
        detail: detail.into(),
    }
}

/// The Anthropic event JSON inside one `chunk` event's payload.
pub fn chunk_event_json(payload: &[u8]) -> Result<(String, Vec<u8>), TranslateError> {
    let v: Value =
        serde_json::from_slice(payload).map_err(|e| bad_bedrock(format!("chunk payload: {e}")))?;
    let b64 = v
        .get("bytes")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_bedrock("chunk without bytes"))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| bad_bedrock(format!("chunk bytes are not base64: {e}")))?;
    let event: Value =
        serde_json::from_slice(&raw).map_err(|e| bad_bedrock(format!("chunk event: {e}")))?;
    let kind = event
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_bedrock("chunk event without a type"))?
        .to_owned();
    Ok((kind, raw))
}

impl<T: BodyTransform> BodyTransform for InvokeStream<T> {
    fn content_type(&self) -> &'static str {
        self.inner.content_type()
    }
    fn is_sse(&self) -> bool {
        self.inner.is_sse()
    }
    fn feed(&mut self, data: &[u8], out: &mut BytesMut) -> Result<(), TranslateError> {
        let messages = self
            .decoder
            .push(data)
            .map_err(|e| bad_bedrock(e.to_string()))?;
        let mut sse = BytesMut::new();
        for m in messages {
            if m.message_type != "event" {
                // What the inner transform already took still goes out before the error.
                if !sse.is_empty() {
                    self.inner.feed(&sse, out)?;
                }
                let payload: Value = serde_json::from_slice(&m.payload).unwrap_or(Value::Null);
                return Err(TranslateError::StreamError {
                    provider: "aws.bedrock",
                    kind: m.kind,
                    message: payload
                        .get("message")
                        .or_else(|| payload.get("Message"))
                        .and_then(Value::as_str)
                        .unwrap_or("exception without a message")
                        .to_owned(),
                });
            }
            if m.kind != "chunk" {
                continue;
            }
            let (kind, raw) = chunk_event_json(&m.payload)?;
            let text =
                std::str::from_utf8(&raw).map_err(|e| bad_bedrock(format!("chunk event: {e}")))?;
            event_bytes(&kind, text, &mut sse);
            if sse.len() > MAX_BUFFERED_BODY {
                return Err(TranslateError::TooLarge);
            }
        }
        if sse.is_empty() {
            return Ok(());
        }
        self.inner.feed(&sse, out)
    }
    fn finish(&mut self, out: &mut BytesMut) -> Result<(), TranslateError> {
        if self.decoder.has_partial() {
            return Err(TranslateError::Incomplete("aws.bedrock"));
        }
        self.inner.finish(out)
    }
    fn truncation_event(&self, message: &str) -> Option<Bytes> {
        self.inner.truncation_event(message)
    }
    fn self_watched(&self) -> bool {
        self.inner.self_watched()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(v: &Value) -> String {
        format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap_or(""))
    }

    fn start() -> Value {
        json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude", "usage": {"input_tokens": 3, "output_tokens": 1}}})
    }
    fn delta() -> Value {
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}})
    }
    fn stop() -> Value {
        json!({"type": "message_stop"})
    }
    fn overloaded() -> Value {
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    }

    /// (name, events, output before any error, result of feed+finish)
    #[test]
    fn messages_streams_are_held_until_content_and_judged_at_the_end() {
        type Row = (
            &'static str,
            Vec<Value>,
            &'static str,
            Result<(), &'static str>,
        );
        let rows: Vec<Row> = vec![
            (
                "a whole answer passes",
                vec![start(), delta(), stop()],
                "message_start,content_block_delta,message_stop",
                Ok(()),
            ),
            (
                "an error before content is the attempt's failure, nothing sent",
                vec![start(), json!({"type": "ping"}), overloaded()],
                "",
                Err("overloaded_error"),
            ),
            (
                "an error after content truncates after what was sent",
                vec![start(), delta(), overloaded()],
                "message_start,content_block_delta",
                Err("overloaded_error"),
            ),
            (
                "an end without message_stop is incomplete",
                vec![start(), delta()],
                "message_start,content_block_delta",
                Err("incomplete"),
            ),
            (
                "an end before content is incomplete and sends nothing",
                vec![start()],
                "",
                Err("incomplete"),
            ),
        ];
        for (name, events, want_out, want) in rows {
            let text: String = events.iter().map(ev).collect();
            // Every split point: frames never change the verdict.
            for split in [1, 17, text.len() / 2, text.len()] {
                let split = split.min(text.len());
                let mut t = MessagesStream::new();
                let mut out = BytesMut::new();
                let got = t
                    .feed(&text.as_bytes()[..split], &mut out)
                    .and_then(|()| t.feed(&text.as_bytes()[split..], &mut out))
                    .and_then(|()| t.finish(&mut out));
                let kinds: Vec<String> = String::from_utf8_lossy(&out)
                    .split("\n\n")
                    .filter_map(|e| e.strip_prefix("event: "))
                    .map(|e| e.split('\n').next().unwrap_or_default().to_owned())
                    .collect();
                assert_eq!(kinds.join(","), want_out, "{name} (split {split})");
                match (got, want) {
                    (Ok(()), Ok(())) => {}
                    (Err(TranslateError::StreamError { kind, .. }), Err(k)) => {
                        assert_eq!(kind, k, "{name}")
                    }
                    (Err(TranslateError::Incomplete(_)), Err("incomplete")) => {}
                    (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
                }
            }
        }
    }

    #[test]
    fn multi_line_data_stays_one_event() {
        let mut t = MessagesStream::new();
        let mut out = BytesMut::new();
        let text = "event: message_stop\ndata: {\"type\":\ndata: \"message_stop\"}\n\n";
        t.feed(text.as_bytes(), &mut out).expect("feed");
        t.finish(&mut out).expect("finish");
        let mut parser = SseParser::new();
        let events = parser.push(&out).expect("parse");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "{\"type\":\n\"message_stop\"}");
    }

    #[test]
    fn truncation_events_are_anthropic_errors() {
        let mut t = MessagesStream::new();
        let mut out = BytesMut::new();
        let text: String = [start(), delta(), overloaded()].iter().map(ev).collect();
        assert!(t.feed(text.as_bytes(), &mut out).is_err());
        let e = t.truncation_event("cut").expect("an event");
        let text = String::from_utf8_lossy(&e);
        let data = text
            .strip_prefix("event: error\ndata: ")
            .and_then(|d| d.strip_suffix("\n\n"))
            .expect("an error event");
        let v: Value = serde_json::from_str(data).expect("json");
        assert_eq!(
            v,
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "cut"}})
        );
        assert!(MessagesStream::new().self_watched());
    }

    fn chunk(v: &Value) -> Bytes {
        let b64 = base64::engine::general_purpose::STANDARD.encode(v.to_string());
        crate::schema::eventstream::encode_event(
            "chunk",
            json!({ "bytes": b64 }).to_string().as_bytes(),
        )
        .expect("frame")
    }

    #[test]
    fn bedrock_chunks_unwrap_into_anthropic_events() {
        let mut frames = BytesMut::new();
        for e in [start(), delta(), stop()] {
            frames.extend_from_slice(&chunk(&e));
        }
        let mut t = InvokeStream::new(MessagesStream::new());
        let mut out = BytesMut::new();
        let (a, b) = frames.split_at(frames.len() / 3);
        t.feed(a, &mut out).expect("feed");
        t.feed(b, &mut out).expect("feed");
        t.finish(&mut out).expect("finish");
        let want: String = [start(), delta(), stop()].iter().map(ev).collect();
        assert_eq!(String::from_utf8_lossy(&out), want);
        // An exception before content fails the attempt, classified by its name.
        let mut t = InvokeStream::new(MessagesStream::new());
        let mut frames = BytesMut::from(&chunk(&start())[..]);
        frames.extend_from_slice(
            &crate::schema::eventstream::encode_exception(
                "throttlingException",
                br#"{"message":"slow down"}"#,
            )
            .expect("frame"),
        );
        let err = t
            .feed(&frames, &mut BytesMut::new())
            .expect_err("exception");
        assert_eq!(crate::schema::stream_error_status(&err), Some(429));
    }

    #[test]
    fn invoke_bodies_follow_bedrock() {
        let Value::Object(body) = json!({"model": "claude", "stream": true, "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}]})
        else {
            panic!()
        };
        let mut headers = HeaderMap::new();
        headers.append(BETA_HEADER, HeaderValue::from_static("a-1, b-2"));
        headers.append(BETA_HEADER, HeaderValue::from_static("c-3"));
        let out: Value = serde_json::from_slice(&invoke_body(&body, None, &headers).expect("body"))
            .expect("json");
        assert_eq!(
            out,
            json!({"anthropic_version": "bedrock-2023-05-31", "anthropic_beta": ["a-1", "b-2", "c-3"],
                   "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
        );
        assert_eq!(
            invoke_path("us.anthropic.claude-3:0", "invoke").expect("path"),
            "/model/us.anthropic.claude-3%3A0/invoke"
        );
        let counted = count_tokens_answer(br#"{"inputTokens": 12}"#).expect("answer");
        assert_eq!(counted, Bytes::from_static(br#"{"input_tokens":12}"#));
        let v: Value = serde_json::from_slice(&count_tokens_body(b"{}")).expect("json");
        assert_eq!(v, json!({"input": {"invokeModel": {"body": "e30="}}}));
    }

    #[test]
    fn anthropic_backends_get_the_body_with_the_clients_version_and_betas() {
        let body = Bytes::from_static(br#"{"model":"claude","max_tokens":5,"messages":[]}"#);
        let path = PathAndQuery::from_static("/anthropic/v1/messages");
        let mut headers = HeaderMap::new();
        headers.append(BETA_HEADER, HeaderValue::from_static("a-1"));
        headers.append(BETA_HEADER, HeaderValue::from_static("b-2"));
        let ctx = |op, model, overridden, headers| RequestCtx {
            operation: op,
            path_and_query: &path,
            model,
            model_overridden: overridden,
            stream: false,
            schema_version: None,
            client_headers: headers,
            gcp: None,
        };
        let r = anthropic_request(&ctx(Operation::Messages, "claude", false, &headers), &body)
            .expect("request");
        assert_eq!(r.path_and_query, "/v1/messages");
        assert_eq!(r.body, body, "the body goes as it came");
        let values = |name: &HeaderName| -> Vec<&HeaderValue> {
            r.headers
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v)
                .collect()
        };
        assert_eq!(values(&VERSION_HEADER), vec!["2023-06-01"]);
        assert_eq!(values(&BETA_HEADER), vec!["a-1", "b-2"]);
        let mut dated = headers.clone();
        dated.insert(VERSION_HEADER, HeaderValue::from_static("2099-01-01"));
        let r = anthropic_request(
            &ctx(Operation::CountTokens, "claude-override", true, &dated),
            &body,
        )
        .expect("request");
        assert_eq!(r.path_and_query, "/v1/messages/count_tokens");
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["model"], "claude-override");
        assert!(r
            .headers
            .iter()
            .any(|(n, v)| n == VERSION_HEADER && v == "2099-01-01"));
    }

    #[test]
    fn bedrock_errors_take_anthropics_shape() {
        for (status, header, body, kind, message) in [
            (
                429,
                Some("ThrottlingException:http://internal"),
                &br#"{"message":"Too many requests"}"#[..],
                "rate_limit_error",
                "Too many requests",
            ),
            (
                503,
                Some("ServiceUnavailableException"),
                br#"{"Message":"busy"}"#,
                "overloaded_error",
                "busy",
            ),
            (
                400,
                Some("ValidationException"),
                br#"{"message":"bad"}"#,
                "invalid_request_error",
                "bad",
            ),
            (
                502,
                None,
                b"<html>",
                "api_error",
                "AWS Bedrock answered HTTP 502: <html>",
            ),
        ] {
            let v: Value =
                serde_json::from_slice(&bedrock_error(status, header, body)).expect("json");
            assert_eq!(
                v,
                json!({"type": "error", "error": {"type": kind, "message": message}})
            );
        }
    }
}
