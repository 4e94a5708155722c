//! Multi-process test support for Switchyard (DESIGN.md §9).
//!
//! - [`mock`]: the mock model provider behind the `mock-provider` binary;
//! - [`harness`]: spawning and cleaning up processes, polling with deadlines, and a tiny HTTP client,
//!   used by this crate's integration tests;
//! - [`bench`]: the `bench` binary (`just bench`): Switchyard against direct and nginx, and failover;
//! - [`sim`]: the sans-I/O cluster simulator behind the `cluster-sim` binary.

pub mod bench;
pub mod harness;
pub mod mock;
pub mod sim;
