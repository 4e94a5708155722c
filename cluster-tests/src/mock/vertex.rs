//! The Google Vertex AI wire format of the mock provider, for Claude on Vertex:
//! `POST /v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:rawPredict`
//! (`:streamRawPredict`), and `…/publishers/anthropic/models/count-tokens:rawPredict`.
//!
//! Gemini: `…/publishers/google/models/{model}:generateContent` and `:streamGenerateContent?alt=sse`.
//!
//! Follows Vertex AI's "Use Claude models" reference: an `Authorization: Bearer` Google access token is
//! required (one the mock's Google token endpoint issued, not expired: 401 `UNAUTHENTICATED` otherwise),
//! the model is in the path and not the body, the body carries `anthropic_version: vertex-2023-10-16`, and
//! streamRawPredict requires `"stream": true`. Answers are Anthropic's (the Messages JSON, or its SSE
//! events, from [`super::anthropic`]); Vertex's own refusals are Google API errors
//! `{"error":{"code","message","status"}}`.
//!
//! Gemini requests are checked against `GenerateContentRequest` in Vertex AI's discovery document when the
//! mock is given it (`--vertex-discovery`, see [`super::discovery`]): every field name, type and enum, as
//! Vertex's parser would. On top of that, what the schema cannot say: `contents` is not empty, its roles
//! are `user`/`model`, each part holds exactly one of `text`, `inlineData`, `fileData`, `functionCall`,
//! `functionResponse`, and a `functionResponse` comes only after a `functionCall` of the same name. The
//! answer is "hello from NAME" as a `GenerateContentResponse` (streamed: one SSE event per piece, the last
//! with `finishReason` and `usageMetadata`, no end marker).

use hyper::header::HeaderValue;
use hyper::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use super::anthropic;
use super::openai::{split_pieces, tokens_of_text, Ctx, Reply};

/// Path prefix of every Vertex AI request.
pub const PREFIX: &str = "/v1/projects/";
/// The `anthropic_version` Vertex documents.
pub const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// Whether `path` (without query) is a Vertex publisher-model path.
pub fn is_vertex_path(path: &str) -> bool {
    path.starts_with(PREFIX) && path.contains("/publishers/")
}

/// Google's canonical status name of an HTTP status.
fn google_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// A Google API error reply.
pub fn error_reply(status: StatusCode, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({"error": {"code": status.as_u16(), "message": message, "status": google_status(status)}}),
    )
}

/// `(project, region, publisher, model, method)` of a Vertex path.
fn parse(path: &str) -> Option<(&str, &str, &str, &str, &str)> {
    let rest = path.strip_prefix(PREFIX)?;
    let mut it = rest.splitn(7, '/');
    let project = it.next()?;
    (it.next()? == "locations").then_some(())?;
    let region = it.next()?;
    (it.next()? == "publishers").then_some(())?;
    let publisher = it.next()?;
    (it.next()? == "models").then_some(())?;
    let (model, method) = it.next()?.rsplit_once(':')?;
    Some((project, region, publisher, model, method))
}

