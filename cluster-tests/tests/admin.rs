//! The admin listener and reload on real nodes (issue 18): a reload that would drop every route is refused
//! on `POST /reload` and on SIGHUP unless `--allow-empty-config`; `/readyz` answers 503 whenever the node
//! has no route, also right after start; the admin token, the `Host` check and the refusal of browser form
//! posts; `switchyard status` with and without the token.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{ensure, Context};
use hyper::Method;
use serde_json::{json, Value};
use switchyard_cluster_tests::harness::{
    bin_path, fallback_config, http_get, http_post_json, http_request, poll_until, run_bounded,
    MockProvider, Process, SwitchyardNode, SEED_POLICY,
};

const MODEL: &str = "admin-model";

fn chat() -> Value {
    json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
}

async fn chat_status(node: &SwitchyardNode) -> anyhow::Result<u16> {
    Ok(http_post_json(&node.url("/v1/chat/completions"), &chat())
        .await?
        .status
        .as_u16())
}

async fn readyz(admin: SocketAddr) -> anyhow::Result<u16> {
    Ok(http_get(&format!("http://{admin}/readyz"))
        .await?
        .status
        .as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_without_routes_is_refused_and_the_running_config_kept() {
    run_bounded(Duration::from_secs(60), async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        let config = fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY);
        let mut node = SwitchyardNode::start_with(&config, &["--node-id", "admin-1"]).await?;
        ensure!(chat_status(&node).await? == 200);

        // POST /reload of an empty file: refused with the reason, routes and readiness kept.
        std::fs::write(&node.config_path, "")?;
        let r = http_request(Method::POST, &node.admin_url("/reload"), &[], "").await?;
        ensure!(
            r.status == 400 && r.text().contains("no AIGatewayRoute"),
            "empty reload: {} {}",
            r.status,
            r.text()
        );
        ensure!(chat_status(&node).await? == 200);
        ensure!(readyz(node.admin).await? == 200);

        // SIGHUP with a comment-only file: refused the same way (seen in the log), routes kept.
        std::fs::write(&node.config_path, "# all routes removed\n")?;
        node.process().signal(libc::SIGHUP)?;
        poll_until(
            Duration::from_secs(10),
            Duration::from_millis(20),
            || async { node.logs().contains("no AIGatewayRoute").then_some(()) },
        )
        .await
        .with_context(|| format!("SIGHUP refusal not logged:\n{}", node.logs()))?;
        ensure!(chat_status(&node).await? == 200);
        ensure!(readyz(node.admin).await? == 200);
        let status = node.status().await?;
        ensure!(status["ready"] == true, "status: {status}");

        // A config with routes still reloads.
        std::fs::write(&node.config_path, &config)?;
        let r = http_request(Method::POST, &node.admin_url("/reload"), &[], "").await?;
        ensure!(r.status == 200, "good reload: {} {}", r.status, r.text());
        Ok(())
    })
    .await;
}

/// Starts a node on `config` without waiting for `/readyz` (a node without routes never becomes ready).
async fn start_unready(
    dir: &tempfile::TempDir,
    config: &str,
    extra: &[&str],
) -> anyhow::Result<(Process, SocketAddr, SocketAddr)> {
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config)?;
    let mut args = vec![
        "run".to_string(),
        "--config".into(),
        path.display().to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--admin".into(),
        "127.0.0.1:0".into(),
        "--drain-delay".into(),
        "0s".into(),
        "--node-id".into(),
        "admin-empty".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let process = Process::start(
        "switchyard-admin-empty",
        &bin_path("switchyard"),
        args,
        &[("SWITCHYARD_LOG", "info")],
    )?;
    let (listen, admin) = poll_until(
        Duration::from_secs(30),
        Duration::from_millis(20),
        || async {
            let out = process.stdout();
            let line = out.lines().find(|l| l.starts_with("switchyard ready "))?;
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|f| f.strip_prefix(name))
                    .and_then(|v| v.parse::<SocketAddr>().ok())
            };
            Some((field("listen=")?, field("admin=")?))
        },
    )
    .await
    .with_context(|| format!("no ready line:\n{}", process.logs()))?;
    Ok((process, listen, admin))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_the_node_has_no_route() {
    run_bounded(Duration::from_secs(60), async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        let config = fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY);
        let dir = tempfile::tempdir()?;
        let (mut process, listen, admin) =
            start_unready(&dir, "# routes come later\n", &["--allow-empty-config"]).await?;
        let status_url = format!("http://{admin}/status");

        // Started without a route: alive, not ready, and /status says so.
        ensure!(readyz(admin).await? == 503, "{}", process.logs());
        ensure!(http_get(&format!("http://{admin}/healthz")).await?.status == 200);
        let status = http_get(&status_url).await?.json()?;
        ensure!(status["ready"] == false, "status: {status}");

        // Routes arrive: ready.
        std::fs::write(dir.path().join("config.yaml"), &config)?;
        let r = http_request(Method::POST, &format!("http://{admin}/reload"), &[], "").await?;
        ensure!(r.status == 200, "reload: {} {}", r.status, r.text());
        ensure!(readyz(admin).await? == 200);
        let r = http_post_json(&format!("http://{listen}/v1/chat/completions"), &chat()).await?;
        ensure!(r.status == 200, "chat: {}", r.status);

        // --allow-empty-config: an empty reload is accepted, and the node leaves the load balancer.
        std::fs::write(dir.path().join("config.yaml"), "")?;
        let r = http_request(Method::POST, &format!("http://{admin}/reload"), &[], "").await?;
        ensure!(
            r.status == 200,
            "allowed empty reload: {} {}",
            r.status,
            r.text()
        );
        ensure!(readyz(admin).await? == 503);
        process.terminate()?;
        let exit = process.wait_exit(Duration::from_secs(10)).await?;
        ensure!(exit.success(), "exit {exit}");
        Ok(())
    })
    .await;
}

