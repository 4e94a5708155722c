//! The `GCPAnthropic` schema: Claude on Google Vertex AI through rawPredict / streamRawPredict with the
//! Anthropic Messages body (Envoy AI Gateway v1.1's schema of that name; Vertex AI "Use Claude models").
//!
//! Both client APIs reach it, as they reach `AWSAnthropic`. Anthropic Messages clients
//! (`/anthropic/v1/messages`) get their body sent as Vertex takes it and Vertex's answer (Anthropic
//! Messages JSON, or Anthropic's SSE events) back as it is. OpenAI chat clients get the chat translated to a
//! Messages body by the `Anthropic` schema's translation and the answer translated back. Only the envelope
//! differs from Anthropic's own API:
//! - the path is `/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:rawPredict`
//!   (`:streamRawPredict` for a stream), project and region from the backend's `GCPCredentials` policy;
//! - the body has no `model` and has `anthropic_version` (`schema.version`, default `vertex-2023-10-16`,
//!   the only value Vertex documents); a stream keeps `"stream": true`, which streamRawPredict requires;
//! - beta flags travel in the `anthropic-beta` header, as Anthropic's Vertex client sends them;
//! - token counting is Vertex's `publishers/anthropic/models/count-tokens:rawPredict`, whose body names the
//!   model (it is not in the path) and whose answer is Anthropic's `{"input_tokens": n}`;
//! - Vertex's own refusals (quota, permissions, a model not enabled in the project) are Google API errors
//!   (`{"error":{"code","message","status"}}`), translated to the client's error shape.

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet};
use serde_json::{Map, Value};

use super::anthropic::{self, StreamTransform};
use super::messages::{self, MessagesStream, BETA_HEADER};
use super::{
    json_content_type, parse_object, BodyTransform, Buffered, Operation, RequestCtx, ResponseCtx,
    TranslateError, Translator, UpstreamRequest,
};
use crate::config::model::GcpLocation;

/// `gen_ai_provider_name` of Claude on Vertex AI.
const PROVIDER: &str = "gcp.anthropic";
/// `anthropic_version` when the backend's `schema.version` gives none.
pub const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// A path segment: unreserved characters and `@` stay (Vertex model ids are `name@version`).
const SEGMENT: &AsciiSet = &super::azure::UNRESERVED.remove(b'@');

/// Claude on Vertex AI translator.
#[derive(Debug, Clone, Copy)]
pub struct GcpAnthropic;

/// `/v1/projects/{project}/locations/{region}/publishers/{publisher}/models/{model}:{method}`, every
/// name one encoded path segment. Also the Gemini path (`publisher` google).
pub fn vertex_path(
    gcp: Option<GcpLocation<'_>>,
    publisher: &str,
    model: &str,
    method: &str,
    query: Option<&str>,
) -> Result<PathAndQuery, TranslateError> {
    let gcp = gcp.ok_or_else(|| {
        TranslateError::Unsupported(
            "a Vertex AI backend needs a GCPCredentials BackendSecurityPolicy: its projectName and region are part of every request path".into(),
        )
    })?;
    let mut path = format!(
        "/v1/projects/{}/locations/{}/publishers/{publisher}/models/{}:{method}",
        utf8_percent_encode(gcp.project, SEGMENT),
        utf8_percent_encode(gcp.region, SEGMENT),
        utf8_percent_encode(model, SEGMENT),
    );
    if let Some(q) = query {
        path.push('?');
        path.push_str(q);
    }
    super::provider_path(path)
}

/// A Messages body as Vertex takes it: no `model`, `anthropic_version` from `version`. `stream` stays as
/// the body says.
fn vertex_body(mut m: Map<String, Value>, version: Option<&str>) -> Result<Bytes, TranslateError> {
    m.remove("model");
    m.insert(
        "anthropic_version".into(),
        Value::String(version.unwrap_or(VERTEX_ANTHROPIC_VERSION).to_owned()),
    );
    serde_json::to_vec(&m)
        .map(Bytes::from)
        .map_err(|e| TranslateError::BadRequest(e.to_string()))
}

