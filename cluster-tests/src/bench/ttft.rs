//! First-token latency through the gateway (`bench --ttft N`): what holding a stream until its first
//! content (DESIGN §3.6) costs a client. Sequential streamed requests, one at a time, direct to the mock and
//! through Switchyard; for each, the time from sending to the first body byte and to the first chunk with
//! content. Compare binaries with `--switchyard PATH` (the figures in docs/BENCHMARKS.md are a before/after
//! of the change).
//!
//! Not `oha`: it reports whole-request times, and the question here is the first chunk's.

use std::time::Instant;

use anyhow::Context;
use serde_json::json;

use super::failover::percentile;
use super::targets::{single_backend_config, start_mock, BenchNode};
use super::MODEL;
use crate::harness::http_post_json_stream;

/// Percentiles (ms) of one target.
#[derive(Debug, Clone)]
pub struct TtftResult {
    /// `direct` or `switchyard`.
    pub target: String,
    /// The mock's pause between chunks (ms).
    pub chunk_delay_ms: u64,
    /// Requests measured.
    pub requests: usize,
    /// p50 / p99 to the first body byte.
    pub first_byte_ms: (f64, f64),
    /// p50 / p99 to the first chunk with content.
    pub first_content_ms: (f64, f64),
}

impl TtftResult {
    /// One-line report.
    pub fn line(&self) -> String {
        format!(
            "ttft {:<10} chunk delay {:>3} ms  n {}  first byte p50 {:.3} p99 {:.3} ms  first content p50 {:.3} p99 {:.3} ms",
            self.target,
            self.chunk_delay_ms,
            self.requests,
            self.first_byte_ms.0,
            self.first_byte_ms.1,
            self.first_content_ms.0,
            self.first_content_ms.1
        )
    }
}

/// Measures `n` requests against `url` (after `n / 10` warm-up requests).
async fn measure(url: &str, n: usize) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let body = json!({
        "model": MODEL,
        "stream": true,
        "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
    });
    let (mut first_byte, mut first_content) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n + n / 10 {
        let start = Instant::now();
        let mut resp = http_post_json_stream(url, &body).await?;
        anyhow::ensure!(resp.status == 200, "status {}", resp.status);
        let (mut byte, mut content) = (None, None);
        let mut text = String::new();
        while let Some(chunk) = resp.next_chunk().await {
            let chunk = chunk?;
            byte.get_or_insert(chunk.at);
            text.push_str(&String::from_utf8_lossy(&chunk.data));
            if content.is_none() && text.contains("\"content\":\"hello") {
                content = Some(chunk.at);
            }
        }
        anyhow::ensure!(text.contains("[DONE]"), "incomplete stream: {text}");
        if i >= n / 10 {
            let ms = |t: Option<Instant>| t.map_or(f64::NAN, |t| (t - start).as_secs_f64() * 1e3);
            first_byte.push(ms(byte));
            first_content.push(ms(content));
        }
    }
    Ok((first_byte, first_content))
}

/// Runs the measurement with the mock pausing `chunk_delay_ms` between chunks.
pub async fn run(n: usize, chunk_delay_ms: u64) -> anyhow::Result<Vec<TtftResult>> {
    let mock = start_mock("bench-mock", "ok").await?;
    mock.set_stream(json!({"chunk_delay_ms": chunk_delay_ms}))
        .await?;
    let node = BenchNode::start(&single_backend_config(mock.data_addr, ""), &[]).await?;
    let mut out = Vec::new();
    for (target, url) in [
        ("direct", format!("{}/v1/chat/completions", mock.data_url())),
        (
            "switchyard",
            format!("http://{}/v1/chat/completions", node.listen),
        ),
    ] {
        let (mut byte, mut content) = measure(&url, n)
            .await
            .with_context(|| format!("ttft against {target}"))?;
        out.push(TtftResult {
            target: target.into(),
            chunk_delay_ms,
            requests: n,
            first_byte_ms: (percentile(&mut byte, 50.0), percentile(&mut byte, 99.0)),
            first_content_ms: (
                percentile(&mut content, 50.0),
                percentile(&mut content, 99.0),
            ),
        });
    }
    Ok(out)
}
