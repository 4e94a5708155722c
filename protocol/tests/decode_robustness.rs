//! The decoder never panics and never allocates without bound, whatever the bytes (DESIGN §6: "unknown
//! kinds are skipped and counted, never a crash"; issue 4: "garbage on the gossip port never crashes a
//! node"). This is the stable-toolchain stand-in for the cargo-fuzz target in `protocol/fuzz/`: seeded
//! random buffers, mutated golden fixtures and hostile length claims, through both `decode` and `Codec`.

mod samples;

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchyard_protocol::{decode, encode, Codec, Decoded, MAX_FRAME};
use tokio_util::codec::Decoder;

/// Feeds bytes to both entry points; a panic fails the test, errors are fine.
fn feed(bytes: &[u8]) {
    let _ = decode(bytes);
    let mut codec = Codec::new();
    let mut framed = BytesMut::new();
    framed.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    framed.extend_from_slice(bytes);
    // Raw bytes as a stream too (the length prefix is then attacker-chosen).
    let mut raw = BytesMut::from(bytes);
    for buf in [&mut framed, &mut raw] {
        for _ in 0..4 {
            match codec.decode(buf) {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break,
            }
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0001);
    for _ in 0..20_000 {
        let len = rng.random_range(0..256);
        let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        feed(&bytes);
    }
}

#[test]
fn mutated_fixtures_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0002);
    let originals: Vec<Vec<u8>> = samples::all()
        .iter()
        .map(|(_, m)| encode(m).expect("encode"))
        .collect();
    for _ in 0..20_000 {
        let mut bytes = originals[rng.random_range(0..originals.len())].clone();
        for _ in 0..rng.random_range(1..6) {
            match rng.random_range(0..4) {
                0 if !bytes.is_empty() => {
                    let i = rng.random_range(0..bytes.len());
                    bytes[i] = rng.random();
                }
                1 if !bytes.is_empty() => {
                    let i = rng.random_range(0..bytes.len());
                    bytes.truncate(i);
                }
                2 => {
                    let i = rng.random_range(0..=bytes.len());
                    // 0xfd/0xfe/0xff announce 8/16-byte varints: the hostile length claims.
                    let b = [0xfb, 0xfc, 0xfd, 0xfe, 0xff, 0][rng.random_range(0..6)];
                    bytes.insert(i, b);
                }
                _ => {
                    let i = rng.random_range(0..=bytes.len());
                    bytes.splice(i..i, u64::MAX.to_le_bytes());
                }
            }
        }
        feed(&bytes);
    }
}

#[test]
fn unknown_kinds_are_counted_by_the_codec() {
    let mut codec = Codec::new();
    let mut buf = BytesMut::new();
    // Envelope {kind: 200, version: 1, payload: [9, 9]}.
    let env = [200u8, 1, 2, 9, 9];
    buf.extend_from_slice(&(env.len() as u32).to_be_bytes());
    buf.extend_from_slice(&env);
    assert!(matches!(
        codec.decode(&mut buf),
        Ok(Some(Decoded::Skipped { kind: 200, .. }))
    ));
    assert_eq!(codec.skipped(), 1);
}

#[test]
fn large_length_claims_inside_a_frame_are_bounded() {
    // A Delta whose state count claims 2^32 entries, within a legal-size frame: must fail quickly rather
    // than reserve gigabytes (bincode's limit plus serde's cautious size hints bound the reservation).
    for claim in [u32::MAX as u64, u64::MAX, (MAX_FRAME as u64) * 4] {
        let mut payload = vec![0xfd];
        payload.extend_from_slice(&claim.to_le_bytes());
        let mut env = vec![8u8, 1];
        env.push(payload.len() as u8);
        env.extend_from_slice(&payload);
        assert!(decode(&env).is_err());
    }
}
