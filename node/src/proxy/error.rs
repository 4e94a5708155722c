//! Gateway-local errors as OpenAI error JSON: `{"error":{"message","type","code"}}` (DESIGN §3), so that
//! OpenAI SDKs surface them like any provider error.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::proxy::body::ProxyBody;

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
        let mut resp = Response::new(ProxyBody::full(self.json()));
        *resp.status_mut() = self.status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}
