//! The targets — the mock itself, nginx with one worker, one Switchyard node with one worker thread (the
//! same parallelism as that nginx) and one with its default (a worker thread per CPU) — and the
//! per-process accounting (`/proc/PID/stat` CPU time, `/proc/PID/status` VmHWM) the figures are computed
//! from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::harness::{bin_path, free_port, poll_until, MockOptions, MockProvider, Process};

/// `USER_HZ`: the unit of `/proc/PID/stat` CPU times (100 on every Linux ABI).
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

static SWITCHYARD_BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Measures this `switchyard` binary instead of the workspace's (e.g. a build of an older commit).
pub fn set_switchyard_binary(path: PathBuf) {
    let _ = SWITCHYARD_BIN.set(path);
}

/// One load target.
pub struct Target {
    /// `direct`, `nginx`, `switchyard`.
    pub name: String,
    /// The URL requests go to.
    pub url: String,
    /// The processes whose CPU time and memory count for this target (empty for `direct`: the mock is
    /// accounted separately, as `mock_pids`).
    pub pids: Vec<u32>,
    /// The mock's process, accounted for every target (to see it is not the bottleneck).
    pub mock_pids: Vec<u32>,
}

impl Target {
    /// CPU seconds (user + system) used so far by this target's processes.
    pub fn cpu_seconds(&self) -> f64 {
        self.pids.iter().map(|p| cpu_seconds(*p)).sum()
    }

    /// CPU seconds used so far by the mock.
    pub fn mock_cpu_seconds(&self) -> f64 {
        self.mock_pids.iter().map(|p| cpu_seconds(*p)).sum()
    }

    /// Peak resident set (KiB) of this target's processes, summed.
    pub fn peak_rss_kib(&self) -> u64 {
        self.pids.iter().map(|p| peak_rss_kib(*p)).sum()
    }
}

/// utime + stime of `pid` in seconds (0 if it cannot be read).
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name is in parentheses and may contain spaces: fields are counted after the last ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (field 14) and stime (15) are at indices 11 and 12.
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (get(11) + get(12)) as f64 / CLOCK_TICKS_PER_SEC
}

/// `VmHWM` of `pid` in KiB (0 if it cannot be read).
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Direct children of `pid` (from `/proc/PID/task/*/children`).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
            }
        }
    }
    out
}

/// All running targets and the processes behind them.
pub struct Targets {
    /// The mock (kept alive).
    pub mock: MockProvider,
    direct: Target,
    nginx: Option<(Target, Process, tempfile::TempDir)>,
    switchyard: Vec<(Target, BenchNode)>,
}

impl Targets {
    /// Starts the mock, nginx (unless `with_nginx` is false) and a Switchyard node.
    pub async fn start(with_nginx: bool) -> anyhow::Result<Targets> {
        let mock = start_mock("bench-mock", "ok").await?;
        let mock_pids = vec![mock.process().pid()];
        let direct = Target {
            name: "direct".into(),
            url: format!("{}/v1/chat/completions", mock.data_url()),
            pids: Vec::new(),
            mock_pids: mock_pids.clone(),
        };
        let nginx = if with_nginx {
            let (process, dir, port) = start_nginx(mock.data_addr).await?;
            let master = process.pid();
            let mut pids = vec![master];
            pids.extend(children(master));
            Some((
                Target {
                    name: "nginx".into(),
                    url: format!("http://127.0.0.1:{port}/v1/chat/completions"),
                    pids,
                    mock_pids: mock_pids.clone(),
                },
                process,
                dir,
            ))
        } else {
            None
        };
        let config = single_backend_config(mock.data_addr, &seed_policy(None));
        let mut switchyard = Vec::new();
        for (name, flags) in [
            ("switchyard-1t", &["--worker-threads", "1"][..]),
            ("switchyard", &[][..]),
        ] {
            let node = BenchNode::start(&config, flags).await?;
            let target = Target {
                name: name.into(),
                url: format!("http://{}/v1/chat/completions", node.listen),
                pids: vec![node.process.pid()],
                mock_pids: mock_pids.clone(),
            };
            switchyard.push((target, node));
        }
        Ok(Targets {
            mock,
            direct,
            nginx,
            switchyard,
        })
    }

