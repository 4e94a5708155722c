//! The OpenAI wire format of the mock provider.
//!
//! This module is pure: it turns a request (method, path, body) into a [`Reply`] and knows nothing about
//! sockets or failure modes. The data port (`mock::data`) applies the failure mode and does the I/O; the
//! other wire formats (`bedrock`, `azure`, `anthropic`) are sibling modules chosen by path
//! ([`super::Format`]), sharing this module's [`Reply`] and helpers.
//!
//! Answers echo the provider name ("hello from NAME") so that tests can tell which provider answered.

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use super::agent;

/// What one request is answered with, before failure modes are applied.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A complete body.
    Full {
        /// HTTP status.
        status: StatusCode,
        /// `Content-Type` of `body`.
        content_type: &'static str,
        /// The body.
        body: Bytes,
        /// Further response headers (e.g. Bedrock's `x-amzn-errortype`).
        headers: Vec<(&'static str, String)>,
    },
    /// A streamed body, sent as one chunk per element (with the configured delay in between).
    Stream {
        /// `Content-Type` of the stream.
        content_type: &'static str,
        /// The chunks, in order, each already framed (e.g. `data: {...}\n\n`).
        chunks: Vec<Bytes>,
    },
}

impl Reply {
    /// A JSON reply.
    pub fn json(status: StatusCode, value: &Value) -> Reply {
        Reply::Full {
            status,
            content_type: "application/json",
            body: Bytes::from(value.to_string()),
            headers: Vec::new(),
        }
    }
}

pub use super::agent::Ctx;

impl Ctx<'_> {
    fn content(&self) -> String {
        format!("hello from {}", self.name)
    }
}

/// An OpenAI error body: `{"error":{"message","type","param","code"}}`.
pub fn error_body(status: StatusCode, message: &str) -> Value {
    let kind = match status.as_u16() {
        400 | 404 | 405 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_exceeded",
        503 => "service_unavailable",
        _ => "server_error",
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
}

/// Error reply in the OpenAI format.
pub fn error_reply(status: StatusCode, message: &str) -> Reply {
    Reply::json(status, &error_body(status, message))
}

/// Answers an OpenAI-compatible request, or `None` when the path is not an OpenAI path.
pub fn handle(method: &Method, path: &str, body: &[u8], ctx: &Ctx<'_>) -> Option<Reply> {
    let path = path.split('?').next().unwrap_or(path);
    let post = |f: fn(&Value, &Ctx<'_>) -> Result<Reply, String>| {
        if method != Method::POST {
            return error_reply(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        match serde_json::from_slice::<Value>(body) {
            Err(e) => error_reply(
                StatusCode::BAD_REQUEST,
                &format!("malformed JSON body: {e}"),
            ),
            Ok(v) if !v.is_object() => error_reply(
                StatusCode::BAD_REQUEST,
                "request body must be a JSON object",
            ),
            Ok(v) => f(&v, ctx).unwrap_or_else(|msg| error_reply(StatusCode::BAD_REQUEST, &msg)),
        }
    };
    Some(match path {
        "/v1/chat/completions" => post(chat_completions),
        "/v1/completions" => post(completions),
        "/v1/embeddings" => post(embeddings),
        "/v1/models" => {
            if method != Method::GET {
                return Some(error_reply(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method not allowed",
                ));
            }
            models(ctx)
        }
        _ => return None,
    })
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn model_of(req: &Value) -> Result<String, String> {
    match req.get("model") {
        Some(Value::String(m)) if !m.is_empty() => Ok(m.clone()),
        _ => Err("you must provide a model parameter".into()),
    }
}

fn wants_stream(req: &Value) -> bool {
    req.get("stream").and_then(Value::as_bool).unwrap_or(false)
}

fn include_usage(req: &Value) -> bool {
    req.pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Rough token estimate: one token per 4 characters of text, at least one.
pub fn tokens_of_text(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

fn usage(prompt: u64, completion: u64) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// Splits `text` into `n` non-empty pieces of nearly equal length (fewer if the text is shorter).
pub fn split_pieces(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let n = n.clamp(1, chars.len().max(1));
    let base = chars.len() / n;
    let extra = chars.len() % n;
    let mut out = Vec::with_capacity(n);
    let mut at = 0;
    for i in 0..n {
        let len = base + usize::from(i < extra);
        out.push(chars[at..at + len].iter().collect());
        at += len;
    }
    out
}

fn sse(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

const SSE_DONE: &[u8] = b"data: [DONE]\n\n";

fn chat_completions(req: &Value, ctx: &Ctx<'_>) -> Result<Reply, String> {
    let model = model_of(req)?;
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("'messages' must be an array")?;
    let prompt_text: String = messages
        .iter()
        .filter_map(|m| m.get("content").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let tools: Vec<(String, Value)> = req
        .get("tools")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .filter_map(|t| {
                    let f = t.get("function")?;
                    Some((
                        f.get("name")?.as_str()?.to_owned(),
                        f.get("parameters").cloned().unwrap_or(Value::Null),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    // Tool results of the latest turn: the `tool` messages after the last assistant message.
    let results: Vec<String> = messages
        .iter()
        .rev()
        .take_while(|m| m.get("role").and_then(Value::as_str) != Some("assistant"))
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("tool"))
        .filter_map(|m| m.get("content").and_then(Value::as_str).map(str::to_owned))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let (content, calls) = match agent::decide(&tools, &results, ctx, "call_") {
        agent::Turn::Text(t) => (t, Vec::new()),
        agent::Turn::Calls(c) => (String::new(), c),
    };
    let finish = if calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    let prompt_tokens = tokens_of_text(&prompt_text);
    let completion_tokens = tokens_of_text(&content) + 5 * calls.len() as u64;
    let id = format!("chatcmpl-mock-{}-{}", ctx.name, ctx.seq);
    let created = now_secs();
    if !wants_stream(req) {
        let mut message = json!({"role": "assistant", "content": content, "refusal": null});
        if !calls.is_empty() {
            message["content"] = Value::Null;
            message["tool_calls"] = calls
                .iter()
                .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.input.to_string()}}))
                .collect();
        }
        let body = json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": format!("fp_mock_{}", ctx.name),
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": finish
            }],
            "usage": usage(prompt_tokens, completion_tokens),
        });
        return Ok(Reply::json(StatusCode::OK, &body));
    }
    let with_usage = include_usage(req);
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": format!("fp_mock_{}", ctx.name),
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if with_usage {
            c["usage"] = Value::Null;
        }
        sse(&c)
    };
    let mut chunks = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    if calls.is_empty() {
        for piece in split_pieces(&content, ctx.content_chunks) {
            chunks.push(chunk(json!({"content": piece}), Value::Null));
        }
    }
    for (index, c) in calls.iter().enumerate() {
        chunks.push(chunk(
            json!({"tool_calls": [{"index": index, "id": c.id, "type": "function", "function": {"name": c.name, "arguments": ""}}]}),
            Value::Null,
        ));
        for part in c.fragments() {
            chunks.push(chunk(
                json!({"tool_calls": [{"index": index, "function": {"arguments": part}}]}),
                Value::Null,
            ));
        }
    }
    chunks.push(chunk(json!({}), json!(finish)));
    if with_usage {
        chunks.push(sse(&json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": format!("fp_mock_{}", ctx.name),
            "choices": [],
            "usage": usage(prompt_tokens, completion_tokens),
        })));
    }
    chunks.push(Bytes::from_static(SSE_DONE));
    Ok(Reply::Stream {
        content_type: "text/event-stream",
        chunks,
    })
}

