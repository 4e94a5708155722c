//! Issue 4's must-shows through real processes: `switchyard` nodes on 127.0.0.x joined over real QUIC with
//! real mTLS (certificates from `switchyard certs`), real mock providers that log each request's source
//! address (every node dials providers from its own address via `--upstream-bind`), and real iptables
//! rules for network failures and partitions.
//!
//! The tests in this file run one at a time (a shared lock): they start up to five nodes each on a small
//! machine and measure timings that a parallel neighbour would distort.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_cluster_tests::harness::{
    alive_members, annotate_policy, backend_by_addr, bin_path, cluster_flags, fallback_config,
    http_get, http_post_json, make_certs, members_in_state, poll_until, start_node, MockProvider,
    Process, RecordedRequest, TestCluster, SEED_POLICY,
};

const MODEL: &str = "us.meta.llama3-2-1b-instruct-v1:0";
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn chat(id: usize) -> Value {
    json!({"model": MODEL, "messages": [{"role": "user", "content": format!("request-{id}")}]})
}

async fn bounded<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) {
    let _serial = SERIAL.lock().await;
    match tokio::time::timeout(TEST_TIMEOUT, f).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e:#}"),
        Err(_) => panic!("test exceeded {TEST_TIMEOUT:?}"),
    }
}

/// Sends one chat request to node `i` and expects 200.
async fn send(cluster: &TestCluster, i: usize, id: usize) -> anyhow::Result<()> {
    let r = http_post_json(&cluster.node(i).url("/v1/chat/completions"), &chat(id)).await?;
    anyhow::ensure!(
        r.status == 200,
        "request {id} via node {}: {} {}",
        i + 1,
        r.status,
        r.text()
    );
    Ok(())
}

fn source_ip(r: &RecordedRequest) -> IpAddr {
    r.source
        .parse::<SocketAddr>()
        .map(|a| a.ip())
        .unwrap_or_else(|e| panic!("bad source {:?}: {e}", r.source))
}

