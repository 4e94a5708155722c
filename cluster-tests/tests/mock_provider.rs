//! Integration tests of the `mock-provider` binary through the harness.
//!
//! The cluster tests rely on the mock failing exactly as commanded, so each mode is checked here against a
//! real process over real sockets: normal and streamed answers, status, refuse, reset, hang, delay, stall,
//! cut and fail-after, and the request log. Every test is bounded by [`bounded`] and its processes are
//! killed by PID when the `MockProvider` drops.

use std::future::Future;
use std::io::ErrorKind;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use serde_json::{json, Value};
use switchyard_cluster_tests::harness::{
    bin_path, free_port, http2_post_json, http_get, http_post_json, http_post_json_stream,
    http_request, https_post_json, io_error_kind, poll_until, Chunk, MockOptions, MockProvider,
    Process, TlsFiles,
};

/// Upper bound for any single test.
const TEST_LIMIT: Duration = Duration::from_secs(30);

async fn bounded<F: Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::time::timeout(TEST_LIMIT, f)
        .await
        .context("test exceeded its time limit")?
}

fn chat(stream: bool) -> Value {
    json!({
        "model": "gpt-test",
        "messages": [{"role": "user", "content": "say hello"}],
        "stream": stream,
        "stream_options": {"include_usage": true},
    })
}

fn chat_url(p: &MockProvider) -> String {
    format!("{}/v1/chat/completions", p.data_url())
}

