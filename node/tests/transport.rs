//! The cluster transport over real QUIC and real mTLS on 127.0.0.x: frames, identities, the
//! simultaneous-dial tie-break, refusal of foreign certificates, garbage datagrams, oversized frames and
//! peer loss; a second holder of a live node's certificate and denied node ids are refused; certificates
//! swapped in at run time serve new handshakes while live connections stay.

#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use switchyard::cluster::certs::{self, CertAndKey};
use switchyard::cluster::transport::{
    DownReason, PeerAddr, RejectReason, SendError, Transport, TransportConfig, TransportError,
    TransportEvent, SIMULTANEOUS_DIAL_WINDOW,
};
use tokio::sync::mpsc;

/// Upper bound for anything to happen on loopback.
const WAIT: Duration = Duration::from_secs(10);

struct Ca {
    ca: CertAndKey,
}

impl Ca {
    fn new(name: &str) -> Self {
        Ca {
            ca: certs::generate_ca(name).unwrap(),
        }
    }

    fn node(&self, id: &str) -> CertAndKey {
        certs::generate_node(&self.ca, std::path::Path::new("test-ca"), id, &[]).unwrap()
    }

    fn config(&self, ip: &str, id: &str) -> TransportConfig {
        let node = self.node(id);
        TransportConfig::new(
            format!("{ip}:0").parse().unwrap(),
            id,
            self.ca.cert_pem.clone(),
            node.cert_pem,
            node.key_pem,
        )
    }
}

struct Node {
    t: Transport,
    rx: mpsc::Receiver<TransportEvent>,
}

impl Node {
    fn bind(config: TransportConfig) -> Self {
        let (t, rx) = Transport::bind(config).unwrap();
        Node { t, rx }
    }

    fn peer_addr(&self) -> PeerAddr {
        PeerAddr {
            node_id: self.t.node_id().to_string(),
            addr: self.addr(),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.t.local_addr().unwrap()
    }

    /// Waits (bounded) for the first event matching `pred`, skipping others.
    async fn expect(
        &mut self,
        what: &str,
        pred: impl Fn(&TransportEvent) -> bool,
    ) -> TransportEvent {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(ev)) if pred(&ev) => return ev,
                Ok(Some(_)) => continue,
                Ok(None) => panic!(
                    "{}: event channel closed waiting for {what}",
                    self.t.node_id()
                ),
                Err(_) => panic!("{}: timed out waiting for {what}", self.t.node_id()),
            }
        }
    }

    /// Asserts that no event matching `pred` arrives within `d` (other events are skipped).
    async fn expect_none(&mut self, d: Duration, pred: impl Fn(&TransportEvent) -> bool) {
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            assert!(!pred(&ev), "{}: unexpected event {ev:?}", self.t.node_id());
        }
    }
}

fn is_frame<'a>(from: &'a str, body: &'static [u8]) -> impl Fn(&TransportEvent) -> bool + 'a {
    move |ev| matches!(ev, TransportEvent::Frame { from: f, frame, .. } if f == from && frame.as_ref() == body)
}

fn is_up(id: &str) -> impl Fn(&TransportEvent) -> bool + '_ {
    move |ev| matches!(ev, TransportEvent::PeerUp { node_id, .. } if node_id == id)
}

fn is_any_frame(ev: &TransportEvent) -> bool {
    matches!(ev, TransportEvent::Frame { .. })
}

