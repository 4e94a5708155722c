//! Cluster identity through real processes (issue 18): a second process presenting a live node's
//! certificate from another address is refused and logged while the node lives, and the node itself can
//! still restart from another address once it is gone; a node put on the deny list (a file re-read on
//! SIGHUP and `POST /reload`) is cut off and let back in; the CA and node certificates are rotated with
//! rolling restarts, and with SIGHUPs alone, while the cluster stays joined, and a bad certificate file is
//! refused on reload (docs/operations.md "Rotating certificates").
//!
//! The tests run one at a time (a shared lock): each starts three or four nodes on a small machine.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{ensure, Context};
use hyper::Method;
use serde_json::Value;
use switchyard_cluster_tests::harness::{
    alive_members, cluster_flags, fallback_config, free_udp_port, http_request, poll_until,
    start_node, switchyard_certs, MockProvider, TestCluster, SEED_POLICY,
};

const MODEL: &str = "identity-model";
const TEST_TIMEOUT: Duration = Duration::from_secs(150);

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn bounded<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) {
    let _serial = SERIAL.lock().await;
    match tokio::time::timeout(TEST_TIMEOUT, f).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e:#}"),
        Err(_) => panic!("test exceeded {TEST_TIMEOUT:?}"),
    }
}

async fn config() -> anyhow::Result<(MockProvider, MockProvider, String)> {
    let primary = MockProvider::start("primary").await?;
    let fallback = MockProvider::start("fallback").await?;
    let yaml = fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY);
    Ok((primary, fallback, yaml))
}

/// The `addr` node `at` lists for member `node`, if it lists it alive.
fn alive_addr(status: &Value, node: &str) -> Option<String> {
    status["cluster"]["members"]
        .as_array()?
        .iter()
        .find(|m| m["node"] == node && m["state"] == "alive")
        .and_then(|m| m["addr"].as_str().map(String::from))
}