    /// The targets in the order they are interleaved.
    pub fn all(&self) -> Vec<&Target> {
        let mut v = vec![&self.direct];
        if let Some((t, _, _)) = &self.nginx {
            v.push(t);
        }
        v.extend(self.switchyard.iter().map(|(t, _)| t));
        v
    }

    /// One line naming every target's URL and PIDs.
    pub fn describe(&self) -> String {
        self.all()
            .iter()
            .map(|t| format!("{} {} pids {:?}", t.name, t.url, t.pids))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl Drop for Targets {
    /// nginx is stopped the way it expects: SIGTERM to the master, which stops its worker and then exits.
    /// A SIGKILLed master (what dropping a [`Process`] does) leaves the worker running, orphaned; so the
    /// master gets a bounded wait, and a worker still alive after it is killed by its PID.
    fn drop(&mut self) {
        let Some((target, mut master, _dir)) = self.nginx.take() else {
            return;
        };
        let _ = master.terminate();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline && matches!(master.try_exit(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(master);
        for &pid in &target.pids {
            // Still there and still nginx (not a recycled PID).
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "nginx" {
                kill_pid(pid);
            }
        }
    }
}

/// SIGKILL to `pid` (an nginx worker this bench started, found as a child of its master).
fn kill_pid(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions; the PID is a process this bench started.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// Starts a `mock-provider` with `--no-log` in `mode`.
pub async fn start_mock(name: &str, mode: &str) -> anyhow::Result<MockProvider> {
    MockProvider::start_with(MockOptions {
        name: Some(name.into()),
        mode: Some(mode.into()),
        extra_args: vec!["--no-log".into()],
        ..MockOptions::default()
    })
    .await
}

/// The seed page's `BackendTrafficPolicy` spec, with `perRetry.timeout` optionally replaced.
pub fn seed_policy(per_try_timeout: Option<Duration>) -> String {
    let policy = crate::harness::SEED_POLICY.to_string();
    match per_try_timeout {
        Some(t) => policy.replace(
            "      timeout: 30s",
            &format!("      timeout: {}ms", t.as_millis()),
        ),
        None => policy,
    }
}

/// One route for [`super::MODEL`] with one plain-HTTP OpenAI backend at `backend`, plus `policy_spec`.
pub fn single_backend_config(backend: SocketAddr, policy_spec: &str) -> String {
    format!(
        r#"apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIGatewayRoute
metadata:
  name: provider-fallback
  namespace: default
spec:
  schema:
    name: OpenAI
  rules:
    - matches:
        - headers:
            - type: Exact
              name: x-ai-eg-model
              value: {model}
      backendRefs:
        - name: primary
          priority: 0
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: primary
  namespace: default
spec:
  endpoints:
    - ip:
        address: {ip}
        port: {port}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata:
  name: passive-health-check
  namespace: default
spec:
  targetRefs:
    - group: gateway.networking.k8s.io
      kind: HTTPRoute
      name: provider-fallback
{policy_spec}"#,
        model = super::MODEL,
        ip = backend.ip(),
        port = backend.port(),
    )
}

/// A Switchyard node started for benchmarking: release binary, logging at `warn` (the test harness runs
/// nodes at debug level, which would measure the logger).
pub struct BenchNode {
    /// Client listener.
    pub listen: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
    /// The process.
    pub process: Process,
    _dir: tempfile::TempDir,
}

impl BenchNode {
    /// Writes `config_yaml` and starts `switchyard run` on kernel-chosen ports, with `extra` flags.
    pub async fn start(config_yaml: &str, extra: &[&str]) -> anyhow::Result<BenchNode> {
        let dir = tempfile::tempdir().context("temp dir")?;
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, config_yaml).context("writing the node config")?;
        let mut args = vec![
            "run".to_string(),
            "--config".into(),
            config.display().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--admin".into(),
            "127.0.0.1:0".into(),
            "--drain-delay".into(),
            "0s".into(),
            "--node-id".into(),
            "bench-1".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let process = Process::start(
            "switchyard",
            &SWITCHYARD_BIN
                .get()
                .cloned()
                .unwrap_or_else(|| bin_path("switchyard")),
            &args,
            &[("SWITCHYARD_LOG", "warn")],
        )?;
        let (listen, admin) =
            poll_until(Duration::from_secs(30), Duration::from_millis(20), || {
                let out = process.stdout();
                async move { parse_ready(&out) }
            })
            .await
            .with_context(|| {
                format!(
                    "switchyard never printed its ready line:\n{}",
                    process.logs()
                )
            })?;
        Ok(BenchNode {
            listen,
            admin,
            process,
            _dir: dir,
        })
    }
}

fn parse_ready(stdout: &str) -> Option<(SocketAddr, SocketAddr)> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("switchyard ready "))?;
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
    };
    Some((field("listen=")?, field("admin=")?))
}

/// The nginx binary, installing Debian's `nginx` with apt-get when it is missing.
pub fn ensure_nginx() -> anyhow::Result<PathBuf> {
    if let Some(p) = find_nginx() {
        return Ok(p);
    }
    eprintln!("nginx not found: running `apt-get install -y nginx`");
    let mut ok = Command::new("apt-get")
        .args(["install", "-y", "nginx"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("apt-get install failed: running `apt-get update` and retrying");
        ok = Command::new("apt-get")
            .arg("update")
            .status()
            .is_ok_and(|s| s.success())
            && Command::new("apt-get")
                .args(["install", "-y", "nginx"])
                .status()
                .is_ok_and(|s| s.success());
    }
    match find_nginx() {
        Some(p) => Ok(p),
        None => bail!(
            "nginx is required for the baseline and could not be installed (apt-get {}): install it with \
             `apt-get install -y nginx` (as root), or run with --no-nginx",
            if ok { "succeeded but no nginx binary" } else { "failed" }
        ),
    }
}

fn find_nginx() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

/// nginx as a plain reverse proxy to `upstream`: one worker, keep-alive upstream pool, no access log.
pub fn nginx_conf(dir: &Path, listen_port: u16, upstream: SocketAddr) -> String {
    let d = dir.display();
    format!(
        r#"worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 8192;
}}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    upstream mock {{
        server {upstream};
        keepalive 256;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{listen_port};
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"#
    )
}

/// Renders the config into a temp dir and runs `nginx -g 'daemon off;'` as a child; returns the master
/// process, the dir and the port once it accepts connections.
pub async fn start_nginx(
    upstream: SocketAddr,
) -> anyhow::Result<(Process, tempfile::TempDir, u16)> {
    let nginx = ensure_nginx()?;
    let dir = tempfile::Builder::new()
        .prefix("switchyard-bench-nginx-")
        .tempdir()
        .context("temp dir")?;
    {
        use std::os::unix::fs::PermissionsExt;
        // The worker may run as an unprivileged user; it must reach the temp paths.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    }
    let port = free_port();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, nginx_conf(dir.path(), port, upstream)).context("writing nginx.conf")?;
    let prefix = format!("{}/", dir.path().display());
    let errlog = dir.path().join("error.log").display().to_string();
    let mut process = Process::start(
        "nginx",
        &nginx,
        [
            "-p",
            prefix.as_str(),
            "-e",
            errlog.as_str(),
            "-c",
            &conf.display().to_string(),
            "-g",
            "daemon off;",
        ],
        &[],
    )?;
    let addr = format!("127.0.0.1:{port}");
    let up = poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
        let addr = addr.clone();
        async move { tokio::net::TcpStream::connect(addr).await.ok().map(drop) }
    })
    .await;
    if up.is_err() {
        let exited = process.try_exit().ok().flatten();
        bail!(
            "nginx did not listen on {addr} (exit: {exited:?}); error.log:\n{}\n{}",
            std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default(),
            process.logs()
        );
    }
    // The worker is forked right after the master binds; wait until it exists so it is accounted for.
    let master = process.pid();
    let _ = poll_until(Duration::from_secs(5), Duration::from_millis(10), || {
        let found = !children(master).is_empty();
        async move { found.then_some(()) }
    })
    .await;
    Ok((process, dir, port))
}