/// Answers a Vertex AI request.
pub fn handle(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    ctx: &Ctx<'_>,
) -> Reply {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let verdict = match bearer {
        Some(t) => super::credentials::check_bearer(t, "google"),
        None => Err(
            "Request is missing required authentication credential. Expected OAuth 2 access token."
                .into(),
        ),
    };
    if let Err(why) = verdict {
        return error_reply(StatusCode::UNAUTHORIZED, &why);
    }
    if method != Method::POST {
        return error_reply(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let p = path.split('?').next().unwrap_or(path);
    let Some((project, region, publisher, model, op)) = parse(p) else {
        return error_reply(StatusCode::NOT_FOUND, &format!("no such resource {p}"));
    };
    if project.is_empty() || region.is_empty() {
        return error_reply(StatusCode::NOT_FOUND, "project and location are required");
    }
    if publisher == "google" {
        return gemini(model, op, path, body, ctx);
    }
    if publisher != "anthropic" {
        return error_reply(
            StatusCode::NOT_FOUND,
            &format!("Publisher Model `publishers/{publisher}/models/{model}` not found."),
        );
    }
    let mut req: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return error_reply(StatusCode::BAD_REQUEST, "Invalid JSON payload received."),
    };
    // The Anthropic handler checks the Messages body; it wants the headers and `model` of Anthropic's
    // own API, which Vertex carries differently.
    let mut anthropic_headers = HeaderMap::new();
    anthropic_headers.insert("x-api-key", HeaderValue::from_static("vertex"));
    anthropic_headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
    let counting = model == "count-tokens" && op == "rawPredict";
    let anthropic_path = if counting {
        // count-tokens names the model in the body.
        if req.get("model").and_then(Value::as_str).is_none() {
            return anthropic::error_reply(StatusCode::BAD_REQUEST, "model: Field required");
        }
        anthropic::COUNT_PATH
    } else {
        match op {
            "rawPredict" | "streamRawPredict" => {}
            other => {
                return error_reply(
                    StatusCode::BAD_REQUEST,
                    &format!("method {other} is not available for Claude"),
                )
            }
        }
        if req.get("model").is_some() {
            return anthropic::error_reply(
                StatusCode::BAD_REQUEST,
                "model: Extra inputs are not permitted (the model is in the path)",
            );
        }
        if req.get("anthropic_version").and_then(Value::as_str) != Some(ANTHROPIC_VERSION) {
            return anthropic::error_reply(
                StatusCode::BAD_REQUEST,
                &format!("anthropic_version: expected {ANTHROPIC_VERSION}"),
            );
        }
        let streaming = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
        if streaming != (op == "streamRawPredict") {
            return error_reply(
                StatusCode::BAD_REQUEST,
                "stream must be true for streamRawPredict and absent or false for rawPredict",
            );
        }
        if let Value::Object(m) = &mut req {
            m.remove("anthropic_version");
            m.insert("model".into(), Value::String(model.to_owned()));
        }
        anthropic::PATH
    };
    if let Value::Object(m) = &mut req {
        m.remove("anthropic_version");
    }
    let body = req.to_string();
    anthropic::handle(
        method,
        anthropic_path,
        &anthropic_headers,
        body.as_bytes(),
        ctx,
    )
}

/// The data fields of a `Part` this mock can answer (the discovery document defines which exist).
const PART_FIELDS: &[&str] = &[
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
];

/// What a checked `GenerateContentRequest` holds for the answer.
struct GeminiRequest {
    /// The prompt's text (token counts).
    prompt: String,
    /// Declared functions (name, parameters schema).
    tools: Vec<(String, Value)>,
    /// Function results in the latest user turn.
    results: Vec<String>,
}

/// Checks a `GenerateContentRequest`.
fn check_gemini(req: &Value) -> Result<GeminiRequest, String> {
    let obj = req.as_object().ok_or("Invalid JSON payload received.")?;
    // Field names and types: Vertex AI's published definition, when the mock was given it.
    if let Some(d) = super::discovery::VERTEX.get() {
        d.check(super::discovery::GENERATE_CONTENT_REQUEST, req)?;
    }
    let contents = obj
        .get("contents")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or("contents is not specified")?;
    let mut prompt = String::new();
    let mut called: Vec<String> = Vec::new();
    let mut results = Vec::new();
    for (i, c) in contents.iter().enumerate() {
        results.clear();
        let role = c.get("role").and_then(Value::as_str).unwrap_or("user");
        if role != "user" && role != "model" {
            return Err(format!(
                "contents[{i}].role must be user or model, not {role:?}"
            ));
        }
        let parts = c
            .get("parts")
            .and_then(Value::as_array)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| format!("contents[{i}].parts must not be empty"))?;
        for (j, p) in parts.iter().enumerate() {
            let kinds: Vec<&String> = p
                .as_object()
                .map(|o| {
                    o.keys()
                        .filter(|k| k.as_str() != "thought" && k.as_str() != "thoughtSignature")
                        .collect()
                })
                .unwrap_or_default();
            let [kind] = kinds[..] else {
                return Err(format!(
                    "contents[{i}].parts[{j}] must hold exactly one data field"
                ));
            };
            if !PART_FIELDS.contains(&kind.as_str()) {
                return Err(format!("contents[{i}].parts[{j}]: unknown field {kind:?}"));
            }
            let name = |k: &str| p.pointer(&format!("/{k}/name")).and_then(Value::as_str);
            match kind.as_str() {
                "text" => prompt.push_str(p["text"].as_str().unwrap_or_default()),
                "functionCall" if role == "model" => called.push(
                    name("functionCall")
                        .ok_or("functionCall.name is required")?
                        .to_owned(),
                ),
                "functionResponse" if role == "user" => {
                    let n = name("functionResponse").ok_or("functionResponse.name is required")?;
                    if !called.iter().any(|c| c == n) {
                        return Err(format!("functionResponse {n:?} answers no functionCall"));
                    }
                    let Some(r) = p
                        .pointer("/functionResponse/response")
                        .filter(|r| r.is_object())
                    else {
                        return Err("functionResponse.response must be an object".into());
                    };
                    results.push(match r.get("content").and_then(Value::as_str) {
                        Some(t) => t.to_owned(),
                        None => r.to_string(),
                    });
                }
                "inlineData" | "fileData" if role == "user" => {}
                _ => return Err(format!("contents[{i}].parts[{j}]: {kind} in a {role} turn")),
            }
        }
        // Results count only in the latest user turn.
        if role == "model" {
            results.clear();
        }
    }
    let mut tools = Vec::new();
    for t in obj
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for d in t
            .get("functionDeclarations")
            .and_then(Value::as_array)
            .ok_or("tools[] must hold functionDeclarations")?
        {
            let name = d
                .get("name")
                .and_then(Value::as_str)
                .ok_or("functionDeclarations[].name is required")?;
            tools.push((
                name.to_owned(),
                d.get("parametersJsonSchema")
                    .or_else(|| d.get("parameters"))
                    .cloned()
                    .unwrap_or(Value::Null),
            ));
        }
    }
    Ok(GeminiRequest {
        prompt,
        tools,
        results,
    })
}

