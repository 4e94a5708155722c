//! The OpenAI Responses API (`/v1/responses`) as far as the gateway must understand it (issue 17 item 4).
//!
//! The gateway passes Responses bodies through to OpenAI-schema backends; what it reads is the stream, to
//! fail over before the first content and to end a cut stream honestly (DESIGN §3.6), and a few members
//! of the request and answer. The stream is SSE with typed events (openai-python `types/responses/`):
//! `response.created`, `response.in_progress`, `response.output_item.added`, `…content_part.added`, then
//! deltas (`response.output_text.delta`, `…function_call_arguments.delta`, `…reasoning_summary_text.delta`,
//! …), their `….done` events, and one terminal event: `response.completed`, `response.incomplete` or
//! `response.failed`; or an `error` event (`{"type":"error","code","message","param","sequence_number"}`).
//! Every event carries `sequence_number`.
//!
//! Pure: bytes in, classifications out. `schema::openai::StreamWatch` does the line splitting and calls
//! [`classify_event`] for Responses streams.

use serde_json::{json, Value};

use super::openai::error_event_status;
use crate::proxy::json_members::find_members;

/// The client path of a create.
pub const CREATE_PATH: &str = "/v1/responses";

/// Longest response id the gateway accepts in a path or remembers. OpenAI's are `resp_` and 50 hex digits;
/// the bound keeps what a client can make the gateway store small.
pub const MAX_ID_LEN: usize = 128;

/// What one Responses stream event means for the attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventClass {
    /// Bookkeeping before anything a user sees (`response.created`, `…in_progress`, `…added`, an empty
    /// delta): the attempt can still fail over.
    Hold,
    /// Output (a non-empty delta, a finished item or part): the answer is committed to this attempt.
    Content,
    /// The terminal event of a stream that delivered (`response.completed`, `response.incomplete`).
    End,
    /// `response.failed` or `error`: before content, the attempt's failure, as if answered `status`;
    /// after it, the upstream's own honest end.
    Failed {
        /// The HTTP status the error stands for.
        status: u16,
        /// The provider's message.
        message: String,
    },
}

/// Classifies one event's `data` payload (a JSON object); `None` when it is not one (not ours to judge).
/// Also returns its `sequence_number`, when it has one.
pub fn classify_event(payload: &[u8]) -> Option<(EventClass, Option<u64>)> {
    let [kind, seq] = find_members(payload, [b"type", b"sequence_number"]);
    let kind: String = serde_json::from_slice(kind?).ok()?;
    let seq = seq.and_then(|s| std::str::from_utf8(s).ok()?.trim().parse::<u64>().ok());
    let class = match kind.as_str() {
        "response.completed" | "response.incomplete" => EventClass::End,
        "error" => {
            let v: Value = serde_json::from_slice(payload).ok()?;
            failed(&v)
        }
        "response.failed" => {
            let v: Value = serde_json::from_slice(payload).ok()?;
            match v.pointer("/response/error").filter(|e| e.is_object()) {
                Some(err) => failed(err),
                None => EventClass::Failed {
                    status: 500,
                    message: "response.failed without an error".into(),
                },
            }
        }
        k if k.ends_with(".delta") => {
            let [delta] = find_members(payload, [b"delta"]);
            if delta.is_some_and(|d| !matches!(d, b"\"\"" | b"null" | b"{}" | b"[]")) {
                EventClass::Content
            } else {
                EventClass::Hold
            }
        }
        k if k.ends_with(".done") || k.ends_with(".completed") => EventClass::Content,
        _ => EventClass::Hold,
    };
    Some((class, seq))
}

/// An `error` event or a `response.failed`'s `error` object → the status it stands for and its message.
fn failed(err: &Value) -> EventClass {
    EventClass::Failed {
        status: error_event_status(err),
        message: err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("error event without a message")
            .to_owned(),
    }
}

/// The `error` event that ends a Responses stream the gateway had to cut (DESIGN §3.6: an honest end,
/// never a made-up `response.completed`), numbered after the last event the client got.
pub fn truncation_event(message: &str, sequence_number: u64) -> String {
    let event = json!({
        "type": "error",
        "code": "upstream_stream_truncated",
        "message": message,
        "param": null,
        "sequence_number": sequence_number,
    });
    format!("event: error\ndata: {event}\n\n")
}

/// `previous_response_id` of a create body (stateful chaining: the create should go where that response
/// lives); `None` when absent, not a string, or not a plausible id.
pub fn previous_response_id(body: &[u8]) -> Option<String> {
    let [raw] = find_members(body, [b"previous_response_id"]);
    let id: String = serde_json::from_slice(raw?).ok()?;
    valid_id(&id).then_some(id)
}