/// Polls `cond` until it holds, bounded by [`WAIT`].
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn frames_flow_both_ways_and_peer_up_names_the_certificate_identity() {
    let ca = Ca::new("c");
    let mut a = Node::bind(ca.config("127.0.0.1", "node-a"));
    let mut b = Node::bind(ca.config("127.0.0.2", "node-b"));

    a.t.send(&b.peer_addr(), Bytes::from_static(b"ping"))
        .unwrap();
    let up = b.expect("PeerUp a", is_up("node-a")).await;
    match up {
        TransportEvent::PeerUp { addr, .. } => assert_eq!(addr, a.addr()),
        _ => unreachable!(),
    }
    b.expect("ping", is_frame("node-a", b"ping")).await;
    a.expect("PeerUp b", is_up("node-b")).await;

    // B answers over the same connection (no second dial).
    b.t.send(&a.peer_addr(), Bytes::from_static(b"pong"))
        .unwrap();
    a.expect("pong", is_frame("node-b", b"pong")).await;
    for i in 0..50u8 {
        a.t.send(&b.peer_addr(), Bytes::from(vec![i; 100])).unwrap();
    }
    for i in 0..50u8 {
        let ev = b.expect("frame", is_any_frame).await;
        match ev {
            TransportEvent::Frame { frame, .. } => {
                assert_eq!(frame.as_ref(), &[i; 100][..], "in order")
            }
            _ => unreachable!(),
        }
    }
    assert!(a.t.rtt("node-b").is_some());
    assert_eq!(a.t.peers().len(), 1);
    assert_eq!(b.t.peers().len(), 1);
    assert_eq!(a.t.stats().connections_outbound, 1);
    assert_eq!(b.t.stats().connections_inbound, 1);
    assert_eq!(a.t.stats().frames_out, 51);
    assert_eq!(b.t.stats().frames_in, 51);
}

