//! `just cluster N`: N Switchyard nodes on loopback behind a real HAProxy (TCP mode, checking each node's
//! `/readyz`, configured from deploy/haproxy/), with the two mock providers of
//! deploy/examples/local-fallback.yaml (primary on 127.0.0.1:9001, fallback on 127.0.0.1:9002, both healthy
//! at first). Prints how to use and inspect it, then serves until Ctrl-C, which stops every process.
//!
//! The nodes form one cluster (`--cluster local`): a fresh cluster CA and one certificate per node are made
//! with `switchyard certs` in a temp dir, every node is seeded with node-1's gossip address, and the traffic
//! starts once every node lists every other one alive — so an ejection on one node is shared by all.
//!
//! Ports: HAProxy 127.0.0.1:8080 (clients) and 127.0.0.1:8404 (stats page); node i (1-based) listens on
//! 127.0.0.1:(8080+i) with admin on 127.0.0.1:(9900+i) and gossip (UDP) on 127.0.0.1:(7945+i).

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde_json::json;
use switchyard_cluster_tests::harness::{
    alive_members, bin_path, http_post_json, make_certs, poll_until, repo_root, Haproxy, LbServer,
    MockOptions, MockProvider, SwitchyardNode,
};

/// N nodes behind HAProxy on loopback.
#[derive(Parser)]
struct Args {
    /// Number of nodes.
    #[arg(default_value_t = 3)]
    nodes: u16,
    /// Exit after the demo traffic instead of serving until Ctrl-C (used by the tests of the guide).
    #[arg(long)]
    exit: bool,
}

