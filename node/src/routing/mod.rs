//! Routing: which rule a request matches and which backend host serves each attempt.

pub mod actor;
pub mod build;
pub mod matcher;
pub mod priority;
pub mod resolve;
pub mod select;
pub mod snapshot;
