//! The `GCPVertexAI` schema: OpenAI chat ↔ Gemini on Vertex AI (`generateContent`,
//! `streamGenerateContent?alt=sse`), Envoy AI Gateway v1.1's schema of that name.
//!
//! Vertex AI REST reference ("projects.locations.publishers.models.generateContent", "Content",
//! "GenerationConfig", "FunctionCallingConfig"): `contents` of roles `user` and `model` whose `parts` are
//! `text`, `inlineData {mimeType, data}`, `fileData {mimeType, fileUri}`, `functionCall {name, args}` and
//! `functionResponse {name, response}`; the system prompt is `systemInstruction`; tools are
//! `functionDeclarations`; `toolConfig.functionCallingConfig.mode` is `AUTO`, `ANY` or `NONE` (with
//! `allowedFunctionNames`); `generationConfig` holds `temperature`, `topP`, `maxOutputTokens`,
//! `stopSequences`, `seed`, the penalties, `responseMimeType`/`responseJsonSchema` and `thinkingConfig`;
//! JSON Schemas (tool parameters, structured output) go as JSON Schema (`parametersJsonSchema`,
//! `responseJsonSchema`), not as Vertex's own `Schema` message, whose upper-case `type` enum OpenAI
//! schemas do not use. The
//! answer is `{"candidates":[{"content":{"parts"},"finishReason"}],"usageMetadata":{"promptTokenCount",
//! "candidatesTokenCount","thoughtsTokenCount","cachedContentTokenCount"},"modelVersion","responseId"}`;
//! a stream is SSE whose every `data:` is such a response, the last one with `finishReason` and the
//! usage, and no end marker. Gemini gives tool calls no id: the answer numbers them (`call_0`, …), and a
//! later `tool` message finds its function's name by the id of the assistant call it answers.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use serde_json::{json, Map, Value};

use super::anthropic::thinking_budget;
use super::chat::{self, Block, Chat, ImageSource, Role, ToolChoice};
use super::fields::{self, Provider};
use super::gcp_anthropic::vertex_path;
use super::reply::{
    completion, reasoning_delta, tool_call_arguments, tool_call_start, Message, Usage,
};
use super::sse::SseParser;
use super::thinking;
use super::{
    chunk_event, json_content_type, parse_object, usage_event, BodyTransform, Operation,
    RequestCtx, ResponseCtx, TranslateError, Translator, UpstreamRequest, SSE_DONE,
};

const PROVIDER: &str = "gcp.vertex_ai";

/// Gemini on Vertex AI translator.
#[derive(Debug, Clone, Copy)]
pub struct Gemini;

fn bad(detail: impl Into<String>) -> TranslateError {
    TranslateError::BadUpstream {
        provider: PROVIDER,
        detail: detail.into(),
    }
}

/// OpenAI chat body → `generateContent` body: every field translated, safely ignored or refused
/// ([`super::fields`]).
pub fn request_body(body: &Map<String, Value>) -> Result<Value, TranslateError> {
    fields::check(body, Provider::Gemini)?;
    let chat = chat::parse(body, Provider::Gemini)?;
    let mut out = generate_request(&chat)?;
    let config = &mut out["generationConfig"];
    // Settings the neutral form does not carry.
    for (from, to) in [
        ("seed", "seed"),
        ("frequency_penalty", "frequencyPenalty"),
        ("presence_penalty", "presencePenalty"),
    ] {
        if let Some(v) = body.get(from).filter(|v| !v.is_null()) {
            config[to] = v.clone();
        }
    }
    if body
        .get("response_format")
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
        == Some("json_object")
    {
        config["responseMimeType"] = "application/json".into();
    }
    if config.as_object().is_some_and(Map::is_empty) {
        out.as_object_mut().map(|o| o.remove("generationConfig"));
    }
    Ok(out)
}

/// The media type of an image URL, from its extension (Gemini's `fileData` requires one).
fn url_mime(url: &str) -> Option<&'static str> {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    let ext = path.rsplit('.').next()?;
    Some(match ext {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        _ => return None,
    })
}

/// A tool result as `functionResponse.response` (a JSON object): the result itself when it is one,
/// else `{"content": text}`.
fn function_response(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "content": text }),
    }
}

