//! The Cohere v2 Chat wire format of the mock provider (`POST /v2/chat`).
//!
//! Follows Cohere's API reference ("Chat", "Streaming", "Errors"): `Authorization: Bearer` is required
//! (401 otherwise). Given `--cohere-schema` (the definition `cluster-tests/tests/cohere_schema.py` derives
//! from the official SDK, see [`super::json_schema`]), every request is checked against it: field names,
//! types, enums (`tool_choice` is `REQUIRED` or `NONE`), required fields, each message by its role. On top
//! of that, what the definition cannot say: `messages` is not empty, a tool call's `arguments` are JSON
//! text, and the parts the mock answers from (`text`, `image_url`, `thinking`). The answer carries an upper-case
//! `finish_reason`, `message.content` parts and `usage.{billed_units,tokens}`. A stream is SSE with
//! `message-start`, `content-start`, `content-delta`, `content-end` (or `tool-plan-delta`,
//! `tool-call-start`, `tool-call-delta`, `tool-call-end`) and `message-end`. Errors are `{"message"}`.

use bytes::Bytes;
use hyper::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use super::agent;
use super::openai::{split_pieces, tokens_of_text, Ctx, Reply};

/// The path of the v2 Chat API.
pub const PATH: &str = "/v2/chat";

/// The path of the v2 Rerank API.
pub const RERANK_PATH: &str = "/v2/rerank";

