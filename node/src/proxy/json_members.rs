//! The top-level members of a JSON object, found without parsing the values nobody asked for.
//!
//! The usage tap reads two members (`model`, `usage`) of every answer; a full parse of the answer spent
//! most of its time validating `choices` only to throw them away (~11 % of the request path's
//! instructions, docs/BENCHMARKS.md). Values not asked for are skipped by matching brackets outside
//! strings; the members asked for are handed over as raw slices to parse. Best-effort, like
//! the tap: malformed input ends the scan, and what was found before stays found.
//!
//! [`find_members`] does not even skip what it need not. Answers put `usage` after `choices` (the content,
//! nearly all the bytes) and name the model either before them (OpenAI's order) or after (alphabetical
//! serialisers). So it reads members from the end — past short values, and until it has found something
//! at least up to the next object or array — and then from the start up to where that stopped. Either
//! way `choices` is never looked at.

/// Calls `member(key, raw_value)` for each top-level member of the object in `json` whose key (as
/// written, unescaped keys only) is one of `wanted`, in document order. Stops at the first syntax it
/// cannot follow.
pub fn for_each_member<'a>(
    json: &'a [u8],
    wanted: &[&[u8]],
    mut member: impl FnMut(&'a [u8], &'a [u8]),
) {
    scan_forward(json, json.len(), |key, value| {
        if wanted.contains(&key) {
            member(key, value);
        }
        true
    });
}

/// The raw values of the top-level members named `wanted` (as written, unescaped names only) of the
/// object in `json`, `None` for those it does not have. Members are read from the end until all are
/// found or, once one is, until the next object or array value; then from the start until all are found or
/// the two scans meet. Every member is visited at most once. A name given twice may yield either value (JSON
/// leaves duplicate names undefined). Malformed input gives what could be read before the fault.
pub fn find_members<'a, const N: usize>(
    json: &'a [u8],
    wanted: [&[u8]; N],
) -> [Option<&'a [u8]>; N] {
    let mut found = [None; N];
    let limit = match scan_backward(json, &wanted, &mut found) {
        Backward::Complete => return found,
        Backward::StoppedAt(key_start) => key_start,
        Backward::Failed => json.len(),
    };
    if found.iter().all(Option::is_some) {
        return found;
    }
    scan_forward(json, limit, |key, value| {
        fill(&wanted, &mut found, key, value);
        found.iter().any(Option::is_none)
    });
    found
}

/// Puts `value` in the slot of `found` for `key`, if `key` is wanted and its slot still empty; whether it
/// did.
fn fill<'a>(wanted: &[&[u8]], found: &mut [Option<&'a [u8]>], key: &[u8], value: &'a [u8]) -> bool {
    let Some(i) = wanted.iter().position(|w| *w == key) else {
        return false;
    };
    match found.get_mut(i) {
        Some(slot @ None) => {
            *slot = Some(value);
            true
        }
        _ => false,
    }
}

/// How far the backward scan got.
enum Backward {
    /// It read every member.
    Complete,
    /// It stopped after the member whose name starts at this index (a `"`); the members before it are
    /// left to the forward scan.
    StoppedAt(usize),
    /// The end of `json` is not the end of an object it can read backwards.
    Failed,
}

/// Reads members from the last, filling `found`, until all of `wanted` are found, or one is and the next
/// value is an object or an array.
fn scan_backward<'a>(json: &'a [u8], wanted: &[&[u8]], found: &mut [Option<&'a [u8]>]) -> Backward {
    let mut end = skip_ws_back(json, json.len());
    if end == 0 || json[end - 1] != b'}' {
        return Backward::Failed;
    }
    end -= 1;
    let mut found_any = false;
    let mut last_key_start = None;
    loop {
        end = skip_ws_back(json, end);
        let last = match end.checked_sub(1).map(|i| json[i]) {
            Some(b'{') => return Backward::Complete, // `{}`
            Some(b) => b,
            None => return Backward::Failed,
        };
        // Once something is found, a container is where the forward scan takes over: it may be
        // `choices`, nearly all of the answer, and the forward scan may not need to reach it.
        if let (true, Some(at), b'}' | b']') = (found_any, last_key_start, last) {
            return Backward::StoppedAt(at);
        }
        let Some(member) = member_before(json, end) else {
            return Backward::Failed;
        };
        if fill(wanted, found, member.key, member.value) {
            found_any = true;
            if found.iter().all(Option::is_some) {
                return Backward::StoppedAt(member.key_start);
            }
        }
        last_key_start = Some(member.key_start);
        let before = skip_ws_back(json, member.key_start);
        match before.checked_sub(1).map(|i| json[i]) {
            Some(b'{') => return Backward::Complete,
            Some(b',') => end = before - 1,
            _ => return Backward::Failed,
        }
    }
}

