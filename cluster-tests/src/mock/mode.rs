//! Failure modes of the mock provider.
//!
//! A [`Mode`] says how the data port answers the *next* request. It exists as its own module because the
//! same value is parsed from the command line (`--mode "fail-after 3 status 500"`), from the control API
//! (`PUT /mode` with JSON) and evaluated per request by the data port; keeping the grammar and the
//! counting rule in one place keeps those three in agreement.
//!
//! JSON shapes (the `mode` field is the tag):
//!
//! ```json
//! {"mode":"ok"}
//! {"mode":"status","status":503}
//! {"mode":"status","status":429,"retry_after":2}          // Retry-After: 2
//! {"mode":"status","status":503,"retry_after":"Wed, 21 Oct 2015 07:28:00 GMT"}
//! {"mode":"status","status":503,"headers":{"x-envoy-overloaded":"true"}}
//! {"mode":"refuse"}
//! {"mode":"reset"}
//! {"mode":"hang"}
//! {"mode":"delay","ms":250}
//! {"mode":"stall","after_chunks":2}
//! {"mode":"cut","after_chunks":2}
//! {"mode":"stream_error","after_chunks":1,"status":529}  // then the format's in-stream error event
//! {"mode":"truncate","after_chunks":2}                  // then a clean end without the end marker
//! {"mode":"fail_after","k":3,"then":{"mode":"status","status":500}}
//! ```
//!
//! Command-line grammar (words separated by spaces, or the JSON above when it starts with `{`):
//! `ok`, `status N [RETRY_AFTER_SECS]`, `refuse`, `reset`, `hang`, `delay MS`, `stall K`, `cut K`,
//! `stream-error K N`, `truncate K`, `fail-after K MODE...`.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// The value of a `Retry-After` header: delta seconds or a raw string (e.g. an HTTP date).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RetryAfter {
    /// `Retry-After: <seconds>`.
    Seconds(u64),
    /// `Retry-After: <verbatim value>`.
    Raw(String),
}

impl RetryAfter {
    /// The header value.
    pub fn header_value(&self) -> String {
        match self {
            RetryAfter::Seconds(s) => s.to_string(),
            RetryAfter::Raw(s) => s.clone(),
        }
    }
}

/// How the data port treats a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Mode {
    /// Answer normally.
    Ok,
    /// Answer with this HTTP status and an OpenAI-style error body.
    Status {
        /// The status code (100..=999 is accepted by the HTTP layer; tests use 4xx/5xx).
        status: u16,
        /// Optional `Retry-After` header.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<RetryAfter>,
        /// Extra response headers, e.g. `x-envoy-overloaded` as an Envoy in front of a provider adds.
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        headers: std::collections::BTreeMap<String, String>,
    },
    /// Close the data listener so that connects are refused; idle connections are closed too.
    Refuse,
    /// Read the request, then close the TCP connection with RST.
    Reset,
    /// Read the request and never answer.
    Hang,
    /// Answer normally after `ms` milliseconds.
    Delay {
        /// Delay before the response head, in milliseconds.
        ms: u64,
    },
    /// Send the response head and the first `after_chunks` body chunks, then stall forever.
    Stall {
        /// Number of body chunks (SSE events) sent before stalling.
        after_chunks: usize,
    },
    /// Send the response head and the first `after_chunks` body chunks, then abort the connection.
    Cut {
        /// Number of body chunks (SSE events) sent before cutting.
        after_chunks: usize,
    },
    /// Streams: send the head and the first `after_chunks` chunks, then the provider's own in-stream error
    /// event for `status` (OpenAI error chunk, Anthropic `error` event, Bedrock exception message), then
    /// end. Non-streamed answers get the error reply for `status`.
    StreamError {
        /// Number of body chunks sent before the error event.
        after_chunks: usize,
        /// The status the error stands for (429 throttled, 503/529 overloaded, 500 server error).
        status: u16,
    },
    /// Send the head and the first `after_chunks` chunks, then end the body cleanly, without the stream's
    /// end marker (`[DONE]`, `message_stop`, `messageStop`).
    Truncate {
        /// Number of body chunks sent before the end.
        after_chunks: usize,
    },
    /// The first `k` requests are answered normally, the following ones per `then`.
    FailAfter {
        /// Requests answered normally, counted from the moment this mode was set.
        k: u64,
        /// The mode applied after `k` requests.
        then: Box<Mode>,
    },
}

