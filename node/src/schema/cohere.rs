//! The Cohere schema: OpenAI chat ↔ Cohere's v2 Chat API.
//!
//! Envoy AI Gateway v1.1's `Cohere` schema serves Cohere's own `/v2/rerank`; OpenAI chat clients reaching a
//! Cohere backend is Switchyard's addition (docs/translation.md). Cohere API reference ("Chat", "Streaming",
//! "Errors"): `POST /v2/chat` with `Authorization: Bearer`; messages of roles `system`, `user`, `assistant`
//! (`content`, `tool_calls`, `tool_plan`) and `tool` (`tool_call_id`, `content`); `stop_sequences`, `p`,
//! `seed`, the penalties and `response_format` (`json_object`, with an optional `json_schema`). The answer is
//! `{"id","finish_reason","message":{"content":[{"type":"text"|"thinking"}],"tool_calls","tool_plan"},
//! "usage":{"tokens":{"input_tokens","output_tokens"},"cached_tokens"}}` with upper-case finish reasons. A
//! stream is SSE whose events carry their `type`: `message-start`, `content-start`, `content-delta`,
//! `content-end`, `tool-plan-delta`, `tool-call-start`, `tool-call-delta`, `tool-call-end`, `citation-*`,
//! `debug` and, last, `message-end` with the finish reason and usage (and `error` when generation failed).
//! Errors are `{"message": …}` with the HTTP status. Cohere's own rerank API (`/cohere/v2/rerank` on the
//! gateway, `/v2/rerank` upstream) passes through untranslated, as Envoy AI Gateway serves it.

use bytes::{Bytes, BytesMut};
use http::uri::PathAndQuery;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Map, Value};

use super::anthropic::thinking_budget;
use super::chat::{self, Block, Chat, ImageSource, Role, ToolChoice};
use super::fields::{self, Provider};
use super::reply::{
    completion, reasoning_delta, tool_call_arguments, tool_call_start, Message, ToolCallIndex,
    Usage,
};
use super::sse::SseParser;
use super::{
    chunk_event, json_content_type, opaque_error, openai_error, parse_object, usage_event,
    BodyTransform, Operation, RequestCtx, ResponseCtx, TranslateError, Translator, UpstreamRequest,
    SSE_DONE,
};

const PROVIDER: &str = "cohere";

/// Cohere v2 Chat translator.
#[derive(Debug, Clone, Copy)]
pub struct Cohere;

/// OpenAI chat body → Cohere v2 Chat body: every field translated, safely ignored or refused
/// ([`super::fields`]).
pub fn request_body(
    body: &Map<String, Value>,
    model: &str,
    stream: bool,
) -> Result<Value, TranslateError> {
    fields::check(body, Provider::Cohere)?;
    let chat = chat::parse(body, Provider::Cohere)?;
    let mut out = chat_request(&chat, model, stream)?;
    // Settings the neutral form does not carry, which Cohere has under OpenAI's names.
    for key in ["seed", "frequency_penalty", "presence_penalty"] {
        if let Some(v) = body.get(key).filter(|v| !v.is_null()) {
            out[key] = v.clone();
        }
    }
    if body
        .get("response_format")
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
        == Some("json_object")
    {
        out["response_format"] = json!({"type": "json_object"});
    }
    Ok(out)
}

fn image_url(source: &ImageSource) -> String {
    match source {
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        ImageSource::Url(url) => url.clone(),
    }
}

