//! A real HAProxy (Debian's `haproxy` package) in TCP mode in front of Switchyard nodes, configured from
//! `deploy/haproxy/haproxy.cfg.in` through `deploy/haproxy/render.sh` — the same files operators use — and
//! run in the foreground (`-db`) as a [`Process`], so it is killed by PID like everything else.
//!
//! Also [`LoadClient`]: steady client load through the load balancer with honest per-request accounting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::{free_port, http_get, http_post_json, poll_until, Process};

/// Where Debian installs HAProxy.
pub const HAPROXY: &str = "/usr/sbin/haproxy";

/// The repository root (for `deploy/`).
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// HAProxy's path, or an error telling how to install it. Tests that need it fail (never skip) on this.
pub fn haproxy_path() -> anyhow::Result<PathBuf> {
    let p = PathBuf::from(HAPROXY);
    if !p.exists() {
        bail!(
            "{HAPROXY} is missing: the load-balancer tests need Debian's haproxy package \
             (`apt-get install -y haproxy`; .ci/run installs it)"
        );
    }
    Ok(p)
}

/// One backend server of the load balancer: a node's client and admin addresses.
#[derive(Debug, Clone)]
pub struct LbServer {
    /// Server name in HAProxy (and in its stats).
    pub name: String,
    /// The node's client listener.
    pub client: SocketAddr,
    /// The node's admin listener (checked with `GET /readyz`).
    pub admin: SocketAddr,
}

/// Renders `deploy/haproxy/haproxy.cfg.in` with `deploy/haproxy/render.sh`.
pub fn render_haproxy_config(
    bind: SocketAddr,
    stats: SocketAddr,
    servers: &[LbServer],
) -> anyhow::Result<String> {
    let script = repo_root().join("deploy/haproxy/render.sh");
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(&script)
        .args(["--bind", &bind.to_string(), "--stats", &stats.to_string()]);
    for s in servers {
        cmd.arg(format!(
            "{}={}:{}/{}",
            s.name,
            s.client.ip(),
            s.client.port(),
            s.admin.port()
        ));
    }
    let out = cmd
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// A server's state as HAProxy's stats CSV reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStat {
    /// `UP`, `DOWN`, `UP 1/2`, `DOWN 1/2`, `MAINT`, `no check`…
    pub status: String,
    /// Total connections (sessions) HAProxy sent to this server.
    pub sessions: u64,
    /// Connections currently open to this server.
    pub current: u64,
}

/// A running HAProxy.
#[derive(Debug)]
pub struct Haproxy {
    /// Client-facing address.
    pub bind: SocketAddr,
    /// Stats page address (`GET /;csv`).
    pub stats: SocketAddr,
    /// The rendered configuration file.
    pub config_path: PathBuf,
    process: Process,
}

impl Haproxy {
    /// Starts HAProxy on 127.0.0.1 (free ports) in front of `servers`, and waits until it serves its stats
    /// page. Servers start DOWN until their `/readyz` passes `rise` checks: see [`Haproxy::wait_status`].
    pub async fn start(servers: &[LbServer]) -> anyhow::Result<Haproxy> {
        let bind = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let stats = SocketAddr::from(([127, 0, 0, 1], free_port()));
        Self::start_on(bind, stats, servers).await
    }

    /// Starts HAProxy on the given addresses.
    pub async fn start_on(
        bind: SocketAddr,
        stats: SocketAddr,
        servers: &[LbServer],
    ) -> anyhow::Result<Haproxy> {
        let haproxy = haproxy_path()?;
        let config = render_haproxy_config(bind, stats, servers)?;
        let mut cmd = std::process::Command::new(&haproxy);
        // The config lives in the process's own directory: written first, then the process started.
        let dir = tempfile::Builder::new()
            .prefix("switchyard-haproxy-cfg-")
            .tempdir()?;
        let config_path = dir.path().join("haproxy.cfg");
        std::fs::write(&config_path, &config)?;
        let check = std::process::Command::new(&haproxy)
            .args(["-c", "-q", "-f"])
            .arg(&config_path)
            .output()?;
        if !check.status.success() {
            bail!(
                "haproxy -c rejected the rendered config:\n{}\n{config}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
        cmd.arg("-db").arg("-f").arg(&config_path);
        let process = Process::spawn("haproxy", cmd)?;
        // Keep the config next to the captured output so it outlives `dir`.
        let kept = process.dir().join("haproxy.cfg");
        std::fs::copy(&config_path, &kept)?;
        let lb = Haproxy {
            bind,
            stats,
            config_path: kept,
            process,
        };
        poll_until(
            Duration::from_secs(10),
            Duration::from_millis(20),
            || async { lb.servers().await.ok() },
        )
        .await
        .with_context(|| format!("haproxy never served its stats page:\n{}", lb.logs()))?;
        Ok(lb)
    }

    /// `http://bind{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.bind, path)
    }

    /// Every backend server's state, by name, from the stats CSV.
    pub async fn servers(&self) -> anyhow::Result<BTreeMap<String, ServerStat>> {
        let r = http_get(&format!("http://{}/;csv", self.stats)).await?;
        if !r.status.is_success() {
            bail!("stats answered {}", r.status);
        }
        parse_stats_csv(&r.text())
    }

    /// Waits until server `name`'s status starts with `status` (`UP` / `DOWN`); returns when it was seen.
    pub async fn wait_status(
        &self,
        name: &str,
        status: &str,
        deadline: Duration,
    ) -> anyhow::Result<Instant> {
        poll_until(deadline, Duration::from_millis(10), || async {
            let s = self.servers().await.ok()?;
            let st = &s.get(name)?.status;
            // "UP 1/2" is a server going down, "DOWN 1/2" one coming up: only the settled state counts.
            (st == status).then(Instant::now)
        })
        .await
        .with_context(|| format!("haproxy never reported {name} {status} within {deadline:?}"))
    }

    /// The process (logs, signals).
    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }

