//! The Anthropic Messages wire format of the mock provider (`POST /v1/messages`).
//!
//! Follows the Anthropic API reference: `x-api-key` and `anthropic-version` are required (401
//! `authentication_error` / 400 `invalid_request_error` otherwise), `max_tokens` is required, the system
//! prompt is the top-level `system`, and a stream is SSE with `message_start`, `content_block_start`,
//! `ping`, `content_block_delta`, `content_block_stop`, `message_delta`, `message_stop`. Errors are
//! `{"type":"error","error":{"type","message"}}`.
//!
//! Thinking is held to Anthropic's rules, as Claude on Bedrock (InvokeModel) and on Vertex (rawPredict)
//! hold it too (they share [`check_messages`]): the mock signs each thinking block it answers with (an HMAC
//! of the thinking text, so it can tell its own signatures), refuses a thinking block whose signature it
//! did not issue, and, with thinking enabled, refuses a final assistant tool-use turn that does not start
//! with its thinking — each with Anthropic's own 400 message.

use base64::Engine;
use bytes::Bytes;
use hyper::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use super::agent;
use super::openai::{split_pieces, tokens_of_text, Ctx, Reply};

/// What a checked content block contributes.
enum Block {
    /// Text (prompt).
    Text(String),
    /// A tool result's text.
    Result(String),
}

/// Checks one content block as the Messages API would (types allowed per role, required fields).
fn check_block(role: &str, b: &Value) -> Result<Option<Block>, String> {
    let field = |k: &str| b.get(k).and_then(Value::as_str);
    match (role, field("type")) {
        (_, Some("text")) => match field("text") {
            Some("") => Err("text content blocks must be non-empty".into()),
            Some(t) => Ok(Some(Block::Text(t.to_owned()))),
            None => Err("text: Field required".into()),
        },
        ("user", Some("image")) => {
            let src = b.get("source").ok_or("source: Field required")?;
            match src.get("type").and_then(Value::as_str) {
                Some("base64")
                    if matches!(
                        src.get("media_type").and_then(Value::as_str),
                        Some("image/png" | "image/jpeg" | "image/gif" | "image/webp")
                    ) && src.get("data").is_some_and(Value::is_string) =>
                {
                    Ok(None)
                }
                Some("url") if src.get("url").is_some_and(Value::is_string) => Ok(None),
                _ => Err("source: invalid image source".into()),
            }
        }
        ("assistant", Some("tool_use")) => {
            if field("id").is_some()
                && field("name").is_some()
                && b.get("input").is_some_and(Value::is_object)
            {
                Ok(None)
            } else {
                Err("tool_use: id, name and an input object are required".into())
            }
        }
        ("assistant", Some("thinking")) => match (field("thinking"), field("signature")) {
            (Some(t), Some(sig)) if sig == signature(t) => Ok(None),
            (Some(_), Some(_)) => Err("Invalid `signature` in `thinking` block".into()),
            _ => Err("thinking: thinking and signature are required".into()),
        },
        ("assistant", Some("redacted_thinking")) if field("data").is_some() => Ok(None),
        ("user", Some("tool_result")) => {
            if field("tool_use_id").is_none() {
                return Err("tool_use_id: Field required".into());
            }
            // A string, or a list of text blocks.
            let text = match b.get("content") {
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect(),
                _ => field("content").unwrap_or_default().to_owned(),
            };
            Ok(Some(Block::Result(text)))
        }
        (_, kind) => Err(format!(
            "unexpected block type {kind:?} in a {role} message"
        )),
    }
}

/// The key the mock signs its thinking with (a test constant: the signatures only have to be the mock's).
const SIGNING_KEY: &[u8] = b"switchyard-mock-thinking";

/// The signature the mock gives a thinking block: base64 of an HMAC-SHA256 of its text, so a block sent
/// back verifies only if it is the mock's own, unaltered.
pub fn signature(thinking: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SIGNING_KEY);
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, thinking.as_bytes()))
}

/// Anthropic's 400 for a thinking-enabled request whose final assistant turn made tool calls without
/// its thinking first (message `i`, its first block of type `found`).
fn missing_thinking(i: usize, found: &str) -> String {
    format!(
        "messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{found}`. When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
    )
}

