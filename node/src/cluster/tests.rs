//! ClusterCore tests: a few cores wired by an instant in-memory network (every message goes through the
//! real codec), checking join, eager push, network quorum, failure detection and partition healing.
//! The many-node, lossy, latency-bearing version is `cluster-tests/src/sim.rs`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use switchyard_protocol::{decode, encode, Decoded, MemberState, ObservationClass as C};

use super::*;

struct Net {
    cores: BTreeMap<String, ClusterCore>,
    down: Vec<(String, String)>,
    now: Instant,
}

impl Net {
    fn new(n: usize) -> Net {
        let now = Instant::now();
        let mut cores = BTreeMap::new();
        for i in 0..n {
            let id = format!("n{i}");
            let mut cfg = ClusterConfig::new(id.clone(), format!("{id}:7946"), 1);
            cfg.seeds = vec!["n0:7946".into()];
            cores.insert(id, ClusterCore::new(cfg, now));
        }
        Net {
            cores,
            down: Vec::new(),
            now,
        }
    }

    fn cut(&self, a: &str, b: &str) -> bool {
        self.down
            .iter()
            .any(|(x, y)| (x == a && y == b) || (x == b && y == a))
    }

    /// Delivers everything queued, repeatedly, at the current instant.
    fn flush(&mut self) {
        loop {
            let mut queue = Vec::new();
            for (key, core) in &mut self.cores {
                let id = core.node_id().clone();
                for o in core.drain_outbox() {
                    let bytes = encode(&o.message).expect("encodes");
                    queue.push((key.clone(), id.clone(), o.to, bytes));
                }
            }
            if queue.is_empty() {
                return;
            }
            for (from_key, from, to, bytes) in queue {
                // A process is keyed by its address's host part; a node id reaches the first process
                // holding it that the sender is not cut from (there are two when a certificate is copied).
                let to = match to {
                    Peer::Node(n) => self
                        .cores
                        .iter()
                        .find(|(k, c)| *c.node_id() == n && !self.cut(&from_key, k))
                        .map(|(k, _)| k.clone()),
                    Peer::Addr(a) => Some(a.trim_end_matches(":7946").to_string()),
                };
                let Some(to) = to.filter(|to| !self.cut(&from_key, to)) else {
                    continue;
                };
                let Ok(Decoded::Message(m)) = decode(&bytes) else {
                    panic!("undecodable");
                };
                if let Some(core) = self.cores.get_mut(&to) {
                    core.handle_message(&from, m, self.now);
                }
            }
        }
    }

    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += Duration::from_millis(50);
            let now = self.now;
            for core in self.cores.values_mut() {
                core.tick(now);
            }
            self.flush();
        }
    }

    fn core(&mut self, id: &str) -> &mut ClusterCore {
        self.cores.get_mut(id).expect("node")
    }

    fn state_of(&self, at: &str, of: &str) -> Option<MemberState> {
        self.cores[at]
            .members()
            .into_iter()
            .find(|m| m.node == of)
            .map(|m| m.state)
    }

    fn adopted(&self, at: &str, backend: &str) -> bool {
        self.cores[at]
            .backend_view(backend, self.now)
            .is_some_and(|v| v.adopted)
    }
}

#[test]
fn three_nodes_join_from_one_seed() {
    let mut net = Net::new(3);
    net.run(Duration::from_secs(5));
    for at in ["n0", "n1", "n2"] {
        let alive = net.cores[at]
            .members()
            .iter()
            .filter(|m| m.state == MemberState::Alive)
            .count();
        assert_eq!(alive, 2, "{at} sees {:?}", net.cores[at].members());
    }
}

