//! `switchyard demo` (DESIGN §7): the whole cluster on one machine, with no keys and no network.
//!
//! It finds the `mock-provider` binary next to its own executable, starts two mock providers on loopback
//! (a primary that answers 500 after a few seconds of traffic, and a healthy fallback), creates a fresh
//! cluster CA and node certificates in a temporary directory, starts a 3-node cluster as child processes
//! on 127.0.0.1-3 (`n1` is every node's seed; each node dials providers from its own address), sends
//! traffic round-robin to the nodes and prints what happens: who answered, each node's view of the
//! primary, and the `switchyard status` table when the cluster fails over. On exit (`--exit-after`, Ctrl-C,
//! SIGTERM, or an error) every child is killed by PID and the temporary directory removed.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::signal::unix::{signal, SignalKind};

/// Requests the primary answers before it starts failing (about 3 s of demo traffic).
const PRIMARY_OK_REQUESTS: u32 = 12;
/// Time between demo requests.
const REQUEST_EVERY: Duration = Duration::from_millis(250);
/// The demo's model name.
const MODEL: &str = "demo-model";
/// Nodes in the demo cluster.
const NODES: u8 = 3;

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// `mock-provider` is not next to this executable.
    #[error("{0} not found: the demo runs the mock provider built with the workspace; run `cargo build --release --workspace` first (then `target/release/switchyard demo`)")]
    MockMissing(PathBuf),
    /// Something could not be set up.
    #[error("{0}")]
    Setup(String),
}

fn setup(what: impl std::fmt::Display) -> DemoError {
    DemoError::Setup(what.to_string())
}

/// The demo's children and temporary directory; dropping it kills every child (by PID) and removes the
/// directory, whatever way the demo ends.
struct Children {
    dir: PathBuf,
    procs: Vec<(String, Child)>,
}