/// With thinking enabled, the final assistant message, when it made tool calls, must start with a
/// thinking or redacted_thinking block.
fn check_final_thinking(messages: &[Value]) -> Result<(), String> {
    let Some((i, m)) = messages
        .iter()
        .enumerate()
        .rev()
        .find(|(_, m)| m.get("role").and_then(Value::as_str) == Some("assistant"))
    else {
        return Ok(());
    };
    let blocks: &[Value] = match m.get("content") {
        Some(Value::Array(b)) => b,
        _ => &[],
    };
    let kind = |b: &Value| {
        b.get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    if !blocks.iter().any(|b| kind(b) == "tool_use") {
        return Ok(());
    }
    match blocks.first().map(kind).as_deref() {
        Some("thinking" | "redacted_thinking") => Ok(()),
        other => Err(missing_thinking(i, other.unwrap_or("text"))),
    }
}

/// The path of the Messages API.
pub const PATH: &str = "/v1/messages";

/// Anthropic's error `type` for a status.
pub fn error_type_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 405 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 | 503 => "overloaded_error",
        _ => "api_error",
    }
}

/// An Anthropic error reply.
pub fn error_reply(status: StatusCode, message: &str) -> Reply {
    let body =
        json!({"type": "error", "error": {"type": error_type_for(status), "message": message}});
    Reply::json(status, &body)
}

fn sse(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// The path of Anthropic's token counting.
pub const COUNT_PATH: &str = "/v1/messages/count_tokens";

/// A Messages request, checked: what the answer depends on.
pub struct Checked {
    /// The prompt's text (token count).
    pub prompt: String,
    /// Tool results of the latest user turn.
    pub results: Vec<String>,
    /// Declared tools (name, input schema).
    pub tools: Vec<(String, Value)>,
    /// `thinking` was enabled (with a budget of at least 1024 tokens, below `max_tokens`).
    pub thinking: bool,
}

fn bad(message: impl Into<String>) -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, message.into())
}

/// Checks a Messages body as the API would: messages, system (a string or text blocks, `cache_control`
/// allowed), tools, `thinking` (budget ≥ 1024 and below `max_tokens`). `need_max_tokens`: Messages
/// requires it, count_tokens does not.
pub fn check_messages(req: &Value, need_max_tokens: bool) -> Result<Checked, (StatusCode, String)> {
    let max_tokens = req.get("max_tokens").and_then(Value::as_u64);
    if need_max_tokens && max_tokens.is_none() {
        return Err(bad("max_tokens: Field required"));
    }
    let Some(messages) = req
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
    else {
        return Err(bad("messages: at least one message is required"));
    };
    let mut prompt = String::new();
    match req.get("system") {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(blocks)) => {
            for (i, b) in blocks.iter().enumerate() {
                match (
                    b.get("type").and_then(Value::as_str),
                    b.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(t)) => prompt.push_str(t),
                    _ => return Err(bad(format!("system.{i}: a text block is required"))),
                }
                check_cache_control(b).map_err(|e| bad(format!("system.{i}.{e}")))?;
            }
        }
        Some(_) => return Err(bad("system: a string or a list of text blocks")),
    }
    let mut results = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        // Tool results count only in the latest user turn.
        results.clear();
        match (m.get("role").and_then(Value::as_str), m.get("content")) {
            (Some("user" | "assistant"), Some(Value::String(t))) => prompt.push_str(t),
            (Some(role @ ("user" | "assistant")), Some(Value::Array(blocks))) => {
                for (j, b) in blocks.iter().enumerate() {
                    check_cache_control(b)
                        .map_err(|e| bad(format!("messages.{i}.content.{j}.{e}")))?;
                    match check_block(role, b) {
                        Ok(Some(Block::Text(t))) => prompt.push_str(&t),
                        Ok(Some(Block::Result(t))) => results.push(t),
                        Ok(None) => {}
                        Err(why) => return Err(bad(format!("messages.{i}.content.{j}: {why}"))),
                    }
                }
            }
            (Some("system"), _) => {
                return Err(bad(
                    "messages: Unexpected role \"system\". Use the top-level system parameter",
                ))
            }
            _ => return Err(bad("messages: invalid message")),
        }
    }
    let mut tools = Vec::new();
    for (i, t) in req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        check_cache_control(t).map_err(|e| bad(format!("tools.{i}.{e}")))?;
        match (t.get("name").and_then(Value::as_str), t.get("input_schema")) {
            (Some(name), Some(schema))
                if schema.get("type").and_then(Value::as_str) == Some("object") =>
            {
                tools.push((name.to_owned(), schema.clone()))
            }
            _ => {
                return Err(bad(
                    "tools: each tool needs a name and an input_schema of type object",
                ))
            }
        }
    }
    let thinking = match req.get("thinking") {
        None => false,
        Some(t) => match t.get("type").and_then(Value::as_str) {
            Some("disabled") => false,
            Some("enabled") => {
                let budget = t.get("budget_tokens").and_then(Value::as_u64).unwrap_or(0);
                if budget < 1024 {
                    return Err(bad("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"));
                }
                if max_tokens.is_some_and(|m| budget >= m) {
                    return Err(bad(
                        "`max_tokens` must be greater than `thinking.budget_tokens`",
                    ));
                }
                true
            }
            _ => return Err(bad("thinking: type must be enabled or disabled")),
        },
    };
    if thinking {
        if matches!(
            req.pointer("/tool_choice/type").and_then(Value::as_str),
            Some("any" | "tool")
        ) {
            return Err(bad(
                "Thinking may not be enabled when tool_choice forces tool use.",
            ));
        }
        check_final_thinking(messages).map_err(bad)?;
    }
    Ok(Checked {
        prompt,
        results,
        tools,
        thinking,
    })
}