#[tokio::test]
async fn simultaneous_dial_keeps_exactly_the_connection_of_the_lower_node_id() {
    let ca = Ca::new("c");
    let mut duplicates = 0;
    for round in 0..5 {
        let mut a = Node::bind(ca.config("127.0.0.1", "node-a"));
        let mut b = Node::bind(ca.config("127.0.0.3", "node-b"));
        let (pa, pb) = (a.peer_addr(), b.peer_addr());
        // Both dial at once.
        a.t.connect(&pb).unwrap();
        b.t.connect(&pa).unwrap();
        a.expect("PeerUp b", is_up("node-b")).await;
        b.expect("PeerUp a", is_up("node-a")).await;
        eventually("one connection on each side", || {
            a.t.open_connections() == 1 && b.t.open_connections() == 1
        })
        .await;
        let (pa_info, pb_info) = (a.t.peers(), b.t.peers());
        assert_eq!(pa_info.len(), 1, "round {round}");
        assert_eq!(pb_info.len(), 1, "round {round}");
        // The surviving connection is the one node-a (the lower id) opened, on both sides.
        use switchyard::cluster::transport::Direction;
        assert_eq!(pa_info[0].direction, Direction::Outbound, "round {round}");
        assert_eq!(pb_info[0].direction, Direction::Inbound, "round {round}");

        // It carries frames both ways, and no PeerDown was reported for the closed duplicate.
        a.t.send(&pb, Bytes::from_static(b"x")).unwrap();
        b.t.send(&pa, Bytes::from_static(b"y")).unwrap();
        b.expect("x", is_frame("node-a", b"x")).await;
        a.expect("y", is_frame("node-b", b"y")).await;
        let down = |ev: &TransportEvent| matches!(ev, TransportEvent::PeerDown { .. });
        a.expect_none(Duration::from_millis(200), down).await;
        b.expect_none(Duration::from_millis(10), down).await;
        assert_eq!(a.t.open_connections(), 1);
        assert_eq!(b.t.open_connections(), 1);
        duplicates += a.t.stats().duplicates + b.t.stats().duplicates;
    }
    // Each round both dials start before either handshake ends, so real duplicates were resolved.
    assert!(duplicates > 0, "no simultaneous dial happened");
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused_and_delivers_nothing() {
    let ca = Ca::new("cluster");
    let other = Ca::new("intruders");
    let mut a = Node::bind(ca.config("127.0.0.1", "node-a"));

    // Trusts the cluster CA (so it accepts node-a's certificate) but holds a certificate from another CA:
    // node-a's client-certificate check is what stops it.
    let mallory_cert = other.node("mallory");
    let mut mallory = Node::bind(TransportConfig::new(
        "127.0.0.4:0".parse().unwrap(),
        "mallory",
        ca.ca.cert_pem.clone(),
        mallory_cert.cert_pem,
        mallory_cert.key_pem,
    ));
    mallory
        .t
        .send(&a.peer_addr(), Bytes::from_static(b"evil"))
        .unwrap();
    let ev = a
        .expect("Rejected", |ev| {
            matches!(ev, TransportEvent::Rejected { .. })
        })
        .await;
    match ev {
        TransportEvent::Rejected { addr, reason } => {
            assert_eq!(addr, mallory.addr());
            assert!(matches!(reason, RejectReason::Tls(_)), "{reason:?}");
            assert_eq!(reason.label(), "tls");
        }
        _ => unreachable!(),
    }
    mallory
        .expect("DialFailed", |ev| {
            matches!(ev, TransportEvent::DialFailed { .. })
        })
        .await;
    assert_eq!(a.t.stats().rejected, 1);
    assert_eq!(a.t.stats().connections_inbound, 0);
    assert!(a.t.peers().is_empty());

    // A peer of another cluster entirely (trusting only its own CA) fails too.
    let mut eve = Node::bind(other.config("127.0.0.5", "eve"));
    eve.t
        .send(&a.peer_addr(), Bytes::from_static(b"evil"))
        .unwrap();
    eve.expect("DialFailed", |ev| {
        matches!(ev, TransportEvent::DialFailed { .. })
    })
    .await;
    a.expect("Rejected", |ev| {
        matches!(ev, TransportEvent::Rejected { .. })
    })
    .await;
    assert_eq!(a.t.stats().rejected, 2);

    // Nothing was delivered.
    a.expect_none(Duration::from_millis(300), |ev| {
        matches!(
            ev,
            TransportEvent::Frame { .. } | TransportEvent::PeerUp { .. }
        )
    })
    .await;
    assert_eq!(a.t.stats().frames_in, 0);
}

#[tokio::test]
async fn identity_is_the_certificate_not_the_claim() {
    let ca = Ca::new("c");
    let mut a = Node::bind(ca.config("127.0.0.1", "node-a"));

    // A node cannot even start claiming another id than its certificate's.
    let x = ca.node("node-x");
    let err = Transport::bind(TransportConfig::new(
        "127.0.0.6:0".parse().unwrap(),
        "node-y",
        ca.ca.cert_pem.clone(),
        x.cert_pem.clone(),
        x.key_pem.clone(),
    ))
    .unwrap_err();
    assert!(
        matches!(err, TransportError::IdentityMismatch { .. }),
        "{err}"
    );

    // node-x says "I am node-y" inside a frame: the transport reports node-x, so the gossip layer
    // can see that the Hello does not match.
    let mut x = Node::bind(ca.config("127.0.0.6", "node-x"));
    x.t.send(&a.peer_addr(), Bytes::from_static(b"hello, I am node-y"))
        .unwrap();
    a.expect("PeerUp node-x", is_up("node-x")).await;
    a.expect("claim", is_frame("node-x", b"hello, I am node-y"))
        .await;

    // Dialling node-x's address expecting node-y fails: the server certificate must name node-y.
    a.t.send(
        &PeerAddr {
            node_id: "node-y".into(),
            addr: x.addr(),
        },
        Bytes::from_static(b"to y"),
    )
    .unwrap();
    let ev = a
        .expect(
            "DialFailed node-y",
            |ev| matches!(ev, TransportEvent::DialFailed { node_id: Some(n), .. } if n == "node-y"),
        )
        .await;
    match ev {
        TransportEvent::DialFailed { reason, .. } => {
            assert!(reason.to_lowercase().contains("certificate"), "{reason}")
        }
        _ => unreachable!(),
    }
    x.expect_none(Duration::from_millis(200), is_frame("node-a", b"to y"))
        .await;
}

#[tokio::test]
async fn seed_dial_by_address_learns_the_identity_and_skips_self() {
    let ca = Ca::new("c");
    let mut a = Node::bind(ca.config("127.0.0.1", "node-a"));
    let mut b = Node::bind(ca.config("127.0.0.7", "node-b"));

    // Seeds may include the node itself.
    a.t.connect_addr(a.addr()).unwrap();
    let ev = a
        .expect("DialFailed self", |ev| {
            matches!(ev, TransportEvent::DialFailed { .. })
        })
        .await;
    match ev {
        TransportEvent::DialFailed { node_id, addr, .. } => {
            assert_eq!(node_id, None);
            assert_eq!(addr, a.addr());
        }
        _ => unreachable!(),
    }

    a.t.connect_addr(b.addr()).unwrap();
    let ev = a.expect("PeerUp b", is_up("node-b")).await;
    match ev {
        TransportEvent::PeerUp { addr, .. } => assert_eq!(addr, b.addr()),
        _ => unreachable!(),
    }
    b.expect("PeerUp a", is_up("node-a")).await;
    // Already connected: no second connection.
    a.t.connect_addr(b.addr()).unwrap();
    a.t.send(&b.peer_addr(), Bytes::from_static(b"hi")).unwrap();
    b.expect("hi", is_frame("node-a", b"hi")).await;
    assert_eq!(a.t.stats().connections_outbound, 1);
}

#[tokio::test]
async fn garbage_datagrams_do_not_break_the_endpoint() {
    let ca = Ca::new("c");
    let mut a = Node::bind(ca.config("127.0.0.1", "node-a"));
    let sock = tokio::net::UdpSocket::bind("127.0.0.8:0").await.unwrap();
    let mut payloads: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0xff; 3],
        vec![0xc0; 1200],
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
    ];
    // Long-header packets with the QUIC v1 version and random bodies (Initial-looking).
    let mut x: u32 = 0x1234_5678;
    for len in [20usize, 1200, 1500, 65_000] {
        let mut p = vec![0xc3, 0, 0, 0, 1, 8];
        while p.len() < len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            p.push(x as u8);
        }
        payloads.push(p);
    }
    for _ in 0..5 {
        for p in &payloads {
            // Oversized datagrams may be refused locally; that is fine.
            let _ = sock.send_to(p, a.addr()).await;
        }
    }
    // A legit peer still gets through.
    let mut b = Node::bind(ca.config("127.0.0.9", "node-b"));
    b.t.send(&a.peer_addr(), Bytes::from_static(b"still there?"))
        .unwrap();
    a.expect("frame", is_frame("node-b", b"still there?")).await;
    a.t.send(&b.peer_addr(), Bytes::from_static(b"yes"))
        .unwrap();
    b.expect("answer", is_frame("node-a", b"yes")).await;
}