async fn sources(mock: &MockProvider) -> anyhow::Result<BTreeSet<IpAddr>> {
    Ok(mock.requests().await?.iter().map(source_ip).collect())
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// The primary's entry in node `i`'s `/status`.
async fn primary_status(
    cluster: &TestCluster,
    i: usize,
    primary: SocketAddr,
) -> anyhow::Result<Value> {
    let st = cluster.status(i).await?;
    backend_by_addr(&st, primary).ok_or_else(|| anyhow::anyhow!("no backend {primary} in {st}"))
}

/// Waits until every node in `nodes` applies a cluster ejection of `backend`; returns the time it took.
async fn wait_cluster_ejected(
    cluster: &TestCluster,
    nodes: &[usize],
    backend: SocketAddr,
    deadline: Duration,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    poll_until(deadline, Duration::from_millis(10), || async {
        for &i in nodes {
            let b = primary_status(cluster, i, backend).await.ok()?;
            if b["cluster_ejected"] != true {
                return None;
            }
        }
        Some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}: not cluster-ejected everywhere\n{}", cluster.logs()))?;
    Ok(start.elapsed())
}

async fn mocks() -> anyhow::Result<(MockProvider, MockProvider, String)> {
    let primary = MockProvider::start("primary").await?;
    let fallback = MockProvider::start("fallback").await?;
    let yaml = fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY);
    Ok((primary, fallback, yaml))
}

async fn join(n: usize) -> anyhow::Result<()> {
    let (_p, _f, yaml) = mocks().await?;
    let start = Instant::now();
    let cluster = TestCluster::start(n, &yaml, &[]).await?;
    let took = start.elapsed();
    for i in 0..n {
        let st = cluster.status(i).await?;
        let want: Vec<String> = (0..n)
            .filter(|j| *j != i)
            .map(|j| format!("n{}", j + 1))
            .collect();
        anyhow::ensure!(
            alive_members(&st) == want,
            "node n{} members: {}",
            i + 1,
            st["cluster"]["members"]
        );
        anyhow::ensure!(st["cluster"]["cluster"] == "test-cluster");
        // Every node serves.
        send(&cluster, i, i).await?;
    }
    eprintln!("{n} nodes started and joined from one seed in {took:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_join_from_one_seed() {
    bounded(join(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_join_from_one_seed() {
    bounded(join(5)).await;
}

/// The primary answers 500; one request through node 1 ejects it there; every other node routes away from
/// it without ever sending it a request. Node 2 runs on one thread (`--worker-threads 1`, the
/// single-threaded scheduler), so gossip, health and proxying are covered there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_failover_other_nodes_never_hit_the_primary() {
    bounded(async {
        let (primary, _fallback, yaml) = mocks().await?;
        let cluster = TestCluster::start_with(3, &yaml, &[], |i, spec| {
            if i == 1 {
                spec.extra = vec!["--worker-threads".into(), "1".into()];
            }
        })
        .await?;
        primary
            .set_mode(json!({"mode":"status","status":500}))
            .await?;
        primary.clear().await?;
        send(&cluster, 0, 0).await?;
        let took =
            wait_cluster_ejected(&cluster, &[1, 2], primary.data_addr, Duration::from_secs(5))
                .await?;
        eprintln!("primary cluster-ejected on n2 and n3 {took:?} after n1's request returned");
        for i in 1..3 {
            for k in 0..5 {
                send(&cluster, i, 100 * i + k).await?;
            }
            let b = primary_status(&cluster, i, primary.data_addr).await?;
            anyhow::ensure!(b["cluster"]["adopted"] == true, "{b}");
            anyhow::ensure!(b["cluster"]["class"] == "provider", "{b}");
            anyhow::ensure!(b["cluster"]["observers"][0]["node"] == "n1", "{b}");
        }
        let reqs = primary.requests().await?;
        let srcs: Vec<IpAddr> = reqs.iter().map(source_ip).collect();
        anyhow::ensure!(
            srcs == vec![ip(1)],
            "the primary must have seen exactly n1's one request, saw {srcs:?}"
        );
        Ok(())
    })
    .await;
}

/// One timeline under continuous load (DESIGN §6 "One timeline", "Single trial"): three nodes send a
/// closed loop of requests at once while the primary always answers 500. After the first burst (requests
/// in flight on several nodes before the first ejection reached them), the whole cluster sends the primary
/// exactly one request per expiry, at `base × n` intervals, whichever node runs each trial; every client
/// gets 200 from the fallback; and every node ends holding the host out under the same ejection number
/// until the same instant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_timeline_under_load_one_trial_per_expiry_from_the_whole_cluster() {
    bounded(async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        let policy = SEED_POLICY
            .replace("baseEjectionTime: 5s", "baseEjectionTime: 1s")
            .replace("interval: 2s", "interval: 500ms");
        let yaml = fallback_config(MODEL, primary.data_addr, fallback.data_addr, &policy);
        let cluster = TestCluster::start(3, &yaml, &[]).await?;
        primary
            .set_mode(json!({"mode":"status","status":500}))
            .await?;
        primary.clear().await?;

        // Three workers per node, each sending one request after another for the run.
        let run = Duration::from_millis(7_600);
        let until = Instant::now() + run;
        let mut workers = Vec::new();
        for i in 0..3 {
            for w in 0..3 {
                let url = cluster.node(i).url("/v1/chat/completions");
                workers.push(tokio::spawn(async move {
                    let (mut ok, mut failed) = (0u32, Vec::new());
                    let mut k = 0;
                    while Instant::now() < until {
                        k += 1;
                        match http_post_json(&url, &chat(10_000 * (i * 3 + w) + k)).await {
                            Ok(r) if r.status == 200 => ok += 1,
                            Ok(r) => failed.push(format!("{} {}", r.status, r.text())),
                            Err(e) => failed.push(e.to_string()),
                        }
                    }
                    (ok, failed)
                }));
            }
        }
        let (mut ok, mut failed) = (0, Vec::new());
        for w in workers {
            let (o, f) = w.await?;
            ok += o;
            failed.extend(f);
        }
        anyhow::ensure!(failed.is_empty(), "client errors: {failed:?}");

        let reqs = primary.requests().await?;
        let first = reqs.first().map(|r| r.at_ms).unwrap_or_default();
        let burst = reqs.iter().filter(|r| r.at_ms < first + 500).count();
        let trials: Vec<(u64, IpAddr)> = reqs
            .iter()
            .filter(|r| r.at_ms >= first + 500)
            .map(|r| (r.at_ms - first, source_ip(r)))
            .collect();
        eprintln!(
            "{ok} requests answered; the primary saw {burst} in the first burst, then trials at {trials:?}"
        );
        // Ejection n lasts n s: trials at about 1 s, 1+2 = 3 s and 3+3 = 6 s after the first failure.
        anyhow::ensure!(
            trials.len() == 3,
            "one request per expiry from the whole cluster: {trials:?}"
        );
        for (n, pair) in trials.windows(2).enumerate() {
            let gap = pair[1].0 - pair[0].0;
            let length = 1_000 * (n as u64 + 2);
            anyhow::ensure!(
                gap + 100 >= length && gap < length + 700,
                "trial {} came {gap} ms after the one before; ejection {} lasts {length} ms: {trials:?}",
                n + 2,
                n + 2
            );
        }
        // Per node: the same ejection number, held until the same instant. The nodes share this machine's
        // wall clock, so their ends as Unix milliseconds compare directly.
        let mut ends = Vec::new();
        for i in 0..3 {
            let b = primary_status(&cluster, i, primary.data_addr).await?;
            anyhow::ensure!(b["ejected"] == true, "n{} holds the primary out: {b}", i + 1);
            anyhow::ensure!(
                b["ejection_count"] == 4,
                "n{}: ejection 4 after three failed trials: {b}",
                i + 1
            );
            let end = b["ejected_until_unix_ms"].as_u64();
            ends.push(end.ok_or_else(|| anyhow::anyhow!("n{} has no end: {b}", i + 1))?);
        }
        let spread = ends.iter().max().copied().unwrap_or(0) - ends.iter().min().copied().unwrap_or(0);
        eprintln!("the nodes' ejection ends (Unix ms): {ends:?}, {spread} ms apart");
        // DESIGN §6: within a few ms on loopback. A node learns the end one gossip hop later, and that hop's
        // transit and the receiving actor's scheduling are not compensated: 1–6 ms on an idle machine, up
        // to 9 ms seen with the machine's load average at 8 (a full parallel test run). 15 ms stays far
        // below the 1 s ejection; the one-request-per-expiry claim is the trial assertions above.
        anyhow::ensure!(spread <= 15, "ends {spread} ms apart: {ends:?}");
        Ok(())
    })
    .await;
}

/// A network-class ejection that no quorum shares is held by its node alone, so its trial runs there (DESIGN
/// §6 "Single trial": the other nodes never held the host out and have nothing to try).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ejection_only_one_node_holds_is_tried_on_that_node() {
    bounded(async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        let policy = SEED_POLICY
            .replace("baseEjectionTime: 5s", "baseEjectionTime: 1s")
            .replace("interval: 2s", "interval: 3s");
        let yaml = fallback_config(MODEL, primary.data_addr, fallback.data_addr, &policy);
        let cluster = TestCluster::start(3, &yaml, &["--network-quorum", "2"]).await?;
        let port = primary.data_addr.port().to_string();
        let mut fw = Iptables::new();
        fw.insert(&[
            "-p",
            "tcp",
            "-s",
            "127.0.0.1",
            "-d",
            "127.0.0.1",
            "--dport",
            &port,
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset",
        ])?;
        send(&cluster, 0, 0).await?;
        let trial = poll_until(
            Duration::from_secs(5),
            Duration::from_millis(20),
            || async {
                let b = primary_status(&cluster, 0, primary.data_addr).await.ok()?;
                (!b["trial"].is_null()).then(|| b["trial"].clone())
            },
        )
        .await?;
        anyhow::ensure!(trial["node"] == "n1", "n1 tries its own ejection: {trial}");
        // The trial request meets the refusal again: ejection 2 on n1, the client served by the fallback.
        send(&cluster, 0, 1).await?;
        let b = primary_status(&cluster, 0, primary.data_addr).await?;
        anyhow::ensure!(
            b["ejected"] == true && b["ejection_count"] == 2,
            "the failed trial starts ejection 2: {b}"
        );
        Ok(())
    })
    .await;
}