/// Every member node `status` lists, in any state.
fn listed(status: &Value) -> Vec<String> {
    status["cluster"]["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["node"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_certificate_is_refused_while_its_node_lives_and_a_real_restart_elsewhere_works() {
    bounded(async {
        let (_p, _f, yaml) = config().await?;
        let mut cluster = TestCluster::start(3, &yaml, &[]).await?;
        let n2_addr = cluster.specs[1].gossip.to_string();
        // The rule only applies to connections past the simultaneous-dial window (5 s): before that a
        // second connection is a tie-break, not an impostor. This waits for the connections' age.
        tokio::time::sleep(Duration::from_secs(6)).await;

        // A second process with n2's certificate and key, on another address, seeded with n1.
        let ip4 = Ipv4Addr::new(127, 0, 0, 4);
        let gossip4 = SocketAddr::new(IpAddr::V4(ip4), free_udp_port(ip4)?);
        let flags = cluster_flags("n2", ip4, gossip4, &[cluster.seed()], cluster.cert_dir());
        let copy = start_node(ip4, &yaml, &flags, &[]).await?;
        poll_until(
            Duration::from_secs(20),
            Duration::from_millis(100),
            || async {
                cluster
                    .logs()
                    .contains("a second process presents its certificate")
                    .then_some(())
            },
        )
        .await
        .with_context(|| format!("no refusal logged:\n{}", cluster.logs()))?;
        // Give the copy every chance to get in (its joins retry), then check it never did.
        tokio::time::sleep(Duration::from_secs(3)).await;
        for i in [0, 2] {
            let st = cluster.status(i).await?;
            ensure!(
                alive_addr(&st, "n2").as_deref() == Some(n2_addr.as_str()),
                "n{} lists n2 as {}",
                i + 1,
                st["cluster"]["members"]
            );
        }
        let st = copy.status().await?;
        ensure!(
            alive_members(&st).is_empty(),
            "the copy joined: {}",
            st["cluster"]["members"]
        );
        drop(copy);
        cluster.wait_converged(Duration::from_secs(10)).await?;

        // n2 dies (kill -9: nothing tells the others) and comes back on another address: it gets in.
        cluster.kill(1)?;
        let ip5 = Ipv4Addr::new(127, 0, 0, 5);
        let gossip5 = SocketAddr::new(IpAddr::V4(ip5), free_udp_port(ip5)?);
        let flags = cluster_flags("n2", ip5, gossip5, &[cluster.seed()], cluster.cert_dir());
        let moved = start_node(ip5, &yaml, &flags, &[]).await?;
        let want = gossip5.to_string();
        poll_until(
            Duration::from_secs(30),
            Duration::from_millis(100),
            || async {
                for i in [0, 2] {
                    let st = cluster.status(i).await.ok()?;
                    if alive_addr(&st, "n2").as_deref() != Some(want.as_str()) {
                        return None;
                    }
                }
                let st = moved.status().await.ok()?;
                (alive_members(&st) == ["n1", "n3"]).then_some(())
            },
        )
        .await
        .with_context(|| {
            format!(
                "n2 did not rejoin from {want}:\n{}\n{}",
                cluster.logs(),
                moved.logs()
            )
        })?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_node_is_cut_off_and_let_back_in_on_reload() {
    bounded(async {
        let (_p, _f, yaml) = config().await?;
        let dir = tempfile::tempdir()?;
        let deny = dir.path().join("deny-nodes");
        std::fs::write(&deny, "# nobody yet\n")?;
        let deny_flag = deny.display().to_string();
        let mut cluster = TestCluster::start(3, &yaml, &["--deny-nodes-file", &deny_flag]).await?;

        // n3 is denied: n1 by SIGHUP, n2 by POST /reload. Both drop it at once and refuse it after.
        std::fs::write(&deny, "n3  # lost machine\n")?;
        cluster.node_mut(0).process().signal(libc::SIGHUP)?;
        let r = http_request(Method::POST, &cluster.node(1).admin_url("/reload"), &[], "").await?;
        ensure!(r.status == 200, "reload: {} {}", r.status, r.text());
        poll_until(
            Duration::from_secs(20),
            Duration::from_millis(100),
            || async {
                for i in [0, 1] {
                    let st = cluster.status(i).await.ok()?;
                    if listed(&st).contains(&"n3".to_string()) {
                        return None;
                    }
                }
                // n3 hears from nobody: it holds both others not alive.
                let st = cluster.status(2).await.ok()?;
                alive_members(&st).is_empty().then_some(())
            },
        )
        .await
        .with_context(|| format!("n3 was not cut off:\n{}", cluster.logs()))?;
        ensure!(
            cluster.logs().contains("node n3 is denied"),
            "no refusal logged"
        );
        // n1 and n2 still see each other.
        for i in [0, 1] {
            let st = cluster.status(i).await?;
            ensure!(
                alive_members(&st).len() == 1,
                "{}",
                st["cluster"]["members"]
            );
        }

        // A deny list that does not read is refused and keeps the running one.
        std::fs::write(&deny, "n3\nnot a node id\n")?;
        let r = http_request(Method::POST, &cluster.node(1).admin_url("/reload"), &[], "").await?;
        ensure!(
            r.status == 400 && r.text().contains("deny-nodes:2"),
            "bad deny list: {} {}",
            r.status,
            r.text()
        );

        // Lifted: n3 is back everywhere.
        std::fs::write(&deny, "")?;
        cluster.node_mut(0).process().signal(libc::SIGHUP)?;
        let r = http_request(Method::POST, &cluster.node(1).admin_url("/reload"), &[], "").await?;
        ensure!(r.status == 200, "reload: {} {}", r.status, r.text());
        cluster.wait_converged(Duration::from_secs(40)).await?;
        Ok(())
    })
    .await;
}

/// Restarts every node in turn, each time waiting until the restarted node lists every other alive (which
/// needs mutual TLS with the files as they are now) and the others list it.
async fn rolling_restart(cluster: &mut TestCluster, step: &str) -> anyhow::Result<()> {
    for i in 0..cluster.len() {
        cluster.restart(i).await?;
        cluster
            .wait_converged(Duration::from_secs(30))
            .await
            .with_context(|| format!("{step}: after restarting n{}", i + 1))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_and_node_certificates_rotate_with_the_cluster_joined() {
    bounded(async {
        let (_p, _f, yaml) = config().await?;
        let mut cluster = TestCluster::start(3, &yaml, &[]).await?;
        let certs = cluster.cert_dir().to_path_buf();
        let old_ca = std::fs::read_to_string(certs.join("ca.crt"))?;
        let new_dir = tempfile::tempdir()?;
        let new = new_dir.path().display().to_string();
        switchyard_certs(&["ca", "--out", &new, "--cluster", "rotated"])?;
        let new_ca = std::fs::read_to_string(new_dir.path().join("ca.crt"))?;

        // 1. Every node trusts both CAs (a bundle in --cluster-ca), still presenting old certificates.
        std::fs::write(certs.join("ca.crt"), format!("{old_ca}{new_ca}"))?;
        rolling_restart(&mut cluster, "bundle").await?;

        // 2. Every node gets a certificate from the new CA; old and new certificates mix meanwhile.
        let out = certs.display().to_string();
        for i in 0..cluster.len() {
            let id = cluster.specs[i].id.clone();
            switchyard_certs(&[
                "node",
                "--ca-dir",
                &new,
                "--node-id",
                &id,
                "--out",
                &out,
                "--force",
            ])?;
            cluster.restart(i).await?;
            cluster
                .wait_converged(Duration::from_secs(30))
                .await
                .with_context(|| format!("new certificate for {id}"))?;
        }

        // 3. The old CA is dropped from the trust bundle.
        std::fs::write(certs.join("ca.crt"), &new_ca)?;
        rolling_restart(&mut cluster, "new CA only").await?;

        // A node still holding an old-CA certificate cannot join any more.
        let ip4 = Ipv4Addr::new(127, 0, 0, 4);
        let gossip4 = SocketAddr::new(IpAddr::V4(ip4), free_udp_port(ip4)?);
        let stale_dir = tempfile::tempdir()?;
        let stale = stale_dir.path().display().to_string();
        std::fs::write(stale_dir.path().join("ca.crt"), &old_ca)?;
        std::fs::copy(certs.join("ca.key"), stale_dir.path().join("ca.key"))?;
        switchyard_certs(&[
            "node",
            "--ca-dir",
            &stale,
            "--node-id",
            "n4",
            "--out",
            &stale,
        ])?;
        let flags = cluster_flags("n4", ip4, gossip4, &[cluster.seed()], stale_dir.path());
        let n4 = start_node(ip4, &yaml, &flags, &[]).await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        ensure!(
            alive_members(&n4.status().await?).is_empty(),
            "old-CA node joined"
        );
        for i in 0..cluster.len() {
            ensure!(!listed(&cluster.status(i).await?).contains(&"n4".to_string()));
        }
        Ok(())
    })
    .await;
}

/// Sends SIGHUP to every node and waits until each has logged its `n`-th certificate reload.
async fn sighup_all(cluster: &mut TestCluster, n: usize, step: &str) -> anyhow::Result<()> {
    for i in 0..cluster.len() {
        cluster.node_mut(i).process().signal(libc::SIGHUP)?;
    }
    poll_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            (0..cluster.len())
                .all(|i| {
                    cluster
                        .node(i)
                        .logs()
                        .matches("cluster certificates reloaded")
                        .count()
                        >= n
                })
                .then_some(())
        },
    )
    .await
    .with_context(|| format!("{step}: not every node reloaded:\n{}", cluster.logs()))
}

/// Starts a node `id` on 127.0.0.`last` whose files are in `dir` (`ca.crt`, `ID.crt`, `ID.key`), and
/// waits until it and every cluster node list each other alive: new handshakes in both directions work
/// with what both sides now hold.
async fn joiner_gets_in(
    cluster: &TestCluster,
    yaml: &str,
    id: &str,
    last: u8,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let ip = Ipv4Addr::new(127, 0, 0, last);
    let gossip = SocketAddr::new(IpAddr::V4(ip), free_udp_port(ip)?);
    let flags = cluster_flags(id, ip, gossip, &[cluster.seed()], dir);
    let node = start_node(ip, yaml, &flags, &[]).await?;
    poll_until(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            let st = node.status().await.ok()?;
            if alive_members(&st).len() != cluster.len() {
                return None;
            }
            for i in 0..cluster.len() {
                let st = cluster.status(i).await.ok()?;
                if !alive_members(&st).contains(&id.to_string()) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await
    .with_context(|| format!("{id} did not join:\n{}\n{}", cluster.logs(), node.logs()))
}

/// Files for a joiner `id`: a certificate from the CA in `ca_dir`, trusting `trust`.
fn joiner_files(ca_dir: &str, id: &str, trust: &str) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().display().to_string();
    switchyard_certs(&["node", "--ca-dir", ca_dir, "--node-id", id, "--out", &out])?;
    std::fs::write(dir.path().join("ca.crt"), trust)?;
    Ok(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_rotation_runs_with_sighups_only_and_a_bad_certificate_is_refused_on_reload() {
    bounded(async {
        let (_p, _f, yaml) = config().await?;
        let mut cluster = TestCluster::start(3, &yaml, &[]).await?;
        let certs = cluster.cert_dir().to_path_buf();
        let old_ca = std::fs::read_to_string(certs.join("ca.crt"))?;
        let new_dir = tempfile::tempdir()?;
        let new = new_dir.path().display().to_string();
        switchyard_certs(&["ca", "--out", &new, "--cluster", "rotated"])?;
        let new_ca = std::fs::read_to_string(new_dir.path().join("ca.crt"))?;
        let bundle = format!("{old_ca}{new_ca}");

        // 1. Every node trusts both CAs. Proof: a new-CA node gets in, which the old bundle refused.
        std::fs::write(certs.join("ca.crt"), &bundle)?;
        sighup_all(&mut cluster, 1, "bundle").await?;
        cluster.wait_converged(Duration::from_secs(10)).await?;
        let n4 = joiner_files(&new, "n4", &bundle)?;
        joiner_gets_in(&cluster, &yaml, "n4", 4, n4.path()).await?;

        // 2. Every node presents a certificate from the new CA. Proof: a node trusting the new CA alone
        //    gets in, so every node it meets (as server and as client) presents its new certificate.
        let out = certs.display().to_string();
        for spec in &cluster.specs {
            switchyard_certs(&[
                "node",
                "--ca-dir",
                &new,
                "--node-id",
                &spec.id,
                "--out",
                &out,
                "--force",
            ])?;
        }
        sighup_all(&mut cluster, 2, "new certificates").await?;
        cluster.wait_converged(Duration::from_secs(10)).await?;
        let n5 = joiner_files(&new, "n5", &new_ca)?;
        joiner_gets_in(&cluster, &yaml, "n5", 5, n5.path()).await?;

        // 3. The old CA is dropped. Connections opened before step 2 rest on old certificates: they are
        //    closed and re-opened with the new ones, and the cluster is joined again.
        std::fs::write(certs.join("ca.crt"), &new_ca)?;
        sighup_all(&mut cluster, 3, "new CA only").await?;
        cluster
            .wait_converged(Duration::from_secs(30))
            .await
            .context("after dropping the old CA")?;
        ensure!(
            cluster
                .logs()
                .contains("peer certificate the new CA bundle does not accept"),
            "no connection resting on an old certificate was closed:\n{}",
            cluster.logs()
        );

        // A node still holding an old-CA certificate cannot get in.
        let stale_ca = tempfile::tempdir()?;
        std::fs::write(stale_ca.path().join("ca.crt"), &old_ca)?;
        std::fs::copy(certs.join("ca.key"), stale_ca.path().join("ca.key"))?;
        let n6 = joiner_files(&stale_ca.path().display().to_string(), "n6", &old_ca)?;
        let ip6 = Ipv4Addr::new(127, 0, 0, 6);
        let gossip6 = SocketAddr::new(IpAddr::V4(ip6), free_udp_port(ip6)?);
        let flags = cluster_flags("n6", ip6, gossip6, &[cluster.seed()], n6.path());
        let stale = start_node(ip6, &yaml, &flags, &[]).await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        ensure!(
            alive_members(&stale.status().await?).is_empty(),
            "old-CA node joined"
        );
        for i in 0..cluster.len() {
            ensure!(!listed(&cluster.status(i).await?).contains(&"n6".to_string()));
        }

        // A bad certificate file on reload is refused naming the file, and the node keeps working.
        let (n1_crt, _) = cluster.cert_paths("n1");
        let good = std::fs::read_to_string(&n1_crt)?;
        let n2_crt = std::fs::read_to_string(cluster.cert_paths("n2").0)?;
        for (name, contents, words) in [
            ("garbage", "not a certificate\n", "no PEM certificate"),
            ("n2's certificate", n2_crt.as_str(), "is for node"),
        ] {
            std::fs::write(&n1_crt, contents)?;
            let r =
                http_request(Method::POST, &cluster.node(0).admin_url("/reload"), &[], "").await?;
            let text = r.text();
            ensure!(
                r.status == 400
                    && text.contains(&n1_crt.display().to_string())
                    && text.contains(words),
                "{name}: {} {text}",
                r.status
            );
        }
        cluster.node_mut(0).process().signal(libc::SIGHUP)?;
        poll_until(
            Duration::from_secs(10),
            Duration::from_millis(50),
            || async {
                cluster
                    .node(0)
                    .logs()
                    .matches("reload refused")
                    .count()
                    .ge(&3)
                    .then_some(())
            },
        )
        .await
        .context("SIGHUP with a bad certificate was not refused")?;
        cluster.wait_converged(Duration::from_secs(10)).await?;
        // n1 still handshakes with what it had: a new node trusting the new CA gets in through it.
        let n7 = joiner_files(&new, "n7", &new_ca)?;
        joiner_gets_in(&cluster, &yaml, "n7", 7, n7.path()).await?;
        std::fs::write(&n1_crt, good)?;
        let r = http_request(Method::POST, &cluster.node(0).admin_url("/reload"), &[], "").await?;
        ensure!(r.status == 200, "restored: {} {}", r.status, r.text());
        Ok(())
    })
    .await;
}