/// Parses the SSE `data:` payloads out of the received chunks.
fn sse_events(chunks: &[Chunk]) -> Vec<String> {
    let all: Vec<u8> = chunks.iter().flat_map(|c| c.data.iter().copied()).collect();
    String::from_utf8_lossy(&all)
        .split("\n\n")
        .filter_map(|e| e.trim().strip_prefix("data: ").map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn ok_chat_completion_is_openai_shaped() -> anyhow::Result<()> {
    bounded(async {
        let p = MockProvider::start("alpha").await?;
        let r = http_post_json(&chat_url(&p), &chat(false)).await?;
        ensure!(r.status == 200, "status {}", r.status);
        ensure!(r.header("x-mock-provider") == Some("alpha"));
        let v = r.json()?;
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "gpt-test");
        assert!(v["id"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(v["created"].as_u64().is_some());
        assert_eq!(v["choices"][0]["message"]["role"], "assistant");
        assert_eq!(v["choices"][0]["message"]["content"], "hello from alpha");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        let u = &v["usage"];
        let (pt, ct, tt) = (
            u["prompt_tokens"].as_u64().context("prompt_tokens")?,
            u["completion_tokens"]
                .as_u64()
                .context("completion_tokens")?,
            u["total_tokens"].as_u64().context("total_tokens")?,
        );
        assert_eq!(pt + ct, tt);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn streaming_chunks_arrive_separately_and_early() -> anyhow::Result<()> {
    bounded(async {
        let p = MockProvider::start("beta").await?;
        let delay_ms = 100;
        p.set_stream(json!({"chunk_delay_ms": delay_ms, "content_chunks": 4}))
            .await?;
        let started = Instant::now();
        let s = http_post_json_stream(&chat_url(&p), &chat(true)).await?;
        assert_eq!(s.status, 200);
        let ct = s.headers.get("content-type").and_then(|v| v.to_str().ok());
        assert_eq!(ct, Some("text/event-stream"));
        let (chunks, err) = s.collect_chunks().await;
        ensure!(err.is_none(), "stream failed: {err:?}");
        let events = sse_events(&chunks);
        // role + 4 content + finish + usage + [DONE]
        assert_eq!(events.len(), 8, "{events:#?}");
        assert!(
            chunks.len() >= 6,
            "events should arrive as separate chunks, got {}",
            chunks.len()
        );
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let parsed: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e))
            .collect::<Result<_, _>>()?;
        assert!(parsed
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk"));
        assert_eq!(parsed[0]["choices"][0]["delta"]["role"], "assistant");
        let text: String = parsed
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "hello from beta");
        assert_eq!(parsed[5]["choices"][0]["finish_reason"], "stop");
        assert_eq!(parsed[6]["choices"], json!([]));
        assert!(parsed[6]["usage"]["total_tokens"].as_u64().is_some());
        // The first chunk was received long before the last one was even produced.
        let (first, last) = (chunks[0].at, chunks[chunks.len() - 1].at);
        let spread = last - first;
        let expected = Duration::from_millis(delay_ms * 7);
        assert!(
            spread >= expected.mul_f64(0.8),
            "first chunk at {:?}, last at {:?}: not streamed",
            first - started,
            last - started
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn other_endpoints_and_bad_json() -> anyhow::Result<()> {
    bounded(async {
        let p = MockProvider::start("gamma").await?;
        let base = p.data_url();

        let c = http_post_json(
            &format!("{base}/v1/completions"),
            &json!({"model": "m", "prompt": "x"}),
        )
        .await?;
        assert_eq!(c.status, 200);
        let c = c.json()?;
        assert_eq!(c["object"], "text_completion");
        assert_eq!(c["choices"][0]["text"], "hello from gamma");

        let e = http_post_json(
            &format!("{base}/v1/embeddings"),
            &json!({"model": "e", "input": ["a", "b"]}),
        )
        .await?;
        assert_eq!(e.status, 200);
        let e = e.json()?;
        assert_eq!(e["object"], "list");
        assert_eq!(e["data"].as_array().map(Vec::len), Some(2));
        assert_eq!(e["data"][1]["index"], 1);
        assert!(e["data"][0]["embedding"]
            .as_array()
            .is_some_and(|v| !v.is_empty()));
        assert!(e["usage"]["prompt_tokens"].as_u64().is_some());

        let m = http_get(&format!("{base}/v1/models")).await?;
        assert_eq!(m.status, 200);
        assert_eq!(m.json()?["object"], "list");

        let bad = http_request(
            hyper::Method::POST,
            &format!("{base}/v1/chat/completions"),
            &[("content-type", "application/json")],
            "{not json",
        )
        .await?;
        assert_eq!(bad.status, 400);
        assert_eq!(bad.json()?["error"]["type"], "invalid_request_error");

        let h2 = http2_post_json(&format!("{base}/v1/chat/completions"), &chat(false)).await?;
        assert_eq!(h2.status, 200);
        assert_eq!(
            h2.json()?["choices"][0]["message"]["content"],
            "hello from gamma"
        );
        let log = p.requests().await?;
        assert_eq!(log.last().map(|r| r.version.as_str()), Some("HTTP/2.0"));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn status_mode_answers_error_json_with_retry_after() -> anyhow::Result<()> {
    bounded(async {
        let p = MockProvider::start("delta").await?;
        p.set_mode(json!({"mode": "status", "status": 500})).await?;
        let r = http_post_json(&chat_url(&p), &chat(false)).await?;
        assert_eq!(r.status, 500);
        assert_eq!(r.json()?["error"]["type"], "server_error");
        assert!(r.json()?["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("delta")));
        assert!(r.header("retry-after").is_none());

        p.set_mode(json!({"mode": "status", "status": 429, "retry_after": 7}))
            .await?;
        let r = http_post_json(&chat_url(&p), &chat(true)).await?;
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after"), Some("7"));
        assert_eq!(r.json()?["error"]["type"], "rate_limit_exceeded");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn refuse_closes_the_listener_and_ok_rebinds_it() -> anyhow::Result<()> {
    bounded(async {
        let p = MockProvider::start("eps").await?;
        assert_eq!(
            http_post_json(&chat_url(&p), &chat(false)).await?.status,
            200
        );
        p.set_mode(json!({"mode": "refuse"})).await?;
        let err = http_post_json(&chat_url(&p), &chat(false))
            .await
            .err()
            .context("refuse mode answered")?;
        assert_eq!(
            io_error_kind(&err),
            Some(ErrorKind::ConnectionRefused),
            "{err:#}"
        );
        assert!(p.healthy().await, "control port must stay up");

        p.set_mode(json!({"mode": "ok"})).await?;
        let r = http_post_json(&chat_url(&p), &chat(false)).await?;
        assert_eq!(r.status, 200);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn refuse_at_start_on_a_fixed_port() -> anyhow::Result<()> {
    bounded(async {
        let port = free_port();
        let p = MockProvider::start_with(MockOptions {
            name: Some("fixed".into()),
            listen: Some(([127, 0, 0, 1], port).into()),
            mode: Some("refuse".into()),
            ..MockOptions::default()
        })
        .await?;
        assert_eq!(p.data_addr.port(), port);
        let err = http_get(&format!("{}/v1/models", p.data_url()))
            .await
            .err()
            .context("answered")?;
        assert_eq!(
            io_error_kind(&err),
            Some(ErrorKind::ConnectionRefused),
            "{err:#}"
        );
        p.set_mode(json!({"mode": "ok"})).await?;
        assert_eq!(
            http_get(&format!("{}/v1/models", p.data_url()))
                .await?
                .status,
            200
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn reset_closes_with_rst_after_reading_the_request() -> anyhow::Result<()> {
    bounded(async {
        let p = MockProvider::start("zeta").await?;
        p.set_mode(json!({"mode": "reset"})).await?;
        let err = http_post_json(&chat_url(&p), &chat(false))
            .await
            .err()
            .context("reset mode answered")?;
        assert_eq!(
            io_error_kind(&err),
            Some(ErrorKind::ConnectionReset),
            "{err:#}"
        );
        assert_eq!(
            p.request_count().await?,
            1,
            "the request was read before the reset"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn hang_never_answers() -> anyhow::Result<()> {
    bounded(async {
        let p = MockProvider::start("eta").await?;
        p.set_mode(json!({"mode": "hang"})).await?;
        let r = tokio::time::timeout(
            Duration::from_millis(300),
            http_post_json(&chat_url(&p), &chat(false)),
        )
        .await;
        assert!(r.is_err(), "hang mode answered: {r:?}");
        assert_eq!(p.request_count().await?, 1, "the request was read");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn delay_answers_after_the_delay() -> anyhow::Result<()> {
    bounded(async {
        let p = MockProvider::start("theta").await?;
        p.set_mode(json!({"mode": "delay", "ms": 300})).await?;
        let t = Instant::now();
        let r = http_post_json(&chat_url(&p), &chat(false)).await?;
        let took = t.elapsed();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.json()?["choices"][0]["message"]["content"],
            "hello from theta"
        );
        assert!(
            took >= Duration::from_millis(300),
            "answered after {took:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn stall_sends_k_chunks_then_nothing() -> anyhow::Result<()> {
    bounded(async {
        let p = MockProvider::start("iota").await?;
        p.set_mode(json!({"mode": "stall", "after_chunks": 2}))
            .await?;
        let mut s = http_post_json_stream(&chat_url(&p), &chat(true)).await?;
        assert_eq!(s.status, 200);
        let mut got = Vec::new();
        while sse_events(&got).len() < 2 {
            let c = s.next_chunk().await.context("stream ended")??;
            got.push(c);
        }
        assert_eq!(sse_events(&got).len(), 2);
        let more = tokio::time::timeout(Duration::from_millis(300), s.next_chunk()).await;
        assert!(more.is_err(), "stalled stream delivered more: {more:?}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn cut_ends_the_stream_with_a_body_error() -> anyhow::Result<()> {
    bounded(async {
        let p = MockProvider::start("kappa").await?;
        p.set_mode(json!({"mode": "cut", "after_chunks": 3}))
            .await?;
        let s = http_post_json_stream(&chat_url(&p), &chat(true)).await?;
        assert_eq!(s.status, 200);
        let (chunks, err) = s.collect_chunks().await;
        assert!(err.is_some(), "cut stream ended cleanly");
        let events = sse_events(&chunks);
        assert_eq!(events.len(), 3, "{events:#?}");
        assert!(!events.iter().any(|e| e == "[DONE]"));

        // Non-streamed: head with the full Content-Length, half the body, then the cut.
        let err = http_post_json(&chat_url(&p), &chat(false))
            .await
            .err()
            .context("cut answered fully")?;
        assert!(format!("{err:#}").contains("body"), "{err:#}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn fail_after_k_requests() -> anyhow::Result<()> {
    bounded(async {
        let p = MockProvider::start("lambda").await?;
        p.set_mode(
            json!({"mode": "fail_after", "k": 2, "then": {"mode": "status", "status": 503}}),
        )
        .await?;
        let mut statuses = Vec::new();
        for _ in 0..4 {
            statuses.push(
                http_post_json(&chat_url(&p), &chat(false))
                    .await?
                    .status
                    .as_u16(),
            );
        }
        assert_eq!(statuses, [200, 200, 503, 503]);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn fail_after_then_refuse_from_the_command_line() -> anyhow::Result<()> {
    bounded(async {
        let p = MockProvider::start_with(MockOptions {
            name: Some("mu".into()),
            mode: Some("fail-after 1 refuse".into()),
            ..MockOptions::default()
        })
        .await?;
        assert_eq!(
            http_post_json(&chat_url(&p), &chat(false)).await?.status,
            200
        );
        // The listener closes right after the first request; wait for it without sleeping.
        let url = chat_url(&p);
        let kind = poll_until(Duration::from_secs(5), Duration::from_millis(10), || {
            let url = url.clone();
            async move {
                match http_post_json(&url, &chat(false)).await {
                    Err(e) if io_error_kind(&e) == Some(ErrorKind::ConnectionRefused) => Some(()),
                    _ => None,
                }
            }
        })
        .await;
        ensure!(kind.is_ok(), "listener did not close after 1 request");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn request_log_records_and_clears() -> anyhow::Result<()> {
    bounded(async {
        let p = MockProvider::start("nu").await?;
        let before_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as u64;
        http_request(
            hyper::Method::POST,
            &chat_url(&p),
            &[("content-type", "application/json"), ("X-Trace-Id", "abc")],
            chat(false).to_string(),
        )
        .await?;
        http_get(&format!("{}/v1/models?x=1", p.data_url())).await?;
        let log = p.requests().await?;
        assert_eq!(log.len(), 2);
        assert_eq!(p.request_count().await?, 2);
        let r = &log[0];
        assert_eq!(r.seq, 1);
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/v1/chat/completions");
        assert_eq!(r.header("x-trace-id"), Some("abc"));
        assert!(r.headers.contains_key("x-trace-id"), "names are lower-case");
        assert_eq!(r.json(), Some(chat(false)));
        let src: std::net::SocketAddr = r.source.parse()?;
        assert!(src.ip().is_loopback() && src.port() != 0);
        assert!(r.at_ms >= before_ms);
        assert_eq!(log[1].seq, 2);
        assert_eq!(log[1].path, "/v1/models?x=1");
        assert_ne!(
            log[0].source, log[1].source,
            "each call uses its own connection"
        );

        p.clear().await?;
        assert_eq!(p.request_count().await?, 0);
        http_get(&format!("{}/v1/models", p.data_url())).await?;
        let log = p.requests().await?;
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].seq, 3, "sequence numbers are not reused");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn process_terminate_and_wait_exit() -> anyhow::Result<()> {
    bounded(async {
        let mut p = Process::start("sleeper", std::path::Path::new("sleep"), ["30"], &[])?;
        assert!(
            p.wait_exit(Duration::from_millis(50)).await.is_err(),
            "still running"
        );
        p.terminate()?;
        let status = p.wait_exit(Duration::from_secs(5)).await?;
        assert!(!status.success());
        // poll_until gives up at its deadline.
        let t = Instant::now();
        let r: anyhow::Result<()> = poll_until(
            Duration::from_millis(100),
            Duration::from_millis(10),
            || async { None },
        )
        .await;
        assert!(r.is_err() && t.elapsed() < Duration::from_secs(2));
        Ok(())
    })
    .await
}

#[test]
fn bin_path_finds_workspace_binaries() {
    assert!(bin_path("mock-provider").is_file());
    assert!(bin_path("switchyard").is_file());
}

#[tokio::test]
async fn tls_data_port_with_alpn() -> anyhow::Result<()> {
    bounded(async {
        let dir = tempfile::tempdir()?;
        let tls = TlsFiles::self_signed(dir.path(), &["127.0.0.1", "localhost"])?;
        let p = MockProvider::start_with(MockOptions {
            name: Some("xi".into()),
            tls: Some((tls.cert_path.clone(), tls.key_path.clone())),
            ..MockOptions::default()
        })
        .await?;
        let url = format!("https://{}/v1/chat/completions", p.data_addr);
        for (alpn, version) in [(&b"h2"[..], "HTTP/2.0"), (&b"http/1.1"[..], "HTTP/1.1")] {
            let r = https_post_json(&url, &chat(false), tls.client_config(&[alpn])?).await?;
            assert_eq!(r.status, 200);
            assert_eq!(
                r.json()?["choices"][0]["message"]["content"],
                "hello from xi"
            );
            let log = p.requests().await?;
            assert_eq!(log.last().map(|r| r.version.as_str()), Some(version));
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn stream_error_and_truncate_end_streams_in_the_providers_own_format() -> anyhow::Result<()> {
    bounded(async {
        let p = MockProvider::start("lambda").await?;
        // OpenAI: one chunk, then the in-stream error chunk, then a clean end.
        p.set_mode(json!({"mode": "stream_error", "after_chunks": 1, "status": 429}))
            .await?;
        let s = http_post_json_stream(&chat_url(&p), &chat(true)).await?;
        let (chunks, err) = s.collect_chunks().await;
        assert!(err.is_none(), "{err:?}");
        let events = sse_events(&chunks);
        assert_eq!(events.len(), 2, "{events:#?}");
        let e: Value = serde_json::from_str(&events[1])?;
        assert_eq!(e["error"]["code"], "rate_limit_exceeded", "{e}");

        // (Anthropic's `error` event and Bedrock's exception message go through the gateway in
        // stream_failover.rs.)

        // Truncate: K chunks, then a clean end without [DONE].
        p.set_mode(json!({"mode": "truncate", "after_chunks": 2}))
            .await?;
        let s = http_post_json_stream(&chat_url(&p), &chat(true)).await?;
        let (chunks, err) = s.collect_chunks().await;
        assert!(err.is_none(), "{err:?}");
        let events = sse_events(&chunks);
        assert_eq!(events.len(), 2, "{events:#?}");
        assert!(!events.iter().any(|e| e == "[DONE]"));
        Ok(())
    })
    .await
}
