//! A cluster of real `switchyard` nodes on loopback (DESIGN §6), for the cluster tests.
//!
//! [`TestCluster::start`] makes a cluster CA and one certificate per node with the real `switchyard certs`
//! commands, starts node `i` (0-based) as `n{i+1}` on `127.0.0.{i+1}` (client and admin listeners on
//! kernel-chosen ports, gossip on a fixed free UDP port, `--upstream-bind 127.0.0.{i+1}` so providers can
//! tell the nodes apart), all seeded with node 1's gossip address, and waits until every node lists every
//! other member alive (the seeds can be every node: [`TestCluster::start_seeded`]). Nodes are owned [`SwitchyardNode`]s: killed by PID when dropped.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

use super::{bin_path, poll_until, SwitchyardNode};

/// How long a cluster gets to form (QUIC handshakes + join with backoff starting at 1 s).
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The cluster name every node of a [`TestCluster`] uses.
pub const CLUSTER_NAME: &str = "test-cluster";

/// How one node is started (kept so the node can be restarted identically).
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Node id (`n1`, `n2`, ...), also the certificate identity.
    pub id: String,
    /// Its loopback address `127.0.0.x`.
    pub ip: Ipv4Addr,
    /// Its gossip address.
    pub gossip: SocketAddr,
    /// Extra `switchyard run` flags for this node only.
    pub extra: Vec<String>,
    /// Extra environment for this node only.
    pub env: Vec<(String, String)>,
    /// Fixed client listener (default: a kernel-chosen port on `ip`). Fixed ports let a restarted node
    /// come back where a load balancer expects it.
    pub listen: Option<SocketAddr>,
    /// Fixed admin listener (default: a kernel-chosen port on `ip`).
    pub admin: Option<SocketAddr>,
}

/// A running cluster.
#[derive(Debug)]
pub struct TestCluster {
    /// Node specs, index = node index.
    pub specs: Vec<NodeSpec>,
    nodes: Vec<Option<SwitchyardNode>>,
    config_yaml: String,
    extra: Vec<String>,
    /// How many nodes (the first ones) are every node's seeds.
    seed_count: usize,
    certs: tempfile::TempDir,
}

/// A free UDP port on `ip` (bound to port 0, then released).
pub fn free_udp_port(ip: Ipv4Addr) -> anyhow::Result<u16> {
    let s = UdpSocket::bind((ip, 0)).with_context(|| format!("bind {ip}:0/udp"))?;
    Ok(s.local_addr()?.port())
}

