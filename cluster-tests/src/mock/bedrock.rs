//! The AWS Bedrock wire format of the mock provider: Converse and ConverseStream (InvokeModel and its
//! stream for Claude are in [`super::invoke`]), behind a real SigV4 check.
//!
//! Every request is verified as Bedrock would (AWS docs "Signature Version 4 signing process"): the
//! `Authorization` header must name the test access key ([`TEST_ACCESS_KEY_ID`]) and a credential scope
//! `DATE/REGION/bedrock/aws4_request`, and its signature must equal the one recomputed (with the
//! `aws-sigv4` crate, from the test secret) over the request as received — method, path, the headers listed
//! in `SignedHeaders`, `x-amz-date` and the body. A bad or missing signature answers 403 with a Bedrock
//! error; the verdict is recorded in the request log so tests can assert that every signature verified.
//! Streams are real AWS event-stream frames encoded with `aws-smithy-eventstream`.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use hyper::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use super::agent;
use super::openai::{split_pieces, tokens_of_text, Ctx, Reply};

/// The access key id the mock accepts.
pub const TEST_ACCESS_KEY_ID: &str = "AKIDSWITCHYARDTEST";
/// The secret access key the mock verifies signatures with.
pub const TEST_SECRET_ACCESS_KEY: &str = "switchyard/test+secret/KEY0123456789abcdef";

/// A request's path and authority, as received.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Path and query.
    pub path: &'a str,
    /// `Host` header, or the HTTP/2 `:authority`.
    pub authority: &'a str,
}

/// Whether `path` is a Bedrock runtime path.
pub fn is_bedrock_path(path: &str) -> bool {
    path.starts_with("/model/")
}

/// The Bedrock error reply: `{"message":…}` with `x-amzn-errortype`.
pub fn error_reply(status: StatusCode, error_type: &str, message: &str) -> Reply {
    Reply::Full {
        status,
        content_type: "application/json",
        body: Bytes::from(json!({ "message": message }).to_string()),
        headers: vec![("x-amzn-errortype", error_type.to_owned())],
    }
}

/// The Bedrock exception name for an injected status.
pub fn error_type_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "ValidationException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        _ => "InternalServerException",
    }
}

/// Parses `x-amz-date` (`YYYYMMDDTHHMMSSZ`).
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Verifies the SigV4 signature of a request; `Err` says why it fails (never a secret).
pub fn verify_sigv4(
    method: &Method,
    target: Target<'_>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("missing Authorization header")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("Authorization is not AWS4-HMAC-SHA256")?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (credential, signed, signature) = match (credential, signed, signature) {
        (Some(c), Some(h), Some(s)) => (c, h, s),
        _ => return Err("Authorization lacks Credential, SignedHeaders or Signature".into()),
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, terminator] = scope[..] else {
        return Err(format!("malformed credential scope {credential:?}"));
    };
    // The test key, or temporary keys the mock's credential services issued (refused once expired).
    let (secret, want_token) = super::credentials::aws_key(key_id)?;
    if service != "bedrock" || terminator != "aws4_request" {
        return Err(format!(
            "credential scope names service {service:?}, not bedrock"
        ));
    }
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or("missing x-amz-date")?;
    if !amz_date.starts_with(date) {
        return Err("x-amz-date does not match the credential scope date".into());
    }
    let time = parse_amz_date(amz_date).ok_or("malformed x-amz-date")?;
    let skew = SystemTime::now()
        .duration_since(time)
        .unwrap_or_else(|e| e.duration());
    if skew > Duration::from_secs(300) {
        return Err("request time too skewed (more than 5 minutes)".into());
    }
    let signed_names: Vec<&str> = signed.split(';').collect();
    for required in ["host", "x-amz-date"] {
        if !signed_names.contains(&required) {
            return Err(format!("{required} is not signed"));
        }
    }
    let token = headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut pairs: Vec<(String, String)> = Vec::new();
    for name in &signed_names {
        if matches!(
            *name,
            "x-amz-date" | "x-amz-security-token" | "authorization"
        ) {
            continue;
        }
        if *name == "host" {
            pairs.push(("host".into(), target.authority.to_owned()));
            continue;
        }
        let values: Vec<&str> = headers
            .get_all(*name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return Err(format!("signed header {name} is missing"));
        }
        for v in values {
            pairs.push(((*name).to_owned(), v.to_owned()));
        }
    }
    if want_token.is_some() && token != want_token {
        return Err("x-amz-security-token does not belong to the access key".into());
    }
    let identity: Identity = Credentials::new(key_id, secret, token, None, "mock-provider").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("bedrock")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let uri = format!("http://{}{}", target.authority, target.path);
    let signable = SignableRequest::new(
        method.as_str(),
        uri,
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (_, expected) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    if expected != signature {
        return Err("signature mismatch".into());
    }
    Ok(())
}

