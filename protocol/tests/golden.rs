//! Golden byte fixtures: pin the wire layout of every message (DESIGN §9 "golden wire fixtures").
//!
//! Each sample in `samples/mod.rs` is encoded and compared byte for byte with `tests/golden/<name>.bin`,
//! and the fixture is decoded back to the sample. A failure here means the wire format changed: if that
//! is intended, bump the protocol version and regenerate with
//! `SWITCHYARD_REGEN_GOLDEN=1 cargo test -p switchyard-protocol --test golden`.

mod samples;

use std::path::PathBuf;

use switchyard_protocol::{decode, encode, Decoded, Kind};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.bin"))
}

#[test]
fn every_message_matches_its_golden_fixture() {
    let regen = std::env::var_os("SWITCHYARD_REGEN_GOLDEN").is_some();
    for (name, msg) in samples::all() {
        let bytes = encode(&msg).expect("samples encode");
        let path = fixture(name);
        if regen {
            std::fs::write(&path, &bytes).expect("write fixture");
            continue;
        }
        let golden = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; regenerate with SWITCHYARD_REGEN_GOLDEN=1",
                path.display()
            )
        });
        assert_eq!(
            bytes,
            golden,
            "{name}: encoding differs from {}",
            path.display()
        );
        assert_eq!(
            decode(&golden).expect("fixture decodes"),
            Decoded::Message(msg),
            "{name}: fixture decodes to another message"
        );
    }
}

#[test]
fn every_kind_has_a_sample() {
    let kinds: Vec<u16> = samples::all()
        .iter()
        .map(|(_, m)| Kind::of(m) as u16)
        .collect();
    for n in 1..=11u16 {
        assert!(Kind::from_u16(n).is_some());
        assert!(kinds.contains(&n), "kind {n} has no golden sample");
    }
    assert!(
        Kind::from_u16(12).is_none(),
        "new kind: add a sample and fixture"
    );
}

#[test]
fn envelope_layout_is_kind_version_payload() {
    // Hand-checked: the first bytes of any fixture are varint kind, varint version, varint payload length.
    let golden = std::fs::read(fixture("leave")).expect("fixture");
    assert_eq!(golden[0], Kind::Leave as u8);
    assert_eq!(golden[1], 1);
    assert_eq!(usize::from(golden[2]), golden.len() - 3);
}
