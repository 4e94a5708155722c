//! A running `switchyard` node for multi-process tests: writes its config to a temp dir, starts it on
//! kernel-chosen ports, and waits (bounded) for its ready line and `/readyz`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

use super::{bin_path, http_get, poll_until, Process};

/// How long a node gets to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running gateway node.
#[derive(Debug)]
pub struct SwitchyardNode {
    /// Client listener.
    pub listen: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
    /// The config file it was started with (rewrite it and call [`SwitchyardNode::reload`]).
    pub config_path: PathBuf,
    process: Process,
    _dir: tempfile::TempDir,
}

impl SwitchyardNode {
    /// Starts a node on `config_yaml` with default flags.
    pub async fn start(config_yaml: &str) -> anyhow::Result<SwitchyardNode> {
        Self::start_with(config_yaml, &[]).await
    }

    /// Starts a node on `config_yaml` with extra `switchyard run` flags.
    pub async fn start_with(config_yaml: &str, extra: &[&str]) -> anyhow::Result<SwitchyardNode> {
        let dir = tempfile::tempdir().context("temp dir")?;
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, config_yaml).context("write config")?;
        Self::start_file(config_path, "127.0.0.1:0", "127.0.0.1:0", extra, dir).await
    }

    /// Starts a node that sees `hosts` as its `/etc/hosts`: it runs in a private mount namespace
    /// (`unshare --mount`, root needed) with the file bind-mounted, so a test can give one name several
    /// loopback addresses. Rewrite the file at [`SwitchyardNode::hosts_path`] to change what it resolves.
    pub async fn start_with_hosts(
        config_yaml: &str,
        extra: &[&str],
        hosts: &str,
    ) -> anyhow::Result<SwitchyardNode> {
        let dir = tempfile::tempdir().context("temp dir")?;
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, config_yaml).context("write config")?;
        let hosts_path = dir.path().join("hosts");
        std::fs::write(&hosts_path, hosts).context("write hosts")?;
        let wrapper = vec![
            "unshare".to_string(),
            "--mount".to_string(),
            "sh".to_string(),
            "-c".to_string(),
            r#"mount --bind "$0" /etc/hosts && exec "$@""#.to_string(),
            hosts_path.display().to_string(),
        ];
        Self::launch(
            config_path,
            "127.0.0.1:0",
            "127.0.0.1:0",
            extra,
            dir,
            &wrapper,
        )
        .await
    }

    /// Starts a node through `wrapper`, a command that execs the node's command line given after it
    /// (e.g. `["prlimit", "--nofile=128:128", "--"]` to start it with few descriptors).
    pub async fn start_wrapped(
        config_yaml: &str,
        extra: &[&str],
        wrapper: &[&str],
    ) -> anyhow::Result<SwitchyardNode> {
        let dir = tempfile::tempdir().context("temp dir")?;
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, config_yaml).context("write config")?;
        let wrapper: Vec<String> = wrapper.iter().map(|s| s.to_string()).collect();
        Self::launch(
            config_path,
            "127.0.0.1:0",
            "127.0.0.1:0",
            extra,
            dir,
            &wrapper,
        )
        .await
    }

    /// The private hosts file of a node started with [`SwitchyardNode::start_with_hosts`].
    pub fn hosts_path(&self) -> PathBuf {
        self._dir.path().join("hosts")
    }

    /// Starts a node on an existing config file with the given listener addresses (the demo uses fixed
    /// ports; tests use port 0). `dir` is kept alive as long as the node.
    pub async fn start_file(
        config_path: PathBuf,
        listen: &str,
        admin: &str,
        extra: &[&str],
        dir: tempfile::TempDir,
    ) -> anyhow::Result<SwitchyardNode> {
        Self::launch(config_path, listen, admin, extra, dir, &[]).await
    }

    /// Like [`SwitchyardNode::start_file`], with extra environment variables for the node process (e.g.
    /// `LD_PRELOAD`/`FAKETIME` to skew its wall clock). The cluster harness uses it.
    pub async fn start_file_env(
        config_path: PathBuf,
        listen: &str,
        admin: &str,
        extra: &[&str],
        dir: tempfile::TempDir,
        env: &[(&str, &str)],
    ) -> anyhow::Result<SwitchyardNode> {
        Self::launch_env(config_path, listen, admin, extra, dir, &[], env).await
    }

    async fn launch(
        config_path: PathBuf,
        listen: &str,
        admin: &str,
        extra: &[&str],
        dir: tempfile::TempDir,
        wrapper: &[String],
    ) -> anyhow::Result<SwitchyardNode> {
        Self::launch_env(config_path, listen, admin, extra, dir, wrapper, &[]).await
    }

    async fn launch_env(
        config_path: PathBuf,
        listen: &str,
        admin: &str,
        extra: &[&str],
        dir: tempfile::TempDir,
        wrapper: &[String],
        env: &[(&str, &str)],
    ) -> anyhow::Result<SwitchyardNode> {
        let mut args: Vec<String> = vec![
            "run".into(),
            "--config".into(),
            config_path.display().to_string(),
            "--listen".into(),
            listen.into(),
            "--admin".into(),
            admin.into(),
        ];
        if !extra.contains(&"--drain-delay") {
            args.extend(["--drain-delay".to_string(), "0s".to_string()]);
        }
        if !extra.contains(&"--node-id") {
            args.extend(["--node-id".to_string(), "test-node".to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let binary = bin_path("switchyard");
        // With a wrapper the chain execs into switchyard, so the PID the harness holds is the node's.
        let (program, args) = match wrapper.split_first() {
            None => (binary, args),
            Some((first, rest)) => {
                let mut all: Vec<String> = rest.to_vec();
                all.push(binary.display().to_string());
                all.extend(args);
                (PathBuf::from(first), all)
            }
        };
        let mut envs: Vec<(&str, &str)> = vec![("SWITCHYARD_LOG", "info,switchyard=debug")];
        envs.extend_from_slice(env);
        let label = extra
            .iter()
            .position(|a| *a == "--node-id")
            .and_then(|i| extra.get(i + 1))
            .map_or_else(|| "switchyard".to_string(), |id| format!("switchyard-{id}"));
        let process = Process::start(&label, &program, &args, &envs)?;
        let mut node = SwitchyardNode {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            config_path,
            process,
            _dir: dir,
        };
        let (listen, admin) = {
            let p = &node.process;
            poll_until(READY_TIMEOUT, Duration::from_millis(20), || async {
                parse_ready(&p.stdout())
            })
            .await
            .with_context(|| format!("switchyard never printed its ready line:\n{}", p.logs()))?
        };
        node.listen = listen;
        node.admin = admin;
        let url = node.admin_url("/readyz");
        poll_until(READY_TIMEOUT, Duration::from_millis(20), || async {
            http_get(&url).await.ok().filter(|r| r.status.is_success())
        })
        .await
        .with_context(|| format!("switchyard never became ready:\n{}", node.process.logs()))?;
        Ok(node)
    }

    /// `http://listen{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.listen, path)
    }

    /// `http://admin{path}`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// `GET /status` as JSON.
    pub async fn status(&self) -> anyhow::Result<Value> {
        let r = http_get(&self.admin_url("/status")).await?;
        if !r.status.is_success() {
            bail!("/status answered {}", r.status);
        }
        r.json()
    }

    /// The node's PID.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The process (signals, logs, exit).
    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }

    /// Captured output, for failure messages.
    pub fn logs(&self) -> String {
        self.process.logs()
    }
}

