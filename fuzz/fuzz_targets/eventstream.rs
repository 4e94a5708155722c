//! Fuzz target: the AWS event-stream decoder and the Bedrock stream translator must not panic on any bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    switchyard::schema::fuzz::fuzz_eventstream(data);
});
