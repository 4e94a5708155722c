//! The Anthropic schema: OpenAI chat ↔ the Anthropic Messages API.
//!
//! Anthropic API reference ("Messages", "Streaming Messages", "Errors"): `POST /v1/messages` with
//! `x-api-key` and `anthropic-version: 2023-06-01`; the system prompt is a top-level `system` string, not a
//! message; `max_tokens` is required. The answer is `{"id","model","content":[{"type":"text","text"}],
//! "stop_reason","usage":{"input_tokens","output_tokens"}}`. A stream is SSE with the events
//! `message_start`, `content_block_start`, `content_block_delta`, `content_block_stop`, `message_delta`,
//! `message_stop`, `ping` and `error`. Errors are `{"type":"error","error":{"type","message"}}`.

use bytes::{Bytes, BytesMut};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{json, Map, Value};

use super::sse::SseParser;
use super::{
    chunk_event, completion_body, json_content_type, max_tokens, opaque_error, openai_error,
    openai_usage, parse_object, split_messages, stop_sequences, usage_event, BodyTransform,
    Buffered, Operation, RequestCtx, ResponseCtx, TranslateError, Translator, UpstreamRequest,
    SSE_DONE,
};

const PROVIDER: &str = "anthropic";

/// `anthropic-version` sent on every request.
pub const API_VERSION: &str = "2023-06-01";

/// `max_tokens` when the client gives none (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Anthropic Messages translator.
#[derive(Debug, Clone, Copy)]
pub struct Anthropic;

/// OpenAI chat body → Messages body.
pub fn request_body(
    body: &Map<String, Value>,
    model: &str,
    stream: bool,
) -> Result<Value, TranslateError> {
    let (system, turns) = split_messages(body)?;
    if turns.is_empty() {
        return Err(TranslateError::BadRequest(
            "Messages needs at least one user or assistant message".into(),
        ));
    }
    let messages: Vec<Value> = turns
        .iter()
        .map(|t| json!({"role": t.role, "content": t.text}))
        .collect();
    let mut out = json!({
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens(body).unwrap_or(DEFAULT_MAX_TOKENS),
    });
    if !system.is_empty() {
        out["system"] = Value::from(system.join("\n\n"));
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = body.get(key).filter(|v| v.is_number()) {
            out[key] = v.clone();
        }
    }
    if let Some(stop) = stop_sequences(body) {
        out["stop_sequences"] = stop.into();
    }
    if stream {
        out["stream"] = Value::Bool(true);
    }
    Ok(out)
}

/// Messages `stop_reason` → OpenAI `finish_reason`.
pub fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

fn bad(detail: impl Into<String>) -> TranslateError {
    TranslateError::BadUpstream {
        provider: PROVIDER,
        detail: detail.into(),
    }
}

fn usage_of(v: &Value) -> (u64, u64) {
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    (n("input_tokens"), n("output_tokens"))
}

/// Messages answer → `chat.completion` (its id and model are kept).
pub fn response_body(ctx: &ResponseCtx, body: &[u8]) -> Result<Bytes, TranslateError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let content = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no content"))?;
    let text: String = content
        .iter()
        .filter(|c| c.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|c| c.get("text").and_then(Value::as_str))
        .collect();
    let id = v.get("id").and_then(Value::as_str).unwrap_or(&ctx.id);
    let model = v.get("model").and_then(Value::as_str).unwrap_or(&ctx.model);
    let stop = v
        .get("stop_reason")
        .and_then(Value::as_str)
        .unwrap_or("end_turn");
    let (input, output) = usage_of(v.get("usage").unwrap_or(&Value::Null));
    Ok(completion_body(
        ctx,
        id,
        model,
        &text,
        finish_reason(stop),
        openai_usage(input, output),
    ))
}

