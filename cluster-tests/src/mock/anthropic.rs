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

use super::openai::{split_pieces, tokens_of_text, Ctx, Reply};

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
    for m in messages {
        match (m.get("role").and_then(Value::as_str), m.get("content")) {
            (Some("user" | "assistant"), Some(Value::String(t))) => prompt.push_str(t),
            (Some("system"), _) => {
                return error_reply(
                    StatusCode::BAD_REQUEST,
                    "messages: Unexpected role \"system\". Use the top-level system parameter",
                )
            }
            _ => return error_reply(StatusCode::BAD_REQUEST, "messages: invalid message"),
        }
    }
    let text = format!("hello from {}", ctx.name);
    let (input, output) = (tokens_of_text(&prompt), tokens_of_text(&text));
    let id = format!("msg_mock_{}_{}", ctx.name, ctx.seq);
    let model = format!("{model}-mock");
    if !req.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        let answer = json!({
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": input, "output_tokens": output},
        });
        return Reply::json(StatusCode::OK, &answer);
    }
    let mut chunks = vec![
        sse(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": input, "output_tokens": 1}}}),
        ),
        sse(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        sse("ping", &json!({"type": "ping"})),
    ];
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