fn completions(req: &Value, ctx: &Ctx<'_>) -> Result<Reply, String> {
    let model = model_of(req)?;
    let prompt_text = match req.get("prompt") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        None => String::new(),
        Some(_) => return Err("'prompt' must be a string or an array of strings".into()),
    };
    let content = ctx.content();
    let prompt_tokens = tokens_of_text(&prompt_text);
    let completion_tokens = tokens_of_text(&content);
    let id = format!("cmpl-mock-{}-{}", ctx.name, ctx.seq);
    let created = now_secs();
    let chunk = |text: &str, finish: Value| {
        json!({
            "id": id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}],
        })
    };
    if !wants_stream(req) {
        let mut body = chunk(&content, json!("stop"));
        body["usage"] = usage(prompt_tokens, completion_tokens);
        return Ok(Reply::json(StatusCode::OK, &body));
    }
    let mut chunks: Vec<Bytes> = split_pieces(&content, ctx.content_chunks)
        .iter()
        .map(|p| sse(&chunk(p, Value::Null)))
        .collect();
    chunks.push(sse(&chunk("", json!("stop"))));
    if include_usage(req) {
        let mut u = chunk("", Value::Null);
        u["choices"] = json!([]);
        u["usage"] = usage(prompt_tokens, completion_tokens);
        chunks.push(sse(&u));
    }
    chunks.push(Bytes::from_static(SSE_DONE));
    Ok(Reply::Stream {
        content_type: "text/event-stream",
        chunks,
    })
}

/// A small deterministic vector derived from the input text (FNV-1a), values in [-1, 1].
fn vector_of(text: &str, dims: usize) -> Vec<f64> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (0..dims)
        .map(|i| {
            h ^= i as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
            ((h >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

fn embeddings(req: &Value, _ctx: &Ctx<'_>) -> Result<Reply, String> {
    let model = model_of(req)?;
    let inputs: Vec<String> = match req.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if !a.is_empty() => a.iter().map(|v| v.to_string()).collect(),
        _ => return Err("'input' must be a string or a non-empty array".into()),
    };
    let prompt_tokens: u64 = inputs.iter().map(|s| tokens_of_text(s)).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"object": "embedding", "index": i, "embedding": vector_of(s, 8)}))
        .collect();
    let body = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    });
    Ok(Reply::json(StatusCode::OK, &body))
}

fn models(ctx: &Ctx<'_>) -> Reply {
    let data: Vec<Value> = ["mock-model", "gpt-4o-mini", "text-embedding-3-small"]
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": ctx.name}))
        .collect();
    Reply::json(StatusCode::OK, &json!({"object": "list", "data": data}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_concatenate_to_the_text() {
        for n in 1..30 {
            let p = split_pieces("hello from a", n);
            assert_eq!(p.concat(), "hello from a");
            assert!(p.iter().all(|s| !s.is_empty()));
        }
    }

    #[test]
    fn malformed_json_is_400() {
        let ctx = Ctx {
            name: "a",
            seq: 1,
            content_chunks: 3,
        };
        let r = handle(&Method::POST, "/v1/chat/completions", b"{nope", &ctx);
        assert!(matches!(r, Some(Reply::Full { status, .. }) if status == StatusCode::BAD_REQUEST));
        assert!(handle(&Method::POST, "/v2/other", b"{}", &ctx).is_none());
    }
}
