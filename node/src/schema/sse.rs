//! An incremental Server-Sent Events parser, for providers that stream SSE in their own event vocabulary
//! (Anthropic). Bytes arrive in arbitrary frames; events come out whole.
//!
//! Implements the WHATWG HTML "Server-sent events" parsing rules that matter here: lines end with CRLF,
//! LF or CR; a blank line dispatches the event; `field: value` strips one space after the colon; several
//! `data` lines join with `\n`; lines starting with `:` are comments; an event with no `data` is dropped.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// `event:` (empty when absent).
    pub event: String,
    /// The joined `data:` lines.
    pub data: String,
}

/// Largest pending (undispatched) event in bytes; beyond it the stream is malformed.
pub const MAX_EVENT_BYTES: usize = 4 << 20;

/// Why the stream could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// One event (or line) grew past [`MAX_EVENT_BYTES`].
    #[error("SSE event larger than {MAX_EVENT_BYTES} bytes")]
    TooLarge,
}

/// Parser state between frames.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous byte was CR: a following LF belongs to the same line end.
    after_cr: bool,
    event: String,
    data: Option<String>,
    pending: usize,
}

impl SseParser {
    /// A new parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the events completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(ev) = self.on_line(&line) {
                        out.push(ev);
                    }
                }
                _ => {
                    self.line.push(b);
                    self.pending += 1;
                    if self.pending > MAX_EVENT_BYTES {
                        return Err(SseError::TooLarge);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Whether bytes of an unfinished event are pending (the stream ended mid-event).
    pub fn has_partial(&self) -> bool {
        !self.line.is_empty() || self.data.is_some()
    }

    fn on_line(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            self.pending = 0;
            let event = std::mem::take(&mut self.event);
            return self.data.take().map(|data| SseEvent { event, data });
        }
        if line.first() == Some(&b':') {
            return None;
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn events_are_parsed_across_any_split() {
        let stream = b"event: a\ndata: {\"x\":1}\n\n: comment\r\nevent:b\r\ndata: l1\r\ndata:l2\r\n\r\ndata: c\r\r";
        let want = vec![ev("a", "{\"x\":1}"), ev("b", "l1\nl2"), ev("", "c")];
        for split in 0..stream.len() {
            let mut p = SseParser::new();
            let mut got = p.push(&stream[..split]).expect("push");
            got.extend(p.push(&stream[split..]).expect("push"));
            assert_eq!(got, want, "split at {split}");
            assert!(!p.has_partial());
        }
    }

    #[test]
    fn events_without_data_are_dropped_and_partials_reported() {
        let mut p = SseParser::new();
        assert!(p.push(b"event: ping\n\n").expect("push").is_empty());
        assert!(p.push(b"data: half").expect("push").is_empty());
        assert!(p.has_partial());
    }

    #[test]
    fn oversized_lines_are_refused() {
        let mut p = SseParser::new();
        let big = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert_eq!(p.push(&big), Err(SseError::TooLarge));
    }
}
