//! Request validation against an AWS service model (botocore's `service-2.json`), so the Bedrock mock
//! refuses what AWS itself would refuse instead of what a hand-written check happens to catch.
//!
//! The model is the one AWS publishes for its SDKs: shapes of type structure (members, `required`,
//! `union`), list, map, string (`enum`, length bounds), integer/long (bounds), float/double, boolean,
//! blob (base64 text in JSON), timestamp and document (a structure marked `document`). A structure member bound to the URI, a header or
//! the query string is not part of the JSON body and must not appear in it. The mock loads the model
//! from botocore's own loader (the test harness writes it out with the venv's botocore), so the check
//! follows AWS's current definition rather than a copy kept here.

use std::path::Path;

use anyhow::Context;
use serde_json::{Map, Value};

/// A loaded service model.
#[derive(Debug)]
pub struct ServiceModel {
    shapes: Map<String, Value>,
}

impl ServiceModel {
    /// Reads a `service-2.json` (uncompressed).
    pub fn load(path: &Path) -> anyhow::Result<ServiceModel> {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let v: Value = serde_json::from_slice(&text).context("service model is not JSON")?;
        let shapes = v
            .get("shapes")
            .and_then(Value::as_object)
            .context("service model has no shapes")?
            .clone();
        Ok(ServiceModel { shapes })
    }

    /// Whether the model defines `shape`.
    pub fn has(&self, shape: &str) -> bool {
        self.shapes.contains_key(shape)
    }

    /// Where member `member` of structure `shape` travels: `(location, locationName)`, e.g.
    /// `("header", "Content-Type")`; `None` for a body member or an unknown one.
    pub fn member_location(&self, shape: &str, member: &str) -> Option<(String, String)> {
        let m = self.shapes.get(shape)?.get("members")?.get(member)?;
        Some((
            m.get("location")?.as_str()?.to_owned(),
            m.get("locationName")?.as_str()?.to_owned(),
        ))
    }

    /// The shape member `member` of structure `shape` refers to.
    pub fn member_shape(&self, shape: &str, member: &str) -> Option<&str> {
        self.shapes
            .get(shape)?
            .get("members")?
            .get(member)?
            .get("shape")?
            .as_str()
    }

    /// Checks a JSON request body against the input shape `shape` (e.g. `ConverseRequest`); the error
    /// names the path of the first violation.
    pub fn check(&self, shape: &str, body: &Value) -> Result<(), String> {
        self.value(shape, body, "", true)
    }

    fn value(&self, name: &str, v: &Value, at: &str, top: bool) -> Result<(), String> {
        let shape = self
            .shapes
            .get(name)
            .ok_or_else(|| format!("{at}: the model has no shape {name}"))?;
        let kind = shape
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let num = |k: &str| shape.get(k).and_then(Value::as_f64);
        let here = if at.is_empty() { "the body" } else { at };
        // botocore spells a document as a structure marked `"document": true`: any JSON value.
        if shape.get("document").and_then(Value::as_bool) == Some(true) {
            return Ok(());
        }
        match kind {
            "structure" => {
                let obj = v
                    .as_object()
                    .ok_or(format!("{here} must be a structure ({name})"))?;
                let members = shape
                    .get("members")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                if shape.get("union").and_then(Value::as_bool) == Some(true) && obj.len() != 1 {
                    return Err(format!(
                        "{here}: union {name} must have exactly one member set, has {}",
                        obj.len()
                    ));
                }
                for (k, mv) in obj {
                    let m = members
                        .get(k)
                        .ok_or(format!("{here}: unknown member {k} of {name}"))?;
                    if top && m.get("location").is_some() {
                        return Err(format!(
                            "{here}: {k} belongs in the request's {}, not its body",
                            m["location"]
                        ));
                    }
                    let target = m.get("shape").and_then(Value::as_str).unwrap_or_default();
                    self.value(
                        target,
                        mv,
                        format!("{at}.{k}").trim_start_matches('.'),
                        false,
                    )?;
                }
                for r in shape
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let r = r.as_str().unwrap_or_default();
                    let in_body = members.get(r).is_some_and(|m| m.get("location").is_none());
                    if in_body && !obj.contains_key(r) {
                        return Err(format!("{here}: missing required member {r} of {name}"));
                    }
                }
                Ok(())
            }
            "list" => {
                let a = v
                    .as_array()
                    .ok_or(format!("{here} must be a list ({name})"))?;
                if num("min").is_some_and(|m| (a.len() as f64) < m) {
                    return Err(format!(
                        "{here}: fewer than {} items ({name})",
                        shape["min"]
                    ));
                }
                let member = shape
                    .pointer("/member/shape")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                for (i, item) in a.iter().enumerate() {
                    self.value(member, item, &format!("{at}.{i}"), false)?;
                }
                Ok(())
            }
            "map" => {
                let o = v
                    .as_object()
                    .ok_or(format!("{here} must be a map ({name})"))?;
                let value = shape
                    .pointer("/value/shape")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                for (k, item) in o {
                    self.value(value, item, &format!("{at}.{k}"), false)?;
                }
                Ok(())
            }
            "string" => {
                let s = v
                    .as_str()
                    .ok_or(format!("{here} must be a string ({name})"))?;
                if let Some(e) = shape.get("enum").and_then(Value::as_array) {
                    if !e.iter().any(|x| x.as_str() == Some(s)) {
                        return Err(format!(
                            "{here}: {s:?} is not one of {} ({name})",
                            Value::Array(e.clone())
                        ));
                    }
                }
                let len = s.chars().count() as f64;
                if num("min").is_some_and(|m| len < m) || num("max").is_some_and(|m| len > m) {
                    return Err(format!("{here}: length {len} out of bounds ({name})"));
                }
                Ok(())
            }
            "integer" | "long" => {
                let n = v
                    .as_i64()
                    .ok_or(format!("{here} must be an integer ({name})"))?
                    as f64;
                if num("min").is_some_and(|m| n < m) || num("max").is_some_and(|m| n > m) {
                    return Err(format!("{here}: {n} out of bounds ({name})"));
                }
                Ok(())
            }
            "float" | "double" => {
                let n = v
                    .as_f64()
                    .ok_or(format!("{here} must be a number ({name})"))?;
                if num("min").is_some_and(|m| n < m) || num("max").is_some_and(|m| n > m) {
                    return Err(format!("{here}: {n} out of bounds ({name})"));
                }
                Ok(())
            }
            "boolean" => v
                .as_bool()
                .map(|_| ())
                .ok_or(format!("{here} must be a boolean ({name})")),
            "blob" => v
                .as_str()
                .map(|_| ())
                .ok_or(format!("{here} must be base64 text ({name})")),
            "timestamp" => {
                if v.is_string() || v.is_number() {
                    Ok(())
                } else {
                    Err(format!("{here} must be a timestamp ({name})"))
                }
            }
            // A document is any JSON value.
            "document" => Ok(()),
            other => Err(format!("{here}: shape {name} of unknown type {other:?}")),
        }
    }
}