/// The HTTP status Anthropic answers an error `type` with (its "Errors" page): what an in-stream `error`
/// event stands for when the attempt is classified (an `overloaded_error` event is a 529).
pub fn error_status(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

/// Anthropic error body → OpenAI error JSON (the Anthropic `error.type` becomes the `code`).
pub fn error_body(status: u16, body: &[u8]) -> Bytes {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let err = v.as_ref().and_then(|v| v.get("error"));
    match err.and_then(|e| e.get("message")).and_then(Value::as_str) {
        Some(m) => {
            let code = err.and_then(|e| e.get("type")).and_then(Value::as_str);
            Bytes::from(openai_error(status, m, code).to_string())
        }
        None => opaque_error(status, PROVIDER, body),
    }
}

/// Messages SSE → OpenAI chunk SSE.
pub struct StreamTransform {
    ctx: ResponseCtx,
    parser: SseParser,
    id: String,
    model: String,
    input_tokens: u64,
    output_tokens: u64,
    stopped: bool,
}

impl StreamTransform {
    /// A transform for one response.
    pub fn new(ctx: ResponseCtx) -> Self {
        StreamTransform {
            id: ctx.id.to_string(),
            model: ctx.model.to_string(),
            ctx,
            parser: SseParser::new(),
            input_tokens: 0,
            output_tokens: 0,
            stopped: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Value) -> Bytes {
        chunk_event(&self.ctx, &self.id, &self.model, delta, finish)
    }

    fn on_event(
        &mut self,
        kind: &str,
        v: &Value,
        out: &mut BytesMut,
    ) -> Result<(), TranslateError> {
        match kind {
            "message_start" => {
                let msg = v.get("message").unwrap_or(&Value::Null);
                if let Some(id) = msg.get("id").and_then(Value::as_str) {
                    self.id = id.to_owned();
                }
                if let Some(m) = msg.get("model").and_then(Value::as_str) {
                    self.model = m.to_owned();
                }
                let (i, o) = usage_of(msg.get("usage").unwrap_or(&Value::Null));
                (self.input_tokens, self.output_tokens) = (i, o);
                out.extend_from_slice(
                    &self.chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                );
            }
            "content_block_delta" => {
                if let Some(text) = v.pointer("/delta/text").and_then(Value::as_str) {
                    out.extend_from_slice(&self.chunk(json!({"content": text}), Value::Null));
                }
            }
            "message_delta" => {
                if let Some(o) = v.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                    self.output_tokens = o;
                }
                if let Some(stop) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    out.extend_from_slice(&self.chunk(json!({}), json!(finish_reason(stop))));
                }
            }
            "message_stop" => self.stopped = true,
            "error" => {
                let err = v.get("error").unwrap_or(&Value::Null);
                return Err(TranslateError::StreamError {
                    provider: PROVIDER,
                    kind: err
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("error")
                        .to_owned(),
                    message: err
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("error event without a message")
                        .to_owned(),
                });
            }
            // ping, content_block_start/stop: nothing to say to an OpenAI client.
            _ => {}
        }
        Ok(())
    }
}

impl BodyTransform for StreamTransform {
    fn content_type(&self) -> &'static str {
        "text/event-stream"
    }
    fn is_sse(&self) -> bool {
        true
    }
    fn feed(&mut self, data: &[u8], out: &mut BytesMut) -> Result<(), TranslateError> {
        let events = self.parser.push(data).map_err(|e| bad(e.to_string()))?;
        for e in events {
            let v: Value = serde_json::from_str(&e.data)
                .map_err(|err| bad(format!("event {:?}: {err}", e.event)))?;
            // The `type` field repeats the event name; prefer it when the `event:` line is missing.
            let kind = if e.event.is_empty() {
                v.get("type")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            } else {
                e.event
            };
            self.on_event(&kind, &v, out)?;
        }
        Ok(())
    }
    fn finish(&mut self, out: &mut BytesMut) -> Result<(), TranslateError> {
        if !self.stopped || self.parser.has_partial() {
            return Err(TranslateError::Incomplete(PROVIDER));
        }
        if self.ctx.include_usage {
            let usage = openai_usage(self.input_tokens, self.output_tokens);
            out.extend_from_slice(&usage_event(&self.ctx, &self.id, &self.model, usage));
        }
        out.extend_from_slice(SSE_DONE);
        Ok(())
    }
}