/// Encodes one event-stream event message.
pub fn event_frame(event_type: &str, payload: &Value) -> Bytes {
    frame("event", ":event-type", event_type, payload)
}

/// Encodes one event-stream exception message (`:message-type: exception`), as ConverseStream sends a
/// throttling or service error after its 200.
pub fn exception_frame(exception_type: &str, payload: &Value) -> Bytes {
    frame("exception", ":exception-type", exception_type, payload)
}

/// One event-stream message of `message_type`, its type in the `type_header` header, JSON payload.
fn frame(message_type: &str, type_header: &str, type_name: &str, payload: &Value) -> Bytes {
    let msg = Message::new(Bytes::from(payload.to_string()))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String(message_type.to_owned().into()),
        ))
        .add_header(Header::new(
            type_header.to_owned(),
            HeaderValue::String(type_name.to_owned().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ));
    let mut buf = Vec::new();
    if let Err(e) = aws_smithy_eventstream::frame::write_message_to(&msg, &mut buf) {
        tracing::error!(error = %e, "encoding an event-stream frame");
    }
    Bytes::from(buf)
}

/// Answers a Bedrock runtime request whose signature has been checked (`verdict`).
pub fn handle(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    verdict: &Result<(), String>,
    ctx: &Ctx<'_>,
) -> Reply {
    if let Err(why) = verdict {
        let (kind, msg) = if why.starts_with("missing Authorization") {
            (
                "MissingAuthenticationTokenException",
                "Missing Authentication Token".to_owned(),
            )
        } else if why.starts_with("unknown access key") {
            (
                "UnrecognizedClientException",
                "The security token included in the request is invalid.".to_owned(),
            )
        } else {
            ("InvalidSignatureException", format!("The request signature we calculated does not match the signature you provided: {why}"))
        };
        return error_reply(StatusCode::FORBIDDEN, kind, &msg);
    }
    if method != Method::POST {
        return error_reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "ValidationException",
            "method not allowed",
        );
    }
    let path = path.split('?').next().unwrap_or(path);
    let Some(rest) = path.strip_prefix("/model/") else {
        return error_reply(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            "unknown operation",
        );
    };
    let (model, stream) = match rest.rsplit_once('/') {
        Some((m, "converse")) => (m, false),
        Some((m, "converse-stream")) => (m, true),
        Some((m, op)) if super::invoke::is_invoke_operation(op) => {
            let model = percent_encoding::percent_decode_str(m).decode_utf8_lossy();
            if model.is_empty() || model.contains('/') && !model.starts_with("arn:") {
                return error_reply(
                    StatusCode::BAD_REQUEST,
                    "ValidationException",
                    "invalid model identifier",
                );
            }
            return super::invoke::handle(&model, op, headers, body, ctx);
        }
        _ => {
            return error_reply(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                "unknown operation",
            )
        }
    };
    let model = percent_encoding::percent_decode_str(model)
        .decode_utf8_lossy()
        .into_owned();
    if model.is_empty() || model.contains('/') && !model.starts_with("arn:") {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "invalid model identifier",
        );
    }
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return error_reply(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                &format!("malformed request body: {e}"),
            )
        }
    };
    let Some(messages) = req
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
    else {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "messages must be a non-empty list",
        );
    };
    if let Err(why) = check_converse(&req) {
        return error_reply(StatusCode::BAD_REQUEST, "ValidationException", &why);
    }
    let thinking = match check_reasoning(&model, &req) {
        Ok(t) => t,
        Err(why) => return error_reply(StatusCode::BAD_REQUEST, "ValidationException", &why),
    };
    if let Some(model) = SERVICE_MODEL.get() {
        let input = if stream {
            "ConverseStreamRequest"
        } else {
            "ConverseRequest"
        };
        if let Err(why) = model.check(input, &req) {
            return error_reply(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                &format!("{input} does not follow the bedrock-runtime service model: {why}"),
            );
        }
    }
    let mut prompt = String::new();
    let mut results = Vec::new();
    for m in messages {
        results.clear();
        for c in m
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(t) = c.get("text").and_then(Value::as_str) {
                prompt.push_str(t);
            } else if let Some(r) = c.get("toolResult") {
                let text: String = r
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|b| b.get("text").and_then(Value::as_str))
                    .collect();
                results.push(text);
            }
        }
    }
    let tools: Vec<(String, Value)> = req
        .pointer("/toolConfig/tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let spec = t.get("toolSpec")?;
            Some((
                spec.get("name")?.as_str()?.to_owned(),
                spec.pointer("/inputSchema/json").cloned()?,
            ))
        })
        .collect();
    let (text, calls) = match agent::decide(&tools, &results, ctx, "tooluse_") {
        agent::Turn::Text(t) => (t, Vec::new()),
        agent::Turn::Calls(c) => (String::new(), c),
    };
    let stop = if calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    let (input, output) = (
        tokens_of_text(&prompt),
        tokens_of_text(&text) + 5 * calls.len() as u64,
    );
    let usage =
        json!({"inputTokens": input, "outputTokens": output, "totalTokens": input + output});
    let thought = format!("Let me think about that. ({} #{})", ctx.name, ctx.seq);
    let sig = super::anthropic::signature(&thought);
    // Reasoning, when asked for, is the answer's first block (index 0); the rest follow it.
    let first = usize::from(thinking);
    if !stream {
        let mut content: Vec<Value> = Vec::new();
        if thinking {
            content.push(
                json!({"reasoningContent": {"reasoningText": {"text": thought, "signature": sig}}}),
            );
        }
        if calls.is_empty() {
            content.push(json!({"text": text}));
        }
        content.extend(
            calls
                .iter()
                .map(|c| json!({"toolUse": {"toolUseId": c.id, "name": c.name, "input": c.input}})),
        );
        let answer = json!({
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": usage,
            "metrics": {"latencyMs": 1},
        });
        return Reply::json(StatusCode::OK, &answer);
    }
    let mut chunks = vec![event_frame("messageStart", &json!({"role": "assistant"}))];
    if thinking {
        for delta in [json!({"text": thought}), json!({"signature": sig})] {
            chunks.push(event_frame(
                "contentBlockDelta",
                &json!({"contentBlockIndex": 0, "delta": {"reasoningContent": delta}}),
            ));
        }
        chunks.push(event_frame(
            "contentBlockStop",
            &json!({"contentBlockIndex": 0}),
        ));
    }
    if calls.is_empty() {
        for piece in split_pieces(&text, ctx.content_chunks) {
            chunks.push(event_frame(
                "contentBlockDelta",
                &json!({"contentBlockIndex": first, "delta": {"text": piece}}),
            ));
        }
        chunks.push(event_frame(
            "contentBlockStop",
            &json!({"contentBlockIndex": first}),
        ));
    }
    for (index, c) in calls.iter().enumerate() {
        let index = index + first;
        chunks.push(event_frame(
            "contentBlockStart",
            &json!({"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": c.id, "name": c.name}}}),
        ));
        for part in c.fragments() {
            chunks.push(event_frame(
                "contentBlockDelta",
                &json!({"contentBlockIndex": index, "delta": {"toolUse": {"input": part}}}),
            ));
        }
        chunks.push(event_frame(
            "contentBlockStop",
            &json!({"contentBlockIndex": index}),
        ));
    }
    chunks.push(event_frame("messageStop", &json!({"stopReason": stop})));
    chunks.push(event_frame(
        "metadata",
        &json!({"usage": usage, "metrics": {"latencyMs": 1}}),
    ));
    Reply::Stream {
        content_type: "application/vnd.amazon.eventstream",
        chunks,
    }
}

