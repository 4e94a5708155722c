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
            for (id, core) in &mut self.cores {
                for o in core.drain_outbox() {
                    let to = match o.to {
                        Peer::Node(n) => n,
                        Peer::Addr(a) => a.trim_end_matches(":7946").to_string(),
                    };
                    let bytes = encode(&o.message).expect("encodes");
                    queue.push((id.clone(), to, bytes));
                }
            }
            if queue.is_empty() {
                return;
            }
            for (from, to, bytes) in queue {
                if self.cut(&from, &to) {
                    continue;
                }
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
