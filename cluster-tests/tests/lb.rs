//! Issue 6: a three-node Switchyard **cluster** (QUIC gossip with mTLS, one seed, shared ejections) behind a
//! real HAProxy (Debian's package, TCP mode, checking each node's `/readyz` on its admin port, config
//! rendered from `deploy/haproxy/`) under steady client load:
//!
//! - a rolling restart (SIGTERM, exit 0, start again on the same ports, one node at a time) loses no request,
//!   and each restarted node rejoins the cluster before the next one goes;
//! - kill -9 of one node loses only the requests in flight on it, HAProxy marks it down within its check
//!   interval, the others keep serving, and the restarted node rejoins: its `status` shows every member
//!   alive (and every other node shows it alive);
//! - a primary provider failure under the same load is invisible to clients (retries + shared ejection), and
//!   the number of requests the failing primary received across all nodes (and from which node) is reported.
//!
//! HAProxy must be installed (`.ci/run` does it): these tests fail, never skip, without it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use switchyard_cluster_tests::harness::{
    alive_members, bin_path, fallback_config, free_tcp_port, haproxy_path, poll_until, run_bounded,
    Haproxy, LbServer, LoadClient, MockProvider, Outcome, TestCluster, JOIN_TIMEOUT, SEED_POLICY,
};

const MODEL: &str = "us.meta.llama3-2-1b-instruct-v1:0";
const TEST_TIMEOUT: Duration = Duration::from_secs(120);
const NODES: usize = 3;
/// Client tasks (half keep-alive, half a new connection per request).
const CONCURRENCY: usize = 6;
/// Upper bound of requests per client task, so the load loop is bounded even if `stop` never came.
const MAX_PER_TASK: usize = 100_000;
/// HAProxy's `inter` × `fall` from deploy/haproxy/haproxy.cfg.in (200ms × 2), plus one `timeout check`.
const LB_DETECT: Duration = Duration::from_millis(200 * 2 + 500);
/// Node drain delay: comfortably longer than LB_DETECT, so HAProxy marks a draining node down before it
/// stops accepting.
const DRAIN_DELAY: &str = "2s";
const DRAIN_TIMEOUT: &str = "10s";

fn chat(task: usize, i: usize) -> Value {
    json!({"model": MODEL, "messages": [{"role": "user", "content": format!("task-{task}-req-{i}")}]})
}

async fn bounded<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) {
    run_bounded(TEST_TIMEOUT, f).await
}

/// Mock providers (primary + fallback, the seed page's shape and policy), a three-node cluster on
/// 127.0.0.1-3 (every node in every node's `--seeds`) with fixed client and admin ports (so a restarted node comes back where HAProxy expects it),
/// and HAProxy in front with every node UP.
struct Bench {
    primary: MockProvider,
    fallback: MockProvider,
    cluster: TestCluster,
    servers: Vec<LbServer>,
    lb: Haproxy,
}