fn parse_ready(stdout: &str) -> Option<(SocketAddr, SocketAddr)> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("switchyard ready "))?;
    let mut listen = None;
    let mut admin = None;
    for field in line.split_whitespace() {
        if let Some(v) = field.strip_prefix("listen=") {
            listen = v.parse().ok();
        } else if let Some(v) = field.strip_prefix("admin=") {
            admin = v.parse().ok();
        }
    }
    Some((listen?, admin?))
}

/// A config with one route `model` → `primary` (priority 0) and `fallback` (priority 1), both plain HTTP
/// OpenAI backends, plus `policy` (a `BackendTrafficPolicy` spec body, YAML indented by 2, or empty for none).
pub fn fallback_config(
    model: &str,
    primary: SocketAddr,
    fallback: SocketAddr,
    policy_spec: &str,
) -> String {
    let mut yaml = format!(
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
"#,
        pa = primary.ip(),
        pp = primary.port(),
        fa = fallback.ip(),
        fp = fallback.port(),
    );
    if !policy_spec.trim().is_empty() {
        yaml.push_str(&format!(
            r#"---
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
{policy_spec}"#
        ));
    }
    yaml
}

/// `config` (from [`fallback_config`] with a policy) with `annotation` (`key: value`) on its
/// `BackendTrafficPolicy`: how tests and benchmarks set Switchyard's extensions.
pub fn annotate_policy(config: &str, annotation: &str) -> String {
    config.replacen(
        "  name: passive-health-check\n  namespace: default\n",
        &format!("  name: passive-health-check\n  namespace: default\n  annotations:\n    {annotation}\n"),
        1,
    )
}

/// The seed page's `BackendTrafficPolicy` spec (retry + passive health), verbatim values.
pub const SEED_POLICY: &str = r#"  retry:
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
"#;