impl Children {
    fn spawn(&mut self, label: &str, program: &Path, args: &[String]) -> Result<u32, DemoError> {
        let out = std::fs::File::create(self.dir.join(format!("{label}.out"))).map_err(setup)?;
        let err = std::fs::File::create(self.dir.join(format!("{label}.log"))).map_err(setup)?;
        let mut cmd = Command::new(program);
        // If the demo itself is killed (even with SIGKILL, which runs no cleanup), the kernel kills the
        // children too: nothing the demo started outlives it.
        crate::child::die_with_parent(&mut cmd);
        let child = cmd
            .args(args)
            .env("SWITCHYARD_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| setup(format!("cannot start {}: {e}", program.display())))?;
        let pid = child.id();
        self.procs.push((label.to_string(), child));
        Ok(pid)
    }

    /// Waits (bounded) for a line starting with `prefix` in `label`'s stdout; fails if it exits first.
    async fn ready_line(&mut self, label: &str, prefix: &str) -> Result<String, DemoError> {
        let path = self.dir.join(format!("{label}.out"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if let Some(l) = text.lines().find(|l| l.starts_with(prefix)) {
                return Ok(l.to_string());
            }
            if let Some((_, child)) = self.procs.iter_mut().find(|(l, _)| l == label) {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = std::fs::read_to_string(self.dir.join(format!("{label}.log")))
                        .unwrap_or_default();
                    return Err(setup(format!(
                        "{label} exited ({status}) before it was ready:\n{log}"
                    )));
                }
            }
            if Instant::now() > deadline {
                return Err(setup(format!("{label} not ready within 20 s")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in self.procs.iter_mut().rev() {
            // SIGKILL by PID (std's Child::kill), then reap: nothing outlives the demo.
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key))
}

fn addr_field(line: &str, key: &str) -> Result<SocketAddr, DemoError> {
    field(line, key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| setup(format!("no {key} in {line:?}")))
}

fn free_udp_port(ip: Ipv4Addr) -> Result<u16, DemoError> {
    let s = UdpSocket::bind((ip, 0)).map_err(|e| setup(format!("cannot bind {ip}:0/udp: {e}")))?;
    Ok(s.local_addr().map_err(setup)?.port())
}

fn config_yaml(primary: SocketAddr, fallback: SocketAddr) -> String {
    format!(
        r#"apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIGatewayRoute
metadata:
  name: demo
  namespace: default
spec:
  schema:
    name: OpenAI
  rules:
    - matches:
        - headers:
            - type: Exact
              name: x-ai-eg-model
              value: {MODEL}
      backendRefs:
        - name: primary
          priority: 0
        - name: fallback
          priority: 1
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: primary
  namespace: default
spec:
  endpoints:
    - ip:
        address: {pa}
        port: {pp}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: fallback
  namespace: default
spec:
  endpoints:
    - ip:
        address: {fa}
        port: {fp}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata:
  name: demo-health
  namespace: default
spec:
  targetRefs:
    - group: gateway.networking.k8s.io
      kind: HTTPRoute
      name: demo
  retry:
    numRetries: 5
    perRetry:
      backOff:
        baseInterval: 100ms
        maxInterval: 10s
      timeout: 30s
    retryOn:
      httpStatusCodes:
        - 500
      triggers:
        - connect-failure
        - retriable-status-codes
  healthCheck:
    passive:
      baseEjectionTime: 5s
      interval: 2s
      maxEjectionPercent: 100
      consecutive5XxErrors: 1
      consecutiveGatewayErrors: 0
      consecutiveLocalOriginFailures: 1
      splitExternalLocalOriginErrors: false
"#,
        pa = primary.ip(),
        pp = primary.port(),
        fa = fallback.ip(),
        fp = fallback.port(),
    )
}

/// A running demo node.
struct DemoNode {
    id: String,
    listen: SocketAddr,
    admin: SocketAddr,
}

/// Runs the demo until `exit_after` (if given), Ctrl-C or SIGTERM.
pub async fn run(exit_after: Option<Duration>) -> Result<(), DemoError> {
    let me = std::env::current_exe().map_err(setup)?;
    let mock = me.with_file_name(format!("mock-provider{}", std::env::consts::EXE_SUFFIX));
    if !mock.exists() {
        return Err(DemoError::MockMissing(mock));
    }
    let dir = std::env::temp_dir().join(format!("switchyard-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(setup)?;
    let mut kids = Children {
        dir: dir.clone(),
        procs: Vec::new(),
    };

    // Mock providers.
    let mut pids = Vec::new();
    let mut provider = |kids: &mut Children, name: &str, mode: &str| {
        let args: Vec<String> = [
            "--name",
            name,
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
            "--mode",
            mode,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        kids.spawn(name, &mock, &args).map(|pid| pids.push(pid))
    };
    provider(
        &mut kids,
        "primary",
        &format!("fail-after {PRIMARY_OK_REQUESTS} status 500"),
    )?;
    provider(&mut kids, "fallback", "ok")?;
    let primary = addr_field(
        &kids.ready_line("primary", "mock-provider ready ").await?,
        "data=",
    )?;
    let fallback = addr_field(
        &kids.ready_line("fallback", "mock-provider ready ").await?,
        "data=",
    )?;
    println!("mock providers: primary {primary} (answers 500 after {PRIMARY_OK_REQUESTS} requests), fallback {fallback}");

    // Certificates and config.
    let certs = dir.join("certs");
    crate::cluster::certs::write_ca(&certs, "demo", true).map_err(setup)?;
    for i in 1..=NODES {
        crate::cluster::certs::write_node(&certs, &format!("n{i}"), &certs, &[], true)
            .map_err(setup)?;
    }
    let config = dir.join("config.yaml");
    std::fs::write(&config, config_yaml(primary, fallback)).map_err(setup)?;
    println!(
        "fresh cluster CA and node certificates in {}",
        certs.display()
    );

    // The cluster.
    let ips: Vec<Ipv4Addr> = (1..=NODES).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();
    let gossip: Vec<SocketAddr> = ips
        .iter()
        .map(|ip| free_udp_port(*ip).map(|p| SocketAddr::from((*ip, p))))
        .collect::<Result<_, _>>()?;
    for (i, ip) in ips.iter().enumerate() {
        let id = format!("n{}", i + 1);
        let args: Vec<String> = vec![
            "run".into(),
            "--config".into(),
            config.display().to_string(),
            "--listen".into(),
            format!("{ip}:0"),
            "--admin".into(),
            format!("{ip}:0"),
            "--drain-delay".into(),
            "0s".into(),
            "--node-id".into(),
            id.clone(),
            "--cluster".into(),
            "demo".into(),
            "--gossip".into(),
            gossip[i].to_string(),
            "--seeds".into(),
            gossip[0].to_string(),
            "--cluster-ca".into(),
            certs.join("ca.crt").display().to_string(),
            "--cluster-cert".into(),
            certs.join(format!("{id}.crt")).display().to_string(),
            "--cluster-key".into(),
            certs.join(format!("{id}.key")).display().to_string(),
            "--upstream-bind".into(),
            ip.to_string(),
        ];
        pids.push(kids.spawn(&id, &me, &args)?);
    }
    let mut nodes = Vec::new();
    for i in 1..=NODES {
        let id = format!("n{i}");
        let line = kids.ready_line(&id, "switchyard ready ").await?;
        nodes.push(DemoNode {
            listen: addr_field(&line, "listen=")?,
            admin: addr_field(&line, "admin=")?,
            id,
        });
    }
    let list: Vec<String> = pids.iter().map(|p| format!("pid={p}")).collect();
    println!("children: {}", list.join(" "));
    for n in &nodes {
        println!(
            "node {}: listen {} admin {} gossip {}  (switchyard status --admin http://{})",
            n.id,
            n.listen,
            n.admin,
            gossip[nodes.iter().position(|m| m.id == n.id).unwrap_or(0)],
            n.admin
        );
    }
    println!("waiting for the cluster to form...");
    let formed = Instant::now();
    loop {
        let mut all = true;
        for n in &nodes {
            let alive = match crate::status::fetch(&format!("http://{}", n.admin)).await {
                Ok(v) => v["cluster"]["members"]
                    .as_array()
                    .map_or(0, |a| a.iter().filter(|m| m["state"] == "alive").count()),
                Err(_) => 0,
            };
            all &= alive == nodes.len() - 1;
        }
        if all {
            break;
        }
        if formed.elapsed() > Duration::from_secs(30) {
            return Err(setup("the cluster did not form within 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "cluster formed in {:.1}s; sending traffic round-robin to n1..n{NODES} (Ctrl-C to stop)\n",
        formed.elapsed().as_secs_f64()
    );

    let traffic = traffic(&nodes, primary);
    let mut term = signal(SignalKind::terminate()).map_err(setup)?;
    let until = async {
        match exit_after {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = traffic => r?,
        _ = until => println!("\n--exit-after reached"),
        _ = tokio::signal::ctrl_c() => println!("\nCtrl-C"),
        _ = term.recv() => println!("\nSIGTERM"),
    }
    if let Some(n) = nodes.last() {
        if let Ok(v) = crate::status::fetch(&format!("http://{}", n.admin)).await {
            println!("\nfinal status of {}:\n{}", n.id, crate::status::render(&v));
        }
    }
    drop(kids);
    println!(
        "stopped every child ({}) and removed {}",
        list.join(" "),
        dir.display()
    );
    Ok(())
}

/// What each node currently thinks of the primary: `healthy`, `ejected` (its own detector) or
/// `cluster-ejected` (the cluster view, without ever seeing a failure itself).
fn primary_state(status: &Value, primary: SocketAddr) -> (String, Option<String>) {
    let b = status["backends"]
        .as_array()
        .and_then(|a| a.iter().find(|b| b["address"] == primary.to_string()));
    let Some(b) = b else {
        return ("?".into(), None);
    };
    let who = b["cluster"]["observers"].as_array().map(|o| {
        o.iter()
            .filter_map(|o| o["node"].as_str())
            .collect::<Vec<_>>()
            .join(",")
    });
    // `ejected` is any hold on this node; `cluster_ejected` says the hold came from another node's verdict.
    if b["cluster_ejected"].as_bool().unwrap_or(false) {
        ("cluster-ejected".into(), who)
    } else if b["ejected"].as_bool().unwrap_or(false) {
        ("ejected".into(), who)
    } else {
        ("healthy".into(), who)
    }
}

async fn traffic(nodes: &[DemoNode], primary: SocketAddr) -> Result<(), DemoError> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let started = Instant::now();
    let mut counts: std::collections::BTreeMap<String, u32> = Default::default();
    let mut last_report = Instant::now();
    let mut shown_table = false;
    let mut ticker = tokio::time::interval(REQUEST_EVERY);
    for k in 0u64.. {
        ticker.tick().await;
        let n = &nodes[(k as usize) % nodes.len()];
        let body = serde_json::json!({"model": MODEL, "messages": [{"role": "user", "content": format!("demo request {k}")}]});
        let req = http::Request::post(format!("http://{}/v1/chat/completions", n.listen))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(setup)?;
        let who = match tokio::time::timeout(Duration::from_secs(10), client.request(req)).await {
            Ok(Ok(resp)) => {
                let status = resp.status();
                let provider = resp
                    .headers()
                    .get("x-mock-provider")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("?")
                    .to_string();
                let _ = resp.into_body().collect().await;
                if status.is_success() {
                    provider
                } else {
                    format!("HTTP {}", status.as_u16())
                }
            }
            _ => "error".into(),
        };
        *counts.entry(who).or_default() += 1;
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            let mut line = String::new();
            let _ = write!(
                line,
                "t={:>5.1}s  answered by:",
                started.elapsed().as_secs_f64()
            );
            for (who, c) in &counts {
                let _ = write!(line, " {who}={c}");
            }
            let _ = write!(line, "  | primary:");
            let mut cluster_ejected = Vec::new();
            let mut table = None;
            for n in nodes {
                match crate::status::fetch(&format!("http://{}", n.admin)).await {
                    Ok(v) => {
                        let (state, who) = primary_state(&v, primary);
                        let _ = write!(line, " {}={state}", n.id);
                        if state == "cluster-ejected" {
                            cluster_ejected.push((n.id.clone(), who));
                            table.get_or_insert(v);
                        }
                    }
                    Err(_) => {
                        let _ = write!(line, " {}=unreachable", n.id);
                    }
                }
            }
            println!("{line}");
            if let (Some(v), false) = (table, shown_table) {
                shown_table = true;
                for (id, who) in &cluster_ejected {
                    println!(
                        "==> primary cluster-ejected on {id}: observed by {}, {id} itself never saw it fail",
                        who.as_deref().unwrap_or("?")
                    );
                }
                println!("\n{}", crate::status::render(&v));
            }
        }
    }
    Ok(())
}
