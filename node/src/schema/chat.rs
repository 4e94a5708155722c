//! An OpenAI chat request, understood once for the providers that do not speak OpenAI (Bedrock Converse,
//! Anthropic Messages): system text, user/assistant turns of typed blocks (text, image, tool call, tool
//! result, and the signed reasoning an earlier answer carried), tool definitions and the generation
//! settings.
//!
//! Why a neutral form: both Converse and Messages are "turns of content blocks" APIs, so the hard parts
//! (tool-call history, tool results becoming user turns, alternating roles, data-URI images) are decided
//! here once and each provider only spells the blocks. Every field is accounted for: a top-level field is
//! checked against [`super::fields`] before this runs; a message-level field or content part that cannot
//! be translated is refused naming where it is (`messages[2].content[1]`) and the provider.

use serde_json::{Map, Value};

use super::fields::{self, Provider};
use super::TranslateError;

/// A turn's role (Converse and Messages both know exactly these two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The user, and tool results.
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// The wire name (the same in OpenAI, Converse and Messages).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// A `data:` URI: media type (`image/png`) and the base64 text as sent.
    Base64 {
        /// `image/png`, `image/jpeg`, `image/gif` or `image/webp`.
        media_type: String,
        /// Base64, not decoded (both providers take base64 in JSON).
        data: String,
    },
    /// An `http(s)` URL.
    Url(String),
}

impl ImageSource {
    /// The format name Converse uses (`png`, `jpeg`, …) for a base64 image.
    pub fn format(media_type: &str) -> &str {
        media_type.strip_prefix("image/").unwrap_or(media_type)
    }
}

/// One content block of a turn.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// Text.
    Text(String),
    /// An image (user turns only).
    Image {
        /// The source.
        source: ImageSource,
        /// Where it was in the request, for a provider's refusal (`messages[1].content[0]`).
        at: String,
    },
    /// A tool call the assistant made (from `tool_calls`).
    ToolUse {
        /// `tool_calls[].id`.
        id: String,
        /// `tool_calls[].function.name`.
        name: String,
        /// `tool_calls[].function.arguments`, parsed (both providers take a JSON object).
        input: Value,
        /// Gemini's `thoughtSignature` for this call, as Google's OpenAI layer carries it
        /// (`tool_calls[].extra_content.google.thought_signature`).
        signature: Option<String>,
    },
    /// Reasoning the assistant did before the rest of its turn (an assistant `thinking_blocks` entry of type
    /// `thinking`, or a `thinking` content part). Only a signed block can go back to a provider: the
    /// signature is what lets Claude trust reasoning it is handed.
    Thinking {
        /// The reasoning text.
        text: String,
        /// The provider's signature.
        signature: Option<String>,
    },
    /// Encrypted reasoning (`redacted_thinking` / Converse `redactedContent`), opaque, sent back as given.
    RedactedThinking {
        /// The provider's data, as it gave it (base64 text).
        data: String,
    },
    /// A tool's answer (a `tool` message).
    ToolResult {
        /// `tool_call_id`.
        id: String,
        /// The result text.
        text: String,
    },
}

/// A user or assistant turn; consecutive messages of one role are merged into one turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// Role.
    pub role: Role,
    /// Blocks in order.
    pub blocks: Vec<Block>,
}

/// A function tool the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDef {
    /// `function.name`.
    pub name: String,
    /// `function.description`.
    pub description: Option<String>,
    /// `function.parameters` (a JSON schema; an empty object schema when absent).
    pub parameters: Value,
    /// `function.strict`.
    pub strict: Option<bool>,
}

/// `tool_choice`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolChoice {
    /// Not given: the provider's default (auto when tools are given).
    #[default]
    Unset,
    /// `"auto"`.
    Auto,
    /// `"none"`.
    None,
    /// `"required"`.
    Required,
    /// `{"type":"function","function":{"name"}}`.
    Named(String),
}

/// `response_format` of type `json_schema`.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonSchemaFormat {
    /// `json_schema.name`.
    pub name: Option<String>,
    /// `json_schema.description`.
    pub description: Option<String>,
    /// `json_schema.schema`.
    pub schema: Value,
}

/// `reasoning_effort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    /// `minimal` and `low`.
    Low,
    /// `medium`.
    Medium,
    /// `high`.
    High,
    /// `xhigh`.
    XHigh,
}

