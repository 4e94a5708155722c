//! Retry policy: which attempt outcomes are retried and how long to back off (Envoy semantics).

pub mod attempts;
pub mod policy;
