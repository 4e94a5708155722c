//! The OpenAI schema: the client already speaks it, so requests and answers pass through untouched
//! (DESIGN §8, "OpenAI (passthrough)"). It exists so the attempt loop treats every backend alike.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use super::{BodyTransform, RequestCtx, ResponseCtx, TranslateError, Translator, UpstreamRequest};

/// Passthrough translator.
#[derive(Debug, Clone, Copy)]
pub struct OpenAi;

impl Translator for OpenAi {
    fn provider_name(&self) -> &'static str {
        "openai"
    }

    fn request(
        &self,
        ctx: &RequestCtx<'_>,
        body: &Bytes,
    ) -> Result<UpstreamRequest, TranslateError> {
        Ok(UpstreamRequest {
            path_and_query: ctx.path_and_query.clone(),
            body: if ctx.model_overridden {
                super::with_model(body, ctx.model)?
            } else {
                body.clone()
            },
            headers: Vec::new(),
        })
    }

    fn response(
        &self,
        _ctx: &ResponseCtx,
        _status: StatusCode,
        _headers: &HeaderMap,
    ) -> Option<Box<dyn BodyTransform>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Operation;
    use http::uri::PathAndQuery;

    #[test]
    fn passthrough_keeps_path_and_body() {
        let ctx = RequestCtx {
            operation: Operation::Chat,
            path_and_query: &PathAndQuery::from_static("/v1/chat/completions?x=1"),
            model: "m",
            model_overridden: false,
            stream: false,
            schema_version: None,
        };
        let body = Bytes::from_static(b"{\"model\":\"m\"}");
        let r = OpenAi.request(&ctx, &body).expect("translate");
        assert_eq!(r.path_and_query, "/v1/chat/completions?x=1");
        assert_eq!(r.body, body);
        assert!(r.headers.is_empty());
    }

    #[test]
    fn an_overridden_model_is_written_into_the_body() {
        let ctx = RequestCtx {
            operation: Operation::Chat,
            path_and_query: &PathAndQuery::from_static("/v1/chat/completions"),
            model: "gpt-4o-mini",
            model_overridden: true,
            stream: false,
            schema_version: None,
        };
        let body = Bytes::from_static(b"{\"model\":\"gpt-4o\",\"messages\":[]}");
        let r = OpenAi.request(&ctx, &body).expect("translate");
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["model"], "gpt-4o-mini");
        assert_eq!(v["messages"], serde_json::json!([]));
    }
}
