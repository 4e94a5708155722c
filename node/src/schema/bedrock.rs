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
use super::chat::{self, Block, Chat, ImageSource, ToolChoice};
use super::eventstream::EventStreamDecoder;
use super::fields::{self, Provider};
use super::reply::{
    completion, reasoning_delta, tool_call_arguments, tool_call_start, Message, ThinkingStream,
    ToolCallIndex, Usage,
};
use super::thinking;
use super::{
    chunk_event, json_content_type, opaque_error, openai_error, parse_object, usage_event,
    BodyTransform, Buffered, Operation, RequestCtx, ResponseCtx, TranslateError, Translator,
    UpstreamRequest, SSE_DONE,
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

/// OpenAI chat body → Converse body: every field translated, safely ignored or refused
/// ([`super::fields`]).
/// Claude's thinking rules apply, as for a model that may be Claude.
pub fn request_body(body: &Map<String, Value>) -> Result<Value, TranslateError> {
    request_body_for(body, "")
}

/// [`request_body`] for the Bedrock model id `model` (Claude's thinking rules only where it may be Claude).
pub fn request_body_for(body: &Map<String, Value>, model: &str) -> Result<Value, TranslateError> {
    fields::check(body, Provider::Bedrock)?;
    converse(
        &chat::parse(body, Provider::Bedrock)?,
        thinking::bedrock_may_be_claude(model),
    )
}

fn unsupported(what: impl std::fmt::Display) -> TranslateError {
    TranslateError::Unsupported(format!("{what}: not supported by AWS Bedrock"))
}

/// One content block in Converse's spelling (`ContentBlock` of the bedrock-runtime service model).
fn block(b: &Block) -> Result<Value, TranslateError> {
    Ok(match b {
        Block::Text(t) => json!({"text": t}),
        Block::Image {
            source: ImageSource::Base64 { media_type, data },
            ..
        } => json!({"image": {"format": ImageSource::format(media_type), "source": {"bytes": data}}}),
        Block::Image {
            source: ImageSource::Url(_),
            at,
        } => {
            return Err(unsupported(format!(
                "{at}: an image URL (Converse takes image bytes or S3 locations only; send a data: URI)"
            )))
        }
        Block::ToolUse {
            id, name, input, ..
        } => {
            json!({"toolUse": {"toolUseId": id, "name": name, "input": input}})
        }
        Block::Thinking { text, signature } => {
            json!({"reasoningContent": {"reasoningText": {"text": text, "signature": signature}}})
        }
        // A blob: base64 in Converse's JSON, as the answer gave it.
        Block::RedactedThinking { data } => json!({"reasoningContent": {"redactedContent": data}}),
        Block::ToolResult { id, text } => {
            json!({"toolResult": {"toolUseId": id, "content": [{"text": text}]}})
        }
    })
}

/// The Converse request for a neutral chat; `claude`: the model may be Claude, which keeps Anthropic's
/// rule on thinking with tool use through Converse (see `thinking`).
pub fn converse(chat: &Chat, claude: bool) -> Result<Value, TranslateError> {
    let thinks = chat.reasoning_effort.is_some() && (!claude || thinking::claude_may_think(chat));
    let messages = chat
        .turns
        .iter()
        .map(|t| {
            let content = t
                .blocks
                .iter()
                .filter(|b| thinking::claude_sends(b, thinks))
                .map(block)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(json!({"role": t.role.as_str(), "content": content}))
        })
        .collect::<Result<Vec<_>, TranslateError>>()?;
    if messages.is_empty() {
        return Err(TranslateError::BadRequest(
            "Converse needs at least one user or assistant message".into(),
        ));
    }
    let mut out = json!({"messages": messages});
    if !chat.system.is_empty() {
        out["system"] = Value::Array(chat.system.iter().map(|s| json!({"text": s})).collect());
    }
    let mut inference = Map::new();
    if let Some(n) = chat.max_tokens {
        inference.insert("maxTokens".into(), n.into());
    }
    if let Some(t) = &chat.temperature {
        inference.insert("temperature".into(), t.clone());
    }
    if let Some(p) = &chat.top_p {
        inference.insert("topP".into(), p.clone());
    }
    if let Some(stop) = &chat.stop {
        inference.insert("stopSequences".into(), stop.clone().into());
    }
    if !inference.is_empty() {
        out["inferenceConfig"] = Value::Object(inference);
    }
    if let Some(config) = tool_config(chat)? {
        out["toolConfig"] = config;
    }
    let mut output = Map::new();
    if let Some(f) = &chat.response_format {
        // `JsonSchemaDefinition.schema` is a string holding the schema, not a document.
        let mut js = json!({"schema": f.schema.to_string()});
        if let Some(n) = &f.name {
            js["name"] = n.clone().into();
        }
        if let Some(d) = &f.description {
            js["description"] = d.clone().into();
        }
        output.insert(
            "textFormat".into(),
            json!({"type": "json_schema", "structure": {"jsonSchema": js}}),
        );
    }
    if let Some(e) = chat.reasoning_effort.filter(|_| thinks) {
        output.insert("effort".into(), e.as_str().into());
    }
    if !output.is_empty() {
        out["outputConfig"] = Value::Object(output);
    }
    if let Some(tier) = &chat.service_tier {
        out["serviceTier"] = json!({"type": tier});
    }
    Ok(out)
}

/// `toolConfig`. Converse has no "none": without tool calls in the history the tools are left out (the
/// model then cannot call one); with them Converse requires the definitions, so `none` is refused.
fn tool_config(chat: &Chat) -> Result<Option<Value>, TranslateError> {
    if chat.tools.is_empty() {
        return Ok(None);
    }
    let choice = match &chat.tool_choice {
        ToolChoice::None if chat.has_tool_blocks() => {
            return Err(unsupported(
                "tool_choice \"none\" with tool calls in the history (Converse cannot forbid calls while tools are defined)",
            ))
        }
        ToolChoice::None => return Ok(None),
        ToolChoice::Unset => None,
        ToolChoice::Auto => Some(json!({"auto": {}})),
        ToolChoice::Required => Some(json!({"any": {}})),
        ToolChoice::Named(name) => Some(json!({"tool": {"name": name}})),
    };
    let tools: Vec<Value> = chat
        .tools
        .iter()
        .map(|t| {
            let mut spec = json!({"name": t.name, "inputSchema": {"json": t.parameters}});
            if let Some(d) = &t.description {
                spec["description"] = d.clone().into();
            }
            if let Some(s) = t.strict {
                spec["strict"] = s.into();
            }
            json!({"toolSpec": spec})
        })
        .collect();
    let mut config = json!({"tools": tools});
    if let Some(c) = choice {
        config["toolChoice"] = c;
    }
    Ok(Some(config))
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

fn usage_of(v: &Value) -> Usage {
    let n = |k: &str| v.get(k).and_then(Value::as_u64);
    Usage {
        input: n("inputTokens").unwrap_or(0),
        output: n("outputTokens").unwrap_or(0),
        cache_read: n("cacheReadInputTokens"),
        cache_write: n("cacheWriteInputTokens"),
    }
}

fn bad(detail: impl Into<String>) -> TranslateError {
    TranslateError::BadUpstream {
        provider: PROVIDER,
        detail: detail.into(),
    }
}

/// Converse answer → `chat.completion` (text, tool calls, reasoning).
pub fn response_body(ctx: &ResponseCtx, body: &[u8]) -> Result<Bytes, TranslateError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let content = v
        .pointer("/output/message/content")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no output.message.content"))?;
    let mut msg = Message::default();
    for c in content {
        if let Some(t) = c.get("text").and_then(Value::as_str) {
            msg.text.push_str(t);
        } else if let Some(u) = c.get("toolUse") {
            let field = |k: &str| u.get(k).and_then(Value::as_str).unwrap_or_default();
            msg.push_tool_call(
                field("toolUseId"),
                field("name"),
                u.get("input").unwrap_or(&Value::Null),
            );
        } else if let Some(r) = c.get("reasoningContent") {
            if let Some(rt) = r.get("reasoningText") {
                let field = |k: &str| rt.get(k).and_then(Value::as_str).unwrap_or_default();
                msg.reasoning.push_str(field("text"));
                if !field("signature").is_empty() {
                    msg.push_thinking(field("text"), field("signature"));
                }
            } else if let Some(data) = r.get("redactedContent").and_then(Value::as_str) {
                msg.push_redacted(data);
            }
        }
    }
    let stop = v
        .get("stopReason")
        .and_then(Value::as_str)
        .unwrap_or("end_turn");
    let usage = usage_of(v.get("usage").unwrap_or(&Value::Null)).to_openai();
    Ok(completion(
        ctx,
        &ctx.id,
        &ctx.model,
        msg,
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

/// ConverseStream event stream → OpenAI chunk SSE (text, tool-call and reasoning deltas).
pub struct StreamTransform {
    ctx: ResponseCtx,
    decoder: EventStreamDecoder,
    started: bool,
    stopped: bool,
    usage: Option<Usage>,
    tools: ToolCallIndex,
    thinking: ThinkingStream,
    /// Index of the open reasoning content block.
    thinking_block: Option<u64>,
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
            tools: ToolCallIndex::default(),
            thinking: ThinkingStream::default(),
            thinking_block: None,
        }
    }

    fn chunk(&self, delta: Value, finish: Value) -> Bytes {
        chunk_event(&self.ctx, &self.ctx.id, &self.ctx.model, delta, finish)
    }

    fn start(&mut self, out: &mut BytesMut) {
        if !self.started {
            self.started = true;
            out.extend_from_slice(
                &self.chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            );
        }
    }

    fn on_event(&mut self, kind: &str, payload: &Value, out: &mut BytesMut) {
        let block = payload
            .get("contentBlockIndex")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let (ctx, id, model) = (&self.ctx, &*self.ctx.id, &*self.ctx.model);
        match kind {
            "messageStart" => self.start(out),
            "contentBlockStart" => {
                self.start(out);
                if let Some(u) = payload.pointer("/start/toolUse") {
                    let field = |k: &str| u.get(k).and_then(Value::as_str).unwrap_or_default();
                    let index = self.tools.start(block);
                    let (ctx, id, model) = (&self.ctx, &*self.ctx.id, &*self.ctx.model);
                    tool_call_start(
                        ctx,
                        id,
                        model,
                        index,
                        field("toolUseId"),
                        field("name"),
                        out,
                    );
                }
            }
            "contentBlockDelta" => {
                let delta = payload.get("delta").unwrap_or(&Value::Null);
                if let Some(text) = delta.get("text").and_then(Value::as_str) {
                    self.start(out);
                    out.extend_from_slice(&self.chunk(json!({"content": text}), Value::Null));
                } else if let Some(args) = delta.pointer("/toolUse/input").and_then(Value::as_str) {
                    if let Some(index) = self.tools.of(block) {
                        tool_call_arguments(ctx, id, model, index, args, out);
                    }
                } else if let Some(r) = delta.get("reasoningContent") {
                    let field = |k: &str| r.get(k).and_then(Value::as_str);
                    if let Some(data) = field("redactedContent") {
                        self.thinking.redacted(ctx, id, model, data, out);
                    } else {
                        self.thinking_block = Some(block);
                        if let Some(text) = field("text") {
                            reasoning_delta(ctx, id, model, text, out);
                            self.thinking.text(text);
                        }
                        if let Some(sig) = field("signature") {
                            self.thinking.signature(sig);
                        }
                    }
                }
            }
            "contentBlockStop" if self.thinking_block == Some(block) => {
                self.thinking_block = None;
                self.thinking.close(ctx, id, model, out);
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
            // Other blocks' contentBlockStop: the next start or delta says all there is to say.
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
            let usage = self.usage.unwrap_or_default().to_openai();
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
        if ctx.operation.is_messages() {
            return Err(Operation::messages_unsupported("AWSBedrock (Converse)"));
        }
        if ctx.operation != Operation::Chat {
            return Err(TranslateError::Unsupported(format!(
                "{} is not available on AWS Bedrock backends (chat completions only)",
                ctx.path_and_query
            )));
        }
        let converse = request_body_for(&parse_object(body)?, ctx.model)?;
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
            operation: crate::schema::Operation::Chat,
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
        super::super::chunk_events(out)
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

    fn agent_body() -> Map<String, Value> {
        let Value::Object(m) = json!({
            "model": "m", "stream": true, "stream_options": {"include_usage": true}, "seed": 7,
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "weather",
                       "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true}}],
            "tool_choice": "required", "reasoning_effort": "high", "service_tier": "priority",
            "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}},
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}}]},
                {"role": "assistant", "content": "checking",
                    "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "s"}], "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ],
        }) else {
            panic!()
        };
        m
    }

    #[test]
    fn tools_history_images_and_settings_map_to_converse() {
        let out = request_body(&agent_body()).expect("translate");
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": [{"text": "weather?"},
                    {"image": {"format": "jpeg", "source": {"bytes": "/9j/"}}}]},
                {"role": "assistant", "content": [
                    {"reasoningContent": {"reasoningText": {"text": "t", "signature": "s"}}}, {"text": "checking"},
                    {"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}}]},
                {"role": "user", "content": [{"toolResult": {"toolUseId": "call_1", "content": [{"text": "sunny"}]}}]},
            ])
        );
        assert_eq!(
            out["toolConfig"],
            json!({"tools": [{"toolSpec": {"name": "get_weather", "description": "weather", "strict": true,
                "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}],
                "toolChoice": {"any": {}}})
        );
        assert_eq!(
            out["outputConfig"],
            json!({"effort": "high", "textFormat": {"type": "json_schema",
                "structure": {"jsonSchema": {"schema": "{\"type\":\"object\"}", "name": "w"}}}})
        );
        assert_eq!(out["serviceTier"], json!({"type": "priority"}));
        for (choice, want) in [
            (json!("auto"), json!({"auto": {}})),
            (
                json!({"type": "function", "function": {"name": "get_weather"}}),
                json!({"tool": {"name": "get_weather"}}),
            ),
        ] {
            let mut body = agent_body();
            body.insert("tool_choice".into(), choice);
            assert_eq!(
                request_body(&body).expect("ok")["toolConfig"]["toolChoice"],
                want
            );
        }
    }

    #[test]
    fn what_converse_cannot_express_is_refused() {
        let mut none = agent_body();
        none.insert("tool_choice".into(), json!("none"));
        let err = request_body(&none).expect_err("none with history");
        assert!(err.to_string().contains("tool_choice \"none\""), "{err}");
        // Without tool calls in the history, "none" leaves the tools out.
        none.insert(
            "messages".into(),
            json!([{"role": "user", "content": "hi"}]),
        );
        assert!(request_body(&none).expect("ok").get("toolConfig").is_none());
        for (field, value, needle) in [
            (
                "messages",
                json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]),
                "messages[0].content[0]: an image URL",
            ),
            ("parallel_tool_calls", json!(false), "'parallel_tool_calls'"),
            (
                "response_format",
                json!({"type": "json_object"}),
                "'response_format'",
            ),
            ("n", json!(3), "'n'"),
        ] {
            let mut body = agent_body();
            body.insert(field.into(), value);
            let err = request_body(&body).expect_err(field);
            assert!(matches!(err, TranslateError::Unsupported(_)), "{err}");
            assert!(
                err.to_string().contains(needle) && err.to_string().contains("AWS Bedrock"),
                "{err}"
            );
        }
    }

    #[test]
    fn tool_use_answers_map_to_tool_calls() {
        let body = br#"{"output":{"message":{"role":"assistant","content":[
            {"reasoningContent":{"reasoningText":{"text":"think","signature":"s"}}},
            {"toolUse":{"toolUseId":"t1","name":"a","input":{"x":1}}},
            {"toolUse":{"toolUseId":"t2","name":"b","input":{}}}]}},
            "stopReason":"tool_use","usage":{"inputTokens":5,"outputTokens":2,"totalTokens":7,"cacheReadInputTokens":10,"cacheWriteInputTokens":1}}"#;
        let v: Value =
            serde_json::from_slice(&response_body(&ctx(false, false), body).expect("ok"))
                .expect("json");
        let m = &v["choices"][0]["message"];
        assert_eq!(m["content"], Value::Null);
        assert_eq!(m["reasoning_content"], "think");
        assert_eq!(
            m["tool_calls"],
            json!([{"id": "t1", "type": "function", "function": {"name": "a", "arguments": "{\"x\":1}"}},
                   {"id": "t2", "type": "function", "function": {"name": "b", "arguments": "{}"}}])
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            v["usage"],
            json!({"prompt_tokens": 16, "completion_tokens": 2, "total_tokens": 18,
                   "prompt_tokens_details": {"cached_tokens": 10, "cache_creation_tokens": 1}})
        );
    }

    #[test]
    fn streamed_tool_calls_become_indexed_deltas() {
        let mut s = Vec::new();
        for (kind, payload) in [
            ("messageStart", json!({"role": "assistant"})),
            (
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "ok"}}),
            ),
            ("contentBlockStop", json!({"contentBlockIndex": 0})),
            (
                "contentBlockStart",
                json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "a"}}}),
            ),
            (
                "contentBlockDelta",
                json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"x\":"}}}),
            ),
            (
                "contentBlockDelta",
                json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "1}"}}}),
            ),
            ("contentBlockStop", json!({"contentBlockIndex": 1})),
            (
                "contentBlockStart",
                json!({"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "t2", "name": "b"}}}),
            ),
            (
                "contentBlockDelta",
                json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{}"}}}),
            ),
            ("contentBlockStop", json!({"contentBlockIndex": 2})),
            ("messageStop", json!({"stopReason": "tool_use"})),
            (
                "metadata",
                json!({"usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}, "metrics": {"latencyMs": 1}}),
            ),
        ] {
            s.extend_from_slice(&encode_event(kind, payload.to_string().as_bytes()).expect("enc"));
        }
        let mut t = StreamTransform::new(ctx(true, true));
        let mut out = BytesMut::new();
        t.feed(&s, &mut out).expect("feed");
        t.finish(&mut out).expect("finish");
        let deltas: Vec<Value> = events(&out)
            .iter()
            .filter_map(|e| e["choices"][0]["delta"].get("tool_calls").cloned())
            .collect();
        assert_eq!(
            deltas,
            vec![
                json!([{"index": 0, "id": "t1", "type": "function", "function": {"name": "a", "arguments": ""}}]),
                json!([{"index": 0, "function": {"arguments": "{\"x\":"}}]),
                json!([{"index": 0, "function": {"arguments": "1}"}}]),
                json!([{"index": 1, "id": "t2", "type": "function", "function": {"name": "b", "arguments": ""}}]),
                json!([{"index": 1, "function": {"arguments": "{}"}}]),
            ]
        );
        let ev = events(&out);
        assert_eq!(
            ev[ev.len() - 2]["choices"][0]["finish_reason"],
            "tool_calls"
        );
    }
}

#[cfg(test)]
mod thinking_tests {
    use super::*;
    use crate::schema::eventstream::encode_event;

    fn ctx() -> ResponseCtx {
        ResponseCtx {
            operation: crate::schema::Operation::Chat,
            model: "m".into(),
            stream: true,
            include_usage: false,
            id: "chatcmpl-1".into(),
            created: 7,
        }
    }

    fn second_turn(assistant: Value) -> Map<String, Value> {
        match json!({"model": "m", "reasoning_effort": "low",
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "messages": [{"role": "user", "content": "q"}, assistant,
                         {"role": "tool", "tool_call_id": "c1", "content": "ok"}]})
        {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn reasoning_goes_back_as_reasoning_content_blocks() {
        let out = request_body(&second_turn(json!({"role": "assistant",
            "thinking_blocks": [{"type": "thinking", "thinking": "hm", "signature": "sig"},
                                {"type": "redacted_thinking", "data": "UkVE"}],
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]})))
        .expect("translate");
        assert_eq!(
            out["messages"][1]["content"],
            json!([
                {"reasoningContent": {"reasoningText": {"text": "hm", "signature": "sig"}}},
                {"reasoningContent": {"redactedContent": "UkVE"}},
                {"toolUse": {"toolUseId": "c1", "name": "f", "input": {}}},
            ])
        );
        assert_eq!(out["outputConfig"]["effort"], "low");
        // From another model: no reasoning to give back, so none is asked for on this request.
        let out = request_body(&second_turn(json!({"role": "assistant",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]})))
        .expect("translate");
        assert!(out.get("outputConfig").is_none(), "{out}");
        // Another vendor's model has no such rule: its reasoning is asked for as usual.
        let out = request_body_for(
            &second_turn(json!({"role": "assistant",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]})),
            "us.deepseek.r1-v1:0",
        )
        .expect("translate");
        assert_eq!(out["outputConfig"]["effort"], "low", "{out}");
    }

    #[test]
    fn answers_and_streams_carry_signed_and_redacted_reasoning() {
        let answer = br#"{"output":{"message":{"role":"assistant","content":[
            {"reasoningContent":{"reasoningText":{"text":"hm","signature":"sig"}}},
            {"reasoningContent":{"redactedContent":"UkVE"}},{"text":"hi"}]}},
            "stopReason":"end_turn","usage":{"inputTokens":1,"outputTokens":2,"totalTokens":3}}"#;
        let v: Value =
            serde_json::from_slice(&response_body(&ctx(), answer).expect("ok")).expect("json");
        let m = &v["choices"][0]["message"];
        assert_eq!(m["reasoning_content"], "hm");
        assert_eq!(
            m["thinking_blocks"],
            json!([{"type": "thinking", "thinking": "hm", "signature": "sig"},
                   {"type": "redacted_thinking", "data": "UkVE"}])
        );
        let mut s = Vec::new();
        for (kind, payload) in [
            ("messageStart", json!({"role": "assistant"})),
            (
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "h"}}}),
            ),
            (
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "m"}}}),
            ),
            (
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "sig"}}}),
            ),
            ("contentBlockStop", json!({"contentBlockIndex": 0})),
            (
                "contentBlockDelta",
                json!({"contentBlockIndex": 1, "delta": {"reasoningContent": {"redactedContent": "UkVE"}}}),
            ),
            ("contentBlockStop", json!({"contentBlockIndex": 1})),
            (
                "contentBlockDelta",
                json!({"contentBlockIndex": 2, "delta": {"text": "hi"}}),
            ),
            ("contentBlockStop", json!({"contentBlockIndex": 2})),
            ("messageStop", json!({"stopReason": "end_turn"})),
        ] {
            s.extend_from_slice(&encode_event(kind, payload.to_string().as_bytes()).expect("enc"));
        }
        let mut t = StreamTransform::new(ctx());
        let mut out = BytesMut::new();
        t.feed(&s, &mut out).expect("feed");
        t.finish(&mut out).expect("finish");
        let deltas = super::super::chunk_deltas(&out);
        let reasoning: String = deltas
            .iter()
            .filter_map(|d| d["reasoning_content"].as_str())
            .collect();
        assert_eq!(reasoning, "hm");
        let blocks: Vec<&Value> = deltas
            .iter()
            .filter_map(|d| d.get("thinking_blocks"))
            .collect();
        assert_eq!(
            blocks,
            vec![
                &json!([{"index": 0, "type": "thinking", "thinking": "hm", "signature": "sig"}]),
                &json!([{"index": 1, "type": "redacted_thinking", "data": "UkVE"}]),
            ]
        );
    }
}