#[test]
fn provider_ejection_is_pushed_to_all_at_once() {
    let mut net = Net::new(3);
    net.run(Duration::from_secs(5));
    let now = net.now;
    net.core("n1").local_ejection(
        "p",
        "consecutive_5xx",
        C::Provider,
        Duration::from_secs(30),
        1,
        now,
    );
    net.flush();
    assert!(net.adopted("n0", "p") && net.adopted("n2", "p"));
    let v = net.cores["n2"].backend_view("p", now).expect("view");
    assert_eq!(v.time_left, Some(Duration::from_secs(30)));
    assert_eq!(v.ejection_count, 1);
    let now = net.now;
    net.core("n1").local_return("p", now);
    net.flush();
    assert!(!net.adopted("n0", "p"));
    let events = net.core("n0").drain_events();
    assert!(events
        .iter()
        .any(|e| matches!(e, ClusterEvent::ObservationLearned { owner, .. } if owner == "n1")));
}

#[test]
fn network_ejection_needs_a_second_observer() {
    let mut net = Net::new(3);
    net.run(Duration::from_secs(5));
    let now = net.now;
    let reason = "consecutive_local_origin_failure";
    net.core("n1")
        .local_ejection("p", reason, C::Network, Duration::from_secs(30), 1, now);
    net.flush();
    assert!(!net.adopted("n0", "p") && !net.adopted("n2", "p") && !net.adopted("n1", "p"));
    net.core("n2")
        .local_ejection("p", reason, C::Network, Duration::from_secs(30), 1, now);
    net.flush();
    assert!(net.adopted("n0", "p") && net.adopted("n1", "p") && net.adopted("n2", "p"));
}

#[test]
fn killed_node_becomes_suspect_then_dead() {
    let mut net = Net::new(3);
    net.run(Duration::from_secs(5));
    net.cores.remove("n2");
    net.run(Duration::from_secs(8));
    for at in ["n0", "n1"] {
        assert_eq!(net.state_of(at, "n2"), Some(MemberState::Dead), "at {at}");
    }
}

#[test]
fn leave_is_seen_at_once() {
    let mut net = Net::new(3);
    net.run(Duration::from_secs(5));
    let now = net.now;
    net.core("n2").leave(now);
    net.flush();
    assert_eq!(net.state_of("n0", "n2"), Some(MemberState::Left));
}

#[test]
fn healed_partition_converges_and_expired_ejections_stay_gone() {
    let mut net = Net::new(3);
    net.run(Duration::from_secs(5));
    net.down = vec![("n0".into(), "n2".into()), ("n1".into(), "n2".into())];
    net.run(Duration::from_secs(10));
    assert_eq!(net.state_of("n0", "n2"), Some(MemberState::Dead));
    let now = net.now;
    net.core("n0").local_ejection(
        "p",
        "consecutive_5xx",
        C::Provider,
        Duration::from_secs(60),
        1,
        now,
    );
    net.core("n2").local_ejection(
        "q",
        "consecutive_5xx",
        C::Provider,
        Duration::from_secs(60),
        2,
        now,
    );
    net.core("n2").local_ejection(
        "short",
        "consecutive_5xx",
        C::Provider,
        Duration::from_secs(2),
        1,
        now,
    );
    net.flush();
    assert!(net.adopted("n1", "p") && !net.adopted("n1", "q"));
    assert!(net.adopted("n2", "q") && !net.adopted("n2", "p"));
    net.run(Duration::from_secs(3));
    net.down.clear();
    // Reconnect (10 s) + anti-entropy (1 s) bring both sides together.
    net.run(Duration::from_secs(15));
    for at in ["n0", "n1", "n2"] {
        assert!(net.adopted(at, "p") && net.adopted(at, "q"), "at {at}");
        assert!(
            !net.adopted(at, "short"),
            "expired ejection came back at {at}"
        );
        for of in ["n0", "n1", "n2"] {
            if at != of {
                assert_eq!(
                    net.state_of(at, of),
                    Some(MemberState::Alive),
                    "{at} about {of}"
                );
            }
        }
    }
}