impl Effort {
    /// The word (`low` for OpenAI's `minimal`: no provider has a lower level).
    pub fn as_str(self) -> &'static str {
        match self {
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
            Effort::XHigh => "xhigh",
        }
    }
}

/// The whole chat request in neutral form.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chat {
    /// `system` and `developer` messages, in order.
    pub system: Vec<String>,
    /// User and assistant turns, alternating.
    pub turns: Vec<Turn>,
    /// Function tools.
    pub tools: Vec<ToolDef>,
    /// `tool_choice`.
    pub tool_choice: ToolChoice,
    /// `parallel_tool_calls`.
    pub parallel_tool_calls: Option<bool>,
    /// `max_completion_tokens`, else `max_tokens`.
    pub max_tokens: Option<u64>,
    /// `temperature`.
    pub temperature: Option<Value>,
    /// `top_p`.
    pub top_p: Option<Value>,
    /// `stop`.
    pub stop: Option<Vec<String>>,
    /// `response_format` of type `json_schema` (`text` is the default; `json_object` is refused earlier).
    pub response_format: Option<JsonSchemaFormat>,
    /// `reasoning_effort` (`none` leaves reasoning off, as it is by default on both providers).
    pub reasoning_effort: Option<Effort>,
    /// `user`, else `safety_identifier`: an end-user id.
    pub user: Option<String>,
    /// `service_tier` when it names a tier the provider has (`flex`, `priority`, `default`).
    pub service_tier: Option<String>,
}

impl Chat {
    /// Whether the history holds tool calls or results (providers then require the tool definitions).
    pub fn has_tool_blocks(&self) -> bool {
        self.turns.iter().any(|t| {
            t.blocks
                .iter()
                .any(|b| matches!(b, Block::ToolUse { .. } | Block::ToolResult { .. }))
        })
    }
}

fn unsupported(provider: Provider, what: impl std::fmt::Display) -> TranslateError {
    TranslateError::Unsupported(format!("{what}: not supported by {}", provider.display()))
}

fn bad(what: impl Into<String>) -> TranslateError {
    TranslateError::BadRequest(what.into())
}

/// Reads a checked OpenAI chat body (top-level fields already vetted by [`super::fields::check`]).
pub fn parse(body: &Map<String, Value>, provider: Provider) -> Result<Chat, TranslateError> {
    let mut chat = Chat::default();
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("'messages' must be an array"))?;
    for (i, m) in messages.iter().enumerate() {
        parse_message(&mut chat, i, m, provider)?;
    }
    if let Some(tools) = body.get("tools").filter(|v| !v.is_null()) {
        let tools = tools
            .as_array()
            .ok_or_else(|| bad("'tools' must be an array"))?;
        for (i, t) in tools.iter().enumerate() {
            chat.tools.push(parse_tool(i, t, provider)?);
        }
    }
    chat.tool_choice = match body.get("tool_choice") {
        None | Some(Value::Null) => ToolChoice::Unset,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => return Err(bad(format!("tool_choice {other:?} is not a valid value"))),
        },
        Some(v) => match v.get("type").and_then(Value::as_str) {
            Some("function") => ToolChoice::Named(
                v.pointer("/function/name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("tool_choice.function.name is required"))?
                    .to_owned(),
            ),
            other => {
                return Err(unsupported(
                    provider,
                    format!("tool_choice of type {}", other.unwrap_or("<none>")),
                ))
            }
        },
    };
    if let ToolChoice::Named(name) = &chat.tool_choice {
        if !chat.tools.iter().any(|t| &t.name == name) {
            return Err(bad(format!(
                "tool_choice names the function {name:?}, which is not in 'tools'"
            )));
        }
    }
    chat.parallel_tool_calls = body.get("parallel_tool_calls").and_then(Value::as_bool);
    chat.max_tokens =
        number_u64(body, "max_completion_tokens")?.or(number_u64(body, "max_tokens")?);
    chat.temperature = body.get("temperature").filter(|v| v.is_number()).cloned();
    chat.top_p = body.get("top_p").filter(|v| v.is_number()).cloned();
    chat.stop = match body.get("stop") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(vec![s.clone()]),
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("'stop' must be a string or an array of strings"))?,
        ),
        Some(_) => return Err(bad("'stop' must be a string or an array of strings")),
    };
    if let Some(rf) = body.get("response_format").filter(|v| !v.is_null()) {
        if rf.get("type").and_then(Value::as_str) == Some("json_schema") {
            let js = rf
                .get("json_schema")
                .ok_or_else(|| bad("response_format.json_schema is required"))?;
            chat.response_format = Some(JsonSchemaFormat {
                name: js.get("name").and_then(Value::as_str).map(str::to_owned),
                description: js
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                schema: js
                    .get("schema")
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!({"type": "object"})),
            });
        }
    }
    chat.reasoning_effort = match body.get("reasoning_effort").and_then(Value::as_str) {
        None | Some("none") => None,
        Some("minimal" | "low") => Some(Effort::Low),
        Some("medium") => Some(Effort::Medium),
        Some("high") => Some(Effort::High),
        Some("xhigh") => Some(Effort::XHigh),
        Some(other) => {
            return Err(bad(format!(
                "reasoning_effort {other:?} is not a valid value"
            )))
        }
    };
    chat.user = body
        .get("user")
        .or_else(|| body.get("safety_identifier"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    chat.service_tier = body
        .get("service_tier")
        .and_then(Value::as_str)
        .filter(|t| matches!(*t, "flex" | "priority" | "default"))
        .map(str::to_owned);
    Ok(chat)
}

fn number_u64(body: &Map<String, Value>, key: &str) -> Result<Option<u64>, TranslateError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| bad(format!("'{key}' must be a non-negative integer"))),
    }
}