impl Translator for GcpAnthropic {
    fn provider_name(&self) -> &'static str {
        PROVIDER
    }

    fn request(
        &self,
        ctx: &RequestCtx<'_>,
        body: &Bytes,
    ) -> Result<UpstreamRequest, TranslateError> {
        let object = parse_object(body)?;
        let mut headers = vec![json_content_type()];
        let (object, model_in_body) = match ctx.operation {
            Operation::Chat => {
                let Value::Object(m) = anthropic::request_body(&object, ctx.model, ctx.stream)?
                else {
                    return Err(TranslateError::BadRequest(
                        "the Messages translation is not an object".into(),
                    ));
                };
                (m, false)
            }
            Operation::Messages | Operation::CountTokens => {
                for beta in ctx.client_headers.get_all(BETA_HEADER) {
                    headers.push((BETA_HEADER, beta.clone()));
                }
                (object, ctx.operation == Operation::CountTokens)
            }
            Operation::Completions
            | Operation::Embeddings
            | Operation::Responses
            | Operation::Rerank => {
                return Err(TranslateError::Unsupported(format!(
                    "{} is not available on GCPAnthropic backends (chat completions and Anthropic messages only)",
                    ctx.path_and_query
                )))
            }
        };
        if model_in_body {
            // count-tokens takes the model in the body, under its Vertex name.
            let mut m = object;
            m.insert("model".into(), Value::String(ctx.model.to_owned()));
            let body = serde_json::to_vec(&m)
                .map(Bytes::from)
                .map_err(|e| TranslateError::BadRequest(e.to_string()))?;
            return Ok(UpstreamRequest {
                path_and_query: vertex_path(
                    ctx.gcp,
                    "anthropic",
                    "count-tokens",
                    "rawPredict",
                    None,
                )?,
                body,
                headers,
            });
        }
        let method = if ctx.stream {
            "streamRawPredict"
        } else {
            "rawPredict"
        };
        Ok(UpstreamRequest {
            path_and_query: vertex_path(ctx.gcp, "anthropic", ctx.model, method, None)?,
            body: vertex_body(object, ctx.schema_version)?,
            headers,
        })
    }

    fn response(
        &self,
        ctx: &ResponseCtx,
        status: StatusCode,
        _headers: &HeaderMap,
    ) -> Option<Box<dyn BodyTransform>> {
        let code = status.as_u16();
        if !status.is_success() {
            let messages = ctx.operation.is_messages();
            return Some(Box::new(Buffered::new(move |b: &[u8]| {
                Ok(if messages {
                    anthropic_error(code, b)
                } else {
                    anthropic::error_body(code, b)
                })
            })));
        }
        match ctx.operation {
            // Vertex answers the Messages body and events themselves; a stream is watched (held until
            // content, judged at its end) as Anthropic's is.
            Operation::Messages | Operation::CountTokens if !ctx.stream => None,
            Operation::Messages | Operation::CountTokens => Some(Box::new(MessagesStream::new())),
            _ if ctx.stream => Some(Box::new(StreamTransform::new(ctx.clone()))),
            _ => {
                let ctx = ctx.clone();
                Some(Box::new(Buffered::new(move |b: &[u8]| {
                    anthropic::response_body(&ctx, b)
                })))
            }
        }
    }
}

