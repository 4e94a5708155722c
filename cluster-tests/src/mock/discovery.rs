//! Request validation against a Google API discovery document (Vertex AI's `aiplatform.v1.json`, as
//! `google-api-python-client` ships it), so the Gemini mock refuses what Vertex AI's own JSON parser would
//! refuse instead of what a field list copied from the docs happens to catch.
//!
//! A discovery schema is an object with `properties` (or a map: `additionalProperties`), `$ref` to another
//! schema by id, `array` with `items`, `string` (`enum`; formats `byte`, `int64`, `uint64`,
//! `google-duration`, ...), `integer` (`int32`, `uint32`), `number`, `boolean` and `any`
//! (`google.protobuf.Value`). The request body is the proto3 JSON of a message, so the check follows proto3
//! JSON parsing: a field may be spelled lowerCamel (the discovery name) or in its original snake_case (not
//! both), `null` is every field's default, 64-bit integers come as JSON strings or numbers, any integer
//! may be quoted, floats may be `"NaN"`/`"Infinity"`, an enum may be its name or its number, and bytes are
//! base64 (standard or URL-safe). Errors read as Google's do: `Invalid JSON payload received. Unknown name
//! "x" at 'contents[0].parts[0]': Cannot find field.`, with the path in proto (snake_case) names.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::Context;
use base64::Engine;
use serde_json::{Map, Value};

/// The discovery document the Gemini mock checks requests against (`--vertex-discovery`).
pub static VERTEX: OnceLock<Discovery> = OnceLock::new();

/// The request message of `generateContent` / `streamGenerateContent`.
pub const GENERATE_CONTENT_REQUEST: &str = "GoogleCloudAiplatformV1GenerateContentRequest";
/// The response message (and every streamed chunk).
pub const GENERATE_CONTENT_RESPONSE: &str = "GoogleCloudAiplatformV1GenerateContentResponse";

/// A loaded discovery document: its schemas by id.
#[derive(Debug)]
pub struct Discovery {
    schemas: Map<String, Value>,
}

impl Discovery {
    /// Reads a discovery document; refuses one without the schema `required` (so a wrong file is
    /// caught at start, not as a puzzling refusal of every request).
    pub fn load(path: &Path, required: &str) -> anyhow::Result<Discovery> {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let v: Value = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        let d = Discovery::from_document(v)
            .with_context(|| format!("{} is not a discovery document", path.display()))?;
        anyhow::ensure!(
            d.schemas.contains_key(required),
            "{} defines no schema {required}",
            path.display()
        );
        Ok(d)
    }

    /// A document already parsed.
    pub fn from_document(mut doc: Value) -> anyhow::Result<Discovery> {
        match doc.get_mut("schemas").map(Value::take) {
            Some(Value::Object(schemas)) => Ok(Discovery { schemas }),
            _ => anyhow::bail!("it has no schemas"),
        }
    }

    /// Checks `body` as the proto3 JSON of message `schema`; the error is Google's message for the
    /// first violation.
    pub fn check(&self, schema: &str, body: &Value) -> Result<(), String> {
        let s = self
            .schemas
            .get(schema)
            .ok_or_else(|| format!("the discovery document has no schema {schema}"))?;
        self.value(s, body, "")
    }

