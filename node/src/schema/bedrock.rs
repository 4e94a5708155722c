//! The AWS Bedrock schema: OpenAI chat ↔ the Bedrock Runtime Converse API.
//!
//! Bedrock API reference ("Converse", "ConverseStream"): `POST /model/{modelId}/converse` and
//! `POST /model/{modelId}/converse-stream`, the model id URL-encoded as one path segment; body
//! `{"messages":[{"role","content":[{"text"}]}],"system":[{"text"}],"inferenceConfig":{"maxTokens",
//! "temperature","topP","stopSequences"}}`. The answer is `{"output":{"message":{…}},"stopReason",
//! "usage":{"inputTokens","outputTokens","totalTokens"}}`; the stream is an AWS event stream of
//! `messageStart`, `contentBlockDelta`, `contentBlockStop`, `messageStop`, `metadata` events, or an
//! exception message. Errors are `{"message":…}` with the error name in `x-amzn-errortype`.
//! Signing (SigV4, service `bedrock`) is done by `schema::auth`.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use percent_encoding::utf8_percent_encode;
use serde_json::{json, Map, Value};

use super::azure::UNRESERVED;
use super::eventstream::EventStreamDecoder;
use super::{
    chunk_event, completion_body, json_content_type, max_tokens, opaque_error, openai_error,
    openai_usage, parse_object, split_messages, stop_sequences, usage_event, BodyTransform,
    Buffered, Operation, RequestCtx, ResponseCtx, TranslateError, Translator, UpstreamRequest,
    SSE_DONE,
};

const PROVIDER: &str = "aws.bedrock";

/// Bedrock Converse translator.
#[derive(Debug, Clone, Copy)]
pub struct Bedrock;

/// The Converse (or ConverseStream) path for `model`.
pub fn path(model: &str, stream: bool) -> String {
    let op = if stream {
        "converse-stream"
    } else {
        "converse"
    };
    format!("/model/{}/{op}", utf8_percent_encode(model, UNRESERVED))
}

/// OpenAI chat body → Converse body.
pub fn request_body(body: &Map<String, Value>) -> Result<Value, TranslateError> {
    let (system, turns) = split_messages(body)?;
    let messages: Vec<Value> = turns
        .iter()
        .map(|t| json!({"role": t.role, "content": [{"text": t.text}]}))
        .collect();
    if messages.is_empty() {
        return Err(TranslateError::BadRequest(
            "Converse needs at least one user or assistant message".into(),
        ));
    }
    let mut out = json!({"messages": messages});
    if !system.is_empty() {
        out["system"] = Value::Array(system.iter().map(|s| json!({"text": s})).collect());
    }
    let mut inference = Map::new();
    if let Some(n) = max_tokens(body) {
        inference.insert("maxTokens".into(), n.into());
    }
    for (from, to) in [("temperature", "temperature"), ("top_p", "topP")] {
        if let Some(v) = body.get(from).filter(|v| v.is_number()) {
            inference.insert(to.into(), v.clone());
        }
    }
    if let Some(stop) = stop_sequences(body) {
        inference.insert("stopSequences".into(), stop.into());
    }
    if !inference.is_empty() {
        out["inferenceConfig"] = Value::Object(inference);
    }
    Ok(out)
}

/// Converse `stopReason` → OpenAI `finish_reason`.
pub fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        _ => "stop",
    }
}

fn usage_of(v: &Value) -> Value {
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    openai_usage(n("inputTokens"), n("outputTokens"))
}

fn bad(detail: impl Into<String>) -> TranslateError {
    TranslateError::BadUpstream {
        provider: PROVIDER,
        detail: detail.into(),
    }
}

/// Converse answer → `chat.completion`.
pub fn response_body(ctx: &ResponseCtx, body: &[u8]) -> Result<Bytes, TranslateError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let content = v
        .pointer("/output/message/content")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no output.message.content"))?;
    let text: String = content
        .iter()
        .filter_map(|c| c.get("text").and_then(Value::as_str))
        .collect();
    let stop = v
        .get("stopReason")
        .and_then(Value::as_str)
        .unwrap_or("end_turn");
    let usage = usage_of(v.get("usage").unwrap_or(&Value::Null));
    Ok(completion_body(
        ctx,
        &ctx.id,
        &ctx.model,
        &text,
        finish_reason(stop),
        usage,
    ))
}