/// The `generateContent` request for a neutral chat.
pub fn generate_request(chat: &Chat) -> Result<Value, TranslateError> {
    if chat.turns.is_empty() {
        return Err(TranslateError::BadRequest(
            "Gemini needs at least one user or assistant message".into(),
        ));
    }
    // Tool results name their function; OpenAI's name only the call id.
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut contents = Vec::new();
    for turn in &chat.turns {
        let mut parts = Vec::new();
        let mut first_call = true;
        for b in &turn.blocks {
            match (turn.role, b) {
                // Gemini wants its signatures back (on its calls), not its thought summaries ("Thought
                // signatures"); another provider's reasoning means nothing to it.
                (Role::Assistant, Block::Thinking { .. } | Block::RedactedThinking { .. }) => {}
                (_, Block::Text(t)) => parts.push(json!({ "text": t })),
                (Role::User, Block::Image { source, at }) => parts.push(match source {
                    ImageSource::Base64 { media_type, data } => {
                        json!({"inlineData": {"mimeType": media_type, "data": data}})
                    }
                    ImageSource::Url(url) => {
                        let mime = url_mime(url).ok_or_else(|| {
                            TranslateError::Unsupported(format!(
                                "{at}: Gemini needs an image URL's media type, and {url:?} has no image extension (send a data: URL)"
                            ))
                        })?;
                        json!({"fileData": {"mimeType": mime, "fileUri": url}})
                    }
                }),
                (
                    Role::Assistant,
                    Block::ToolUse {
                        id,
                        name,
                        input,
                        signature,
                    },
                ) => {
                    names.insert(id, name);
                    let mut part = json!({"functionCall": {"name": name, "args": input}});
                    let sig = thinking::gemini_call_signature(signature.as_deref(), first_call);
                    first_call = false;
                    if let Some(sig) = sig {
                        part["thoughtSignature"] = sig.into();
                    }
                    parts.push(part);
                }
                (Role::User, Block::ToolResult { id, text }) => {
                    let name = names.get(id.as_str()).ok_or_else(|| {
                        TranslateError::BadRequest(format!(
                            "the tool message for tool_call_id {id:?} answers no earlier assistant tool call (Gemini needs the function's name)"
                        ))
                    })?;
                    parts.push(json!({"functionResponse": {"name": name, "response": function_response(text)}}));
                }
                (role, other) => {
                    return Err(TranslateError::Unsupported(format!(
                        "{} in a {} message: not supported by Gemini",
                        match other {
                            Block::Image { at, .. } => at.as_str(),
                            Block::ToolUse { .. } => "a tool call",
                            Block::Thinking { .. } | Block::RedactedThinking { .. } => "reasoning",
                            _ => "a tool result",
                        },
                        role.as_str()
                    )))
                }
            }
        }
        if parts.is_empty() {
            continue;
        }
        let role = match turn.role {
            Role::User => "user",
            Role::Assistant => "model",
        };
        contents.push(json!({"role": role, "parts": parts}));
    }
    let mut out = json!({ "contents": contents });
    if !chat.system.is_empty() {
        out["systemInstruction"] = json!({"parts": [{"text": chat.system.join("\n\n")}]});
    }
    let mut config = Map::new();
    if let Some(t) = &chat.temperature {
        config.insert("temperature".into(), t.clone());
    }
    if let Some(p) = &chat.top_p {
        config.insert("topP".into(), p.clone());
    }
    if let Some(m) = chat.max_tokens {
        config.insert("maxOutputTokens".into(), m.into());
    }
    if let Some(stop) = &chat.stop {
        config.insert("stopSequences".into(), stop.clone().into());
    }
    if let Some(f) = &chat.response_format {
        config.insert("responseMimeType".into(), "application/json".into());
        // `responseJsonSchema` takes JSON Schema as OpenAI clients write it; `responseSchema` is Vertex's
        // own Schema message (upper-case `type` enum, no `additionalProperties` in older models), which
        // refuses an ordinary `{"type": "object"}`.
        config.insert("responseJsonSchema".into(), f.schema.clone());
    }
    if let Some(e) = chat.reasoning_effort {
        config.insert(
            "thinkingConfig".into(),
            json!({"thinkingBudget": thinking_budget(e), "includeThoughts": true}),
        );
    }
    out["generationConfig"] = Value::Object(config);
    if !chat.tools.is_empty() {
        let decls: Vec<Value> = chat
            .tools
            .iter()
            .map(|t| {
                // `parametersJsonSchema`, not `parameters`: the latter is Vertex's Schema message, whose
                // `type` is an upper-case enum, so an OpenAI tool's `{"type": "object"}` is refused.
                let mut f = json!({"name": t.name, "parametersJsonSchema": t.parameters});
                if let Some(d) = &t.description {
                    f["description"] = d.clone().into();
                }
                f
            })
            .collect();
        out["tools"] = json!([{ "functionDeclarations": decls }]);
        let calling = match &chat.tool_choice {
            ToolChoice::Unset => None,
            ToolChoice::Auto => Some(json!({"mode": "AUTO"})),
            ToolChoice::None => Some(json!({"mode": "NONE"})),
            ToolChoice::Required => Some(json!({"mode": "ANY"})),
            ToolChoice::Named(name) => Some(json!({"mode": "ANY", "allowedFunctionNames": [name]})),
        };
        if let Some(c) = calling {
            out["toolConfig"] = json!({ "functionCallingConfig": c });
        }
    }
    Ok(out)
}