/// Baseline: with `--share-ejections off` every node has to find out for itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_ejections_off_every_node_hits_the_primary_itself() {
    bounded(async {
        let (primary, _fallback, yaml) = mocks().await?;
        let cluster = TestCluster::start(3, &yaml, &["--share-ejections", "off"]).await?;
        primary
            .set_mode(json!({"mode":"status","status":500}))
            .await?;
        primary.clear().await?;
        send(&cluster, 0, 0).await?;
        // The evidence still flows (n2 and n3 know n1's observation) but is not applied.
        poll_until(
            Duration::from_secs(5),
            Duration::from_millis(20),
            || async {
                let mut ok = true;
                for i in 1..3 {
                    let b = primary_status(&cluster, i, primary.data_addr).await.ok()?;
                    ok &= b["cluster"]["observers"][0]["node"] == "n1";
                }
                ok.then_some(())
            },
        )
        .await?;
        for i in 1..3 {
            let b = primary_status(&cluster, i, primary.data_addr).await?;
            anyhow::ensure!(b["cluster_ejected"] == false, "{b}");
            send(&cluster, i, 100 * i).await?;
        }
        let srcs = sources(&primary).await?;
        let want: BTreeSet<IpAddr> = [ip(1), ip(2), ip(3)].into();
        anyhow::ensure!(srcs == want, "every node should hit the primary: {srcs:?}");
        Ok(())
    })
    .await;
}

/// kill -9 one node: the others see it suspect, then dead (SWIM: 1 s probe interval, 400 ms ping
/// timeout, 5 s suspicion), and keep serving; restarted, it is alive again everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_one_node_others_mark_it_suspect_then_dead_and_keep_serving() {
    bounded(async {
        let (_primary, _fallback, yaml) = mocks().await?;
        let mut cluster = TestCluster::start(3, &yaml, &[]).await?;
        cluster.kill(2)?;
        let killed = Instant::now();
        let suspect = std::cell::RefCell::new([None::<Duration>; 2]);
        let dead = std::cell::RefCell::new([None::<Duration>; 2]);
        let served = std::cell::Cell::new(0usize);
        let (suspect_ref, dead_ref, served_ref, c) = (&suspect, &dead, &served, &cluster);
        let r = poll_until(Duration::from_secs(20), Duration::from_millis(50), || async move {
            for i in 0..2 {
                let st = c.status(i).await.ok()?;
                let n3 = "n3".to_string();
                if members_in_state(&st, "suspect").contains(&n3) {
                    suspect_ref.borrow_mut()[i].get_or_insert(killed.elapsed());
                }
                if members_in_state(&st, "dead").contains(&n3) {
                    dead_ref.borrow_mut()[i].get_or_insert(killed.elapsed());
                }
                // Keep serving all along.
                send(c, i, served_ref.get()).await.ok()?;
                served_ref.set(served_ref.get() + 1);
            }
            dead_ref.borrow().iter().all(Option::is_some).then_some(())
        })
        .await;
        let (suspect_at, dead_at, served) = (*suspect.borrow(), *dead.borrow(), served.get());
        r.map_err(|e| {
            anyhow::anyhow!(
                "{e}: suspect {suspect_at:?} dead {dead_at:?}\n{}",
                cluster.logs()
            )
        })?;
        eprintln!("after kill -9 of n3: suspect at {suspect_at:?}, dead at {dead_at:?}; {served} requests served meanwhile");
        for i in 0..2 {
            let s = suspect_at[i].ok_or_else(|| anyhow::anyhow!("n{} never saw n3 suspect", i + 1))?;
            let d = dead_at[i].unwrap_or_default();
            // Suspect within a few probe rounds; dead one suspicion timeout (5 s) later, give or take.
            anyhow::ensure!(s <= Duration::from_secs(6), "suspect after {s:?}");
            anyhow::ensure!(
                d >= s + Duration::from_secs(4) && d <= s + Duration::from_secs(8),
                "dead after {d:?}, suspect after {s:?}"
            );
        }
        cluster.restart(2).await?;
        let start = Instant::now();
        cluster.wait_converged(Duration::from_secs(30)).await?;
        eprintln!("restarted n3 alive everywhere {:?} after its ready line", start.elapsed());
        Ok(())
    })
    .await;
}

