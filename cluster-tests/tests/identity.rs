//! Cluster identity through real processes (issue 18): a second process presenting a live node's
//! certificate from another address is refused and logged while the node lives, and the node itself can
//! still restart from another address once it is gone; a node put on the deny list (a file re-read on
//! SIGHUP and `POST /reload`) is cut off and let back in; the CA and node certificates are rotated with
//! rolling restarts while the cluster stays joined (docs/operations.md "Rotating certificates").
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
