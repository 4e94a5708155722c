//! Fuzz target: the SSE parser and the Anthropic stream translator must not panic on any bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    switchyard::schema::fuzz::fuzz_sse(data);
});
