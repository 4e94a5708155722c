//! Routing: which rule a request matches and which backend host serves each attempt.

pub mod priority;
pub mod select;