    /// Captured output.
    pub fn logs(&self) -> String {
        self.process.logs()
    }
}

/// Parses HAProxy's `;csv` stats into backend servers (not FRONTEND/BACKEND rows).
pub fn parse_stats_csv(csv: &str) -> anyhow::Result<BTreeMap<String, ServerStat>> {
    let mut lines = csv.lines();
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .context("no CSV header")?;
    let cols: Vec<&str> = header.split(',').collect();
    let col = |name: &str| {
        cols.iter()
            .position(|c| *c == name)
            .with_context(|| format!("no column {name}"))
    };
    let (px, sv, status, stot, scur) = (
        col("pxname")?,
        col("svname")?,
        col("status")?,
        col("stot")?,
        col("scur")?,
    );
    let mut out = BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() <= status.max(stot).max(scur) || f[px] != "switchyard_nodes" {
            continue;
        }
        if f[sv] == "FRONTEND" || f[sv] == "BACKEND" {
            continue;
        }
        out.insert(
            f[sv].to_string(),
            ServerStat {
                status: f[status].to_string(),
                sessions: f[stot].parse().unwrap_or(0),
                current: f[scur].parse().unwrap_or(0),
            },
        );
    }
    Ok(out)
}

/// One client request's outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// When it was sent.
    pub started: Instant,
    /// When it ended.
    pub ended: Instant,
    /// Which client task sent it.
    pub task: usize,
    /// `None` on a 200, otherwise what went wrong.
    pub error: Option<String>,
}

/// Steady load: `concurrency` tasks each sending chat requests back to back through one URL until
/// stopped (or `max_per_task` requests each, so the loop is bounded). Even tasks reuse keep-alive
/// connections (a pooled client, like real SDKs); odd tasks open a new connection per request. Each
/// task thinks 0–3 ms between requests.
pub struct LoadClient {
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Number of concurrent tasks.
    pub concurrency: usize,
}

impl LoadClient {
    /// Starts the load. `body(i)` is the JSON body of request `i` of a task.
    pub fn start(
        url: &str,
        concurrency: usize,
        max_per_task: usize,
        body: fn(usize, usize) -> Value,
    ) -> LoadClient {
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for task in 0..concurrency {
            let (stop, outcomes, url) = (stop.clone(), outcomes.clone(), url.to_string());
            tasks.push(tokio::spawn(async move {
                let pooled = task % 2 == 0;
                let client: Client<HttpConnector, Full<Bytes>> =
                    Client::builder(TokioExecutor::new())
                        .pool_idle_timeout(Duration::from_secs(30))
                        .build_http();
                for i in 0..max_per_task {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let started = Instant::now();
                    let b = body(task, i);
                    let res = tokio::time::timeout(Duration::from_secs(20), async {
                        if pooled {
                            pooled_post(&client, &url, &b).await
                        } else {
                            let r = http_post_json(&url, &b).await?;
                            Ok((r.status.as_u16(), r.text()))
                        }
                    })
                    .await
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out after 20s")));
                    let error = match res {
                        Ok((200, _)) => None,
                        Ok((status, text)) => Some(format!("HTTP {status}: {text}")),
                        Err(e) => Some(format!("{e:#}")),
                    };
                    let o = Outcome {
                        started,
                        ended: Instant::now(),
                        task,
                        error,
                    };
                    outcomes.lock().unwrap_or_else(|e| e.into_inner()).push(o);
                    // A little think time, as real clients have: keep-alive connections sit idle between
                    // requests, which is when a draining server must not close them under the client.
                    let think = u64::try_from((task + i) % 4).unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(think)).await;
                }
            }));
        }
        LoadClient {
            stop,
            outcomes,
            tasks,
            concurrency,
        }
    }

    /// Outcomes so far.
    pub fn outcomes(&self) -> Vec<Outcome> {
        self.outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Number of requests completed so far.
    pub fn completed(&self) -> usize {
        self.outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Waits until `n` more requests completed (a bounded "let the load run" that never sleeps blindly).
    pub async fn run_for_requests(&self, n: usize, deadline: Duration) -> anyhow::Result<()> {
        let target = self.completed() + n;
        poll_until(deadline, Duration::from_millis(10), || async {
            (self.completed() >= target).then_some(())
        })
        .await
        .with_context(|| format!("the load did not complete {n} more requests in {deadline:?}"))
    }

    /// Stops the load, waits for the tasks (bounded) and returns every outcome.
    pub async fn stop(self) -> anyhow::Result<Vec<Outcome>> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .context("a load task did not stop within 30s")??;
        }
        let v = self
            .outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Ok(v)
    }
}

async fn pooled_post(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    body: &Value,
) -> anyhow::Result<(u16, String)> {
    let req = hyper::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))?;
    let resp = client.request(req).await.context("sending request")?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .context("reading response body")?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
