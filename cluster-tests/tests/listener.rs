//! Issue 18's client-side hardening through a real `switchyard` process: metric label values a client
//! chooses stay bounded by the config (and so does the node's memory), the smaller request checks (UTF-8,
//! JSON object, Host, `Connection`-nominated headers), and the client listener's timeouts and connection
//! cap on a descriptor-starved node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::json;
use switchyard_cluster_tests::harness::{
    http_get, http_post_json, http_request, poll_until, read_raw_response, run_bounded,
    MockProvider, SwitchyardNode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TEST_TIMEOUT: Duration = Duration::from_secs(180);

/// One route: `configured` by exact match, every other model by a regular expression, all to `upstream`.
fn regex_route_config(configured: &str, upstream: SocketAddr) -> String {
    format!(
        r#"apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIGatewayRoute
metadata:
  name: any-model
  namespace: default
spec:
  schema:
    name: OpenAI
  rules:
    - matches:
        - headers:
            - type: Exact
              name: x-ai-eg-model
              value: {configured}
      backendRefs:
        - name: upstream
    - matches:
        - headers:
            - type: RegularExpression
              name: x-ai-eg-model
              value: ".*"
      backendRefs:
        - name: upstream
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: upstream
  namespace: default
spec:
  endpoints:
    - ip:
        address: {ip}
        port: {port}
"#,
        ip = upstream.ip(),
        port = upstream.port()
    )
}

/// Resident memory of `pid` in KiB (`VmRSS` of /proc/PID/status).
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

/// Sends `count` chat requests with distinct models `{prefix}-{i}` over pooled keep-alive connections,
/// 8 at a time; every one must be answered 200.
async fn send_distinct_models(url: &str, prefix: &str, count: usize) -> anyhow::Result<()> {
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, next, url, prefix) = (
            client.clone(),
            next.clone(),
            url.to_string(),
            prefix.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(());
                }
                let body = json!({"model": format!("{prefix}-{i}"),
                    "messages": [{"role": "user", "content": "hi"}]});
                let req = hyper::Request::post(url.as_str())
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body.to_string())))?;
                let resp = client.request(req).await?;
                let status = resp.status();
                resp.into_body().collect().await?;
                anyhow::ensure!(status == 200, "model {prefix}-{i}: {status}");
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// The label values of `gen_ai_request_model` and `gen_ai_response_model` in a `/metrics` page, and the
/// number of `gen_ai_server_request_duration_seconds` series.
fn model_labels(metrics: &str) -> (std::collections::BTreeSet<String>, usize) {
    let mut values = std::collections::BTreeSet::new();
    let mut series = 0;
    for line in metrics.lines().filter(|l| l.starts_with("gen_ai_")) {
        if line.starts_with("gen_ai_server_request_duration_seconds_count") {
            series += 1;
        }
        for key in ["gen_ai_request_model=\"", "gen_ai_response_model=\""] {
            if let Some(rest) = line.split(key).nth(1) {
                values.insert(rest.split('"').next().unwrap_or_default().to_string());
            }
        }
    }
    (values, series)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_client_chosen_models_keep_labels_and_memory_bounded() {
    run_bounded(TEST_TIMEOUT, async {
        // The mock answers 200 for any model and echoes it as the response's model.
        let upstream = MockProvider::start("upstream").await?;
        let node = SwitchyardNode::start(&regex_route_config("gpt-configured", upstream.data_addr))
            .await?;
        let url = node.url("/v1/chat/completions");
        let configured = http_post_json(
            &url,
            &json!({"model": "gpt-configured", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await?;
        anyhow::ensure!(
            configured.status == 200,
            "configured model: {}",
            configured.status
        );
        // Warm-up: pools, buffers and the allocator reach their working size.
        send_distinct_models(&url, "warmup", 2_000).await?;
        let before = rss_kib(node.pid())?;
        send_distinct_models(&url, "client", 10_000).await?;
        let after = rss_kib(node.pid())?;
        let page = http_get(&node.admin_url("/metrics")).await?.text();
        let (values, series) = model_labels(&page);
        let want: std::collections::BTreeSet<String> =
            ["gpt-configured", "other"].map(String::from).into();
        anyhow::ensure!(values == want, "model label values: {values:?}");
        anyhow::ensure!(series <= 2, "{series} request-duration series:\n{page}");
        anyhow::ensure!(
            page.len() < 256 * 1024,
            "/metrics is {} bytes after 12k distinct models",
            page.len()
        );
        // Unbounded, each model cost ~5 KB of series (issue 18: 228k models took 1.1 GB): 10k would be
        // ~50 MB. Bounded, the node stays within allocator noise.
        anyhow::ensure!(
            after < before + 16 * 1024,
            "RSS grew from {before} KiB to {after} KiB over 10k distinct models"
        );
        println!(
            "RSS over 10k distinct models: {before} KiB -> {after} KiB; /metrics {} bytes",
            page.len()
        );

        // Failures are recorded too, with a bounded error_type and the same bounded model label.
        upstream
            .set_mode(json!({"mode": "status", "status": 500}))
            .await?;
        let r = http_post_json(
            &url,
            &json!({"model": "client-failing", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await?;
        anyhow::ensure!(r.status == 500, "{}", r.status);
        let page = http_get(&node.admin_url("/metrics")).await?.text();
        let failed = page.lines().find(|l| {
            l.starts_with("gen_ai_server_request_duration_seconds_count")
                && l.contains("error_type=\"500\"")
        });
        let failed = failed.with_context(|| format!("no failed request recorded:\n{page}"))?;
        anyhow::ensure!(
            failed.contains("gen_ai_request_model=\"other\"")
                && failed.contains("gen_ai_provider_name=\"openai\"")
                && failed.ends_with(" 1"),
            "{failed}"
        );
        Ok(())
    })
    .await;
}

/// A minimal upstream on loopback that answers every request with a chat completion and the extra
/// response `headers` (raw lines), for what the mock provider cannot send. Serves until the test ends.
async fn raw_upstream(headers: &'static str) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        let mut chunk = [0u8; 4096];
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < end + 4 + length {
                        let mut chunk = [0u8; 4096];
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..end + 4 + length);
                    let body = r#"{"id":"x","object":"chat.completion","model":"m","choices":[]}"#;
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{headers}content-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if conn.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_400_and_connection_nominated_headers_stay_on_their_hop() {
    run_bounded(TEST_TIMEOUT, async {
        let upstream = MockProvider::start("upstream").await?;
        let node = SwitchyardNode::start(&regex_route_config("m", upstream.data_addr)).await?;
        let url = node.url("/v1/chat/completions");
        let post = |body: &'static [u8]| {
            http_request(
                hyper::Method::POST,
                &url,
                &[("content-type", "application/json")],
                Bytes::from_static(body),
            )
        };
        // (what, body, error message start)
        let cases: [(&str, &'static [u8], &str); 3] = [
            (
                "invalid UTF-8 inside a string",
                b"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\xc3\x28\"}]}",
                "request body is not valid UTF-8",
            ),
            (
                "a top-level array",
                br#"["m", false]"#,
                "request body must be a JSON object",
            ),
            ("a bare string", br#""m""#, "request body must be a JSON object"),
        ];
        for (what, body, message) in cases {
            let r = post(body).await?;
            anyhow::ensure!(r.status == 400, "{what}: {} {}", r.status, r.text());
            let v = r.json()?;
            anyhow::ensure!(v["error"]["type"] == "invalid_request_error", "{what}: {v}");
            anyhow::ensure!(
                v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message)),
                "{what}: {v}"
            );
        }
        // HTTP/1.1 without Host (RFC 9112 §3.2), written by hand: every client library adds one.
        let body = r#"{"model":"m","messages":[]}"#;
        let mut conn = TcpStream::connect(node.listen).await?;
        conn.write_all(
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await?;
        let (status, text) = read_raw_response(&mut conn).await?;
        anyhow::ensure!(status == 400 && text.contains("Host"), "no Host: {status} {text}");
        anyhow::ensure!(
            upstream.request_count().await? == 0,
            "no bad request may reach the upstream"
        );

        // Request direction: what the client names in Connection stays with the gateway.
        let r = http_request(
            hyper::Method::POST,
            &url,
            &[
                ("content-type", "application/json"),
                ("connection", "keep-alive, X-Client-Hop"),
                ("x-client-hop", "secret"),
                ("x-client-keep", "1"),
            ],
            Bytes::from_static(br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#),
        )
        .await?;
        anyhow::ensure!(r.status == 200, "{} {}", r.status, r.text());
        let sent = upstream.requests().await?;
        let headers = &sent.last().context("the upstream saw the request")?.headers;
        anyhow::ensure!(
            !headers.contains_key("x-client-hop") && headers.contains_key("x-client-keep"),
            "forwarded headers: {headers:?}"
        );

        // Response direction: what the upstream names in Connection stays with the gateway.
        let raw = raw_upstream("connection: keep-alive, x-upstream-hop\r\nx-upstream-hop: 1\r\nx-upstream-keep: 1\r\n").await?;
        let node2 = SwitchyardNode::start(&regex_route_config("m", raw)).await?;
        let r = http_post_json(
            &node2.url("/v1/chat/completions"),
            &json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await?;
        anyhow::ensure!(r.status == 200, "{} {}", r.status, r.text());
        anyhow::ensure!(
            r.header("x-upstream-hop").is_none() && r.header("x-upstream-keep") == Some("1"),
            "returned headers: {:?}",
            r.headers
        );
        Ok(())
    })
    .await;
}

/// Short client timeouts so the slow connections below expire within the test.
const SHORT_TIMEOUTS: [&str; 6] = [
    "--client-header-timeout",
    "2s",
    "--client-body-timeout",
    "2s",
    "--client-keepalive-timeout",
    "2s",
];

const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;

/// A complete HTTP/1.1 chat request, keep-alive.
fn chat_request() -> String {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{CHAT}",
        CHAT.len()
    )
}

/// The kinds of slow client the issue found holding connections for ever.
#[derive(Debug, Clone, Copy)]
enum Slow {
    /// Connects and sends nothing.
    Silent,
    /// Sends half a request head and stops.
    HalfHead,
    /// Sends a request head one byte a second.
    Trickle,
    /// Sends a head and half the body it announced.
    HalfBody,
    /// Completes one request, reads the answer and stays connected.
    IdleKeepAlive,
}

/// A slow connection the test holds open.
enum Held {
    /// The socket itself.
    Stream(TcpStream),
    /// A task trickling the request; it ends when the node closes the connection.
    Trickling(tokio::task::JoinHandle<()>),
}

impl Held {
    /// Whether the node has closed this connection (it reads end-of-file or an error, after any
    /// answer the node sent first: the 408 of a stalled body).
    async fn closed_by_node(&mut self) -> bool {
        match self {
            Held::Stream(conn) => {
                let mut buf = [0u8; 4096];
                loop {
                    match tokio::time::timeout(Duration::from_millis(50), conn.read(&mut buf)).await
                    {
                        Ok(Ok(0)) | Ok(Err(_)) => return true,
                        Ok(Ok(_)) => continue,
                        Err(_) => return false,
                    }
                }
            }
            Held::Trickling(task) => task.is_finished(),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Held::Trickling(task) = self {
            task.abort();
        }
    }
}

/// Opens one slow connection of `kind` to `addr`. `None` when the node did not take it (beyond the
/// descriptors it has, or answered 503 beyond its cap).
async fn open_slow(addr: SocketAddr, kind: Slow) -> Option<Held> {
    let mut conn = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    match kind {
        Slow::Silent => {}
        Slow::HalfHead => conn
            .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n")
            .await
            .ok()?,
        Slow::Trickle => {
            return Some(Held::Trickling(tokio::spawn(async move {
                for b in chat_request().bytes() {
                    if conn.write_all(&[b]).await.is_err() {
                        return;
                    }
                    // A closed connection shows as end-of-file on the read side.
                    let mut buf = [0u8; 1024];
                    match tokio::time::timeout(Duration::from_secs(1), conn.read(&mut buf)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => return,
                        _ => {}
                    }
                }
            })))
        }
        Slow::HalfBody => conn
            .write_all(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"model\":",
            )
            .await
            .ok()?,
        Slow::IdleKeepAlive => {
            conn.write_all(chat_request().as_bytes()).await.ok()?;
            let (status, _) = read_raw_response(&mut conn).await.ok()?;
            if status != 200 {
                return None;
            }
        }
    }
    Some(Held::Stream(conn))
}

/// `text` without its terminal colour codes (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_escape = false;
    for c in text.chars() {
        match (in_escape, c) {
            (false, '\u{1b}') => in_escape = true,
            (false, c) => out.push(c),
            (true, 'm') => in_escape = false,
            (true, _) => {}
        }
    }
    out
}

/// One fresh connection, one chat request, answered within `within`: its status.
async fn try_chat(addr: SocketAddr, within: Duration) -> Option<u16> {
    let attempt = async {
        let mut conn = TcpStream::connect(addr).await.ok()?;
        conn.write_all(chat_request().as_bytes()).await.ok()?;
        read_raw_response(&mut conn).await.ok().map(|(s, _)| s)
    };
    tokio::time::timeout(within, attempt).await.ok().flatten()
}

const KINDS: [Slow; 5] = [
    Slow::Silent,
    Slow::HalfHead,
    Slow::Trickle,
    Slow::HalfBody,
    Slow::IdleKeepAlive,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_descriptor_starved_node_recovers_once_slow_clients_time_out() {
    run_bounded(TEST_TIMEOUT, async {
        let upstream = MockProvider::start("upstream").await?;
        let config = regex_route_config("m", upstream.data_addr);
        // 128 descriptors and a cap above them: the slow clients exhaust the descriptors themselves.
        let mut flags = SHORT_TIMEOUTS.to_vec();
        flags.extend(["--max-client-connections", "1000"]);
        let mut node =
            SwitchyardNode::start_wrapped(&config, &flags, &["prlimit", "--nofile=128:128", "--"])
                .await?;
        let addr = node.listen;
        // The idle keep-alive ones first: they need an answer while the node still has descriptors.
        let mut held = Vec::new();
        for kind in std::iter::repeat_n(Slow::IdleKeepAlive, 10) {
            held.push((kind, open_slow(addr, kind).await.context("keep-alive connection")?));
        }
        for i in 0..160 {
            let kind = KINDS[i % 4];
            if let Some(h) = open_slow(addr, kind).await {
                held.push((kind, h));
            }
        }
        let starved_at = tokio::time::Instant::now();
        anyhow::ensure!(
            try_chat(addr, Duration::from_millis(500)).await.is_none(),
            "the node should be out of descriptors with {} slow connections",
            held.len()
        );
        // Recovery: as soon as the slow connections time out (2 s after their last byte; the trickle's
        // head after 2 s of trickling), a plain request is served again.
        let served = poll_until(Duration::from_secs(15), Duration::from_millis(100), || async {
            (try_chat(addr, Duration::from_secs(1)).await == Some(200)).then_some(())
        })
        .await;
        let recovered_after = starved_at.elapsed();
        served.with_context(|| format!("never recovered:
{}", node.logs()))?;
        anyhow::ensure!(
            recovered_after < Duration::from_secs(8),
            "recovered only after {recovered_after:?}"
        );
        // Every slow connection was closed by the node, whatever its kind.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        for (kind, h) in held.iter_mut() {
            // Each look waits up to 50 ms for the end-of-file.
            while !h.closed_by_node().await {
                anyhow::ensure!(
                    tokio::time::Instant::now() < deadline,
                    "a {kind:?} connection is still open"
                );
            }
        }
        let stderr = node.process().stderr();
        let accept_errors = stderr.matches("accept failed").count();
        anyhow::ensure!(
            (1..=5).contains(&accept_errors),
            "accept errors logged {accept_errors} times (one per 5 s at most):
{stderr}"
        );
        println!(
            "{} slow connections; served again {recovered_after:?} after starving; {accept_errors} accept-error lines",
            held.len()
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_connection_cap_clients_get_503_until_slow_ones_time_out() {
    run_bounded(TEST_TIMEOUT, async {
        let upstream = MockProvider::start("upstream").await?;
        let config = regex_route_config("m", upstream.data_addr);
        // 128 descriptors and the default cap: (128 - 64) / 2 = 32 client connections. Timeouts long
        // enough that no slow connection expires while the cap is being checked.
        let mut node = SwitchyardNode::start_wrapped(
            &config,
            &[
                "--client-header-timeout",
                "6s",
                "--client-body-timeout",
                "6s",
                "--client-keepalive-timeout",
                "6s",
            ],
            &["prlimit", "--nofile=128:128", "--"],
        )
        .await?;
        anyhow::ensure!(
            strip_ansi(&node.process().stderr()).contains("max_connections=32"),
            "the default cap from 128 descriptors:\n{}",
            node.logs()
        );
        let addr = node.listen;
        let mut held = Vec::new();
        for i in 0..32 {
            let kind = KINDS[i % KINDS.len()];
            held.push((kind, open_slow(addr, kind).await.context("below the cap")?));
        }
        let started = tokio::time::Instant::now();
        for _ in 0..5 {
            let mut conn = TcpStream::connect(addr).await?;
            conn.write_all(chat_request().as_bytes()).await?;
            let (status, body) = read_raw_response(&mut conn).await?;
            anyhow::ensure!(
                status == 503 && body.contains("too_many_connections"),
                "beyond the cap: {status} {body}"
            );
        }
        let served = poll_until(
            Duration::from_secs(15),
            Duration::from_millis(100),
            || async { (try_chat(addr, Duration::from_secs(1)).await == Some(200)).then_some(()) },
        )
        .await;
        served.with_context(|| {
            format!(
                "never served again:
{}",
                node.logs()
            )
        })?;
        println!(
            "served again {:?} after the cap was reached",
            started.elapsed()
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_get_408_and_idle_h2c_connections_are_closed() {
    run_bounded(TEST_TIMEOUT, async {
        let upstream = MockProvider::start("upstream").await?;
        let config = regex_route_config("m", upstream.data_addr);
        let node = SwitchyardNode::start_with(
            &config,
            &[
                "--client-header-timeout",
                "1s",
                "--client-body-timeout",
                "1s",
                "--client-keepalive-timeout",
                "1s",
                "--client-request-timeout",
                "2s",
            ],
        )
        .await?;
        let addr = node.listen;
        let head = |len: usize| {
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"
            )
        };

        // Half a body, then silence: 408 after the body timeout, and the connection closed.
        let mut conn = TcpStream::connect(addr).await?;
        conn.write_all(format!("{}{{\"model\":", head(CHAT.len())).as_bytes())
            .await?;
        let started = tokio::time::Instant::now();
        let (status, body) = read_raw_response(&mut conn).await?;
        anyhow::ensure!(
            status == 408 && body.contains("request_timeout"),
            "{status} {body}"
        );
        let took = started.elapsed();
        anyhow::ensure!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(4),
            "408 after {took:?}"
        );

        // A body trickled without ever pausing for 1 s: the request timeout (2 s) ends it.
        let mut conn = TcpStream::connect(addr).await?;
        conn.write_all(head(CHAT.len()).as_bytes()).await?;
        let started = tokio::time::Instant::now();
        let trickle = async {
            for b in CHAT.bytes() {
                conn.write_all(&[b]).await?;
                let mut buf = [0u8; 4096];
                if let Ok(r) =
                    tokio::time::timeout(Duration::from_millis(300), conn.peek(&mut buf)).await
                {
                    r?;
                    break; // the node answered
                }
            }
            anyhow::Ok(())
        };
        tokio::time::timeout(Duration::from_secs(10), trickle).await??;
        let (status, body) = read_raw_response(&mut conn).await?;
        let took = started.elapsed();
        anyhow::ensure!(status == 408 && body.contains("within"), "{status} {body}");
        anyhow::ensure!(
            took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
            "request timeout after {took:?}"
        );

        // h2c: served, then closed once idle for the keep-alive timeout.
        let tcp = TcpStream::connect(addr).await?;
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await?;
        let conn = tokio::spawn(conn);
        let req = hyper::Request::post(format!("http://{addr}/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(CHAT.as_bytes())))?;
        let resp = sender.send_request(req).await?;
        anyhow::ensure!(resp.status() == 200, "h2c: {}", resp.status());
        resp.into_body().collect().await?;
        let idle_from = tokio::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(5), conn)
            .await
            .context("the idle h2c connection was never closed")??
            .ok();
        let took = idle_from.elapsed();
        anyhow::ensure!(
            took >= Duration::from_millis(900),
            "h2c closed after only {took:?} idle"
        );
        Ok(())
    })
    .await;
}

/// An upstream that answers every request with an OpenAI stream that never ends: 8 KiB content chunks
/// as fast as the node takes them. `released` counts the streams whose connection the node dropped.
async fn endless_stream_upstream(
) -> anyhow::Result<(SocketAddr, Arc<std::sync::atomic::AtomicUsize>)> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let released = Arc::new(AtomicUsize::new(0));
    let count = released.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let mut chunk = [0u8; 4096];
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                if conn.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let event = format!(
                    "data: {}\n\n",
                    json!({"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m",
                        "choices": [{"index": 0, "delta": {"content": "a".repeat(8192)}, "finish_reason": null}]})
                );
                let chunk = format!("{:x}\r\n{event}\r\n", event.len());
                // The node's own request body is read by now; a write error or an end of file is the
                // node letting go of this stream.
                while conn.write_all(chunk.as_bytes()).await.is_ok() {}
                count.fetch_add(1, Ordering::Relaxed);
            });
        }
    });
    Ok((addr, released))
}

/// The `switchyard_client_timeouts_total{timeout="send"}` count on `node`'s `/metrics`.
async fn send_timeouts(node: &SwitchyardNode) -> anyhow::Result<u64> {
    let page = http_get(&node.admin_url("/metrics")).await?.text();
    Ok(page
        .lines()
        .find(|l| {
            l.starts_with("switchyard_client_timeouts_total") && l.contains(r#"timeout="send""#)
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_stop_reading_are_closed_after_the_send_timeout_and_release_the_upstream() {
    use std::sync::atomic::Ordering;
    run_bounded(TEST_TIMEOUT, async {
        let (upstream, released) = endless_stream_upstream().await?;
        let node = SwitchyardNode::start_with(
            &regex_route_config("m", upstream),
            &["--client-send-timeout", "1s"],
        )
        .await?;
        let addr = node.listen;
        let body = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );

        // A reader that keeps taking the stream is never cut: every piece it takes resets the send
        // timeout. (It reads all it can: a reader slower than the upstream leaves megabytes in the
        // kernel's buffers, and the node's socket stays blocked until they drain, as nginx's would.)
        let mut steady = TcpStream::connect(addr).await?;
        steady.write_all(request.as_bytes()).await?;
        // HTTP/1.1 that stops reading after the response head, and h2c that never polls the body.
        let mut stalled = TcpStream::connect(addr).await?;
        stalled.write_all(request.as_bytes()).await?;
        let tcp = TcpStream::connect(addr).await?;
        let (mut sender, h2_conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await?;
        let h2_conn = tokio::spawn(h2_conn);
        let req = hyper::Request::post(format!("http://{addr}/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let h2_resp = sender.send_request(req).await?;
        anyhow::ensure!(h2_resp.status() == 200, "h2c: {}", h2_resp.status());

        let started = tokio::time::Instant::now();
        let mut steady_bytes = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        // Both stalled clients are cut within a few send timeouts while the steady one reads on.
        while send_timeouts(&node).await? < 2 {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(20),
                "send timeouts after 20 s: {}",
                send_timeouts(&node).await?
            );
            let n = tokio::time::timeout(Duration::from_secs(5), steady.read(&mut buf))
                .await
                .context("the steady reader got nothing for 5 s")??;
            anyhow::ensure!(n > 0, "the steady reader's connection was closed");
            steady_bytes += n;
        }
        // The steady reader goes on for three more send timeouts, uncut.
        let more = tokio::time::Instant::now();
        while more.elapsed() < Duration::from_secs(3) {
            let n = tokio::time::timeout(Duration::from_secs(5), steady.read(&mut buf))
                .await
                .context("the steady reader got nothing for 5 s")??;
            anyhow::ensure!(n > 0, "the steady reader was cut after {steady_bytes} bytes");
            steady_bytes += n;
        }
        anyhow::ensure!(send_timeouts(&node).await? == 2, "the steady reader was timed out");

        // The stalled HTTP/1.1 client finds its connection closed once it reads what was buffered.
        let drained = async {
            loop {
                match stalled.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), drained)
            .await
            .context("the stalled HTTP/1.1 connection was never closed")?;
        // The h2c connection is gone too.
        tokio::time::timeout(Duration::from_secs(10), h2_conn)
            .await
            .context("the stalled h2c connection was never closed")??
            .ok();
        drop(h2_resp);
        // And the upstream streams behind both were let go, while the steady one's is still held.
        poll_until(Duration::from_secs(10), Duration::from_millis(50), || async {
            (released.load(Ordering::Relaxed) >= 2).then_some(())
        })
        .await
        .context("the upstream streams of the cut clients were not released")?;
        anyhow::ensure!(released.load(Ordering::Relaxed) == 2, "the steady stream's upstream was dropped");
        Ok(())
    })
    .await;
}
