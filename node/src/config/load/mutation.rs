//! `headerMutation` and `bodyMutation`, on an AIServiceBackend (every request to it) and on a route rule's
//! backendRef (that rule's requests to it), validated and merged into one [`Mutation`] per backendRef.
//!
//! Upstream (Envoy AI Gateway v1.1, "Header and Body Mutations"): at most 16 entries per list; header names
//! are case-insensitive; body paths name top-level members only; a body `value` is raw JSON, or a plain
//! string when it is not JSON; where both levels touch the same header or member the backendRef's wins,
//! and everything else from both applies; removals come first, then sets. Upstream skips Envoy's pseudo
//! headers and its own `x-ai-eg-` headers; Switchyard also skips the headers it must own to frame the
//! request (`host`, `content-length`, hop-by-hop), with a warning instead of silently.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};

use super::super::error::{ConfigError, ResourceId};
use super::super::model::Mutation;
use super::super::resources::{HttpBodyMutation, HttpHeaderMutation};
use super::Warnings;

/// Upstream's `maxItems` on every mutation list.
const MAX_ENTRIES: usize = 16;

/// Headers the gateway sets itself to frame and route the request: a mutation of them is skipped.
const OWNED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// One level's mutations as written: where they are (for messages) and what they say.
pub(super) struct Level<'a> {
    /// The resource.
    pub(super) id: &'a ResourceId,
    /// Path of the object holding `headerMutation` / `bodyMutation` (`spec`, `spec.rules[0].backendRefs[1]`).
    pub(super) at: String,
    /// `headerMutation`.
    pub(super) headers: Option<&'a HttpHeaderMutation>,
    /// `bodyMutation`.
    pub(super) body: Option<&'a HttpBodyMutation>,
}

/// The merged mutation of a backendRef: `backend` (AIServiceBackend level, if any) under `route`.
pub(super) fn resolve(
    backend: Option<Level<'_>>,
    route: Level<'_>,
    warnings: &mut Warnings,
) -> Result<Option<Arc<Mutation>>, ConfigError> {
    let mut merged = Mutation::default();
    for level in backend.into_iter().chain(Some(route)) {
        let one = validate(&level, warnings)?;
        merge(&mut merged, one);
    }
    let empty =
        merged.header_remove.is_empty() && merged.header_set.is_empty() && !merged.edits_body();
    Ok((!empty).then(|| Arc::new(merged)))
}

/// `over` applied on top of `base`: same-named sets replace in place, new ones are appended; removals are
/// the union.
fn merge(base: &mut Mutation, over: Mutation) {
    for (name, value) in over.header_set {
        upsert(&mut base.header_set, name, value);
    }
    for name in over.header_remove {
        push_new(&mut base.header_remove, name);
    }
    for (path, value) in over.body_set {
        upsert(&mut base.body_set, path, value);
    }
    for path in over.body_remove {
        push_new(&mut base.body_remove, path);
    }
}

/// Sets `key` to `value`, in place when it is already there (a later entry wins, keeping the first's order).
fn upsert<K: PartialEq, V>(entries: &mut Vec<(K, V)>, key: K, value: V) {
    match entries.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => entries.push((key, value)),
    }
}

/// Adds `item` unless it is there already.
fn push_new<T: PartialEq>(items: &mut Vec<T>, item: T) {
    if !items.contains(&item) {
        items.push(item);
    }
}

