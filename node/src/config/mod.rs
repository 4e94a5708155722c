//! Configuration: Envoy AI Gateway YAML resources in, a resolved [`model::Config`] out.

pub mod model;
