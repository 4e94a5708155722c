//! The Anthropic Messages endpoint shares the attempt loop with chat, so the loop now asks, per request,
//! which client API it serves (error shape, response context) and, per attempt, whether the backend's
//! translator takes it. Plain OpenAI chat must not pay for that with allocations: this binary counts the
//! allocations of its own thread with a wrapping global allocator (which a unit test inside the library
//! cannot install) around exactly those per-request and per-attempt steps.
#![allow(
    unsafe_code,
    reason = "a global allocator is an unsafe trait; this one only forwards to System and counts"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::HeaderMap;
use switchyard::proxy::error::ErrorShape;
use switchyard::schema::{openai::OpenAi, Operation, RequestCtx, Translator};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a thread-local `Cell`
// with a const initialiser, so touching it never allocates or recurses.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn a_chat_request_through_an_openai_backend_allocates_nothing_for_the_dispatch() {
    let path = PathAndQuery::from_static("/v1/chat/completions");
    let headers = HeaderMap::new();
    let body = Bytes::from_static(br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
    let ctx = RequestCtx {
        operation: Operation::Chat,
        path_and_query: &path,
        model: "m",
        model_overridden: false,
        stream: true,
        schema_version: None,
        client_headers: &headers,
        gcp: None,
    };
    let before = allocations();
    let shape = ErrorShape::of("chat");
    let op = Operation::from_name("chat");
    let upstream = OpenAi.request(&ctx, &body).expect("passthrough");
    let after = allocations();
    assert_eq!(after - before, 0, "the chat dispatch allocated");
    assert_eq!(shape, ErrorShape::OpenAi);
    assert!(!op.is_messages());
    assert_eq!(upstream.body, body);
    // The same backend refuses Anthropic Messages in (before any upstream is contacted).
    let messages = RequestCtx {
        operation: Operation::Messages,
        ..ctx
    };
    assert!(OpenAi.request(&messages, &body).is_err());
    assert_eq!(ErrorShape::of("messages"), ErrorShape::Anthropic);
}