#[tokio::test]
async fn oversized_frame_drops_the_connection_and_is_counted() {
    let ca = Ca::new("c");
    let mut a = Node::bind(ca.config("127.0.0.1", "node-a"));
    let mut big = ca.config("127.0.0.10", "node-b");
    big.max_frame = 1024 * 1024;
    let mut b = Node::bind(big);

    b.t.send(&a.peer_addr(), Bytes::from_static(b"small"))
        .unwrap();
    a.expect("small", is_frame("node-b", b"small")).await;
    b.t.send(&a.peer_addr(), Bytes::from(vec![7u8; 100 * 1024]))
        .unwrap();
    let ev = b
        .expect("PeerDown", |ev| {
            matches!(ev, TransportEvent::PeerDown { .. })
        })
        .await;
    match ev {
        TransportEvent::PeerDown {
            node_id, reason, ..
        } => {
            assert_eq!(node_id, "node-a");
            assert!(matches!(reason, DownReason::Lost(_)), "{reason:?}");
        }
        _ => unreachable!(),
    }
    let ev = a
        .expect("PeerDown", |ev| {
            matches!(ev, TransportEvent::PeerDown { .. })
        })
        .await;
    match ev {
        TransportEvent::PeerDown { reason, .. } => assert_eq!(reason, DownReason::FrameTooLarge),
        _ => unreachable!(),
    }
    assert_eq!(a.t.stats().dropped_oversized, 1);
    assert_eq!(a.t.stats().frames_in, 1);

    // node-a keeps running: the peer reconnects and small frames flow again.
    b.t.send(&a.peer_addr(), Bytes::from_static(b"again"))
        .unwrap();
    a.expect("again", is_frame("node-b", b"again")).await;

    // Our own limit is enforced on send, too.
    let err =
        a.t.send(&b.peer_addr(), Bytes::from(vec![0u8; 64 * 1024 + 1]))
            .unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
    assert_eq!(a.t.stats().dropped_too_large, 1);
}