    fn resolve<'a>(&'a self, s: &'a Value) -> Result<&'a Value, String> {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => self
                .schemas
                .get(r)
                .ok_or_else(|| format!("the discovery document has no schema {r}")),
            None => Ok(s),
        }
    }

    fn value(&self, s: &Value, v: &Value, at: &str) -> Result<(), String> {
        let s = self.resolve(s)?;
        let kind = s.get("type").and_then(Value::as_str).unwrap_or_default();
        // proto3 JSON: null is the default value of any field; only `any` (google.protobuf.Value) keeps it.
        if v.is_null() || kind == "any" {
            return Ok(());
        }
        match kind {
            "object" => self.object(s, v, at),
            "array" => {
                let Value::Array(items) = v else {
                    return Err(invalid(at, "TYPE_MESSAGE (repeated)", v));
                };
                let item = s.get("items").unwrap_or(&Value::Null);
                for (i, x) in items.iter().enumerate() {
                    self.value(item, x, &format!("{at}[{i}]"))?;
                }
                Ok(())
            }
            "string" => string(s, v, at),
            "integer" => {
                let format = s.get("format").and_then(Value::as_str).unwrap_or("int32");
                integer(format, v, at)
            }
            "number" => number(v, at),
            "boolean" => match v {
                Value::Bool(_) => Ok(()),
                _ => Err(invalid(at, "TYPE_BOOL", v)),
            },
            other => Err(format!(
                "the discovery document has a schema of unknown type {other:?} at '{at}'"
            )),
        }
    }

    fn object(&self, s: &Value, v: &Value, at: &str) -> Result<(), String> {
        let Value::Object(obj) = v else {
            return Err(format!(
                "Invalid JSON payload received. Expected an object at '{at}'."
            ));
        };
        if let Some(values) = s.get("additionalProperties") {
            // A map (or google.protobuf.Struct): any key, each value of the given schema.
            for (k, x) in obj {
                self.value(values, x, &format!("{at}[{k}]"))?;
            }
            return Ok(());
        }
        let props = s.get("properties").and_then(Value::as_object);
        let mut seen: Vec<&str> = Vec::with_capacity(obj.len());
        for (k, x) in obj {
            let Some((name, field)) = props.and_then(|p| field(p, k)) else {
                let place = if at.is_empty() {
                    String::new()
                } else {
                    format!(" at '{at}'")
                };
                return Err(format!(
                    "Invalid JSON payload received. Unknown name \"{k}\"{place}: Cannot find field."
                ));
            };
            let proto = snake(name);
            if seen.contains(&name) {
                return Err(format!(
                    "Invalid JSON payload received. Duplicate field \"{proto}\"{}.",
                    if at.is_empty() {
                        String::new()
                    } else {
                        format!(" at '{at}'")
                    }
                ));
            }
            seen.push(name);
            let here = if at.is_empty() {
                proto
            } else {
                format!("{at}.{proto}")
            };
            self.value(field, x, &here)?;
        }
        Ok(())
    }
}

/// The discovery field `key` names: its lowerCamel name, or the snake_case one proto3 JSON parsers also
/// accept.
fn field<'a>(props: &'a Map<String, Value>, key: &str) -> Option<(&'a str, &'a Value)> {
    if let Some((k, v)) = props.get_key_value(key) {
        return Some((k.as_str(), v));
    }
    if !key.contains('_') {
        return None;
    }
    let (k, v) = props.get_key_value(&camel(key))?;
    (snake(k) == key).then_some((k.as_str(), v))
}

fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn invalid(at: &str, proto_type: &str, v: &Value) -> String {
    format!("Invalid value at '{at}' ({proto_type}), {v}")
}

fn string(s: &Value, v: &Value, at: &str) -> Result<(), String> {
    let format = s.get("format").and_then(Value::as_str).unwrap_or_default();
    if let Some(values) = s.get("enum").and_then(Value::as_array) {
        let ok = match v {
            Value::String(t) => values.iter().any(|e| e.as_str() == Some(t)),
            // proto3 JSON also takes an enum's number.
            Value::Number(n) => n.as_u64().is_some_and(|i| (i as usize) < values.len()),
            _ => false,
        };
        return if ok {
            Ok(())
        } else {
            Err(invalid(at, "TYPE_ENUM", v))
        };
    }
    match format {
        "int64" | "uint64" => return integer(format, v, at),
        _ => {}
    }
    let Value::String(t) = v else {
        let proto_type = if format == "byte" {
            "TYPE_BYTES"
        } else {
            "TYPE_STRING"
        };
        return Err(invalid(at, proto_type, v));
    };
    match format {
        "byte" if !is_base64(t) => Err(format!(
            "Invalid value at '{at}' (TYPE_BYTES), Base64 decoding failed for \"{}\"",
            t.chars().take(40).collect::<String>()
        )),
        "google-duration"
            if t.strip_suffix('s')
                .is_none_or(|n| n.parse::<f64>().is_err()) =>
        {
            Err(invalid(
                at,
                "type.googleapis.com/google.protobuf.Duration",
                v,
            ))
        }
        _ => Ok(()),
    }
}

