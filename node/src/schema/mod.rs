//! Provider schemas (DESIGN §8): how an OpenAI-schema request becomes a provider request, and how the
//! provider's answer (body, streamed chunks, errors, `usage`) becomes what an OpenAI client expects.
//!
//! Every provider is one [`Translator`]; the attempt loop (`proxy::forward`) asks [`translator`] for the
//! chosen backend's one on every attempt, so a request can fail over between providers and is re-translated
//! from the original body each time. Translators are pure: no I/O, no clock (time and ids come in through
//! [`ResponseCtx`]). Response bodies are rewritten frame by frame through a [`BodyTransform`], which
//! `proxy::body` drives, so streams stay streams and keep their truncation behaviour.
//!
//! Credentials (API keys, SigV4) are not a translation concern and live in [`auth`].

pub mod anthropic;
pub mod auth;
pub mod aws_anthropic;
pub mod azure;
pub mod bedrock;
pub mod chat;
pub mod cohere;
pub mod eventstream;
pub mod fields;
pub mod fuzz;
pub mod gcp_anthropic;
pub mod gemini;
pub mod messages;
pub mod openai;
pub mod reply;
pub mod responses;
pub mod sse;
pub mod thinking;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{json, Value};

use crate::config::model::SchemaName;

/// A provider path (built from the model and the endpoint) as a request target.
pub fn provider_path(path: String) -> Result<PathAndQuery, TranslateError> {
    PathAndQuery::try_from(path)
        .map_err(|e| TranslateError::BadRequest(format!("cannot form the upstream path: {e}")))
}

/// Largest upstream body a buffering transform holds (non-streamed answers and errors).
pub const MAX_BUFFERED_BODY: usize = 16 << 20;

/// Why a translation failed. Request-side failures answer 422; response-side ones truncate the response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The client body could not be read as the JSON the translation needs.
    #[error("request body cannot be translated: {0}")]
    BadRequest(String),
    /// The request uses an endpoint or feature the provider's schema has no equivalent for.
    #[error("{0}")]
    Unsupported(String),
    /// The provider answered something that does not follow its own wire format.
    #[error("malformed {provider} response: {detail}")]
    BadUpstream {
        /// Provider name.
        provider: &'static str,
        /// What was wrong (no body content beyond a short excerpt).
        detail: String,
    },
    /// The provider reported an error inside a stream (Bedrock exception event, Anthropic `error` event).
    #[error("{provider} stream error ({kind}): {message}")]
    StreamError {
        /// Provider name.
        provider: &'static str,
        /// Provider error type, e.g. `throttlingException`.
        kind: String,
        /// Provider message.
        message: String,
    },
    /// The stream ended cleanly but without the provider's final event.
    #[error("{0} stream ended before its final event")]
    Incomplete(&'static str),
    /// A buffered body grew past [`MAX_BUFFERED_BODY`].
    #[error("upstream body larger than {MAX_BUFFERED_BODY} bytes")]
    TooLarge,
}