impl Translator for Anthropic {
    fn provider_name(&self) -> &'static str {
        PROVIDER
    }

    fn request(
        &self,
        ctx: &RequestCtx<'_>,
        body: &Bytes,
    ) -> Result<UpstreamRequest, TranslateError> {
        if ctx.operation != Operation::Chat {
            return Err(TranslateError::Unsupported(format!(
                "{} is not available on Anthropic backends (chat completions only)",
                ctx.path_and_query
            )));
        }
        let messages = request_body(&parse_object(body)?, ctx.model, ctx.stream)?;
        Ok(UpstreamRequest {
            path_and_query: PathAndQuery::from_static("/v1/messages"),
            body: Bytes::from(messages.to_string()),
            headers: vec![
                json_content_type(),
                (
                    HeaderName::from_static("anthropic-version"),
                    HeaderValue::from_static(API_VERSION),
                ),
            ],
        })
    }

    fn response(
        &self,
        ctx: &ResponseCtx,
        status: StatusCode,
        _headers: &HeaderMap,
    ) -> Option<Box<dyn BodyTransform>> {
        if !status.is_success() {
            let code = status.as_u16();
            return Some(Box::new(Buffered::new(move |b: &[u8]| {
                Ok(error_body(code, b))
            })));
        }
        if ctx.stream {
            return Some(Box::new(StreamTransform::new(ctx.clone())));
        }
        let ctx = ctx.clone();
        Some(Box::new(Buffered::new(move |b: &[u8]| {
            response_body(&ctx, b)
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(include_usage: bool) -> ResponseCtx {
        ResponseCtx {
            model: "claude-x".into(),
            stream: true,
            include_usage,
            id: "chatcmpl-1".into(),
            created: 7,
        }
    }

    #[test]
    fn chat_maps_to_messages() {
        let Value::Object(body) = json!({
            "model": "claude-x", "temperature": 0.2, "stop": ["a"],
            "messages": [{"role": "system", "content": "s1"}, {"role": "system", "content": "s2"},
                         {"role": "user", "content": "hi"}],
        }) else {
            panic!()
        };
        assert_eq!(
            request_body(&body, "claude-x", true).expect("ok"),
            json!({"model": "claude-x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4096,
                   "system": "s1\n\ns2", "temperature": 0.2, "stop_sequences": ["a"], "stream": true})
        );
        let Value::Object(body) =
            json!({"max_tokens": 9, "messages": [{"role": "user", "content": "x"}]})
        else {
            panic!()
        };
        let out = request_body(&body, "m", false).expect("ok");
        assert_eq!(out["max_tokens"], 9);
        assert!(out.get("stream").is_none() && out.get("system").is_none());
    }

    #[test]
    fn answers_and_errors_map_to_openai() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x-2025",
            "content":[{"type":"text","text":"hi there"}],"stop_reason":"end_turn","stop_sequence":null,
            "usage":{"input_tokens":4,"output_tokens":2}}"#;
        let v: Value =
            serde_json::from_slice(&response_body(&ctx(false), body).expect("ok")).expect("json");
        assert_eq!(v["id"], "msg_1");
        assert_eq!(v["model"], "claude-x-2025");
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["choices"][0]["message"]["content"], "hi there");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["total_tokens"], 6);
        let e: Value = serde_json::from_slice(&error_body(
            529,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ))
        .expect("json");
        assert_eq!(e["error"]["message"], "Overloaded");
        assert_eq!(e["error"]["code"], "overloaded_error");
        assert_eq!(e["error"]["type"], "server_error");
    }

    const STREAM: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-x-2025\",\"usage\":{\"input_tokens\":4,\"output_tokens\":1}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: ping\ndata: {\"type\":\"ping\"}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"he\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"y\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":3}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    #[test]
    fn stream_maps_to_chunks() {
        let mut t = StreamTransform::new(ctx(true));
        let mut out = BytesMut::new();
        let (a, b) = STREAM.as_bytes().split_at(101);
        t.feed(a, &mut out).expect("feed");
        t.feed(b, &mut out).expect("feed");
        t.finish(&mut out).expect("finish");
        let text = String::from_utf8_lossy(&out).into_owned();
        let ev: Vec<Value> = text
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).expect("json"))
            .collect();
        assert!(text.ends_with("data: [DONE]\n\n"));
        assert_eq!(ev.len(), 5);
        assert!(ev
            .iter()
            .all(|e| e["id"] == "msg_1" && e["model"] == "claude-x-2025"));
        assert_eq!(ev[1]["choices"][0]["delta"]["content"], "he");
        assert_eq!(ev[3]["choices"][0]["finish_reason"], "length");
        assert_eq!(
            ev[4]["usage"],
            json!({"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7})
        );
    }

    #[test]
    fn error_events_and_early_ends_are_errors() {
        let mut t = StreamTransform::new(ctx(false));
        let mut out = BytesMut::new();
        let err = t
            .feed(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n", &mut out)
            .expect_err("error event");
        assert!(
            matches!(err, TranslateError::StreamError { ref kind, .. } if kind == "overloaded_error")
        );
        let mut t = StreamTransform::new(ctx(false));
        t.feed(&STREAM.as_bytes()[..300], &mut out).expect("feed");
        assert_eq!(
            t.finish(&mut out),
            Err(TranslateError::Incomplete(PROVIDER))
        );
    }
}