fn is_base64(t: &str) -> bool {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    // Google's parser takes either alphabet, padded or not.
    let lenient =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let standard = GeneralPurpose::new(&base64::alphabet::STANDARD, lenient);
    let url_safe = GeneralPurpose::new(&base64::alphabet::URL_SAFE, lenient);
    standard.decode(t).is_ok() || url_safe.decode(t).is_ok()
}

/// An integer of `format` (`int32`, `uint32`, `int64`, `uint64`): a JSON number without a fraction, or
/// the same as a string, in range.
fn integer(format: &str, v: &Value, at: &str) -> Result<(), String> {
    let proto_type = match format {
        "uint32" => "TYPE_UINT32",
        "int64" => "TYPE_INT64",
        "uint64" => "TYPE_UINT64",
        _ => "TYPE_INT32",
    };
    let n: Option<i128> = match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e19)
                    .map(|f| f as i128)
            }),
        Value::String(t) => t.trim().parse::<i128>().ok(),
        _ => None,
    };
    let (lo, hi): (i128, i128) = match format {
        "uint32" => (0, u32::MAX.into()),
        "int64" => (i64::MIN.into(), i64::MAX.into()),
        "uint64" => (0, u64::MAX.into()),
        _ => (i32::MIN.into(), i32::MAX.into()),
    };
    match n {
        Some(n) if (lo..=hi).contains(&n) => Ok(()),
        _ => Err(invalid(at, proto_type, v)),
    }
}