/// Gemini `finishReason` → OpenAI's (a candidate that called a function finishes with `tool_calls`).
pub fn finish_reason(reason: &str, called: bool) -> &'static str {
    match reason {
        _ if called => "tool_calls",
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ => "stop",
    }
}

/// `usageMetadata` → usage: Gemini's prompt count includes the cached part, its candidates count
/// excludes the thoughts.
fn usage_of(u: &Value) -> (Usage, u64) {
    let n = |k: &str| u.get(k).and_then(Value::as_u64);
    let cached = n("cachedContentTokenCount");
    let thoughts = n("thoughtsTokenCount").unwrap_or(0);
    let usage = Usage {
        input: n("promptTokenCount")
            .unwrap_or(0)
            .saturating_sub(cached.unwrap_or(0)),
        output: n("candidatesTokenCount").unwrap_or(0) + thoughts,
        cache_read: cached,
        cache_write: None,
    };
    (usage, thoughts)
}

/// OpenAI `usage`, with `completion_tokens_details.reasoning_tokens` when the model thought.
fn openai_usage(u: &Value) -> Value {
    let (usage, thoughts) = usage_of(u);
    let mut v = usage.to_openai();
    if thoughts > 0 {
        v["completion_tokens_details"] = json!({ "reasoning_tokens": thoughts });
    }
    v
}

/// A prompt Gemini blocked (`promptFeedback.blockReason`, no candidates) is the attempt's answer: an
/// empty completion finished by the content filter, as OpenAI answers a filtered prompt.
fn parts_of(v: &Value) -> (&[Value], Option<&str>) {
    let cand = v.pointer("/candidates/0");
    let parts = cand
        .and_then(|c| c.pointer("/content/parts"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let reason = cand
        .and_then(|c| c.get("finishReason"))
        .and_then(Value::as_str)
        .or_else(|| {
            v.pointer("/promptFeedback/blockReason")
                .and_then(Value::as_str)
                .map(|_| "SAFETY")
        });
    (parts, reason)
}

/// `generateContent` answer → `chat.completion`.
pub fn response_body(ctx: &ResponseCtx, body: &[u8]) -> Result<Bytes, TranslateError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let (parts, reason) = parts_of(&v);
    let mut msg = Message::default();
    for p in parts {
        let sig = p.get("thoughtSignature").and_then(Value::as_str);
        if let Some(call) = p.get("functionCall") {
            let name = call.get("name").and_then(Value::as_str).unwrap_or_default();
            let id = call
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("call_{}", msg.tool_calls.len()));
            msg.push_tool_call(&id, name, call.get("args").unwrap_or(&json!({})));
            if let (Some(sig), Some(last)) = (sig, msg.tool_calls.last_mut()) {
                last["extra_content"] = extra_content(sig);
            }
        } else if let Some(t) = p.get("text").and_then(Value::as_str) {
            if p.get("thought").and_then(Value::as_bool) == Some(true) {
                msg.reasoning.push_str(t);
            } else {
                msg.text.push_str(t);
            }
        }
    }
    let id = v
        .get("responseId")
        .and_then(Value::as_str)
        .unwrap_or(&ctx.id);
    let model = v
        .get("modelVersion")
        .and_then(Value::as_str)
        .unwrap_or(&ctx.model);
    let finish = finish_reason(reason.unwrap_or("STOP"), !msg.tool_calls.is_empty());
    let usage = openai_usage(v.get("usageMetadata").unwrap_or(&Value::Null));
    Ok(completion(ctx, id, model, msg, finish, usage))
}