fn parse_tool(i: usize, t: &Value, provider: Provider) -> Result<ToolDef, TranslateError> {
    let kind = t.get("type").and_then(Value::as_str).unwrap_or("function");
    if kind != "function" {
        return Err(unsupported(provider, format!("tools[{i}] of type {kind}")));
    }
    let f = t
        .get("function")
        .ok_or_else(|| bad(format!("tools[{i}].function is required")))?;
    let name = f
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("tools[{i}].function.name is required")))?;
    Ok(ToolDef {
        name: name.to_owned(),
        description: f
            .get("description")
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())
            .map(str::to_owned),
        parameters: f
            .get("parameters")
            .filter(|p| !p.is_null())
            .cloned()
            .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
        strict: f.get("strict").and_then(Value::as_bool),
    })
}

/// Message-level fields each role may carry; anything else is refused. `name` (a participant name) has
/// no equivalent and changes nothing the model must obey, so it is accepted and not sent.
fn check_message_keys(
    i: usize,
    m: &Map<String, Value>,
    role: &str,
    provider: Provider,
) -> Result<(), TranslateError> {
    let allowed: &[&str] = match role {
        "system" | "developer" | "user" => &["role", "content", "name"],
        "assistant" => &["role", "content", "name", "tool_calls", "refusal"],
        "tool" => &["role", "content", "tool_call_id"],
        other => {
            return Err(unsupported(
                provider,
                format!("messages[{i}] with role {other:?}"),
            ))
        }
    };
    for (k, v) in m {
        if v.is_null() || allowed.contains(&k.as_str()) {
            continue;
        }
        // The reasoning an answer carried, sent back (see `fields::assistant_extension`).
        if role == "assistant"
            && fields::ASSISTANT_EXTENSIONS.contains(&k.as_str())
            && fields::assistant_extension(provider, k) != fields::Disposition::Refused
        {
            continue;
        }
        return Err(unsupported(provider, format!("messages[{i}].{k}")));
    }
    Ok(())
}

fn push(chat: &mut Chat, role: Role, blocks: Vec<Block>) {
    if blocks.is_empty() {
        return;
    }
    match chat.turns.last_mut() {
        Some(last) if last.role == role => last.blocks.extend(blocks),
        _ => chat.turns.push(Turn { role, blocks }),
    }
}

