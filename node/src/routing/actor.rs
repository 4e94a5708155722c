//! The Route actor: one per `AIGatewayRoute`. It owns the route's published snapshot and answers questions
//! about it (current priority load per rule) without the request path ever asking it anything: connection
//! tasks read the snapshot from the gateway's `ArcSwap` directly (DESIGN §1).

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;

use crate::routing::select::current_load;
use crate::routing::snapshot::RouteSnap;

/// Messages to a Route actor.
pub enum RouteMsg {
    /// A new snapshot of this route was built by a (re)load.
    Publish(Arc<RouteSnap>),
    /// Current priority load of every rule, for `/status`.
    Load(RpcReplyPort<RouteLoad>),
}

/// A route's current priority load.
#[derive(Debug, Clone, Serialize)]
pub struct RouteLoad {
    /// `namespace/name`.
    pub route: String,
    /// Per rule: `(priority, percent of traffic)`.
    pub rules: Vec<Vec<(u32, u32)>>,
}

/// The Route actor.
pub struct RouteActor;

/// Its state.
pub struct RouteState {
    key: String,
    snap: Option<Arc<RouteSnap>>,
}

impl Actor for RouteActor {
    type Msg = RouteMsg;
    type State = RouteState;
    type Arguments = String;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        key: String,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(RouteState { key, snap: None })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RouteMsg::Publish(snap) => state.snap = Some(snap),
            RouteMsg::Load(reply) => {
                let rules = state
                    .snap
                    .as_ref()
                    .map(|s| {
                        s.rules
                            .iter()
                            .map(|r| current_load(&r.candidates(), s.traffic.panic_threshold))
                            .collect()
                    })
                    .unwrap_or_default();
                let _ = reply.send(RouteLoad {
                    route: state.key.clone(),
                    rules,
                });
            }
        }
        Ok(())
    }
}
