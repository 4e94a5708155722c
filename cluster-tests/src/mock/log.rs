//! The request log of the mock provider.
//!
//! Tests assert on what the gateway actually sent upstream (headers it added, the body it forwarded,
//! which source address it used), so every data-port request is recorded in this shape and served as JSON
//! by `GET /requests`. The same type is deserialised by the test harness, which keeps both ends in step.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One request received on the data port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// 1-based sequence number, unique for the life of the process (not reset by `DELETE /requests`).
    pub seq: u64,
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path and query as sent, e.g. `/v1/chat/completions`.
    pub path: String,
    /// HTTP version, e.g. `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// Headers with lower-case names; repeated headers are joined with `", "`.
    pub headers: BTreeMap<String, String>,
    /// The body, as UTF-8 (invalid sequences replaced).
    pub body: String,
    /// Peer address `ip:port` of the connection.
    pub source: String,
    /// Arrival time (after the body was read) in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Bedrock requests only: the SigV4 verdict, `verified` or `invalid: REASON`.
    #[serde(default)]
    pub sigv4: Option<String>,
    /// The mode that answered it, as the control API spells modes (`{"mode":"ok"}`,
    /// `{"mode":"status","status":500}`): tells a request served before a failure from one it answered.
    #[serde(default)]
    pub mode: Option<serde_json::Value>,
}

impl RecordedRequest {
    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// A header value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}
