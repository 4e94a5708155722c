//! The cluster: nodes share backend ejections over QUIC (DESIGN §6).

pub mod certs;
pub mod transport;