/// The v2 Chat request for a neutral chat.
pub fn chat_request(chat: &Chat, model: &str, stream: bool) -> Result<Value, TranslateError> {
    if chat.turns.is_empty() {
        return Err(TranslateError::BadRequest(
            "Cohere chat needs at least one user or assistant message".into(),
        ));
    }
    let mut messages = Vec::new();
    if !chat.system.is_empty() {
        messages.push(json!({"role": "system", "content": chat.system.join("\n\n")}));
    }
    for turn in &chat.turns {
        match turn.role {
            Role::Assistant => {
                let mut text = String::new();
                let mut calls = Vec::new();
                for b in &turn.blocks {
                    match b {
                        Block::Text(t) => text.push_str(t),
                        // Cohere's reasoning is not signed and not replayed; another provider's is
                        // meaningless to it.
                        Block::Thinking { .. } | Block::RedactedThinking { .. } => {}
                        Block::ToolUse {
                            id, name, input, ..
                        } => calls.push(json!({
                            "id": id, "type": "function",
                            "function": {"name": name, "arguments": input.to_string()},
                        })),
                        Block::Image { at, .. } | Block::ToolResult { id: at, .. } => {
                            return Err(TranslateError::Unsupported(format!(
                                "{at}: not supported in an assistant message by Cohere"
                            )))
                        }
                    }
                }
                let mut m = json!({"role": "assistant"});
                if !text.is_empty() {
                    m["content"] = text.into();
                }
                if !calls.is_empty() {
                    m["tool_calls"] = calls.into();
                }
                messages.push(m);
            }
            Role::User => {
                // Tool results become `tool` messages, in order; the rest of the turn one user message.
                let mut parts = Vec::new();
                for b in &turn.blocks {
                    match b {
                        Block::ToolResult { id, text } => messages
                            .push(json!({"role": "tool", "tool_call_id": id, "content": text})),
                        Block::Text(t) => parts.push(json!({"type": "text", "text": t})),
                        Block::Image { source, .. } => parts.push(
                            json!({"type": "image_url", "image_url": {"url": image_url(source)}}),
                        ),
                        Block::ToolUse { .. }
                        | Block::Thinking { .. }
                        | Block::RedactedThinking { .. } => {}
                    }
                }
                match parts.as_slice() {
                    [] => {}
                    [p] if p["type"] == "text" => {
                        messages.push(json!({"role": "user", "content": p["text"]}))
                    }
                    _ => messages.push(json!({"role": "user", "content": parts})),
                }
            }
        }
    }
    let mut out = json!({"model": model, "messages": messages, "stream": stream});
    if let Some(m) = chat.max_tokens {
        out["max_tokens"] = m.into();
    }
    if let Some(t) = &chat.temperature {
        out["temperature"] = t.clone();
    }
    if let Some(p) = &chat.top_p {
        out["p"] = p.clone();
    }
    if let Some(stop) = &chat.stop {
        out["stop_sequences"] = stop.clone().into();
    }
    if let Some(e) = chat.reasoning_effort {
        out["thinking"] = json!({"type": "enabled", "token_budget": thinking_budget(e)});
    }
    if !chat.tools.is_empty() {
        out["tools"] = chat
            .tools
            .iter()
            .map(|t| {
                let mut f = json!({"name": t.name, "parameters": t.parameters});
                if let Some(d) = &t.description {
                    f["description"] = d.clone().into();
                }
                json!({"type": "function", "function": f})
            })
            .collect();
        if chat.tools.iter().any(|t| t.strict == Some(true)) {
            out["strict_tools"] = true.into();
        }
        match &chat.tool_choice {
            ToolChoice::Unset | ToolChoice::Auto => {}
            ToolChoice::None => out["tool_choice"] = "NONE".into(),
            ToolChoice::Required => out["tool_choice"] = "REQUIRED".into(),
            ToolChoice::Named(name) => {
                return Err(TranslateError::Unsupported(format!(
                    "tool_choice naming the function {name:?}: not supported by Cohere (auto, none and required are)"
                )))
            }
        }
    }
    if let Some(f) = &chat.response_format {
        out["response_format"] = json!({"type": "json_object", "json_schema": f.schema});
    }
    Ok(out)
}

/// Cohere `finish_reason` → OpenAI's.
pub fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "TOOL_CALL" => "tool_calls",
        _ => "stop",
    }
}

fn bad(detail: impl Into<String>) -> TranslateError {
    TranslateError::BadUpstream {
        provider: PROVIDER,
        detail: detail.into(),
    }
}

/// `usage`: the tokens the model saw and wrote (`billed_units` when `tokens` is missing).
fn usage_of(u: &Value) -> Usage {
    let n = |section: &str, k: &str| {
        u.get(section)
            .and_then(|s| s.get(k))
            .and_then(Value::as_u64)
    };
    let pick = |k: &str| n("tokens", k).or_else(|| n("billed_units", k)).unwrap_or(0);
    let cached = u.get("cached_tokens").and_then(Value::as_u64);
    // Cohere's input count includes the cached part; `Usage` counts it apart (and adds it back for OpenAI).
    Usage {
        input: pick("input_tokens").saturating_sub(cached.unwrap_or(0)),
        output: pick("output_tokens"),
        cache_read: cached,
        cache_write: None,
    }
}

/// A failed generation (`finish_reason` `ERROR` or `TIMEOUT`) is the attempt's failure, not an answer.
fn generation_error(reason: &str, message: Option<&str>) -> TranslateError {
    TranslateError::StreamError {
        provider: PROVIDER,
        kind: reason.to_ascii_lowercase(),
        message: message.unwrap_or("generation failed").to_owned(),
    }
}