/// Whether `id` can be a response id: short, and only the characters ids are made of, so that it goes into
/// an upstream path unescaped and cannot name another path.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// An endpoint of a stored response (`/v1/responses/{id}…`), which carries no model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredOp {
    /// `GET /v1/responses/{id}`.
    Retrieve,
    /// `DELETE /v1/responses/{id}`.
    Delete,
    /// `GET /v1/responses/{id}/input_items`.
    InputItems,
    /// `POST /v1/responses/{id}/cancel`.
    Cancel,
}

impl StoredOp {
    /// The HTTP method of the endpoint.
    pub fn method(self) -> http::Method {
        match self {
            StoredOp::Retrieve | StoredOp::InputItems => http::Method::GET,
            StoredOp::Delete => http::Method::DELETE,
            StoredOp::Cancel => http::Method::POST,
        }
    }

    /// The `Allow` value of the endpoint's path.
    pub fn allow(self) -> &'static str {
        match self {
            StoredOp::Retrieve | StoredOp::Delete => "GET, DELETE",
            StoredOp::InputItems => "GET",
            StoredOp::Cancel => "POST",
        }
    }

    /// The path suffix after the id.
    pub fn suffix(self) -> &'static str {
        match self {
            StoredOp::Retrieve | StoredOp::Delete => "",
            StoredOp::InputItems => "/input_items",
            StoredOp::Cancel => "/cancel",
        }
    }
}

/// Why a stored-response path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoredPathError {
    /// Not an endpoint of the Responses API.
    #[error("unknown request URL: {0}")]
    Unknown(String),
    /// An endpoint, but not with this method.
    #[error("this endpoint accepts {0} only")]
    Method(&'static str),
    /// The id cannot be a response id.
    #[error("invalid response id (at most {MAX_ID_LEN} letters, digits, '_' or '-')")]
    BadId,
}

/// Parses `rest` (the path after `/v1/responses/`) and the method into the endpoint and the id.
pub fn stored_op<'a>(
    method: &http::Method,
    rest: &'a str,
) -> Result<(StoredOp, &'a str), StoredPathError> {
    let (id, op) = match rest.split_once('/') {
        None => match *method {
            http::Method::GET => (rest, StoredOp::Retrieve),
            http::Method::DELETE => (rest, StoredOp::Delete),
            _ => return Err(StoredPathError::Method("GET, DELETE")),
        },
        Some((id, "input_items")) => (id, StoredOp::InputItems),
        Some((id, "cancel")) => (id, StoredOp::Cancel),
        Some(_) => return Err(StoredPathError::Unknown(format!("/v1/responses/{rest}"))),
    };
    if *method != op.method() {
        return Err(StoredPathError::Method(op.allow()));
    }
    if !valid_id(id) {
        return Err(StoredPathError::BadId);
    }
    Ok((op, id))
}

