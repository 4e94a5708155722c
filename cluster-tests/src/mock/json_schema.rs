//! Request validation against Cohere's v2 Chat definition, as JSON Schema derived from the official
//! `cohere` SDK (`cluster-tests/tests/cohere_schema.py` writes it from the venv's SDK), so the Cohere mock
//! refuses what Cohere's API would refuse instead of what a field list copied from the docs catches.
//!
//! pydantic emits a small part of JSON Schema, and this checks exactly that part: `type` (object, array,
//! string, integer, number, boolean, null), `properties` / `required` / `additionalProperties` (false or
//! a schema), `items`, `enum`, `const`, `anyOf` / `oneOf`, `allOf`, and `$ref` into the document's
//! `$defs`. A keyword outside that set is an error at load, so a newer SDK that needs more cannot pass
//! silently. Written here rather than taken from a crate: the general JSON Schema crates bring dozens of
//! dependencies (regex engines, URL resolution, formats) for a test mock that needs a page of rules, and
//! the errors must name the field path as Cohere's do.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::Context;
use serde_json::{Map, Value};

/// The Cohere definition the mock checks `/v2/chat` requests against (`--cohere-schema`).
pub static COHERE: OnceLock<CohereSchema> = OnceLock::new();

/// The three schemas `cohere_schema.py` writes: the chat request body, the chat response and one stream
/// event.
#[derive(Debug)]
pub struct CohereSchema {
    /// The SDK version it came from.
    pub version: String,
    /// `V2Client.chat`'s body.
    pub request: Schema,
    /// `V2ChatResponse`.
    pub response: Schema,
    /// One `V2ChatStreamResponse` event.
    pub stream_event: Schema,
}

impl CohereSchema {
    /// Reads the file `cohere_schema.py` wrote.
    pub fn load(path: &Path) -> anyhow::Result<CohereSchema> {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let mut v: Value = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        let mut part = |k: &str| -> anyhow::Result<Schema> {
            Schema::new(v.get_mut(k).map(Value::take).unwrap_or_default())
                .with_context(|| format!("{}: {k}", path.display()))
        };
        let (request, response, stream_event) =
            (part("request")?, part("response")?, part("stream_event")?);
        Ok(CohereSchema {
            version: v
                .get("cohere_version")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_owned(),
            request,
            response,
            stream_event,
        })
    }
}

/// One JSON Schema document (its root and `$defs`).
#[derive(Debug)]
pub struct Schema {
    root: Value,
    defs: Map<String, Value>,
}

/// The keywords this validator understands; the rest are annotations it may ignore.
const CHECKED: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "allOf",
    "$ref",
    "$defs",
];
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "discriminator",
    "format",
];

impl Schema {
    /// A schema document; refuses one that uses a keyword this validator does not check.
    pub fn new(mut root: Value) -> anyhow::Result<Schema> {
        anyhow::ensure!(root.is_object(), "the schema is not an object");
        known_keywords(&root, "#")?;
        let defs = match root.get_mut("$defs").map(Value::take) {
            Some(Value::Object(d)) => d,
            _ => Map::new(),
        };
        Ok(Schema { root, defs })
    }

    /// Checks `v`; the error names the path of the first violation (`messages[1].tool_calls[0].id`).
    pub fn check(&self, v: &Value) -> Result<(), String> {
        self.value(&self.root, v, "")
    }

