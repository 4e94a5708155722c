//! The OpenAI Responses API of the mock provider: `POST /v1/responses` (a response object, or its typed
//! SSE events with `sequence_number`), `GET`/`DELETE /v1/responses/{id}`, `GET …/{id}/input_items`,
//! `POST …/{id}/cancel`; Azure's twins under `/openai/v1/responses` and `/openai/responses?api-version=`
//! (which need `api-key`).
//!
//! Unlike chat, the Responses API keeps state: every created response is stored (bounded, [`Store`]), so
//! that a test can see which provider holds a response, and `previous_response_id` works only on the
//! provider that made it (elsewhere: 400 `previous_response_not_found`, as OpenAI answers). The wire shapes
//! follow openai-python's `types/responses/` (`Response`, `ResponseStreamEvent`, `ResponseErrorEvent`).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;
use hyper::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use super::openai::{error_body, split_pieces, tokens_of_text, Ctx, Reply};

/// Responses a mock keeps at most (the oldest are forgotten).
const MAX_STORED: usize = 10_000;

/// Whether `path` (without query) is a Responses API path, OpenAI's or Azure's.
pub fn is_responses_path(path: &str) -> bool {
    let p = path.split('?').next().unwrap_or(path);
    ["/v1/responses", "/openai/v1/responses", "/openai/responses"]
        .iter()
        .any(|prefix| p == *prefix || p.starts_with(&format!("{prefix}/")))
}

/// One stored response: the object as `GET` returns it and its input items.
#[derive(Debug, Clone)]
struct Stored {
    response: Value,
    input_items: Vec<Value>,
}

/// The responses this mock made.
#[derive(Debug, Default)]
pub struct Store {
    inner: Mutex<(HashMap<String, Stored>, VecDeque<String>)>,
}

impl Store {
    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<String, Stored>, VecDeque<String>)> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn put(&self, id: &str, s: Stored) {
        let mut g = self.lock();
        let (map, order) = &mut *g;
        if map.insert(id.to_owned(), s).is_none() {
            order.push_back(id.to_owned());
        }
        while map.len() > MAX_STORED {
            match order.pop_front() {
                Some(old) => {
                    map.remove(&old);
                }
                None => break,
            }
        }
    }

    fn get(&self, id: &str) -> Option<Stored> {
        self.lock().0.get(id).cloned()
    }

    fn remove(&self, id: &str) -> bool {
        self.lock().0.remove(id).is_some()
    }

    /// Number of stored responses.
    pub fn len(&self) -> usize {
        self.lock().0.len()
    }

    /// Whether none is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn error(status: StatusCode, message: &str, code: Option<&str>, param: Option<&str>) -> Reply {
    let mut v = error_body(status, message);
    v["error"]["code"] = json!(code);
    v["error"]["param"] = json!(param);
    Reply::json(status, &v)
}

fn not_found(id: &str) -> Reply {
    error(
        StatusCode::NOT_FOUND,
        &format!("Response with id '{id}' not found."),
        None,
        None,
    )
}

