//! Passive health: Envoy outlier detection per backend host, its actor, and the lock-free view the request
//! path reads.

pub mod active;
pub mod actor;
pub mod events;
pub mod key;
pub mod outlier;
pub mod registry;
pub mod table;
pub mod timeline;
pub mod view;
