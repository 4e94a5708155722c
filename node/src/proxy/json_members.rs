//! The top-level members of a JSON object, found without parsing the values nobody asked for.
//!
//! The usage tap reads two members (`model`, `usage`) of every answer; a full parse of the answer spent
//! most of its time validating `choices` only to throw them away (~11 % of the request path's
//! instructions, docs/BENCHMARKS.md). Values not asked for are skipped by matching brackets outside
//! strings; the members asked for are handed over as raw slices to parse. Best-effort, like
//! the tap: malformed input ends the scan, and what was found before stays found.

/// Calls `member(key, raw_value)` for each top-level member of the object in `json` whose key (as
/// written, unescaped keys only) is one of `wanted`, in document order. Stops at the first syntax it
/// cannot follow.
pub fn for_each_member<'a>(
    json: &'a [u8],
    wanted: &[&[u8]],
    mut member: impl FnMut(&'a [u8], &'a [u8]),
) {
    let mut at = skip_ws(json, 0);
    if json.get(at) != Some(&b'{') {
        return;
    }
    at += 1;
    loop {
        at = skip_ws(json, at);
        match json.get(at) {
            Some(b'"') => {}
            _ => return, // `}` ends the object; anything else is not JSON we follow
        }
        let Some(key_end) = string_end(json, at) else {
            return;
        };
        let key = &json[at + 1..key_end - 1];
        at = skip_ws(json, key_end);
        if json.get(at) != Some(&b':') {
            return;
        }
        let start = skip_ws(json, at + 1);
        let Some(end) = value_end(json, start) else {
            return;
        };
        if wanted.contains(&key) {
            member(key, &json[start..end]);
        }
        at = skip_ws(json, end);
        match json.get(at) {
            Some(b',') => at += 1,
            _ => return,
        }
    }
}

fn skip_ws(json: &[u8], mut at: usize) -> usize {
    while matches!(json.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// `json[at]` is `"`: the index just past the closing quote.
fn string_end(json: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    loop {
        let found = memchr::memchr2(b'"', b'\\', &json[i..])?;
        i += found;
        if json[i] == b'\\' {
            i += 2; // the escaped byte, whatever it is, cannot close the string
            if i > json.len() {
                return None;
            }
        } else {
            return Some(i + 1);
        }
    }
}

/// The index just past the value starting at `json[at]`.
fn value_end(json: &[u8], at: usize) -> Option<usize> {
    match *json.get(at)? {
        b'"' => string_end(json, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            while i < json.len() {
                match json[i] {
                    b'"' => {
                        i = string_end(json, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            // A number, `true`, `false` or `null`: up to the next delimiter.
            let len = json[at..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(json.len() - at);
            (len > 0).then_some(at + len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(json: &str, wanted: &[&str]) -> Vec<(String, String)> {
        let wanted: Vec<&[u8]> = wanted.iter().map(|w| w.as_bytes()).collect();
        let mut out = Vec::new();
        for_each_member(json.as_bytes(), &wanted, |k, v| {
            out.push((
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ))
        });
        out
    }

    #[test]
    fn finds_top_level_members_and_skips_nested_ones() {
        let json = r#"{"id":"x","choices":[{"message":{"content":"a \"usage\": {} ]","model":"inner"}}],
            "model" : "gpt-4o", "usage":{"prompt_tokens":8,"completion_tokens":4}, "n": -1.5e3}"#;
        assert_eq!(
            members(json, &["model", "usage", "n"]),
            vec![
                ("model".into(), r#""gpt-4o""#.into()),
                (
                    "usage".into(),
                    r#"{"prompt_tokens":8,"completion_tokens":4}"#.into()
                ),
                ("n".into(), "-1.5e3".into()),
            ]
        );
    }

    #[test]
    fn escaped_quotes_and_backslashes_do_not_end_strings_early() {
        let json = r#"{"a":"\\","b":"x\"}{","model":"m"}"#;
        assert_eq!(
            members(json, &["model"]),
            vec![("model".into(), r#""m""#.into())]
        );
    }

    #[test]
    fn repeated_members_are_reported_in_order() {
        let json = r#"{"model":"a","model":"b"}"#;
        assert_eq!(members(json, &["model"]).len(), 2);
    }

    #[test]
    fn malformed_input_ends_the_scan_without_panicking() {
        for json in [
            "",
            "[]",
            "{",
            r#"{"model""#,
            r#"{"model":"#,
            r#"{"model":"unterminated"#,
            r#"{"a":[1,2"#,
            r#"{"a":"\"#,
            r#"{"a":1 "b":2}"#,
            r#"{"a":}"#,
            "{\"a\":\"\\",
        ] {
            let _ = members(json, &["model", "a", "b"]);
        }
        assert_eq!(
            members(r#"{"model":"m","a":[1,"#, &["model"]),
            vec![("model".into(), r#""m""#.into())]
        );
    }

    #[test]
    fn every_offset_and_length_is_scanned_alike() {
        // Word-at-a-time search has edges at every multiple of eight and at the memchr hand-over; move the
        // tricky bytes (quotes, escapes, brackets inside strings, nesting) across all of them.
        for pad in 0..48 {
            let filler = "x".repeat(pad);
            let tricky = format!("{filler}\\\"]}}{{[\\\\{filler}");
            let doc = serde_json::json!({
                "id": filler,
                "choices": [{"message": {"content": tricky, "model": "inner"}, "n": [[pad], {}]}],
                "model": format!("m-{pad}"),
                "usage": {"prompt_tokens": pad, "note": tricky},
            });
            let json = serde_json::to_string(&doc).expect("serialise");
            let found = members(&json, &["model", "usage", "choices"]);
            let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, ["choices", "model", "usage"], "pad {pad}: {json}");
            for (key, raw) in &found {
                let value: serde_json::Value = serde_json::from_str(raw).expect("a whole value");
                assert_eq!(value, doc[key.as_str()], "pad {pad}, {key}");
            }
        }
    }

    #[test]
    fn null_and_literals_are_values() {
        let json = r#"{"usage":null,"stream":true}"#;
        assert_eq!(
            members(json, &["usage", "stream"]),
            vec![
                ("usage".into(), "null".into()),
                ("stream".into(), "true".into())
            ]
        );
    }
}