/// Answers a Responses API request (`path` with its query).
pub fn handle(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    ctx: &Ctx<'_>,
    store: &Store,
) -> Reply {
    let (p, query) = path.split_once('?').unwrap_or((path, ""));
    let rest = if let Some(r) = p.strip_prefix("/openai/v1/responses") {
        r
    } else if let Some(r) = p.strip_prefix("/openai/responses") {
        if !query.split('&').any(|kv| kv.starts_with("api-version=")) {
            return super::azure::error_reply(StatusCode::NOT_FOUND, "Resource not found");
        }
        r
    } else {
        p.strip_prefix("/v1/responses").unwrap_or_default()
    };
    if p.starts_with("/openai/") && headers.get("api-key").is_none_or(|v| v.is_empty()) {
        return super::azure::error_reply(
            StatusCode::UNAUTHORIZED,
            "Access denied due to invalid subscription key or wrong API endpoint.",
        );
    }
    let method_not_allowed = || {
        error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
            None,
            None,
        )
    };
    match rest.strip_prefix('/') {
        None if rest.is_empty() => {
            if method != Method::POST {
                return method_not_allowed();
            }
            match serde_json::from_slice::<Value>(body) {
                Ok(v) if v.is_object() => create(&v, ctx, store),
                Ok(_) => error(
                    StatusCode::BAD_REQUEST,
                    "request body must be a JSON object",
                    None,
                    None,
                ),
                Err(e) => error(
                    StatusCode::BAD_REQUEST,
                    &format!("malformed JSON body: {e}"),
                    None,
                    None,
                ),
            }
        }
        None => not_found(rest),
        Some(tail) => {
            let (id, op) = tail.split_once('/').unwrap_or((tail, ""));
            let Some(stored) = store.get(id) else {
                return not_found(id);
            };
            match (method.clone(), op) {
                (Method::GET, "") => Reply::json(StatusCode::OK, &stored.response),
                (Method::DELETE, "") => {
                    store.remove(id);
                    Reply::json(
                        StatusCode::OK,
                        &json!({"id": id, "object": "response.deleted", "deleted": true}),
                    )
                }
                (Method::GET, "input_items") => {
                    let first = stored
                        .input_items
                        .first()
                        .and_then(|i| i.get("id").cloned());
                    let last = stored.input_items.last().and_then(|i| i.get("id").cloned());
                    Reply::json(
                        StatusCode::OK,
                        &json!({"object": "list", "data": stored.input_items, "first_id": first, "last_id": last, "has_more": false}),
                    )
                }
                (Method::POST, "cancel") => error(
                    StatusCode::BAD_REQUEST,
                    "Only responses created with background=true can be cancelled.",
                    None,
                    None,
                ),
                (_, "" | "input_items" | "cancel") => method_not_allowed(),
                _ => error(StatusCode::NOT_FOUND, "no such endpoint", None, None),
            }
        }
    }
}

/// The input as the text the answer is measured by, and as input items.
fn input_of(req: &Value, id: &str) -> Result<(String, Vec<Value>), String> {
    let item = |n: usize, role: &str, text: &str| {
        json!({"id": format!("msg_in_{id}_{n}"), "type": "message", "role": role, "status": "completed",
               "content": [{"type": "input_text", "text": text}]})
    };
    match req.get("input") {
        Some(Value::String(s)) => Ok((s.clone(), vec![item(0, "user", s)])),
        Some(Value::Array(items)) => {
            let mut text = Vec::new();
            let mut out = Vec::new();
            for (n, it) in items.iter().enumerate() {
                let role = it.get("role").and_then(Value::as_str).unwrap_or("user");
                let t = match it.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join(" "),
                    _ => String::new(),
                };
                out.push(item(n, role, &t));
                text.push(t);
            }
            Ok((text.join(" "), out))
        }
        _ => Err("'input' must be a string or an array of input items".into()),
    }
}

fn sanitized(name: &str) -> String {
    name.chars().filter(char::is_ascii_alphanumeric).collect()
}

