//! Claude on AWS Bedrock through InvokeModel, InvokeModelWithResponseStream and CountTokens — the wire
//! format of the `AWSAnthropic` schema — behind the same SigV4 check as Converse ([`super::bedrock`]).
//!
//! What AWS documents and this mock enforces: the model id is the URI's `{modelId}`; the body is the
//! Anthropic Messages body with `anthropic_version: "bedrock-2023-05-31"` and without `model` or `stream`
//! (Bedrock refuses extraneous keys); `anthropic_beta`, when present, is a list of strings; the body's
//! type is the `Content-Type` header the bedrock-runtime service model binds `contentType` to. The
//! answer is the Messages answer itself; a stream is an AWS event stream of `chunk` events whose payload
//! is a `PayloadPart` (`{"bytes": base64}`) holding one Anthropic event's JSON, each checked against the
//! service model's `ResponseStream` when one was loaded. CountTokens takes `{"input":{"invokeModel":
//! {"body": base64}}}` and answers `{"inputTokens": n}`.

use base64::Engine;
use bytes::Bytes;
use hyper::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::anthropic;
use super::bedrock::{error_reply, event_frame, SERVICE_MODEL};
use super::openai::{tokens_of_text, Ctx, Reply};

/// The only `anthropic_version` Bedrock documents for Claude's Messages API.
pub const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

fn validation(message: &str) -> Reply {
    error_reply(StatusCode::BAD_REQUEST, "ValidationException", message)
}

/// The operations of this format, by the last path segment.
pub fn is_invoke_operation(op: &str) -> bool {
    matches!(
        op,
        "invoke" | "invoke-with-response-stream" | "count-tokens"
    )
}

/// Checks an InvokeModel body for Claude: Bedrock's own rules, then the Messages API's.
fn check_body(req: &Value) -> Result<anthropic::Checked, Reply> {
    let Some(obj) = req.as_object() else {
        return Err(validation("the body must be a JSON object"));
    };
    for key in ["model", "stream"] {
        if obj.contains_key(key) {
            return Err(validation(&format!(
                "Malformed input request: #: extraneous key [{key}] is not permitted, please reformat your input and try again."
            )));
        }
    }
    match obj.get("anthropic_version").and_then(Value::as_str) {
        Some(BEDROCK_ANTHROPIC_VERSION) => {}
        Some(other) => {
            return Err(validation(&format!(
                "Malformed input request: anthropic_version {other:?} is not supported"
            )))
        }
        None => {
            return Err(validation(
                "Malformed input request: #: required key [anthropic_version] not found",
            ))
        }
    }
    if let Some(b) = obj.get("anthropic_beta") {
        if !b.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
            return Err(validation("anthropic_beta must be a list of strings"));
        }
    }
    anthropic::check_messages(req, true).map_err(|(_, why)| validation(&why))
}

/// Checks the request's `Content-Type` where the service model binds the operation's `contentType`.
fn check_content_type(input_shape: &str, headers: &HeaderMap) -> Result<(), Reply> {
    let name = SERVICE_MODEL
        .get()
        .and_then(|m| m.member_location(input_shape, "contentType"))
        .map(|(_, name)| name)
        .unwrap_or_else(|| "Content-Type".to_owned());
    match headers.get(name.as_str()).and_then(|v| v.to_str().ok()) {
        Some(ct) if ct.starts_with("application/json") => Ok(()),
        other => Err(validation(&format!(
            "{input_shape}: {name} must be application/json, got {other:?}"
        ))),
    }
}

/// One `chunk` event of InvokeModelWithResponseStream carrying `event`.
fn chunk(event: &Value) -> Result<Bytes, String> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(event.to_string());
    let part = json!({ "bytes": b64 });
    if let Some(model) = SERVICE_MODEL.get() {
        let shape = model
            .member_shape("ResponseStream", "chunk")
            .ok_or("the service model's ResponseStream has no chunk member")?;
        model.check(shape, &part)?;
    }
    Ok(event_frame("chunk", &part))
}