/// The id of a Responses answer: top-level `id` of a response object (a non-streamed create), or
/// `response.id` of a stream event (`response.created` names it first). `None` for anything else.
pub fn answer_id(json: &[u8]) -> Option<String> {
    let [object, id, response] = find_members(json, [b"object", b"id", b"response"]);
    let (id, object) = match response {
        Some(r) if r.first() == Some(&b'{') => {
            let [object, id] = find_members(r, [b"object", b"id"]);
            (id?, object)
        }
        _ => (id?, object),
    };
    if object.is_some_and(|o| o != b"\"response\"") {
        return None;
    }
    let id: String = serde_json::from_slice(id).ok()?;
    valid_id(&id).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_classified_as_the_stream_needs() {
        let rows: [(&str, &str, Option<EventClass>); 14] = [
            (
                "created holds",
                r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","status":"in_progress","output":[]}}"#,
                Some(EventClass::Hold),
            ),
            (
                "item added holds",
                r#"{"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"type":"message","content":[]}}"#,
                Some(EventClass::Hold),
            ),
            (
                "text delta is content",
                r#"{"type":"response.output_text.delta","sequence_number":4,"delta":"Hi","item_id":"m"}"#,
                Some(EventClass::Content),
            ),
            (
                "empty delta holds",
                r#"{"type":"response.output_text.delta","sequence_number":4,"delta":""}"#,
                Some(EventClass::Hold),
            ),
            (
                "tool arguments are content",
                r#"{"type":"response.function_call_arguments.delta","sequence_number":5,"delta":"{\""}"#,
                Some(EventClass::Content),
            ),
            (
                "item done is content",
                r#"{"type":"response.output_item.done","sequence_number":9,"item":{}}"#,
                Some(EventClass::Content),
            ),
            (
                "completed ends",
                r#"{"type":"response.completed","sequence_number":10,"response":{"status":"completed"}}"#,
                Some(EventClass::End),
            ),
            (
                "incomplete ends",
                r#"{"type":"response.incomplete","sequence_number":10,"response":{}}"#,
                Some(EventClass::End),
            ),
            (
                "rate limit error event",
                r#"{"type":"error","code":"rate_limit_exceeded","message":"slow","param":null,"sequence_number":1}"#,
                Some(EventClass::Failed {
                    status: 429,
                    message: "slow".into(),
                }),
            ),
            (
                "server error event",
                r#"{"type":"error","code":"server_error","message":"boom","param":null,"sequence_number":1}"#,
                Some(EventClass::Failed {
                    status: 500,
                    message: "boom".into(),
                }),
            ),
            (
                "failed response",
                r#"{"type":"response.failed","sequence_number":3,"response":{"status":"failed","error":{"code":"server_error","message":"oops"}}}"#,
                Some(EventClass::Failed {
                    status: 500,
                    message: "oops".into(),
                }),
            ),
            (
                "overloaded failed response",
                r#"{"type":"response.failed","sequence_number":3,"response":{"error":{"code":"overloaded","message":"busy"}}}"#,
                Some(EventClass::Failed {
                    status: 503,
                    message: "busy".into(),
                }),
            ),
            ("not json", "hello", None),
            ("no type", r#"{"choices":[]}"#, None),
        ];
        for (name, payload, want) in rows {
            let got = classify_event(payload.as_bytes()).map(|(c, _)| c);
            assert_eq!(got, want, "{name}");
        }
        assert_eq!(
            classify_event(br#"{"type":"response.in_progress","sequence_number":17}"#),
            Some((EventClass::Hold, Some(17)))
        );
    }

    #[test]
    fn the_truncation_event_is_a_responses_error_event() {
        let ev = truncation_event("cut", 7);
        let data = ev
            .strip_prefix("event: error\ndata: ")
            .and_then(|d| d.strip_suffix("\n\n"))
            .expect("framed");
        let v: Value = serde_json::from_str(data).expect("json");
        assert_eq!(v["type"], "error");
        assert_eq!(v["sequence_number"], 7);
        assert_eq!(v["message"], "cut");
        assert_eq!(v["code"], "upstream_stream_truncated");
        // The SDKs raise on a top-level `error` member; this event is the typed one they yield instead.
        assert!(v.get("error").is_none());
    }

    #[test]
    fn stored_paths_parse_or_say_why_not() {
        use http::Method;
        type Parsed<'a> = Result<(StoredOp, &'a str), StoredPathError>;
        let rows: [(Method, &str, Parsed<'_>); 9] = [
            (Method::GET, "resp_1", Ok((StoredOp::Retrieve, "resp_1"))),
            (Method::DELETE, "resp_1", Ok((StoredOp::Delete, "resp_1"))),
            (
                Method::GET,
                "resp_1/input_items",
                Ok((StoredOp::InputItems, "resp_1")),
            ),
            (
                Method::POST,
                "resp_1/cancel",
                Ok((StoredOp::Cancel, "resp_1")),
            ),
            (
                Method::POST,
                "resp_1",
                Err(StoredPathError::Method("GET, DELETE")),
            ),
            (
                Method::GET,
                "resp_1/cancel",
                Err(StoredPathError::Method("POST")),
            ),
            (
                Method::POST,
                "resp_1/input_items",
                Err(StoredPathError::Method("GET")),
            ),
            (
                Method::GET,
                "resp_1/other",
                Err(StoredPathError::Unknown(
                    "/v1/responses/resp_1/other".into(),
                )),
            ),
            (Method::GET, "..%2Fx", Err(StoredPathError::BadId)),
        ];
        for (method, rest, want) in rows {
            assert_eq!(stored_op(&method, rest), want, "{method} {rest}");
        }
        assert!(!valid_id(&"a".repeat(MAX_ID_LEN + 1)));
        assert!(!valid_id(""));
    }

    #[test]
    fn ids_are_read_from_answers_and_requests() {
        assert_eq!(
            answer_id(br#"{"id":"resp_9","object":"response","output":[{"id":"msg_1"}]}"#)
                .as_deref(),
            Some("resp_9")
        );
        assert_eq!(
            answer_id(br#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_8","object":"response"}}"#)
                .as_deref(),
            Some("resp_8")
        );
        // A delta's item id is not a response id.
        assert_eq!(
            answer_id(br#"{"type":"response.output_text.delta","item_id":"msg_1","delta":"x"}"#),
            None
        );
        assert_eq!(
            answer_id(br#"{"id":"chatcmpl-1","object":"chat.completion"}"#),
            None
        );
        assert_eq!(
            previous_response_id(br#"{"model":"m","previous_response_id":"resp_7","input":"x"}"#)
                .as_deref(),
            Some("resp_7")
        );
        assert_eq!(
            previous_response_id(br#"{"previous_response_id":null}"#),
            None
        );
        assert_eq!(
            previous_response_id(br#"{"previous_response_id":"../x"}"#),
            None
        );
    }
}