/// `cache_control` on a block, when present, is `{"type":"ephemeral"}` (optionally with a `ttl`).
fn check_cache_control(b: &Value) -> Result<(), String> {
    match b.get("cache_control") {
        None => Ok(()),
        Some(c) if c.get("type").and_then(Value::as_str) == Some("ephemeral") => Ok(()),
        Some(_) => Err("cache_control: type must be ephemeral".into()),
    }
}

/// The answer to a checked request: the whole message, and the same as stream events.
pub struct Answer {
    /// The non-streamed message.
    pub message: Value,
    /// The streamed events, in order.
    pub events: Vec<Value>,
}

/// What the mock answers `c` with (as `model`): text or tool calls, with a thinking block first when
/// thinking was enabled; cached-input counts when the request marked anything for caching.
pub fn answer(c: &Checked, model: &str, cached: bool, ctx: &Ctx<'_>) -> Answer {
    let (text, calls) = match agent::decide(&c.tools, &c.results, ctx, "toolu_") {
        agent::Turn::Text(t) => (t, Vec::new()),
        agent::Turn::Calls(calls) => (String::new(), calls),
    };
    let stop = if calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    let thought = "Let me think about that.";
    let (input, output) = (
        tokens_of_text(&c.prompt),
        tokens_of_text(&text) + 5 * calls.len() as u64 + if c.thinking { 6 } else { 0 },
    );
    let mut usage = json!({"input_tokens": input, "output_tokens": output});
    if cached {
        usage["cache_read_input_tokens"] = json!(input);
        usage["cache_creation_input_tokens"] = json!(0);
    }
    let id = format!("msg_mock_{}_{}", ctx.name, ctx.seq);
    let mut content = Vec::new();
    // Distinct per answer, as a model's thinking is, so a signature cannot be replayed onto another.
    let thought = format!("{thought} ({} #{})", ctx.name, ctx.seq);
    let sig = signature(&thought);
    if c.thinking {
        content.push(json!({"type": "thinking", "thinking": thought, "signature": sig}));
    }
    if calls.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in &calls {
        content.push(
            json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}),
        );
    }
    let message = json!({
        "id": id, "type": "message", "role": "assistant", "model": model,
        "content": content,
        "stop_reason": stop, "stop_sequence": null,
        "usage": usage,
    });
    let mut start_usage = usage.clone();
    start_usage["output_tokens"] = json!(1);
    let mut events = vec![json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": start_usage}})];
    let mut index = 0;
    if c.thinking {
        events.extend([
            json!({"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
            json!({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": thought}}),
            json!({"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": sig}}),
            json!({"type": "content_block_stop", "index": index}),
        ]);
        index += 1;
    }
    if calls.is_empty() {
        events.push(json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}));
        events.push(json!({"type": "ping"}));
        for piece in split_pieces(&text, ctx.content_chunks) {
            events.push(json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}));
        }
        events.push(json!({"type": "content_block_stop", "index": index}));
    }
    for call in &calls {
        events.push(json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}}));
        for part in call.fragments() {
            events.push(json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": part}}));
        }
        events.push(json!({"type": "content_block_stop", "index": index}));
        index += 1;
    }
    events.push(json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": output}}));
    events.push(json!({"type": "message_stop"}));
    Answer { message, events }
}