/// A peer with a certificate from another CA is refused at the TLS handshake, a peer of another cluster
/// at Hello; both are counted and never become members. Garbage datagrams on the gossip port do not crash
/// a node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_ca_and_other_cluster_are_refused_and_garbage_never_crashes() {
    bounded(async {
        let (_primary, _fallback, yaml) = mocks().await?;
        let cluster = TestCluster::start(2, &yaml, &[]).await?;
        let seed = cluster.seed();

        // Another CA.
        let foreign = tempfile::tempdir()?;
        make_certs(foreign.path(), &["rogue"])?;
        let rogue_ip = Ipv4Addr::new(127, 0, 0, 9);
        let rogue_gossip = SocketAddr::from((
            rogue_ip,
            switchyard_cluster_tests::harness::free_udp_port(rogue_ip)?,
        ));
        let rogue = start_node(
            rogue_ip,
            &yaml,
            &cluster_flags("rogue", rogue_ip, rogue_gossip, &[seed], foreign.path()),
            &[],
        )
        .await?;
        poll_until(
            Duration::from_secs(15),
            Duration::from_millis(50),
            || async {
                let st = cluster.status(0).await.ok()?;
                (st["cluster"]["counters"]["connections_rejected"].as_u64()? >= 1).then_some(())
            },
        )
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "{e}: foreign-CA peer not counted\n{}\n{}",
                cluster.logs(),
                rogue.logs()
            )
        })?;

        // Same CA, another cluster name.
        let other_ip = Ipv4Addr::new(127, 0, 0, 10);
        switchyard_cluster_tests::harness::switchyard_certs(&[
            "node",
            "--ca-dir",
            &cluster.cert_dir().display().to_string(),
            "--node-id",
            "other",
        ])?;
        let other_gossip = SocketAddr::from((
            other_ip,
            switchyard_cluster_tests::harness::free_udp_port(other_ip)?,
        ));
        let mut flags = cluster_flags("other", other_ip, other_gossip, &[seed], cluster.cert_dir());
        let pos = flags.iter().position(|f| f == "--cluster").unwrap_or(0);
        flags[pos + 1] = "another-cluster".into();
        let other = start_node(other_ip, &yaml, &flags, &[]).await?;
        poll_until(
            Duration::from_secs(15),
            Duration::from_millis(50),
            || async {
                let st = cluster.status(0).await.ok()?;
                (st["cluster"]["counters"]["hello_rejected"].as_u64()? >= 1).then_some(())
            },
        )
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "{e}: other-cluster peer not counted\n{}\n{}",
                cluster.logs(),
                other.logs()
            )
        })?;

        // Garbage: random datagrams, and datagrams shaped like QUIC long-header Initial packets.
        let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for k in 0..3000usize {
            let len = 1 + (k * 37) % 1400;
            let mut buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            if k % 3 == 0 && len > 8 {
                buf[0] = 0xc0 | (buf[0] & 0x0f);
                buf[1..5].copy_from_slice(&1u32.to_be_bytes());
            }
            let _ = sock.send_to(&buf, seed);
        }
        // Still alive, still serving, still a member of the cluster, and no stranger joined.
        cluster.wait_converged(Duration::from_secs(10)).await?;
        let st = cluster.status(0).await?;
        let members = alive_members(&st);
        anyhow::ensure!(members == vec!["n2".to_string()], "members {members:?}");
        let all: Vec<&str> = st["cluster"]["members"]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m["node"].as_str()).collect())
            .unwrap_or_default();
        anyhow::ensure!(
            !all.contains(&"rogue") && !all.contains(&"other"),
            "{all:?}"
        );
        let healthz = http_get(&cluster.node(0).admin_url("/healthz")).await?;
        anyhow::ensure!(healthz.status == 200);
        send(&cluster, 0, 1).await?;
        eprintln!("counters on n1: {}", st["cluster"]["counters"]);
        drop(other);
        drop(rogue);
        Ok(())
    })
    .await;
}

/// `switchyard demo --exit-after N`: exits 0, shows the primary ejected by the cluster, leaves no child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_fails_over_and_cleans_up() {
    bounded(async {
        // The demo needs mock-provider next to switchyard: both are in this test's target directory.
        let _ = bin_path("mock-provider");
        let mut demo = Process::start(
            "switchyard-demo",
            &bin_path("switchyard"),
            ["demo", "--exit-after", "12"],
            &[],
        )?;
        let pid = demo.pid();
        let status = demo.wait_exit(Duration::from_secs(45)).await?;
        let out = demo.stdout();
        anyhow::ensure!(status.success(), "demo failed: {status}\n{}", demo.logs());
        anyhow::ensure!(
            out.contains("==> primary cluster-ejected on n"),
            "demo output does not show the cluster ejecting the primary:\n{out}"
        );
        // No child survives: every PID the demo reported is gone (reaped by the demo itself, so not even
        // a zombie is left), and nothing in /proc has the demo as its parent.
        let pids: Vec<u32> = out
            .lines()
            .find(|l| l.starts_with("children: "))
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|w| w.strip_prefix("pid=")?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        anyhow::ensure!(pids.len() == 5, "expected 2 mocks + 3 nodes in {out}");
        for p in &pids {
            let alive = std::fs::read_to_string(format!("/proc/{p}/stat"))
                .is_ok_and(|s| s.contains("switchyard") || s.contains("mock-provider"));
            anyhow::ensure!(!alive, "demo child {p} survived");
        }
        let children = children_of(pid);
        anyhow::ensure!(
            children.is_empty(),
            "demo children still running: {children:?}"
        );
        Ok(())
    })
    .await;
}