/// Bedrock error status and body → OpenAI error JSON. The message comes from `message` (or `Message`),
/// the code from `x-amzn-errortype` (its part before `:`).
pub fn error_body(status: u16, error_type: Option<&str>, body: &[u8]) -> Bytes {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let message = v
        .as_ref()
        .and_then(|v| v.get("message").or_else(|| v.get("Message")))
        .and_then(Value::as_str);
    let code = error_type.map(|t| t.split(':').next().unwrap_or(t));
    match message {
        Some(m) => Bytes::from(openai_error(status, m, code).to_string()),
        None => opaque_error(status, PROVIDER, body),
    }
}

/// HTTP status Bedrock uses for an exception name (Bedrock Runtime "Errors" section of ConverseStream).
pub fn exception_status(kind: &str) -> u16 {
    match kind
        .trim_end_matches("Exception")
        .to_ascii_lowercase()
        .as_str()
    {
        "validation" => 400,
        "accessdenied" => 403,
        "resourcenotfound" => 404,
        "modeltimeout" => 408,
        "throttling" => 429,
        "modelerror" => 424,
        "serviceunavailable" => 503,
        _ => 500,
    }
}

/// ConverseStream event stream → OpenAI chunk SSE.
pub struct StreamTransform {
    ctx: ResponseCtx,
    decoder: EventStreamDecoder,
    started: bool,
    stopped: bool,
    usage: Option<Value>,
}

impl StreamTransform {
    /// A transform for one response.
    pub fn new(ctx: ResponseCtx) -> Self {
        StreamTransform {
            ctx,
            decoder: EventStreamDecoder::new(),
            started: false,
            stopped: false,
            usage: None,
        }
    }

    fn chunk(&self, delta: Value, finish: Value) -> Bytes {
        chunk_event(&self.ctx, &self.ctx.id, &self.ctx.model, delta, finish)
    }

    fn on_event(&mut self, kind: &str, payload: &Value, out: &mut BytesMut) {
        match kind {
            "messageStart" => {
                self.started = true;
                out.extend_from_slice(
                    &self.chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                );
            }
            "contentBlockDelta" => {
                if !self.started {
                    self.started = true;
                    out.extend_from_slice(
                        &self.chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                    );
                }
                if let Some(text) = payload.pointer("/delta/text").and_then(Value::as_str) {
                    out.extend_from_slice(&self.chunk(json!({"content": text}), Value::Null));
                }
            }
            "messageStop" => {
                self.stopped = true;
                let stop = payload
                    .get("stopReason")
                    .and_then(Value::as_str)
                    .unwrap_or("end_turn");
                out.extend_from_slice(&self.chunk(json!({}), json!(finish_reason(stop))));
            }
            "metadata" => {
                if let Some(u) = payload.get("usage") {
                    self.usage = Some(usage_of(u));
                }
            }
            // contentBlockStart/contentBlockStop carry nothing a text answer needs.
            _ => {}
        }
    }
}

impl BodyTransform for StreamTransform {
    fn content_type(&self) -> &'static str {
        "text/event-stream"
    }
    fn is_sse(&self) -> bool {
        true
    }
    fn feed(&mut self, data: &[u8], out: &mut BytesMut) -> Result<(), TranslateError> {
        let messages = self.decoder.push(data).map_err(|e| bad(e.to_string()))?;
        for m in messages {
            let payload: Value = serde_json::from_slice(&m.payload).unwrap_or(Value::Null);
            if m.message_type != "event" {
                let message = payload
                    .get("message")
                    .or_else(|| payload.get("Message"))
                    .and_then(Value::as_str)
                    .unwrap_or("exception without a message")
                    .to_owned();
                return Err(TranslateError::StreamError {
                    provider: PROVIDER,
                    kind: m.kind,
                    message,
                });
            }
            self.on_event(&m.kind, &payload, out);
        }
        Ok(())
    }
    fn finish(&mut self, out: &mut BytesMut) -> Result<(), TranslateError> {
        if !self.stopped || self.decoder.has_partial() {
            return Err(TranslateError::Incomplete(PROVIDER));
        }
        if self.ctx.include_usage {
            let usage = self.usage.clone().unwrap_or_else(|| openai_usage(0, 0));
            out.extend_from_slice(&usage_event(
                &self.ctx,
                &self.ctx.id,
                &self.ctx.model,
                usage,
            ));
        }
        out.extend_from_slice(SSE_DONE);
        Ok(())
    }
}

