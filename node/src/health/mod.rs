//! Passive health: Envoy outlier detection per backend host.

pub mod outlier;
