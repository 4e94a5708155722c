//! What the mock providers do when a request carries tools: a scripted agent turn, the same for every
//! wire format, so one test can run an agent loop through any provider.
//!
//! The script: a request whose latest user turn holds tool results answers with text that quotes them
//! (`tool said: …`); otherwise a request with tools calls them (the first two, so parallel calls are
//! exercised), with arguments that fill each tool's first parameter with `"Paris"`; a request without
//! tools gets no tool call. Arguments are streamed in two fragments, as real providers split them.

use serde_json::{json, Map, Value};

/// Per-request facts a wire format needs (here, because the script is the one thing every format shares).
#[derive(Debug, Clone)]
pub struct Ctx<'a> {
    /// Provider name (`--name`).
    pub name: &'a str,
    /// Sequence number of the request in the log (unique per process).
    pub seq: u64,
    /// Number of content chunks a streamed answer is split into.
    pub content_chunks: usize,
}

/// One tool call the mock makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// Call id, unique per request.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments object.
    pub input: Value,
}

impl Call {
    /// The arguments as JSON text, split in two fragments for streaming.
    pub fn fragments(&self) -> [String; 2] {
        let text = self.input.to_string();
        let mid = text.len() / 2;
        let mid = (0..=mid)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        [text[..mid].to_owned(), text[mid..].to_owned()]
    }
}

/// What the mock answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Turn {
    /// Text.
    Text(String),
    /// Tool calls.
    Calls(Vec<Call>),
}

/// Decides the answer. `tools` are (name, JSON schema of the parameters); `results` the texts of the tool
/// results in the latest user turn.
pub fn decide(tools: &[(String, Value)], results: &[String], ctx: &Ctx<'_>, prefix: &str) -> Turn {
    if !results.is_empty() {
        return Turn::Text(format!("tool said: {}", results.join("; ")));
    }
    if tools.is_empty() {
        return Turn::Text(format!("hello from {}", ctx.name));
    }
    let calls = tools
        .iter()
        .take(2)
        .enumerate()
        .map(|(k, (name, schema))| {
            let mut input = Map::new();
            if let Some(first) = schema
                .get("properties")
                .and_then(Value::as_object)
                .and_then(|p| p.keys().next())
            {
                input.insert(first.clone(), json!("Paris"));
            }
            Call {
                id: format!("{prefix}{}_{}_{k}", ctx.name, ctx.seq),
                name: name.clone(),
                input: Value::Object(input),
            }
        })
        .collect();
    Turn::Calls(calls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_calls_tools_then_quotes_their_results() {
        let ctx = Ctx {
            name: "p",
            seq: 3,
            content_chunks: 1,
        };
        let tools = vec![
            (
                "get_weather".to_owned(),
                json!({"type": "object", "properties": {"city": {"type": "string"}}}),
            ),
            ("get_time".to_owned(), json!({"type": "object"})),
            ("third".to_owned(), json!({})),
        ];
        let Turn::Calls(calls) = decide(&tools, &[], &ctx, "call_") else {
            panic!("expected calls")
        };
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].input, json!({"city": "Paris"}));
        assert_eq!(calls[1].id, "call_p_3_1");
        assert_eq!(calls[0].fragments().concat(), calls[0].input.to_string());
        assert_eq!(
            decide(&tools, &["sunny".into()], &ctx, "call_"),
            Turn::Text("tool said: sunny".into())
        );
        assert_eq!(
            decide(&[], &[], &ctx, "call_"),
            Turn::Text("hello from p".into())
        );
    }
}
