//! Every top-level field of an OpenAI chat request, and what each non-OpenAI provider does with it
//! (DESIGN §8: "translation is complete or it refuses").
//!
//! A field is one of three things for a provider: translated; on the documented safe-to-ignore list
//! (its value changes nothing the client could observe beyond what OpenAI itself leaves unspecified, or
//! only has meaning to OpenAI's own platform); or refused with a 422 that names the field and the
//! provider. A value-dependent field is ignored only at its neutral value (`n: 1`, `logprobs: false`,
//! `frequency_penalty: 0`) and refused otherwise. A field OpenAI does not define is refused too: a
//! vendor extension meant for another provider must not be dropped on the way to this one.
//!
//! The table is also written out for operators in docs/translation.md; the tests walk every field against
//! every provider so the two cannot drift apart silently.

use serde_json::{Map, Value};

use super::TranslateError;

/// A provider whose schema is not OpenAI's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// AWS Bedrock Converse / ConverseStream.
    Bedrock,
    /// Anthropic Messages.
    Anthropic,
    /// Cohere v2 Chat.
    Cohere,
    /// Gemini on Vertex AI (`generateContent`).
    Gemini,
}

impl Provider {
    /// The name used in refusals.
    pub fn display(self) -> &'static str {
        match self {
            Provider::Bedrock => "AWS Bedrock",
            Provider::Anthropic => "Anthropic",
            Provider::Cohere => "Cohere",
            Provider::Gemini => "Gemini (GCPVertexAI)",
        }
    }
}

/// What happens to one field with one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Mapped to the provider's equivalent.
    Translated,
    /// Safe to ignore (the reason is in the table below and in docs/translation.md).
    Ignored,
    /// Refused: answered with a 422 naming the field and the provider.
    Refused,
}

use Disposition::{Ignored, Refused, Translated};

/// Every field of OpenAI's "Create chat completion" request body.
pub const OPENAI_CHAT_FIELDS: &[&str] = &[
    "messages",
    "model",
    "audio",
    "frequency_penalty",
    "function_call",
    "functions",
    "logit_bias",
    "logprobs",
    "max_completion_tokens",
    "max_tokens",
    "metadata",
    "modalities",
    "n",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "prompt_cache_key",
    "prompt_cache_retention",
    "reasoning_effort",
    "response_format",
    "safety_identifier",
    "seed",
    "service_tier",
    "stop",
    "store",
    "stream",
    "stream_options",
    "temperature",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "user",
    "verbosity",
    "web_search_options",
];