/// Whether the request marks anything for prompt caching.
pub fn uses_cache(req: &Value) -> bool {
    req.to_string().contains("\"cache_control\"")
}

/// Answers `POST /v1/messages` and `POST /v1/messages/count_tokens`.
pub fn handle(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    ctx: &Ctx<'_>,
) -> Reply {
    if method != Method::POST {
        return error_reply(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    if headers.get("x-api-key").is_none_or(|v| v.is_empty()) {
        return error_reply(StatusCode::UNAUTHORIZED, "x-api-key header is required");
    }
    if headers.get("anthropic-version").is_none() {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "anthropic-version header is required",
        );
    }
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return error_reply(StatusCode::BAD_REQUEST, &format!("malformed JSON: {e}")),
    };
    let Some(model) = req.get("model").and_then(Value::as_str) else {
        return error_reply(StatusCode::BAD_REQUEST, "model: Field required");
    };
    let counting = path.split('?').next() == Some(COUNT_PATH);
    let checked = match check_messages(&req, !counting) {
        Ok(c) => c,
        Err((status, why)) => return error_reply(status, &why),
    };
    if counting {
        return Reply::json(
            StatusCode::OK,
            &json!({"input_tokens": tokens_of_text(&checked.prompt)}),
        );
    }
    let a = answer(&checked, &format!("{model}-mock"), uses_cache(&req), ctx);
    if !req.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        return Reply::json(StatusCode::OK, &a.message);
    }
    Reply::Stream {
        content_type: "text/event-stream",
        chunks: a
            .events
            .iter()
            .map(|e| sse(e["type"].as_str().unwrap_or_default(), e))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(assistant: Value) -> Value {
        json!({"max_tokens": 3000, "thinking": {"type": "enabled", "budget_tokens": 1024},
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": "q"}, assistant,
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]}]})
    }

    #[test]
    fn thinking_follows_anthropics_rules() {
        let call = json!({"type": "tool_use", "id": "t", "name": "f", "input": {}});
        let mine = json!({"type": "thinking", "thinking": "x", "signature": signature("x")});
        let forged = json!({"type": "thinking", "thinking": "x", "signature": "c2ln"});
        let redacted = json!({"type": "redacted_thinking", "data": "RED"});
        for (name, content, thinking, want) in [
            ("own signature first", json!([mine, call]), true, Ok(())),
            ("redacted first", json!([redacted, call]), true, Ok(())),
            (
                "no thinking before the calls",
                json!([call]),
                true,
                Err("a final `assistant` message must start with a thinking block"),
            ),
            ("no thinking, thinking off", json!([call]), false, Ok(())),
            (
                "forced tool choice",
                json!([mine, call]),
                true,
                Err("Thinking may not be enabled when tool_choice forces tool use."),
            ),
            (
                "a signature the mock did not issue",
                json!([forged, call]),
                true,
                Err("messages.1.content.0: Invalid `signature` in `thinking` block"),
            ),
        ] {
            let mut req = request(json!({"role": "assistant", "content": content}));
            if !thinking {
                req.as_object_mut().map(|o| o.remove("thinking"));
            }
            if name == "forced tool choice" {
                req["tool_choice"] = json!({"type": "any"});
            }
            match (check_messages(&req, true), want) {
                (Ok(_), Ok(())) => {}
                (Err((status, why)), Err(needle)) => {
                    assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
                    assert!(why.contains(needle), "{name}: {why}");
                }
                (got, want) => panic!("{name}: got {:?}, want {want:?}", got.err()),
            }
        }
    }

    #[test]
    fn answers_are_signed_with_the_mocks_key() {
        let c = Checked {
            prompt: "q".into(),
            results: Vec::new(),
            tools: Vec::new(),
            thinking: true,
        };
        let ctx = Ctx {
            name: "p",
            seq: 1,
            content_chunks: 1,
        };
        let a = answer(&c, "m", false, &ctx);
        let block = &a.message["content"][0];
        let text = block["thinking"].as_str().expect("thinking");
        assert_eq!(block["signature"], signature(text));
        assert_ne!(signature(text), signature("other"));
    }
}
