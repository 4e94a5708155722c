//! The Anthropic Messages wire format of the mock provider (`POST /v1/messages`).
//!
//! Follows the Anthropic API reference: `x-api-key` and `anthropic-version` are required (401
//! `authentication_error` / 400 `invalid_request_error` otherwise), `max_tokens` is required, the system
//! prompt is the top-level `system`, and a stream is SSE with `message_start`, `content_block_start`,
//! `ping`, `content_block_delta`, `content_block_stop`, `message_delta`, `message_stop`. Errors are
//! `{"type":"error","error":{"type","message"}}`.

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
        ("user", Some("tool_result")) => {
            if field("tool_use_id").is_none() {
                return Err("tool_use_id: Field required".into());
            }
            Ok(Some(Block::Result(
                field("content").unwrap_or_default().to_owned(),
            )))
        }
        (_, kind) => Err(format!(
            "unexpected block type {kind:?} in a {role} message"
        )),
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

/// Answers `POST /v1/messages`.
pub fn handle(method: &Method, headers: &HeaderMap, body: &[u8], ctx: &Ctx<'_>) -> Reply {
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
    if req.get("max_tokens").and_then(Value::as_u64).is_none() {
        return error_reply(StatusCode::BAD_REQUEST, "max_tokens: Field required");
    }
    let Some(messages) = req
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
    else {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "messages: at least one message is required",
        );
    };
    let mut prompt = String::new();
    let mut results = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        // Tool results count only in the latest user turn.
        results.clear();
        match (m.get("role").and_then(Value::as_str), m.get("content")) {
            (Some("user" | "assistant"), Some(Value::String(t))) => prompt.push_str(t),
            (Some(role @ ("user" | "assistant")), Some(Value::Array(blocks))) => {
                for (j, b) in blocks.iter().enumerate() {
                    match check_block(role, b) {
                        Ok(Some(Block::Text(t))) => prompt.push_str(&t),
                        Ok(Some(Block::Result(t))) => results.push(t),
                        Ok(None) => {}
                        Err(why) => {
                            return error_reply(
                                StatusCode::BAD_REQUEST,
                                &format!("messages.{i}.content.{j}: {why}"),
                            )
                        }
                    }
                }
            }
            (Some("system"), _) => {
                return error_reply(
                    StatusCode::BAD_REQUEST,
                    "messages: Unexpected role \"system\". Use the top-level system parameter",
                )
            }
            _ => return error_reply(StatusCode::BAD_REQUEST, "messages: invalid message"),
        }
    }
    let mut tools = Vec::new();
    for t in req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match (t.get("name").and_then(Value::as_str), t.get("input_schema")) {
            (Some(name), Some(schema))
                if schema.get("type").and_then(Value::as_str) == Some("object") =>
            {
                tools.push((name.to_owned(), schema.clone()))
            }
            _ => {
                return error_reply(
                    StatusCode::BAD_REQUEST,
                    "tools: each tool needs a name and an input_schema of type object",
                )
            }
        }
    }
    let (text, calls) = match agent::decide(&tools, &results, ctx, "toolu_") {
        agent::Turn::Text(t) => (t, Vec::new()),
        agent::Turn::Calls(c) => (String::new(), c),
    };
    let stop = if calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    let (input, output) = (
        tokens_of_text(&prompt),
        tokens_of_text(&text) + 5 * calls.len() as u64,
    );
    let id = format!("msg_mock_{}_{}", ctx.name, ctx.seq);
    let model = format!("{model}-mock");
    if !req.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        let content: Vec<Value> = if calls.is_empty() {
            vec![json!({"type": "text", "text": text})]
        } else {
            calls
                .iter()
                .map(|c| json!({"type": "tool_use", "id": c.id, "name": c.name, "input": c.input}))
                .collect()
        };
        let answer = json!({
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": content,
            "stop_reason": stop, "stop_sequence": null,
            "usage": {"input_tokens": input, "output_tokens": output},
        });
        return Reply::json(StatusCode::OK, &answer);
    }
    let mut chunks = vec![sse(
        "message_start",
        &json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": input, "output_tokens": 1}}}),
    )];
    if !calls.is_empty() {
        for (index, c) in calls.iter().enumerate() {
            chunks.push(sse(
                "content_block_start",
                &json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": c.id, "name": c.name, "input": {}}}),
            ));
            for part in c.fragments() {
                chunks.push(sse(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": part}}),
                ));
            }
            chunks.push(sse(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ));
        }
        chunks.push(sse(
            "message_delta",
            &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": output}}),
        ));
        chunks.push(sse("message_stop", &json!({"type": "message_stop"})));
        return Reply::Stream {
            content_type: "text/event-stream",
            chunks,
        };
    }
    chunks.extend([
        sse(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        sse("ping", &json!({"type": "ping"})),
    ]);
    for piece in split_pieces(&text, ctx.content_chunks) {
        chunks.push(sse(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
        ));
    }
    chunks.push(sse(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    chunks.push(sse(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": output}}),
    ));
    chunks.push(sse("message_stop", &json!({"type": "message_stop"})));
    Reply::Stream {
        content_type: "text/event-stream",
        chunks,
    }
}
