//! Switchyard node: an OpenAI-API gateway that routes to model providers by priority, retries and fails
//! over, and ejects failing providers with Envoy-style passive health checks.
//!
//! The modules follow DESIGN.md §1: pure logic (`routing::priority`, `routing::select`, `routing::matcher`,
//! `retry::policy`, `health::outlier`, `config`) has no I/O and takes time as a parameter; the actors and
//! sockets (`routing::actor`, `health::actor`, `proxy::server`, `admin`) are thin shells around it.
//! [`run::run`] wires them together in one place.

pub mod admin;
pub mod admin_access;
pub mod child;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod credentials;
pub mod demo;
pub mod gateway;
pub mod health;
pub mod proxy;
pub mod reload;
pub mod retry;
pub mod routing;
pub mod run;
pub mod schema;
pub mod shutdown;
pub mod status;
pub mod telemetry;
