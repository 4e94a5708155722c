//! Rule matching: the first rule, in route order then rule order, whose match holds wins. Pure.
//!
//! A rule holds when any one of its `matches[]` holds; a match holds when every header condition holds
//! (Gateway API semantics). `x-ai-eg-model` is set from the body's `model` before matching, overwriting any
//! client value, so model routing cannot be spoofed by a header.

use http::HeaderMap;

use crate::config::model::{HeaderMatch, HeaderMatchValue, RuleMatch};

/// The header the gateway sets from the request body's `model`.
pub const MODEL_HEADER: &str = "x-ai-eg-model";

/// [`MODEL_HEADER`] as a header name, validated at compile time (`from_static` at run time would check
/// it against the standard names on every request).
pub const MODEL_HEADER_NAME: http::HeaderName = http::HeaderName::from_static(MODEL_HEADER);

/// The request facts matching looks at.
pub struct MatchInput<'a> {
    /// The client's headers (the model header in it is ignored).
    pub headers: &'a HeaderMap,
    /// The body's `model`.
    pub model: &'a str,
}

impl MatchInput<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        if name == MODEL_HEADER {
            return Some(self.model);
        }
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn header_holds(m: &HeaderMatch, input: &MatchInput<'_>) -> bool {
    let Some(value) = input.header(&m.name) else {
        return false;
    };
    match &m.value {
        HeaderMatchValue::Exact(want) => value == want,
        HeaderMatchValue::RegularExpression(re) => re.is_match(value),
    }
}

/// Whether a rule with these `matches` applies (an empty list matches every request).
pub fn rule_holds(matches: &[RuleMatch], input: &MatchInput<'_>) -> bool {
    matches.is_empty()
        || matches
            .iter()
            .any(|m| m.headers.iter().all(|h| header_holds(h, input)))
}

/// The models a rule serves by exact model match, for `GET /v1/models`.
pub fn exact_models(matches: &[RuleMatch]) -> impl Iterator<Item = &str> {
    matches.iter().flat_map(|m| {
        m.headers.iter().filter_map(|h| match &h.value {
            HeaderMatchValue::Exact(v) if h.name == MODEL_HEADER => Some(v.as_str()),
            _ => None,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn exact(name: &str, v: &str) -> HeaderMatch {
        HeaderMatch {
            name: name.into(),
            value: HeaderMatchValue::Exact(v.into()),
        }
    }

    fn regex(name: &str, re: &str) -> HeaderMatch {
        HeaderMatch {
            name: name.into(),
            value: HeaderMatchValue::RegularExpression(
                regex::Regex::new(&format!("^(?:{re})$")).expect("test regex"),
            ),
        }
    }

    #[test]
    fn table() {
        let mut client_spoof = HeaderMap::new();
        client_spoof.insert(MODEL_HEADER, HeaderValue::from_static("gpt-4o"));
        client_spoof.insert("x-tenant", HeaderValue::from_static("blue"));
        let rows: Vec<(&str, Vec<RuleMatch>, &str, bool)> = vec![
            (
                "empty matches hold for every request",
                vec![],
                "anything",
                true,
            ),
            (
                "exact model match",
                vec![RuleMatch {
                    headers: vec![exact(MODEL_HEADER, "llama")],
                }],
                "llama",
                true,
            ),
            (
                "exact model mismatch",
                vec![RuleMatch {
                    headers: vec![exact(MODEL_HEADER, "llama")],
                }],
                "llama2",
                false,
            ),
            (
                "client model header is ignored: the body wins",
                vec![RuleMatch {
                    headers: vec![exact(MODEL_HEADER, "gpt-4o")],
                }],
                "llama",
                false,
            ),
            (
                "regex must match the whole value",
                vec![RuleMatch {
                    headers: vec![regex(MODEL_HEADER, "gpt-4.*")],
                }],
                "gpt-4o-mini",
                true,
            ),
            (
                "regex anchored",
                vec![RuleMatch {
                    headers: vec![regex(MODEL_HEADER, "gpt-4")],
                }],
                "my-gpt-4",
                false,
            ),
            (
                "all headers of one match must hold",
                vec![RuleMatch {
                    headers: vec![exact(MODEL_HEADER, "llama"), exact("x-tenant", "red")],
                }],
                "llama",
                false,
            ),
            (
                "any match of the list may hold",
                vec![
                    RuleMatch {
                        headers: vec![exact("x-tenant", "red")],
                    },
                    RuleMatch {
                        headers: vec![exact("x-tenant", "blue")],
                    },
                ],
                "llama",
                true,
            ),
            (
                "absent header does not hold",
                vec![RuleMatch {
                    headers: vec![exact("x-absent", "1")],
                }],
                "llama",
                false,
            ),
        ];
        for (name, matches, model, want) in rows {
            let input = MatchInput {
                headers: &client_spoof,
                model,
            };
            assert_eq!(rule_holds(&matches, &input), want, "{name}");
        }
    }

    #[test]
    fn exact_models_lists_only_model_header_exact_values() {
        let m = vec![RuleMatch {
            headers: vec![
                exact(MODEL_HEADER, "a"),
                exact("x-tenant", "b"),
                regex(MODEL_HEADER, "c.*"),
            ],
        }];
        assert_eq!(exact_models(&m).collect::<Vec<_>>(), vec!["a"]);
    }
}