/// v2 Chat answer → `chat.completion`.
pub fn response_body(ctx: &ResponseCtx, body: &[u8]) -> Result<Bytes, TranslateError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let message = v.get("message").ok_or_else(|| bad("no message"))?;
    let reason = v
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("COMPLETE");
    if matches!(reason, "ERROR" | "TIMEOUT") {
        return Err(generation_error(reason, None));
    }
    let mut msg = Message::default();
    for c in message
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default();
        match field("type") {
            "text" => msg.text.push_str(field("text")),
            "thinking" => msg.reasoning.push_str(field("thinking")),
            _ => {}
        }
    }
    if let Some(plan) = message.get("tool_plan").and_then(Value::as_str) {
        msg.reasoning.push_str(plan);
    }
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let s = |p: &str| call.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let input: Value = serde_json::from_str(s("/function/arguments")).unwrap_or(json!({}));
        msg.push_tool_call(s("/id"), s("/function/name"), &input);
    }
    let id = v.get("id").and_then(Value::as_str).unwrap_or(&ctx.id);
    let usage = usage_of(v.get("usage").unwrap_or(&Value::Null));
    Ok(completion(
        ctx,
        id,
        &ctx.model,
        msg,
        finish_reason(reason),
        usage.to_openai(),
    ))
}

/// Cohere error body → OpenAI error JSON.
pub fn error_body(status: u16, body: &[u8]) -> Bytes {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    match v
        .as_ref()
        .and_then(|v| v.get("message"))
        .and_then(Value::as_str)
    {
        Some(m) => Bytes::from(openai_error(status, m, None).to_string()),
        None => opaque_error(status, PROVIDER, body),
    }
}

/// v2 Chat SSE → OpenAI chunk SSE (text, thinking, tool-call deltas).
pub struct StreamTransform {
    ctx: ResponseCtx,
    parser: SseParser,
    id: String,
    model: String,
    ended: bool,
    tools: ToolCallIndex,
}

impl StreamTransform {
    /// A transform for one response.
    pub fn new(ctx: ResponseCtx) -> Self {
        StreamTransform {
            id: ctx.id.to_string(),
            model: ctx.model.to_string(),
            ctx,
            parser: SseParser::new(),
            ended: false,
            tools: ToolCallIndex::default(),
        }
    }

    fn chunk(&self, delta: Value, finish: Value) -> Bytes {
        chunk_event(&self.ctx, &self.id, &self.model, delta, finish)
    }

    fn on_event(&mut self, v: &Value, out: &mut BytesMut) -> Result<(), TranslateError> {
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        let msg = v.pointer("/delta/message").unwrap_or(&Value::Null);
        let s = |p: &str| msg.pointer(p).and_then(Value::as_str);
        match v.get("type").and_then(Value::as_str).unwrap_or_default() {
            "message-start" => {
                if let Some(id) = v.get("id").and_then(Value::as_str) {
                    self.id = id.to_owned();
                }
                out.extend_from_slice(
                    &self.chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                );
            }
            "content-delta" => {
                if let Some(text) = s("/content/text") {
                    out.extend_from_slice(&self.chunk(json!({"content": text}), Value::Null));
                } else if let Some(thought) = s("/content/thinking") {
                    reasoning_delta(&self.ctx, &self.id, &self.model, thought, out);
                }
            }
            "tool-plan-delta" => {
                if let Some(plan) = s("/tool_plan") {
                    reasoning_delta(&self.ctx, &self.id, &self.model, plan, out);
                }
            }
            "tool-call-start" => {
                let i = self.tools.start(index);
                let (ctx, id, model) = (&self.ctx, &self.id, &self.model);
                let call_id = s("/tool_calls/id").unwrap_or_default();
                let name = s("/tool_calls/function/name").unwrap_or_default();
                tool_call_start(ctx, id, model, i, call_id, name, out);
                if let Some(args) = s("/tool_calls/function/arguments").filter(|a| !a.is_empty()) {
                    tool_call_arguments(ctx, id, model, i, args, out);
                }
            }
            "tool-call-delta" => {
                if let (Some(i), Some(args)) =
                    (self.tools.of(index), s("/tool_calls/function/arguments"))
                {
                    tool_call_arguments(&self.ctx, &self.id, &self.model, i, args, out);
                }
            }
            "message-end" => {
                let delta = v.get("delta").unwrap_or(&Value::Null);
                let reason = delta
                    .get("finish_reason")
                    .and_then(Value::as_str)
                    .unwrap_or("COMPLETE");
                if matches!(reason, "ERROR" | "TIMEOUT") {
                    return Err(generation_error(
                        reason,
                        delta.get("error").and_then(Value::as_str),
                    ));
                }
                out.extend_from_slice(&self.chunk(json!({}), json!(finish_reason(reason))));
                if self.ctx.include_usage {
                    let usage = usage_of(delta.get("usage").unwrap_or(&Value::Null)).to_openai();
                    out.extend_from_slice(&usage_event(&self.ctx, &self.id, &self.model, usage));
                }
                self.ended = true;
            }
            // content-start/-end, tool-call-end, citations, debug: nothing an OpenAI client reads.
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
            self.on_event(&v, out)?;
        }
        Ok(())
    }
    fn finish(&mut self, out: &mut BytesMut) -> Result<(), TranslateError> {
        if !self.ended || self.parser.has_partial() {
            return Err(TranslateError::Incomplete(PROVIDER));
        }
        out.extend_from_slice(SSE_DONE);
        Ok(())
    }
}