/// A float or double: a JSON number, a numeric string, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
fn number(v: &Value, at: &str) -> Result<(), String> {
    match v {
        Value::Number(_) => Ok(()),
        Value::String(t)
            if matches!(t.as_str(), "NaN" | "Infinity" | "-Infinity")
                || t.parse::<f64>().is_ok_and(f64::is_finite) =>
        {
            Ok(())
        }
        _ => Err(invalid(at, "TYPE_FLOAT", v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A document in the discovery format with the shapes each rule needs.
    fn doc() -> Discovery {
        Discovery::from_document(json!({"schemas": {
            "Req": {"id": "Req", "type": "object", "properties": {
                "contents": {"type": "array", "items": {"$ref": "Content"}},
                "generationConfig": {"$ref": "Config"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            }},
            "Content": {"id": "Content", "type": "object", "properties": {
                "role": {"type": "string"},
                "parts": {"type": "array", "items": {"$ref": "Part"}},
            }},
            "Part": {"id": "Part", "type": "object", "properties": {
                "text": {"type": "string"},
                "thought": {"type": "boolean"},
                "thoughtSignature": {"type": "string", "format": "byte"},
                "functionCall": {"type": "object", "properties": {
                    "name": {"type": "string"},
                    "args": {"type": "object", "additionalProperties": {"type": "any"}},
                }},
            }},
            "Config": {"id": "Config", "type": "object", "properties": {
                "maxOutputTokens": {"type": "integer", "format": "int32"},
                "seed": {"type": "integer", "format": "int32"},
                "temperature": {"type": "number", "format": "float"},
                "tokenBudget": {"type": "string", "format": "int64"},
                "mediaResolution": {"type": "string", "enum": ["UNSPECIFIED", "LOW", "HIGH"]},
                "timeout": {"type": "string", "format": "google-duration"},
            }},
        }}))
        .expect("document")
    }

    #[test]
    fn proto3_json_rules() {
        let d = doc();
        let accepted = [
            (
                "plain",
                json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
            ),
            (
                "snake_case names",
                json!({"generation_config": {"max_output_tokens": 5}}),
            ),
            (
                "null is the default",
                json!({"generationConfig": null, "contents": [{"parts": null}]}),
            ),
            (
                "int64 as a string",
                json!({"generationConfig": {"tokenBudget": "123"}}),
            ),
            (
                "int64 as a number",
                json!({"generationConfig": {"tokenBudget": 123}}),
            ),
            ("int32 quoted", json!({"generationConfig": {"seed": "-4"}})),
            ("integral float", json!({"generationConfig": {"seed": 4.0}})),
            (
                "float special",
                json!({"generationConfig": {"temperature": "NaN"}}),
            ),
            (
                "enum by name",
                json!({"generationConfig": {"mediaResolution": "LOW"}}),
            ),
            (
                "enum by number",
                json!({"generationConfig": {"mediaResolution": 2}}),
            ),
            ("duration", json!({"generationConfig": {"timeout": "3.5s"}})),
            ("map values", json!({"labels": {"a": "b", "c-d": "e"}})),
            (
                "struct holds any value",
                json!({"contents": [{"parts": [{"functionCall": {"name": "f", "args": {"a": [1, {"b": null}]}}}]}]}),
            ),
            (
                "bytes, URL-safe unpadded",
                json!({"contents": [{"parts": [{"thoughtSignature": "_-8"}]}]}),
            ),
        ];
        for (name, body) in accepted {
            assert_eq!(d.check("Req", &body), Ok(()), "{name}: {body}");
        }
        let refused = [
            ("unknown top-level", json!({"model": "m"}), "Invalid JSON payload received. Unknown name \"model\": Cannot find field."),
            ("unknown nested", json!({"contents": [{"parts": [{"txt": "a"}]}]}),
             "Invalid JSON payload received. Unknown name \"txt\" at 'contents[0].parts[0]': Cannot find field."),
            ("snake_case that is no field", json!({"generation_config": {"max_tokens": 1}}),
             "Unknown name \"max_tokens\" at 'generation_config'"),
            ("half-snake spelling", json!({"generationConfig": {"maxOutput_tokens": 1}}), "Unknown name \"maxOutput_tokens\""),
            ("both spellings", json!({"generationConfig": {"maxOutputTokens": 1, "max_output_tokens": 2}}),
             "Duplicate field \"max_output_tokens\" at 'generation_config'"),
            ("string for an array", json!({"contents": "hi"}), "Invalid value at 'contents'"),
            ("number for a string", json!({"contents": [{"role": 1}]}), "Invalid value at 'contents[0].role' (TYPE_STRING), 1"),
            ("fractional int32", json!({"generationConfig": {"seed": 1.5}}), "(TYPE_INT32), 1.5"),
            ("int32 out of range", json!({"generationConfig": {"seed": 3_000_000_000u64}}), "TYPE_INT32"),
            ("int64 word", json!({"generationConfig": {"tokenBudget": "many"}}), "TYPE_INT64"),
            ("bool for a number", json!({"generationConfig": {"temperature": true}}), "TYPE_FLOAT"),
            ("string for a bool", json!({"contents": [{"parts": [{"thought": "yes"}]}]}), "TYPE_BOOL"),
            ("unknown enum", json!({"generationConfig": {"mediaResolution": "MEDIUM"}}), "(TYPE_ENUM), \"MEDIUM\""),
            ("enum number out of range", json!({"generationConfig": {"mediaResolution": 3}}), "TYPE_ENUM"),
            ("bad base64", json!({"contents": [{"parts": [{"thoughtSignature": "not base64!"}]}]}), "Base64 decoding failed"),
            ("bad duration", json!({"generationConfig": {"timeout": "3 seconds"}}), "Duration"),
            ("map value type", json!({"labels": {"a": 1}}), "Invalid value at 'labels[a]'"),
            ("object expected", json!({"generationConfig": [1]}), "Expected an object at 'generation_config'"),
            ("struct expected", json!({"contents": [{"parts": [{"functionCall": {"args": "x"}}]}]}), "Expected an object"),
        ];
        for (name, body, needle) in refused {
            let err = d.check("Req", &body).expect_err(name);
            assert!(err.contains(needle), "{name}: {err}");
        }
    }

    #[test]
    fn a_file_without_the_schema_is_refused_at_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d.json");
        std::fs::write(&path, r#"{"schemas": {"Other": {"type": "object"}}}"#).expect("write");
        let err = Discovery::load(&path, GENERATE_CONTENT_REQUEST).expect_err("no schema");
        assert!(err.to_string().contains(GENERATE_CONTENT_REQUEST), "{err}");
        std::fs::write(&path, "{").expect("write");
        assert!(Discovery::load(&path, GENERATE_CONTENT_REQUEST).is_err());
        assert!(Discovery::load(&dir.path().join("missing.json"), "x").is_err());
    }
}