async fn switchyard_status(
    admin: &str,
    env: &[(&str, &str)],
) -> anyhow::Result<std::process::Output> {
    Ok(tokio::process::Command::new(bin_path("switchyard"))
        .args(["status", "--admin", admin])
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        .env_remove("SWITCHYARD_ADMIN_TOKEN_FILE")
        .envs(env.iter().copied())
        .output()
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_host_check_and_form_refusal_hold() {
    run_bounded(Duration::from_secs(60), async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        let config = fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY);
        let secrets = tempfile::tempdir()?;
        let token_file = secrets.path().join("admin-token");
        std::fs::write(&token_file, "tok-3f9a\n")?;
        let token_path = token_file.display().to_string();
        let node = SwitchyardNode::start_with(
            &config,
            &[
                "--node-id",
                "admin-2",
                "--admin-token-file",
                &token_path,
                "--admin-hosts",
                "admin.internal",
            ],
        )
        .await?;
        let admin = format!("http://{}", node.admin);
        let status = node.admin_url("/status");
        let reload = node.admin_url("/reload");
        let bearer = ("authorization", "Bearer tok-3f9a");

        // Token: required for /status, /metrics and POST /reload; probes stay open.
        let r = http_get(&status).await?;
        ensure!(
            r.status == 401 && r.header("www-authenticate").is_some(),
            "{}",
            r.status
        );
        ensure!(http_get(&node.admin_url("/metrics")).await?.status == 401);
        let r = http_request(
            Method::GET,
            &status,
            &[("authorization", "Bearer wrong")],
            "",
        )
        .await?;
        ensure!(r.status == 401 && !r.text().contains("tok-3f9a"));
        ensure!(
            http_request(Method::GET, &status, &[bearer], "")
                .await?
                .status
                == 200
        );
        ensure!(http_request(Method::POST, &reload, &[], "").await?.status == 401);
        ensure!(
            http_request(Method::POST, &reload, &[bearer], "")
                .await?
                .status
                == 200
        );
        ensure!(readyz(node.admin).await? == 200);

        // `switchyard status` sends the token when given one (env, like the node's own flag).
        let out = switchyard_status(&admin, &[]).await?;
        ensure!(!out.status.success(), "status without token succeeded");
        ensure!(
            String::from_utf8_lossy(&out.stderr).contains("admin token"),
            "{out:?}"
        );
        let out = switchyard_status(&admin, &[("SWITCHYARD_ADMIN_TOKEN", "tok-3f9a")]).await?;
        ensure!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("admin-2"),
            "status with token: {out:?}"
        );
        let out =
            switchyard_status(&admin, &[("SWITCHYARD_ADMIN_TOKEN_FILE", &token_path)]).await?;
        ensure!(out.status.success(), "status with token file: {out:?}");

        // Host (DNS rebinding): a foreign name is refused even with the token; configured names,
        // localhost and the listener's IP are answered.
        let port = node.admin.port();
        for (host, want) in [
            (format!("rebind.attacker.example:{port}"), 421),
            (format!("admin.internal:{port}"), 200),
            (format!("localhost:{port}"), 200),
            (format!("127.0.0.1:{port}"), 200),
        ] {
            let r = http_request(Method::GET, &status, &[bearer, ("host", &host)], "").await?;
            ensure!(r.status == want, "Host {host}: {}", r.status);
        }

        // Browser form posts: form content types and foreign origins are refused before any reload.
        for (name, headers, want) in [
            (
                "form",
                vec![
                    bearer,
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                415,
            ),
            (
                "multipart",
                vec![bearer, ("content-type", "multipart/form-data; boundary=x")],
                415,
            ),
            (
                "text/plain",
                vec![bearer, ("content-type", "text/plain")],
                415,
            ),
            (
                "foreign origin",
                vec![bearer, ("origin", "http://evil.example")],
                403,
            ),
        ] {
            let r = http_request(Method::POST, &reload, &headers, "x=1").await?;
            ensure!(r.status == want, "{name}: {} {}", r.status, r.text());
        }
        ensure!(
            !node.logs().contains("tok-3f9a"),
            "the token shows in the logs:\n{}",
            node.logs()
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_admin_listener_refuses_reload_without_a_token() {
    run_bounded(Duration::from_secs(60), async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        let config = fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY);
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, &config)?;
        let node = SwitchyardNode::start_file(
            path,
            "127.0.0.1:0",
            "0.0.0.0:0",
            &["--node-id", "admin-3"],
            dir,
        )
        .await?;
        let reload = format!("http://127.0.0.1:{}/reload", node.admin.port());
        let r = http_request(Method::POST, &reload, &[], "").await?;
        ensure!(
            r.status == 403 && r.text().contains("--admin-token"),
            "{} {}",
            r.status,
            r.text()
        );
        // Reading stays open, as before.
        let r = http_get(&format!("http://127.0.0.1:{}/status", node.admin.port())).await?;
        ensure!(r.status == 200, "status: {}", r.status);
        ensure!(
            node.logs().contains("POST /reload is refused"),
            "{}",
            node.logs()
        );
        Ok(())
    })
    .await;
}
