//! Configuration: Envoy AI Gateway YAML resources in, a resolved [`model::Config`] out.
//!
//! `resources` mirrors the YAML kinds, `load` parses and resolves them (by resource family), `duration` reads Go durations,
//! `error` reports problems with file / resource / field path, and `table` renders the result for
//! `switchyard validate`. The rest of the node only ever sees `model`.

pub mod duration;
mod error;
mod load;
pub mod model;
mod resources;
#[cfg(test)]
mod stream_timeouts_tests;
mod table;

pub use error::ConfigError;
pub use load::load;
pub use model::*;
pub use table::{render_routing_table, routing_fingerprint, strict_check};