const MODEL: &str = "us.meta.llama3-2-1b-instruct-v1:0";
/// The cluster name every node runs with.
const CLUSTER: &str = "local";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        (1..=50).contains(&args.nodes),
        "between 1 and 50 nodes, please"
    );
    let config = repo_root().join("deploy/examples/local-fallback.yaml");
    let mock = |name: &str, port: u16| MockOptions {
        name: Some(name.into()),
        listen: Some(([127, 0, 0, 1], port).into()),
        mode: Some("ok".into()),
        ..MockOptions::default()
    };
    let primary = MockProvider::start_with(mock("primary", 9001))
        .await
        .context("port 9001 must be free for the primary mock provider")?;
    let fallback = MockProvider::start_with(mock("fallback", 9002))
        .await
        .context("port 9002 must be free for the fallback mock provider")?;
    println!(
        "mock providers: primary 127.0.0.1:9001 (control {}), fallback 127.0.0.1:9002 (control {})",
        primary.control_addr, fallback.control_addr
    );

    // The cluster CA and node certificates, made by the real `switchyard certs` commands.
    let certs = tempfile::Builder::new()
        .prefix("switchyard-local-cluster-certs-")
        .tempdir()?;
    let ids: Vec<String> = (1..=args.nodes).map(|i| format!("node-{i}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    make_certs(certs.path(), &id_refs).context("making the cluster certificates")?;
    let cert = |name: &str| certs.path().join(name).display().to_string();
    let seed = "127.0.0.1:7946";
    println!(
        "cluster {CLUSTER:?}: CA and node certificates in {}, seed {seed}",
        certs.path().display()
    );

    let mut nodes = Vec::new();
    let mut servers = Vec::new();
    for i in 1..=args.nodes {
        let server = LbServer {
            name: format!("node-{i}"),
            client: ([127, 0, 0, 1], 8080 + i).into(),
            admin: ([127, 0, 0, 1], 9900 + i).into(),
        };
        let gossip = format!("127.0.0.1:{}", 7945 + i);
        let (ca, crt, key) = (
            cert("ca.crt"),
            cert(&format!("{}.crt", server.name)),
            cert(&format!("{}.key", server.name)),
        );
        let flags = [
            "--node-id",
            &server.name,
            "--drain-delay",
            "2s",
            "--cluster",
            CLUSTER,
            "--gossip",
            &gossip,
            "--seeds",
            seed,
            "--cluster-ca",
            &ca,
            "--cluster-cert",
            &crt,
            "--cluster-key",
            &key,
        ];
        let node = SwitchyardNode::start_file(
            config.clone(),
            &server.client.to_string(),
            &server.admin.to_string(),
            &flags,
            tempfile::tempdir()?,
        )
        .await
        .with_context(|| {
            format!(
                "starting {} (ports {} and {} and UDP {gossip} must be free)",
                server.name,
                server.client.port(),
                server.admin.port()
            )
        })?;
        println!(
            "{}: pid {}, client http://{}, admin http://{}, gossip {gossip}",
            server.name,
            node.pid(),
            server.client,
            server.admin
        );
        nodes.push(node);
        servers.push(server);
    }
    let joined = std::time::Instant::now();
    poll_until(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            for (node, me) in nodes.iter().zip(&ids) {
                let alive = alive_members(&node.status().await.ok()?);
                if ids.iter().any(|id| id != me && !alive.contains(id)) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await
    .context("the nodes did not all see each other alive within 30s")?;
    println!(
        "every node lists the {} others alive ({:?} after the last one started)",
        nodes.len() - 1,
        joined.elapsed()
    );

    let lb = Haproxy::start_on(
        ([127, 0, 0, 1], 8080).into(),
        ([127, 0, 0, 1], 8404).into(),
        &servers,
    )
    .await
    .context("HAProxy (ports 8080 and 8404 must be free)")?;
    for s in &servers {
        lb.wait_status(&s.name, "UP", Duration::from_secs(10))
            .await?;
    }
    println!(
        "haproxy: clients http://{} , stats http://{}/ (config {})",
        lb.bind,
        lb.stats,
        lb.config_path.display()
    );

    for i in 0..args.nodes * 2 {
        let body = json!({"model": MODEL, "messages": [{"role": "user", "content": format!("cluster request {i}")}]});
        let r = http_post_json(&lb.url("/v1/chat/completions"), &body).await?;
        println!("request {i} through HAProxy: HTTP {}", r.status);
    }
    let stats = lb.servers().await?;
    for (name, s) in &stats {
        println!(
            "  {name}: {} ({} connection(s) so far)",
            s.status, s.sessions
        );
    }
    let status = tokio::process::Command::new(bin_path("switchyard"))
        .args(["status", "--admin", &format!("http://{}", servers[0].admin)])
        .output()
        .await?;
    print!("{}", String::from_utf8_lossy(&status.stdout));
    if args.exit {
        return Ok(());
    }

    let first = &servers[0];
    println!(
        r#"
The cluster keeps running. Try:
  curl -s http://127.0.0.1:8080/v1/chat/completions -H 'content-type: application/json' \
    -d '{{"model":"{MODEL}","messages":[{{"role":"user","content":"hi"}}]}}'
  switchyard status --admin http://{admin}          # any node: target/debug/switchyard
  curl -s 'http://127.0.0.1:8404/;csv' | cut -d, -f1,2,18    # HAProxy's view: UP/DOWN per node
  curl -s -X PUT http://{pc}/mode -d '{{"mode":"status","status":500}}'   # break the primary: the node that
                         # meets the 500 ejects it and every other node shows it cluster-ejected in status
  curl -s -X PUT http://{pc}/mode -d '{{"mode":"ok"}}'                    # heal it
  kill -TERM {pid}   # drain {name}: HAProxy marks it DOWN, it exits 0 after its 2s drain delay
  curl -s -X POST http://{admin}/reload                # reload the routes (same as kill -HUP)
Ctrl-C stops everything."#,
        admin = first.admin,
        pc = primary.control_addr,
        pid = nodes[0].pid(),
        name = first.name,
    );
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = tokio::time::sleep(Duration::from_secs(24 * 3600)) => {}
    }
    println!("stopping {} node(s), HAProxy and the mocks", nodes.len());
    drop(lb);
    drop(nodes);
    drop(certs);
    Ok(())
}
