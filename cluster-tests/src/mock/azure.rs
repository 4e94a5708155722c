//! The Azure OpenAI wire format of the mock provider:
//! `POST /openai/deployments/{deployment}/{chat/completions|completions|embeddings}?api-version=…`.
//!
//! Follows the Azure OpenAI REST reference: the `api-key` header or an Entra ID `Authorization: Bearer`
//! token (one the mock's Entra endpoint issued and not expired) is required (401 otherwise), the
//! `api-version` query parameter is required (404 "Resource not found" otherwise, as Azure answers), bodies
//! and answers are OpenAI-shaped (delegated to [`super::openai`]) and errors are
//! `{"error":{"code","message"}}`.

use hyper::{HeaderMap, Method, StatusCode};
use serde_json::json;

use super::openai::{self, Ctx, Reply};

/// Path prefix of Azure deployments.
pub const PREFIX: &str = "/openai/deployments/";

/// An Azure error reply.
pub fn error_reply(status: StatusCode, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({"error": {"code": status.as_u16().to_string(), "message": message}}),
    )
}

/// Answers an Azure deployment request.
pub fn handle(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    ctx: &Ctx<'_>,
) -> Reply {
    if headers.get("api-key").is_none_or(|v| v.is_empty()) {
        // Entra ID: a bearer token the mock's Entra endpoint issued, refused once expired.
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let verdict = match bearer {
            Some(t) => super::credentials::check_bearer(t, "entra"),
            None => {
                Err("Access denied due to invalid subscription key or wrong API endpoint.".into())
            }
        };
        if let Err(why) = verdict {
            return error_reply(StatusCode::UNAUTHORIZED, &why);
        }
    }
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    if !query.split('&').any(|kv| {
        kv.strip_prefix("api-version=")
            .is_some_and(|v| !v.is_empty())
    }) {
        return error_reply(StatusCode::NOT_FOUND, "Resource not found");
    }
    let rest = path.strip_prefix(PREFIX).unwrap_or_default();
    let Some((deployment, op)) = rest.split_once('/') else {
        return error_reply(StatusCode::NOT_FOUND, "Resource not found");
    };
    if deployment.is_empty() {
        return error_reply(
            StatusCode::NOT_FOUND,
            "The API deployment for this resource does not exist.",
        );
    }
    let openai_path = format!("/v1/{op}");
    match openai::handle(method, &openai_path, body, ctx) {
        Some(Reply::Full { status, body, .. }) if !status.is_success() => {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.pointer("/error/message")?.as_str().map(str::to_owned))
                .unwrap_or_else(|| "request failed".into());
            error_reply(status, &message)
        }
        Some(reply) => reply,
        None => error_reply(StatusCode::NOT_FOUND, "Resource not found"),
    }
}