/// Google's documented stand-in for a signature the client does not have (history from another model):
/// these bytes, base64 in JSON like every bytes field (the literal string decodes to other bytes).
const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// The signature the mock gives a function call: its own HMAC of the call, so only a call it made, sent
/// back unaltered, verifies.
fn call_signature(call: &Value) -> String {
    super::anthropic::signature(&format!("gemini:{call}"))
}

/// Gemini 3 ("Thought signatures"): in the current turn (the contents after the latest user text), the
/// first functionCall part of every model step must carry its signature — the one Gemini gave, or Google's
/// placeholder — else the request is a 400 with Google's wording.
fn check_signatures(req: &Value) -> Result<(), String> {
    use base64::Engine as _;
    let contents = req
        .get("contents")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let parts_of = |c: &Value| -> Vec<Value> {
        c.get("parts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let turn_start = contents
        .iter()
        .rposition(|c| {
            c.get("role").and_then(Value::as_str) != Some("model")
                && parts_of(c).iter().any(|p| p.get("text").is_some())
        })
        .unwrap_or(0);
    let skip_b64 = base64::engine::general_purpose::STANDARD.encode(SKIP_SIGNATURE);
    let mut position = 0;
    for c in &contents[turn_start..] {
        let model = c.get("role").and_then(Value::as_str) == Some("model");
        let mut first = true;
        for p in parts_of(c) {
            position += 1;
            let Some(call) = p.get("functionCall").filter(|_| model) else {
                continue;
            };
            if !std::mem::take(&mut first) {
                continue;
            }
            let name = call.get("name").and_then(Value::as_str).unwrap_or_default();
            match p.get("thoughtSignature").and_then(Value::as_str) {
                None => return Err(format!(
                    "Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call `default_api:{name}` , position {position}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
                )),
                Some(s) if s == skip_b64 || s == call_signature(call) => {}
                Some(_) => return Err(format!(
                    "Thought signature is not valid. Function call `default_api:{name}` , position {position}."
                )),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod signature_tests {
    use super::*;

    #[test]
    fn gemini_3_wants_the_first_call_of_each_step_signed() {
        use base64::Engine as _;
        let call = json!({"name": "f", "args": {"x": 1}});
        let own = call_signature(&call);
        let skip_b64 = base64::engine::general_purpose::STANDARD.encode(SKIP_SIGNATURE);
        let history = |sig: Option<&str>, then_text: bool| {
            let mut first = json!({"functionCall": call});
            if let Some(s) = sig {
                first["thoughtSignature"] = s.into();
            }
            let mut contents = vec![
                json!({"role": "user", "parts": [{"text": "q"}]}),
                json!({"role": "model", "parts": [first, {"functionCall": {"name": "g", "args": {}}}]}),
                json!({"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}),
            ];
            if then_text {
                contents.push(json!({"role": "model", "parts": [{"text": "done"}]}));
                contents.push(json!({"role": "user", "parts": [{"text": "next"}]}));
            }
            json!({ "contents": contents })
        };
        for (name, req, want) in [
            ("its own signature", history(Some(&own), false), Ok(())),
            (
                "Google's placeholder, base64 like every bytes field",
                history(Some(&skip_b64), false),
                Ok(()),
            ),
            (
                "the placeholder's literal text decodes to other bytes",
                history(Some(SKIP_SIGNATURE), false),
                Err("Thought signature is not valid"),
            ),
            (
                "missing",
                history(None, false),
                Err("missing a thought_signature in functionCall parts"),
            ),
            ("forged", history(Some("c2ln"), false), Err("not valid")),
            ("missing, but an earlier turn", history(None, true), Ok(())),
        ] {
            match (check_signatures(&req), want) {
                (Ok(()), Ok(())) => {}
                (Err(why), Err(needle)) => assert!(why.contains(needle), "{name}: {why}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }
}

/// Answers a Gemini `generateContent` / `streamGenerateContent` request.
fn gemini(model: &str, op: &str, path: &str, body: &[u8], ctx: &Ctx<'_>) -> Reply {
    let stream = match op {
        "generateContent" => false,
        "streamGenerateContent" => true,
        other => {
            return error_reply(
                StatusCode::BAD_REQUEST,
                &format!("method {other} is not available"),
            )
        }
    };
    // Vertex streams SSE only with alt=sse (without it, a JSON array).
    if stream
        && !path
            .split_once('?')
            .is_some_and(|(_, q)| q.split('&').any(|kv| kv == "alt=sse"))
    {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "this mock streams with alt=sse only",
        );
    }
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => return error_reply(StatusCode::BAD_REQUEST, "Invalid JSON payload received."),
    };
    let checked = match check_gemini(&req) {
        Ok(c) => c,
        Err(why) => return error_reply(StatusCode::BAD_REQUEST, &why),
    };
    if model.starts_with("gemini-3") {
        if let Err(why) = check_signatures(&req) {
            return error_reply(StatusCode::BAD_REQUEST, &why);
        }
    }
    let prompt = &checked.prompt;
    // The shared agent script; Gemini's calls carry no id.
    let (text, calls) = match super::agent::decide(&checked.tools, &checked.results, ctx, "") {
        super::agent::Turn::Text(t) => (t, Vec::new()),
        super::agent::Turn::Calls(c) => (String::new(), c),
    };
    // A thinking model's answer: its thought summary first (when asked for), its signature on the first
    // call of the step (Gemini gives parallel calls one signature), or on the last part of a text answer.
    let thoughts = req
        .pointer("/generationConfig/thinkingConfig/includeThoughts")
        .and_then(Value::as_bool)
        == Some(true);
    let thought =
        json!({"text": format!("Thinking it over ({} #{}).", ctx.name, ctx.seq), "thought": true});
    let mut call_parts: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let mut part = json!({"functionCall": {"name": c.name, "args": c.input}});
            if k == 0 {
                part["thoughtSignature"] = call_signature(&part["functionCall"]).into();
            }
            part
        })
        .collect();
    if thoughts {
        call_parts.insert(0, thought.clone());
    }
    let usage = json!({"promptTokenCount": tokens_of_text(prompt), "candidatesTokenCount": tokens_of_text(&text),
                       "totalTokenCount": tokens_of_text(prompt) + tokens_of_text(&text)});
    let response = |parts: Value, last: bool| {
        let mut cand = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        let mut r = json!({"candidates": [], "modelVersion": format!("{model}-mock"), "responseId": format!("mock-{}", ctx.seq)});
        if last {
            cand["finishReason"] = "STOP".into();
            r["usageMetadata"] = usage.clone();
        }
        r["candidates"] = json!([cand]);
        r
    };
    if !calls.is_empty() {
        let r = response(Value::Array(call_parts), true);
        return if stream {
            Reply::Stream {
                content_type: "text/event-stream",
                chunks: vec![bytes::Bytes::from(format!("data: {r}\r\n\r\n"))],
            }
        } else {
            Reply::json(StatusCode::OK, &r)
        };
    }
    let text_signature = super::anthropic::signature(&text);
    if !stream {
        let mut parts = vec![json!({"text": text, "thoughtSignature": text_signature})];
        if thoughts {
            parts.insert(0, thought);
        }
        return Reply::json(StatusCode::OK, &response(Value::Array(parts), true));
    }
    let pieces = split_pieces(&text, ctx.content_chunks);
    let n = pieces.len();
    Reply::Stream {
        content_type: "text/event-stream",
        chunks: pieces
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let mut parts = vec![json!({ "text": p })];
                if i + 1 == n {
                    parts[0]["thoughtSignature"] = text_signature.clone().into();
                }
                if i == 0 && thoughts {
                    parts.insert(0, thought.clone());
                }
                bytes::Bytes::from(format!(
                    "data: {}\r\n\r\n",
                    response(Value::Array(parts), i + 1 == n)
                ))
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            parse(
                "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude@1:rawPredict"
            ),
            Some(("p", "us-east5", "anthropic", "claude@1", "rawPredict"))
        );
        assert_eq!(parse("/v1/projects/p/models/x:rawPredict"), None);
        assert!(is_vertex_path(
            "/v1/projects/p/locations/r/publishers/google/models/g:generateContent"
        ));
        assert!(!is_vertex_path("/v1/messages"));
    }
}
