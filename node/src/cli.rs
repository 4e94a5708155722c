//! Command-line interface: `switchyard run | validate | status | demo | certs`. Flags have `SWITCHYARD_*` environment
//! equivalents (DESIGN §2). Parsing lives in the library so tests and the binary share it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::admin_access::Secret;

/// Switchyard: a clustered AI/LLM gateway.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
// Parsed once at startup and never moved around: boxing `RunArgs` would only complicate clap's derive.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run a gateway node.
    #[command(
        after_help = "Environment: SWITCHYARD_LOG=FILTER sets the log verbosity (tracing filter \
                           syntax, e.g. `info` or `info,switchyard=debug`; default `info`)."
    )]
    Run(RunArgs),
    /// Load and validate a config, print the effective routing table; exit 1 on error.
    Validate {
        /// Config file or directory.
        #[arg(long, env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
        /// Exit non-zero when the config loads with warnings (fields accepted but not acted on, skipped
        /// kinds, unused resources), for CI.
        #[arg(long, env = "SWITCHYARD_VALIDATE_STRICT")]
        strict: bool,
    },
    /// Show a running node's status (routes, backends, health).
    Status {
        /// Admin URL of the node.
        #[arg(
            long,
            env = "SWITCHYARD_ADMIN_URL",
            default_value = "http://127.0.0.1:9901"
        )]
        admin: String,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
        /// Bearer token of the node's admin listener (as its `--admin-token`).
        #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN", hide_env_values = true, value_parser = parse_secret)]
        admin_token: Option<Secret>,
        /// File holding the bearer token (wins over `--admin-token`).
        #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN_FILE")]
        admin_token_file: Option<PathBuf>,
    },
    /// Run the whole cluster on this machine: mock providers (one failing), a 3-node cluster with fresh
    /// certificates on 127.0.0.1-3, traffic, and the status table as the cluster fails over. Needs the
    /// `mock-provider` binary next to this one (`cargo build --release --workspace`).
    Demo {
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        exit_after: Option<u64>,
    },
    /// Create the cluster CA and node certificates (development and tests).
    Certs {
        /// Which certificate to create.
        #[command(subcommand)]
        command: CertsCommand,
    },
}

/// `switchyard certs` subcommands.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create a cluster CA: `DIR/ca.crt` and `DIR/ca.key` (mode 0600).
    Ca {
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Cluster name, written into the CA subject.
        #[arg(long, default_value = crate::cluster::certs::DEFAULT_CLUSTER)]
        cluster: String,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
        /// Days the CA is valid (from an hour ago).
        #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        validity_days: u32,
    },
    /// Create a node certificate signed by the CA: `OUT/ID.crt` and `OUT/ID.key` (mode 0600).
    Node {
        /// Directory holding `ca.crt` and `ca.key`.
        #[arg(long)]
        ca_dir: PathBuf,
        /// Node id (a DNS name): the certificate's identity, as `--node-id` of `switchyard run`.
        #[arg(long)]
        node_id: String,
        /// Output directory [default: the CA directory].
        #[arg(long)]
        out: Option<PathBuf>,
        /// IP addresses to add as subject alternative names (repeatable or comma-separated).
        #[arg(long = "ip", value_delimiter = ',')]
        ips: Vec<std::net::IpAddr>,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
        /// Days the certificate is valid (from an hour ago; never past the CA's expiry).
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        validity_days: u32,
    },
}

