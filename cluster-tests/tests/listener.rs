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
    http_get, http_post_json, http_request, read_raw_response, run_bounded, MockProvider,
    SwitchyardNode,
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