/// Answers `POST /v2/rerank` (Cohere's "Rerank V2"): `model`, `query` and a non-empty list of string
/// `documents` are required; `top_n` limits the results. Relevance falls with the document's index, so
/// tests can check the order.
pub fn rerank(method: &Method, headers: &HeaderMap, body: &[u8], ctx: &Ctx<'_>) -> Reply {
    if method != Method::POST {
        return error_reply(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    if !has_bearer(headers) {
        return error_reply(StatusCode::UNAUTHORIZED, "no api key supplied");
    }
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return bad(format!("invalid request: {e}")),
    };
    const RERANK_FIELDS: &[&str] = &["model", "query", "documents", "top_n", "max_tokens_per_doc"];
    if let Some(k) = req
        .as_object()
        .into_iter()
        .flat_map(|o| o.keys())
        .find(|k| !RERANK_FIELDS.contains(&k.as_str()))
    {
        return bad(format!(
            "invalid request: unknown field: parameter {k} is not a valid field"
        ));
    }
    let (Some(model), Some(_query), Some(docs)) = (
        req.get("model").and_then(Value::as_str),
        req.get("query").and_then(Value::as_str),
        req.get("documents").and_then(Value::as_array),
    ) else {
        return bad("invalid request: model, query and documents are required");
    };
    if docs.is_empty() || !docs.iter().all(Value::is_string) {
        return bad("invalid request: documents must be a non-empty list of strings");
    }
    let n = req
        .get("top_n")
        .and_then(Value::as_u64)
        .map_or(docs.len(), |n| (n as usize).min(docs.len()));
    let results: Vec<Value> = (0..n)
        .map(|i| json!({"index": i, "relevance_score": 1.0 / (i as f64 + 1.0)}))
        .collect();
    Reply::json(
        StatusCode::OK,
        &json!({"id": format!("mock-{}-{}-{model}", ctx.name, ctx.seq), "results": results,
                "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}}),
    )
}

/// A Cohere error reply.
pub fn error_reply(status: StatusCode, message: &str) -> Reply {
    Reply::json(status, &json!({"id": "mock-error", "message": message}))
}

/// The stream's final event when generation failed mid-way: `message-end` with `finish_reason: ERROR`.
pub fn stream_error_event(message: &str) -> Bytes {
    sse(&json!({"type": "message-end", "delta": {"finish_reason": "ERROR", "error": message}}))
}

/// Whether the request carries `Authorization: Bearer <key>` (every Cohere endpoint requires one).
fn has_bearer(headers: &HeaderMap) -> bool {
    headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|k| !k.is_empty())
}

fn sse(data: &Value) -> Bytes {
    let kind = data.get("type").and_then(Value::as_str).unwrap_or_default();
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

fn bad(message: impl AsRef<str>) -> Reply {
    error_reply(StatusCode::BAD_REQUEST, message.as_ref())
}

/// Checks one message as the v2 Chat API would; returns its prompt text and, for a tool message, the
/// result.
fn check_message(i: usize, m: &Value) -> Result<(String, Option<String>), String> {
    let content_text = |c: Option<&Value>| -> Result<String, String> {
        match c {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(t)) => Ok(t.clone()),
            Some(Value::Array(parts)) => {
                let mut text = String::new();
                for (j, p) in parts.iter().enumerate() {
                    match p.get("type").and_then(Value::as_str) {
                        Some("text") => match p.get("text").and_then(Value::as_str) {
                            Some(t) => text.push_str(t),
                            None => {
                                return Err(format!("messages[{i}].content[{j}].text is required"))
                            }
                        },
                        Some("image_url")
                            if p.pointer("/image_url/url").is_some_and(Value::is_string) => {}
                        Some("thinking") => {}
                        other => {
                            return Err(format!(
                                "messages[{i}].content[{j}]: unknown content type {other:?}"
                            ))
                        }
                    }
                }
                Ok(text)
            }
            Some(_) => Err(format!("messages[{i}].content must be a string or a list")),
        }
    };
    match m.get("role").and_then(Value::as_str) {
        Some("system" | "user") => Ok((content_text(m.get("content"))?, None)),
        Some("assistant") => {
            for (j, c) in m
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let args = c.pointer("/function/arguments").and_then(Value::as_str);
                let ok = c.get("id").is_some_and(Value::is_string)
                    && c.get("type").and_then(Value::as_str) == Some("function")
                    && c.pointer("/function/name").is_some_and(Value::is_string)
                    && args.is_some_and(|a| serde_json::from_str::<Value>(a).is_ok());
                if !ok {
                    return Err(format!(
                        "messages[{i}].tool_calls[{j}]: id, type function, function.name and JSON arguments are required"
                    ));
                }
            }
            Ok((content_text(m.get("content"))?, None))
        }
        Some("tool") => {
            if !m.get("tool_call_id").is_some_and(Value::is_string) {
                return Err(format!("messages[{i}].tool_call_id is required"));
            }
            Ok((String::new(), Some(content_text(m.get("content"))?)))
        }
        other => Err(format!("messages[{i}].role: invalid role {other:?}")),
    }
}

/// Answers `POST /v2/chat`.
pub fn handle(method: &Method, headers: &HeaderMap, body: &[u8], ctx: &Ctx<'_>) -> Reply {
    if method != Method::POST {
        return error_reply(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    if !has_bearer(headers) {
        return error_reply(StatusCode::UNAUTHORIZED, "no api key supplied");
    }
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return bad(format!("invalid request: {e}")),
    };
    // Field names, types, enums and required fields: the SDK's definition, when the mock was given it.
    if let Some(schema) = super::json_schema::COHERE.get() {
        if let Err(why) = schema.request.check(&req) {
            return bad(format!("invalid request: {why}"));
        }
    }
    let Some(model) = req.get("model").and_then(Value::as_str) else {
        return bad("invalid request: model must be a string");
    };
    let Some(messages) = req
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
    else {
        return bad("invalid request: messages must not be empty");
    };
    let mut prompt = String::new();
    let mut results = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        // Tool results count only when nothing but tool messages followed the last assistant turn.
        if m.get("role").and_then(Value::as_str) != Some("tool") {
            results.clear();
        }
        match check_message(i, m) {
            Ok((text, result)) => {
                prompt.push_str(&text);
                results.extend(result);
            }
            Err(why) => return bad(format!("invalid request: {why}")),
        }
    }
    let mut tools = Vec::new();
    for t in req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match (
            t.get("type").and_then(Value::as_str),
            t.pointer("/function/name").and_then(Value::as_str),
        ) {
            (Some("function"), Some(name)) => tools.push((
                name.to_owned(),
                t.pointer("/function/parameters")
                    .cloned()
                    .unwrap_or(json!({})),
            )),
            _ => {
                return bad("invalid request: tools must be {type: function, function: {name, …}}")
            }
        }
    }
    let (text, calls) = match agent::decide(&tools, &results, ctx, "call_") {
        agent::Turn::Text(t) => (t, Vec::new()),
        agent::Turn::Calls(c) => (String::new(), c),
    };
    let finish = if calls.is_empty() {
        "COMPLETE"
    } else {
        "TOOL_CALL"
    };
    let (input, output) = (
        tokens_of_text(&prompt),
        tokens_of_text(&text) + 5 * calls.len() as u64,
    );
    let usage = json!({"billed_units": {"input_tokens": input, "output_tokens": output},
                       "tokens": {"input_tokens": input + 3, "output_tokens": output}});
    let id = format!("mock-{}-{}-{model}", ctx.name, ctx.seq);
    let wire_calls: Vec<Value> = calls
        .iter()
        .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.input.to_string()}}))
        .collect();
    if !req.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        let mut message = json!({"role": "assistant"});
        if calls.is_empty() {
            message["content"] = json!([{"type": "text", "text": text}]);
        } else {
            message["tool_plan"] = json!("I will call the tools.");
            message["tool_calls"] = wire_calls.into();
        }
        return Reply::json(
            StatusCode::OK,
            &json!({"id": id, "finish_reason": finish, "message": message, "usage": usage}),
        );
    }
    let mut chunks = vec![sse(&json!({"type": "message-start", "id": id,
        "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}))];
    if calls.is_empty() {
        chunks.push(sse(&json!({"type": "content-start", "index": 0,
            "delta": {"message": {"content": {"type": "text", "text": ""}}}})));
        for piece in split_pieces(&text, ctx.content_chunks) {
            chunks.push(sse(&json!({"type": "content-delta", "index": 0,
                "delta": {"message": {"content": {"text": piece}}}})));
        }
        chunks.push(sse(&json!({"type": "content-end", "index": 0})));
    } else {
        chunks.push(sse(&json!({"type": "tool-plan-delta",
            "delta": {"message": {"tool_plan": "I will call the tools."}}})));
        for (index, c) in calls.iter().enumerate() {
            chunks.push(sse(&json!({"type": "tool-call-start", "index": index,
                "delta": {"message": {"tool_calls": {"id": c.id, "type": "function",
                    "function": {"name": c.name, "arguments": ""}}}}})));
            for part in c.fragments() {
                chunks.push(sse(&json!({"type": "tool-call-delta", "index": index,
                    "delta": {"message": {"tool_calls": {"function": {"arguments": part}}}}})));
            }
            chunks.push(sse(&json!({"type": "tool-call-end", "index": index})));
        }
    }
    chunks.push(sse(&json!({"type": "message-end",
        "delta": {"finish_reason": finish, "usage": usage}})));
    Reply::Stream {
        content_type: "text/event-stream",
        chunks,
    }
}
