//! The Listener actor: owns the client socket and the connection tasks (HTTP/1.1 and h2c on one port), and
//! drains them on shutdown — stop accepting, then let in-flight requests and streams finish up to a deadline.
//! It also enforces the client limits (`limits.rs`): each connection has a watchdog that closes it when a
//! request head, an idle spell or an answer the client does not take overstays, and beyond the connection cap a client is answered 503 instead
//! of the node running out of descriptors and failing every accept.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use hyper::header::{HeaderValue, CONNECTION};
use hyper::service::service_fn;
use hyper::Version;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::gateway::Gateway;
use crate::proxy::conn::drain::Drain;
use crate::proxy::conn::wake::Absorber;
use crate::proxy::handler::handle;
use crate::proxy::limits::{
    next_check, ActivityIo, Check, ClientLimits, ConnActivity, InFlightBody, LogBudget,
};
use crate::shutdown::Shutdown;

/// Spawn arguments.
pub struct ListenerArgs {
    /// The bound client socket.
    pub listener: TcpListener,
    /// Live gateway state.
    pub gateway: Arc<Gateway>,
    /// Shutdown signals.
    pub shutdown: Shutdown,
    /// How long in-flight connections get once accepting stops.
    pub drain_timeout: Duration,
    /// Timeouts and the connection cap.
    pub limits: ClientLimits,
}

/// Messages to the Listener actor.
pub enum ListenerMsg {
    /// Wait until the accept loop ended and connections drained (call after `Shutdown::stop_accepting`);
    /// replies `true` when every connection finished in time.
    Drained(RpcReplyPort<bool>),
}

/// The Listener actor.
pub struct Listener;

/// Its state: the accept loop task.
pub struct ListenerState {
    accept: Option<JoinHandle<bool>>,
}

impl Actor for Listener {
    type Msg = ListenerMsg;
    type State = ListenerState;
    type Arguments = ListenerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: ListenerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(ListenerState {
            accept: Some(tokio::spawn(accept_loop(args))),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ListenerMsg::Drained(reply) => {
                let clean = match state.accept.take() {
                    Some(task) => task.await.unwrap_or(false),
                    None => true,
                };
                let _ = reply.send(clean);
            }
        }
        Ok(())
    }
}

/// Connections being answered 503 at once, beyond the cap; past this they are closed unanswered, so that
/// the refusals themselves cannot use up the descriptors the cap protects.
const MAX_REFUSING: usize = 64;

/// The answer beyond the connection cap: HTTP/1.1 (what nearly every client speaks first), OpenAI error
/// JSON like every gateway-local error, and the connection closed.
static OVER_CAPACITY: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    let body = crate::proxy::error::GatewayError::of(
        crate::proxy::error::Catalogue::TooManyConnections,
        "too many client connections; retry later",
    )
    .json();
    let mut answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\nretry-after: 1\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    answer
});

/// A client connection counted against the cap until it ends.
struct ConnSlot(Arc<AtomicUsize>);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Answers 503 on a connection beyond the cap and closes it. What the client already sent is read first
/// and the rest for a short while after, so that closing does not reset the connection under the answer.
async fn refuse(mut stream: TcpStream, _slot: ConnSlot) {
    let mut sink = [0u8; 4096];
    let linger = async {
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(100), stream.read(&mut sink)).await
        {
            if n == 0 {
                break;
            }
        }
        let _ = stream.write_all(&OVER_CAPACITY).await;
        let _ = stream.shutdown().await;
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), linger).await;
}