#[tokio::test]
async fn peer_down_after_remote_close_and_last_frame_is_flushed() {
    let ca = Ca::new("c");
    let mut a = Node::bind(ca.config("127.0.0.1", "node-a"));
    let mut b = Node::bind(ca.config("127.0.0.11", "node-b"));
    b.t.send(&a.peer_addr(), Bytes::from_static(b"hello"))
        .unwrap();
    a.expect("hello", is_frame("node-b", b"hello")).await;
    b.expect("PeerUp a", is_up("node-a")).await;

    // A last frame (a gossip Leave) queued right before shutdown still arrives.
    b.t.send(&a.peer_addr(), Bytes::from_static(b"leave"))
        .unwrap();
    b.t.close_all(Duration::from_secs(2)).await;
    a.expect("leave", is_frame("node-b", b"leave")).await;
    let ev = a
        .expect("PeerDown b", |ev| {
            matches!(ev, TransportEvent::PeerDown { .. })
        })
        .await;
    match ev {
        TransportEvent::PeerDown {
            node_id, reason, ..
        } => {
            assert_eq!(node_id, "node-b");
            assert_eq!(reason, DownReason::PeerShutdown);
        }
        _ => unreachable!(),
    }
    assert!(a.t.peers().is_empty());
    assert!(b.t.send(&a.peer_addr(), Bytes::from_static(b"x")).is_err());
}

#[tokio::test]
async fn full_peer_queue_drops_and_counts() {
    let ca = Ca::new("c");
    let mut cfg = ca.config("127.0.0.1", "node-a");
    cfg.peer_queue = 4;
    let a = Node::bind(cfg);
    // Nobody listens there: the dial hangs until the idle timeout, the queue fills.
    let nowhere = PeerAddr {
        node_id: "node-z".into(),
        addr: "127.0.0.12:9".parse().unwrap(),
    };
    let results: Vec<_> = (0..10)
        .map(|_| a.t.send(&nowhere, Bytes::from_static(b"f")))
        .collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 4);
    assert_eq!(a.t.stats().dropped_queue_full, 6);
}

#[tokio::test]
async fn disconnect_drops_a_peer_that_failed_its_hello() {
    let ca = Ca::new("c");
    let mut a = Node::bind(ca.config("127.0.0.1", "node-a"));
    let mut b = Node::bind(ca.config("127.0.0.13", "node-b"));
    b.t.send(&a.peer_addr(), Bytes::from_static(b"hello, I am node-q"))
        .unwrap();
    a.expect("claim", is_frame("node-b", b"hello, I am node-q"))
        .await;
    // The gossip layer sees the claim does not match the identity and drops the connection.
    a.t.disconnect("node-b", "hello does not match the certificate");
    let ev = a
        .expect("PeerDown", |ev| {
            matches!(ev, TransportEvent::PeerDown { .. })
        })
        .await;
    match ev {
        TransportEvent::PeerDown {
            node_id, reason, ..
        } => {
            assert_eq!(node_id, "node-b");
            assert_eq!(reason, DownReason::Disconnected);
        }
        _ => unreachable!(),
    }
    b.expect("PeerDown", |ev| {
        matches!(ev, TransportEvent::PeerDown { .. })
    })
    .await;
    assert!(a.t.peers().is_empty());
}

