//! Test harness for Switchyard's multi-process tests (DESIGN.md §9).
//!
//! The rules it encodes: real processes and real sockets; every wait is [`poll_until`] with a deadline,
//! never a bare sleep; every process started is owned by a [`Process`] that kills it by PID when dropped
//! (and prints its captured output if the test is panicking).
//!
//! - [`bin_path`]: where the workspace binaries are (building `switchyard` on demand);
//! - [`Process`]: a child process with captured stdout/stderr;
//! - [`MockProvider`]: a running `mock-provider` plus a client for its control API ([`definition_args`]:
//!   the providers' published definitions it checks Gemini and Cohere requests against);
//! - [`SwitchyardNode`]: a running gateway node on kernel-chosen ports ([`fallback_per_model_config`]: the
//!   agent tests' route of one fallback provider per client model);
//! - [`TestCluster`]: n nodes on 127.0.0.x joined over QUIC with fresh certificates;
//! - [`Haproxy`], [`LoadClient`]: a real HAProxy in front of nodes, and steady client load through it;
//! - [`http_get`], [`http_post_json`], [`http_post_json_stream`], [`http2_post_json`], [`https_post_json`]:
//!   a tiny HTTP client;
//! - [`TlsFiles`]: self-signed or test-CA-signed certificates as PEM files, and a client config trusting them.

mod bins;
mod cluster;
mod definitions;
mod fallbacks;
mod http;
mod lb;
mod node;
mod process;
mod provider;
mod python;
mod tls;

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::bail;

pub use bins::{bin_path, try_bin_path};
pub use cluster::{
    alive_members, backend_by_addr, cluster_flags, free_tcp_port, free_udp_port, make_certs,
    members_in_state, start_node, start_node_on, switchyard_certs, NodeSpec, TestCluster,
    CLUSTER_NAME, JOIN_TIMEOUT,
};
pub use definitions::{bedrock_service_model, cohere_schema, definition_args, vertex_discovery};
pub use fallbacks::{fallback_per_model_config, Fallback};
pub use http::{
    http2_post_json, http_get, http_post_json, http_post_json_stream, http_request,
    https_post_json, io_error_kind, raw_post_head, read_raw_response, Chunk, HttpResponse,
    StreamingResponse,
};
pub use lb::{
    haproxy_path, parse_stats_csv, render_haproxy_config, repo_root, Haproxy, LbServer, LoadClient,
    Outcome, ServerStat, HAPROXY,
};
pub use node::{annotate_policy, fallback_config, SwitchyardNode, SEED_POLICY};
pub use process::Process;
pub use provider::{MockOptions, MockProvider};
pub use python::{run_agent_loop, run_client_script, venv_python};
pub use tls::TlsFiles;

pub use crate::mock::log::RecordedRequest;

/// Calls `f` every `every` until it returns `Some`, or fails once `deadline` (measured from the call)
/// has passed. Each call of `f` is itself bounded by the time left. This is the only way tests wait.
pub async fn poll_until<F, Fut, T>(
    deadline: Duration,
    every: Duration,
    mut f: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let end = start + deadline;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if let Ok(Some(v)) = tokio::time::timeout(left, f()).await {
            return Ok(v);
        }
        let now = Instant::now();
        if now >= end {
            bail!("condition not met within {deadline:?}");
        }
        tokio::time::sleep(every.min(end - now)).await;
    }
}

/// Runs one multi-process test body with a time bound and turns its error into a panic with the whole
/// context chain (`{:#}`). Every test bounds its own time (DESIGN §9); processes it started are killed by
/// their `Drop` as the future is dropped.
pub async fn run_bounded<F>(limit: Duration, body: F)
where
    F: Future<Output = anyhow::Result<()>>,
{
    match tokio::time::timeout(limit, body).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e:#}"),
        Err(_) => panic!("test exceeded {limit:?}"),
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released). For tests that
/// need an address before the process that will listen on it exists; prefer port 0 where possible.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"))
}