/// Claude's thinking rules through Converse, for a Claude model asked to reason (`outputConfig.effort`):
/// every reasoning block sent back must carry a signature the mock issued ([`super::anthropic::signature`]),
/// and the final assistant turn, when it made tool calls, must start with its reasoning. Bedrock passes
/// Anthropic's refusal on inside its `ValidationException`. Returns whether the answer reasons.
fn check_reasoning(model: &str, req: &Value) -> Result<bool, String> {
    let claude = model.contains("anthropic.claude");
    let thinking = claude && req.pointer("/outputConfig/effort").is_some();
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let refuse = |why: String| format!("The model returned the following errors: {why}");
    for (i, m) in messages.iter().enumerate() {
        let blocks = m.get("content").and_then(Value::as_array);
        for (j, b) in blocks.into_iter().flatten().enumerate() {
            if let Some(rt) = b.pointer("/reasoningContent/reasoningText") {
                let text = rt.get("text").and_then(Value::as_str).unwrap_or_default();
                let sig = rt.get("signature").and_then(Value::as_str);
                if claude && sig != Some(super::anthropic::signature(text).as_str()) {
                    return Err(refuse(format!(
                        "messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
                    )));
                }
            }
        }
    }
    if !thinking {
        return Ok(false);
    }
    let last = messages
        .iter()
        .enumerate()
        .rev()
        .find(|(_, m)| m.get("role").and_then(Value::as_str) == Some("assistant"));
    if let Some((i, m)) = last {
        let blocks = m
            .get("content")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let calls = blocks.iter().any(|b| b.get("toolUse").is_some());
        let led = blocks
            .first()
            .is_some_and(|b| b.get("reasoningContent").is_some());
        if calls && !led {
            return Err(refuse(format!(
                "messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`. When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
            )));
        }
    }
    Ok(true)
}