async fn accept_loop(args: ListenerArgs) -> bool {
    let ListenerArgs {
        listener,
        gateway,
        shutdown,
        drain_timeout,
        limits,
    } = args;
    let drain = Drain::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().writev(false);
    let open = Arc::new(AtomicUsize::new(0));
    let refusing = Arc::new(AtomicUsize::new(0));
    let mut accept_errors = LogBudget::new(Duration::from_secs(5));
    let mut refusals = LogBudget::new(Duration::from_secs(5));
    let body_timeouts = limits.body();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    if open.load(Ordering::Relaxed) >= limits.max_connections {
                        metrics::counter!("switchyard_client_connections_refused_total").increment(1);
                        if let Some(left_out) = refusals.allow(tokio::time::Instant::now()) {
                            tracing::warn!(max_connections = limits.max_connections, left_out,
                                "client connection cap reached; answering 503");
                        }
                        if refusing.fetch_add(1, Ordering::Relaxed) < MAX_REFUSING {
                            tokio::spawn(refuse(stream, ConnSlot(refusing.clone())));
                        } else {
                            refusing.fetch_sub(1, Ordering::Relaxed);
                        }
                        continue;
                    }
                    open.fetch_add(1, Ordering::Relaxed);
                    let slot = ConnSlot(open.clone());
                    let _ = stream.set_nodelay(true);
                    let activity = ConnActivity::new();
                    let gw = gateway.clone();
                    let sd = shutdown.clone();
                    let act = activity.clone();
                    let svc = service_fn(move |req| {
                        let (gw, sd) = (gw.clone(), sd.clone());
                        let in_flight = act.start_request();
                        async move {
                            let h1 = req.version() < Version::HTTP_2;
                            let resp = handle(gw, req, body_timeouts).await?;
                            let (mut parts, body) = resp.into_parts();
                            // Draining: an L4 load balancer pins a keep-alive connection to this node,
                            // so ask HTTP/1 clients to reconnect (to a ready node) after this response
                            // instead of closing idle connections under them when accepting stops.
                            if h1 && sd.is_draining() {
                                parts.headers
                                    .insert(CONNECTION, HeaderValue::from_static("close"));
                            }
                            let body = InFlightBody::new(body, in_flight);
                            Ok::<_, Infallible>(hyper::Response::from_parts(parts, body))
                        }
                    });
                    let io = TokioIo::new(ActivityIo::new(stream, activity.clone()));
                    let conn = builder.serve_connection(io, svc).into_owned();
                    let conn = drain.watch(conn, |c| c.graceful_shutdown());
                    tokio::spawn(async move {
                        let _slot = slot;
                        // Polled through an absorber: the hand-overs inside a connection (the handler
                        // taking the request body, say) are finished within the poll (`wake.rs`).
                        let absorber = Absorber::new();
                        let mut conn = std::pin::pin!(conn);
                        // First look: the soonest any deadline can fall (a send timeout may be
                        // shorter than the header timeout a new connection starts with).
                        let first = match next_check(&activity.snapshot(), &limits, 0) {
                            Check::At(ms) => ms,
                            Check::Expired(_) => 0,
                        };
                        let mut watchdog =
                            std::pin::pin!(tokio::time::sleep_until(activity.instant_at(first)));
                        let ended = std::future::poll_fn(|cx| {
                            if let Poll::Ready(r) = absorber.run(cx, |cx| conn.as_mut().poll(cx)) {
                                return Poll::Ready(Ok(r));
                            }
                            while watchdog.as_mut().poll(cx).is_ready() {
                                let now = activity.now_ms();
                                match next_check(&activity.snapshot(), &limits, now) {
                                    Check::Expired(why) => return Poll::Ready(Err(why)),
                                    Check::At(ms) => watchdog.as_mut().reset(activity.instant_at(ms)),
                                }
                            }
                            Poll::Pending
                        });
                        match ended.await {
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, "client connection ended with an error");
                            }
                            Ok(Ok(())) => {}
                            Err(why) => {
                                // Dropping the connection closes the socket. Only a send timeout has a
                                // request in flight, whose client stopped taking it: its upstream
                                // attempt is dropped with it, as when a client goes away.
                                metrics::counter!("switchyard_client_timeouts_total", "timeout" => why.as_str())
                                    .increment(1);
                                tracing::debug!(timeout = why.as_str(), "closing an overstaying client connection");
                            }
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly instead of spinning, and
                    // log at a bounded rate (a flood would otherwise write ~20 lines a second).
                    if let Some(left_out) = accept_errors.allow(tokio::time::Instant::now()) {
                        tracing::warn!(error = %e, left_out, open = open.load(Ordering::Relaxed),
                            "accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.accepting_stopped() => break,
        }
    }
    drop(listener);
    tracing::info!("listener stopped accepting; draining connections");
    tokio::time::timeout(drain_timeout, drain.shutdown())
        .await
        .is_ok()
}