impl Bench {
    async fn start() -> anyhow::Result<Bench> {
        // Fail (not skip) right away when HAProxy is missing.
        haproxy_path()?;
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        // A little provider latency, so that requests are really in flight when nodes stop.
        primary.set_mode(json!({"mode": "delay", "ms": 20})).await?;
        fallback
            .set_mode(json!({"mode": "delay", "ms": 20}))
            .await?;
        let config = fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY);
        let mut ports = Vec::new();
        for i in 1..=NODES {
            let ip = std::net::Ipv4Addr::new(127, 0, 0, u8::try_from(i)?);
            let client = SocketAddr::from((ip, free_tcp_port(ip)?));
            let admin = SocketAddr::from((ip, free_tcp_port(ip)?));
            ports.push((client, admin));
        }
        // Every node is a seed, as in the Kubernetes StatefulSet: a restarted node finds the others at once.
        let cluster = TestCluster::start_seeded(
            NODES,
            NODES,
            &config,
            &[
                "--drain-delay",
                DRAIN_DELAY,
                "--drain-timeout",
                DRAIN_TIMEOUT,
            ],
            |i, spec| {
                spec.listen = Some(ports[i].0);
                spec.admin = Some(ports[i].1);
            },
        )
        .await?;
        let servers: Vec<LbServer> = cluster
            .specs
            .iter()
            .zip(&ports)
            .map(|(spec, (client, admin))| LbServer {
                name: spec.id.clone(),
                client: *client,
                admin: *admin,
            })
            .collect();
        let lb = Haproxy::start(&servers).await?;
        for s in &servers {
            lb.wait_status(&s.name, "UP", Duration::from_secs(10))
                .await?;
        }
        Ok(Bench {
            primary,
            fallback,
            cluster,
            servers,
            lb,
        })
    }

    fn load(&self) -> LoadClient {
        LoadClient::start(
            &self.lb.url("/v1/chat/completions"),
            CONCURRENCY,
            MAX_PER_TASK,
            chat,
        )
    }

    async fn sessions(&self, name: &str) -> anyhow::Result<u64> {
        Ok(self
            .lb
            .servers()
            .await?
            .get(name)
            .context("no such server")?
            .sessions)
    }

    fn logs(&self) -> String {
        format!("{}\n{}", self.lb.logs(), self.cluster.logs())
    }

    /// Waits until every running node lists every other one alive; returns how long it took.
    async fn wait_rejoined(&self, who: &str) -> anyhow::Result<Duration> {
        let t = Instant::now();
        self.cluster
            .wait_converged(JOIN_TIMEOUT)
            .await
            .with_context(|| format!("{who} did not rejoin the cluster"))?;
        Ok(t.elapsed())
    }

    /// `switchyard status --json --admin` of node `i`, through the real command an operator runs.
    async fn status_command(&self, i: usize) -> anyhow::Result<Value> {
        let out = tokio::process::Command::new(bin_path("switchyard"))
            .args(["status", "--json", "--admin"])
            .arg(format!("http://{}", self.servers[i].admin))
            .output()
            .await
            .context("running switchyard status")?;
        anyhow::ensure!(
            out.status.success(),
            "switchyard status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).context("switchyard status --json is not JSON")
    }
}

fn failures(outcomes: &[Outcome]) -> Vec<&Outcome> {
    outcomes.iter().filter(|o| o.error.is_some()).collect()
}