/// Where Google's own OpenAI-compatible endpoint puts a function call's signature: on the tool call, as
/// `extra_content.google.thought_signature`. Only there: Envoy AI Gateway also copies it into
/// `thinking_blocks`, but a Claude fallback would then be handed Gemini's signature as its own thinking
/// and refuse it, while a signature on the call only ever goes back to Gemini. (A text answer's signature,
/// which Gemini does not require back, is not passed on.)
fn extra_content(signature: &str) -> Value {
    json!({"google": {"thought_signature": signature}})
}

/// A Google API error (`{"error":{"code","message","status"}}`) → OpenAI error JSON.
pub fn error_body(status: u16, body: &[u8]) -> Bytes {
    super::nested_error(status, PROVIDER, "status", body)
}

/// `streamGenerateContent?alt=sse` → OpenAI chunk SSE.
pub struct StreamTransform {
    ctx: ResponseCtx,
    parser: SseParser,
    id: String,
    model: String,
    started: bool,
    /// The finish reason, once a response carried one.
    finished: Option<&'static str>,
    calls: usize,
    usage: Value,
}

impl StreamTransform {
    /// A transform for one response.
    pub fn new(ctx: ResponseCtx) -> Self {
        StreamTransform {
            id: ctx.id.to_string(),
            model: ctx.model.to_string(),
            ctx,
            parser: SseParser::new(),
            started: false,
            finished: None,
            calls: 0,
            usage: Value::Null,
        }
    }

    fn chunk(&self, delta: Value, finish: Value) -> Bytes {
        chunk_event(&self.ctx, &self.id, &self.model, delta, finish)
    }

    fn on_response(&mut self, v: &Value, out: &mut BytesMut) {
        if !self.started {
            if let Some(id) = v.get("responseId").and_then(Value::as_str) {
                self.id = id.to_owned();
            }
            if let Some(m) = v.get("modelVersion").and_then(Value::as_str) {
                self.model = m.to_owned();
            }
            out.extend_from_slice(
                &self.chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            );
            self.started = true;
        }
        let (parts, reason) = parts_of(v);
        for p in parts {
            let sig = p.get("thoughtSignature").and_then(Value::as_str);
            if let Some(call) = p.get("functionCall") {
                let i = self.calls;
                self.calls += 1;
                let name = call.get("name").and_then(Value::as_str).unwrap_or_default();
                let call_id = call
                    .get("id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("call_{i}"));
                let (ctx, id, model) = (&self.ctx, &self.id, &self.model);
                match sig {
                    None => tool_call_start(ctx, id, model, i, &call_id, name, out),
                    Some(sig) => out.extend_from_slice(&chunk_event(
                        ctx,
                        id,
                        model,
                        json!({"tool_calls": [{
                            "index": i, "id": call_id, "type": "function",
                            "function": {"name": name, "arguments": ""},
                            "extra_content": extra_content(sig),
                        }]}),
                        Value::Null,
                    )),
                }
                let args = call.get("args").unwrap_or(&json!({})).to_string();
                tool_call_arguments(ctx, id, model, i, &args, out);
            } else if let Some(t) = p.get("text").and_then(Value::as_str) {
                if p.get("thought").and_then(Value::as_bool) == Some(true) {
                    reasoning_delta(&self.ctx, &self.id, &self.model, t, out);
                } else if !t.is_empty() {
                    out.extend_from_slice(&self.chunk(json!({ "content": t }), Value::Null));
                }
            }
        }
        if let Some(u) = v.get("usageMetadata") {
            self.usage = u.clone();
        }
        if let Some(r) = reason {
            self.finished = Some(finish_reason(r, self.calls > 0));
        }
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
            let v: Value = serde_json::from_str(&e.data).map_err(|err| bad(err.to_string()))?;
            if let Some(err) = v.get("error") {
                // An error in the stream fails the attempt (retried if nothing reached the client yet).
                return Err(TranslateError::StreamError {
                    provider: PROVIDER,
                    kind: err
                        .get("status")
                        .and_then(Value::as_str)
                        .unwrap_or("error")
                        .to_owned(),
                    message: err
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("stream error")
                        .to_owned(),
                });
            }
            self.on_response(&v, out);
        }
        Ok(())
    }
    fn finish(&mut self, out: &mut BytesMut) -> Result<(), TranslateError> {
        // Gemini's stream has no end marker: the finish reason is its end; without one it broke off.
        let Some(finish) = self.finished.filter(|_| !self.parser.has_partial()) else {
            return Err(TranslateError::Incomplete(PROVIDER));
        };
        out.extend_from_slice(&self.chunk(json!({}), json!(finish)));
        if self.ctx.include_usage {
            let usage = openai_usage(&self.usage);
            out.extend_from_slice(&usage_event(&self.ctx, &self.id, &self.model, usage));
        }
        out.extend_from_slice(SSE_DONE);
        Ok(())
    }
}

