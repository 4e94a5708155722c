//! Applies a backendRef's `headerMutation` / `bodyMutation` (validated and merged at load, see
//! `config::load::mutation`) to one attempt's request: after translation, so it edits what this backend
//! is sent, and before credentials and signing, so a mutation never replaces the backend's credential and
//! SigV4 signs the body as mutated. Removals first, then sets, as upstream. Hosts without a mutation never
//! reach this module, so plain chat pays nothing for it.

use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Map, Value};

use crate::config::model::Mutation;

/// Removes, then sets, the mutation's headers.
pub fn apply_headers(m: &Mutation, headers: &mut HeaderMap) {
    for name in &m.header_remove {
        headers.remove(name);
    }
    for (name, value) in &m.header_set {
        headers.insert(name.clone(), value.clone());
    }
}

/// The body with the mutation's top-level members removed, then set. A body that is not a JSON object
/// is sent as it is (every translator produces an object; upstream does the same on a failed edit).
pub fn apply_body(m: &Mutation, body: &Bytes) -> Bytes {
    if !m.edits_body() {
        return body.clone();
    }
    let Ok(mut object) = serde_json::from_slice::<Map<String, Value>>(body) else {
        tracing::debug!("body mutation skipped: the request body is not a JSON object");
        return body.clone();
    };
    for path in &m.body_remove {
        object.remove(path);
    }
    for (path, value) in &m.body_set {
        object.insert(path.clone(), value.clone());
    }
    match serde_json::to_vec(&object) {
        Ok(v) => Bytes::from(v),
        Err(_) => body.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};
    use serde_json::json;

    fn mutation() -> Mutation {
        Mutation {
            header_remove: vec![HeaderName::from_static("x-internal")],
            header_set: vec![
                (
                    HeaderName::from_static("x-org"),
                    HeaderValue::from_static("acme"),
                ),
                (
                    HeaderName::from_static("x-internal"),
                    HeaderValue::from_static("kept"),
                ),
            ],
            body_remove: vec!["user".into(), "absent".into()],
            body_set: vec![
                ("service_tier".into(), json!("scale")),
                ("max_tokens".into(), json!(8192)),
            ],
        }
    }

    #[test]
    fn headers_are_removed_then_set() {
        let mut h = HeaderMap::new();
        h.insert("x-internal", HeaderValue::from_static("secret"));
        h.insert("x-org", HeaderValue::from_static("old"));
        h.insert("x-other", HeaderValue::from_static("stays"));
        apply_headers(&mutation(), &mut h);
        assert_eq!(h["x-org"], "acme");
        assert_eq!(
            h["x-internal"], "kept",
            "a set after a remove of the same header wins"
        );
        assert_eq!(h["x-other"], "stays");
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn body_members_are_removed_then_set() {
        let body = Bytes::from_static(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"user":"u1","max_tokens":10}"#,
        );
        let out: Value = serde_json::from_slice(&apply_body(&mutation(), &body)).expect("json");
        assert_eq!(
            out,
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                   "max_tokens": 8192, "service_tier": "scale"})
        );
    }

    #[test]
    fn a_body_that_is_not_an_object_is_sent_as_it_is() {
        for raw in [&b"[1,2]"[..], b"not json", b""] {
            let body = Bytes::copy_from_slice(raw);
            assert_eq!(apply_body(&mutation(), &body), body);
        }
        let headers_only = Mutation {
            header_remove: vec![HeaderName::from_static("x-a")],
            ..Mutation::default()
        };
        let body = Bytes::from_static(b"{\"b\": 1, \"a\": 2}");
        assert_eq!(
            apply_body(&headers_only, &body),
            body,
            "untouched byte for byte"
        );
    }
}
