//! `switchyard run`: wires the node together in one readable function (after linkerd2-proxy's `app`): load
//! the config, start the Route and BackendHealth actors through the gateway, bind the listeners, then wait for
//! signals — SIGHUP reloads, SIGTERM/SIGINT drain and exit 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::rpc::CallResult;
use ractor::Actor;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::admin::{self, AdminState};
use ractor::ActorRef;

use crate::cli::{OnOff, RunArgs};
use crate::cluster::gossip::{Gossip, GossipArgs, GossipMsg, GossipSettings};
use crate::cluster::identity::{IdentityFiles, IdentityReload};
use crate::cluster::transport::{Transport, TransportConfig};
use crate::cluster::{ClusterConfig, ClusterCore};
use crate::gateway::{Gateway, GatewaySettings, LoadError};
use crate::health::actor::HealthMode;
use crate::health::events::{HostEvent, LiveSet, LiveSetHandle};
use crate::health::registry::HealthSettings;
use crate::health::table::HostTableHandle;
use crate::proxy::server::{Listener, ListenerArgs, ListenerMsg};
use crate::shutdown::Shutdown;
use arc_swap::ArcSwap;
use tokio::sync::mpsc;

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The config did not load.
    #[error("cannot load config: {0}")]
    Load(#[from] LoadError),
    /// A socket could not be bound.
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// Address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// The metrics recorder could not be installed.
    #[error("cannot install the metrics recorder: {0}")]
    Metrics(String),
    /// An actor could not be started.
    #[error("cannot start the listener actor: {0}")]
    Actor(String),
    /// The admin listener's settings are unusable.
    #[error("admin: {0}")]
    Admin(String),
    /// The cluster could not be joined or configured.
    #[error("cluster: {0}")]
    Cluster(String),
}

/// What the Gossip actor is handed from the rest of the node: the health layer's events, the gateway's
/// host table, and where to publish the live set.
struct GossipWiring {
    host_events: mpsc::UnboundedReceiver<HostEvent>,
    hosts: HostTableHandle,
    live: LiveSetHandle,
}

/// Starts the QUIC transport and the Gossip actor (DESIGN §6); also returns what re-reads the cluster
/// certificates on reload.
async fn start_gossip(
    args: &RunArgs,
    node_id: &str,
    wiring: GossipWiring,
) -> Result<(ActorRef<GossipMsg>, IdentityReload), RunError> {
    let (Some(ca), Some(cert), Some(key)) =
        (&args.cluster_ca, &args.cluster_cert, &args.cluster_key)
    else {
        return Err(RunError::Cluster(
            "joining a cluster needs --cluster-ca, --cluster-cert and --cluster-key (make them with `switchyard certs ca` and `switchyard certs node`)".into(),
        ));
    };
    let files = IdentityFiles {
        ca: ca.clone(),
        cert: cert.clone(),
        key: key.clone(),
    };
    let (pem, summary) = files
        .load(node_id, rustls_pki_types::UnixTime::now())
        .map_err(|e| RunError::Cluster(e.to_string()))?;
    crate::cluster::identity::announce(&summary, "cluster certificate in use");
    let listen = tokio::net::lookup_host(args.gossip.as_str())
        .await
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| RunError::Cluster(format!("invalid --gossip address {:?}", args.gossip)))?;
    let advertise = args.gossip_advertise.clone().unwrap_or_else(|| {
        if listen.ip().is_unspecified() {
            format!("{node_id}:{}", listen.port())
        } else {
            listen.to_string()
        }
    });
    // Generations only need to grow across restarts of one node; they are compared, never used as time.
    let generation = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut cfg = ClusterConfig::new(node_id, advertise.clone(), generation);
    cfg.seeds = args.seeds.clone();
    cfg.network_quorum = args.network_quorum.max(1);
    let cluster = args.cluster.clone().unwrap_or_else(|| "switchyard".into());
    let core = ClusterCore::new(cfg, Instant::now());
    let (transport, events) = Transport::bind(TransportConfig::new(
        listen,
        node_id,
        pem.ca.clone(),
        pem.cert.clone(),
        pem.key.clone(),
    ))
    .map_err(|e| RunError::Cluster(e.to_string()))?;
    let identity = IdentityReload::new(files, transport.clone(), pem);
    // The deny list is in force before the first peer can connect.
    let denied = deny_source(args)
        .read()
        .map_err(|e| RunError::Cluster(e.to_string()))?;
    transport.set_denied(denied.iter().cloned().collect());
    let mut core = core;
    core.set_denied(denied, Instant::now());
    // Our Hello goes first on every connection, before any handshake can complete (no await since the
    // bind); the Gossip actor refreshes it whenever a reload changes the config's hash.
    let hello =
        crate::cluster::gossip::hello_frame(&core, &cluster, wiring.hosts.load().config_hash)
            .map_err(|e| RunError::Cluster(format!("cannot encode Hello: {e}")))?;
    transport.set_greeting(hello);
    let (gossip, _join) = Actor::spawn(
        None,
        Gossip,
        GossipArgs {
            core,
            transport,
            events,
            settings: GossipSettings {
                cluster: cluster.clone(),
                share_ejections: args.share_ejections == OnOff::On,
            },
            host_events: wiring.host_events,
            hosts: wiring.hosts,
            live: wiring.live,
        },
    )
    .await
    .map_err(|e| RunError::Actor(e.to_string()))?;
    tracing::info!(cluster = %cluster, gossip = %listen, advertise = %advertise, seeds = ?args.seeds,
        share_ejections = args.share_ejections == OnOff::On, "gossip started");
    Ok((gossip, identity))
}

