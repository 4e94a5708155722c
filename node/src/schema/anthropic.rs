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

use super::chat::{self, Block, Chat, Effort, ImageSource, ToolChoice};
use super::fields::{self, Provider};
use super::reply::{
    completion, reasoning_delta, tool_call_arguments, tool_call_start, Message, ThinkingStream,
    ToolCallIndex, Usage,
};
use super::sse::SseParser;
use super::thinking;
use super::{
    chunk_event, json_content_type, parse_object, usage_event, BodyTransform, Operation,
    RequestCtx, ResponseCtx, TranslateError, Translator, UpstreamRequest, SSE_DONE,
};

const PROVIDER: &str = "anthropic";

/// `anthropic-version` sent on every request.
pub const API_VERSION: &str = "2023-06-01";

/// `max_tokens` when the client gives none (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Anthropic Messages translator.
#[derive(Debug, Clone, Copy)]
pub struct Anthropic;

/// Thinking budget for a `reasoning_effort` (Anthropic "Extended thinking": at least 1024 tokens, and
/// below `max_tokens`).
pub fn thinking_budget(effort: Effort) -> u64 {
    match effort {
        Effort::Low => 1024,
        Effort::Medium => 4096,
        Effort::High => 16384,
        Effort::XHigh => 32768,
    }
}

/// Smallest thinking budget Anthropic accepts.
const MIN_THINKING_BUDGET: u64 = 1024;

/// OpenAI chat body → Messages body: every field translated, safely ignored or refused
/// ([`super::fields`]).
pub fn request_body(
    body: &Map<String, Value>,
    model: &str,
    stream: bool,
) -> Result<Value, TranslateError> {
    fields::check(body, Provider::Anthropic)?;
    messages_request(&chat::parse(body, Provider::Anthropic)?, model, stream)
}

/// One content block in the Messages spelling.
fn block(b: &Block) -> Value {
    match b {
        Block::Text(t) => json!({"type": "text", "text": t}),
        Block::Image {
            source: ImageSource::Base64 { media_type, data },
            ..
        } => {
            json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
        }
        Block::Image {
            source: ImageSource::Url(url),
            ..
        } => json!({"type": "image", "source": {"type": "url", "url": url}}),
        Block::ToolUse {
            id, name, input, ..
        } => {
            json!({"type": "tool_use", "id": id, "name": name, "input": input})
        }
        Block::ToolResult { id, text } => {
            json!({"type": "tool_result", "tool_use_id": id, "content": text})
        }
        Block::Thinking { text, signature } => {
            json!({"type": "thinking", "thinking": text, "signature": signature})
        }
        Block::RedactedThinking { data } => json!({"type": "redacted_thinking", "data": data}),
    }
}