fn is_zero(v: &Value) -> bool {
    v.as_f64() == Some(0.0)
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// What `provider` does with `field` set to `value` (`null` always counts as absent).
pub fn disposition(provider: Provider, field: &str, value: &Value) -> Disposition {
    if value.is_null() {
        return Ignored;
    }
    let bedrock = provider == Provider::Bedrock;
    if matches!(provider, Provider::Cohere | Provider::Gemini) {
        if let Some(d) = cohere_gemini_disposition(field, value) {
            return d;
        }
    }
    match field {
        "messages"
        | "model"
        | "stream"
        | "stream_options"
        | "max_completion_tokens"
        | "max_tokens"
        | "temperature"
        | "top_p"
        | "stop"
        | "tools"
        | "tool_choice"
        | "reasoning_effort" => Translated,
        // Converse has no switch for parallel calls: the default (allowed) is what it does.
        "parallel_tool_calls" if bedrock => {
            if value.as_bool() == Some(false) {
                Refused
            } else {
                Ignored
            }
        }
        // Messages: `tool_choice.disable_parallel_tool_use`.
        "parallel_tool_calls" => Translated,
        // json_schema → Converse `outputConfig.textFormat` / Messages `output_config.format`; `text` is
        // the default; `json_object` (JSON without a schema) has no equivalent on either.
        "response_format" => match value.get("type").and_then(Value::as_str) {
            Some("text") => Ignored,
            Some("json_schema") => Translated,
            _ => Refused,
        },
        // An end-user id: Messages `metadata.user_id`; Converse has none and OpenAI only uses it for abuse
        // monitoring, which the client cannot observe.
        "user" | "safety_identifier" if bedrock => Ignored,
        "user" | "safety_identifier" => Translated,
        // Converse `serviceTier` has flex/priority/default; Messages' tiers are not OpenAI's. `auto` is
        // OpenAI's default and means "whatever the project has".
        "service_tier" => match value.as_str() {
            Some("auto") => Ignored,
            Some("default") if !bedrock => Ignored,
            Some("flex" | "priority" | "default") if bedrock => Translated,
            _ => Refused,
        },
        // OpenAI documents `seed` as best effort (determinism is not guaranteed there either), and neither
        // provider has one.
        "seed" => Ignored,
        // Predicted outputs only change latency, never the answer.
        "prediction" => Ignored,
        // Prompt-cache routing and retention hints of OpenAI's own cache: cost only, never the answer.
        "prompt_cache_key" | "prompt_cache_retention" => Ignored,
        // `metadata` is stored with OpenAI's stored completions only; `store: false` is the default.
        "metadata" => Ignored,
        "store" => {
            if value.as_bool() == Some(true) {
                Refused
            } else {
                Ignored
            }
        }
        "n" => {
            if value.as_u64() == Some(1) {
                Ignored
            } else {
                Refused
            }
        }
        "logprobs" => {
            if value.as_bool() == Some(false) {
                Ignored
            } else {
                Refused
            }
        }
        "top_logprobs" => {
            if is_zero(value) {
                Ignored
            } else {
                Refused
            }
        }
        "frequency_penalty" | "presence_penalty" => {
            if is_zero(value) {
                Ignored
            } else {
                Refused
            }
        }
        "logit_bias" => {
            if is_empty(value) {
                Ignored
            } else {
                Refused
            }
        }
        "modalities" => {
            if value
                .as_array()
                .is_some_and(|a| a.iter().all(|m| m.as_str() == Some("text")))
            {
                Ignored
            } else {
                Refused
            }
        }
        // `medium` is OpenAI's default verbosity; other levels change the answer and have no equivalent.
        "verbosity" => {
            if value.as_str() == Some("medium") {
                Ignored
            } else {
                Refused
            }
        }
        // Audio output, OpenAI's web search and the deprecated `functions` API have no equivalent here.
        "audio" | "web_search_options" | "functions" | "function_call" => Refused,
        _ => Refused,
    }
}

/// Where Cohere's v2 Chat and Gemini's `generateContent` differ from Anthropic's Messages, the same way
/// for both (every other field goes as for Anthropic).
fn cohere_gemini_disposition(field: &str, value: &Value) -> Option<Disposition> {
    Some(match field {
        // Cohere has these under OpenAI's names; Gemini as `generationConfig.seed`, `frequencyPenalty`,
        // `presencePenalty`.
        "seed" | "frequency_penalty" | "presence_penalty" => Translated,
        // `json_object` (with or without a schema): Cohere's own JSON mode; Gemini's
        // `responseMimeType: application/json`, with `responseJsonSchema` for json_schema.
        "response_format" => match value.get("type").and_then(Value::as_str) {
            Some("text") => Ignored,
            Some("json_schema" | "json_object") => Translated,
            _ => Refused,
        },
        // Neither has a switch for parallel calls (the default, allowed, is what they do), nor an end-user
        // id.
        "parallel_tool_calls" if value.as_bool() == Some(false) => Refused,
        "parallel_tool_calls" | "user" | "safety_identifier" => Ignored,
        _ => return None,
    })
}

/// What an assistant message may carry beyond OpenAI's fields: the reasoning a provider gave, as the
/// gateway's own answers spell it (LiteLLM's and Envoy AI Gateway's convention) and as the official
/// clients send it back (they keep unknown fields on the message they return). The Chat API rejects these
/// only on OpenAI's own servers; every translated provider accounts for each of them here.
pub const ASSISTANT_EXTENSIONS: &[&str] = &[
    "reasoning_content",
    "thinking_blocks",
    "content[].thinking",
    "content[].redacted_thinking",
    "tool_calls[].extra_content",
];

/// What `provider` does with an assistant message's reasoning extension `field`
/// ([`ASSISTANT_EXTENSIONS`]).
pub fn assistant_extension(provider: Provider, field: &str) -> Disposition {
    match (provider, field) {
        // The reasoning's display text: only its signed form (thinking_blocks) can be replayed.
        (_, "reasoning_content") => Ignored,
        // Claude (Messages, Converse) takes signed and redacted thinking back.
        (
            Provider::Anthropic | Provider::Bedrock,
            "thinking_blocks" | "content[].thinking" | "content[].redacted_thinking",
        ) => Translated,
        // Cohere's reasoning is not signed or replayed; Gemini's signatures come back on its calls
        // (below), and a thinking block's may be another provider's, which Gemini 3 would refuse.
        (_, "thinking_blocks" | "content[].thinking" | "content[].redacted_thinking") => Ignored,
        // Google's OpenAI layer puts a call's thoughtSignature here; only Gemini has a use for it.
        (Provider::Gemini, "tool_calls[].extra_content") => Translated,
        (_, "tool_calls[].extra_content") => Ignored,
        _ => Refused,
    }
}

/// Refuses the first field of `body` that `provider` cannot honour.
pub fn check(body: &Map<String, Value>, provider: Provider) -> Result<(), TranslateError> {
    for (field, value) in body {
        if disposition(provider, field, value) == Refused {
            let known = OPENAI_CHAT_FIELDS.contains(&field.as_str());
            return Err(TranslateError::Unsupported(format!(
                "field '{field}'{} is not supported by {}{}",
                if known {
                    ""
                } else {
                    " (not an OpenAI chat field)"
                },
                provider.display(),
                refusal_hint(field, value)
            )));
        }
    }
    Ok(())
}

fn refusal_hint(field: &str, value: &Value) -> String {
    let shown = match value {
        Value::String(s) => format!(" with value {s:?}"),
        Value::Bool(_) | Value::Number(_) => format!(" with value {value}"),
        Value::Object(m) => match m.get("type").and_then(Value::as_str) {
            Some(t) => format!(" of type {t:?}"),
            None => String::new(),
        },
        _ => String::new(),
    };
    match field {
        "response_format" => format!("{shown} (json_schema is; json_object has no equivalent)"),
        _ => shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_assistant_extension_is_accounted_for_on_every_provider() {
        use Provider::{Anthropic, Bedrock, Cohere, Gemini};
        for (provider, field, want) in [
            (Anthropic, "reasoning_content", Ignored),
            (Anthropic, "thinking_blocks", Translated),
            (Anthropic, "content[].thinking", Translated),
            (Anthropic, "content[].redacted_thinking", Translated),
            (Anthropic, "tool_calls[].extra_content", Ignored),
            (Bedrock, "reasoning_content", Ignored),
            (Bedrock, "thinking_blocks", Translated),
            (Bedrock, "content[].thinking", Translated),
            (Bedrock, "content[].redacted_thinking", Translated),
            (Bedrock, "tool_calls[].extra_content", Ignored),
            (Gemini, "reasoning_content", Ignored),
            (Gemini, "thinking_blocks", Ignored),
            (Gemini, "content[].thinking", Ignored),
            (Gemini, "content[].redacted_thinking", Ignored),
            (Gemini, "tool_calls[].extra_content", Translated),
            (Cohere, "reasoning_content", Ignored),
            (Cohere, "thinking_blocks", Ignored),
            (Cohere, "content[].thinking", Ignored),
            (Cohere, "content[].redacted_thinking", Ignored),
            (Cohere, "tool_calls[].extra_content", Ignored),
            (Anthropic, "audio", Refused),
        ] {
            assert_eq!(
                assistant_extension(provider, field),
                want,
                "{provider:?} {field}"
            );
        }
        for provider in [Anthropic, Bedrock, Cohere, Gemini] {
            for field in ASSISTANT_EXTENSIONS {
                assert_ne!(assistant_extension(provider, field), Refused, "{field}");
            }
        }
    }

    /// Cohere and Gemini go as Anthropic but for these fields: (field, a value, their disposition).
    #[test]
    fn cohere_and_gemini_differ_from_anthropic_only_where_listed() {
        let differs = [
            ("seed", json!(7), Translated),
            ("frequency_penalty", json!(0.5), Translated),
            ("presence_penalty", json!(-1), Translated),
            (
                "response_format",
                json!({"type": "json_object"}),
                Translated,
            ),
            ("parallel_tool_calls", json!(false), Refused),
            ("parallel_tool_calls", json!(true), Ignored),
            ("user", json!("u"), Ignored),
            ("safety_identifier", json!("u"), Ignored),
        ];
        for provider in [Provider::Cohere, Provider::Gemini] {
            for (field, value, want) in &differs {
                assert_eq!(
                    disposition(provider, field, value),
                    *want,
                    "{provider:?} {field} {value}"
                );
            }
            for (field, value, _, _) in table() {
                if differs.iter().any(|(f, _, _)| *f == field) {
                    continue;
                }
                assert_eq!(
                    disposition(provider, field, &value),
                    disposition(Provider::Anthropic, field, &value),
                    "{provider:?} {field} {value}"
                );
                if provider != Provider::Gemini || disposition(provider, field, &value) != Refused {
                    continue;
                }
                // And Gemini's translation agrees with the table: a refused field is refused naming it.
                let mut body: Map<String, Value> = [
                    ("model".to_owned(), json!("m")),
                    (
                        "messages".to_owned(),
                        json!([{"role": "user", "content": "hi"}]),
                    ),
                ]
                .into_iter()
                .collect();
                body.insert(field.to_owned(), value.clone());
                let e = crate::schema::gemini::request_body(&body)
                    .expect_err(field)
                    .to_string();
                assert!(
                    e.contains(&format!("'{field}'")) && e.contains("Gemini"),
                    "{e}"
                );
            }
        }
    }

    /// One row per field: a value to try, and what Bedrock and Anthropic do with it.
    fn table() -> Vec<(&'static str, Value, Disposition, Disposition)> {
        vec![
            ("messages", json!([]), Translated, Translated),
            ("model", json!("m"), Translated, Translated),
            (
                "audio",
                json!({"voice": "alloy", "format": "mp3"}),
                Refused,
                Refused,
            ),
            ("frequency_penalty", json!(0), Ignored, Ignored),
            ("frequency_penalty", json!(0.5), Refused, Refused),
            ("function_call", json!("auto"), Refused, Refused),
            ("functions", json!([{"name": "f"}]), Refused, Refused),
            ("logit_bias", json!({}), Ignored, Ignored),
            ("logit_bias", json!({"50256": -100}), Refused, Refused),
            ("logprobs", json!(false), Ignored, Ignored),
            ("logprobs", json!(true), Refused, Refused),
            ("max_completion_tokens", json!(5), Translated, Translated),
            ("max_tokens", json!(5), Translated, Translated),
            ("metadata", json!({"k": "v"}), Ignored, Ignored),
            ("modalities", json!(["text"]), Ignored, Ignored),
            ("modalities", json!(["text", "audio"]), Refused, Refused),
            ("n", json!(1), Ignored, Ignored),
            ("n", json!(2), Refused, Refused),
            ("parallel_tool_calls", json!(true), Ignored, Translated),
            ("parallel_tool_calls", json!(false), Refused, Translated),
            (
                "prediction",
                json!({"type": "content", "content": "x"}),
                Ignored,
                Ignored,
            ),
            ("presence_penalty", json!(0.0), Ignored, Ignored),
            ("presence_penalty", json!(-1), Refused, Refused),
            ("prompt_cache_key", json!("k"), Ignored, Ignored),
            ("prompt_cache_retention", json!("24h"), Ignored, Ignored),
            ("reasoning_effort", json!("high"), Translated, Translated),
            ("response_format", json!({"type": "text"}), Ignored, Ignored),
            (
                "response_format",
                json!({"type": "json_schema", "json_schema": {"name": "s", "schema": {}}}),
                Translated,
                Translated,
            ),
            (
                "response_format",
                json!({"type": "json_object"}),
                Refused,
                Refused,
            ),
            ("safety_identifier", json!("u"), Ignored, Translated),
            ("seed", json!(42), Ignored, Ignored),
            ("service_tier", json!("auto"), Ignored, Ignored),
            ("service_tier", json!("default"), Translated, Ignored),
            ("service_tier", json!("flex"), Translated, Refused),
            ("service_tier", json!("priority"), Translated, Refused),
            ("service_tier", json!("scale"), Refused, Refused),
            ("stop", json!(["x"]), Translated, Translated),
            ("store", json!(false), Ignored, Ignored),
            ("store", json!(true), Refused, Refused),
            ("stream", json!(true), Translated, Translated),
            (
                "stream_options",
                json!({"include_usage": true}),
                Translated,
                Translated,
            ),
            ("temperature", json!(0.2), Translated, Translated),
            ("tool_choice", json!("required"), Translated, Translated),
            ("tools", json!([]), Translated, Translated),
            ("top_logprobs", json!(0), Ignored, Ignored),
            ("top_logprobs", json!(3), Refused, Refused),
            ("top_p", json!(0.9), Translated, Translated),
            ("user", json!("u"), Ignored, Translated),
            ("verbosity", json!("medium"), Ignored, Ignored),
            ("verbosity", json!("low"), Refused, Refused),
            ("web_search_options", json!({}), Refused, Refused),
            ("top_k", json!(5), Refused, Refused),
            ("thinking", json!({"type": "enabled"}), Refused, Refused),
        ]
    }

    #[test]
    fn every_field_against_every_provider() {
        let rows = table();
        for field in OPENAI_CHAT_FIELDS {
            assert!(
                rows.iter().any(|r| r.0 == *field),
                "{field} has no row in the table"
            );
        }
        for (field, value, bedrock, anthropic) in rows {
            for (provider, want) in [
                (Provider::Bedrock, bedrock),
                (Provider::Anthropic, anthropic),
            ] {
                assert_eq!(
                    disposition(provider, field, &value),
                    want,
                    "{field} = {value} on {provider:?}"
                );
                let body: Map<String, Value> =
                    [(field.to_owned(), value.clone())].into_iter().collect();
                match check(&body, provider) {
                    Ok(()) => assert_ne!(want, Refused, "{field} = {value} on {provider:?}"),
                    Err(e) => {
                        assert_eq!(want, Refused, "{field} = {value} on {provider:?}: {e}");
                        let msg = e.to_string();
                        assert!(
                            msg.contains(&format!("'{field}'")) && msg.contains(provider.display()),
                            "{msg}"
                        );
                    }
                }
            }
            // null is absent, whatever the field.
            assert_eq!(disposition(Provider::Bedrock, field, &Value::Null), Ignored);
        }
    }

    /// Odd values in any field are answered (translated or refused), never a panic, on both providers.
    #[test]
    fn odd_values_in_any_field_never_panic() {
        let odd = [
            Value::Null,
            json!(0),
            json!(-1),
            json!(1.5),
            json!("x"),
            json!(""),
            json!(true),
            json!([]),
            json!([1, "a", null]),
            json!({}),
            json!({"type": "json_schema"}),
            json!({"type": "function", "function": {}}),
            json!([{"type": "function", "function": {"name": "f", "parameters": 5}}]),
            json!([{"role": "assistant", "tool_calls": [{"id": 1, "function": {"name": "f", "arguments": "[]"}}]}]),
            json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]),
        ];
        for field in OPENAI_CHAT_FIELDS {
            for value in &odd {
                let mut body: Map<String, Value> = [
                    ("model".to_owned(), json!("m")),
                    (
                        "messages".to_owned(),
                        json!([{"role": "user", "content": "hi"}]),
                    ),
                ]
                .into_iter()
                .collect();
                body.insert((*field).to_owned(), value.clone());
                let _ = crate::schema::bedrock::request_body(&body);
                let _ = crate::schema::anthropic::request_body(&body, "m", true);
                let _ = crate::schema::gemini::request_body(&body);
            }
        }
    }
}
