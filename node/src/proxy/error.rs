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
    /// Builds an error.
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        GatewayError {
            status,
            message: message.into(),
            kind,
            code,
        }
    }

    /// 400: malformed request.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message,
        )
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