fn deny_source(args: &RunArgs) -> crate::cluster::deny::DenySource {
    crate::cluster::deny::DenySource {
        ids: args.deny_nodes.clone(),
        file: args.deny_nodes_file.clone(),
    }
}

/// How often pending histogram samples are folded into the Prometheus histograms.
const METRICS_UPKEEP: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs a node until SIGTERM/SIGINT, then drains and returns.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let started = Instant::now();
    let metrics = crate::telemetry::install().map_err(|e| RunError::Metrics(e.to_string()))?;
    // The recorder keeps every histogram sample until it is folded into the buckets; a scrape does that,
    // and without scrapes memory grows with every request (~50 bytes each, measured in the benchmarks);
    // every second keeps what waits small at any rate.
    // `install_recorder` leaves that upkeep to us.
    {
        let handle = metrics.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(METRICS_UPKEEP);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        });
    }
    let node_id = args.node_id.clone().unwrap_or_else(hostname);
    // Events flow down: the health layer writes its hosts' record changes into a channel this function
    // owns, and the Gossip actor (started after the gateway, from the host table it publishes) reads it.
    let clustered = args.cluster_requested();
    let (host_events, host_events_rx) = mpsc::unbounded_channel();
    let live: LiveSetHandle = Arc::new(ArcSwap::from_pointee(LiveSet {
        me: node_id.clone(),
        live: [node_id.clone()].into(),
    }));
    let mode = if args.share_ejections == OnOff::On {
        HealthMode::Timeline
    } else {
        HealthMode::Envoy
    };
    let gateway = Gateway::start(
        &args.config,
        GatewaySettings {
            max_body_bytes: args.max_body_bytes,
            upstream_bind: args.upstream_bind,
            health: HealthSettings {
                mode: Some(mode),
                events: clustered.then_some(host_events),
                live: clustered.then(|| live.clone()),
            },
        },
    )
    .await?;
    let (gossip, identity) = if clustered {
        let wiring = GossipWiring {
            host_events: host_events_rx,
            hosts: gateway.host_table(),
            live,
        };
        let (gossip, identity) = start_gossip(&args, &node_id, wiring).await?;
        (Some(gossip), Some(identity))
    } else {
        (None, None)
    };

    let listen = args.listen.unwrap_or_else(|| {
        let port = gateway.config().gateway_port.unwrap_or(8080);
        SocketAddr::from(([0, 0, 0, 0], port))
    });
    let client = TcpListener::bind(listen)
        .await
        .map_err(|source| RunError::Bind {
            what: "the client listener",
            addr: listen,
            source,
        })?;
    let admin_listener = TcpListener::bind(args.admin)
        .await
        .map_err(|source| RunError::Bind {
            what: "the admin listener",
            addr: args.admin,
            source,
        })?;
    let listen_addr = client.local_addr().unwrap_or(listen);
    let admin_addr = admin_listener.local_addr().unwrap_or(args.admin);
    let token = crate::admin_access::read_token(
        args.admin_token.as_ref().map(|t| t.expose()),
        args.admin_token_file.as_deref(),
    )
    .map_err(|e| RunError::Admin(e.to_string()))?;
    let access = crate::admin_access::AdminAccess::new(admin_addr, token, &args.admin_hosts);
    if access.posts_need_token() {
        tracing::warn!(admin = %admin_addr, "the admin listener is not on loopback and has no --admin-token: POST /reload is refused (SIGHUP still reloads)");
    }
    let reloader = Arc::new(
        crate::reload::Reloader::new(
            gateway.clone(),
            args.allow_empty_config,
            gossip.clone().map(|g| (deny_source(&args), g)),
        )
        .with_identity(identity),
    );
    if gateway.snapshot().routes.is_empty() {
        tracing::warn!(config = %args.config.display(), "the config has no route: /readyz answers 503 until a config with routes is loaded");
    }

    let shutdown = Shutdown::new();
    let (listener, _join) = Actor::spawn(
        None,
        Listener,
        ListenerArgs {
            listener: client,
            gateway: gateway.clone(),
            shutdown: shutdown.clone(),
            drain_timeout: args.drain_timeout,
            limits: client_limits(&args),
        },
    )
    .await
    .map_err(|e| RunError::Actor(e.to_string()))?;
    tokio::spawn(admin::serve(
        admin_listener,
        Arc::new(AdminState {
            gateway: gateway.clone(),
            shutdown: shutdown.clone(),
            metrics,
            node_id: node_id.clone(),
            started,
            listen: listen_addr.to_string(),
            gossip: gossip.clone(),
            access,
            reloader: reloader.clone(),
        }),
    ));
    let refresher = gateway.clone();
    let every = args.dns_refresh.max(Duration::from_millis(100));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            if let Err(e) = refresher.refresh_dns().await {
                tracing::error!(error = %e, "rebuilding hosts after a DNS change failed; keeping the running ones");
            }
        }
    });
    tracing::info!(node = %node_id, listen = %listen_addr, admin = %admin_addr, "switchyard ready");
    println!("switchyard ready listen={listen_addr} admin={admin_addr}");

    let mut term = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(RunError::Signals)?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            // Counted and logged by the reloader.
            _ = hup.recv() => { let _ = reloader.reload().await; }
        }
    }

    tracing::info!(delay = ?args.drain_delay, "shutting down: readiness off, draining");
    shutdown.begin_drain();
    tokio::time::sleep(args.drain_delay).await;
    shutdown.stop_accepting();
    let wait = args.drain_timeout + Duration::from_secs(1);
    let clean = matches!(
        listener.call(ListenerMsg::Drained, Some(wait)).await,
        Ok(CallResult::Success(true))
    );
    if !clean {
        tracing::warn!("drain timeout reached with requests still in flight");
    }
    if let Some(g) = &gossip {
        // DESIGN §7: Leave goes out after the drain, so peers stop counting on this node only when it is
        // really gone.
        let _ = g.call(GossipMsg::Leave, Some(Duration::from_secs(3))).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The client listener's limits from the flags; the connection cap defaults to a share of the descriptor
/// limit, which is raised to its hard maximum first.
fn client_limits(args: &RunArgs) -> crate::proxy::limits::ClientLimits {
    use crate::proxy::limits::{default_max_connections, raise_nofile_limit};
    let nofile = raise_nofile_limit();
    let max_connections = match (args.max_client_connections, nofile) {
        (Some(n), _) => n as usize,
        (None, Some(nofile)) => default_max_connections(nofile),
        (None, None) => crate::proxy::limits::ClientLimits::default().max_connections,
    };
    tracing::info!(max_connections, descriptors = ?nofile, header_timeout = ?args.client_header_timeout,
        body_timeout = ?args.client_body_timeout, keepalive_timeout = ?args.client_keepalive_timeout,
        request_timeout = ?args.client_request_timeout, send_timeout = ?args.client_send_timeout,
        "client listener limits");
    crate::proxy::limits::ClientLimits {
        header_timeout: args.client_header_timeout,
        body_timeout: args.client_body_timeout,
        keepalive_timeout: args.client_keepalive_timeout,
        request_timeout: args.client_request_timeout,
        send_timeout: args.client_send_timeout,
        max_connections,
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "switchyard".into())
}