impl Translator for Bedrock {
    fn provider_name(&self) -> &'static str {
        PROVIDER
    }

    fn request(
        &self,
        ctx: &RequestCtx<'_>,
        body: &Bytes,
    ) -> Result<UpstreamRequest, TranslateError> {
        if ctx.operation != Operation::Chat {
            return Err(TranslateError::Unsupported(format!(
                "{} is not available on AWS Bedrock backends (chat completions only)",
                ctx.path_and_query
            )));
        }
        let converse = request_body(&parse_object(body)?)?;
        Ok(UpstreamRequest {
            path_and_query: super::provider_path(path(ctx.model, ctx.stream))?,
            body: Bytes::from(converse.to_string()),
            headers: vec![json_content_type()],
        })
    }

    fn response(
        &self,
        ctx: &ResponseCtx,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Option<Box<dyn BodyTransform>> {
        if !status.is_success() {
            let code = status.as_u16();
            let kind = headers
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            return Some(Box::new(Buffered::new(move |b: &[u8]| {
                Ok(error_body(code, kind.as_deref(), b))
            })));
        }
        if ctx.stream {
            return Some(Box::new(StreamTransform::new(ctx.clone())));
        }
        let ctx = ctx.clone();
        Some(Box::new(Buffered::new(move |b: &[u8]| {
            response_body(&ctx, b)
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::eventstream::{encode_event, encode_exception};

    fn ctx(stream: bool, include_usage: bool) -> ResponseCtx {
        ResponseCtx {
            model: "us.meta.llama3-2-1b-instruct-v1:0".into(),
            stream,
            include_usage,
            id: "chatcmpl-1".into(),
            created: 7,
        }
    }

    #[test]
    fn model_ids_are_one_encoded_path_segment() {
        assert_eq!(
            path("us.meta.llama3-2-1b-instruct-v1:0", false),
            "/model/us.meta.llama3-2-1b-instruct-v1%3A0/converse"
        );
        assert_eq!(
            path("arn:aws:bedrock:us-east-1:1:x/y", true),
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ax%2Fy/converse-stream"
        );
    }

    #[test]
    fn chat_maps_to_converse() {
        let body = json!({
            "model": "m", "max_tokens": 50, "temperature": 0.5, "top_p": 0.9, "stop": "END",
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "yo"},
                {"role": "user", "content": "again"},
            ],
        });
        let Value::Object(m) = body else { panic!() };
        let out = request_body(&m).expect("translate");
        assert_eq!(
            out,
            json!({
                "messages": [
                    {"role": "user", "content": [{"text": "hi"}]},
                    {"role": "assistant", "content": [{"text": "yo"}]},
                    {"role": "user", "content": [{"text": "again"}]},
                ],
                "system": [{"text": "sys"}],
                "inferenceConfig": {"maxTokens": 50, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]},
            })
        );
        let Value::Object(only_system) = json!({"messages": [{"role": "system", "content": "x"}]})
        else {
            panic!()
        };
        assert!(request_body(&only_system).is_err());
    }

    #[test]
    fn converse_answer_maps_to_a_chat_completion() {
        let body = br#"{"output":{"message":{"role":"assistant","content":[{"text":"hello "},{"text":"there"}]}},
            "stopReason":"max_tokens","usage":{"inputTokens":5,"outputTokens":2,"totalTokens":7},"metrics":{"latencyMs":3}}"#;
        let v: Value =
            serde_json::from_slice(&response_body(&ctx(false, false), body).expect("ok"))
                .expect("json");
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["id"], "chatcmpl-1");
        assert_eq!(v["created"], 7);
        assert_eq!(v["model"], "us.meta.llama3-2-1b-instruct-v1:0");
        assert_eq!(v["choices"][0]["message"]["content"], "hello there");
        assert_eq!(v["choices"][0]["message"]["role"], "assistant");
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert_eq!(
            v["usage"],
            json!({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7})
        );
        assert!(response_body(&ctx(false, false), b"{}").is_err());
    }

    #[test]
    fn errors_map_to_openai_errors() {
        for (status, kind, body, code, msg) in [
            (
                400,
                Some("ValidationException:http://internal.amazon.com/coral/"),
                &br#"{"message":"bad input"}"#[..],
                json!("ValidationException"),
                "bad input",
            ),
            (
                429,
                Some("ThrottlingException"),
                br#"{"Message":"slow"}"#,
                json!("ThrottlingException"),
                "slow",
            ),
            (
                403,
                None,
                br#"{"message":"The security token included in the request is invalid."}"#,
                Value::Null,
                "The security token included in the request is invalid.",
            ),
        ] {
            let v: Value = serde_json::from_slice(&error_body(status, kind, body)).expect("json");
            assert_eq!(v["error"]["message"], msg);
            assert_eq!(v["error"]["code"], code);
            assert_eq!(v["error"]["type"], crate::schema::openai_error_type(status));
        }
        assert_eq!(exception_status("throttlingException"), 429);
        assert_eq!(exception_status("ValidationException"), 400);
        assert_eq!(exception_status("whatever"), 500);
    }

    fn stream_bytes() -> Vec<u8> {
        let mut s = Vec::new();
        for (kind, payload) in [
            ("messageStart", json!({"role": "assistant"})),
            (
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "hel"}}),
            ),
            (
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "lo"}}),
            ),
            ("contentBlockStop", json!({"contentBlockIndex": 0})),
            ("messageStop", json!({"stopReason": "end_turn"})),
            (
                "metadata",
                json!({"usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}, "metrics": {"latencyMs": 1}}),
            ),
        ] {
            s.extend_from_slice(&encode_event(kind, payload.to_string().as_bytes()).expect("enc"));
        }
        s
    }

    fn events(out: &[u8]) -> Vec<Value> {
        String::from_utf8_lossy(out)
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).expect("json"))
            .collect()
    }

    #[test]
    fn stream_maps_to_chunks_in_any_split() {
        let s = stream_bytes();
        for split in [0, 1, 17, s.len() / 2, s.len() - 1] {
            let mut t = StreamTransform::new(ctx(true, true));
            let mut out = BytesMut::new();
            t.feed(&s[..split], &mut out).expect("feed");
            t.feed(&s[split..], &mut out).expect("feed");
            t.finish(&mut out).expect("finish");
            assert!(out.ends_with(SSE_DONE));
            let ev = events(&out);
            assert_eq!(ev.len(), 5, "{ev:?}");
            assert!(ev
                .iter()
                .all(|e| e["object"] == "chat.completion.chunk" && e["id"] == "chatcmpl-1"));
            assert_eq!(
                ev[0]["choices"][0]["delta"],
                json!({"role": "assistant", "content": ""})
            );
            assert_eq!(ev[1]["choices"][0]["delta"]["content"], "hel");
            assert_eq!(ev[2]["choices"][0]["delta"]["content"], "lo");
            assert_eq!(ev[3]["choices"][0]["finish_reason"], "stop");
            assert_eq!(ev[4]["choices"], json!([]));
            assert_eq!(ev[4]["usage"]["total_tokens"], 5);
        }
    }

    #[test]
    fn broken_streams_are_errors() {
        let s = stream_bytes();
        let mut t = StreamTransform::new(ctx(true, false));
        let mut out = BytesMut::new();
        t.feed(&s[..s.len() / 2], &mut out).expect("feed");
        assert_eq!(
            t.finish(&mut out),
            Err(TranslateError::Incomplete(PROVIDER))
        );

        let mut t = StreamTransform::new(ctx(true, false));
        let mut out = BytesMut::new();
        let mut s = encode_event("messageStart", br#"{"role":"assistant"}"#)
            .expect("enc")
            .to_vec();
        s.extend_from_slice(
            &encode_exception("throttlingException", br#"{"message":"slow down"}"#).expect("enc"),
        );
        let err = t.feed(&s, &mut out).expect_err("exception");
        assert!(
            matches!(&err, TranslateError::StreamError { kind, message, .. } if kind == "throttlingException" && message == "slow down")
        );
        assert_eq!(events(&out).len(), 1, "output before the exception is kept");
    }
}