/// Ctrl-C (SIGINT) stops the demo cleanly: exit 0, every child it reported gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_ctrl_c_stops_every_child() {
    bounded(async {
        let _ = bin_path("mock-provider");
        let mut demo = Process::start("switchyard-demo", &bin_path("switchyard"), ["demo"], &[])?;
        let pids: Vec<u32> = {
            let d = &demo;
            poll_until(
                Duration::from_secs(30),
                Duration::from_millis(50),
                || async move {
                    let out = d.stdout();
                    out.contains("cluster formed").then(|| {
                        out.lines()
                            .find(|l| l.starts_with("children: "))
                            .map(|l| {
                                l.split_whitespace()
                                    .filter_map(|w| w.strip_prefix("pid=")?.parse().ok())
                                    .collect()
                            })
                            .unwrap_or_default()
                    })
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}: demo did not form its cluster\n{}", demo.logs()))?
        };
        anyhow::ensure!(pids.len() == 5, "{}", demo.stdout());
        demo.signal(libc::SIGINT)?;
        let status = demo.wait_exit(Duration::from_secs(10)).await?;
        anyhow::ensure!(
            status.success(),
            "demo after Ctrl-C: {status}\n{}",
            demo.logs()
        );
        anyhow::ensure!(demo.stdout().contains("Ctrl-C"), "{}", demo.stdout());
        for p in &pids {
            let alive = std::fs::read_to_string(format!("/proc/{p}/stat"))
                .is_ok_and(|s| s.contains("switchyard") || s.contains("mock-provider"));
            anyhow::ensure!(!alive, "demo child {p} survived Ctrl-C");
        }
        Ok(())
    })
    .await;
}