fn describe(fails: &[&Outcome], t0: Instant) -> String {
    fails
        .iter()
        .map(|o| {
            format!(
                "  task {} started +{:?} ended +{:?}: {}",
                o.task,
                o.started.saturating_duration_since(t0),
                o.ended.saturating_duration_since(t0),
                o.error.as_deref().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every other member `node` (index) lists alive in `status`, and the ones missing.
fn missing_members(b: &Bench, status: &Value, node: usize) -> Vec<String> {
    let alive = alive_members(status);
    b.cluster
        .specs
        .iter()
        .enumerate()
        .filter(|(j, s)| *j != node && !alive.contains(&s.id))
        .map(|(_, s)| s.id.clone())
        .collect()
}

/// Rolling restart under load: each node in turn gets SIGTERM (readiness drops at once, HAProxy marks it
/// DOWN within inter × fall, the node keeps serving for its 2s drain delay, then stops accepting, drains,
/// sends Leave and exits 0), is started again on the same ports, waited for until HAProxy has it UP and the
/// whole cluster lists it alive again. Zero client requests may fail — on keep-alive connections as well as
/// new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_restart_behind_haproxy_loses_no_request() {
    bounded(async {
        let mut b = Bench::start().await?;
        let t0 = Instant::now();
        let load = b.load();
        load.run_for_requests(100, Duration::from_secs(10)).await?;
        for i in 0..NODES {
            let name = b.servers[i].name.clone();
            let sigterm = Instant::now();
            b.cluster.terminate(i)?;
            let down = b.lb.wait_status(&name, "DOWN", Duration::from_secs(5)).await?;
            // Within the drain delay every client connection leaves the draining node — keep-alive ones
            // too (the node answers `Connection: close` while draining), so none is open when it stops
            // accepting and closes what is left.
            let emptied = poll_until(Duration::from_secs(2), Duration::from_millis(10), || async {
                let open = b.lb.servers().await.ok()?.get(&name)?.current;
                (open == 0).then(Instant::now)
            })
            .await
            .with_context(|| format!("connections to {name} stayed open through its drain delay"))?;
            let status = b.cluster.wait_stopped(i, Duration::from_secs(20)).await?;
            let exited = Instant::now();
            anyhow::ensure!(
                status.success(),
                "{name} exited with {status}\n{}",
                b.logs()
            );
            anyhow::ensure!(
                down < exited,
                "HAProxy marked {name} down only after it exited"
            );
            // Its Leave reached the others: they list it as left, not as suspect or dead.
            for j in b.cluster.running() {
                let st = b.cluster.status(j).await?;
                let state = st["cluster"]["members"]
                    .as_array()
                    .and_then(|ms| ms.iter().find(|m| m["node"] == name.as_str()))
                    .map(|m| m["state"].clone());
                anyhow::ensure!(
                    state == Some(json!("left")),
                    "{} shows the drained {name} as {state:?}, not left",
                    b.cluster.specs[j].id
                );
            }
            b.cluster.restart(i).await?;
            let up = b.lb.wait_status(&name, "UP", Duration::from_secs(10)).await?;
            let rejoin = b.wait_rejoined(&name).await?;
            anyhow::ensure!(
                emptied - sigterm < Duration::from_millis(1500),
                "connections to {name} were still open {:?} after SIGTERM (drain delay {DRAIN_DELAY})",
                emptied - sigterm
            );
            println!(
                "{name}: SIGTERM → HAProxy DOWN {:?}, no connection left {:?}, exit 0 after {:?}, restarted and UP after {:?}, \
                 every member alive on every node {:?} after that; {} requests so far",
                down - sigterm,
                emptied - sigterm,
                exited - sigterm,
                up - sigterm,
                rejoin,
                load.completed()
            );
            // Let the restarted node take traffic before the next one goes.
            let before = b.sessions(&name).await?;
            load.run_for_requests(50, Duration::from_secs(10)).await?;
            let after = b.sessions(&name).await?;
            anyhow::ensure!(after > before, "restarted {name} received no connection");
        }
        let outcomes = load.stop().await?;
        let fails = failures(&outcomes);
        println!(
            "rolling restart: {} requests sent through HAProxy, {} failed; primary received {}, fallback {}",
            outcomes.len(),
            fails.len(),
            b.primary.request_count().await?,
            b.fallback.request_count().await?
        );
        anyhow::ensure!(
            fails.is_empty(),
            "{} of {} requests failed during the rolling restart:\n{}\n{}",
            fails.len(),
            outcomes.len(),
            describe(&fails, t0),
            b.logs()
        );
        Ok(())
    })
    .await;
}

/// kill -9 of one node under load: only requests in flight on it — or routed to it by HAProxy in the few
/// milliseconds before it noticed — fail (at most `CONCURRENCY` in all), none started after HAProxy reported
/// it DOWN (nor after its detection time) fails, HAProxy reports it DOWN within inter × fall (+ one check
/// timeout), the other nodes keep serving; restarted on the same ports it is UP again, takes traffic, and
/// rejoins the cluster: its `switchyard status` shows every member alive, and every other node shows it
/// alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_behind_haproxy_fails_only_in_flight_requests() {
    bounded(async {
        let mut b = Bench::start().await?;
        let t0 = Instant::now();
        let load = b.load();
        load.run_for_requests(100, Duration::from_secs(10)).await?;
        let victim = 1;
        let name = b.servers[victim].name.clone();
        let killed_at = Instant::now();
        b.cluster.kill(victim)?;
        let down = b
            .lb
            .wait_status(&name, "DOWN", Duration::from_secs(5))
            .await?;
        let detect = down - killed_at;
        // The others keep serving: a good number of requests after the detection.
        load.run_for_requests(200, Duration::from_secs(10)).await?;
        b.cluster.restart(victim).await?;
        b.lb.wait_status(&name, "UP", Duration::from_secs(10))
            .await?;
        let rejoin = b.wait_rejoined(&name).await?;
        let restarted_at = Instant::now();
        let before = b.sessions(&name).await?;
        load.run_for_requests(100, Duration::from_secs(10)).await?;
        let after = b.sessions(&name).await?;
        // What an operator sees: `switchyard status` on the restarted node lists every member alive.
        let own = b.status_command(victim).await?;
        let missing = missing_members(&b, &own, victim);
        anyhow::ensure!(
            missing.is_empty(),
            "`switchyard status` on the restarted {name} does not show {missing:?} alive: {}",
            own["cluster"]["members"]
        );
        for j in 0..NODES {
            if j != victim {
                let st = b.status_command(j).await?;
                anyhow::ensure!(
                    alive_members(&st).contains(&name),
                    "{} does not show the restarted {name} alive: {}",
                    b.cluster.specs[j].id,
                    st["cluster"]["members"]
                );
            }
        }
        let outcomes = load.stop().await?;
        let fails = failures(&outcomes);
        let late: Vec<&Outcome> = fails
            .iter()
            .copied()
            .filter(|o| o.started > killed_at + LB_DETECT || o.started > down)
            .collect();
        let after_restart = outcomes
            .iter()
            .filter(|o| o.started >= restarted_at)
            .count();
        println!(
            "kill -9: {} requests sent through HAProxy, {} failed (concurrency {CONCURRENCY}); {name} killed at \
             +{:?}, HAProxy reported it DOWN {detect:?} later; restarted, every member alive everywhere {rejoin:?} \
             after HAProxy had it UP; {} connections to it after the restart ({after_restart} requests)\n{}",
            outcomes.len(),
            fails.len(),
            killed_at - t0,
            after - before,
            describe(&fails, t0)
        );
        anyhow::ensure!(
            detect <= LB_DETECT,
            "HAProxy took {detect:?} (> {LB_DETECT:?}) to mark the killed node down"
        );
        anyhow::ensure!(
            fails.len() <= CONCURRENCY,
            "{} requests failed, more than the {CONCURRENCY} that can be in flight:\n{}",
            fails.len(),
            describe(&fails, t0)
        );
        anyhow::ensure!(
            late.is_empty(),
            "requests started after HAProxy reported the node DOWN (or after its detection time) failed:\n{}",
            describe(&late, t0)
        );
        anyhow::ensure!(
            after > before,
            "the restarted node received no connection"
        );
        Ok(())
    })
    .await;
}

/// The primary provider starts answering 500 while the three-node cluster serves steady load through
/// HAProxy: no client sees an error (the node that meets a 500 retries on the fallback and ejects the primary
/// after its first 5xx — the seed policy's consecutive5XxErrors 1 — and gossips the ejection, so the other
/// nodes route away too), every node ends up routing away from the primary, and the primary's hits across all
/// nodes are counted and attributed to the node that sent them (each node dials from its own address).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn primary_failure_behind_haproxy_is_invisible_to_clients() {
    bounded(async {
        let b = Bench::start().await?;
        let t0 = Instant::now();
        let load = b.load();
        load.run_for_requests(100, Duration::from_secs(10)).await?;
        // Cleared just before the failure; requests that slip in before the mode changes are answered
        // normally and are told apart by the mode the mock logs with each request.
        b.primary.clear().await?;
        b.primary
            .set_mode(json!({"mode": "status", "status": 500}))
            .await?;
        let failed_at = Instant::now();
        // Every node routes away from the primary: ejected by its own detector or by the cluster's view.
        let routed_away = std::sync::Mutex::new(BTreeMap::new());
        let everyone = poll_until(Duration::from_secs(4), Duration::from_millis(5), || async {
            for (i, s) in b.servers.iter().enumerate() {
                if lock(&routed_away).contains_key(&s.name) {
                    continue;
                }
                let st = b.cluster.status(i).await.ok()?;
                let primary = st["backends"].as_array()?.iter().find(|h| {
                    h["address"] == b.primary.data_addr.to_string()
                })?;
                let local = primary["ejected"] == true;
                let cluster = primary["cluster_ejected"] == true;
                if local || cluster {
                    let how = if local { "its own detector" } else { "the cluster view" };
                    lock(&routed_away).insert(s.name.clone(), (failed_at.elapsed(), how));
                }
            }
            (lock(&routed_away).len() == NODES).then(Instant::now)
        })
        .await;
        let routed_away = routed_away.into_inner().unwrap_or_else(|e| e.into_inner());
        // Well inside the 5s ejection.
        load.run_for_requests(300, Duration::from_secs(10)).await?;
        let elapsed = failed_at.elapsed();
        let outcomes = load.stop().await?;
        // What the broken primary answered (with its 500), not the healthy answers before it broke.
        let failing = json!({"mode": "status", "status": 500});
        let hits: Vec<_> = b
            .primary
            .requests()
            .await?
            .into_iter()
            .filter(|r| r.mode.as_ref() == Some(&failing))
            .collect();
        let mut by_node: BTreeMap<String, usize> = BTreeMap::new();
        for h in &hits {
            let ip = h.source.rsplit_once(':').map_or(h.source.as_str(), |(ip, _)| ip);
            let node = b
                .cluster
                .specs
                .iter()
                .find(|s| s.ip.to_string() == ip)
                .map_or_else(|| format!("unknown source {}", h.source), |s| s.id.clone());
            *by_node.entry(node).or_default() += 1;
        }
        let fails = failures(&outcomes);
        println!(
            "primary failure: {} requests sent through HAProxy ({} after the primary broke, over {elapsed:?}), \
             {} failed; the failing primary received {} request(s) across {NODES} nodes: {by_node:?}; \
             routed away (time after the failure, how): {routed_away:?}",
            outcomes.len(),
            outcomes.iter().filter(|o| o.started >= failed_at).count(),
            fails.len(),
            hits.len(),
        );
        everyone.with_context(|| {
            format!(
                "not every node routed away from the primary within 4s: {routed_away:?}\n{}",
                b.logs()
            )
        })?;
        anyhow::ensure!(
            fails.is_empty(),
            "client-visible errors during the primary failure:\n{}\n{}",
            describe(&fails, t0),
            b.logs()
        );
        anyhow::ensure!(
            !hits.is_empty(),
            "the primary never saw a request after it broke"
        );
        // Only requests already on their way to the primary when it broke (at most one per client task)
        // reach it: after the first 500 the ejection is local on that node and gossiped to the others.
        anyhow::ensure!(
            hits.len() <= CONCURRENCY,
            "the failing primary received {} requests (bound {CONCURRENCY}): {by_node:?}",
            hits.len()
        );
        Ok(())
    })
    .await;
}

/// `just cluster 3` (the `local-cluster` binary, with `--exit` so it stops after its demo traffic): three
/// clustered nodes behind HAProxy with the mock providers on their fixed ports. Every node lists the others
/// alive before traffic starts, every request through HAProxy answers 200, the printed status table shows
/// the members, and it exits 0 having stopped everything it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn just_cluster_starts_a_joined_cluster_behind_haproxy() {
    bounded(async {
        haproxy_path()?;
        let mut p = switchyard_cluster_tests::harness::Process::start(
            "local-cluster",
            &bin_path("local-cluster"),
            ["3", "--exit"],
            &[],
        )?;
        let status = p.wait_exit(Duration::from_secs(90)).await?;
        let out = p.stdout();
        anyhow::ensure!(
            status.success(),
            "local-cluster exited with {status}:\n{}",
            p.logs()
        );
        anyhow::ensure!(
            out.contains("every node lists the 2 others alive"),
            "the nodes did not join:\n{out}"
        );
        let answered = out.matches("through HAProxy: HTTP 200").count();
        anyhow::ensure!(
            answered == 6,
            "{answered} of 6 requests answered 200:\n{out}"
        );
        anyhow::ensure!(
            out.contains("MEMBERS"),
            "no members in the status table:\n{out}"
        );
        for id in ["node-2", "node-3"] {
            anyhow::ensure!(
                out.lines().any(|l| l.contains(id) && l.contains("alive")),
                "status does not show {id} alive:\n{out}"
            );
        }
        // Everything it started is gone: its ports are free again.
        for port in [8080u16, 8081, 8082, 8083, 9001, 9002, 9901, 9902, 9903] {
            std::net::TcpListener::bind(("127.0.0.1", port))
                .with_context(|| format!("port {port} still taken after local-cluster exited"))?;
        }
        Ok(())
    })
    .await;
}