/// A switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `switchyard run` flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Config file or directory (Envoy AI Gateway YAML).
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    pub config: PathBuf,
    /// Client listener address [default: 0.0.0.0:8080, or the Gateway resource's listener port].
    #[arg(long, env = "SWITCHYARD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Admin listener address.
    #[arg(long, env = "SWITCHYARD_ADMIN", default_value = "127.0.0.1:9901")]
    pub admin: SocketAddr,
    /// Gossip address (UDP) for the cluster.
    #[arg(long, env = "SWITCHYARD_GOSSIP", default_value = "0.0.0.0:7946")]
    pub gossip: String,
    /// Node id [default: the hostname].
    #[arg(long, env = "SWITCHYARD_NODE_ID")]
    pub node_id: Option<String>,
    /// Cluster name; peers of another cluster are refused.
    #[arg(long, env = "SWITCHYARD_CLUSTER")]
    pub cluster: Option<String>,
    /// Seed peers, comma-separated `host:port`.
    #[arg(long, env = "SWITCHYARD_SEEDS", value_delimiter = ',')]
    pub seeds: Vec<String>,
    /// Cluster CA certificate (PEM).
    #[arg(long, env = "SWITCHYARD_CLUSTER_CA")]
    pub cluster_ca: Option<PathBuf>,
    /// This node's cluster certificate (PEM).
    #[arg(long, env = "SWITCHYARD_CLUSTER_CERT")]
    pub cluster_cert: Option<PathBuf>,
    /// This node's cluster key (PEM).
    #[arg(long, env = "SWITCHYARD_CLUSTER_KEY")]
    pub cluster_key: Option<PathBuf>,
    /// Gossip address peers should dial [default: the --gossip address, or NODE_ID:PORT when it is a
    /// wildcard address].
    #[arg(long, env = "SWITCHYARD_GOSSIP_ADVERTISE")]
    pub gossip_advertise: Option<String>,
    /// Network-class ejections (connect/TLS/reset/timeout) need this many distinct live observers before
    /// the cluster adopts them (all live nodes if fewer).
    #[arg(long, env = "SWITCHYARD_NETWORK_QUORUM", default_value_t = 2)]
    pub network_quorum: usize,
    /// Apply other nodes' ejections (`off`: each node relies on its own passive health, as Envoy does).
    #[arg(
        long,
        env = "SWITCHYARD_SHARE_EJECTIONS",
        value_enum,
        default_value = "on"
    )]
    pub share_ejections: OnOff,
    /// Source address for connections to upstream providers.
    #[arg(long, env = "SWITCHYARD_UPSTREAM_BIND")]
    pub upstream_bind: Option<std::net::IpAddr>,
    /// Request body limit in bytes (413 beyond it).
    #[arg(long, env = "SWITCHYARD_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// How long the listener keeps serving after readiness drops on shutdown.
    #[arg(long, env = "SWITCHYARD_DRAIN_DELAY", default_value = "5s", value_parser = parse_duration)]
    pub drain_delay: Duration,
    /// How long in-flight requests and streams get once accepting stops.
    #[arg(long, env = "SWITCHYARD_DRAIN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Threads serving requests (the runtime's worker threads) [default: one per CPU]. A request and its
    /// upstream connection are driven by one task, so more threads serve more requests at once without
    /// handing one request between them. With 1, the whole node runs on one thread (tokio's
    /// single-threaded scheduler), the cheapest per request where one core is enough.
    #[arg(long, env = "SWITCHYARD_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,
    /// How often fqdn endpoints are re-resolved (each address is its own host with its own health).
    #[arg(long, env = "SWITCHYARD_DNS_REFRESH", default_value = "30s", value_parser = parse_duration)]
    pub dns_refresh: Duration,
    /// Client listener: a request head must be complete this long after its first byte, and a new
    /// connection must send one this long after it is accepted (nginx `client_header_timeout`).
    #[arg(long, env = "SWITCHYARD_CLIENT_HEADER_TIMEOUT", default_value = "60s", value_parser = parse_positive_duration)]
    pub client_header_timeout: Duration,
    /// Client listener: the longest pause inside a request body; 408 beyond it (nginx
    /// `client_body_timeout`).
    #[arg(long, env = "SWITCHYARD_CLIENT_BODY_TIMEOUT", default_value = "60s", value_parser = parse_positive_duration)]
    pub client_body_timeout: Duration,
    /// Client listener: how long a connection may sit idle after an answer (nginx `keepalive_timeout`).
    #[arg(long, env = "SWITCHYARD_CLIENT_KEEPALIVE_TIMEOUT", default_value = "75s", value_parser = parse_positive_duration)]
    pub client_keepalive_timeout: Duration,
    /// Client listener: bound on receiving a whole request body, from its head on; 408 beyond it (Envoy
    /// `request_timeout`) [default: none].
    #[arg(long, env = "SWITCHYARD_CLIENT_REQUEST_TIMEOUT", value_parser = parse_positive_duration)]
    pub client_request_timeout: Option<Duration>,
    /// Client listener: how long an answer may wait for the client to take its next piece; the connection
    /// is closed beyond it (nginx `send_timeout`).
    #[arg(long, env = "SWITCHYARD_CLIENT_SEND_TIMEOUT", default_value = "60s", value_parser = parse_positive_duration)]
    pub client_send_timeout: Duration,
    /// Client connections held at once; beyond it a client is answered 503 and closed [default: half the
    /// descriptors left after 64, of the soft limit raised to the hard one].
    #[arg(long, env = "SWITCHYARD_MAX_CLIENT_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_client_connections: Option<u32>,
    /// Log format.
    #[arg(
        long,
        env = "SWITCHYARD_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Accept a reload whose config has no route (by default it is refused: it would answer every
    /// request with 404).
    #[arg(long, env = "SWITCHYARD_ALLOW_EMPTY_CONFIG")]
    pub allow_empty_config: bool,
    /// Bearer token for the admin listener: every endpoint but `/healthz` and `/readyz` then needs
    /// `Authorization: Bearer TOKEN`. Without one, `POST /reload` is refused unless `--admin` is on loopback.
    #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    pub admin_token: Option<Secret>,
    /// File holding the admin token (wins over `--admin-token`; keeps it out of the process list).
    #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Extra `Host` names the admin listener answers to (besides its IP literals and `localhost`),
    /// comma-separated.
    #[arg(long, env = "SWITCHYARD_ADMIN_HOSTS", value_delimiter = ',')]
    pub admin_hosts: Vec<String>,
    /// Node ids refused by the cluster transport (their state is dropped), comma-separated.
    #[arg(long, env = "SWITCHYARD_DENY_NODES", value_delimiter = ',')]
    pub deny_nodes: Vec<String>,
    /// File of node ids to refuse (one per line, `#` comments), re-read on SIGHUP and `POST /reload`.
    #[arg(long, env = "SWITCHYARD_DENY_NODES_FILE")]
    pub deny_nodes_file: Option<PathBuf>,
}

impl RunArgs {
    /// Whether any cluster flag was given.
    pub fn cluster_requested(&self) -> bool {
        !self.seeds.is_empty()
            || self.cluster.is_some()
            || self.cluster_ca.is_some()
            || self.cluster_cert.is_some()
            || self.cluster_key.is_some()
    }
}

/// Parses a duration flag in the same Go syntax the YAML uses (`500ms`, `5s`, `1m30s`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::config::duration::parse_duration(s).map_err(|e| e.to_string())
}

/// A duration flag that must not be zero (a zero timeout would close every connection at once).
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be greater than zero".into()),
        d => Ok(d),
    }
}

/// Wraps a secret flag so that `Debug` output of the parsed flags never shows it.
fn parse_secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}