/// Even SIGKILL of the demo (no cleanup code runs) takes its children along (PR_SET_PDEATHSIG).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_killed_with_sigkill_leaves_no_child() {
    bounded(async {
        let _ = bin_path("mock-provider");
        let mut demo = Process::start("switchyard-demo", &bin_path("switchyard"), ["demo"], &[])?;
        let pids: Vec<u32> = {
            let d = &demo;
            poll_until(
                Duration::from_secs(30),
                Duration::from_millis(50),
                || async move {
                    let out = d.stdout();
                    out.contains("cluster formed").then(|| {
                        out.lines()
                            .find(|l| l.starts_with("children: "))
                            .map(|l| {
                                l.split_whitespace()
                                    .filter_map(|w| w.strip_prefix("pid=")?.parse().ok())
                                    .collect()
                            })
                            .unwrap_or_default()
                    })
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}: demo did not form its cluster\n{}", demo.logs()))?
        };
        anyhow::ensure!(pids.len() == 5, "{}", demo.stdout());
        let pid = demo.pid();
        demo.kill()?;
        // SIGKILL runs no cleanup: remove the demo's temp dir (certificates, config, logs) here.
        let _ =
            std::fs::remove_dir_all(std::env::temp_dir().join(format!("switchyard-demo-{pid}")));
        poll_until(
            Duration::from_secs(10),
            Duration::from_millis(20),
            || async {
                pids.iter()
                    .all(|p| {
                        !std::fs::read_to_string(format!("/proc/{p}/stat"))
                            .is_ok_and(|s| s.contains("switchyard") || s.contains("mock-provider"))
                    })
                    .then_some(())
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}: demo children survived SIGKILL of the demo"))?;
        Ok(())
    })
    .await;
}

/// PIDs whose parent is `pid` (from /proc).
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let ppid = after
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// iptables rules added by a test, deleted (in reverse) on drop, whatever happens.
struct Iptables {
    rules: Vec<Vec<String>>,
}

impl Iptables {
    fn new() -> Self {
        Iptables { rules: Vec::new() }
    }

    /// `iptables -I OUTPUT RULE...`; fails the test if iptables is not usable.
    fn insert(&mut self, rule: &[&str]) -> anyhow::Result<()> {
        let rule: Vec<String> = rule.iter().map(|s| s.to_string()).collect();
        let out = Command::new("iptables")
            .args(["-w", "-I", "OUTPUT"])
            .args(&rule)
            .output()
            .map_err(|e| {
                anyhow::anyhow!("iptables is not usable here (install it, run as root): {e}")
            })?;
        anyhow::ensure!(
            out.status.success(),
            "iptables -I OUTPUT {rule:?} failed (root needed): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.rules.push(rule);
        Ok(())
    }

    fn clear(&mut self) {
        while let Some(rule) = self.rules.pop() {
            let ok = Command::new("iptables")
                .args(["-w", "-D", "OUTPUT"])
                .args(&rule)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                eprintln!("could not delete iptables rule {rule:?}");
            }
        }
    }
}

impl Drop for Iptables {
    fn drop(&mut self) {
        self.clear();
    }
}

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// Two successive ejections on node 1: every node's cluster view shows ejection count 2 and the same time
/// left (≤ 10 s for a 5 s base), including node 3 whose wall clock runs 5 hours ahead (libfaketime:
/// remaining times travel as durations, never as wall-clock deadlines).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejection_length_and_growth_are_the_same_on_every_node_even_with_a_skewed_clock() {
    bounded(async {
        anyhow::ensure!(
            std::path::Path::new(LIBFAKETIME).exists(),
            "{LIBFAKETIME} missing: apt-get install faketime"
        );
        let (primary, _fallback, yaml) = mocks().await?;
        let cluster = TestCluster::start_with(3, &yaml, &[], |i, spec| {
            if i == 2 {
                spec.env = vec![
                    ("LD_PRELOAD".into(), LIBFAKETIME.into()),
                    ("FAKETIME".into(), "+5h".into()),
                    ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
                ];
            }
        })
        .await?;
        // The skew is real: node 3's HTTP Date header is hours ahead of node 2's.
        let date = |i: usize| {
            let url = cluster.node(i).admin_url("/healthz");
            async move {
                let r = http_get(&url).await?;
                let d = r.header("date").unwrap_or_default().to_string();
                anyhow::Ok(d)
            }
        };
        let (d2, d3) = (date(1).await?, date(2).await?);
        anyhow::ensure!(d2 != d3 && !d2.is_empty(), "dates n2 {d2:?} n3 {d3:?}");
        eprintln!("wall clocks: n2 says {d2}, n3 says {d3}");

        primary
            .set_mode(json!({"mode":"status","status":500}))
            .await?;
        // First ejection (count 1, 5 s).
        send(&cluster, 0, 0).await?;
        wait_cluster_ejected(&cluster, &[1, 2], primary.data_addr, Duration::from_secs(5)).await?;
        // Wait until node 1 takes the primary back, then fail it again at once: count 2, 10 s.
        poll_until(Duration::from_secs(15), Duration::from_millis(20), || async {
            let b = primary_status(&cluster, 0, primary.data_addr).await.ok()?;
            (b["ejected"] == false && b["cluster_ejected"] == false).then_some(())
        })
        .await?;
        let before = primary.request_count().await?;
        send(&cluster, 0, 1).await?;
        anyhow::ensure!(primary.request_count().await? == before + 1, "n1 did not retry the primary");
        poll_until(Duration::from_secs(5), Duration::from_millis(20), || async {
            for i in 1..3 {
                let b = primary_status(&cluster, i, primary.data_addr).await.ok()?;
                if b["cluster"]["ejection_count"] != 2 || b["cluster_ejected"] != true {
                    return None;
                }
            }
            Some(())
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}: ejection count 2 not seen everywhere\n{}", cluster.logs()))?;
        let local = primary_status(&cluster, 0, primary.data_addr).await?;
        let b2 = primary_status(&cluster, 1, primary.data_addr).await?;
        let b3 = primary_status(&cluster, 2, primary.data_addr).await?;
        let left = |b: &Value| b["cluster"]["time_left_ms"].as_u64().unwrap_or(0);
        let (l1, l2, l3) = (local["time_left_ms"].as_u64().unwrap_or(0), left(&b2), left(&b3));
        eprintln!("second ejection: time left n1 (local) {l1} ms, n2 {l2} ms, n3 (clock +5h) {l3} ms; counts n1 {} n2 {} n3 {}",
            local["ejection_count"], b2["cluster"]["ejection_count"], b3["cluster"]["ejection_count"]);
        anyhow::ensure!(local["ejection_count"] == 2, "n1 local: {local}");
        for (who, l) in [("n1", l1), ("n2", l2), ("n3", l3)] {
            anyhow::ensure!((7_000..=10_000).contains(&l), "{who}: time left {l} ms, want 7-10 s for 2 x 5 s");
        }
        anyhow::ensure!(l2.abs_diff(l3) <= 1_000, "skewed n3 applies {l3} ms, n2 {l2} ms");
        anyhow::ensure!(l1.abs_diff(l2) <= 1_000, "n1 {l1} ms, n2 {l2} ms");
        Ok(())
    })
    .await;
}

/// A network-class failure seen by one node only (iptables resets its connections to the primary) is not
/// adopted by the cluster (network quorum 2): the other nodes keep using the primary. When a second node
/// sees it too, every node adopts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_failure_seen_by_one_node_is_not_adopted_until_a_second_node_sees_it() {
    bounded(async {
        let (primary, _fallback, yaml) = mocks().await?;
        let cluster = TestCluster::start(3, &yaml, &["--network-quorum", "2"]).await?;
        let port = primary.data_addr.port().to_string();
        let mut fw = Iptables::new();
        let reject_from = |fw: &mut Iptables, src: &str| {
            fw.insert(&[
                "-p",
                "tcp",
                "-s",
                src,
                "-d",
                "127.0.0.1",
                "--dport",
                &port,
                "-j",
                "REJECT",
                "--reject-with",
                "tcp-reset",
            ])
        };
        reject_from(&mut fw, "127.0.0.1")?;
        send(&cluster, 0, 0).await?;
        let b1 = primary_status(&cluster, 0, primary.data_addr).await?;
        anyhow::ensure!(
            b1["ejected"] == true,
            "n1 should eject the primary locally: {b1}"
        );
        // n2 and n3 learn n1's observation but do not adopt it.
        poll_until(
            Duration::from_secs(5),
            Duration::from_millis(20),
            || async {
                for i in 1..3 {
                    let b = primary_status(&cluster, i, primary.data_addr).await.ok()?;
                    if b["cluster"]["observers"][0]["node"] != "n1" {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await?;
        for i in 1..3 {
            let b = primary_status(&cluster, i, primary.data_addr).await?;
            anyhow::ensure!(b["cluster"]["observers"][0]["class"] == "network", "{b}");
            anyhow::ensure!(
                b["cluster"]["adopted"] == false,
                "adopted from one observer: {b}"
            );
            anyhow::ensure!(b["cluster_ejected"] == false, "{b}");
        }
        primary.clear().await?;
        send(&cluster, 2, 1).await?;
        let srcs = sources(&primary).await?;
        anyhow::ensure!(
            srcs.contains(&ip(3)),
            "n3 should still use the primary: {srcs:?}"
        );

        // A second node sees it: everyone adopts.
        reject_from(&mut fw, "127.0.0.2")?;
        send(&cluster, 1, 2).await?;
        let took = Instant::now();
        poll_until(
            Duration::from_secs(3),
            Duration::from_millis(10),
            || async {
                let b = primary_status(&cluster, 2, primary.data_addr).await.ok()?;
                (b["cluster"]["adopted"] == true
                    && b["cluster"]["applied"] == true
                    && b["cluster_ejected"] == true)
                    .then_some(())
            },
        )
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "{e}: n3 did not adopt with two observers\n{}",
                cluster.logs()
            )
        })?;
        eprintln!(
            "n3 adopted the network-class ejection {:?} after n2's request returned",
            took.elapsed()
        );
        primary.clear().await?;
        send(&cluster, 2, 3).await?;
        anyhow::ensure!(
            primary.request_count().await? == 0,
            "n3 still hit the primary"
        );
        fw.clear();
        Ok(())
    })
    .await;
}

fn two_route_config(
    a: (SocketAddr, SocketAddr),
    b: (SocketAddr, SocketAddr),
    model_b: &str,
) -> String {
    let long = SEED_POLICY.replace("baseEjectionTime: 5s", "baseEjectionTime: 30s");
    let first = fallback_config(MODEL, a.0, a.1, &long);
    let second = fallback_config(model_b, b.0, b.1, SEED_POLICY)
        .replace("provider-fallback", "route-b")
        .replace("name: primary", "name: primary-b")
        .replace("name: fallback", "name: fallback-b")
        .replace("passive-health-check", "passive-health-check-b");
    format!("{first}---\n{second}")
}

/// Partition node 3 from nodes 1-2 (iptables DROP of gossip UDP both ways), eject a backend on each side,
/// let node 3's ejection expire, heal: the live ejection converges everywhere within the bound and the
/// expired one does not come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_heals_state_converges_and_expired_ejections_do_not_come_back() {
    bounded(async {
        const MODEL_B: &str = "model-b";
        let pa = MockProvider::start("primary-a").await?;
        let fa = MockProvider::start("fallback-a").await?;
        let pb = MockProvider::start("primary-b").await?;
        let fb = MockProvider::start("fallback-b").await?;
        let yaml = two_route_config(
            (pa.data_addr, fa.data_addr),
            (pb.data_addr, fb.data_addr),
            MODEL_B,
        );
        let cluster = TestCluster::start(3, &yaml, &[]).await?;
        let g: Vec<SocketAddr> = cluster.specs.iter().map(|s| s.gossip).collect();
        let mut fw = Iptables::new();
        for j in 0..2 {
            // n3 -> nj and nj -> n3: every gossip datagram between them.
            let (s3, sj) = (g[2].ip().to_string(), g[j].ip().to_string());
            let (p3, pj) = (g[2].port().to_string(), g[j].port().to_string());
            fw.insert(&[
                "-p", "udp", "-s", &s3, "-d", &sj, "--dport", &pj, "-j", "DROP",
            ])?;
            fw.insert(&[
                "-p", "udp", "-s", &sj, "-d", &s3, "--dport", &p3, "-j", "DROP",
            ])?;
        }
        let parted = Instant::now();
        poll_until(
            Duration::from_secs(15),
            Duration::from_millis(50),
            || async {
                let s1 = cluster.status(0).await.ok()?;
                let s3 = cluster.status(2).await.ok()?;
                (!alive_members(&s1).contains(&"n3".to_string()) && alive_members(&s3).is_empty())
                    .then_some(())
            },
        )
        .await?;
        eprintln!("partition seen by both sides after {:?}", parted.elapsed());

        pa.set_mode(json!({"mode":"status","status":500})).await?;
        pb.set_mode(json!({"mode":"status","status":500})).await?;
        send(&cluster, 0, 0).await?; // side n1-n2 ejects primary-a (30 s)
        let body = json!({"model": MODEL_B, "messages": [{"role": "user", "content": "b"}]});
        let r = http_post_json(&cluster.node(2).url("/v1/chat/completions"), &body).await?;
        anyhow::ensure!(r.status == 200, "{} {}", r.status, r.text()); // n3 ejects primary-b (5 s)
        wait_cluster_ejected(&cluster, &[1], pa.data_addr, Duration::from_secs(5)).await?;
        let ejected_b = Instant::now();
        for i in 0..2 {
            let b = primary_status(&cluster, i, pb.data_addr).await?;
            anyhow::ensure!(
                b["cluster"].is_null() && b["cluster_ejected"] == false,
                "n{} knows primary-b across the partition: {b}",
                i + 1
            );
        }
        let a3 = primary_status(&cluster, 2, pa.data_addr).await?;
        anyhow::ensure!(
            a3["cluster_ejected"] == false,
            "n3 knows primary-a across the partition: {a3}"
        );
        // Let n3's primary-b ejection expire while partitioned.
        poll_until(
            Duration::from_secs(12),
            Duration::from_millis(50),
            || async {
                let b = primary_status(&cluster, 2, pb.data_addr).await.ok()?;
                (b["ejected"] == false && b["cluster"]["adopted"] != true).then_some(())
            },
        )
        .await?;
        eprintln!(
            "primary-b ejection on n3 expired {:?} after it began",
            ejected_b.elapsed()
        );

        fw.clear();
        let healed = Instant::now();
        // Bound: two anti-entropy intervals (2 x 1 s) + the reconnect of dead members (every 10 s) + the
        // QUIC handshake, rounded up to 20 s.
        let bound = Duration::from_secs(20);
        let never_b = |st: &Value| -> anyhow::Result<()> {
            let b = backend_by_addr(st, pb.data_addr).unwrap_or_default();
            anyhow::ensure!(
                b["cluster_ejected"] != true && b["cluster"]["adopted"] != true,
                "expired primary-b came back: {b}"
            );
            Ok(())
        };
        let converged = poll_until(bound, Duration::from_millis(50), || async {
            let mut ok = true;
            for i in 0..3 {
                let st = cluster.status(i).await.ok()?;
                if let Err(e) = never_b(&st) {
                    return Some(Err(e.context(format!("on n{}", i + 1))));
                }
                ok &= alive_members(&st).len() == 2;
                // n1 ejected primary-a itself (its own ejection takes precedence there); n2 and n3 apply
                // the cluster's.
                let a = backend_by_addr(&st, pa.data_addr)?;
                ok &= if i == 0 {
                    a["ejected"] == true
                } else {
                    a["cluster_ejected"] == true
                };
            }
            ok.then_some(Ok(()))
        })
        .await;
        if let Err(e) = converged {
            let mut msg = String::new();
            for i in 0..3 {
                let st = cluster.status(i).await.unwrap_or_default();
                msg.push_str(&format!(
                    "n{}: members {}\n  primary-a {}\n",
                    i + 1,
                    st["cluster"]["members"],
                    backend_by_addr(&st, pa.data_addr).unwrap_or_default()
                ));
            }
            anyhow::bail!("{e}: not converged after healing\n{msg}");
        }
        let converged = converged?;
        converged?;
        eprintln!(
            "converged {:?} after healing (bound {bound:?})",
            healed.elapsed()
        );
        // And it stays that way for three more anti-entropy rounds.
        let settle = Instant::now();
        while settle.elapsed() < Duration::from_secs(3) {
            for i in 0..3 {
                never_b(&cluster.status(i).await?)?;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    })
    .await;
}

/// The rate-limit cooldown extension across the cluster, under continuous load: the primary answers 429
/// with `Retry-After: 20`. Load runs on n1 and n2 (two workers each), and each worker meets that 429 at
/// most once; n3 learns the cooldown from gossip alone (it has sent nothing yet), and once every node
/// shows it in `status` (locally and in its cluster view) n3 takes load too: no node sends the primary
/// anything more — n3 never — and every client request is answered 200 by the fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_provider_cools_down_on_every_node_under_load() {
    bounded(async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        let yaml = annotate_policy(
            &fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY),
            "switchyard.io/rate-limit-cooldown: 60s",
        );
        let cluster = TestCluster::start(3, &yaml, &[]).await?;
        primary
            .set_mode(json!({"mode": "status", "status": 429, "retry_after": 20}))
            .await?;
        primary.clear().await?;

        let until = Instant::now() + Duration::from_secs(4);
        let worker = |i: usize, w: usize| {
            let url = cluster.node(i).url("/v1/chat/completions");
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u32, Vec::new());
                let mut k = 0;
                while Instant::now() < until {
                    k += 1;
                    match http_post_json(&url, &chat(10_000 * (i * 2 + w) + k)).await {
                        Ok(r) if r.status == 200 => ok += 1,
                        Ok(r) => failed.push(format!("{} {}", r.status, r.text())),
                        Err(e) => failed.push(e.to_string()),
                    }
                }
                (ok, failed)
            })
        };
        let mut workers: Vec<_> = [(0, 0), (0, 1), (1, 0), (1, 1)]
            .into_iter()
            .map(|(i, w)| worker(i, w))
            .collect();
        // Under the load: every node holds the cooldown, n3 from gossip alone.
        poll_until(
            Duration::from_secs(3),
            Duration::from_millis(20),
            || async {
                for i in 0..3 {
                    let b = primary_status(&cluster, i, primary.data_addr).await.ok()?;
                    b["cooldown_ms_left"].as_u64()?;
                }
                Some(())
            },
        )
        .await?;
        let all_cooling_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as u64;
        workers.extend([worker(2, 0), worker(2, 1)]);
        let (mut ok, mut failed) = (0, Vec::new());
        for w in workers {
            let (o, f) = w.await?;
            ok += o;
            failed.extend(f);
        }
        anyhow::ensure!(failed.is_empty(), "client errors: {failed:?}");
        let reqs = primary.requests().await?;
        eprintln!(
            "{ok} requests answered; the primary saw {} (at {:?})",
            reqs.len(),
            reqs.iter().map(|r| r.at_ms).collect::<Vec<_>>()
        );
        anyhow::ensure!(
            (1..=4).contains(&reqs.len()),
            "each worker meets the 429 at most once: the primary saw {}",
            reqs.len()
        );
        let n3 = IpAddr::V4(cluster.specs[2].ip);
        anyhow::ensure!(
            reqs.iter().all(|r| source_ip(r) != n3),
            "n3 learned the cooldown from the cluster, yet sent the primary a request"
        );
        // In flight when the last node learned it: sent before, arriving within a few ms.
        let late: Vec<u64> = reqs
            .iter()
            .map(|r| r.at_ms)
            .filter(|at| *at > all_cooling_ms + 100)
            .collect();
        anyhow::ensure!(
            late.is_empty(),
            "sent while every node held the cooldown: {late:?}"
        );
        for i in 0..3 {
            let b = primary_status(&cluster, i, primary.data_addr).await?;
            let left = b["cooldown_ms_left"].as_u64().unwrap_or(0);
            anyhow::ensure!(
                (10_000..=20_000).contains(&left),
                "n{} cools the primary: {b}",
                i + 1
            );
            anyhow::ensure!(
                b["ejected"] == false,
                "n{}: a cooldown is not an ejection: {b}",
                i + 1
            );
            anyhow::ensure!(
                b["cluster"]["cooling_ms_left"].as_u64().is_some(),
                "n{} sees the cooldown in its cluster view: {b}",
                i + 1
            );
        }
        Ok(())
    })
    .await;
}
