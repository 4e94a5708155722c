//! The Azure OpenAI schema: OpenAI bodies on a per-deployment path.
//!
//! Azure docs ("Azure OpenAI in Azure AI Foundry Models REST API reference"): chat is
//! `POST {endpoint}/openai/deployments/{deployment-id}/chat/completions?api-version={api-version}` (likewise
//! `/completions` and `/embeddings`), authenticated with the `api-key` header (added by `schema::auth`).
//! The deployment is the request's `model`; the `api-version` is the backend's `schema.version`, else
//! [`DEFAULT_API_VERSION`]. Answers are OpenAI-shaped; errors are `{"error":{"code","message"}}` without
//! the `type` OpenAI SDKs read, so that is filled in from the status.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use super::{
    json_content_type, opaque_error, openai_error_type, BodyTransform, Buffered, RequestCtx,
    ResponseCtx, TranslateError, Translator, UpstreamRequest,
};

/// `api-version` used when the backend's schema gives none (the latest GA data-plane version).
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

/// Characters left as-is in a path segment or query value (RFC 3986 unreserved).
pub const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Azure OpenAI translator.
#[derive(Debug, Clone, Copy)]
pub struct Azure;

/// The first `api-version` that serves the Responses API on `/openai/responses`.
pub const FIRST_RESPONSES_API_VERSION: &str = "2025-03-01-preview";

/// The Azure path of a Responses endpoint (`tail`: `""` for a create, `/{id}…` for a stored response),
/// with the client's `query`. Azure serves it in two places: the v1 API, `/openai/v1/responses` (no
/// `api-version`), and the dated previews, `/openai/responses?api-version=…` from
/// [`FIRST_RESPONSES_API_VERSION`] on. A backend whose `schema.version` is such a version gets the dated
/// path; `preview` gets the v1 path with `api-version=preview`; every other (none, `v1`, or a version
/// older than Responses, set for chat) gets the v1 path without one.
pub fn responses_path(version: Option<&str>, tail: &str, query: Option<&str>) -> String {
    // Dated versions compare as text: `YYYY-MM-DD[-preview]`.
    let (base, api_version) = match version {
        Some(v) if v.starts_with("20") && v >= FIRST_RESPONSES_API_VERSION => {
            ("/openai/responses", Some(v))
        }
        // The v1 API's preview channel, as Azure's own clients name it during the v1 preview.
        Some(v @ "preview") => ("/openai/v1/responses", Some(v)),
        _ => ("/openai/v1/responses", None),
    };
    let mut p = format!("{base}{tail}");
    let mut sep = '?';
    if let Some(v) = api_version {
        p.push_str(&format!(
            "?api-version={}",
            utf8_percent_encode(v, UNRESERVED)
        ));
        sep = '&';
    }
    if let Some(q) = query {
        p.push(sep);
        p.push_str(q);
    }
    p
}

/// The Azure path for `ctx`.
pub fn path(ctx: &RequestCtx<'_>) -> String {
    if ctx.operation == super::Operation::Responses {
        // The deployment is the body's `model`, as on OpenAI.
        return responses_path(ctx.schema_version, "", None);
    }
    let version = ctx.schema_version.unwrap_or(DEFAULT_API_VERSION);
    format!(
        "/openai/deployments/{}{}?api-version={}",
        utf8_percent_encode(ctx.model, UNRESERVED),
        ctx.operation.openai_suffix(),
        utf8_percent_encode(version, UNRESERVED)
    )
}

/// An Azure error body → OpenAI error JSON (adds `type`, keeps `code` and `message`).
pub fn error(status: u16, body: &[u8]) -> Bytes {
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        return opaque_error(status, "azure", body);
    };
    let Some(err) = v.get_mut("error").and_then(Value::as_object_mut) else {
        return opaque_error(status, "azure", body);
    };
    err.entry("type")
        .or_insert_with(|| Value::from(openai_error_type(status)));
    err.entry("param").or_insert(Value::Null);
    err.entry("code").or_insert(Value::Null);
    Bytes::from(v.to_string())
}

impl Translator for Azure {
    fn provider_name(&self) -> &'static str {
        "azure.openai"
    }

    fn request(
        &self,
        ctx: &RequestCtx<'_>,
        body: &Bytes,
    ) -> Result<UpstreamRequest, TranslateError> {
        if ctx.operation.is_messages() {
            return Err(super::Operation::messages_unsupported("AzureOpenAI"));
        }
        if ctx.operation == super::Operation::Rerank {
            return Err(super::Operation::rerank_unsupported("AzureOpenAI"));
        }
        Ok(UpstreamRequest {
            path_and_query: super::provider_path(path(ctx))?,
            body: if ctx.model_overridden {
                super::with_model(body, ctx.model)?
            } else {
                body.clone()
            },
            headers: vec![json_content_type()],
        })
    }

    fn response(
        &self,
        _ctx: &ResponseCtx,
        status: StatusCode,
        _headers: &HeaderMap,
    ) -> Option<Box<dyn BodyTransform>> {
        if status.is_success() {
            return None;
        }
        let code = status.as_u16();
        Some(Box::new(Buffered::new(move |b: &[u8]| Ok(error(code, b)))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Operation;

    static CHAT: std::sync::LazyLock<http::uri::PathAndQuery> =
        std::sync::LazyLock::new(|| http::uri::PathAndQuery::from_static("/v1/chat/completions"));
    static NO_HEADERS: std::sync::LazyLock<http::HeaderMap> =
        std::sync::LazyLock::new(http::HeaderMap::new);

    fn ctx<'a>(op: Operation, model: &'a str, version: Option<&'a str>) -> RequestCtx<'a> {
        RequestCtx {
            operation: op,
            path_and_query: &CHAT,
            model,
            model_overridden: false,
            stream: false,
            schema_version: version,
            client_headers: &NO_HEADERS,
            gcp: None,
        }
    }

    #[test]
    fn paths_name_the_deployment_and_version() {
        for (op, model, version, want) in [
            (
                Operation::Chat,
                "gpt-4o",
                None,
                "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
            ),
            (
                Operation::Embeddings,
                "emb",
                Some("2025-01-01-preview"),
                "/openai/deployments/emb/embeddings?api-version=2025-01-01-preview",
            ),
            (Operation::Responses, "gpt-4o", None, "/openai/v1/responses"),
            (
                Operation::Responses,
                "gpt-4o",
                Some("2024-10-21"),
                "/openai/v1/responses",
            ),
            (
                Operation::Responses,
                "gpt-4o",
                Some("2025-04-01-preview"),
                "/openai/responses?api-version=2025-04-01-preview",
            ),
            (
                Operation::Responses,
                "gpt-4o",
                Some("preview"),
                "/openai/v1/responses?api-version=preview",
            ),
            (
                Operation::Completions,
                "a b/c",
                None,
                "/openai/deployments/a%20b%2Fc/completions?api-version=2024-10-21",
            ),
        ] {
            assert_eq!(path(&ctx(op, model, version)), want);
        }
    }

    #[test]
    fn errors_gain_a_type() {
        let v: Value = serde_json::from_slice(&error(
            429,
            br#"{"error":{"code":"429","message":"slow down"}}"#,
        ))
        .expect("json");
        assert_eq!(v["error"]["type"], "rate_limit_exceeded");
        assert_eq!(v["error"]["message"], "slow down");
        assert_eq!(v["error"]["code"], "429");
        let v: Value = serde_json::from_slice(&error(500, b"oops")).expect("json");
        assert_eq!(v["error"]["type"], "server_error");
    }
}