/// The client endpoint being translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/completions`.
    Completions,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /v1/responses` (OpenAI-schema backends only).
    Responses,
    /// `POST /anthropic/v1/messages`: Anthropic Messages in (Anthropic-schema backends only).
    Messages,
    /// `POST /anthropic/v1/messages/count_tokens`.
    CountTokens,
    /// `POST /cohere/v2/rerank`: Cohere's rerank API, passed through (Cohere-schema backends only).
    Rerank,
}

impl Operation {
    /// From the `gen_ai_operation_name` the handler uses.
    pub fn from_name(name: &str) -> Operation {
        match name {
            "chat" => Operation::Chat,
            "completion" => Operation::Completions,
            "responses" => Operation::Responses,
            "messages" => Operation::Messages,
            "count_tokens" => Operation::CountTokens,
            "rerank" => Operation::Rerank,
            _ => Operation::Embeddings,
        }
    }

    /// The OpenAI path suffix after `/v1` (and after the deployment for Azure).
    pub fn openai_suffix(self) -> &'static str {
        match self {
            Operation::Chat => "/chat/completions",
            Operation::Completions => "/completions",
            Operation::Embeddings => "/embeddings",
            Operation::Responses => "/responses",
            Operation::Messages => "/messages",
            Operation::CountTokens => "/messages/count_tokens",
            Operation::Rerank => "/rerank",
        }
    }

    /// Whether the client speaks Anthropic's Messages API (its answers and errors keep that shape).
    pub fn is_messages(self) -> bool {
        matches!(self, Operation::Messages | Operation::CountTokens)
    }

    /// The refusal of a backend whose schema cannot rerank (Envoy AI Gateway serves `/cohere/v2/rerank` from
    /// Cohere-schema backends only).
    pub fn rerank_unsupported(provider: &str) -> TranslateError {
        TranslateError::Unsupported(format!(
            "Cohere's rerank API (/cohere/v2/rerank) is served by Cohere backends only, not by a {provider} backend"
        ))
    }

    /// The refusal of a backend whose schema cannot take Anthropic Messages in (Envoy AI Gateway serves
    /// `/anthropic/v1/messages` from Anthropic-schema backends only).
    pub fn messages_unsupported(provider: &str) -> TranslateError {
        TranslateError::Unsupported(format!(
            "the Anthropic Messages API (/anthropic/v1/messages) is served by Anthropic, AWSAnthropic and GCPAnthropic backends only, not by a {provider} backend"
        ))
    }
}

/// What a translator needs to know about the client request.
#[derive(Debug, Clone)]
pub struct RequestCtx<'a> {
    /// The endpoint.
    pub operation: Operation,
    /// Path and query as the client sent them.
    pub path_and_query: &'a PathAndQuery,
    /// The model to send: the body's `model`, or the backendRef's `modelNameOverride`.
    pub model: &'a str,
    /// Whether `model` is an override, so a body sent as is must have its `model` replaced.
    pub model_overridden: bool,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// `schema.version` of the backend (the Azure `api-version`, the AWSAnthropic `anthropic_version`).
    pub schema_version: Option<&'a str>,
    /// The client's headers (Anthropic Messages in: `anthropic-version` and `anthropic-beta` are passed
    /// on).
    pub client_headers: &'a HeaderMap,
    /// The Vertex AI project and region (the backend's `GCPCredentials` policy), for GCP schemas.
    pub gcp: Option<crate::config::model::GcpLocation<'a>>,
}

/// A translated request, without credentials.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    /// Path and query to send (the client's, shared, for passthrough schemas).
    pub path_and_query: PathAndQuery,
    /// Body to send.
    pub body: Bytes,
    /// Headers the schema requires (never secrets; credentials are added by [`auth`]).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// What a response translation needs to know; fixed per client request so every attempt agrees.
#[derive(Debug, Clone)]
pub struct ResponseCtx {
    /// The client's endpoint: Anthropic Messages clients get Anthropic-shaped answers and errors.
    pub operation: Operation,
    /// The client's `model` (Bedrock answers do not name one).
    pub model: Arc<str>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// `stream_options.include_usage`: emit the final usage chunk.
    pub include_usage: bool,
    /// Completion id for providers that give none (`chatcmpl-…`).
    pub id: CompletionId,
    /// `created` (Unix seconds) for providers that give none.
    pub created: u64,
}

/// A `chatcmpl-…` id, formatted only when a translator reads it: OpenAI-shaped answers carry their own, so
/// most requests never need one.
#[derive(Debug, Clone)]
pub struct CompletionId {
    seed: u128,
    text: std::sync::OnceLock<String>,
}

impl CompletionId {
    /// The id `chatcmpl-` + 24 hex digits of `seed`.
    pub fn from_seed(seed: u128) -> Self {
        CompletionId {
            seed,
            text: std::sync::OnceLock::new(),
        }
    }
}

impl std::ops::Deref for CompletionId {
    type Target = str;

    fn deref(&self) -> &str {
        self.text
            .get_or_init(|| format!("chatcmpl-{:024x}", self.seed))
    }
}

impl From<&str> for CompletionId {
    fn from(id: &str) -> Self {
        CompletionId {
            seed: 0,
            text: std::sync::OnceLock::from(id.to_string()),
        }
    }
}

/// The HTTP status a provider's in-stream error stands for, so that an attempt failed by one is classified
/// like the equivalent answer (DESIGN §3.6): Bedrock exception names and Anthropic error types by their
/// documented statuses, a body that breaks the provider's wire format as 502. `None` for a stream that
/// merely ended early, which is a reset.
pub fn stream_error_status(err: &TranslateError) -> Option<u16> {
    match err {
        TranslateError::StreamError { provider, kind, .. } => Some(match *provider {
            "aws.bedrock" => bedrock::exception_status(kind),
            "anthropic" => anthropic::error_status(kind),
            _ => 500,
        }),
        TranslateError::Incomplete(_) => None,
        TranslateError::BadUpstream { .. }
        | TranslateError::TooLarge
        | TranslateError::BadRequest(_)
        | TranslateError::Unsupported(_) => Some(502),
    }
}

/// Rewrites a response body frame by frame.
pub trait BodyTransform: Send {
    /// The `Content-Type` of the rewritten body.
    fn content_type(&self) -> &'static str;
    /// Whether the rewritten body is SSE (then a truncation ends it with an SSE error event).
    fn is_sse(&self) -> bool;
    /// Consumes the next upstream bytes, appending output to `out`. On error, `out` keeps what was
    /// produced before it.
    fn feed(&mut self, data: &[u8], out: &mut BytesMut) -> Result<(), TranslateError>;
    /// The upstream body ended cleanly: append the rest of the output.
    fn finish(&mut self, out: &mut BytesMut) -> Result<(), TranslateError>;
    /// The SSE event that tells the client its stream was cut, when the output is not OpenAI's chunk
    /// stream (Anthropic Messages clients get an Anthropic `error` event); `None`: the OpenAI one.
    fn truncation_event(&self, _message: &str) -> Option<Bytes> {
        None
    }
    /// Whether the output holds itself back until its first content and checks its own end, so the
    /// OpenAI stream watch must not judge it (an Anthropic event stream has no `choices`).
    fn self_watched(&self) -> bool {
        false
    }
}

/// One provider's schema.
pub trait Translator: Send + Sync {
    /// `gen_ai_provider_name` (OTel GenAI semantic conventions).
    fn provider_name(&self) -> &'static str;
    /// Translates the client's original body into the provider's request.
    fn request(
        &self,
        ctx: &RequestCtx<'_>,
        body: &Bytes,
    ) -> Result<UpstreamRequest, TranslateError>;
    /// The transform for a response with `status` and `headers`, or `None` to pass it through untouched.
    fn response(
        &self,
        ctx: &ResponseCtx,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Option<Box<dyn BodyTransform>>;
}

/// The translator of a schema.
pub fn translator(schema: SchemaName) -> &'static dyn Translator {
    match schema {
        SchemaName::OpenAI => &openai::OpenAi,
        SchemaName::AwsBedrock => &bedrock::Bedrock,
        SchemaName::AzureOpenAI => &azure::Azure,
        SchemaName::Anthropic => &anthropic::Anthropic,
        SchemaName::Cohere => &cohere::Cohere,
        SchemaName::AwsAnthropic => &aws_anthropic::AwsAnthropic,
        SchemaName::GcpAnthropic => &gcp_anthropic::GcpAnthropic,
        SchemaName::GcpVertexAI => &gemini::Gemini,
    }
}

/// Parses a client body as a JSON object.
pub fn parse_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, TranslateError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(TranslateError::BadRequest(
            "body is not a JSON object".into(),
        )),
        Err(e) => Err(TranslateError::BadRequest(e.to_string())),
    }
}

/// The client body with its `model` replaced (a `modelNameOverride` on a passthrough schema). Only
/// overridden requests pay for the re-encoding.
pub fn with_model(body: &Bytes, model: &str) -> Result<Bytes, TranslateError> {
    let mut m = parse_object(body)?;
    m.insert("model".into(), Value::String(model.to_owned()));
    serde_json::to_vec(&m)
        .map(Bytes::from)
        .map_err(|e| TranslateError::BadRequest(e.to_string()))
}

/// A `Content-Type: application/json` header.
pub fn json_content_type() -> (HeaderName, HeaderValue) {
    (
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )
}

/// The OpenAI error `type` for an HTTP status (the values the OpenAI API itself uses).
pub fn openai_error_type(status: u16) -> &'static str {
    match status {
        400 | 404 | 405 | 409 | 413 | 415 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_exceeded",
        _ => "server_error",
    }
}

/// An OpenAI error body: `{"error":{"message","type","param","code"}}`.
pub fn openai_error(status: u16, message: &str, code: Option<&str>) -> Value {
    json!({"error": {
        "message": message,
        "type": openai_error_type(status),
        "param": null,
        "code": code,
    }})
}

/// `stream_options.include_usage` of a client body.
pub fn include_usage(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.pointer("/stream_options/include_usage")?.as_bool())
        .unwrap_or(false)
}

/// One `chat.completion.chunk` event (`data: {...}\n\n`).
pub fn chunk_event(ctx: &ResponseCtx, id: &str, model: &str, delta: Value, finish: Value) -> Bytes {
    let chunk = json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": ctx.created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
    });
    Bytes::from(format!("data: {chunk}\n\n"))
}

/// The final usage chunk (`choices: []`), sent when the client asked `include_usage`.
pub fn usage_event(ctx: &ResponseCtx, id: &str, model: &str, usage: Value) -> Bytes {
    let chunk = json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": ctx.created,
        "model": model,
        "choices": [],
        "usage": usage,
    });
    Bytes::from(format!("data: {chunk}\n\n"))
}

/// The end of an OpenAI stream.
pub const SSE_DONE: &[u8] = b"data: [DONE]\n\n";

/// A transform that buffers the whole body and rewrites it once at the end (non-streamed answers, errors).
pub struct Buffered<F> {
    buf: Vec<u8>,
    rewrite: F,
}

impl<F> Buffered<F>
where
    F: FnMut(&[u8]) -> Result<Bytes, TranslateError> + Send,
{
    /// Buffers and then applies `rewrite`.
    pub fn new(rewrite: F) -> Self {
        Buffered {
            buf: Vec::new(),
            rewrite,
        }
    }
}

impl<F> BodyTransform for Buffered<F>
where
    F: FnMut(&[u8]) -> Result<Bytes, TranslateError> + Send,
{
    fn content_type(&self) -> &'static str {
        "application/json"
    }
    fn is_sse(&self) -> bool {
        false
    }
    fn feed(&mut self, data: &[u8], _out: &mut BytesMut) -> Result<(), TranslateError> {
        if self.buf.len() + data.len() > MAX_BUFFERED_BODY {
            return Err(TranslateError::TooLarge);
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }
    fn finish(&mut self, out: &mut BytesMut) -> Result<(), TranslateError> {
        let rewritten = (self.rewrite)(&self.buf)?;
        out.extend_from_slice(&rewritten);
        Ok(())
    }
}

/// The response transform of a schema that translates answers to OpenAI's: an error body rewritten by
/// `error` (keeping its status), a stream by the transform `stream` builds, a whole answer by `answer`.
pub fn translated_response<S: BodyTransform + 'static>(
    ctx: &ResponseCtx,
    status: StatusCode,
    error: fn(u16, &[u8]) -> Bytes,
    stream: fn(ResponseCtx) -> S,
    answer: fn(&ResponseCtx, &[u8]) -> Result<Bytes, TranslateError>,
) -> Box<dyn BodyTransform> {
    if !status.is_success() {
        let code = status.as_u16();
        return Box::new(Buffered::new(move |b: &[u8]| Ok(error(code, b))));
    }
    if ctx.stream {
        return Box::new(stream(ctx.clone()));
    }
    let ctx = ctx.clone();
    Box::new(Buffered::new(move |b: &[u8]| answer(&ctx, b)))
}

/// A short, printable excerpt of a provider body for error messages.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    s
}

/// A provider error of the common `{"error":{"message", <code_field>}}` shape → OpenAI error JSON, its
/// `code_field` (Anthropic's `type`, Google's `status`) as the `code`; anything else is wrapped as text.
pub fn nested_error(status: u16, provider: &str, code_field: &str, body: &[u8]) -> Bytes {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let err = v.as_ref().and_then(|v| v.get("error"));
    match err.and_then(|e| e.get("message")).and_then(Value::as_str) {
        Some(m) => {
            let code = err.and_then(|e| e.get(code_field)).and_then(Value::as_str);
            Bytes::from(openai_error(status, m, code).to_string())
        }
        None => opaque_error(status, provider, body),
    }
}

/// An error body from a provider that is not OpenAI-shaped: keeps the status, wraps the text.
pub fn opaque_error(status: u16, provider: &str, body: &[u8]) -> Bytes {
    let text = excerpt(body);
    let message = if text.trim().is_empty() {
        format!("{provider} answered HTTP {status}")
    } else {
        format!("{provider} answered HTTP {status}: {text}")
    };
    Bytes::from(openai_error(status, &message, None).to_string())
}

/// The OpenAI chunks of a translated stream (its `data:` events but `[DONE]`), for the translators' tests.
#[cfg(test)]
pub(crate) fn chunk_events(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("a chunk is JSON"))
        .collect()
}

/// The first choice's `delta` of every chunk in a translated stream.
#[cfg(test)]
pub(crate) fn chunk_deltas(out: &[u8]) -> Vec<Value> {
    chunk_events(out)
        .into_iter()
        .map(|c| c["choices"][0]["delta"].clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_usage_is_read() {
        assert!(include_usage(
            br#"{"stream_options":{"include_usage":true}}"#
        ));
        assert!(!include_usage(b"{}"));
    }

    #[test]
    fn error_types_follow_openai() {
        for (status, kind) in [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (429, "rate_limit_exceeded"),
            (500, "server_error"),
            (503, "server_error"),
        ] {
            assert_eq!(openai_error(status, "m", None)["error"]["type"], kind);
        }
        let v: Value = serde_json::from_slice(&opaque_error(502, "p", b"<html>")).expect("json");
        assert_eq!(v["error"]["message"], "p answered HTTP 502: <html>");
    }
}
