//! The commands of docs/operations.md on one real node: `switchyard validate`, `switchyard status`
//! (text, `--json`, unreachable node → non-zero), reload by SIGHUP and by `POST /reload` (a bad file keeps the
//! running config), and the drain on SIGTERM (readiness 503 at once, liveness still 200, requests still served
//! during the drain delay, exit 0; a stream in flight finishes, an idle keep-alive connection is closed
//! rather than waited for).

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use hyper::Method;
use serde_json::{json, Value};
use switchyard_cluster_tests::harness::{
    bin_path, fallback_config, free_port, http_get, http_post_json, http_post_json_stream,
    http_request, poll_until, raw_post_head, read_raw_response, run_bounded, MockProvider,
    SwitchyardNode, SEED_POLICY,
};

const MODEL: &str = "us.meta.llama3-2-1b-instruct-v1:0";
const NEW_MODEL: &str = "reloaded-model";

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

async fn switchyard(args: &[&str]) -> anyhow::Result<std::process::Output> {
    Ok(tokio::process::Command::new(bin_path("switchyard"))
        .args(args)
        .output()
        .await?)
}

async fn status_of(node: &SwitchyardNode, model: &str) -> anyhow::Result<u16> {
    Ok(
        http_post_json(&node.url("/v1/chat/completions"), &chat(model))
            .await?
            .status
            .as_u16(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_guide_commands_work() {
    run_bounded(Duration::from_secs(90), async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        let config = fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY);
        let mut node =
            SwitchyardNode::start_with(&config, &["--node-id", "guide-1", "--drain-delay", "1s"])
                .await?;
        let path = node.config_path.display().to_string();
        let admin = format!("http://{}", node.admin);

        // switchyard validate --config FILE
        let out = switchyard(&["validate", "--config", &path]).await?;
        ensure!(out.status.success(), "validate: {out:?}");

        // switchyard status --admin URL [--json]; an unreachable node is an error.
        let out = switchyard(&["status", "--admin", &admin]).await?;
        ensure!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("guide-1"),
            "status: {out:?}"
        );
        let out = switchyard(&["status", "--admin", &admin, "--json"]).await?;
        let v: Value = serde_json::from_slice(&out.stdout).context("status --json")?;
        ensure!(v.is_object(), "status --json: {v}");
        let dead = format!("http://127.0.0.1:{}", free_port());
        let out = switchyard(&["status", "--admin", &dead]).await?;
        ensure!(
            !out.status.success(),
            "status of an unreachable node succeeded"
        );

        // Reload by SIGHUP: the route now matches the new model name.
        ensure!(status_of(&node, NEW_MODEL).await? != 200);
        std::fs::write(
            &node.config_path,
            config.replace(&format!("value: {MODEL}"), &format!("value: {NEW_MODEL}")),
        )?;
        node.process().signal(libc::SIGHUP)?;
        poll_until(
            Duration::from_secs(10),
            Duration::from_millis(20),
            || async { (status_of(&node, NEW_MODEL).await.ok()? == 200).then_some(()) },
        )
        .await
        .context("SIGHUP did not reload the config")?;

        // A bad file: POST /reload reports the error and the running config keeps serving.
        std::fs::write(&node.config_path, "kind: [not yaml")?;
        let r = http_request(Method::POST, &node.admin_url("/reload"), &[], "").await?;
        ensure!(!r.status.is_success(), "a bad file reloaded: {}", r.text());
        ensure!(status_of(&node, NEW_MODEL).await? == 200);
        // A good file: POST /reload swaps it in.
        std::fs::write(&node.config_path, &config)?;
        let r = http_request(Method::POST, &node.admin_url("/reload"), &[], "").await?;
        ensure!(
            r.status.is_success(),
            "POST /reload: {} {}",
            r.status,
            r.text()
        );
        ensure!(status_of(&node, MODEL).await? == 200);

        // Drain: SIGTERM → /readyz 503 at once, /healthz 200, still serving during the drain delay, exit 0.
        let t = Instant::now();
        node.process().terminate()?;
        poll_until(
            Duration::from_millis(500),
            Duration::from_millis(10),
            || async {
                (http_get(&node.admin_url("/readyz")).await.ok()?.status == 503).then_some(())
            },
        )
        .await
        .context("/readyz did not turn 503 on SIGTERM")?;
        ensure!(http_get(&node.admin_url("/healthz")).await?.status == 200);
        ensure!(status_of(&node, MODEL).await? == 200);
        ensure!(
            t.elapsed() < Duration::from_secs(1),
            "checks outlasted the drain delay"
        );
        let exit = node.process().wait_exit(Duration::from_secs(10)).await?;
        ensure!(exit.success(), "exit status {exit}");
        Ok(())
    })
    .await;
}