#[tokio::test]
async fn a_second_holder_of_a_live_nodes_certificate_is_refused_until_the_node_is_gone() {
    let ca = Ca::new("c");
    let mut a = Node::bind(ca.config("127.0.0.1", "node-a"));
    let b_cert = ca.node("node-b");
    let b_config = |ip: &str| {
        TransportConfig::new(
            format!("{ip}:0").parse().unwrap(),
            "node-b",
            ca.ca.cert_pem.clone(),
            b_cert.cert_pem.clone(),
            b_cert.key_pem.clone(),
        )
    };
    let b = Node::bind(b_config("127.0.0.14"));
    b.t.send(&a.peer_addr(), Bytes::from_static(b"hi")).unwrap();
    a.expect("hi", is_frame("node-b", b"hi")).await;
    // Past the simultaneous-dial window a new connection would be taken for a restart.
    tokio::time::sleep(SIMULTANEOUS_DIAL_WINDOW + Duration::from_millis(100)).await;

    // Another process with node-b's certificate, from another address, while node-b is alive: refused.
    let mut copy = Node::bind(b_config("127.0.0.15"));
    copy.t
        .send(&a.peer_addr(), Bytes::from_static(b"I am node-b"))
        .unwrap();
    let ev = a
        .expect("refusal", |ev| {
            matches!(ev, TransportEvent::Rejected { .. })
        })
        .await;
    match ev {
        TransportEvent::Rejected { addr, reason } => {
            assert_eq!(addr, copy.addr());
            assert_eq!(
                reason,
                RejectReason::IdentityInUse {
                    node: "node-b".into(),
                    live_addr: b.addr()
                }
            );
        }
        _ => unreachable!(),
    }
    copy.expect("dial failed", |ev| {
        matches!(
            ev,
            TransportEvent::DialFailed { .. } | TransportEvent::PeerDown { .. }
        )
    })
    .await;
    // The original keeps its connection and is still heard; the copy delivered nothing.
    b.t.send(&a.peer_addr(), Bytes::from_static(b"still here"))
        .unwrap();
    let ev = a.expect("a frame", is_any_frame).await;
    assert!(
        matches!(&ev, TransportEvent::Frame { frame, addr, .. } if frame.as_ref() == b"still here" && *addr == b.addr()),
        "{ev:?}"
    );
    assert_eq!(a.t.peers().len(), 1);
    assert_eq!(a.t.peers()[0].addr, b.addr());

    // Once node-b is gone, the same certificate from the other address is a restart and gets in.
    b.t.close_all(Duration::from_secs(2)).await;
    a.expect(
        "PeerDown b",
        |ev| matches!(ev, TransportEvent::PeerDown { node_id, .. } if node_id == "node-b"),
    )
    .await;
    copy.t
        .send(&a.peer_addr(), Bytes::from_static(b"back"))
        .unwrap();
    a.expect("back", is_frame("node-b", b"back")).await;
    assert_eq!(a.t.peers()[0].addr, copy.addr());
}

#[tokio::test]
async fn denied_nodes_are_disconnected_refused_and_not_dialled() {
    let ca = Ca::new("c");
    let mut a = Node::bind(ca.config("127.0.0.1", "node-a"));
    let mut b = Node::bind(ca.config("127.0.0.16", "node-b"));
    b.t.send(&a.peer_addr(), Bytes::from_static(b"hi")).unwrap();
    a.expect("hi", is_frame("node-b", b"hi")).await;

    a.t.set_denied(["node-b".to_string()].into());
    a.expect(
        "PeerDown b",
        |ev| matches!(ev, TransportEvent::PeerDown { node_id, .. } if node_id == "node-b"),
    )
    .await;
    b.expect("PeerDown a", |ev| {
        matches!(ev, TransportEvent::PeerDown { .. })
    })
    .await;
    assert_eq!(
        a.t.send(&b.peer_addr(), Bytes::from_static(b"x")),
        Err(SendError::Denied("node-b".into()))
    );
    b.t.send(&a.peer_addr(), Bytes::from_static(b"again"))
        .unwrap();
    let ev = a
        .expect("refusal", |ev| {
            matches!(
                ev,
                TransportEvent::Rejected { .. } | TransportEvent::Frame { .. }
            )
        })
        .await;
    assert!(
        matches!(&ev, TransportEvent::Rejected { reason: RejectReason::Denied(id), .. } if id == "node-b"),
        "{ev:?}"
    );

    // Lifted: it connects again.
    a.t.set_denied(Default::default());
    eventually("b's dial to end", || b.t.peers().is_empty()).await;
    b.t.send(&a.peer_addr(), Bytes::from_static(b"back"))
        .unwrap();
    a.expect("back", is_frame("node-b", b"back")).await;
}

