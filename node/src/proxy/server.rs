//! The Listener actor: owns the client socket and the connection tasks (HTTP/1.1 and h2c on one port), and
//! drains them on shutdown — stop accepting, then let in-flight requests and streams finish up to a deadline.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderValue, CONNECTION};
use hyper::service::service_fn;
use hyper::Version;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::gateway::Gateway;
use crate::proxy::drain::Drain;
use crate::proxy::handler::handle;
use crate::proxy::wake::Absorber;
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

async fn accept_loop(args: ListenerArgs) -> bool {
    let ListenerArgs {
        listener,
        gateway,
        shutdown,
        drain_timeout,
    } = args;
    let drain = Drain::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().writev(false);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let gw = gateway.clone();
                    let sd = shutdown.clone();
                    let svc = service_fn(move |req| {
                        let (gw, sd) = (gw.clone(), sd.clone());
                        async move {
                            let h1 = req.version() < Version::HTTP_2;
                            let mut resp = handle(gw, req).await?;
                            // Draining: an L4 load balancer pins a keep-alive connection to this node,
                            // so ask HTTP/1 clients to reconnect (to a ready node) after this response
                            // instead of closing idle connections under them when accepting stops.
                            if h1 && sd.is_draining() {
                                resp.headers_mut()
                                    .insert(CONNECTION, HeaderValue::from_static("close"));
                            }
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                    let conn = drain.watch(conn, |c| c.graceful_shutdown());
                    tokio::spawn(async move {
                        // Polled through an absorber: the hand-overs inside a connection (the handler
                        // taking the request body, say) are finished within the poll (`wake.rs`).
                        let absorber = Absorber::new();
                        let mut conn = std::pin::pin!(conn);
                        let ended = std::future::poll_fn(|cx| {
                            absorber.run(cx, |cx| conn.as_mut().poll(cx))
                        });
                        if let Err(e) = ended.await {
                            tracing::debug!(error = %e, "client connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
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
