//! Gateway-local errors as OpenAI error JSON: `{"error":{"message","type","code"}}` (DESIGN §3), so that
//! OpenAI SDKs surface them like any provider error; for Anthropic Messages clients
//! (`/anthropic/v1/messages`) in Anthropic's shape, `{"type":"error","error":{"type","message"}}`, so the
//! Anthropic SDKs do the same (and retry what they retry: 429, 5xx, 529).

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::proxy::body::ProxyBody;

/// Which client API an error answers: its body's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// OpenAI's error JSON.
    OpenAi,
    /// Anthropic's error JSON.
    Anthropic,
}

impl ErrorShape {
    /// The shape of an endpoint's errors, by its `gen_ai_operation_name`.
    pub fn of(operation: &str) -> ErrorShape {
        match operation {
            "messages" | "count_tokens" => ErrorShape::Anthropic,
            _ => ErrorShape::OpenAi,
        }
    }
}

/// Every error the gateway answers itself (DESIGN §3): what happened, with its one HTTP status, OpenAI
/// `type` and `code` in [`Catalogue::meta`], so that a status or a code never differs between two places
/// that mean the same thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Catalogue {
    /// The body is not a UTF-8 JSON object.
    InvalidJson,
    /// The body could not be read from the client.
    BodyReadError,
    /// The body has no `model`.
    MissingModel,
    /// An HTTP/1.1 request without exactly one `Host`.
    InvalidHost,
    /// A stored-response id that cannot be one.
    InvalidResponseId,
    /// The body is over `--max-request-body`.
    RequestTooLarge,
    /// The body did not arrive in time.
    RequestTimeout,
    /// No such endpoint.
    UnknownUrl,
    /// The endpoint takes another method.
    MethodNotAllowed,
    /// No rule matches the model.
    ModelNotFound,
    /// No backend holds the stored response.
    ResponseNotFound,
    /// The request cannot be translated for the chosen backend (a field it cannot honour).
    TranslationFailed,
    /// No backend of the rule serves the endpoint.
    UnsupportedEndpoint,
    /// The backend's credential is missing, not yet fetched, or failed to refresh.
    MissingBackendCredential,
    /// The backend's credential cannot be put in a header.
    InvalidBackendCredential,
    /// Every backend of the rule is in its rate-limit cooldown (extension).
    AllBackendsCoolingDown,
    /// A bug or an impossible state, said plainly.
    Internal,
    /// SigV4 signing failed.
    SigningFailed,
    /// No host to send to (all ejected, none in panic).
    NoHealthyUpstream,
    /// The attempts failed without an answer (connect, reset, TLS).
    UpstreamUnavailable,
    /// The listener's connection limit is reached.
    TooManyConnections,
    /// The route or per-try timeout expired.
    UpstreamTimeout,
}

impl Catalogue {
    /// HTTP status, OpenAI `type`, `code`.
    pub fn meta(self) -> (StatusCode, &'static str, &'static str) {
        use Catalogue as C;
        const BAD: &str = "invalid_request_error";
        const SERVER: &str = "server_error";
        match self {
            C::InvalidJson => (StatusCode::BAD_REQUEST, BAD, "invalid_json"),
            C::BodyReadError => (StatusCode::BAD_REQUEST, BAD, "body_read_error"),
            C::MissingModel => (StatusCode::BAD_REQUEST, BAD, "missing_model"),
            C::InvalidHost => (StatusCode::BAD_REQUEST, BAD, "invalid_host"),
            C::InvalidResponseId => (StatusCode::BAD_REQUEST, BAD, "invalid_response_id"),
            C::RequestTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, BAD, "request_too_large"),
            C::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, BAD, "request_timeout"),
            C::UnknownUrl => (StatusCode::NOT_FOUND, BAD, "unknown_url"),
            C::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, BAD, "method_not_allowed"),
            C::ModelNotFound => (StatusCode::NOT_FOUND, BAD, "model_not_found"),
            C::ResponseNotFound => (StatusCode::NOT_FOUND, BAD, "response_not_found"),
            C::TranslationFailed => (StatusCode::UNPROCESSABLE_ENTITY, BAD, "translation_failed"),
            C::UnsupportedEndpoint => (
                StatusCode::UNPROCESSABLE_ENTITY,
                BAD,
                "unsupported_endpoint",
            ),
            C::MissingBackendCredential => (
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "missing_backend_credential",
            ),
            C::InvalidBackendCredential => (
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid_backend_credential",
            ),
            C::AllBackendsCoolingDown => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                "all_backends_cooling_down",
            ),
            C::Internal => (StatusCode::INTERNAL_SERVER_ERROR, SERVER, "internal"),
            C::SigningFailed => (StatusCode::INTERNAL_SERVER_ERROR, SERVER, "signing_failed"),
            C::NoHealthyUpstream => (
                StatusCode::SERVICE_UNAVAILABLE,
                SERVER,
                "no_healthy_upstream",
            ),
            C::UpstreamUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                SERVER,
                "upstream_unavailable",
            ),
            C::TooManyConnections => (
                StatusCode::SERVICE_UNAVAILABLE,
                SERVER,
                "too_many_connections",
            ),
            C::UpstreamTimeout => (StatusCode::GATEWAY_TIMEOUT, SERVER, "upstream_timeout"),
        }
    }
}