#[tokio::test]
async fn a_ca_bundle_accepts_peers_of_either_ca_during_rotation() {
    let old = Ca::new("old");
    let new = Ca::new("new");
    let bundle = format!("{}{}", old.ca.cert_pem, new.ca.cert_pem);
    let with_bundle = |mut cfg: TransportConfig| {
        cfg.ca_pem = bundle.clone();
        cfg
    };
    let mut a = Node::bind(with_bundle(old.config("127.0.0.1", "node-a")));
    let mut b = Node::bind(with_bundle(new.config("127.0.0.17", "node-b")));
    let c = Node::bind(with_bundle(old.config("127.0.0.18", "node-c")));
    // New-CA certificate to an old-CA node, and old to new, both ways of dialling.
    b.t.send(&a.peer_addr(), Bytes::from_static(b"new to old"))
        .unwrap();
    a.expect("new to old", is_frame("node-b", b"new to old"))
        .await;
    c.t.send(&b.peer_addr(), Bytes::from_static(b"old to new"))
        .unwrap();
    b.expect("old to new", is_frame("node-c", b"old to new"))
        .await;
    // A node that trusts only the new CA refuses the old certificate.
    let mut d = Node::bind(new.config("127.0.0.19", "node-d"));
    c.t.send(&d.peer_addr(), Bytes::from_static(b"x")).unwrap();
    d.expect("refusal", |ev| {
        matches!(ev, TransportEvent::Rejected { .. })
    })
    .await;
}

/// A frame that waited in the queue longer than `max_queue_age` (here: while a dial could not complete,
/// as through a partition) is dropped and counted, not delivered late; frames sent once the connection
/// is up flow as usual.
#[tokio::test]
async fn frames_that_waited_out_a_dial_are_dropped_not_delivered_late() {
    let ca = Ca::new("c");
    let mut cfg = ca.config("127.0.0.1", "node-a");
    cfg.max_queue_age = Duration::from_millis(100);
    let a = Node::bind(cfg);
    // An address nobody listens on yet: the handshake's first packets are lost.
    let spot = std::net::UdpSocket::bind("127.0.0.16:0").unwrap();
    let b_addr = spot.local_addr().unwrap();
    drop(spot);
    let b_peer = PeerAddr {
        node_id: "node-b".into(),
        addr: b_addr,
    };
    a.t.send(&b_peer, Bytes::from_static(b"old")).unwrap();
    // Let the queued frame age past the limit (the point of the test, not a synchronisation).
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut b_cfg = ca.config("127.0.0.16", "node-b");
    b_cfg.listen = b_addr;
    let mut b = Node::bind(b_cfg);
    // QUIC retransmits the handshake; the connection comes up and the stale frame is not written.
    b.expect("PeerUp from node-a", is_up("node-a")).await;
    eventually("the stale frame counted", || a.t.stats().dropped_stale == 1).await;
    a.t.send(&b_peer, Bytes::from_static(b"new")).unwrap();
    let first = b.expect("a frame", is_any_frame).await;
    assert!(
        is_frame("node-a", b"new")(&first),
        "the first frame node-b received: {first:?}"
    );
    assert_eq!(a.t.stats().dropped_lost, 0);
}