fn parse_message(
    chat: &mut Chat,
    i: usize,
    m: &Value,
    provider: Provider,
) -> Result<(), TranslateError> {
    let m = m
        .as_object()
        .ok_or_else(|| bad(format!("messages[{i}] must be an object")))?;
    let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
    check_message_keys(i, m, role, provider)?;
    let content = m.get("content").unwrap_or(&Value::Null);
    match role {
        "system" | "developer" => {
            let text = text_of(i, content, provider)?;
            chat.system.push(text);
        }
        "user" => {
            let blocks = user_blocks(i, content, provider)?;
            push(chat, Role::User, blocks);
        }
        "assistant" => {
            // Reasoning leads the turn (Anthropic requires it first); `reasoning_content` is its display
            // text and is not sent: only the signed `thinking_blocks` can go back to a provider.
            let mut blocks = thinking_blocks(i, m.get("thinking_blocks"))?;
            let text = text_parts(i, content, provider, Some(&mut blocks))?;
            if !text.is_empty() {
                blocks.push(Block::Text(text));
            }
            if let Some(calls) = m.get("tool_calls").filter(|v| !v.is_null()) {
                let calls = calls
                    .as_array()
                    .ok_or_else(|| bad(format!("messages[{i}].tool_calls must be an array")))?;
                for (j, c) in calls.iter().enumerate() {
                    blocks.push(tool_use(i, j, c, provider)?);
                }
            }
            drop_gemini_copies(&mut blocks);
            push(chat, Role::Assistant, blocks);
        }
        "tool" => {
            let id = m
                .get("tool_call_id")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("messages[{i}].tool_call_id is required")))?;
            let text = text_of(i, content, provider)?;
            push(
                chat,
                Role::User,
                vec![Block::ToolResult {
                    id: id.to_owned(),
                    text,
                }],
            );
        }
        other => {
            return Err(unsupported(
                provider,
                format!("messages[{i}] with role {other:?}"),
            ))
        }
    }
    Ok(())
}

fn tool_use(i: usize, j: usize, c: &Value, provider: Provider) -> Result<Block, TranslateError> {
    let at = format!("messages[{i}].tool_calls[{j}]");
    let kind = c.get("type").and_then(Value::as_str).unwrap_or("function");
    if kind != "function" {
        return Err(unsupported(provider, format!("{at} of type {kind}")));
    }
    let id = c
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{at}.id is required")))?;
    let name = c
        .pointer("/function/name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{at}.function.name is required")))?;
    let args = c
        .pointer("/function/arguments")
        .and_then(Value::as_str)
        .unwrap_or("{}");
    // Both providers take the input as a JSON object; OpenAI sends it as a string of JSON.
    let input: Value = if args.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        serde_json::from_str(args)
            .map_err(|e| bad(format!("{at}.function.arguments is not JSON: {e}")))?
    };
    if !input.is_object() {
        return Err(bad(format!(
            "{at}.function.arguments must be a JSON object"
        )));
    }
    Ok(Block::ToolUse {
        id: id.to_owned(),
        name: name.to_owned(),
        input,
        signature: c
            .pointer("/extra_content/google/thought_signature")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// A Gemini answer gives its call's signature twice (on the call, as Google's OpenAI layer does, and as a
/// `thinking_blocks` entry, as Envoy AI Gateway does). The call keeps it; the thinking-block copy goes, so
/// that a Claude fallback is never handed Gemini's signature as its own thinking (Anthropic would refuse
/// it as invalid; without it, the history-without-thinking rule applies).
fn drop_gemini_copies(blocks: &mut Vec<Block>) {
    let on_calls: Vec<String> = blocks
        .iter()
        .filter_map(|b| match b {
            Block::ToolUse {
                signature: Some(s), ..
            } => Some(s.clone()),
            _ => None,
        })
        .collect();
    if on_calls.is_empty() {
        return;
    }
    blocks.retain(
        |b| !matches!(b, Block::Thinking { signature: Some(s), .. } if on_calls.contains(s)),
    );
}

/// An assistant message's `thinking_blocks` (LiteLLM's and Envoy AI Gateway's extension):
/// `{"type":"thinking","thinking","signature"}` and `{"type":"redacted_thinking","data"}`. Other members
/// (such as the `index` an SDK's stream accumulator leaves) are not the provider's and are not sent.
fn thinking_blocks(i: usize, v: Option<&Value>) -> Result<Vec<Block>, TranslateError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let list = v
        .as_array()
        .ok_or_else(|| bad(format!("messages[{i}].thinking_blocks must be an array")))?;
    list.iter()
        .enumerate()
        .map(|(j, b)| {
            thinking_block(
                &format!("messages[{i}].thinking_blocks[{j}]"),
                b,
                "thinking",
            )
        })
        .collect()
}

/// One thinking block, from `thinking_blocks` or a content part (where Envoy AI Gateway spells the text
/// `text` and redacted data `redactedContent`).
fn thinking_block(at: &str, b: &Value, text_key: &str) -> Result<Block, TranslateError> {
    let s = |k: &str| b.get(k).and_then(Value::as_str);
    match s("type") {
        Some("thinking") => Ok(Block::Thinking {
            text: s(text_key)
                .or_else(|| s("thinking"))
                .unwrap_or_default()
                .to_owned(),
            signature: s("signature").filter(|s| !s.is_empty()).map(str::to_owned),
        }),
        Some("redacted_thinking") => Ok(Block::RedactedThinking {
            data: s("data")
                .or_else(|| s("redactedContent"))
                .ok_or_else(|| bad(format!("{at}.data is required")))?
                .to_owned(),
        }),
        other => Err(bad(format!(
            "{at} of type {}: expected thinking or redacted_thinking",
            other.unwrap_or("<none>")
        ))),
    }
}

/// Text of a content that may only hold text (system, assistant, tool): a string or text parts
/// (assistant `refusal` parts count as text).
fn text_of(i: usize, content: &Value, provider: Provider) -> Result<String, TranslateError> {
    text_parts(i, content, provider, None)
}

/// [`text_of`], and for an assistant message (`thinking` set) its `thinking` / `redacted_thinking` parts
/// (Envoy AI Gateway's assistant content parts) go there.
fn text_parts(
    i: usize,
    content: &Value,
    provider: Provider,
    mut thinking: Option<&mut Vec<Block>>,
) -> Result<String, TranslateError> {
    match content {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut text = String::new();
            for (j, p) in parts.iter().enumerate() {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        text.push_str(p.get("text").and_then(Value::as_str).ok_or_else(|| {
                            bad(format!("messages[{i}].content[{j}].text is required"))
                        })?)
                    }
                    Some("refusal") => {
                        text.push_str(p.get("refusal").and_then(Value::as_str).unwrap_or_default())
                    }
                    Some("thinking" | "redacted_thinking") if thinking.is_some() => {
                        if let Some(blocks) = thinking.as_deref_mut() {
                            let at = format!("messages[{i}].content[{j}]");
                            blocks.push(thinking_block(&at, p, "text")?);
                        }
                    }
                    other => {
                        return Err(unsupported(
                            provider,
                            format!(
                                "messages[{i}].content[{j}] of type {} in this role",
                                other.unwrap_or("<none>")
                            ),
                        ))
                    }
                }
            }
            Ok(text)
        }
        _ => Err(bad(format!(
            "messages[{i}].content must be a string or an array of parts"
        ))),
    }
}