/// Answers `/model/{model}/{op}` for the three operations ([`is_invoke_operation`]).
pub fn handle(model: &str, op: &str, headers: &HeaderMap, body: &[u8], ctx: &Ctx<'_>) -> Reply {
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return validation(&format!("malformed request body: {e}")),
    };
    if op == "count-tokens" {
        if let Some(m) = SERVICE_MODEL.get() {
            if let Err(why) = m.check("CountTokensRequest", &req) {
                return validation(&format!(
                    "CountTokensRequest does not follow the bedrock-runtime service model: {why}"
                ));
            }
        }
        let Some(inner) = req
            .pointer("/input/invokeModel/body")
            .and_then(Value::as_str)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        else {
            return validation(
                "input.invokeModel.body must be the base64 of a JSON InvokeModel body",
            );
        };
        return match check_body(&inner) {
            Ok(c) => Reply::json(
                StatusCode::OK,
                &json!({"inputTokens": tokens_of_text(&c.prompt)}),
            ),
            Err(r) => r,
        };
    }
    let stream = op == "invoke-with-response-stream";
    let input_shape = if stream {
        "InvokeModelWithResponseStreamRequest"
    } else {
        "InvokeModelRequest"
    };
    if let Err(r) = check_content_type(input_shape, headers) {
        return r;
    }
    let checked = match check_body(&req) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let a = anthropic::answer(&checked, model, anthropic::uses_cache(&req), ctx);
    if !stream {
        return Reply::json(StatusCode::OK, &a.message);
    }
    let mut chunks = Vec::with_capacity(a.events.len());
    for (i, e) in a.events.iter().enumerate() {
        let mut e = e.clone();
        if i + 1 == a.events.len() {
            // Bedrock adds its invocation metrics to the last event.
            e["amazon-bedrock-invocationMetrics"] = json!({"inputTokenCount": tokens_of_text(&checked.prompt), "outputTokenCount": 1, "invocationLatency": 1, "firstByteLatency": 1});
        }
        match chunk(&e) {
            Ok(frame) => chunks.push(frame),
            Err(why) => {
                return error_reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerException",
                    &format!("mock: a chunk breaks the service model: {why}"),
                )
            }
        }
    }
    Reply::Stream {
        content_type: "application/vnd.amazon.eventstream",
        chunks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx<'static> {
        Ctx {
            name: "bedrock",
            seq: 1,
            content_chunks: 2,
        }
    }

    fn status_of(r: &Reply) -> StatusCode {
        match r {
            Reply::Full { status, .. } => *status,
            Reply::Stream { .. } => StatusCode::OK,
        }
    }

    #[test]
    fn invoke_bodies_are_checked_as_bedrock_checks_them() {
        let mut json_ct = HeaderMap::new();
        json_ct.insert("content-type", "application/json".parse().expect("value"));
        let ok = json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 8,
                        "messages": [{"role": "user", "content": "hi"}]});
        for (name, body, headers, want) in [
            ("a valid body", ok.clone(), &json_ct, StatusCode::OK),
            (
                "model in the body",
                json!({"model": "m"}),
                &json_ct,
                StatusCode::BAD_REQUEST,
            ),
            (
                "stream in the body",
                json!({"stream": true}),
                &json_ct,
                StatusCode::BAD_REQUEST,
            ),
            (
                "no version",
                json!({"anthropic_version": null}),
                &json_ct,
                StatusCode::BAD_REQUEST,
            ),
            (
                "betas not a list",
                json!({"anthropic_beta": "x"}),
                &json_ct,
                StatusCode::BAD_REQUEST,
            ),
            (
                "no content type",
                json!({}),
                &HeaderMap::new(),
                StatusCode::BAD_REQUEST,
            ),
        ] {
            let mut b = ok.clone();
            for (k, v) in body.as_object().into_iter().flatten() {
                if v.is_null() {
                    b.as_object_mut().map(|o| o.remove(k));
                } else {
                    b[k] = v.clone();
                }
            }
            let r = handle(
                "anthropic.claude",
                "invoke",
                headers,
                b.to_string().as_bytes(),
                &ctx(),
            );
            assert_eq!(status_of(&r), want, "{name}");
        }
    }

    #[test]
    fn streams_are_chunk_events_holding_anthropic_events() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/json".parse().expect("value"));
        let body = json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 8,
                          "messages": [{"role": "user", "content": "hi"}]});
        let Reply::Stream {
            chunks,
            content_type,
        } = handle(
            "anthropic.claude",
            "invoke-with-response-stream",
            &headers,
            body.to_string().as_bytes(),
            &ctx(),
        )
        else {
            panic!("not a stream")
        };
        assert_eq!(content_type, "application/vnd.amazon.eventstream");
        let mut decoder = aws_smithy_eventstream::frame::MessageFrameDecoder::new();
        let mut kinds = Vec::new();
        for c in chunks {
            let mut buf = c.clone();
            let aws_smithy_eventstream::frame::DecodedFrame::Complete(m) =
                decoder.decode_frame(&mut buf).expect("frame")
            else {
                panic!("partial frame")
            };
            let part: Value = serde_json::from_slice(m.payload()).expect("json");
            let raw = base64::engine::general_purpose::STANDARD
                .decode(part["bytes"].as_str().expect("bytes"))
                .expect("base64");
            let event: Value = serde_json::from_slice(&raw).expect("event");
            kinds.push(event["type"].as_str().unwrap_or_default().to_owned());
        }
        assert_eq!(kinds.first().map(String::as_str), Some("message_start"));
        assert_eq!(kinds.last().map(String::as_str), Some("message_stop"));
        assert!(
            kinds.iter().any(|k| k == "content_block_delta"),
            "{kinds:?}"
        );
    }
}