/// The bedrock-runtime service model every request is checked against, when the mock was given one
/// (`--bedrock-service-model`).
pub static SERVICE_MODEL: std::sync::OnceLock<super::service_model::ServiceModel> =
    std::sync::OnceLock::new();

/// Members of `ConverseRequest` that travel in the body (the bedrock-runtime service model; `modelId` is
/// in the path).
const CONVERSE_MEMBERS: [&str; 12] = [
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "guardrailConfig",
    "additionalModelRequestFields",
    "promptVariables",
    "additionalModelResponseFieldPaths",
    "requestMetadata",
    "performanceConfig",
    "serviceTier",
    "outputConfig",
];

/// The members of a union value: exactly one must be set (service-model unions: `ContentBlock`,
/// `ToolChoice`, `Tool`, `ImageSource`, `ToolResultContentBlock`, `ToolInputSchema`).
fn union_member<'a>(
    v: &'a Value,
    at: &str,
    allowed: &[&str],
) -> Result<(&'a str, &'a Value), String> {
    let m = v.as_object().ok_or(format!("{at} must be a structure"))?;
    let mut it = m.iter();
    match (it.next(), it.next()) {
        (Some((k, v)), None) if allowed.contains(&k.as_str()) => Ok((k.as_str(), v)),
        (Some((k, _)), None) => Err(format!("{at}: unknown union member {k}")),
        _ => Err(format!("{at}: a union must have exactly one member set")),
    }
}