/// The Messages request for a neutral chat.
pub fn messages_request(chat: &Chat, model: &str, stream: bool) -> Result<Value, TranslateError> {
    if chat.turns.is_empty() {
        return Err(TranslateError::BadRequest(
            "Messages needs at least one user or assistant message".into(),
        ));
    }
    let thinks = chat.reasoning_effort.is_some()
        && thinking::claude_tool_choice_allows_thinking(chat)
        && thinking::claude_may_think(chat);
    let messages: Vec<Value> = chat
        .turns
        .iter()
        .map(|t| {
            // A turn of one text block keeps the plain string form.
            let content = match t.blocks.as_slice() {
                [Block::Text(text)] => Value::String(text.clone()),
                blocks => Value::Array(
                    blocks
                        .iter()
                        .filter(|b| thinking::claude_sends(b, thinks))
                        .map(block)
                        .collect(),
                ),
            };
            json!({"role": t.role.as_str(), "content": content})
        })
        .collect();
    // OpenAI's max_completion_tokens counts reasoning tokens too, as Anthropic's max_tokens does with
    // thinking; so the thinking budget fits under the client's cap, or the answer's own default.
    let effort = chat.reasoning_effort.filter(|_| thinks);
    let (max_tokens, thinking) = match (effort, chat.max_tokens) {
        (None, m) => (m.unwrap_or(DEFAULT_MAX_TOKENS), None),
        (Some(e), None) => (DEFAULT_MAX_TOKENS + thinking_budget(e), Some(thinking_budget(e))),
        (Some(_), Some(m)) if m <= MIN_THINKING_BUDGET => {
            return Err(TranslateError::Unsupported(format!(
                "reasoning_effort with max_completion_tokens {m}: not supported by Anthropic (thinking needs a budget of at least {MIN_THINKING_BUDGET} tokens below max_tokens)"
            )))
        }
        (Some(e), Some(m)) => (m, Some(thinking_budget(e).min(m - 1))),
    };
    let mut out = json!({"model": model, "messages": messages, "max_tokens": max_tokens});
    if !chat.system.is_empty() {
        out["system"] = Value::from(chat.system.join("\n\n"));
    }
    if let Some(budget) = thinking {
        out["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
    }
    if let Some(t) = &chat.temperature {
        out["temperature"] = t.clone();
    }
    if let Some(p) = &chat.top_p {
        out["top_p"] = p.clone();
    }
    if let Some(stop) = &chat.stop {
        out["stop_sequences"] = stop.clone().into();
    }
    if !chat.tools.is_empty() {
        out["tools"] = chat
            .tools
            .iter()
            .map(|t| {
                let mut tool = json!({"name": t.name, "input_schema": t.parameters});
                if let Some(d) = &t.description {
                    tool["description"] = d.clone().into();
                }
                if let Some(s) = t.strict {
                    tool["strict"] = s.into();
                }
                tool
            })
            .collect();
        let mut choice = match &chat.tool_choice {
            ToolChoice::Unset | ToolChoice::Auto => json!({"type": "auto"}),
            ToolChoice::None => json!({"type": "none"}),
            ToolChoice::Required => json!({"type": "any"}),
            ToolChoice::Named(name) => json!({"type": "tool", "name": name}),
        };
        let serial = chat.parallel_tool_calls == Some(false);
        if serial && chat.tool_choice != ToolChoice::None {
            choice["disable_parallel_tool_use"] = true.into();
        }
        if chat.tool_choice != ToolChoice::Unset || serial {
            out["tool_choice"] = choice;
        }
    }
    if let Some(f) = &chat.response_format {
        out["output_config"] = json!({"format": {"type": "json_schema", "schema": f.schema}});
    }
    if let Some(u) = &chat.user {
        out["metadata"] = json!({"user_id": u});
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
        "model_context_window_exceeded" => "length",
        _ => "stop",
    }
}

fn bad(detail: impl Into<String>) -> TranslateError {
    TranslateError::BadUpstream {
        provider: PROVIDER,
        detail: detail.into(),
    }
}

fn usage_of(v: &Value) -> Usage {
    let n = |k: &str| v.get(k).and_then(Value::as_u64);
    Usage {
        input: n("input_tokens").unwrap_or(0),
        output: n("output_tokens").unwrap_or(0),
        cache_read: n("cache_read_input_tokens"),
        cache_write: n("cache_creation_input_tokens"),
    }
}

/// Messages answer → `chat.completion` (its id and model are kept; text, tool calls, thinking).
pub fn response_body(ctx: &ResponseCtx, body: &[u8]) -> Result<Bytes, TranslateError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let content = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no content"))?;
    let mut msg = Message::default();
    for c in content {
        let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default();
        match field("type") {
            "text" => msg.text.push_str(field("text")),
            "tool_use" => msg.push_tool_call(
                field("id"),
                field("name"),
                c.get("input").unwrap_or(&Value::Null),
            ),
            "thinking" => {
                msg.reasoning.push_str(field("thinking"));
                msg.push_thinking(field("thinking"), field("signature"));
            }
            "redacted_thinking" => msg.push_redacted(field("data")),
            // Server-side blocks carry nothing an OpenAI client can read.
            _ => {}
        }
    }
    let id = v.get("id").and_then(Value::as_str).unwrap_or(&ctx.id);
    let model = v.get("model").and_then(Value::as_str).unwrap_or(&ctx.model);
    let stop = v
        .get("stop_reason")
        .and_then(Value::as_str)
        .unwrap_or("end_turn");
    let usage = usage_of(v.get("usage").unwrap_or(&Value::Null));
    Ok(completion(
        ctx,
        id,
        model,
        msg,
        finish_reason(stop),
        usage.to_openai(),
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
    super::nested_error(status, PROVIDER, "type", body)
}

/// Messages SSE → OpenAI chunk SSE (text, tool-call and thinking deltas).
pub struct StreamTransform {
    ctx: ResponseCtx,
    parser: SseParser,
    id: String,
    model: String,
    usage: Usage,
    stopped: bool,
    tools: ToolCallIndex,
    thinking: ThinkingStream,
    /// Index of the open `thinking` content block.
    thinking_block: Option<u64>,
}

impl StreamTransform {
    /// A transform for one response.
    pub fn new(ctx: ResponseCtx) -> Self {
        StreamTransform {
            id: ctx.id.to_string(),
            model: ctx.model.to_string(),
            ctx,
            parser: SseParser::new(),
            usage: Usage::default(),
            stopped: false,
            tools: ToolCallIndex::default(),
            thinking: ThinkingStream::default(),
            thinking_block: None,
        }
    }

    fn chunk(&self, delta: Value, finish: Value) -> Bytes {
        chunk_event(&self.ctx, &self.id, &self.model, delta, finish)
    }

    /// Counts of a `usage` object: later events repeat or update what earlier ones said.
    fn absorb_usage(&mut self, u: &Value) {
        let n = |k: &str| u.get(k).and_then(Value::as_u64);
        if let Some(i) = n("input_tokens") {
            self.usage.input = i;
        }
        if let Some(o) = n("output_tokens") {
            self.usage.output = o;
        }
        if let Some(r) = n("cache_read_input_tokens") {
            self.usage.cache_read = Some(r);
        }
        if let Some(w) = n("cache_creation_input_tokens") {
            self.usage.cache_write = Some(w);
        }
    }

    fn on_event(
        &mut self,
        kind: &str,
        v: &Value,
        out: &mut BytesMut,
    ) -> Result<(), TranslateError> {
        let block = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind {
            "message_start" => {
                let msg = v.get("message").unwrap_or(&Value::Null);
                if let Some(id) = msg.get("id").and_then(Value::as_str) {
                    self.id = id.to_owned();
                }
                if let Some(m) = msg.get("model").and_then(Value::as_str) {
                    self.model = m.to_owned();
                }
                if let Some(u) = msg.get("usage") {
                    self.absorb_usage(u);
                }
                out.extend_from_slice(
                    &self.chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                );
            }
            "content_block_start" => {
                let cb = v.get("content_block").unwrap_or(&Value::Null);
                let field = |k: &str| cb.get(k).and_then(Value::as_str).unwrap_or_default();
                match field("type") {
                    "thinking" => {
                        self.thinking_block = Some(block);
                        self.thinking.text(field("thinking"));
                        self.thinking.signature(field("signature"));
                    }
                    "redacted_thinking" => {
                        let (ctx, id, model) = (&self.ctx, &self.id, &self.model);
                        self.thinking.redacted(ctx, id, model, field("data"), out);
                    }
                    _ => {}
                }
                if field("type") == "tool_use" {
                    let index = self.tools.start(block);
                    tool_call_start(
                        &self.ctx,
                        &self.id,
                        &self.model,
                        index,
                        field("id"),
                        field("name"),
                        out,
                    );
                }
            }
            "content_block_delta" => {
                let d = v.get("delta").unwrap_or(&Value::Null);
                let field = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or_default();
                match field("type") {
                    "text_delta" => {
                        out.extend_from_slice(
                            &self.chunk(json!({"content": field("text")}), Value::Null),
                        );
                    }
                    "input_json_delta" => {
                        if let Some(index) = self.tools.of(block) {
                            let (ctx, id, model) = (&self.ctx, &self.id, &self.model);
                            tool_call_arguments(ctx, id, model, index, field("partial_json"), out);
                        }
                    }
                    "thinking_delta" => {
                        reasoning_delta(&self.ctx, &self.id, &self.model, field("thinking"), out);
                        self.thinking.text(field("thinking"));
                    }
                    "signature_delta" => self.thinking.signature(field("signature")),
                    // citations: nothing an OpenAI client reads.
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(u) = v.get("usage") {
                    self.absorb_usage(u);
                }
                if let Some(stop) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    out.extend_from_slice(&self.chunk(json!({}), json!(finish_reason(stop))));
                }
            }
            "content_block_stop" if self.thinking_block == Some(block) => {
                self.thinking_block = None;
                self.thinking.close(&self.ctx, &self.id, &self.model, out);
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
            // ping, content_block_stop: nothing to say to an OpenAI client.
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
            let usage = self.usage.to_openai();
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
        if ctx.operation.is_messages() {
            return super::messages::anthropic_request(ctx, body);
        }
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
        if ctx.operation.is_messages() {
            // Anthropic's own answers and errors are what an Anthropic client expects; only a stream is
            // watched (held until content, judged at its end).
            return (status.is_success() && ctx.stream).then(|| {
                Box::new(super::messages::MessagesStream::new()) as Box<dyn BodyTransform>
            });
        }
        Some(super::translated_response(
            ctx,
            status,
            error_body,
            StreamTransform::new,
            response_body,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(include_usage: bool) -> ResponseCtx {
        ResponseCtx {
            operation: crate::schema::Operation::Chat,
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

    fn agent_body() -> Map<String, Value> {
        let Value::Object(m) = json!({
            "model": "claude-x", "user": "u1", "parallel_tool_calls": false, "max_completion_tokens": 3000,
            "reasoning_effort": "medium",
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
            "tool_choice": "auto",
            "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}},
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}]},
                {"role": "assistant", "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "s"}],
                    "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
            ],
        }) else {
            panic!()
        };
        m
    }

    #[test]
    fn tools_history_images_and_settings_map_to_messages() {
        let out = request_body(&agent_body(), "claude-x", false).expect("translate");
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": [
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}]},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
            ])
        );
        assert_eq!(
            out["tools"],
            json!([{"name": "get_weather", "input_schema": {"type": "object"}}])
        );
        assert_eq!(
            out["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        assert_eq!(
            out["thinking"],
            json!({"type": "enabled", "budget_tokens": 2999})
        );
        assert_eq!(out["max_tokens"], 3000);
        assert_eq!(out["metadata"], json!({"user_id": "u1"}));
        assert_eq!(
            out["output_config"],
            json!({"format": {"type": "json_schema", "schema": {"type": "object"}}})
        );
        for (choice, want) in [
            (
                json!("auto"),
                json!({"type": "auto", "disable_parallel_tool_use": true}),
            ),
            (
                json!("required"),
                json!({"type": "any", "disable_parallel_tool_use": true}),
            ),
            (
                json!({"type": "function", "function": {"name": "get_weather"}}),
                json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true}),
            ),
            (json!("none"), json!({"type": "none"})),
        ] {
            let mut body = agent_body();
            body.insert("tool_choice".into(), choice.clone());
            let out = request_body(&body, "m", false).expect("ok");
            assert_eq!(out["tool_choice"], want);
            // Anthropic refuses thinking with a choice that forces a tool: that request does not think.
            let forced = want["type"] == "any" || want["type"] == "tool";
            assert_eq!(out.get("thinking").is_none(), forced, "{choice}: {out}");
        }
        let mut small = agent_body();
        small.insert("max_completion_tokens".into(), json!(1000));
        let err = request_body(&small, "m", false).expect_err("budget cannot fit");
        assert!(err.to_string().contains("reasoning_effort"), "{err}");
        small.remove("max_completion_tokens");
        let out = request_body(&small, "m", false).expect("ok");
        assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS + 4096);
        let mut obj_mode = agent_body();
        obj_mode.insert("response_format".into(), json!({"type": "json_object"}));
        let err = request_body(&obj_mode, "m", false).expect_err("json_object");
        assert!(
            err.to_string().contains("'response_format'") && err.to_string().contains("Anthropic"),
            "{err}"
        );
    }

    #[test]
    fn tool_use_answers_map_to_tool_calls() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x-2025",
            "content":[{"type":"thinking","thinking":"hmm","signature":"s"},{"type":"text","text":"let me check"},
                       {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}],
            "stop_reason":"tool_use","usage":{"input_tokens":4,"output_tokens":2,"cache_read_input_tokens":8,"cache_creation_input_tokens":0}}"#;
        let v: Value =
            serde_json::from_slice(&response_body(&ctx(false), body).expect("ok")).expect("json");
        let m = &v["choices"][0]["message"];
        assert_eq!(m["content"], "let me check");
        assert_eq!(m["reasoning_content"], "hmm");
        assert_eq!(
            m["tool_calls"],
            json!([{"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}])
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(v["usage"]["prompt_tokens"], 12);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 8);
    }

    #[test]
    fn streamed_tool_calls_become_indexed_deltas() {
        let stream = [
            json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 4, "output_tokens": 1, "cache_read_input_tokens": 2}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "s"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "a", "input": {}}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"x\": 1}"}}),
            json!({"type": "content_block_stop", "index": 1}),
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "b", "input": {}}}),
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
            json!({"type": "content_block_stop", "index": 2}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
            json!({"type": "message_stop"}),
        ]
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap_or_default()))
        .collect::<String>();
        let mut t = StreamTransform::new(ctx(true));
        let mut out = BytesMut::new();
        t.feed(stream.as_bytes(), &mut out).expect("feed");
        t.finish(&mut out).expect("finish");
        let ev: Vec<Value> = String::from_utf8_lossy(&out)
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).expect("json"))
            .collect();
        let deltas: Vec<Value> = ev
            .iter()
            .filter_map(|e| e["choices"][0]["delta"].get("tool_calls").cloned())
            .collect();
        assert_eq!(
            deltas,
            vec![
                json!([{"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "a", "arguments": ""}}]),
                json!([{"index": 0, "function": {"arguments": "{\"x\": 1}"}}]),
                json!([{"index": 1, "id": "toolu_2", "type": "function", "function": {"name": "b", "arguments": ""}}]),
                json!([{"index": 1, "function": {"arguments": "{}"}}]),
            ]
        );
        assert_eq!(ev[1]["choices"][0]["delta"]["reasoning_content"], "hm");
        let finish: Vec<&Value> = ev
            .iter()
            .map(|e| &e["choices"][0]["finish_reason"])
            .filter(|f| !f.is_null())
            .collect();
        assert_eq!(finish, vec![&json!("tool_calls")]);
        let usage = &ev[ev.len() - 1]["usage"];
        assert_eq!(usage["prompt_tokens"], 6);
        assert_eq!(usage["completion_tokens"], 9);
    }
}

#[cfg(test)]
mod thinking_tests {
    use super::*;

    fn ctx() -> ResponseCtx {
        ResponseCtx {
            operation: crate::schema::Operation::Chat,
            model: "claude-x".into(),
            stream: true,
            include_usage: false,
            id: "chatcmpl-1".into(),
            created: 7,
        }
    }

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    /// A tool loop's second turn: the assistant's turn as the client sends it back, and the result.
    fn second_turn(assistant: Value) -> Map<String, Value> {
        body(json!({"model": "m", "reasoning_effort": "low",
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "messages": [{"role": "user", "content": "q"}, assistant,
                         {"role": "tool", "tool_call_id": "c1", "content": "ok"}]}))
    }

    #[test]
    fn thinking_goes_back_first_with_its_signature() {
        let out = request_body(
            &second_turn(json!({"role": "assistant", "content": "checking", "reasoning_content": "hm",
                "thinking_blocks": [{"type": "thinking", "thinking": "hm", "signature": "sig"},
                                    {"type": "redacted_thinking", "data": "RED"}],
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]})),
            "claude-x",
            false,
        )
        .expect("translate");
        assert_eq!(
            out["messages"][1]["content"],
            json!([
                {"type": "thinking", "thinking": "hm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "RED"},
                {"type": "text", "text": "checking"},
                {"type": "tool_use", "id": "c1", "name": "f", "input": {}},
            ])
        );
        assert_eq!(out["thinking"]["type"], "enabled");
    }

    #[test]
    fn history_from_another_model_turns_thinking_off_for_that_request() {
        // Turn 1 answered by the OpenAI primary: no thinking to give back. Anthropic would refuse thinking
        // with this history, so the request goes without it (and without the budget in max_tokens).
        let out = request_body(
            &second_turn(json!({"role": "assistant", "content": null,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]})),
            "claude-x",
            false,
        )
        .expect("translate");
        assert!(out.get("thinking").is_none(), "{out}");
        assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS);
        // Without reasoning_effort, thinking blocks in the history are not sent either.
        let mut b = second_turn(json!({"role": "assistant",
            "thinking_blocks": [{"type": "thinking", "thinking": "hm", "signature": "sig"}],
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}));
        b.remove("reasoning_effort");
        let out = request_body(&b, "claude-x", false).expect("translate");
        assert_eq!(
            out["messages"][1]["content"],
            json!([{"type": "tool_use", "id": "c1", "name": "f", "input": {}}])
        );
    }

    #[test]
    fn answers_carry_thinking_blocks_with_signatures() {
        let answer = br#"{"id":"msg_1","model":"claude-x","stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":2},
            "content":[{"type":"thinking","thinking":"hm","signature":"sig"},{"type":"redacted_thinking","data":"RED"},
                       {"type":"tool_use","id":"c1","name":"f","input":{}}]}"#;
        let v: Value =
            serde_json::from_slice(&response_body(&ctx(), answer).expect("ok")).expect("json");
        let m = &v["choices"][0]["message"];
        assert_eq!(m["reasoning_content"], "hm");
        assert_eq!(
            m["thinking_blocks"],
            json!([{"type": "thinking", "thinking": "hm", "signature": "sig"},
                   {"type": "redacted_thinking", "data": "RED"}])
        );
    }

    #[test]
    fn streams_carry_each_signed_block_once_with_an_index() {
        let stream = [
            json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude-x", "usage": {}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "h"}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "m"}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "redacted_thinking", "data": "RED"}}),
            json!({"type": "content_block_stop", "index": 1}),
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "hi"}}),
            json!({"type": "content_block_stop", "index": 2}),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}),
            json!({"type": "message_stop"}),
        ]
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap_or_default()))
        .collect::<String>();
        let mut t = StreamTransform::new(ctx());
        let mut out = BytesMut::new();
        t.feed(stream.as_bytes(), &mut out).expect("feed");
        t.finish(&mut out).expect("finish");
        let deltas = super::super::chunk_deltas(&out);
        let reasoning: String = deltas
            .iter()
            .filter_map(|d| d["reasoning_content"].as_str())
            .collect();
        assert_eq!(reasoning, "hm");
        let blocks: Vec<&Value> = deltas
            .iter()
            .filter_map(|d| d.get("thinking_blocks"))
            .collect();
        assert_eq!(
            blocks,
            vec![
                &json!([{"index": 0, "type": "thinking", "thinking": "hm", "signature": "sig"}]),
                &json!([{"index": 1, "type": "redacted_thinking", "data": "RED"}]),
            ]
        );
    }
}