#[test]
fn denied_node_is_forgotten_and_stays_out() {
    let mut net = Net::new(3);
    net.run(Duration::from_secs(5));
    let now = net.now;
    net.core("n2").local_ejection(
        "p",
        "consecutive_5xx",
        C::Provider,
        Duration::from_secs(60),
        1,
        now,
    );
    net.flush();
    assert!(net.adopted("n0", "p"));

    net.core("n0")
        .set_denied(["n2".to_string(), "n0".to_string()].into(), now);
    assert_eq!(net.state_of("n0", "n2"), None, "membership dropped at once");
    assert!(!net.adopted("n0", "p"), "its evidence dropped at once");

    // n2 keeps talking to n0 and n1 keeps vouching for n2 and relaying its state: n0 ignores all of it,
    // while n1 (which did not deny it) keeps n2 as a member. Denying itself is ignored.
    net.run(Duration::from_secs(5));
    assert_eq!(net.state_of("n0", "n2"), None);
    assert!(!net.adopted("n0", "p"));
    assert_eq!(net.state_of("n1", "n2"), Some(MemberState::Alive));
    assert_eq!(net.state_of("n0", "n1"), Some(MemberState::Alive));
    assert!(net.adopted("n1", "p"));

    // Lifting the denial lets it back in.
    let now = net.now;
    net.core("n0").set_denied(Default::default(), now);
    net.run(Duration::from_secs(5));
    assert_eq!(net.state_of("n0", "n2"), Some(MemberState::Alive));
    assert!(net.adopted("n0", "p"));
}

/// `addr` of member `of` as node `at` holds it, if Alive.
fn alive_at(net: &Net, at: &str, of: &str) -> Option<String> {
    net.cores[at]
        .members()
        .into_iter()
        .find(|m| m.node == of && m.state == MemberState::Alive)
        .map(|m| m.addr)
}

fn start_process(net: &mut Net, key: &str, id: &str, generation: u64) {
    let mut cfg = ClusterConfig::new(id, format!("{key}:7946"), generation);
    cfg.seeds = vec!["n0:7946".into()];
    let core = ClusterCore::new(cfg, net.now);
    net.cores.insert(key.into(), core);
}

/// Issue 18: a copy of n1's certificate (same node id, a later generation, another address) reaches only
/// n0, whose link to the real n1 is down. n0 cannot tell it from a restart and takes it; n2, which still
/// hears the real n1, refuses the hearsay and keeps the real one, so the copy's record does not spread.
#[test]
fn a_copied_identity_does_not_spread_past_the_node_it_reached() {
    let mut net = Net::new(3);
    net.run(Duration::from_secs(5));
    net.down.push(("n0".into(), "n1".into()));
    start_process(&mut net, "copy", "n1", 99);
    net.down.push(("copy".into(), "n1".into()));
    net.down.push(("copy".into(), "n2".into()));
    net.run(Duration::from_secs(10));

    assert_eq!(alive_at(&net, "n0", "n1").as_deref(), Some("copy:7946"));
    assert_eq!(alive_at(&net, "n2", "n1").as_deref(), Some("n1:7946"));
    assert_eq!(alive_at(&net, "n1", "n2").as_deref(), Some("n2:7946"));
    let refused: Vec<_> = net
        .core("n2")
        .drain_events()
        .into_iter()
        .filter(|e| {
            matches!(e, ClusterEvent::Member(MembershipEvent::ClaimRefused { node, claim: membership::Claim::Deferred, .. }) if node == "n1")
        })
        .collect();
    assert_eq!(refused.len(), 1, "reported once: {refused:?}");
}

/// A real restart from another address (the old process gone, a new generation elsewhere) is taken by
/// every node: by its seed at once, by the others once it speaks to them directly.
#[test]
fn a_restart_from_another_address_is_taken_everywhere() {
    let mut net = Net::new(3);
    net.run(Duration::from_secs(5));
    net.cores.remove("n1");
    start_process(&mut net, "moved", "n1", 2);
    net.run(Duration::from_secs(10));
    for at in ["n0", "n2"] {
        assert_eq!(
            alive_at(&net, at, "n1").as_deref(),
            Some("moved:7946"),
            "{at}: {:?}",
            net.cores[at].members()
        );
    }
    assert_eq!(alive_at(&net, "moved", "n2").as_deref(), Some("n2:7946"));
}