fn event(kind: &str, seq: usize, mut data: Value) -> Bytes {
    data["type"] = json!(kind);
    data["sequence_number"] = json!(seq);
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

/// The in-stream error event of the Responses API for `status`, numbered `seq`.
pub fn stream_error_event(status: StatusCode, message: &str, seq: usize) -> Bytes {
    let code = match status.as_u16() {
        429 => "rate_limit_exceeded",
        503 | 529 => "overloaded",
        _ => "server_error",
    };
    event(
        "error",
        seq,
        json!({"code": code, "message": message, "param": null}),
    )
}

fn create(req: &Value, ctx: &Ctx<'_>, store: &Store) -> Reply {
    let model = match req.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "you must provide a model parameter",
                None,
                Some("model"),
            )
        }
    };
    let id = format!("resp_mock{}{}", sanitized(ctx.name), ctx.seq);
    let (input_text, input_items) = match input_of(req, &id) {
        Ok(x) => x,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m, None, Some("input")),
    };
    let previous = req.get("previous_response_id").and_then(Value::as_str);
    let mut text = format!("hello from {}", ctx.name);
    if let Some(prev) = previous {
        if store.get(prev).is_none() {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("Previous response with id '{prev}' not found."),
                Some("previous_response_not_found"),
                Some("previous_response_id"),
            );
        }
        text.push_str(&format!(" (after {prev})"));
    }
    let input_tokens = tokens_of_text(&input_text);
    let output_tokens = tokens_of_text(&text);
    let created_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let msg_id = format!("msg_{id}");
    let part = json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
    let item = json!({"id": msg_id, "type": "message", "status": "completed", "role": "assistant", "content": [part]});
    let response = |status: &str, output: Value, usage: Value| {
        json!({
            "id": id, "object": "response", "created_at": created_at, "status": status,
            "background": false, "error": null, "incomplete_details": null, "instructions": req.get("instructions").cloned().unwrap_or(Value::Null),
            "max_output_tokens": req.get("max_output_tokens").cloned().unwrap_or(Value::Null),
            "model": model, "output": output, "parallel_tool_calls": true,
            "previous_response_id": previous, "reasoning": {"effort": null, "summary": null},
            "store": true, "temperature": 1.0, "text": {"format": {"type": "text"}},
            "tool_choice": "auto", "tools": [], "top_p": 1.0, "truncation": "disabled",
            "usage": usage, "user": null, "metadata": {},
        })
    };
    let usage = json!({
        "input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    });
    let done = response("completed", json!([item]), usage);
    store.put(
        &id,
        Stored {
            response: done.clone(),
            input_items,
        },
    );
    if !req.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        return Reply::json(StatusCode::OK, &done);
    }
    let started = response("in_progress", json!([]), Value::Null);
    let mut seq = 0..;
    let mut next = || seq.next().unwrap_or_default();
    let mut chunks = vec![
        event("response.created", next(), json!({"response": started})),
        event("response.in_progress", next(), json!({"response": started})),
        event(
            "response.output_item.added",
            next(),
            json!({"output_index": 0, "item": {"id": msg_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}}),
        ),
        event(
            "response.content_part.added",
            next(),
            json!({"item_id": msg_id, "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
        ),
    ];
    for piece in split_pieces(&text, ctx.content_chunks) {
        chunks.push(event(
            "response.output_text.delta",
            next(),
            json!({"item_id": msg_id, "output_index": 0, "content_index": 0, "delta": piece, "logprobs": []}),
        ));
    }
    chunks.push(event(
        "response.output_text.done",
        next(),
        json!({"item_id": msg_id, "output_index": 0, "content_index": 0, "text": text, "logprobs": []}),
    ));
    chunks.push(event(
        "response.content_part.done",
        next(),
        json!({"item_id": msg_id, "output_index": 0, "content_index": 0, "part": part}),
    ));
    chunks.push(event(
        "response.output_item.done",
        next(),
        json!({"output_index": 0, "item": item}),
    ));
    chunks.push(event(
        "response.completed",
        next(),
        json!({"response": done}),
    ));
    Reply::Stream {
        content_type: "text/event-stream; charset=utf-8",
        chunks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(name: &str, seq: u64) -> Ctx<'_> {
        Ctx {
            name,
            seq,
            content_chunks: 3,
        }
    }

    fn json_of(r: &Reply) -> (StatusCode, Value) {
        match r {
            Reply::Full { status, body, .. } => {
                (*status, serde_json::from_slice(body).expect("json"))
            }
            Reply::Stream { .. } => panic!("a stream"),
        }
    }

    #[test]
    fn created_responses_are_stored_retrieved_chained_and_deleted() {
        let store = Store::default();
        let h = HeaderMap::new();
        let r = handle(
            &Method::POST,
            "/v1/responses",
            &h,
            br#"{"model":"m","input":"hi there"}"#,
            &ctx("a", 1),
            &store,
        );
        let (status, v) = json_of(&r);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["object"], "response");
        assert_eq!(v["output"][0]["content"][0]["text"], "hello from a");
        assert_eq!(v["usage"]["input_tokens"], 2);
        let id = v["id"].as_str().expect("id").to_owned();
        let (status, got) = json_of(&handle(
            &Method::GET,
            &format!("/v1/responses/{id}"),
            &h,
            b"",
            &ctx("a", 2),
            &store,
        ));
        assert_eq!((status, &got["id"]), (StatusCode::OK, &v["id"]));
        let (_, items) = json_of(&handle(
            &Method::GET,
            &format!("/v1/responses/{id}/input_items"),
            &h,
            b"",
            &ctx("a", 3),
            &store,
        ));
        assert_eq!(items["data"][0]["content"][0]["text"], "hi there");
        let chained = format!(r#"{{"model":"m","input":"more","previous_response_id":"{id}"}}"#);
        let (_, next) = json_of(&handle(
            &Method::POST,
            "/v1/responses",
            &h,
            chained.as_bytes(),
            &ctx("a", 4),
            &store,
        ));
        assert_eq!(
            next["output"][0]["content"][0]["text"],
            format!("hello from a (after {id})")
        );
        let (status, e) = json_of(&handle(
            &Method::POST,
            "/v1/responses",
            &h,
            br#"{"model":"m","input":"x","previous_response_id":"resp_nope"}"#,
            &ctx("a", 5),
            &store,
        ));
        assert_eq!(
            (status, &e["error"]["code"]),
            (
                StatusCode::BAD_REQUEST,
                &json!("previous_response_not_found")
            )
        );
        let (status, d) = json_of(&handle(
            &Method::DELETE,
            &format!("/v1/responses/{id}"),
            &h,
            b"",
            &ctx("a", 6),
            &store,
        ));
        assert_eq!((status, &d["deleted"]), (StatusCode::OK, &json!(true)));
        let (status, _) = json_of(&handle(
            &Method::GET,
            &format!("/v1/responses/{id}"),
            &h,
            b"",
            &ctx("a", 7),
            &store,
        ));
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn streams_are_typed_events_in_sequence_ending_completed() {
        let store = Store::default();
        let r = handle(
            &Method::POST,
            "/v1/responses",
            &HeaderMap::new(),
            br#"{"model":"m","input":"hi","stream":true}"#,
            &ctx("b", 1),
            &store,
        );
        let Reply::Stream { chunks, .. } = r else {
            panic!("not a stream")
        };
        let mut text = String::new();
        for (n, c) in chunks.iter().enumerate() {
            let s = std::str::from_utf8(c).expect("utf8");
            let (head, data) = s.split_once("\ndata: ").expect("framed");
            let v: Value = serde_json::from_str(data.trim_end()).expect("json");
            assert_eq!(head.strip_prefix("event: "), v["type"].as_str());
            assert_eq!(v["sequence_number"], n);
            if v["type"] == "response.output_text.delta" {
                text.push_str(v["delta"].as_str().expect("delta"));
            }
        }
        assert_eq!(text, "hello from b");
        let last: &str = std::str::from_utf8(chunks.last().expect("last")).expect("utf8");
        assert!(last.starts_with("event: response.completed\n"), "{last}");
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn azure_paths_need_a_key() {
        let store = Store::default();
        let body = br#"{"model":"dep","input":"x"}"#;
        let r = handle(
            &Method::POST,
            "/openai/v1/responses",
            &HeaderMap::new(),
            body,
            &ctx("z", 1),
            &store,
        );
        assert_eq!(json_of(&r).0, StatusCode::UNAUTHORIZED);
        let mut h = HeaderMap::new();
        h.insert("api-key", "k".parse().expect("value"));
        let r = handle(
            &Method::POST,
            "/openai/v1/responses",
            &h,
            body,
            &ctx("z", 2),
            &store,
        );
        assert_eq!(json_of(&r).0, StatusCode::OK);
        let r = handle(
            &Method::POST,
            "/openai/responses?api-version=2025-04-01-preview",
            &h,
            body,
            &ctx("z", 3),
            &store,
        );
        assert_eq!(json_of(&r).0, StatusCode::OK);
        assert!(is_responses_path("/openai/responses?api-version=x"));
        assert!(is_responses_path("/v1/responses/resp_1/input_items"));
        assert!(!is_responses_path("/v1/responsesx"));
    }
}
