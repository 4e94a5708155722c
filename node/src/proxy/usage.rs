//! Token usage and GenAI timings, read from responses as they stream past (OTel GenAI metric names,
//! DESIGN §7). Non-streaming bodies are buffered up to a bound and parsed once at the end; SSE bodies are
//! scanned event by event, so `usage` in the final chunk is found without holding the stream.
//!
//! Parsing is best-effort by design: a body the tap cannot read changes nothing for the client.

use std::sync::Arc;
use std::time::Instant;

use metrics::Label;
use serde::Deserialize;

/// Largest non-streaming body the tap buffers to find `usage`.
const MAX_BUFFERED: usize = 1 << 20;

/// Metric labels of one request.
#[derive(Debug, Clone)]
pub struct GenAiLabels {
    /// `gen_ai_operation_name`: `chat`, `text_completion`, `embeddings`.
    pub operation: &'static str,
    /// `gen_ai_provider_name`: `openai`, `aws.bedrock`, `azure.ai.openai`, `anthropic`.
    pub provider: &'static str,
    /// `gen_ai_request_model`.
    pub request_model: String,
}

#[derive(Deserialize, Default, Debug, Clone, Copy, PartialEq, Eq)]
struct Usage {
    #[serde(default, alias = "input_tokens")]
    prompt_tokens: u64,
    #[serde(default, alias = "output_tokens")]
    completion_tokens: u64,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
}

/// Watches one response body.
pub struct UsageTap {
    labels: GenAiLabels,
    sse: bool,
    started: Instant,
    first_data: Option<Instant>,
    buf: Vec<u8>,
    overflowed: bool,
    usage: Option<Usage>,
    response_model: Option<String>,
}

impl UsageTap {
    /// A tap for a response that started (request received) at `started`.
    pub fn new(labels: GenAiLabels, sse: bool, started: Instant) -> Self {
        UsageTap {
            labels,
            sse,
            started,
            first_data: None,
            buf: Vec::new(),
            overflowed: false,
            usage: None,
            response_model: None,
        }
    }

    /// Feeds the next body bytes, received at `now`.
    pub fn on_data(&mut self, data: &[u8], now: Instant) {
        if data.is_empty() {
            return;
        }
        self.first_data.get_or_insert(now);
        if self.overflowed {
            return;
        }
        self.buf.extend_from_slice(data);
        if self.sse {
            // Consume complete lines; keep the partial tail for the next frame.
            while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                self.on_sse_line(&line);
            }
        }
        if self.buf.len() > MAX_BUFFERED {
            self.overflowed = true;
            self.buf = Vec::new();
        }
    }

    fn on_sse_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(payload) = line.strip_prefix(b"data:") else {
            return;
        };
        let payload = payload.strip_prefix(b" ").unwrap_or(payload);
        if payload == b"[DONE]" {
            return;
        }
        self.absorb(payload);
    }

    fn absorb(&mut self, json: &[u8]) {
        if let Ok(env) = serde_json::from_slice::<Envelope>(json) {
            if env.model.is_some() {
                self.response_model = env.model;
            }
            if env.usage.is_some() {
                self.usage = env.usage;
            }
        }
    }

    /// The body ended cleanly at `now`: parse what is buffered and record the metrics.
    pub fn finish(mut self, now: Instant) {
        if !self.sse && !self.overflowed {
            let buf = std::mem::take(&mut self.buf);
            self.absorb(&buf);
        }
        let l = &self.labels;
        // Label values are shared (`Arc<str>`) or static: every metric below clones them for free,
        // instead of allocating a String per label per metric.
        let request_model: Arc<str> = Arc::from(l.request_model.as_str());
        let response_model: Arc<str> = match self.response_model.take() {
            Some(m) if m != l.request_model => Arc::from(m),
            _ => request_model.clone(),
        };
        let labels = vec![
            Label::from_static_parts("gen_ai_operation_name", l.operation),
            Label::from_static_parts("gen_ai_provider_name", l.provider),
            Label::new("gen_ai_request_model", request_model),
            Label::new("gen_ai_response_model", response_model),
        ];
        let with = |extra: Label| {
            let mut v = labels.clone();
            v.push(extra);
            v
        };
        if let Some(u) = self.usage {
            metrics::histogram!(
                "gen_ai_client_token_usage",
                with(Label::from_static_parts("gen_ai_token_type", "input"))
            )
            .record(u.prompt_tokens as f64);
            metrics::histogram!(
                "gen_ai_client_token_usage",
                with(Label::from_static_parts("gen_ai_token_type", "output"))
            )
            .record(u.completion_tokens as f64);
            if self.sse && u.completion_tokens > 1 {
                if let Some(first) = self.first_data {
                    let per_token =
                        now.duration_since(first).as_secs_f64() / (u.completion_tokens - 1) as f64;
                    metrics::histogram!(
                        "gen_ai_server_time_per_output_token_seconds",
                        labels.clone()
                    )
                    .record(per_token);
                }
            }
        }
        if self.sse {
            if let Some(first) = self.first_data {
                metrics::histogram!("gen_ai_server_time_to_first_token_seconds", labels.clone())
                    .record(first.duration_since(self.started).as_secs_f64());
            }
        }
        metrics::histogram!("gen_ai_server_request_duration_seconds", labels)
            .record(now.duration_since(self.started).as_secs_f64());
    }

    #[cfg(test)]
    fn seen(&self) -> (Option<Usage>, Option<String>) {
        (self.usage, self.response_model.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> GenAiLabels {
        GenAiLabels {
            operation: "chat",
            provider: "openai",
            request_model: "m".into(),
        }
    }

    #[test]
    fn sse_usage_in_the_final_chunk_is_found_across_frame_boundaries() {
        let now = Instant::now();
        let mut tap = UsageTap::new(labels(), true, now);
        let stream = "data: {\"model\":\"m-2024\",\"choices\":[]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\ndata: [DONE]\n\n";
        let (a, b) = stream.as_bytes().split_at(60);
        tap.on_data(a, now);
        tap.on_data(b, now);
        let (usage, model) = tap.seen();
        assert_eq!(
            usage,
            Some(Usage {
                prompt_tokens: 7,
                completion_tokens: 3
            })
        );
        assert_eq!(model.as_deref(), Some("m-2024"));
    }

    #[test]
    fn null_usage_chunks_do_not_erase_a_seen_usage() {
        let now = Instant::now();
        let mut tap = UsageTap::new(labels(), true, now);
        tap.on_data(
            b"data: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n",
            now,
        );
        tap.on_data(b"data: {\"usage\":null}\n", now);
        assert_eq!(
            tap.seen().0,
            Some(Usage {
                prompt_tokens: 1,
                completion_tokens: 2
            })
        );
    }

    #[test]
    fn anthropic_style_names_are_accepted() {
        let now = Instant::now();
        let mut tap = UsageTap::new(labels(), true, now);
        tap.on_data(
            b"data: {\"usage\":{\"input_tokens\":4,\"output_tokens\":5}}\n",
            now,
        );
        assert_eq!(
            tap.seen().0,
            Some(Usage {
                prompt_tokens: 4,
                completion_tokens: 5
            })
        );
    }

    #[test]
    fn oversized_plain_bodies_are_dropped_not_buffered() {
        let now = Instant::now();
        let mut tap = UsageTap::new(labels(), false, now);
        tap.on_data(&vec![b' '; MAX_BUFFERED + 1], now);
        assert!(tap.buf.is_empty() && tap.overflowed);
    }
}
