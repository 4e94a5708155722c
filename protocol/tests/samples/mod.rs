//! One representative sample of every message, shared by the golden-fixture test and the decoder
//! robustness test. Changing a sample means regenerating the fixtures (see `golden.rs`).

use switchyard_protocol::*;

fn updates() -> Vec<MemberUpdate> {
    vec![
        MemberUpdate {
            node: "node-a".into(),
            addr: "10.0.0.1:7946".into(),
            incarnation: 3,
            state: MemberState::Alive,
            generation: 1_700_000_000_000,
        },
        MemberUpdate {
            node: "node-b".into(),
            addr: "10.0.0.2:7946".into(),
            incarnation: 0,
            state: MemberState::Suspect,
            generation: 42,
        },
    ]
}

fn node_state() -> NodeState {
    NodeState {
        node: "node-a".into(),
        generation: 1_700_000_000_000,
        version: 17,
        observations: vec![
            Observation {
                backend: "api.openai.com:443/10.1.2.3".into(),
                reason: "consecutive_5xx".into(),
                class: ObservationClass::Provider,
                remaining_ms: 29_500,
                ejection_count: 1,
                version: 17,
                age_ms: 500,
            },
            Observation {
                backend: "mock:8000".into(),
                reason: "consecutive_local_origin_failure".into(),
                class: ObservationClass::Network,
                remaining_ms: 300_000,
                ejection_count: 10,
                version: 12,
                age_ms: 0,
            },
        ],
    }
}

fn node_state_v2() -> NodeStateV2 {
    NodeStateV2 {
        node: "node-a".into(),
        generation: 1_700_000_000_000,
        version: 18,
        config_hash: 0x0123_4567_89ab_cdef,
        hosts: vec![
            HostReport {
                host: "default/chat#0|default/openai|api.openai.com:443@10.1.2.3".into(),
                verdict: Verdict::Ejected,
                reason: "consecutive_5xx".into(),
                class: ObservationClass::Provider,
                remaining_ms: 29_500,
                ejection_count: 2,
                version: 18,
                age_us: 500_250,
            },
            HostReport {
                host: "default/chat#1|default/mock|127.0.0.1:8000".into(),
                verdict: Verdict::Returned,
                reason: "consecutive_local_origin_failure".into(),
                class: ObservationClass::Network,
                remaining_ms: 3_000,
                ejection_count: 1,
                version: 15,
                age_us: 0,
            },
        ],
    }
}

/// `(fixture name, message)` for every kind.
pub fn all() -> Vec<(&'static str, Message)> {
    vec![
        (
            "hello",
            Message::Hello(Hello {
                cluster: "prod".into(),
                node_id: "node-a".into(),
                generation: 1_700_000_000_000,
                proto_min: 1,
                proto_max: 1,
                config_hash: 0xdead_beef_cafe_f00d,
            }),
        ),
        (
            "ping",
            Message::Ping(Ping {
                seq: 7,
                updates: updates(),
            }),
        ),
        (
            "ack",
            Message::Ack(Ack {
                seq: 7,
                updates: updates(),
            }),
        ),
        (
            "ping_req",
            Message::PingReq(PingReq {
                seq: 8,
                target: "node-b".into(),
                updates: updates(),
            }),
        ),
        (
            "indirect_ack",
            Message::IndirectAck(IndirectAck {
                seq: 8,
                target: "node-b".into(),
                updates: vec![],
            }),
        ),
        ("node_state", Message::NodeState(node_state())),
        (
            "digest",
            Message::Digest(Digest {
                entries: vec![
                    DigestEntry {
                        node: "node-a".into(),
                        generation: 1_700_000_000_000,
                        version: 17,
                    },
                    DigestEntry {
                        node: "node-b".into(),
                        generation: 42,
                        version: 0,
                    },
                ],
                reply: true,
            }),
        ),
        (
            "delta",
            Message::Delta(Delta {
                states: vec![
                    node_state(),
                    NodeState {
                        node: "node-b".into(),
                        generation: 42,
                        version: 2,
                        observations: vec![],
                    },
                ],
            }),
        ),
        ("node_state_v2", Message::NodeStateV2(node_state_v2())),
        (
            "delta_v2",
            Message::DeltaV2(DeltaV2 {
                states: vec![
                    node_state_v2(),
                    NodeStateV2 {
                        node: "node-b".into(),
                        generation: 42,
                        version: 2,
                        config_hash: 7,
                        hosts: vec![],
                    },
                ],
            }),
        ),
        (
            "leave",
            Message::Leave(Leave {
                node: "node-a".into(),
                generation: 1_700_000_000_000,
                incarnation: 4,
            }),
        ),
    ]
}
