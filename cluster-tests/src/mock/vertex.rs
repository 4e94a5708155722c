//! The Google Vertex AI wire format of the mock provider, for Claude on Vertex:
//! `POST /v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:rawPredict`
//! (`:streamRawPredict`), and `…/publishers/anthropic/models/count-tokens:rawPredict`.
//!
//! Follows Vertex AI's "Use Claude models" reference: an `Authorization: Bearer` Google access token is
//! required (one the mock's Google token endpoint issued, not expired: 401 `UNAUTHENTICATED` otherwise),
//! the model is in the path and not the body, the body carries `anthropic_version: vertex-2023-10-16`, and
//! streamRawPredict requires `"stream": true`. Answers are Anthropic's (the Messages JSON, or its SSE
//! events, from [`super::anthropic`]); Vertex's own refusals are Google API errors
//! `{"error":{"code","message","status"}}`.

use hyper::header::HeaderValue;
use hyper::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use super::anthropic;
use super::openai::{Ctx, Reply};

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