    fn resolve<'a>(&'a self, s: &'a Value) -> Result<&'a Value, String> {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => r
                .strip_prefix("#/$defs/")
                .and_then(|n| self.defs.get(n))
                .ok_or_else(|| format!("the schema has no definition {r}")),
            None => Ok(s),
        }
    }

    fn value(&self, s: &Value, v: &Value, at: &str) -> Result<(), String> {
        let s = self.resolve(s)?;
        let here = if at.is_empty() { "body" } else { at };
        if let Some(c) = s.get("const") {
            if v != c {
                return Err(format!("{here}: expected {c}, got {v}"));
            }
        }
        if let Some(values) = s.get("enum").and_then(Value::as_array) {
            if !values.contains(v) {
                let list: Vec<String> = values.iter().map(Value::to_string).collect();
                return Err(format!("{here}: {v} is not one of [{}]", list.join(", ")));
            }
        }
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            for sub in all {
                self.value(sub, v, at)?;
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(branches) = s.get(key).and_then(Value::as_array) {
                self.any_of(branches, v, at)?;
            }
        }
        if let Some(t) = s.get("type").and_then(Value::as_str) {
            let ok = match t {
                "object" => v.is_object(),
                "array" => v.is_array(),
                "string" => v.is_string(),
                "integer" => v.as_i64().is_some() || v.as_u64().is_some(),
                "number" => v.is_number(),
                "boolean" => v.is_boolean(),
                "null" => v.is_null(),
                _ => false,
            };
            if !ok {
                return Err(format!("{here}: expected {t}, got {}", kind(v)));
            }
        }
        if let Value::Object(obj) = v {
            self.object(s, obj, at)?;
        }
        if let (Value::Array(items), Some(item)) = (v, s.get("items")) {
            for (i, x) in items.iter().enumerate() {
                self.value(item, x, &format!("{at}[{i}]"))?;
            }
        }
        Ok(())
    }

    fn object(&self, s: &Value, obj: &Map<String, Value>, at: &str) -> Result<(), String> {
        let props = s.get("properties").and_then(Value::as_object);
        let extra = s.get("additionalProperties");
        let path = |k: &str| {
            if at.is_empty() {
                k.to_owned()
            } else {
                format!("{at}.{k}")
            }
        };
        for (k, x) in obj {
            match (props.and_then(|p| p.get(k)), extra) {
                (Some(field), _) => self.value(field, x, &path(k))?,
                (None, Some(Value::Bool(false))) => {
                    let whose = if at.is_empty() {
                        String::new()
                    } else {
                        format!(" of {at}")
                    };
                    return Err(format!(
                        "unknown field: parameter {k}{whose} is not a valid field"
                    ));
                }
                (None, Some(more @ Value::Object(_))) => self.value(more, x, &path(k))?,
                (None, _) => {}
            }
        }
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !obj.contains_key(r) {
                return Err(format!("missing required field: {}", path(r)));
            }
        }
        Ok(())
    }

    /// A union: the value must match a branch. The error reported is the chosen branch's when the value
    /// names one by a discriminant (`"role": "tool"` picks the tool message), else the first branch's
    /// whose type fits, so it says what is wrong inside rather than only "matches nothing".
    fn any_of(&self, branches: &[Value], v: &Value, at: &str) -> Result<(), String> {
        let mut best: Option<(u8, String)> = None;
        for b in branches {
            match self.value(b, v, at) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let rank = self.fit(b, v);
                    if best.as_ref().is_none_or(|(r, _)| rank > *r) {
                        best = Some((rank, e));
                    }
                }
            }
        }
        Err(best.map_or_else(
            || {
                format!(
                    "{}: matches no alternative",
                    if at.is_empty() { "body" } else { at }
                )
            },
            |(_, e)| e,
        ))
    }

    /// How well a failed branch fits `v`: 2 when its discriminants (`const` properties) all match, 1 when
    /// its type does, 0 otherwise.
    fn fit(&self, b: &Value, v: &Value) -> u8 {
        let Ok(b) = self.resolve(b) else { return 0 };
        let consts: Vec<(&String, &Value)> = b
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, p)| self.resolve(p).ok()?.get("const").map(|c| (k, c)))
            .collect();
        if !consts.is_empty() && consts.iter().all(|(k, c)| v.get(k.as_str()) == Some(*c)) {
            return 2;
        }
        let t = b.get("type").and_then(Value::as_str);
        let same = matches!(
            (t, v),
            (Some("object"), Value::Object(_))
                | (Some("array"), Value::Array(_))
                | (Some("string"), Value::String(_))
                | (Some("integer" | "number"), Value::Number(_))
                | (Some("boolean"), Value::Bool(_))
        );
        u8::from(same && consts.is_empty())
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Refuses a schema with a keyword outside [`CHECKED`] and [`ANNOTATIONS`].
fn known_keywords(s: &Value, at: &str) -> anyhow::Result<()> {
    let Value::Object(m) = s else {
        anyhow::ensure!(s.is_boolean(), "{at} is not a schema");
        return Ok(());
    };
    for (k, sub) in m {
        let nested = |name: &str| format!("{at}/{k}/{name}");
        match k.as_str() {
            "properties" | "$defs" => {
                for (name, x) in sub.as_object().into_iter().flatten() {
                    known_keywords(x, &nested(name))?;
                }
            }
            "anyOf" | "oneOf" | "allOf" => {
                for (i, x) in sub.as_array().into_iter().flatten().enumerate() {
                    known_keywords(x, &nested(&i.to_string()))?;
                }
            }
            "items" | "additionalProperties" => known_keywords(sub, &format!("{at}/{k}"))?,
            other if CHECKED.contains(&other) || ANNOTATIONS.contains(&other) => {}
            other => anyhow::bail!("{at}: the keyword {other:?} is not checked by this validator"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The shapes pydantic emits for a Fern model: nullable optionals, a union discriminated by `role`,
    /// a closed model, a free dict, an enum.
    fn schema() -> Schema {
        Schema::new(json!({
            "$defs": {
                "User": {"type": "object", "additionalProperties": false, "required": ["role", "content"],
                    "properties": {"role": {"const": "user", "type": "string"}, "content": {"type": "string"}}},
                "Tool": {"type": "object", "additionalProperties": false, "required": ["role", "tool_call_id"],
                    "properties": {"role": {"const": "tool", "type": "string"}, "tool_call_id": {"type": "string"},
                        "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"$ref": "#/$defs/Doc"}}]}}},
                "Doc": {"type": "object", "additionalProperties": false, "required": ["data"],
                    "properties": {"data": {"type": "object", "additionalProperties": true}}},
            },
            "type": "object", "additionalProperties": false, "required": ["model", "messages"],
            "properties": {
                "model": {"type": "string"},
                "messages": {"type": "array", "items": {"anyOf": [{"$ref": "#/$defs/User"}, {"$ref": "#/$defs/Tool"}]}},
                "max_tokens": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": null},
                "tool_choice": {"anyOf": [{"enum": ["REQUIRED", "NONE"], "type": "string"}, {"type": "null"}]},
            }
        }))
        .expect("schema")
    }

    #[test]
    fn pydantic_schema_rules() {
        let s = schema();
        for body in [
            json!({"model": "m", "messages": []}),
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": null, "tool_choice": "NONE"}),
            json!({"model": "m", "messages": [{"role": "tool", "tool_call_id": "t", "content": [{"data": {"x": [1]}}]}]}),
        ] {
            assert_eq!(s.check(&body), Ok(()), "{body}");
        }
        for (name, body, needle) in [
            (
                "unknown top-level",
                json!({"model": "m", "messages": [], "n": 2}),
                "unknown field: parameter n is not a valid field",
            ),
            (
                "missing required",
                json!({"messages": []}),
                "missing required field: model",
            ),
            (
                "wrong type",
                json!({"model": 1, "messages": []}),
                "model: expected string, got number",
            ),
            (
                "fraction for an integer",
                json!({"model": "m", "messages": [], "max_tokens": 1.5}),
                "max_tokens: expected integer",
            ),
            (
                "enum",
                json!({"model": "m", "messages": [], "tool_choice": "AUTO"}),
                "tool_choice: \"AUTO\" is not one of [\"REQUIRED\", \"NONE\"]",
            ),
            (
                "the discriminated branch's error",
                json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
                "missing required field: messages[0].tool_call_id",
            ),
            (
                "unknown nested field",
                json!({"model": "m", "messages": [{"role": "user", "content": "x", "name": "n"}]}),
                "parameter name of messages[0] is not a valid field",
            ),
            (
                "unknown role",
                json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]}),
                "messages[0]",
            ),
            (
                "nested union",
                json!({"model": "m", "messages": [{"role": "tool", "tool_call_id": "t", "content": [{"data": 1}]}]}),
                "messages[0].content",
            ),
        ] {
            let err = s.check(&body).expect_err(name);
            assert!(err.contains(needle), "{name}: {err}");
        }
    }

    #[test]
    fn a_keyword_it_does_not_check_is_refused_at_load() {
        let err = Schema::new(json!({"type": "string", "pattern": "^a"})).expect_err("pattern");
        assert!(err.to_string().contains("pattern"), "{err}");
        let err = Schema::new(json!({"properties": {"a": {"minimum": 1}}})).expect_err("minimum");
        assert!(err.to_string().contains("#/properties/a"), "{err}");
    }
}
