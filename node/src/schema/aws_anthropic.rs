//! The `AWSAnthropic` schema: Claude on AWS Bedrock through InvokeModel / InvokeModelWithResponseStream
//! with the Anthropic Messages body (Envoy AI Gateway v1.1's schema of that name; Bedrock "Anthropic
//! Claude Messages API" parameters), SigV4-signed like `AWSBedrock` by `schema::auth`.
//!
//! Both client APIs reach it. Anthropic Messages clients (`/anthropic/v1/messages`) get their body sent
//! as Bedrock takes it and the answer back as Anthropic's ([`super::messages`]). OpenAI chat clients get
//! the chat translated to a Messages body by the `Anthropic` schema's translation and the answer
//! translated back to a `chat.completion` (or chunks), as they would from Anthropic itself: only the
//! envelope differs — the model is in the path (`/model/{modelId}/invoke[-with-response-stream]`), the
//! body has `anthropic_version` (`schema.version`, default `bedrock-2023-05-31`) and no `model` or
//! `stream`, and a streamed answer is an AWS event stream of `chunk` events carrying the Anthropic events.
//! `count_tokens` goes to Bedrock's CountTokens with the InvokeModel body it would count.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::Value;

use super::anthropic::{self, StreamTransform};
use super::messages::{self, InvokeStream, MessagesStream};
use super::{
    bedrock, json_content_type, parse_object, BodyTransform, Buffered, Operation, RequestCtx,
    ResponseCtx, TranslateError, Translator, UpstreamRequest,
};

/// `gen_ai_provider_name` of Claude on Bedrock.
const PROVIDER: &str = "aws.anthropic";

/// Claude on Bedrock (InvokeModel) translator.
#[derive(Debug, Clone, Copy)]
pub struct AwsAnthropic;

/// The accept headers of the Invoke operations (botocore: InvokeModel's `accept` is `Accept`,
/// InvokeModelWithResponseStream's is `X-Amzn-Bedrock-Accept`): the model's answer is JSON.
fn accept(stream: bool) -> (HeaderName, HeaderValue) {
    let name = if stream {
        HeaderName::from_static("x-amzn-bedrock-accept")
    } else {
        http::header::ACCEPT
    };
    (name, HeaderValue::from_static("application/json"))
}