fn validate(level: &Level<'_>, warnings: &mut Warnings) -> Result<Mutation, ConfigError> {
    let id = level.id;
    let mut m = Mutation::default();
    if let Some(h) = level.headers {
        let field = format!("{}.headerMutation", level.at);
        let set = h.set.as_deref().unwrap_or_default();
        let remove = h.remove.as_deref().unwrap_or_default();
        check_len(id, &format!("{field}.set"), set.len())?;
        check_len(id, &format!("{field}.remove"), remove.len())?;
        for (i, name) in remove.iter().enumerate() {
            let at = format!("{field}.remove[{i}]");
            if let Some(name) = header_name(id, &at, name, warnings)? {
                push_new(&mut m.header_remove, name);
            }
        }
        for (i, e) in set.iter().enumerate() {
            let at = format!("{field}.set[{i}]");
            let Some(name) = header_name(id, &format!("{at}.name"), &e.name, warnings)? else {
                continue;
            };
            // Never echo the value: header mutations are where some users put keys.
            let mut value = HeaderValue::from_str(&e.value).map_err(|_| {
                id.error(
                    format!("{at}.value"),
                    "not a valid header value (control characters or non-visible bytes)",
                )
            })?;
            value.set_sensitive(true);
            upsert(&mut m.header_set, name, value);
        }
    }
    if let Some(b) = level.body {
        let field = format!("{}.bodyMutation", level.at);
        let set = b.set.as_deref().unwrap_or_default();
        let remove = b.remove.as_deref().unwrap_or_default();
        check_len(id, &format!("{field}.set"), set.len())?;
        check_len(id, &format!("{field}.remove"), remove.len())?;
        for (i, path) in remove.iter().enumerate() {
            if let Some(path) = body_path(id, &format!("{field}.remove[{i}]"), path, warnings) {
                push_new(&mut m.body_remove, path);
            }
        }
        for (i, e) in set.iter().enumerate() {
            let at = format!("{field}.set[{i}]");
            let Some(path) = body_path(id, &format!("{at}.path"), &e.path, warnings) else {
                continue;
            };
            let value = serde_json::from_str(e.value.trim())
                .unwrap_or_else(|_| serde_json::Value::String(e.value.clone()));
            upsert(&mut m.body_set, path, value);
        }
    }
    Ok(m)
}

fn check_len(id: &ResourceId, field: &str, len: usize) -> Result<(), ConfigError> {
    if len > MAX_ENTRIES {
        return Err(id.error(
            field,
            format!("{len} entries: at most {MAX_ENTRIES} are allowed (as upstream's CRD)"),
        ));
    }
    Ok(())
}

/// A header name to act on, `None` when the entry is skipped (empty, or a header upstream or the gateway
/// owns).
fn header_name(
    id: &ResourceId,
    field: &str,
    name: &str,
    warnings: &mut Warnings,
) -> Result<Option<HeaderName>, ConfigError> {
    let lower = name.trim().to_ascii_lowercase();
    if lower.is_empty() {
        return Ok(None);
    }
    if lower.starts_with(':') || lower.starts_with("x-ai-eg-") {
        warnings.push(id.warning(
            field,
            format!("ignored: {lower} is a pseudo or gateway header, which mutations do not touch (as upstream)"),
        ));
        return Ok(None);
    }
    if OWNED_HEADERS.contains(&lower.as_str()) {
        warnings.push(id.warning(
            field,
            format!("ignored: Switchyard sets {lower} itself to frame the request"),
        ));
        return Ok(None);
    }
    HeaderName::from_bytes(lower.as_bytes())
        .map(Some)
        .map_err(|_| id.error(field, format!("{name:?} is not a valid header name")))
}