impl Translator for Gemini {
    fn provider_name(&self) -> &'static str {
        PROVIDER
    }

    fn request(
        &self,
        ctx: &RequestCtx<'_>,
        body: &Bytes,
    ) -> Result<UpstreamRequest, TranslateError> {
        match ctx.operation {
            Operation::Chat => {}
            Operation::Messages | Operation::CountTokens => {
                return Err(Operation::messages_unsupported("GCPVertexAI"))
            }
            _ => {
                return Err(TranslateError::Unsupported(format!(
                    "{} is not available on GCPVertexAI backends (chat completions only)",
                    ctx.path_and_query
                )))
            }
        }
        let out = request_body(&parse_object(body)?)?;
        let (method, query) = if ctx.stream {
            ("streamGenerateContent", Some("alt=sse"))
        } else {
            ("generateContent", None)
        };
        Ok(UpstreamRequest {
            path_and_query: vertex_path(ctx.gcp, "google", ctx.model, method, query)?,
            body: Bytes::from(out.to_string()),
            headers: vec![json_content_type()],
        })
    }

    fn response(
        &self,
        ctx: &ResponseCtx,
        status: StatusCode,
        _headers: &HeaderMap,
    ) -> Option<Box<dyn BodyTransform>> {
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
    use crate::config::model::GcpLocation;
    use http::uri::PathAndQuery;

    fn ctx(stream: bool, include_usage: bool) -> ResponseCtx {
        ResponseCtx {
            operation: Operation::Chat,
            model: "gemini-2.5-flash".into(),
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
    fn chat_with_tools_history_images_and_settings_maps_to_generate_content() {
        let got = request_body(&body(json!({
            "model": "m", "temperature": 0.3, "top_p": 0.9, "stop": ["END"], "seed": 7,
            "frequency_penalty": 0.5, "presence_penalty": 0.1, "max_completion_tokens": 100,
            "reasoning_effort": "low",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.JPG?s=1"}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "look", "arguments": "{\"x\":1}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "a cat"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c2", "type": "function", "function": {"name": "size", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c2", "content": "{\"cm\": 30}"},
                {"role": "user", "content": "thanks"}],
            "tools": [{"type": "function", "function": {"name": "look", "description": "d",
                "parameters": {"type": "object"}}},
                {"type": "function", "function": {"name": "size"}}],
            "tool_choice": {"type": "function", "function": {"name": "look"}},
        })))
        .expect("translates");
        assert_eq!(
            got,
            json!({
                "contents": [
                    {"role": "user", "parts": [
                        {"text": "what is this?"},
                        {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
                        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.JPG?s=1"}}]},
                    // History from another model: Google's placeholder stands in for the signature.
                    {"role": "model", "parts": [{"functionCall": {"name": "look", "args": {"x": 1}},
                        "thoughtSignature": "c2tpcF90aG91Z2h0X3NpZ25hdHVyZV92YWxpZGF0b3I="}]},
                    {"role": "user", "parts": [{"functionResponse": {"name": "look", "response": {"content": "a cat"}}}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "size", "args": {}},
                        "thoughtSignature": "c2tpcF90aG91Z2h0X3NpZ25hdHVyZV92YWxpZGF0b3I="}]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"name": "size", "response": {"cm": 30}}},
                        {"text": "thanks"}]}],
                "systemInstruction": {"parts": [{"text": "be brief"}]},
                "generationConfig": {
                    "temperature": 0.3, "topP": 0.9, "maxOutputTokens": 100, "stopSequences": ["END"],
                    "seed": 7, "frequencyPenalty": 0.5, "presencePenalty": 0.1,
                    "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": true}},
                "tools": [{"functionDeclarations": [
                    {"name": "look", "description": "d", "parametersJsonSchema": {"type": "object"}},
                    {"name": "size", "parametersJsonSchema": {"type": "object", "properties": {}}}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["look"]}},
            })
        );
    }

    /// Found by checking translations against Vertex AI's discovery document: `parameters` and
    /// `responseSchema` are Vertex's `Schema` message, whose `type` is an upper-case enum (`OBJECT`), so
    /// every OpenAI tool (`"type": "object"`) was a 400. The JSON Schema fields take them as written.
    #[test]
    fn json_schemas_go_as_json_schema() {
        let schema = json!({"type": "object", "additionalProperties": false, "required": ["city"],
            "properties": {"city": {"type": "string", "enum": ["Paris"]}, "n": {"type": ["integer", "null"]}}});
        let got = request_body(&body(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}})))
        .expect("ok");
        let decl = &got["tools"][0]["functionDeclarations"][0];
        assert_eq!(decl["parametersJsonSchema"], schema);
        assert!(decl.get("parameters").is_none(), "{decl}");
        assert_eq!(got["generationConfig"]["responseJsonSchema"], schema);
        assert!(got["generationConfig"].get("responseSchema").is_none());
    }

    #[test]
    fn tool_choice_response_format_and_refusals() {
        let base = || {
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                              "tools": [{"type": "function", "function": {"name": "f"}}]})
        };
        for (choice, want) in [
            (json!("auto"), json!({"mode": "AUTO"})),
            (json!("none"), json!({"mode": "NONE"})),
            (json!("required"), json!({"mode": "ANY"})),
        ] {
            let mut b = base();
            b["tool_choice"] = choice;
            let got = request_body(&body(b)).expect("ok");
            assert_eq!(got["toolConfig"]["functionCallingConfig"], want);
        }
        let mut b = base();
        b["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}});
        let got = request_body(&body(b)).expect("ok");
        assert_eq!(
            got["generationConfig"],
            json!({"responseMimeType": "application/json", "responseJsonSchema": {"type": "object"}})
        );
        let mut b = base();
        b["response_format"] = json!({"type": "json_object"});
        let got = request_body(&body(b)).expect("ok");
        assert_eq!(
            got["generationConfig"],
            json!({"responseMimeType": "application/json"})
        );
        // No settings: no generationConfig at all.
        assert!(request_body(&body(base()))
            .expect("ok")
            .get("generationConfig")
            .is_none());
        for (extra, needle) in [
            (json!({"n": 2}), "'n'"),
            (
                json!({"parallel_tool_calls": false}),
                "'parallel_tool_calls'",
            ),
            (json!({"logprobs": true}), "'logprobs'"),
            (json!({"audio": {}}), "'audio'"),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y"}}]}]}),
                "no image extension",
            ),
            (
                json!({"messages": [{"role": "tool", "tool_call_id": "zz", "content": "r"}]}),
                "answers no earlier assistant tool call",
            ),
        ] {
            let mut b = base();
            for (k, v) in extra.as_object().expect("object") {
                b[k] = v.clone();
            }
            let e = request_body(&body(b)).expect_err("refused").to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn paths_and_operations() {
        let pq = PathAndQuery::from_static("/v1/chat/completions");
        let h = HeaderMap::new();
        let body =
            Bytes::from_static(br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
        let mut rc = RequestCtx {
            operation: Operation::Chat,
            path_and_query: &pq,
            model: "gemini-2.5-flash",
            model_overridden: false,
            stream: false,
            schema_version: None,
            client_headers: &h,
            gcp: Some(GcpLocation {
                project: "p",
                region: "us-central1",
            }),
        };
        let base = "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash";
        let r = Gemini.request(&rc, &body).expect("ok");
        assert_eq!(r.path_and_query.as_str(), format!("{base}:generateContent"));
        rc.stream = true;
        let r = Gemini.request(&rc, &body).expect("ok");
        assert_eq!(
            r.path_and_query.as_str(),
            format!("{base}:streamGenerateContent?alt=sse")
        );
        rc.operation = Operation::Messages;
        let e = Gemini
            .request(&rc, &body)
            .expect_err("no Messages")
            .to_string();
        assert!(e.contains("GCPVertexAI"), "{e}");
        rc.operation = Operation::Embeddings;
        assert!(Gemini.request(&rc, &body).is_err());
    }

    #[test]
    fn answers_map_back_with_usage_reasoning_and_tool_calls() {
        let answer = json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "thinking...", "thought": true},
                {"text": "hello"},
                {"functionCall": {"name": "look", "args": {"x": 1}}}]},
                "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 4,
                "thoughtsTokenCount": 3, "cachedContentTokenCount": 6, "totalTokenCount": 17},
            "modelVersion": "gemini-2.5-flash-001", "responseId": "resp-1"});
        let v: Value = serde_json::from_slice(
            &response_body(&ctx(false, false), answer.to_string().as_bytes()).expect("ok"),
        )
        .expect("json");
        assert_eq!(v["id"], "resp-1");
        assert_eq!(v["model"], "gemini-2.5-flash-001");
        let m = &v["choices"][0]["message"];
        assert_eq!(m["content"], "hello");
        assert_eq!(m["reasoning_content"], "thinking...");
        assert_eq!(m["tool_calls"][0]["id"], "call_0");
        assert_eq!(m["tool_calls"][0]["function"]["arguments"], "{\"x\":1}");
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            v["usage"],
            json!({"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17,
                   "prompt_tokens_details": {"cached_tokens": 6, "cache_creation_tokens": 0},
                   "completion_tokens_details": {"reasoning_tokens": 3}})
        );
        for (reason, want) in [
            ("MAX_TOKENS", "length"),
            ("SAFETY", "content_filter"),
            ("OTHER", "stop"),
        ] {
            assert_eq!(finish_reason(reason, false), want);
        }
        // A blocked prompt: an empty answer finished by the content filter.
        let blocked = br#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":3}}"#;
        let v: Value =
            serde_json::from_slice(&response_body(&ctx(false, false), blocked).expect("ok"))
                .expect("json");
        assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
        // Google errors keep their message and status.
        let e: Value = serde_json::from_slice(&error_body(
            429,
            br#"{"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED"}}"#,
        ))
        .expect("json");
        assert_eq!(e["error"]["message"], "Resource exhausted");
        assert_eq!(e["error"]["code"], "RESOURCE_EXHAUSTED");
    }

    fn run_stream(events: &[Value], include_usage: bool) -> Result<String, TranslateError> {
        let mut t = StreamTransform::new(ctx(true, include_usage));
        let mut out = BytesMut::new();
        for e in events {
            t.feed(format!("data: {e}\r\n\r\n").as_bytes(), &mut out)?;
        }
        t.finish(&mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn streams_map_to_chunks_and_need_a_finish_reason() {
        let events = [
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "hm", "thought": true}]}}], "responseId": "r1"}),
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "hel"}]}}]}),
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "lo"}]}}]}),
            json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}]},
                   "finishReason": "STOP"}],
                   "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7}}),
        ];
        let text = run_stream(&events, true).expect("ok");
        let chunks: Vec<Value> = text
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).expect("json"))
            .collect();
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        assert!(chunks.iter().all(|c| c["id"] == "r1"), "{text}");
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let content: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(content, "hello");
        assert!(text.contains("\"reasoning_content\":\"hm\""), "{text}");
        assert!(
            text.contains("\"name\":\"f\"") && text.contains("{\\\"a\\\":1}"),
            "{text}"
        );
        let finish: Vec<&Value> = chunks
            .iter()
            .map(|c| &c["choices"][0]["finish_reason"])
            .filter(|f| !f.is_null())
            .collect();
        assert_eq!(finish, [&json!("tool_calls")]);
        let usage = chunks.last().expect("usage")["usage"].clone();
        assert_eq!(usage["prompt_tokens"], 5);
        assert_eq!(usage["completion_tokens"], 2);
        // Broken off before a finish reason: the attempt failed.
        assert!(matches!(
            run_stream(&events[..2], false),
            Err(TranslateError::Incomplete(_))
        ));
        // An error event fails it too.
        let err = run_stream(
            &[json!({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}})],
            false,
        )
        .expect_err("error");
        assert!(err.to_string().contains("overloaded"), "{err}");
    }
}

