//! The OpenAI side of a translated answer, shared by the Bedrock and Anthropic translators: a
//! `chat.completion` with text, tool calls and reasoning (with its signed `thinking_blocks`); `usage` with
//! its cache details; and the streamed tool-call and thinking-block deltas the official OpenAI clients
//! assemble.
//!
//! Why shared: both providers answer in content blocks (text, tool use, reasoning) with cache-aware
//! token counts, and the OpenAI shapes they must become are the same. Getting the stream shape exactly
//! right matters: the `openai` SDKs assemble `tool_calls` by `index`, take `id`, `type` and
//! `function.name` from the first delta of an index and concatenate `function.arguments` fragments.

use bytes::{Bytes, BytesMut};
use serde_json::{json, Map, Value};

use super::{chunk_event, ResponseCtx};

/// Token counts of one answer, as the providers report them (input excludes cache reads and writes on
/// both Bedrock and Anthropic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Uncached input tokens.
    pub input: u64,
    /// Output tokens (reasoning included).
    pub output: u64,
    /// Input tokens read from the prompt cache, when reported.
    pub cache_read: Option<u64>,
    /// Input tokens written to the prompt cache, when reported.
    pub cache_write: Option<u64>,
}

impl Usage {
    /// OpenAI `usage`: `prompt_tokens` counts every input token, cached or not, as OpenAI's does, and
    /// `prompt_tokens_details` says how many were read from (`cached_tokens`) and written to
    /// (`cache_creation_tokens`, the name Envoy AI Gateway uses) the cache.
    pub fn to_openai(self) -> Value {
        let read = self.cache_read.unwrap_or(0);
        let write = self.cache_write.unwrap_or(0);
        let prompt = self.input + read + write;
        let mut u = json!({
            "prompt_tokens": prompt,
            "completion_tokens": self.output,
            "total_tokens": prompt + self.output,
        });
        if self.cache_read.is_some() || self.cache_write.is_some() {
            u["prompt_tokens_details"] =
                json!({"cached_tokens": read, "cache_creation_tokens": write});
        }
        u
    }
}

/// A non-streamed answer's message parts.
#[derive(Debug, Default)]
pub struct Message {
    /// Text blocks, concatenated.
    pub text: String,
    /// `tool_calls` entries.
    pub tool_calls: Vec<Value>,
    /// Reasoning text (`reasoning_content`, the field Envoy AI Gateway and most OpenAI-compatible servers
    /// use; the official clients keep unknown fields).
    pub reasoning: String,
    /// `thinking_blocks`: the reasoning with its signatures, in LiteLLM's and Envoy AI Gateway's shape
    /// (`{"type":"thinking","thinking","signature"}`, `{"type":"redacted_thinking","data"}`), which a
    /// client sends back on the assistant message so the provider can continue a tool loop.
    pub thinking_blocks: Vec<Value>,
}

impl Message {
    /// One `tool_calls` entry.
    pub fn push_tool_call(&mut self, id: &str, name: &str, input: &Value) {
        self.tool_calls.push(json!({
            "id": id,
            "type": "function",
            "function": {"name": name, "arguments": input.to_string()},
        }));
    }

    /// One signed thinking block.
    pub fn push_thinking(&mut self, text: &str, signature: &str) {
        self.thinking_blocks
            .push(json!({"type": "thinking", "thinking": text, "signature": signature}));
    }

    /// One redacted thinking block.
    pub fn push_redacted(&mut self, data: &str) {
        self.thinking_blocks
            .push(json!({"type": "redacted_thinking", "data": data}));
    }
}

/// A whole `chat.completion` body.
pub fn completion(
    ctx: &ResponseCtx,
    id: &str,
    model: &str,
    msg: Message,
    finish: &str,
    usage: Value,
) -> Bytes {
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    // OpenAI answers a pure tool call with `content: null`.
    let content = if msg.text.is_empty() && !msg.tool_calls.is_empty() {
        Value::Null
    } else {
        Value::String(msg.text)
    };
    message.insert("content".into(), content);
    message.insert("refusal".into(), Value::Null);
    if !msg.tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(msg.tool_calls));
    }
    if !msg.reasoning.is_empty() {
        message.insert("reasoning_content".into(), Value::String(msg.reasoning));
    }
    if !msg.thinking_blocks.is_empty() {
        message.insert("thinking_blocks".into(), Value::Array(msg.thinking_blocks));
    }
    Bytes::from(
        json!({
            "id": id,
            "object": "chat.completion",
            "created": ctx.created,
            "model": model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": finish,
            }],
            "usage": usage,
        })
        .to_string(),
    )
}

/// Numbers a streamed answer's tool calls as OpenAI does (0, 1, … in order of appearance), from the
/// provider's content-block indexes (which also count text and reasoning blocks).
#[derive(Debug, Default)]
pub struct ToolCallIndex {
    /// Provider block index of each tool call so far, in OpenAI order.
    blocks: Vec<u64>,
}

