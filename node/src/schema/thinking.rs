//! Reasoning that must survive the turns of a tool loop: the decisions the Claude and Gemini translators
//! take when a history carries (or lacks) the signed thinking their models require back.
//!
//! Why a module of its own: the rules are the providers', not the wire spelling's, and they decide whether
//! an agent keeps working through a fallback. Claude with thinking on refuses a tool-use turn whose
//! thinking was dropped ("a final `assistant` message must start with a thinking block"); Gemini 3 refuses
//! a function call without its `thoughtSignature`. A history written by another model (turn 1 answered by
//! the OpenAI primary, turn 2 by a Claude or Gemini fallback) or by a client that does not echo
//! `thinking_blocks` has none of that, so each rule has a documented way out, chosen here in pure functions
//! that are table-tested.

use super::chat::{Block, Chat, Role, ToolChoice};

/// Google's documented placeholder for a function call whose signature was lost or never existed ("Thought
/// signatures", FAQ: history from another model or an API that drops them). Gemini 3 accepts it in place
/// of a signature and skips validation for that call. `thoughtSignature` is a bytes field, which proto3
/// JSON carries as base64, so the wire value is the placeholder's base64 (as Envoy AI Gateway's Go
/// `[]byte` marshals it); the literal string would decode to other bytes and fail validation.
pub const GEMINI_SKIP_SIGNATURE: &str = "c2tpcF90aG91Z2h0X3NpZ25hdHVyZV92YWxpZGF0b3I=";

/// Whether a block can be replayed to Claude: signed thinking and redacted thinking can; reasoning without
/// a signature (say, `reasoning_content` from another provider) cannot, as Claude verifies signatures.
fn claude_replayable(b: &Block) -> bool {
    matches!(
        b,
        Block::Thinking {
            signature: Some(_),
            ..
        } | Block::RedactedThinking { .. }
    )
}

/// Whether Claude may think on this request, as far as its history goes.
///
/// Anthropic ("Extended thinking" → "Preserving thinking blocks"): with thinking enabled, the final
/// assistant message, when it made tool calls, must start with its thinking block, else the request is a
/// 400. A history without one — another model answered that turn, or the client dropped
/// `thinking_blocks` — would make every continuation of the tool loop fail, so for that request thinking is
/// left off (LiteLLM does the same under `modify_params`; Anthropic's own message says "To avoid this
/// requirement, disable `thinking`"). The next user turn starts a new assistant turn and thinks again.
pub fn claude_may_think(chat: &Chat) -> bool {
    let Some(last) = chat.turns.iter().rev().find(|t| t.role == Role::Assistant) else {
        return true;
    };
    let calls = last
        .blocks
        .iter()
        .any(|b| matches!(b, Block::ToolUse { .. }));
    !calls || last.blocks.first().is_some_and(claude_replayable)
}

/// Whether Claude may think with this request's `tool_choice`. Anthropic ("Extended thinking with tool
/// use"): only `auto` and `none` go with thinking; a choice that forces a tool use is a 400. The client's
/// forced choice is the harder constraint, so such a request goes without thinking. (Messages bodies only:
/// through Converse the model may not be Claude, and other models take both.)
pub fn claude_tool_choice_allows_thinking(chat: &Chat) -> bool {
    chat.tools.is_empty()
        || !matches!(
            chat.tool_choice,
            ToolChoice::Required | ToolChoice::Named(_)
        )
}

/// Whether a Bedrock model id may name Claude, whose thinking rules then apply through Converse. Bedrock
/// ids name their vendor (`anthropic.claude-…`, `us.anthropic.claude-…` for an inference profile, or
/// the same after a foundation-model or inference-profile ARN's `/`); an id that names none (an
/// application inference profile's ARN, or no id at all) may be Claude.
pub fn bedrock_may_be_claude(model: &str) -> bool {
    let id = model.rsplit('/').next().unwrap_or(model);
    id.contains("anthropic.") || !id.contains('.')
}

/// Whether `b` goes to Claude on a request with thinking `on`. Thinking blocks go only while thinking is
/// on (with it off they would be Anthropic's 400 in a final assistant turn, and Claude ignores earlier
/// ones anyway), and only when they can be verified.
pub fn claude_sends(b: &Block, on: bool) -> bool {
    match b {
        Block::Thinking { .. } | Block::RedactedThinking { .. } => on && claude_replayable(b),
        _ => true,
    }
}