/// On SIGTERM a stream in flight runs to its end before the node exits, while an idle keep-alive
/// connection is closed at once instead of holding the drain until its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_finishes_a_stream_in_flight_and_closes_idle_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    run_bounded(Duration::from_secs(90), async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        // About a second of streaming: 10 pieces, 100 ms apart.
        primary
            .set_stream(json!({"chunk_delay_ms": 100, "content_chunks": 10}))
            .await?;
        let config = fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY);
        let mut node = SwitchyardNode::start_with(
            &config,
            &["--drain-delay", "0s", "--drain-timeout", "30s"],
        )
        .await?;
        // A keep-alive connection that served one request and then sits idle.
        let mut idle = tokio::net::TcpStream::connect(node.listen).await?;
        let body = serde_json::to_string(&chat(MODEL))?;
        let head = raw_post_head("/v1/chat/completions", Some(body.len()));
        idle.write_all(format!("{head}{body}").as_bytes()).await?;
        let (status, text) = read_raw_response(&mut idle).await?;
        ensure!(status == 200, "the idle connection's request: {status} {text}");
        let streaming = json!({"model": MODEL, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
        let mut stream = http_post_json_stream(&node.url("/v1/chat/completions"), &streaming).await?;
        ensure!(stream.status == 200);
        let first = stream.next_chunk().await.context("no first chunk")??;
        node.process().terminate()?;
        let (rest, err) = stream.collect_chunks().await;
        ensure!(err.is_none(), "the stream was cut by the drain: {err:?}");
        let text: String = std::iter::once(&first)
            .chain(&rest)
            .map(|c| String::from_utf8_lossy(&c.data).into_owned())
            .collect();
        ensure!(text.contains("[DONE]"), "the stream did not run to its end: {text:?}");
        // The idle connection is closed by the node, not left to the drain timeout.
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut buf))
            .await
            .context("the idle connection was still open 10 s into the drain")??;
        ensure!(n == 0, "unexpected bytes on the idle connection: {:?}", &buf[..n]);
        let exit = node.process().wait_exit(Duration::from_secs(10)).await?;
        ensure!(exit.success(), "exit status {exit}");
        Ok(())
    })
    .await;
}

/// `switchyard validate --strict` (issue 16): a config that loads with warnings prints them, each saying
/// what Switchyard does instead, and fails only with `--strict`; a config without warnings passes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_strict_fails_on_warnings_only() {
    // Built (if stale) before the clock starts: the bound is for the commands, not for cargo.
    bin_path("switchyard");
    run_bounded(Duration::from_secs(30), async {
        let dir = tempfile::tempdir()?;
        let warned = dir.path().join("warned.yaml");
        let clean = dir.path().join("clean.yaml");
        let route = "apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata:
  name: r
spec:
  rules:
    - matches:
        - headers:
            - name: x-ai-eg-model
              value: m
      backendRefs:
        - name: b
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: b
spec:
  endpoints:
    - ip:
        address: 127.0.0.1
        port: 9
";
        std::fs::write(&clean, route)?;
        std::fs::write(
            &warned,
            route.replace("  rules:\n", "  hostnames: [ai.example.com]\n  rules:\n"),
        )?;
        let (clean, warned) = (clean.display().to_string(), warned.display().to_string());

        let out = switchyard(&["validate", "--config", &warned]).await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(out.status.success(), "validate without --strict: {out:?}");
        ensure!(
            stdout.contains(
                "spec.hostnames: ignored: every route is served whatever the request's Host"
            ),
            "the warning says what Switchyard does instead: {stdout}"
        );
        let out = switchyard(&["validate", "--config", &warned, "--strict"]).await?;
        ensure!(
            !out.status.success(),
            "--strict with a warning succeeded: {out:?}"
        );
        ensure!(
            String::from_utf8_lossy(&out.stderr).contains("1 warning(s) above and --strict"),
            "{out:?}"
        );
        let out = switchyard(&["validate", "--config", &clean, "--strict"]).await?;
        ensure!(out.status.success(), "--strict without warnings: {out:?}");
        Ok(())
    })
    .await;
}