/// A gateway-generated error response.
#[derive(Debug, Clone)]
pub struct GatewayError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message (never contains secrets).
    pub message: String,
    /// OpenAI `type` (`invalid_request_error`, `authentication_error`, `server_error`, …).
    pub kind: &'static str,
    /// OpenAI `code` (machine-readable).
    pub code: &'static str,
}

impl GatewayError {
    /// The error `what`, saying `message` (never a secret).
    pub fn of(what: Catalogue, message: impl Into<String>) -> Self {
        let (status, kind, code) = what.meta();
        GatewayError {
            status,
            message: message.into(),
            kind,
            code,
        }
    }

    /// The JSON body.
    pub fn json(&self) -> Bytes {
        Bytes::from(
            serde_json::json!({
                "error": {"message": self.message, "type": self.kind, "code": self.code, "param": null}
            })
            .to_string(),
        )
    }

    /// The whole response.
    pub fn into_response(self) -> Response<ProxyBody> {
        self.into_response_as(ErrorShape::OpenAi)
    }

    /// The whole response, its body in `shape`.
    pub fn into_response_as(self, shape: ErrorShape) -> Response<ProxyBody> {
        let body = match shape {
            ErrorShape::OpenAi => self.json(),
            ErrorShape::Anthropic => crate::schema::messages::error_json(
                crate::schema::messages::error_type(self.status.as_u16()),
                &self.message,
            ),
        };
        let mut resp = Response::new(ProxyBody::full(body));
        *resp.status_mut() = self.status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Catalogue; 22] = [
        Catalogue::InvalidJson,
        Catalogue::BodyReadError,
        Catalogue::MissingModel,
        Catalogue::InvalidHost,
        Catalogue::InvalidResponseId,
        Catalogue::RequestTooLarge,
        Catalogue::RequestTimeout,
        Catalogue::UnknownUrl,
        Catalogue::MethodNotAllowed,
        Catalogue::ModelNotFound,
        Catalogue::ResponseNotFound,
        Catalogue::TranslationFailed,
        Catalogue::UnsupportedEndpoint,
        Catalogue::MissingBackendCredential,
        Catalogue::InvalidBackendCredential,
        Catalogue::AllBackendsCoolingDown,
        Catalogue::Internal,
        Catalogue::SigningFailed,
        Catalogue::NoHealthyUpstream,
        Catalogue::UpstreamUnavailable,
        Catalogue::TooManyConnections,
        Catalogue::UpstreamTimeout,
    ];

    #[test]
    fn codes_are_unique_and_types_agree_with_statuses() {
        let mut codes = std::collections::BTreeSet::new();
        for what in ALL {
            let (status, kind, code) = what.meta();
            assert!(codes.insert(code), "{code} twice");
            let want = match status.as_u16() {
                401 => "authentication_error",
                429 => "rate_limit_exceeded",
                400..=499 => "invalid_request_error",
                _ => "server_error",
            };
            assert_eq!(kind, want, "{what:?}");
        }
    }

    #[test]
    fn both_shapes_carry_the_status_and_message() {
        let e = GatewayError::of(
            Catalogue::NoHealthyUpstream,
            "no healthy upstream for model \"m\"",
        );
        let openai = e.clone().into_response();
        assert_eq!(openai.status(), StatusCode::SERVICE_UNAVAILABLE);
        let anthropic = e.into_response_as(ErrorShape::Anthropic);
        assert_eq!(anthropic.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