/// Runs `switchyard certs ...` with `args`.
pub fn switchyard_certs(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(bin_path("switchyard"))
        .arg("certs")
        .args(args)
        .output()
        .context("running switchyard certs")?;
    if !out.status.success() {
        bail!(
            "switchyard certs {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Creates a CA in `dir` and a certificate for each of `ids` (files `ca.crt`, `ID.crt`, `ID.key`).
pub fn make_certs(dir: &Path, ids: &[&str]) -> anyhow::Result<()> {
    let d = dir.display().to_string();
    switchyard_certs(&["ca", "--out", &d])?;
    for id in ids {
        switchyard_certs(&["node", "--ca-dir", &d, "--node-id", id, "--out", &d])?;
    }
    Ok(())
}

/// The `switchyard run` cluster flags for node `id` on `ip` with certificates from `cert_dir`.
pub fn cluster_flags(
    id: &str,
    ip: Ipv4Addr,
    gossip: SocketAddr,
    seeds: &[SocketAddr],
    cert_dir: &Path,
) -> Vec<String> {
    let seeds: Vec<String> = seeds.iter().map(ToString::to_string).collect();
    vec![
        "--node-id".into(),
        id.into(),
        "--cluster".into(),
        CLUSTER_NAME.into(),
        "--gossip".into(),
        gossip.to_string(),
        "--seeds".into(),
        seeds.join(","),
        "--cluster-ca".into(),
        cert_dir.join("ca.crt").display().to_string(),
        "--cluster-cert".into(),
        cert_dir.join(format!("{id}.crt")).display().to_string(),
        "--cluster-key".into(),
        cert_dir.join(format!("{id}.key")).display().to_string(),
        "--upstream-bind".into(),
        ip.to_string(),
    ]
}

/// A free TCP port on `ip` (bound to port 0, then released).
pub fn free_tcp_port(ip: Ipv4Addr) -> anyhow::Result<u16> {
    let s = std::net::TcpListener::bind((ip, 0)).with_context(|| format!("bind {ip}:0/tcp"))?;
    Ok(s.local_addr()?.port())
}

/// Starts one node with `config_yaml` and `flags` (listeners on `ip`, kernel-chosen ports).
pub async fn start_node(
    ip: Ipv4Addr,
    config_yaml: &str,
    flags: &[String],
    env: &[(String, String)],
) -> anyhow::Result<SwitchyardNode> {
    let any = SocketAddr::new(IpAddr::V4(ip), 0);
    start_node_on(any, any, config_yaml, flags, env).await
}

/// Starts one node with its client listener on `listen` and admin on `admin` (port 0: kernel-chosen).
pub async fn start_node_on(
    listen: SocketAddr,
    admin: SocketAddr,
    config_yaml: &str,
    flags: &[String],
    env: &[(String, String)],
) -> anyhow::Result<SwitchyardNode> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, config_yaml).context("write config")?;
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    SwitchyardNode::start_file_env(
        config_path,
        &listen.to_string(),
        &admin.to_string(),
        &flags,
        dir,
        &env,
    )
    .await
}

/// The alive members other than the node itself in a `/status` document.
pub fn alive_members(status: &Value) -> Vec<String> {
    members_in_state(status, "alive")
}

/// Members in `state` in a `/status` document.
pub fn members_in_state(status: &Value, state: &str) -> Vec<String> {
    let mut v: Vec<String> = status["cluster"]["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|m| m["state"] == state)
                .filter_map(|m| m["node"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The entry of `backends` in a `/status` document whose dialled address is `addr`.
pub fn backend_by_addr(status: &Value, addr: SocketAddr) -> Option<Value> {
    status["backends"]
        .as_array()?
        .iter()
        .find(|b| b["address"] == addr.to_string())
        .cloned()
}

impl TestCluster {
    /// Starts `n` nodes (see the module doc) with `config_yaml` and `extra_flags` on every node, and waits
    /// until each lists all the others alive.
    pub async fn start(
        n: usize,
        config_yaml: &str,
        extra_flags: &[&str],
    ) -> anyhow::Result<TestCluster> {
        Self::start_with(n, config_yaml, extra_flags, |_, _| {}).await
    }

    /// Like [`TestCluster::start`]; `customise(i, spec)` may add per-node flags or environment first.
    pub async fn start_with(
        n: usize,
        config_yaml: &str,
        extra_flags: &[&str],
        customise: impl Fn(usize, &mut NodeSpec),
    ) -> anyhow::Result<TestCluster> {
        Self::start_seeded(n, 1, config_yaml, extra_flags, customise).await
    }

    /// Like [`TestCluster::start_with`], with the first `seeds` nodes as every node's `--seeds` (1: node 1
    /// only, as the join tests do; `n`: every node, as the Kubernetes StatefulSet does, so that a
    /// restarted seed finds the others at once instead of waiting for them to retry it).
    pub async fn start_seeded(
        n: usize,
        seeds: usize,
        config_yaml: &str,
        extra_flags: &[&str],
        customise: impl Fn(usize, &mut NodeSpec),
    ) -> anyhow::Result<TestCluster> {
        anyhow::ensure!((1..=250).contains(&n), "1..=250 nodes");
        anyhow::ensure!((1..=n).contains(&seeds), "1..={n} seeds");
        let certs = tempfile::Builder::new()
            .prefix("switchyard-cluster-certs-")
            .tempdir()
            .context("temp dir")?;
        let ids: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        make_certs(certs.path(), &id_refs)?;
        let mut specs = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let ip = Ipv4Addr::new(127, 0, 0, u8::try_from(i + 1)?);
            let mut spec = NodeSpec {
                id: id.clone(),
                ip,
                gossip: SocketAddr::new(IpAddr::V4(ip), free_udp_port(ip)?),
                extra: Vec::new(),
                env: Vec::new(),
                listen: None,
                admin: None,
            };
            customise(i, &mut spec);
            specs.push(spec);
        }
        let mut cluster = TestCluster {
            specs,
            nodes: Vec::new(),
            config_yaml: config_yaml.to_owned(),
            extra: extra_flags.iter().map(|s| s.to_string()).collect(),
            seed_count: seeds,
            certs,
        };
        for i in 0..n {
            let node = cluster.launch(i).await?;
            cluster.nodes.push(Some(node));
        }
        cluster.wait_converged(JOIN_TIMEOUT).await?;
        Ok(cluster)
    }

    /// The directory holding `ca.crt`, `ca.key` and every node's `ID.crt`/`ID.key`.
    pub fn cert_dir(&self) -> &Path {
        self.certs.path()
    }

    /// Node 1's gossip address (every node's seed).
    pub fn seed(&self) -> SocketAddr {
        self.specs[0].gossip
    }

    /// Every node's seeds.
    pub fn seeds(&self) -> Vec<SocketAddr> {
        self.specs[..self.seed_count]
            .iter()
            .map(|s| s.gossip)
            .collect()
    }

    /// The flags node `i` runs with.
    pub fn flags(&self, i: usize) -> Vec<String> {
        let s = &self.specs[i];
        let mut flags = cluster_flags(&s.id, s.ip, s.gossip, &self.seeds(), self.certs.path());
        flags.extend(self.extra.iter().cloned());
        flags.extend(s.extra.iter().cloned());
        flags
    }

    async fn launch(&self, i: usize) -> anyhow::Result<SwitchyardNode> {
        let s = &self.specs[i];
        let any = SocketAddr::new(IpAddr::V4(s.ip), 0);
        start_node_on(
            s.listen.unwrap_or(any),
            s.admin.unwrap_or(any),
            &self.config_yaml,
            &self.flags(i),
            &s.env,
        )
        .await
        .with_context(|| format!("starting node {}", s.id))
    }

    /// Number of nodes (running or not).
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// Whether the cluster has no nodes.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Node `i` (0-based); panics if it was killed and not restarted.
    pub fn node(&self, i: usize) -> &SwitchyardNode {
        self.nodes[i]
            .as_ref()
            .unwrap_or_else(|| panic!("node {} is not running", self.specs[i].id))
    }

    /// Node `i`, mutably.
    pub fn node_mut(&mut self, i: usize) -> &mut SwitchyardNode {
        let id = self.specs[i].id.clone();
        self.nodes[i]
            .as_mut()
            .unwrap_or_else(|| panic!("node {id} is not running"))
    }

    /// Indices of the running nodes.
    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_some())
            .collect()
    }

    /// `kill -9` node `i` (by PID) and reap it.
    pub fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(mut node) = self.nodes[i].take() {
            node.process().kill()?;
        }
        Ok(())
    }

    /// SIGTERMs node `i` (a graceful drain) without waiting; see [`TestCluster::wait_stopped`].
    pub fn terminate(&mut self, i: usize) -> anyhow::Result<()> {
        self.node_mut(i).process().terminate()
    }

    /// Waits until node `i` has exited (after [`TestCluster::terminate`]) and returns its exit status; the
    /// node is then no longer running.
    pub async fn wait_stopped(
        &mut self,
        i: usize,
        deadline: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let status = self.node_mut(i).process().wait_exit(deadline).await?;
        self.nodes[i] = None;
        Ok(status)
    }

    /// Starts node `i` again with the same id, addresses and flags (killing it first if it runs).
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill(i)?;
        let node = self.launch(i).await?;
        self.nodes[i] = Some(node);
        Ok(())
    }

    /// `/status` of node `i`.
    pub async fn status(&self, i: usize) -> anyhow::Result<Value> {
        self.node(i).status().await
    }

    /// Waits until every running node lists every other running node alive.
    pub async fn wait_converged(&self, deadline: Duration) -> anyhow::Result<()> {
        let running = self.running();
        let r = poll_until(deadline, Duration::from_millis(100), || async {
            for &i in &running {
                let st = self.status(i).await.ok()?;
                let alive = alive_members(&st);
                for &j in &running {
                    if j != i && !alive.contains(&self.specs[j].id) {
                        return None;
                    }
                }
            }
            Some(())
        })
        .await;
        if r.is_err() {
            let mut msg = String::new();
            for &i in &running {
                let st = self.status(i).await.unwrap_or_default();
                msg.push_str(&format!(
                    "{}: members {}\n",
                    self.specs[i].id, st["cluster"]["members"]
                ));
            }
            bail!("cluster did not converge within {deadline:?}:\n{msg}");
        }
        Ok(())
    }

    /// Logs of every running node, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .flatten()
            .map(SwitchyardNode::logs)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The certificate files of node `id` (`ID.crt`, `ID.key`) in the cluster's CA directory.
    pub fn cert_paths(&self, id: &str) -> (PathBuf, PathBuf) {
        (
            self.certs.path().join(format!("{id}.crt")),
            self.certs.path().join(format!("{id}.key")),
        )
    }
}