impl ToolCallIndex {
    /// A tool-use block started at provider index `block`: its OpenAI index.
    pub fn start(&mut self, block: u64) -> usize {
        self.blocks.push(block);
        self.blocks.len() - 1
    }

    /// The OpenAI index of the tool call at provider block `block`, if one started there.
    pub fn of(&self, block: u64) -> Option<usize> {
        self.blocks.iter().rposition(|b| *b == block)
    }

    /// Whether any tool call was streamed.
    pub fn any(&self) -> bool {
        !self.blocks.is_empty()
    }
}

/// The chunk that opens tool call `index`: id, type and name, empty arguments.
pub fn tool_call_start(
    ctx: &ResponseCtx,
    id: &str,
    model: &str,
    index: usize,
    call_id: &str,
    name: &str,
    out: &mut BytesMut,
) {
    out.extend_from_slice(&chunk_event(
        ctx,
        id,
        model,
        json!({"tool_calls": [{
            "index": index, "id": call_id, "type": "function",
            "function": {"name": name, "arguments": ""},
        }]}),
        Value::Null,
    ));
}

/// A chunk carrying one fragment of tool call `index`'s arguments.
pub fn tool_call_arguments(
    ctx: &ResponseCtx,
    id: &str,
    model: &str,
    index: usize,
    fragment: &str,
    out: &mut BytesMut,
) {
    if fragment.is_empty() {
        return;
    }
    out.extend_from_slice(&chunk_event(
        ctx,
        id,
        model,
        json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}),
        Value::Null,
    ));
}

/// A chunk carrying reasoning text.
pub fn reasoning_delta(ctx: &ResponseCtx, id: &str, model: &str, text: &str, out: &mut BytesMut) {
    if text.is_empty() {
        return;
    }
    out.extend_from_slice(&chunk_event(
        ctx,
        id,
        model,
        json!({"reasoning_content": text}),
        Value::Null,
    ));
}

/// A stream's thinking blocks. The reasoning text streams as `reasoning_content` as it comes; each block,
/// once its signature is known (Anthropic's `signature_delta` and Converse's `signature` come last), goes
/// out whole as one `delta.thinking_blocks` entry. Each entry carries its `index` among the answer's
/// thinking blocks, because the official clients' stream accumulators merge list deltas by `index` (and
/// refuse a second entry without one); a client that only concatenates `reasoning_content` loses nothing.
#[derive(Debug, Default)]
pub struct ThinkingStream {
    emitted: usize,
    text: String,
    signature: String,
}

impl ThinkingStream {
    /// Reasoning text of the open block.
    pub fn text(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// (A fragment of) the open block's signature.
    pub fn signature(&mut self, signature: &str) {
        self.signature.push_str(signature);
    }

    /// The open block ended: a signed block goes out (an unsigned one cannot be sent back, so it has
    /// only its `reasoning_content`).
    pub fn close(&mut self, ctx: &ResponseCtx, id: &str, model: &str, out: &mut BytesMut) {
        if !self.signature.is_empty() {
            let block =
                json!({"type": "thinking", "thinking": self.text, "signature": self.signature});
            self.emit(ctx, id, model, block, out);
        }
        self.text.clear();
        self.signature.clear();
    }

    /// A redacted thinking block, whole.
    pub fn redacted(
        &mut self,
        ctx: &ResponseCtx,
        id: &str,
        model: &str,
        data: &str,
        out: &mut BytesMut,
    ) {
        self.emit(
            ctx,
            id,
            model,
            json!({"type": "redacted_thinking", "data": data}),
            out,
        );
    }

    fn emit(
        &mut self,
        ctx: &ResponseCtx,
        id: &str,
        model: &str,
        mut block: Value,
        out: &mut BytesMut,
    ) {
        block["index"] = self.emitted.into();
        self.emitted += 1;
        out.extend_from_slice(&chunk_event(
            ctx,
            id,
            model,
            json!({"thinking_blocks": [block]}),
            Value::Null,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_cached_input_as_openai_does() {
        assert_eq!(
            Usage {
                input: 3,
                output: 2,
                ..Usage::default()
            }
            .to_openai(),
            json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})
        );
        assert_eq!(
            Usage {
                input: 3,
                output: 2,
                cache_read: Some(10),
                cache_write: Some(4),
            }
            .to_openai(),
            json!({"prompt_tokens": 17, "completion_tokens": 2, "total_tokens": 19,
                   "prompt_tokens_details": {"cached_tokens": 10, "cache_creation_tokens": 4}})
        );
    }

    #[test]
    fn tool_call_indexes_follow_openai_order() {
        let mut ix = ToolCallIndex::default();
        assert!(!ix.any());
        assert_eq!(ix.start(1), 0);
        assert_eq!(ix.start(3), 1);
        assert_eq!(ix.of(3), Some(1));
        assert_eq!(ix.of(1), Some(0));
        assert_eq!(ix.of(0), None);
        assert!(ix.any());
    }
}