#[cfg(test)]
mod thinking_tests {
    use super::*;

    fn ctx() -> ResponseCtx {
        ResponseCtx {
            operation: crate::schema::Operation::Chat,
            model: "gemini-3-pro".into(),
            stream: true,
            include_usage: false,
            id: "chatcmpl-1".into(),
            created: 7,
        }
    }

    #[test]
    fn signatures_go_back_on_their_function_calls() {
        let Value::Object(body) = json!({"model": "m", "reasoning_effort": "low",
        "tools": [{"type": "function", "function": {"name": "a"}}, {"type": "function", "function": {"name": "b"}}],
        "messages": [
            {"role": "user", "content": "q"},
            // Google's convention: on each call.
            {"role": "assistant", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "a", "arguments": "{}"},
                 "extra_content": {"google": {"thought_signature": "c2ln"}}},
                {"id": "c2", "type": "function", "function": {"name": "b", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "1"},
            {"role": "tool", "tool_call_id": "c2", "content": "2"},
            // In thinking_blocks only (Envoy AI Gateway's place, or another provider's reasoning): not
            // trusted as Gemini's, so Google's placeholder.
            {"role": "assistant", "reasoning_content": "hm",
             "thinking_blocks": [{"index": 0, "type": "thinking", "thinking": "hm", "signature": "dGI="}],
             "tool_calls": [{"id": "c3", "type": "function", "function": {"name": "a", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c3", "content": "3"},
            // An answer without calls: reasoning is not sent back.
            {"role": "assistant", "content": "done",
             "thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "dGV4dA=="}]},
            {"role": "user", "content": "more"},
        ]}) else {
            panic!()
        };
        let out = request_body(&body).expect("translate");
        let model_parts: Vec<&Value> = out["contents"]
            .as_array()
            .expect("contents")
            .iter()
            .filter(|c| c["role"] == "model")
            .map(|c| &c["parts"])
            .collect();
        assert_eq!(
            model_parts,
            vec![
                &json!([{"functionCall": {"name": "a", "args": {}}, "thoughtSignature": "c2ln"},
                        {"functionCall": {"name": "b", "args": {}}}]),
                &json!([{"functionCall": {"name": "a", "args": {}},
                         "thoughtSignature": "c2tpcF90aG91Z2h0X3NpZ25hdHVyZV92YWxpZGF0b3I="}]),
                &json!([{"text": "done"}]),
            ]
        );
    }

    #[test]
    fn answers_and_streams_give_signatures_on_their_calls_only() {
        let answer = json!({"candidates": [{"content": {"role": "model", "parts": [
            {"text": "hm", "thought": true},
            {"functionCall": {"name": "a", "args": {}}, "thoughtSignature": "c2ln"},
            {"functionCall": {"name": "b", "args": {}}}]}, "finishReason": "STOP"}]});
        let v: Value = serde_json::from_slice(
            &response_body(&ctx(), answer.to_string().as_bytes()).expect("ok"),
        )
        .expect("json");
        let m = &v["choices"][0]["message"];
        assert_eq!(
            m["tool_calls"][0]["extra_content"],
            json!({"google": {"thought_signature": "c2ln"}})
        );
        assert!(m["tool_calls"][1].get("extra_content").is_none(), "{m}");
        assert_eq!(m["reasoning_content"], "hm");
        assert!(m.get("thinking_blocks").is_none(), "{m}");
        let stream = format!("data: {answer}\n\n");
        let mut t = StreamTransform::new(ctx());
        let mut out = BytesMut::new();
        t.feed(stream.as_bytes(), &mut out).expect("feed");
        t.finish(&mut out).expect("finish");
        let deltas = super::super::chunk_deltas(&out);
        let starts: Vec<&Value> = deltas
            .iter()
            .filter_map(|d| d.pointer("/tool_calls/0"))
            .filter(|c| c.get("id").is_some())
            .collect();
        assert_eq!(
            starts[0]["extra_content"],
            json!({"google": {"thought_signature": "c2ln"}})
        );
        assert!(starts[1].get("extra_content").is_none());
        assert!(deltas.iter().all(|d| d.get("thinking_blocks").is_none()));
    }
}