/// A top-level member name, `None` when the entry is skipped (empty, or a nested or pattern path).
fn body_path(id: &ResourceId, field: &str, path: &str, warnings: &mut Warnings) -> Option<String> {
    if path.is_empty() {
        return None;
    }
    if path.contains(['.', '*', '?', '|', '#', '@', '\\']) {
        warnings.push(id.warning(
            field,
            format!("ignored: {path:?} is not a top-level member name; only top-level members can be mutated (as upstream documents)"),
        ));
        return None;
    }
    Some(path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::super::super::resources::{HttpBodyField, HttpHeaderValue};
    use super::*;
    use serde_json::json;

    fn id() -> ResourceId {
        ResourceId {
            file: std::path::PathBuf::from("t.yaml"),
            kind: "AIServiceBackend".into(),
            namespace: "default".into(),
            name: "b".into(),
        }
    }

    fn headers(set: &[(&str, &str)], remove: &[&str]) -> HttpHeaderMutation {
        HttpHeaderMutation {
            set: Some(
                set.iter()
                    .map(|(n, v)| HttpHeaderValue {
                        name: n.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
            ),
            remove: Some(remove.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn body(set: &[(&str, &str)], remove: &[&str]) -> HttpBodyMutation {
        HttpBodyMutation {
            set: Some(
                set.iter()
                    .map(|(p, v)| HttpBodyField {
                        path: p.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
            ),
            remove: Some(remove.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn run(
        backend: Option<(&HttpHeaderMutation, &HttpBodyMutation)>,
        route: (&HttpHeaderMutation, &HttpBodyMutation),
    ) -> (Result<Option<Arc<Mutation>>, ConfigError>, Vec<String>) {
        let id = id();
        let mut w = Warnings(Vec::new());
        let got = resolve(
            backend.map(|(h, b)| Level {
                id: &id,
                at: "spec".into(),
                headers: Some(h),
                body: Some(b),
            }),
            Level {
                id: &id,
                at: "spec.rules[0].backendRefs[0]".into(),
                headers: Some(route.0),
                body: Some(route.1),
            },
            &mut w,
        );
        (got, w.0)
    }

    fn sets(m: &Mutation) -> Vec<(String, String)> {
        m.header_set
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("?").to_string()))
            .collect()
    }

    #[test]
    fn route_level_wins_conflicts_and_both_levels_apply() {
        let (got, warnings) = run(
            Some((
                &headers(&[("x-org", "acme"), ("X-Tier", "basic")], &["x-debug"]),
                &body(
                    &[("service_tier", "\"scale\""), ("max_tokens", "100")],
                    &["internal"],
                ),
            )),
            (
                &headers(&[("x-tier", "premium")], &["X-Trace"]),
                &body(&[("max_tokens", "8192")], &["internal", "user"]),
            ),
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let m = got.expect("valid").expect("some");
        assert_eq!(
            sets(&m),
            vec![
                ("x-org".into(), "acme".into()),
                ("x-tier".into(), "premium".into())
            ]
        );
        assert_eq!(m.header_remove, vec!["x-debug", "x-trace"]);
        assert_eq!(
            m.body_set,
            vec![
                ("service_tier".to_string(), json!("scale")),
                ("max_tokens".to_string(), json!(8192))
            ]
        );
        assert_eq!(m.body_remove, vec!["internal", "user"]);
        assert!(m.header_set.iter().all(|(_, v)| v.is_sensitive()));
    }

    #[test]
    fn values_are_json_or_plain_strings() {
        let rows = [
            ("\"scale\"", json!("scale")),
            ("42", json!(42)),
            ("0.7", json!(0.7)),
            ("true", json!(true)),
            ("null", json!(null)),
            ("[1, 2, 3]", json!([1, 2, 3])),
            ("{\"key\": \"value\"}", json!({"key": "value"})),
            ("scale", json!("scale")),
            ("1.2.3", json!("1.2.3")),
            ("{broken", json!("{broken")),
        ];
        for (value, want) in rows {
            let (got, _) = run(None, (&headers(&[], &[]), &body(&[("f", value)], &[])));
            let m = got.expect("valid").expect("some");
            assert_eq!(m.body_set, vec![("f".to_string(), want)], "{value}");
        }
    }

    #[test]
    fn skipped_entries_warn_and_bad_ones_fail_naming_the_field() {
        let (got, warnings) = run(
            None,
            (
                &headers(
                    &[("Host", "x"), ("x-ai-eg-model", "m"), ("", "v")],
                    &["content-length"],
                ),
                &body(&[("a.b", "1"), ("", "1")], &["messages.0"]),
            ),
        );
        assert_eq!(got.expect("valid"), None, "every entry was skipped");
        let joined = warnings.join("\n");
        for needle in [
            "backendRefs[0].headerMutation.set[0].name: ignored: Switchyard sets host",
            "headerMutation.set[1].name: ignored: x-ai-eg-model",
            "headerMutation.remove[0]: ignored: Switchyard sets content-length",
            "bodyMutation.set[0].path: ignored: \"a.b\" is not a top-level member",
            "bodyMutation.remove[0]: ignored: \"messages.0\"",
        ] {
            assert!(joined.contains(needle), "missing {needle:?} in\n{joined}");
        }

        let (got, _) = run(None, (&headers(&[("bad name", "v")], &[]), &body(&[], &[])));
        let e = got.expect_err("invalid name").to_string();
        assert!(
            e.contains("headerMutation.set[0].name") && e.contains("not a valid header name"),
            "{e}"
        );

        let (got, _) = run(
            None,
            (&headers(&[("x-key", "sk-secret\n")], &[]), &body(&[], &[])),
        );
        let e = got.expect_err("invalid value").to_string();
        assert!(e.contains("headerMutation.set[0].value"), "{e}");
        assert!(
            !e.contains("sk-secret"),
            "the value must not be echoed: {e}"
        );

        let many: Vec<(String, String)> = (0..17).map(|i| (format!("x-{i}"), "v".into())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let (got, _) = run(None, (&headers(&many, &[]), &body(&[], &[])));
        let e = got.expect_err("too many").to_string();
        assert!(
            e.contains("headerMutation.set") && e.contains("at most 16"),
            "{e}"
        );
    }
}