/// The `thoughtSignature` of a Gemini function call. Gemini gives the signature with the first call of a
/// step only (parallel calls share it) and Gemini 3 validates that one; so: the call's own signature (from
/// `extra_content.google.thought_signature`, where Gemini's answers put it), else for the first call
/// Google's placeholder, so history from another model or a client that dropped it is still accepted;
/// later calls go without one.
///
/// `thinking_blocks` signatures are not used for Gemini (Envoy AI Gateway does use them): a client that
/// keeps them but not `extra_content` loses only some context with the placeholder, while a signature in
/// `thinking_blocks` may be Claude's (the failover case), which Gemini 3 refuses as invalid.
pub fn gemini_call_signature(own: Option<&str>, first_call: bool) -> Option<&str> {
    match (own, first_call) {
        (Some(s), _) => Some(s),
        (None, true) => Some(GEMINI_SKIP_SIGNATURE),
        (None, false) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::chat::Turn;
    use serde_json::json;

    fn call() -> Block {
        Block::ToolUse {
            id: "c".into(),
            name: "f".into(),
            input: json!({}),
            signature: None,
        }
    }

    fn signed() -> Block {
        Block::Thinking {
            text: "t".into(),
            signature: Some("s".into()),
        }
    }

    fn chat(turns: Vec<(Role, Vec<Block>)>) -> Chat {
        Chat {
            turns: turns
                .into_iter()
                .map(|(role, blocks)| Turn { role, blocks })
                .collect(),
            ..Chat::default()
        }
    }

    fn result() -> Block {
        Block::ToolResult {
            id: "c".into(),
            text: "ok".into(),
        }
    }

    #[test]
    fn claude_thinks_unless_the_final_tool_turn_lost_its_thinking() {
        let user = || (Role::User, vec![Block::Text("q".into())]);
        for (name, turns, want) in [
            ("first turn", vec![user()], true),
            (
                "final tool turn led by signed thinking",
                vec![
                    user(),
                    (Role::Assistant, vec![signed(), call()]),
                    (Role::User, vec![result()]),
                ],
                true,
            ),
            (
                "final tool turn led by redacted thinking",
                vec![
                    user(),
                    (
                        Role::Assistant,
                        vec![Block::RedactedThinking { data: "d".into() }, call()],
                    ),
                    (Role::User, vec![result()]),
                ],
                true,
            ),
            (
                "final tool turn from another model (no thinking)",
                vec![
                    user(),
                    (Role::Assistant, vec![call()]),
                    (Role::User, vec![result()]),
                ],
                false,
            ),
            (
                "final tool turn with unsigned reasoning only",
                vec![
                    user(),
                    (
                        Role::Assistant,
                        vec![
                            Block::Thinking {
                                text: "t".into(),
                                signature: None,
                            },
                            call(),
                        ],
                    ),
                    (Role::User, vec![result()]),
                ],
                false,
            ),
            (
                "thinking not first",
                vec![
                    user(),
                    (
                        Role::Assistant,
                        vec![Block::Text("x".into()), signed(), call()],
                    ),
                    (Role::User, vec![result()]),
                ],
                false,
            ),
            (
                "an older tool turn without thinking, the final one plain text",
                vec![
                    user(),
                    (Role::Assistant, vec![call()]),
                    (Role::User, vec![result()]),
                    (Role::Assistant, vec![Block::Text("done".into())]),
                    user(),
                ],
                true,
            ),
        ] {
            assert_eq!(claude_may_think(&chat(turns)), want, "{name}");
        }
        let tool = crate::schema::chat::ToolDef {
            name: "f".into(),
            description: None,
            parameters: json!({}),
            strict: None,
        };
        for (choice, want) in [
            (ToolChoice::Unset, true),
            (ToolChoice::Auto, true),
            (ToolChoice::None, true),
            (ToolChoice::Required, false),
            (ToolChoice::Named("f".into()), false),
        ] {
            let c = Chat {
                tools: vec![tool.clone()],
                tool_choice: choice.clone(),
                ..chat(vec![(Role::User, vec![Block::Text("q".into())])])
            };
            assert_eq!(
                claude_tool_choice_allows_thinking(&c),
                want,
                "tool_choice {choice:?}"
            );
        }
    }

    #[test]
    fn claude_gets_only_verifiable_thinking_and_only_while_thinking() {
        let unsigned = Block::Thinking {
            text: "t".into(),
            signature: None,
        };
        let redacted = Block::RedactedThinking { data: "d".into() };
        for (name, block, on, want) in [
            ("signed, on", signed(), true, true),
            ("signed, off", signed(), false, false),
            ("redacted, on", redacted.clone(), true, true),
            ("redacted, off", redacted, false, false),
            ("unsigned, on", unsigned, true, false),
            ("text, off", Block::Text("x".into()), false, true),
            ("call, off", call(), false, true),
        ] {
            assert_eq!(claude_sends(&block, on), want, "{name}");
        }
    }

    #[test]
    fn claude_rules_apply_to_bedrock_models_that_may_be_claude() {
        for (model, want) in [
            ("anthropic.claude-sonnet-4-v1:0", true),
            ("us.anthropic.claude-sonnet-4-v1:0", true),
            (
                "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-7-sonnet-v1:0",
                true,
            ),
            (
                "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3",
                true,
            ),
            ("", true),
            ("us.deepseek.r1-v1:0", false),
            ("amazon.nova-pro-v1:0", false),
            (
                "arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-70b-instruct-v1:0",
                false,
            ),
        ] {
            assert_eq!(bedrock_may_be_claude(model), want, "{model}");
        }
    }

    #[test]
    fn gemini_calls_keep_their_signature_or_get_googles_placeholder() {
        for (name, own, first, want) in [
            ("own signature", Some("own"), true, Some("own")),
            ("own signature, later call", Some("own"), false, Some("own")),
            ("first call, none", None, true, Some(GEMINI_SKIP_SIGNATURE)),
            ("later parallel call", None, false, None),
        ] {
            assert_eq!(gemini_call_signature(own, first), want, "{name}");
        }
    }
}