/// One member read backwards.
struct MemberBack<'a> {
    key: &'a [u8],
    value: &'a [u8],
    /// Index of the `"` that opens the name.
    key_start: usize,
}

/// The member whose value ends just before `end` (exclusive, trailing whitespace already skipped).
fn member_before(json: &[u8], end: usize) -> Option<MemberBack<'_>> {
    let value_start = value_start(json, end)?;
    let colon = skip_ws_back(json, value_start).checked_sub(1)?;
    if json[colon] != b':' {
        return None;
    }
    let key_end = skip_ws_back(json, colon);
    if key_end == 0 || json[key_end - 1] != b'"' {
        return None;
    }
    let key_start = string_start(json, key_end)?;
    Some(MemberBack {
        key: json.get(key_start + 1..key_end - 1)?,
        value: &json[value_start..end],
        key_start,
    })
}

/// Calls `member(key, raw_value)` for the top-level members whose name starts before `limit`, from the
/// first, for as long as it returns true.
fn scan_forward<'a>(
    json: &'a [u8],
    limit: usize,
    mut member: impl FnMut(&'a [u8], &'a [u8]) -> bool,
) {
    let mut at = skip_ws(json, 0);
    if json.get(at) != Some(&b'{') {
        return;
    }
    at += 1;
    loop {
        at = skip_ws(json, at);
        if at >= limit || json.get(at) != Some(&b'"') {
            return; // `}` ends the object; anything else is not JSON we follow
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
        if !member(key, &json[start..end]) {
            return;
        }
        at = skip_ws(json, end);
        match json.get(at) {
            Some(b',') => at += 1,
            _ => return,
        }
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// `end` moved back over whitespace (`end` is exclusive).
fn skip_ws_back(json: &[u8], mut end: usize) -> usize {
    while end > 0 && is_ws(json[end - 1]) {
        end -= 1;
    }
    end
}

/// `json[end - 1]` closes a string: the index of the `"` that opens it, i.e. the nearest quote before it
/// not escaped by an odd run of backslashes.
fn string_start(json: &[u8], end: usize) -> Option<usize> {
    let mut i = end.checked_sub(1)?;
    loop {
        let quote = memchr::memrchr(b'"', &json[..i])?;
        let backslashes = json[..quote]
            .iter()
            .rev()
            .take_while(|b| **b == b'\\')
            .count();
        if backslashes % 2 == 0 {
            return Some(quote);
        }
        i = quote;
    }
}

/// The index where the value that ends just before `end` starts.
fn value_start(json: &[u8], end: usize) -> Option<usize> {
    match *json.get(end.checked_sub(1)?)? {
        b'"' => string_start(json, end),
        b'}' | b']' => {
            let mut depth = 0usize;
            let mut i = end;
            loop {
                i = json[..i]
                    .iter()
                    .rposition(|b| matches!(b, b'"' | b'{' | b'}' | b'[' | b']'))?;
                match json[i] {
                    b'"' => i = string_start(json, i + 1)?,
                    b'}' | b']' => depth += 1,
                    _ => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(i);
                        }
                    }
                }
            }
        }
        _ => {
            // A number, `true`, `false` or `null`: back to the `:` (or whitespace) before it.
            let len = json[..end]
                .iter()
                .rev()
                .position(|b| *b == b':' || is_ws(*b))?;
            (len > 0).then_some(end - len)
        }
    }
}

fn skip_ws(json: &[u8], mut at: usize) -> usize {
    while json.get(at).is_some_and(|b| is_ws(*b)) {
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
                .position(|b| matches!(b, b',' | b'}' | b']') || is_ws(*b))
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

    /// `pad` bytes of filler, and a string value with an escaped quote, brackets and an escaped backslash
    /// between two fillers.
    fn tricky(pad: usize) -> (String, String) {
        let filler = "x".repeat(pad);
        let tricky = format!("{filler}\\\"]}}{{[\\\\{filler}");
        (filler, tricky)
    }

    #[test]
    fn every_offset_and_length_is_scanned_alike() {
        // Vectorised searches have edges at every multiple of their width; move the tricky bytes
        // (quotes, escapes, brackets inside strings, nesting) across them.
        for pad in 0..48 {
            let (filler, tricky) = tricky(pad);
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

    fn find2<'a>(json: &'a str, a: &str, b: &str) -> [Option<&'a str>; 2] {
        find_members(json.as_bytes(), [a.as_bytes(), b.as_bytes()])
            .map(|v| v.map(|v| std::str::from_utf8(v).expect("utf-8")))
    }

    #[test]
    fn find_members_reads_both_ends_of_an_openai_answer() {
        let json = r#"{"id":"c-1","object":"chat.completion","created":1,"model":"gpt-4o",
            "choices":[{"message":{"content":"x","model":"inner","usage":{}}}],
            "usage":{"prompt_tokens":8},"service_tier":"default","system_fingerprint":"fp"}"#;
        assert_eq!(
            find2(json, "model", "usage"),
            [Some(r#""gpt-4o""#), Some(r#"{"prompt_tokens":8}"#)]
        );
    }

    #[test]
    fn find_members_never_reads_what_lies_between() {
        // The bytes between the members it needs are not JSON at all: had either scan looked at them,
        // it would have stopped there and found nothing.
        let json = r#"{"model":"m","choices":[ "\\" ]]] garbage, "usage":{"n":1},"x":2}"#;
        assert_eq!(
            find2(json, "model", "usage"),
            [Some(r#""m""#), Some(r#"{"n":1}"#)]
        );
    }

    #[test]
    fn find_members_never_reads_choices_of_an_alphabetical_answer() {
        // Serialisers that sort keys put `choices` first and both wanted members behind it.
        let json = r#"{"choices":[ "\\" ]]] garbage,"created":1,"id":"x","model":"m","object":"o","usage":{"n":1}}"#;
        assert_eq!(
            find2(json, "model", "usage"),
            [Some(r#""m""#), Some(r#"{"n":1}"#)]
        );
    }

    #[test]
    fn find_members_in_any_order_and_when_absent() {
        let cases: [(&str, [Option<&str>; 2]); 7] = [
            (
                r#"{"usage":null,"model":"m"}"#,
                [Some(r#""m""#), Some("null")],
            ),
            (
                r#"{"model":"m","usage":{"a":[1,{"b":"}"}]}}"#,
                [Some(r#""m""#), Some(r#"{"a":[1,{"b":"}"}]}"#)],
            ),
            (r#"{"id":"x","choices":[]}"#, [None, None]),
            (
                r#"{"id":"x","usage":true,"n":-1.5e3}"#,
                [None, Some("true")],
            ),
            (
                r#" { "model" : "a\"b\\" , "usage" : 7 } "#,
                [Some(r#""a\"b\\""#), Some("7")],
            ),
            ("{}", [None, None]),
            // A nested decoy at the end must not count as the top-level member.
            (
                r#"{"model":"m","tail":{"usage":1}}"#,
                [Some(r#""m""#), None],
            ),
        ];
        for (json, want) in cases {
            assert_eq!(find2(json, "model", "usage"), want, "{json}");
        }
    }

    #[test]
    fn find_members_on_malformed_input_keeps_what_it_read() {
        // Truncated: the backward scan cannot start, the forward one reads up to the fault.
        assert_eq!(
            find2(
                r#"{"model":"m","usage":{"prompt_tokens":8"#,
                "model",
                "usage"
            ),
            [Some(r#""m""#), None]
        );
        for json in [
            "",
            "}",
            "{",
            "[]",
            r#"{"a":}"#,
            r#"{,}"#,
            r#"{"a" 1}"#,
            r#"{"a":"\"}"#,
            "\"}",
            r#"{"a":1,}"#,
        ] {
            let _ = find2(json, "model", "a");
        }
    }

    #[test]
    fn find_members_agrees_with_serde_at_every_offset() {
        for pad in 0..40 {
            let (_, tricky) = tricky(pad);
            let doc = serde_json::json!({
                "id": tricky,
                "model": format!("m-{pad}"),
                "choices": [{"message": {"content": tricky, "usage": "no"}, "n": [[pad], {}]}],
                "usage": {"prompt_tokens": pad, "note": tricky},
                "system_fingerprint": tricky,
            });
            let json = serde_json::to_string(&doc).expect("serialise");
            let [model, usage] = find_members(json.as_bytes(), [b"model", b"usage"]);
            for (name, raw) in [("model", model), ("usage", usage)] {
                let raw = raw.unwrap_or_else(|| panic!("pad {pad}: no {name} in {json}"));
                let value: serde_json::Value = serde_json::from_slice(raw).expect("a whole value");
                assert_eq!(value, doc[name], "pad {pad}, {name}");
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