/// A Vertex error in Anthropic's shape for a Messages client: the model's own Anthropic error as it is,
/// a Google API error (`{"error":{"code","message","status"}}`) as the Anthropic error of its status.
pub fn anthropic_error(status: u16, body: &[u8]) -> Bytes {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let err = v.as_ref().and_then(|v| v.get("error"));
    if err.and_then(|e| e.get("type")).is_some() {
        return Bytes::copy_from_slice(body);
    }
    let text = match err.and_then(|e| e.get("message")).and_then(Value::as_str) {
        Some(m) => match err.and_then(|e| e.get("status")).and_then(Value::as_str) {
            Some(s) => format!("Vertex AI: {s}: {m}"),
            None => format!("Vertex AI: {m}"),
        },
        None => {
            let e = super::excerpt(body);
            if e.trim().is_empty() {
                format!("Vertex AI answered HTTP {status}")
            } else {
                format!("Vertex AI answered HTTP {status}: {e}")
            }
        }
    };
    messages::error_json(messages::error_type(status), &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LOC: GcpLocation<'static> = GcpLocation {
        project: "proj-1",
        region: "us-east5",
    };

    fn req<'a>(
        op: Operation,
        pq: &'a PathAndQuery,
        model: &'a str,
        stream: bool,
        headers: &'a HeaderMap,
        gcp: Option<GcpLocation<'a>>,
    ) -> RequestCtx<'a> {
        RequestCtx {
            operation: op,
            path_and_query: pq,
            model,
            model_overridden: false,
            stream,
            schema_version: None,
            client_headers: headers,
            gcp,
        }
    }

    /// (name, ctx, body, path, body sent, `anthropic-beta` header sent)
    type Row<'a> = (
        &'a str,
        RequestCtx<'a>,
        &'a Bytes,
        String,
        Value,
        Option<&'a str>,
    );

    fn body_of(r: &UpstreamRequest) -> Value {
        serde_json::from_slice(&r.body).expect("json")
    }

    #[test]
    fn requests_per_operation() {
        let chat_pq = PathAndQuery::from_static("/v1/chat/completions");
        let msg_pq = PathAndQuery::from_static("/anthropic/v1/messages");
        let count_pq = PathAndQuery::from_static("/anthropic/v1/messages/count_tokens");
        let no_headers = HeaderMap::new();
        let mut betas = HeaderMap::new();
        betas.insert(BETA_HEADER, "tools-2024-05-16".parse().expect("hv"));
        let model = "claude-sonnet-4@20250514";
        let base = "/v1/projects/proj-1/locations/us-east5/publishers/anthropic/models";
        let chat = Bytes::from(
            json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]})
                .to_string(),
        );
        let messages = Bytes::from(
            json!({"model": "m", "max_tokens": 5, "stream": true,
                   "messages": [{"role": "user", "content": "hi"}]})
            .to_string(),
        );
        let rows: [Row<'_>; 5] = [
            (
                "chat, streamed",
                req(
                    Operation::Chat,
                    &chat_pq,
                    model,
                    true,
                    &no_headers,
                    Some(LOC),
                ),
                &chat,
                format!("{base}/{model}:streamRawPredict"),
                json!({"anthropic_version": VERTEX_ANTHROPIC_VERSION, "max_tokens": 4096, "stream": true,
                       "messages": [{"role": "user", "content": "hi"}]}),
                None,
            ),
            (
                "chat",
                req(
                    Operation::Chat,
                    &chat_pq,
                    model,
                    false,
                    &no_headers,
                    Some(LOC),
                ),
                &Bytes::from(
                    json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
                        .to_string(),
                ),
                format!("{base}/{model}:rawPredict"),
                json!({"anthropic_version": VERTEX_ANTHROPIC_VERSION, "max_tokens": 4096,
                       "messages": [{"role": "user", "content": "hi"}]}),
                None,
            ),
            (
                "messages, streamed, with betas",
                req(Operation::Messages, &msg_pq, model, true, &betas, Some(LOC)),
                &messages,
                format!("{base}/{model}:streamRawPredict"),
                json!({"anthropic_version": VERTEX_ANTHROPIC_VERSION, "max_tokens": 5, "stream": true,
                       "messages": [{"role": "user", "content": "hi"}]}),
                Some("tools-2024-05-16"),
            ),
            (
                "messages",
                req(
                    Operation::Messages,
                    &msg_pq,
                    model,
                    false,
                    &no_headers,
                    Some(LOC),
                ),
                &Bytes::from(json!({"model": "m", "max_tokens": 5, "messages": []}).to_string()),
                format!("{base}/{model}:rawPredict"),
                json!({"anthropic_version": VERTEX_ANTHROPIC_VERSION, "max_tokens": 5, "messages": []}),
                None,
            ),
            (
                "count tokens: the model in the body",
                req(
                    Operation::CountTokens,
                    &count_pq,
                    model,
                    false,
                    &no_headers,
                    Some(LOC),
                ),
                &Bytes::from(json!({"model": "m", "messages": []}).to_string()),
                format!("{base}/count-tokens:rawPredict"),
                json!({"model": model, "messages": []}),
                None,
            ),
        ];
        for (name, ctx, body, path, want, beta) in rows {
            let r = GcpAnthropic.request(&ctx, body).expect(name);
            assert_eq!(r.path_and_query.as_str(), path, "{name}");
            assert_eq!(body_of(&r), want, "{name}");
            let got = r
                .headers
                .iter()
                .find(|(n, _)| *n == BETA_HEADER)
                .and_then(|(_, v)| v.to_str().ok());
            assert_eq!(got, beta, "{name}");
        }
    }

    #[test]
    fn schema_version_and_refusals() {
        let pq = PathAndQuery::from_static("/anthropic/v1/messages");
        let h = HeaderMap::new();
        let body = Bytes::from_static(br#"{"model":"m","max_tokens":1,"messages":[]}"#);
        let mut ctx = req(Operation::Messages, &pq, "claude", false, &h, Some(LOC));
        ctx.schema_version = Some("vertex-2099-01-01");
        let r = GcpAnthropic.request(&ctx, &body).expect("ok");
        assert_eq!(body_of(&r)["anthropic_version"], "vertex-2099-01-01");
        // No GCPCredentials policy: no project or region to send to.
        ctx.gcp = None;
        let err = GcpAnthropic.request(&ctx, &body).expect_err("no location");
        assert!(err.to_string().contains("GCPCredentials"), "{err}");
        // Embeddings are not Claude's.
        let pq = PathAndQuery::from_static("/v1/embeddings");
        let ctx = req(Operation::Embeddings, &pq, "claude", false, &h, Some(LOC));
        let err = GcpAnthropic
            .request(&ctx, &Bytes::from_static(b"{}"))
            .expect_err("refused");
        assert!(err.to_string().contains("GCPAnthropic"), "{err}");
        // Names are encoded as one segment each.
        let p = vertex_path(
            Some(GcpLocation {
                project: "a/b",
                region: "r",
            }),
            "anthropic",
            "m?x",
            "rawPredict",
            None,
        )
        .expect("path");
        assert_eq!(
            p.as_str(),
            "/v1/projects/a%2Fb/locations/r/publishers/anthropic/models/m%3Fx:rawPredict"
        );
    }

    #[test]
    fn google_errors_become_anthropic_errors_for_messages_clients() {
        let google = br#"{"error":{"code":429,"message":"Quota exceeded for aiplatform.googleapis.com","status":"RESOURCE_EXHAUSTED"}}"#;
        let v: Value = serde_json::from_slice(&anthropic_error(429, google)).expect("json");
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(
            v["error"]["message"],
            "Vertex AI: RESOURCE_EXHAUSTED: Quota exceeded for aiplatform.googleapis.com"
        );
        let own = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(&anthropic_error(529, own)[..], &own[..]);
        let v: Value = serde_json::from_slice(&anthropic_error(503, b"")).expect("json");
        assert_eq!(v["error"]["message"], "Vertex AI answered HTTP 503");
        // A chat client gets OpenAI's shape with Google's message.
        let v: Value = serde_json::from_slice(&anthropic::error_body(429, google)).expect("json");
        assert_eq!(
            v["error"]["message"],
            "Quota exceeded for aiplatform.googleapis.com"
        );
    }
}