impl Translator for Cohere {
    fn provider_name(&self) -> &'static str {
        PROVIDER
    }

    fn request(
        &self,
        ctx: &RequestCtx<'_>,
        body: &Bytes,
    ) -> Result<UpstreamRequest, TranslateError> {
        if ctx.operation == Operation::Rerank {
            // Cohere's own API, passed through as Envoy AI Gateway does: the path under the schema's
            // version (`v2`), the body as sent with the model overridden when the backendRef says so.
            let version = ctx.schema_version.unwrap_or("v2").trim_matches('/');
            return Ok(UpstreamRequest {
                path_and_query: super::provider_path(format!("/{version}/rerank"))?,
                body: if ctx.model_overridden {
                    super::with_model(body, ctx.model)?
                } else {
                    body.clone()
                },
                headers: vec![json_content_type()],
            });
        }
        if ctx.operation != Operation::Chat {
            return Err(TranslateError::Unsupported(format!(
                "{} is not available on Cohere backends (chat completions and rerank only)",
                ctx.path_and_query
            )));
        }
        let chat = request_body(&parse_object(body)?, ctx.model, ctx.stream)?;
        Ok(UpstreamRequest {
            path_and_query: PathAndQuery::from_static("/v2/chat"),
            body: Bytes::from(chat.to_string()),
            headers: vec![json_content_type()],
        })
    }

    fn response(
        &self,
        ctx: &ResponseCtx,
        status: StatusCode,
        _headers: &HeaderMap,
    ) -> Option<Box<dyn BodyTransform>> {
        if ctx.operation == Operation::Rerank {
            // A Cohere client reads Cohere's answers and errors as they are.
            return None;
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

    fn ctx(stream: bool, include_usage: bool) -> ResponseCtx {
        ResponseCtx {
            operation: Operation::Chat,
            model: "command-a".into(),
            stream,
            include_usage,
            id: "chatcmpl-1".into(),
            created: 7,
        }
    }

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("an object"),
        }
    }

    #[test]
    fn chat_with_tools_history_and_images_maps_to_v2_chat() {
        let got = request_body(
            &body(json!({
                "model": "m", "temperature": 0.3, "top_p": 0.9, "stop": ["END"], "seed": 7,
                "frequency_penalty": 0.5, "max_completion_tokens": 100,
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "look", "arguments": "{\"x\":1}"}}]},
                    {"role": "tool", "tool_call_id": "c1", "content": "a cat"},
                    {"role": "user", "content": "thanks"}],
                "tools": [{"type": "function", "function": {"name": "look", "description": "d",
                    "parameters": {"type": "object"}}}],
                "tool_choice": "required",
            })),
            "command-a",
            true,
        )
        .expect("translates");
        assert_eq!(
            got,
            json!({
                "model": "command-a", "stream": true, "max_tokens": 100, "temperature": 0.3, "p": 0.9,
                "stop_sequences": ["END"], "seed": 7, "frequency_penalty": 0.5,
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
                    {"role": "assistant", "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "look", "arguments": "{\"x\":1}"}}]},
                    {"role": "tool", "tool_call_id": "c1", "content": "a cat"},
                    {"role": "user", "content": "thanks"}],
                "tools": [{"type": "function", "function": {"name": "look", "description": "d",
                    "parameters": {"type": "object"}}}],
                "tool_choice": "REQUIRED",
            })
        );
    }

    #[test]
    fn what_cohere_cannot_do_is_refused_naming_it() {
        for (extra, needle) in [
            (
                json!({"tool_choice": {"type": "function", "function": {"name": "f"}}}),
                "tool_choice naming",
            ),
            (json!({"n": 2}), "'n'"),
            (
                json!({"parallel_tool_calls": false}),
                "'parallel_tool_calls'",
            ),
            (json!({"logprobs": true}), "'logprobs'"),
        ] {
            let mut b = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "function", "function": {"name": "f"}}]});
            for (k, v) in extra.as_object().expect("object") {
                b[k] = v.clone();
            }
            let e = request_body(&body(b), "m", false)
                .expect_err("refused")
                .to_string();
            assert!(e.contains(needle) && e.contains("Cohere"), "{e}");
        }
        let json_object = request_body(
            &body(
                json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                "response_format": {"type": "json_object"}}),
            ),
            "m",
            false,
        )
        .expect("json_object is Cohere's own mode");
        assert_eq!(
            json_object["response_format"],
            json!({"type": "json_object"})
        );
    }

    #[test]
    fn answer_maps_to_a_completion() {
        let out = response_body(
            &ctx(false, false),
            br#"{"id":"c-1","finish_reason":"TOOL_CALL","message":{"role":"assistant",
                "tool_plan":"I will look.","content":[{"type":"text","text":"ok"}],
                "tool_calls":[{"id":"t1","type":"function","function":{"name":"look","arguments":"{\"x\":1}"}}]},
                "usage":{"billed_units":{"input_tokens":5,"output_tokens":3},"tokens":{"input_tokens":9,"output_tokens":4},"cached_tokens":2}}"#,
        )
        .expect("translates");
        let v: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["id"], "c-1");
        assert_eq!(v["model"], "command-a");
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(v["choices"][0]["message"]["content"], "ok");
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
            "look"
        );
        assert_eq!(v["usage"]["prompt_tokens"], 9);
        assert_eq!(v["usage"]["completion_tokens"], 4);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
        let failed = response_body(
            &ctx(false, false),
            br#"{"id":"x","finish_reason":"ERROR","message":{}}"#,
        );
        assert!(
            matches!(failed, Err(TranslateError::StreamError { .. })),
            "{failed:?}"
        );
    }

    fn run(events: &[Value], include_usage: bool) -> (String, Result<(), TranslateError>) {
        let mut t = StreamTransform::new(ctx(true, include_usage));
        let mut out = BytesMut::new();
        for e in events {
            let frame = format!(
                "event: {}\ndata: {e}\n\n",
                e["type"].as_str().unwrap_or_default()
            );
            let fed = t.feed(frame.as_bytes(), &mut out);
            if fed.is_err() {
                return (String::from_utf8_lossy(&out).into_owned(), fed);
            }
        }
        let res = t.finish(&mut out);
        (String::from_utf8_lossy(&out).into_owned(), res)
    }

    #[test]
    fn stream_maps_text_tool_calls_and_usage() {
        let (out, res) = run(
            &[
                json!({"type": "message-start", "id": "s-1", "delta": {"message": {"role": "assistant"}}}),
                json!({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}}),
                json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Hel"}}}}),
                json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "lo"}}}}),
                json!({"type": "content-end", "index": 0}),
                json!({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {"id": "t1", "type": "function", "function": {"name": "look", "arguments": ""}}}}}),
                json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": "{\"x\":"}}}}}),
                json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": "1}"}}}}}),
                json!({"type": "tool-call-end", "index": 0}),
                json!({"type": "message-end", "delta": {"finish_reason": "TOOL_CALL", "usage": {"tokens": {"input_tokens": 3, "output_tokens": 2}}}}),
            ],
            true,
        );
        res.expect("clean end");
        let chunks: Vec<Value> = out
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).expect("chunk json"))
            .collect();
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Hello");
        let args: String = chunks
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(args, "{\"x\":1}");
        assert!(chunks.iter().all(|c| c["id"] == "s-1"));
        assert!(chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
        assert_eq!(
            chunks.last().expect("usage")["usage"]["completion_tokens"],
            2
        );
        assert!(out.ends_with("data: [DONE]\n\n"));
    }

    #[test]
    fn a_stream_that_fails_or_stops_early_is_not_a_clean_end() {
        let start = json!({"type": "message-start", "id": "s", "delta": {}});
        let (_, res) = run(
            &[
                start.clone(),
                json!({"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "boom"}}),
            ],
            false,
        );
        assert!(
            matches!(res, Err(TranslateError::StreamError { ref message, .. }) if message == "boom"),
            "{res:?}"
        );
        let (_, res) = run(&[start], false);
        assert_eq!(res, Err(TranslateError::Incomplete("cohere")));
    }
}