/// Checks the shapes Switchyard sends against the bedrock-runtime service model (botocore's
/// `ConverseRequest`, `Message`, `ContentBlock`, `ToolConfiguration`, `OutputConfig`), as AWS's own
/// request validation would: unknown members, missing required members and bad enum values are
/// `ValidationException`s.
pub fn check_converse(req: &Value) -> Result<(), String> {
    let top = req.as_object().ok_or("the body must be a structure")?;
    for k in top.keys() {
        if !CONVERSE_MEMBERS.contains(&k.as_str()) {
            return Err(format!("unknown member {k} of ConverseRequest"));
        }
    }
    let mut tool_blocks = false;
    for (i, m) in top
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let role = m.get("role").and_then(Value::as_str);
        for (j, c) in m
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = format!("messages.{i}.content.{j}");
            let (kind, v) = union_member(
                c,
                &at,
                &[
                    "text",
                    "image",
                    "toolUse",
                    "toolResult",
                    "reasoningContent",
                    "cachePoint",
                ],
            )?;
            match kind {
                "text" if !v.is_string() => return Err(format!("{at}.text must be a string")),
                "image" => {
                    if role != Some("user") {
                        return Err(format!("{at}: images are only allowed in user messages"));
                    }
                    let format = v.get("format").and_then(Value::as_str);
                    if !matches!(format, Some("png" | "jpeg" | "gif" | "webp")) {
                        return Err(format!("{at}.image.format must be png|jpeg|gif|webp"));
                    }
                    let (src, bytes) = union_member(
                        v.get("source").unwrap_or(&Value::Null),
                        &format!("{at}.image.source"),
                        &["bytes", "s3Location"],
                    )?;
                    if src == "bytes" && !bytes.is_string() {
                        return Err(format!("{at}.image.source.bytes must be a base64 blob"));
                    }
                }
                "toolUse" => {
                    tool_blocks = true;
                    let ok = v.get("toolUseId").is_some_and(Value::is_string)
                        && v.get("name").is_some_and(Value::is_string)
                        && v.get("input").is_some();
                    if !ok || role != Some("assistant") {
                        return Err(format!(
                            "{at}.toolUse needs toolUseId, name and input, in an assistant message"
                        ));
                    }
                }
                "toolResult" => {
                    tool_blocks = true;
                    if !v.get("toolUseId").is_some_and(Value::is_string) || role != Some("user") {
                        return Err(format!(
                            "{at}.toolResult needs toolUseId, in a user message"
                        ));
                    }
                    let content = v
                        .get("content")
                        .and_then(Value::as_array)
                        .ok_or(format!("{at}.toolResult.content is required"))?;
                    for (k, b) in content.iter().enumerate() {
                        union_member(
                            b,
                            &format!("{at}.toolResult.content.{k}"),
                            &["text", "json", "image", "document"],
                        )?;
                    }
                    if let Some(s) = v.get("status").and_then(Value::as_str) {
                        if s != "success" && s != "error" {
                            return Err(format!("{at}.toolResult.status must be success|error"));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    match top.get("toolConfig") {
        None if tool_blocks => {
            return Err("The toolConfig field must be defined when using toolUse and toolResult content blocks.".into())
        }
        None => {}
        Some(tc) => {
            let tools = tc
                .get("tools")
                .and_then(Value::as_array)
                .filter(|t| !t.is_empty())
                .ok_or("toolConfig.tools must be a non-empty list")?;
            for (i, t) in tools.iter().enumerate() {
                let (_, spec) = union_member(t, &format!("toolConfig.tools.{i}"), &["toolSpec"])?;
                let ok = spec.get("name").is_some_and(Value::is_string)
                    && spec.pointer("/inputSchema/json").is_some_and(Value::is_object)
                    && spec.get("description").is_none_or(|d| d.as_str().is_some_and(|d| !d.is_empty()));
                if !ok {
                    return Err(format!("toolConfig.tools.{i}.toolSpec needs a name and inputSchema.json"));
                }
            }
            if let Some(choice) = tc.get("toolChoice") {
                let (kind, v) = union_member(choice, "toolConfig.toolChoice", &["auto", "any", "tool"])?;
                if kind == "tool" && !v.get("name").is_some_and(Value::is_string) {
                    return Err("toolConfig.toolChoice.tool.name is required".into());
                }
            }
        }
    }
    if let Some(oc) = top.get("outputConfig") {
        if let Some(tf) = oc.get("textFormat") {
            let ok = tf.get("type").and_then(Value::as_str) == Some("json_schema")
                && tf
                    .pointer("/structure/jsonSchema/schema")
                    .is_some_and(Value::is_string);
            if !ok {
                return Err("outputConfig.textFormat needs type json_schema and structure.jsonSchema.schema (a string)".into());
            }
        }
    }
    if let Some(t) = top.get("serviceTier") {
        if !matches!(
            t.get("type").and_then(Value::as_str),
            Some("priority" | "default" | "flex" | "reserved")
        ) {
            return Err("serviceTier.type must be priority|default|flex|reserved".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_parse() {
        let t = parse_amz_date("20150830T123600Z").expect("date");
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .ok(),
            Some(1_440_938_160)
        );
        assert!(parse_amz_date("2015-08-30").is_none());
    }

    fn signed(body: &'static [u8], authority: &str, path: &str) -> HeaderMap {
        let identity: Identity =
            Credentials::new(TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, None, None, "t").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("bedrock")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .expect("params")
            .into();
        let mut req = http::Request::post(format!("http://{authority}{path}"))
            .header("content-type", "application/json")
            .body(())
            .expect("request");
        let signable = SignableRequest::new(
            "POST",
            req.uri().to_string(),
            std::iter::once(("content-type", "application/json")),
            SignableBody::Bytes(body),
        )
        .expect("signable");
        let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
        instructions.apply_to_request_http1x(&mut req);
        req.headers().clone()
    }

    #[test]
    fn signatures_made_by_aws_sigv4_verify_and_tampering_fails() {
        let path = "/model/us.meta.llama3-2-1b-instruct-v1%3A0/converse";
        let h = signed(b"{}", "127.0.0.1:9", path);
        let t = Target {
            path,
            authority: "127.0.0.1:9",
        };
        assert_eq!(verify_sigv4(&Method::POST, t, &h, b"{}"), Ok(()));
        assert!(verify_sigv4(&Method::POST, t, &h, b"{ }").is_err());
        let other = Target {
            path: "/model/x/converse",
            ..t
        };
        assert!(verify_sigv4(&Method::POST, other, &h, b"{}").is_err());
        let moved = Target {
            authority: "127.0.0.1:10",
            ..t
        };
        assert!(verify_sigv4(&Method::POST, moved, &h, b"{}").is_err());
    }

    #[test]
    fn missing_and_foreign_signatures_fail() {
        let t = Target {
            path: "/model/m/converse",
            authority: "127.0.0.1:1",
        };
        let mut h = HeaderMap::new();
        assert!(verify_sigv4(&Method::POST, t, &h, b"{}").is_err());
        h.insert(
            "authorization",
            hyper::header::HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKIDOTHER/20150830/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"),
        );
        h.insert(
            "x-amz-date",
            hyper::header::HeaderValue::from_static("20150830T123600Z"),
        );
        let err = verify_sigv4(&Method::POST, t, &h, b"{}").expect_err("foreign key");
        assert!(err.contains("unknown access key"), "{err}");
    }
}