fn user_blocks(
    i: usize,
    content: &Value,
    provider: Provider,
) -> Result<Vec<Block>, TranslateError> {
    let parts = match content {
        // Both providers refuse empty text blocks; an empty message says nothing.
        Value::String(s) if s.is_empty() => return Ok(Vec::new()),
        Value::String(s) => return Ok(vec![Block::Text(s.clone())]),
        Value::Array(parts) => parts,
        _ => {
            return Err(bad(format!(
                "messages[{i}].content must be a string or an array of parts"
            )))
        }
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, p) in parts.iter().enumerate() {
        let at = format!("messages[{i}].content[{j}]");
        match p.get("type").and_then(Value::as_str) {
            Some("text") => blocks.push(Block::Text(
                p.get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(format!("{at}.text is required")))?
                    .to_owned(),
            )),
            Some("image_url") => {
                let url = p
                    .pointer("/image_url/url")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(format!("{at}.image_url.url is required")))?;
                blocks.push(Block::Image {
                    source: image_source(&at, url, provider)?,
                    at,
                });
            }
            other => {
                return Err(unsupported(
                    provider,
                    format!("{at} of type {}", other.unwrap_or("<none>")),
                ))
            }
        }
    }
    Ok(blocks)
}

/// Image types both Converse (`ImageFormat`) and Messages accept.
const IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

