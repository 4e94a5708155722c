//! Host selection runs for every attempt of every request, so it must not allocate for ordinary routes
//! (up to eight hosts, four priority levels, four attempts). This test binary counts the allocations of
//! its own thread with a wrapping global allocator, which a unit test inside the library cannot install.
#![allow(
    unsafe_code,
    reason = "a global allocator is an unsafe trait; this one only forwards to System and counts"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use switchyard::routing::select::{select, AttemptHistory, Candidate, Candidates};

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

fn c(locality: u16, priority: u32, weight: u32, healthy: bool) -> Candidate {
    Candidate {
        priority,
        weight,
        healthy,
        locality,
    }
}

#[test]
fn selecting_hosts_for_a_whole_retried_request_allocates_nothing() {
    let mut rng = SmallRng::seed_from_u64(7);
    // Three levels, one of them half ejected, one in panic; the seed route's retry settings.
    // backendRef 0 has two addresses (one ejected), so a locality weight is scaled by its health; retries
    // re-pick while they land on a tried host.
    let cands: Candidates = [
        c(0, 0, 1, true),
        c(0, 0, 1, false),
        c(1, 0, 1, true),
        c(2, 1, 2, false),
        c(3, 1, 1, false),
        c(4, 2, 1, true),
        c(5, 2, 0, true),
    ]
    .into_iter()
    .collect();
    let mut chosen = Vec::with_capacity(4);
    let before = allocations();
    let mut history = AttemptHistory::default();
    for _ in 0..4 {
        let s = select(&cands, 50, Some(1), &history, &mut rng).expect("a host");
        history.record(s.host, s.priority);
        chosen.push(s.host);
    }
    let after = allocations();
    assert_eq!(after - before, 0, "selection allocated; chose {chosen:?}");
    // The attempts really went through selection: four hosts chosen, weight-0 never among them.
    assert_eq!(chosen.len(), 4);
    assert!(!chosen.contains(&6), "{chosen:?}");
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the test above against a counter that counts nothing.
    let before = allocations();
    let v: Vec<u64> = std::hint::black_box((0..32).collect());
    assert!(allocations() > before);
    drop(v);
}
