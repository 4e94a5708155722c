//! The README's quick start: one Switchyard node on `deploy/examples/local-fallback.yaml` with two mock
//! providers on loopback — the primary answering 500, the fallback healthy — so anyone can watch the seed
//! page's provider fallback happen on their own machine, with no keys and no network.
//!
//! It sends a few requests, prints who answered each and the node's status table, then keeps the gateway up
//! on http://127.0.0.1:8080 until Ctrl-C (or exits at once with `--exit`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde_json::json;
use switchyard_cluster_tests::harness::{
    bin_path, http_post_json, MockOptions, MockProvider, SwitchyardNode,
};

/// Local fallback demo.
#[derive(Parser)]
struct Args {
    /// Exit after the demo traffic instead of serving until Ctrl-C.
    #[arg(long)]
    exit: bool,
    /// Number of demo requests.
    #[arg(long, default_value_t = 6)]
    requests: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .context("repository root")?;
    let config = root.join("deploy/examples/local-fallback.yaml");

    println!("starting mock providers: primary on 127.0.0.1:9001 (answers 500), fallback on 127.0.0.1:9002");
    let start_mock = |name: &str, port: u16, mode: &str| MockOptions {
        name: Some(name.into()),
        listen: Some(([127, 0, 0, 1], port).into()),
        mode: Some(mode.into()),
        ..MockOptions::default()
    };
    let primary = MockProvider::start_with(start_mock("primary", 9001, "status 500"))
        .await
        .context("port 9001 must be free for the demo's primary provider")?;
    let fallback = MockProvider::start_with(start_mock("fallback", 9002, "ok"))
        .await
        .context("port 9002 must be free for the demo's fallback provider")?;

    println!(
        "starting switchyard on {} (client 127.0.0.1:8080, admin 127.0.0.1:9901)",
        config.display()
    );
    let dir = tempfile::tempdir()?;
    let node = SwitchyardNode::start_file(
        config,
        "127.0.0.1:8080",
        "127.0.0.1:9901",
        &["--node-id", "demo"],
        dir,
    )
    .await
    .context("ports 8080 and 9901 must be free for the demo's gateway")?;

    let model = "us.meta.llama3-2-1b-instruct-v1:0";
    for i in 0..args.requests {
        let body = json!({"model": model, "messages": [{"role": "user", "content": format!("demo request {i}")}]});
        let r = http_post_json(&node.url("/v1/chat/completions"), &body).await?;
        let answer = r.json().ok().and_then(|v| {
            v["choices"][0]["message"]["content"]
                .as_str()
                .map(String::from)
        });
        println!(
            "request {i}: HTTP {} {}",
            r.status,
            answer.unwrap_or_else(|| r.text())
        );
    }
    println!(
        "\nprimary received {} request(s), fallback {} — the primary was ejected after its first 500.\n",
        primary.request_count().await?,
        fallback.request_count().await?
    );
    let status = tokio::process::Command::new(bin_path("switchyard"))
        .args(["status", "--admin", &format!("http://{}", node.admin)])
        .output()
        .await?;
    print!("{}", String::from_utf8_lossy(&status.stdout));

    if args.exit {
        return Ok(());
    }
    println!(
        "\nthe gateway keeps running. Try:\n  curl -s http://127.0.0.1:8080/v1/chat/completions \\\n    -H 'content-type: application/json' \\\n    -d '{{\"model\":\"{model}\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}'\n  cargo run -q -p switchyard -- status\nCtrl-C stops everything."
    );
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = tokio::time::sleep(Duration::from_secs(24 * 3600)) => {}
    }
    println!("stopping");
    Ok(())
}