fn image_source(at: &str, url: &str, provider: Provider) -> Result<ImageSource, TranslateError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| bad(format!("{at}: malformed data URI")))?;
        let media_type = meta
            .strip_suffix(";base64")
            .ok_or_else(|| bad(format!("{at}: data URI images must be base64")))?;
        if !IMAGE_TYPES.contains(&media_type) {
            return Err(unsupported(
                provider,
                format!("{at}: image type {media_type:?}"),
            ));
        }
        return Ok(ImageSource::Base64 {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(ImageSource::Url(url.to_owned()));
    }
    Err(bad(format!(
        "{at}: image_url.url must be a data: URI or an http(s) URL"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn an_agent_history_becomes_alternating_turns_of_blocks() {
        let body = obj(json!({"messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": [{"type": "text", "text": "be kind"}]},
            {"role": "user", "content": [
                {"type": "text", "text": "weather?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR", "detail": "low"}},
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
            {"role": "user", "content": "thanks"},
        ]}));
        let chat = parse(&body, Provider::Bedrock).expect("parse");
        assert_eq!(chat.system, vec!["be brief", "be kind"]);
        assert_eq!(chat.turns.len(), 3);
        assert_eq!(chat.turns[0].role, Role::User);
        assert_eq!(
            chat.turns[0].blocks[1],
            Block::Image {
                source: ImageSource::Base64 {
                    media_type: "image/png".into(),
                    data: "iVBOR".into()
                },
                at: "messages[2].content[1]".into()
            }
        );
        assert_eq!(
            chat.turns[1].blocks,
            vec![
                Block::ToolUse {
                    id: "call_1".into(),
                    name: "get_weather".into(),
                    input: json!({"city": "Paris"}),
                    signature: None,
                },
                Block::ToolUse {
                    id: "call_2".into(),
                    name: "get_time".into(),
                    input: json!({}),
                    signature: None,
                },
            ]
        );
        assert_eq!(
            chat.turns[2].blocks,
            vec![
                Block::ToolResult {
                    id: "call_1".into(),
                    text: "sunny".into()
                },
                Block::ToolResult {
                    id: "call_2".into(),
                    text: "noon".into()
                },
                Block::Text("thanks".into()),
            ]
        );
        assert!(chat.has_tool_blocks());
    }

    #[test]
    fn assistant_reasoning_comes_back_first_with_its_signatures() {
        // What the official client sends back after `messages.append(resp.choices[0].message)`:
        // reasoning_content (not sent on), thinking_blocks (the stream accumulator's `index` included),
        // Envoy AI Gateway's thinking content parts, and Google's per-call signature.
        let body = obj(json!({"messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "checking"},
                {"type": "redacted_thinking", "redactedContent": "UkVE"},
             ], "refusal": null, "reasoning_content": "hmm",
             "thinking_blocks": [{"index": 0, "type": "thinking", "thinking": "hmm", "signature": "sig1"}],
             "tool_calls": [{"index": 0, "id": "c1", "type": "function",
                "function": {"name": "f", "arguments": "{}"},
                "extra_content": {"google": {"thought_signature": "gsig"}}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
            {"role": "assistant", "content": [{"type": "thinking", "text": "t2", "signature": "sig2"}, {"type": "text", "text": "done"}]},
        ]}));
        let chat = parse(&body, Provider::Anthropic).expect("parse");
        assert_eq!(
            chat.turns[1].blocks,
            vec![
                Block::Thinking {
                    text: "hmm".into(),
                    signature: Some("sig1".into())
                },
                Block::RedactedThinking {
                    data: "UkVE".into()
                },
                Block::Text("checking".into()),
                Block::ToolUse {
                    id: "c1".into(),
                    name: "f".into(),
                    input: json!({}),
                    signature: Some("gsig".into())
                },
            ]
        );
        assert_eq!(
            chat.turns[3].blocks,
            vec![
                Block::Thinking {
                    text: "t2".into(),
                    signature: Some("sig2".into())
                },
                Block::Text("done".into()),
            ]
        );
        // A Gemini answer sent back: its signature on the call and again in thinking_blocks; the call
        // keeps it, the copy goes.
        let body = obj(json!({"messages": [
            {"role": "assistant", "reasoning_content": "hm",
             "thinking_blocks": [{"type": "thinking", "thinking": "hm", "signature": "gsig"}],
             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"},
                "extra_content": {"google": {"thought_signature": "gsig"}}}]},
        ]}));
        assert_eq!(
            parse(&body, Provider::Anthropic).expect("parse").turns[0].blocks,
            vec![Block::ToolUse {
                id: "c1".into(),
                name: "f".into(),
                input: json!({}),
                signature: Some("gsig".into())
            }]
        );
        for (body, needle) in [
            (
                json!({"messages": [{"role": "assistant", "thinking_blocks": {}}]}),
                "thinking_blocks must be an array",
            ),
            (
                json!({"messages": [{"role": "assistant", "thinking_blocks": [{"type": "secret"}]}]}),
                "messages[0].thinking_blocks[0] of type secret",
            ),
            (
                json!({"messages": [{"role": "assistant", "thinking_blocks": [{"type": "redacted_thinking"}]}]}),
                "messages[0].thinking_blocks[0].data is required",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "thinking", "text": "x"}]}]}),
                "messages[0].content[0] of type thinking",
            ),
        ] {
            let err = parse(&obj(body.clone()), Provider::Anthropic).expect_err("must fail");
            assert!(err.to_string().contains(needle), "{body}: {err}");
        }
    }

    #[test]
    fn tools_choices_and_settings_are_read() {
        let body = obj(json!({
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f", "description": "does f", "parameters": {"type": "object"}, "strict": true}},
                      {"type": "function", "function": {"name": "g"}}],
            "tool_choice": {"type": "function", "function": {"name": "g"}},
            "parallel_tool_calls": false, "max_tokens": 5, "max_completion_tokens": 7,
            "temperature": 0.5, "top_p": 0.9, "stop": ["a", "b"], "reasoning_effort": "minimal",
            "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}},
            "safety_identifier": "u1", "service_tier": "flex",
        }));
        let chat = parse(&body, Provider::Anthropic).expect("parse");
        assert_eq!(chat.tools.len(), 2);
        assert_eq!(chat.tools[0].strict, Some(true));
        assert_eq!(
            chat.tools[1].parameters,
            json!({"type": "object", "properties": {}})
        );
        assert_eq!(chat.tool_choice, ToolChoice::Named("g".into()));
        assert_eq!(chat.parallel_tool_calls, Some(false));
        assert_eq!(chat.max_tokens, Some(7));
        assert_eq!(chat.stop, Some(vec!["a".into(), "b".into()]));
        assert_eq!(chat.reasoning_effort, Some(Effort::Low));
        assert_eq!(
            chat.response_format.as_ref().map(|f| f.name.clone()),
            Some(Some("s".into()))
        );
        assert_eq!(chat.user.as_deref(), Some("u1"));
        assert_eq!(chat.service_tier.as_deref(), Some("flex"));
        for (choice, want) in [
            (json!("auto"), ToolChoice::Auto),
            (json!("none"), ToolChoice::None),
            (json!("required"), ToolChoice::Required),
            (Value::Null, ToolChoice::Unset),
        ] {
            let body = obj(json!({"messages": [], "tool_choice": choice}));
            assert_eq!(
                parse(&body, Provider::Bedrock).expect("parse").tool_choice,
                want
            );
        }
    }

    #[test]
    fn what_cannot_be_translated_is_refused_naming_where() {
        for (body, unsupported, needle) in [
            (json!({"messages": "x"}), false, "messages"),
            (
                json!({"messages": [{"role": "function", "content": "x"}]}),
                true,
                "messages[0] with role \"function\"",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
                true,
                "messages[0].content[0] of type input_audio",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AA"}}]}]}),
                true,
                "image type",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}),
                false,
                "data: URI or an http(s) URL",
            ),
            (
                json!({"messages": [{"role": "assistant", "function_call": {"name": "f"}}]}),
                true,
                "messages[0].function_call",
            ),
            (
                json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]}),
                false,
                "not JSON",
            ),
            (
                json!({"messages": [{"role": "tool", "content": "x"}]}),
                false,
                "tool_call_id",
            ),
            (
                json!({"messages": [], "tools": [{"type": "custom", "custom": {}}]}),
                true,
                "tools[0] of type custom",
            ),
            (
                json!({"messages": [], "tool_choice": {"type": "allowed_tools"}}),
                true,
                "allowed_tools",
            ),
            (
                json!({"messages": [], "tools": [], "tool_choice": {"type": "function", "function": {"name": "nope"}}}),
                false,
                "not in 'tools'",
            ),
            (
                json!({"messages": [{"role": "user", "content": 5}]}),
                false,
                "content",
            ),
        ] {
            let err = parse(&obj(body.clone()), Provider::Bedrock).expect_err("must fail");
            assert_eq!(
                matches!(err, TranslateError::Unsupported(_)),
                unsupported,
                "{body}: {err}"
            );
            assert!(err.to_string().contains(needle), "{body}: {err}");
            if unsupported {
                assert!(err.to_string().contains("AWS Bedrock"), "{err}");
            }
        }
    }
}