impl Translator for AwsAnthropic {
    fn provider_name(&self) -> &'static str {
        PROVIDER
    }

    fn request(
        &self,
        ctx: &RequestCtx<'_>,
        body: &Bytes,
    ) -> Result<UpstreamRequest, TranslateError> {
        let object = parse_object(body)?;
        let invoke = match ctx.operation {
            Operation::Chat => {
                // The chat's Messages body, then the Bedrock envelope over it.
                let Value::Object(m) = anthropic::request_body(&object, ctx.model, false)? else {
                    return Err(TranslateError::BadRequest(
                        "the Messages translation is not an object".into(),
                    ));
                };
                messages::invoke_body(&m, ctx.schema_version, &HeaderMap::new())?
            }
            Operation::Messages => {
                messages::invoke_body(&object, ctx.schema_version, ctx.client_headers)?
            }
            Operation::CountTokens => {
                // CountTokens counts a complete InvokeModel body, which for Claude needs `max_tokens`;
                // Anthropic's count_tokens takes none, and the count does not depend on it.
                let mut object = object;
                object
                    .entry("max_tokens")
                    .or_insert(anthropic::DEFAULT_MAX_TOKENS.into());
                messages::invoke_body(&object, ctx.schema_version, ctx.client_headers)?
            }
            Operation::Completions
            | Operation::Embeddings
            | Operation::Responses
            | Operation::Rerank => {
                return Err(TranslateError::Unsupported(format!(
                    "{} is not available on AWSAnthropic backends (chat completions and Anthropic messages only)",
                    ctx.path_and_query
                )))
            }
        };
        if ctx.operation == Operation::CountTokens {
            return Ok(UpstreamRequest {
                path_and_query: messages::invoke_path(ctx.model, "count-tokens")?,
                body: messages::count_tokens_body(&invoke),
                headers: vec![json_content_type()],
            });
        }
        let operation = if ctx.stream {
            "invoke-with-response-stream"
        } else {
            "invoke"
        };
        Ok(UpstreamRequest {
            path_and_query: messages::invoke_path(ctx.model, operation)?,
            body: invoke,
            headers: vec![json_content_type(), accept(ctx.stream)],
        })
    }

    fn response(
        &self,
        ctx: &ResponseCtx,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Option<Box<dyn BodyTransform>> {
        let code = status.as_u16();
        if !status.is_success() {
            let error_type = headers
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let messages = ctx.operation.is_messages();
            return Some(Box::new(Buffered::new(move |b: &[u8]| {
                Ok(if messages {
                    messages::bedrock_error(code, error_type.as_deref(), b)
                } else {
                    bedrock::error_body(code, error_type.as_deref(), b)
                })
            })));
        }
        match ctx.operation {
            Operation::CountTokens => Some(Box::new(Buffered::new(messages::count_tokens_answer))),
            // InvokeModel answers the Messages body itself.
            Operation::Messages if !ctx.stream => None,
            Operation::Messages => Some(Box::new(InvokeStream::new(MessagesStream::new()))),
            _ if ctx.stream => Some(Box::new(InvokeStream::new(StreamTransform::new(
                ctx.clone(),
            )))),
            _ => {
                let ctx = ctx.clone();
                Some(Box::new(Buffered::new(move |b: &[u8]| {
                    anthropic::response_body(&ctx, b)
                })))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use bytes::BytesMut;
    use http::uri::PathAndQuery;
    use serde_json::json;

    fn req<'a>(
        op: Operation,
        stream: bool,
        headers: &'a HeaderMap,
        path: &'a PathAndQuery,
    ) -> RequestCtx<'a> {
        RequestCtx {
            operation: op,
            path_and_query: path,
            model: "anthropic.claude-3-5-sonnet-20241022-v2:0",
            model_overridden: false,
            stream,
            schema_version: Some("bedrock-2023-05-31"),
            client_headers: headers,
            gcp: None,
        }
    }

    #[test]
    fn chat_and_messages_become_invoke_model_requests() {
        let headers = HeaderMap::new();
        let path = PathAndQuery::from_static("/v1/chat/completions");
        let chat = Bytes::from_static(
            br#"{"model":"claude","stream":true,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}"#,
        );
        let r = AwsAnthropic
            .request(&req(Operation::Chat, true, &headers, &path), &chat)
            .expect("chat");
        assert_eq!(
            r.path_and_query,
            "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke-with-response-stream"
        );
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(
            v,
            json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": anthropic::DEFAULT_MAX_TOKENS,
                   "system": "be brief", "messages": [{"role": "user", "content": "hi"}]})
        );
        let messages = Bytes::from_static(
            br#"{"model":"claude","max_tokens":9,"messages":[{"role":"user","content":"hi"}]}"#,
        );
        let r = AwsAnthropic
            .request(&req(Operation::Messages, false, &headers, &path), &messages)
            .expect("messages");
        assert_eq!(
            r.path_and_query,
            "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke"
        );
        assert!(r
            .headers
            .iter()
            .any(|(n, v)| n == http::header::ACCEPT && v == "application/json"));
        let r = AwsAnthropic
            .request(
                &req(Operation::CountTokens, false, &headers, &path),
                &messages,
            )
            .expect("count");
        assert_eq!(
            r.path_and_query,
            "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/count-tokens"
        );
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        let inner = base64::engine::general_purpose::STANDARD
            .decode(v["input"]["invokeModel"]["body"].as_str().expect("body"))
            .expect("base64");
        let inner: Value = serde_json::from_slice(&inner).expect("json");
        assert_eq!(inner["anthropic_version"], "bedrock-2023-05-31");
        assert_eq!(inner["max_tokens"], 9);
        assert!(inner.get("model").is_none());
        let err = AwsAnthropic
            .request(
                &req(Operation::Embeddings, false, &headers, &path),
                &messages,
            )
            .expect_err("embeddings");
        assert!(err.to_string().contains("AWSAnthropic"), "{err}");
    }

    fn rctx(operation: Operation, stream: bool) -> ResponseCtx {
        ResponseCtx {
            operation,
            model: "claude".into(),
            stream,
            include_usage: false,
            id: "chatcmpl-1".into(),
            created: 1,
        }
    }

    #[test]
    fn streamed_answers_unwrap_for_either_client() {
        let events = [
            json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude", "usage": {"input_tokens": 3, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hey"}}),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}),
            json!({"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 3}}),
        ];
        let mut frames = BytesMut::new();
        for e in &events {
            let b64 = base64::engine::general_purpose::STANDARD.encode(e.to_string());
            frames.extend_from_slice(
                &crate::schema::eventstream::encode_event(
                    "chunk",
                    json!({ "bytes": b64 }).to_string().as_bytes(),
                )
                .expect("frame"),
            );
        }
        let ok = StatusCode::OK;
        let none = HeaderMap::new();
        let mut chat = AwsAnthropic
            .response(&rctx(Operation::Chat, true), ok, &none)
            .expect("a transform");
        let mut out = BytesMut::new();
        chat.feed(&frames, &mut out).expect("feed");
        chat.finish(&mut out).expect("finish");
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("\"content\":\"hey\"") && text.ends_with("data: [DONE]\n\n"));
        assert!(!chat.self_watched());
        let mut msgs = AwsAnthropic
            .response(&rctx(Operation::Messages, true), ok, &none)
            .expect("a transform");
        let mut out = BytesMut::new();
        msgs.feed(&frames, &mut out).expect("feed");
        msgs.finish(&mut out).expect("finish");
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("event: message_start\ndata: {"), "{text}");
        assert!(text.ends_with("\n\n") && text.contains("event: message_stop\n"));
        assert!(msgs.self_watched());
        assert!(AwsAnthropic
            .response(&rctx(Operation::Messages, false), ok, &none)
            .is_none());
    }

    #[test]
    fn errors_keep_the_clients_shape() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amzn-errortype",
            HeaderValue::from_static("ThrottlingException"),
        );
        let body = br#"{"message":"Too many requests"}"#;
        for (op, want) in [
            (
                Operation::Messages,
                json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Too many requests"}}),
            ),
            (
                Operation::Chat,
                json!({"error": {"message": "Too many requests", "type": "rate_limit_exceeded", "param": null, "code": "ThrottlingException"}}),
            ),
        ] {
            let mut t = AwsAnthropic
                .response(&rctx(op, false), StatusCode::TOO_MANY_REQUESTS, &headers)
                .expect("a transform");
            let mut out = BytesMut::new();
            t.feed(body, &mut out).expect("feed");
            t.finish(&mut out).expect("finish");
            let v: Value = serde_json::from_slice(&out).expect("json");
            assert_eq!(v, want, "{op:?}");
        }
    }
}
