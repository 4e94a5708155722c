//! cargo-fuzz target: arbitrary bytes into the envelope decoder and the framed codec must never panic
//! (issue 4: "garbage on the gossip port never crashes a node"). Needs nightly:
//! `cd protocol && cargo +nightly fuzz run decode`. The stable stand-in is `tests/decode_robustness.rs`.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let _ = switchyard_protocol::decode(data);
    let mut codec = switchyard_protocol::Codec::new();
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = codec.decode(&mut buf) {}
});