/// Certificates swapped in at run time (a reload, issue 18): new handshakes in both directions present the
/// new certificate and trust the new bundle, the live connection stays up through the swap, and dropping
/// the old CA closes exactly the live connections whose peer certificate only the old CA vouched for.
#[tokio::test]
async fn swapped_certificates_serve_new_handshakes_and_keep_live_connections() {
    let old = Ca::new("old");
    let new = Ca::new("new");
    let bundle = format!("{}{}", old.ca.cert_pem, new.ca.cert_pem);
    let now = rustls_pki_types::UnixTime::now();
    let mut a = Node::bind(old.config("127.0.0.1", "node-a"));
    let b = Node::bind(old.config("127.0.0.20", "node-b"));
    b.t.send(&a.peer_addr(), Bytes::from_static(b"before"))
        .unwrap();
    a.expect("before", is_frame("node-b", b"before")).await;
    let established = a.t.stats().connections_inbound + a.t.stats().connections_outbound;

    // c trusts only the new CA: a, on its old certificate, is refused.
    let mut c = Node::bind(new.config("127.0.0.21", "node-c"));
    c.t.send(&a.peer_addr(), Bytes::from_static(b"x")).unwrap();
    c.expect("dial to the old certificate fails", |ev| {
        matches!(ev, TransportEvent::DialFailed { .. })
    })
    .await;

    // Bad sets are refused, naming the file at fault, and change nothing.
    let a_new = new.node("node-a");
    let other = new.node("node-z");
    // (name, ca, cert, key, file at fault)
    let rows = [
        (
            "garbage CA",
            "junk".to_string(),
            a_new.cert_pem.clone(),
            a_new.key_pem.clone(),
            certs::IdentityFile::Ca,
        ),
        (
            "another node's certificate",
            bundle.clone(),
            other.cert_pem.clone(),
            other.key_pem.clone(),
            certs::IdentityFile::Cert,
        ),
        (
            "a CA that does not vouch for it",
            old.ca.cert_pem.clone(),
            a_new.cert_pem.clone(),
            a_new.key_pem.clone(),
            certs::IdentityFile::Cert,
        ),
        (
            "someone else's key",
            bundle.clone(),
            a_new.cert_pem.clone(),
            other.key_pem.clone(),
            certs::IdentityFile::Key,
        ),
    ];
    for (name, ca, cert, key, file) in rows {
        let err = a.t.prepare_tls(&ca, &cert, &key, now).unwrap_err();
        assert_eq!(err.file, file, "{name}: {err}");
        assert!(!err.reason.contains("PRIVATE KEY"), "{name}: {err}");
    }

    // Step 1+2 of a rotation at once: trust both CAs, present the new certificate.
    let (set, summary) =
        a.t.prepare_tls(&bundle, &a_new.cert_pem, &a_new.key_pem, now)
            .unwrap();
    assert!(summary.subject.contains("node-a"), "{summary:?}");
    assert_eq!(summary.cas, 2);
    assert!(a.t.install_tls(set, now).is_empty(), "b is still trusted");

    // The live connection carries on: no PeerDown, no new connection.
    b.t.send(&a.peer_addr(), Bytes::from_static(b"after"))
        .unwrap();
    a.expect("after", is_frame("node-b", b"after")).await;
    // A new inbound handshake presents the new certificate: c (new CA only) gets in.
    c.t.send(&a.peer_addr(), Bytes::from_static(b"c in"))
        .unwrap();
    a.expect("c in", is_frame("node-c", b"c in")).await;
    // A new outbound handshake presents it as a client certificate: d (new CA only) accepts a.
    let mut d = Node::bind(new.config("127.0.0.22", "node-d"));
    a.t.send(&d.peer_addr(), Bytes::from_static(b"to d"))
        .unwrap();
    d.expect("to d", is_frame("node-a", b"to d")).await;
    assert_eq!(
        a.t.stats().connections_inbound + a.t.stats().connections_outbound,
        established + 2,
        "only c's and d's connections are new"
    );

    // Step 3: the old CA is dropped. b's live connection rests on an old-CA certificate: it is closed;
    // c's and d's stay.
    let (set, _) =
        a.t.prepare_tls(&new.ca.cert_pem, &a_new.cert_pem, &a_new.key_pem, now)
            .unwrap();
    assert_eq!(a.t.install_tls(set, now), ["node-b"]);
    a.expect(
        "b down",
        |ev| matches!(ev, TransportEvent::PeerDown { node_id, .. } if node_id == "node-b"),
    )
    .await;
    d.t.send(&a.peer_addr(), Bytes::from_static(b"d still"))
        .unwrap();
    a.expect("d still", is_frame("node-d", b"d still")).await;
    c.expect_none(Duration::from_millis(300), |ev| {
        matches!(ev, TransportEvent::PeerDown { .. })
    })
    .await;
}