impl Mode {
    /// The mode that applies to the request with zero-based index `served` since this mode was set.
    /// `FailAfter` is resolved (recursively) so the result is never `FailAfter`.
    pub fn effective(&self, served: u64) -> Mode {
        match self {
            Mode::FailAfter { k, then } => {
                if served < *k {
                    Mode::Ok
                } else {
                    then.effective(served - k)
                }
            }
            other => other.clone(),
        }
    }

    /// Parses the command-line form (or JSON when the text starts with `{`).
    pub fn parse(text: &str) -> anyhow::Result<Mode> {
        let text = text.trim();
        if text.starts_with('{') {
            return serde_json::from_str(text).context("mode JSON");
        }
        let words: Vec<&str> = text.split_whitespace().collect();
        let (mode, rest) = Self::parse_words(&words)?;
        if !rest.is_empty() {
            bail!("unexpected trailing words in mode {text:?}: {rest:?}");
        }
        Ok(mode)
    }

    fn parse_words<'a>(words: &'a [&'a str]) -> anyhow::Result<(Mode, &'a [&'a str])> {
        fn num<T: std::str::FromStr>(words: &[&str], i: usize, what: &str) -> anyhow::Result<T> {
            let w = words.get(i).with_context(|| format!("missing {what}"))?;
            w.parse().ok().with_context(|| format!("bad {what}: {w:?}"))
        }
        let Some(head) = words.first() else {
            bail!("empty mode");
        };
        Ok(match head.to_ascii_lowercase().replace('_', "-").as_str() {
            "ok" => (Mode::Ok, &words[1..]),
            "refuse" => (Mode::Refuse, &words[1..]),
            "reset" => (Mode::Reset, &words[1..]),
            "hang" => (Mode::Hang, &words[1..]),
            "status" => {
                let status: u16 = num(words, 1, "status code")?;
                match words.get(2) {
                    Some(w) if w.parse::<u64>().is_ok() => (
                        Mode::Status {
                            status,
                            retry_after: Some(RetryAfter::Seconds(num(words, 2, "retry-after")?)),
                            headers: Default::default(),
                        },
                        &words[3..],
                    ),
                    _ => (
                        Mode::Status {
                            status,
                            retry_after: None,
                            headers: Default::default(),
                        },
                        &words[2..],
                    ),
                }
            }
            "delay" => (
                Mode::Delay {
                    ms: num(words, 1, "delay ms")?,
                },
                &words[2..],
            ),
            "stall" => (
                Mode::Stall {
                    after_chunks: num(words, 1, "chunk count")?,
                },
                &words[2..],
            ),
            "cut" => (
                Mode::Cut {
                    after_chunks: num(words, 1, "chunk count")?,
                },
                &words[2..],
            ),
            "stream-error" => (
                Mode::StreamError {
                    after_chunks: num(words, 1, "chunk count")?,
                    status: num(words, 2, "status code")?,
                },
                &words[3..],
            ),
            "truncate" => (
                Mode::Truncate {
                    after_chunks: num(words, 1, "chunk count")?,
                },
                &words[2..],
            ),
            "fail-after" => {
                let k = num(words, 1, "request count")?;
                let (then, rest) = Self::parse_words(&words[2..])?;
                (
                    Mode::FailAfter {
                        k,
                        then: Box::new(then),
                    },
                    rest,
                )
            }
            other => bail!("unknown mode {other:?}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_words_and_json_alike() {
        let words = Mode::parse("fail-after 3 status 503 2").expect("parse");
        let json = Mode::parse(
            r#"{"mode":"fail_after","k":3,"then":{"mode":"status","status":503,"retry_after":2}}"#,
        )
        .expect("parse");
        assert_eq!(words, json);
        assert_eq!(
            Mode::parse("delay 20").expect("parse"),
            Mode::Delay { ms: 20 }
        );
        assert_eq!(
            Mode::parse("stream-error 1 529").expect("parse"),
            Mode::parse(r#"{"mode":"stream_error","after_chunks":1,"status":529}"#).expect("parse")
        );
        assert_eq!(
            Mode::parse("truncate 2").expect("parse"),
            Mode::Truncate { after_chunks: 2 }
        );
        assert!(Mode::parse("status").is_err());
        assert!(Mode::parse("ok extra").is_err());
        assert!(Mode::parse("bogus").is_err());
    }

    #[test]
    fn fail_after_counts_then_switches() {
        let m = Mode::parse("fail-after 2 fail-after 1 reset").expect("parse");
        assert_eq!(m.effective(0), Mode::Ok);
        assert_eq!(m.effective(1), Mode::Ok);
        assert_eq!(m.effective(2), Mode::Ok);
        assert_eq!(m.effective(3), Mode::Reset);
        assert_eq!(m.effective(99), Mode::Reset);
    }
}
