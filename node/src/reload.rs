//! The one reload entry point, shared by SIGHUP and `POST /reload` (DESIGN §2 "Config reload").
//!
//! It exists so that both triggers check the same things before anything is swapped in: a config that would
//! leave the node with no route at all (an empty or comment-only file, a directory without an
//! `AIGatewayRoute`) is refused unless `--allow-empty-config` says the operator means it — otherwise one
//! truncated file turns every request into a 404 while `/readyz` keeps the node in the load balancer. The
//! check sits here, before [`Gateway::install`], so the gateway's apply step stays about building
//! snapshots. The cluster deny list (`--deny-nodes-file`) and the node's cluster certificates
//! (`--cluster-ca/-cert/-key`, [`crate::cluster::identity`]) are re-read here too, so one reload brings all
//! files in step; when any is bad, none is applied.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ractor::ActorRef;

use crate::cluster::deny::{DenyListError, DenySource};
use crate::cluster::gossip::GossipMsg;
use crate::cluster::identity::{IdentityFilesError, IdentityReload};
use crate::config::model::Config;
use crate::gateway::{Gateway, LoadError};

/// Why a reload was refused; the running config is kept.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config did not load or could not be applied.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The config has no route: applying it would answer every request with 404.
    #[error(
        "{} defines no AIGatewayRoute: reloading it would drop every route (start or run with --allow-empty-config to allow that)",
        path.display()
    )]
    NoRoutes {
        /// The config file or directory.
        path: PathBuf,
    },
    /// The deny list did not read.
    #[error(transparent)]
    DenyList(#[from] DenyListError),
    /// The cluster certificates did not read or check out; the ones in use stay.
    #[error("cluster certificates: {0}")]
    Identity(#[from] IdentityFilesError),
}

/// Refuses a config without routes unless allowed. Pure, so the rule is table-tested.
pub fn check_routes(cfg: &Config, path: &Path, allow_empty: bool) -> Result<(), ReloadError> {
    if cfg.routes.is_empty() && !allow_empty {
        return Err(ReloadError::NoRoutes {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Re-reads the node's reloadable files and swaps them in.
pub struct Reloader {
    gateway: Arc<Gateway>,
    allow_empty: bool,
    /// The deny list's source and the Gossip actor it goes to, on a clustered node.
    deny: Option<(DenySource, ActorRef<GossipMsg>)>,
    /// The node's cluster certificates, on a clustered node.
    identity: Option<IdentityReload>,
}

impl Reloader {
    /// A reloader for `gateway`; `allow_empty` is `--allow-empty-config`; `deny` is the deny list's source
    /// and the Gossip actor, when the node is in a cluster.
    pub fn new(
        gateway: Arc<Gateway>,
        allow_empty: bool,
        deny: Option<(DenySource, ActorRef<GossipMsg>)>,
    ) -> Self {
        Reloader {
            gateway,
            allow_empty,
            deny,
            identity: None,
        }
    }

    /// Also re-reads the node's cluster certificates on every reload.
    pub fn with_identity(mut self, identity: Option<IdentityReload>) -> Self {
        self.identity = identity;
        self
    }

    /// Loads and checks the config, then swaps it in. On error nothing changes; the error is counted and
    /// logged here, so both triggers report the same way.
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let result = self.try_reload().await;
        match &result {
            Ok(()) => tracing::info!("config reloaded"),
            Err(e) => {
                metrics::counter!("switchyard_config_reloads_total", "result" => "error")
                    .increment(1);
                tracing::error!(error = %e, "reload refused; keeping the running config");
            }
        }
        result
    }

    async fn try_reload(&self) -> Result<(), ReloadError> {
        let path = self.gateway.config_path();
        let cfg = crate::config::load(path).map_err(LoadError::from)?;
        check_routes(&cfg, path, self.allow_empty)?;
        // Read before anything is applied, so a bad deny list keeps the running config too.
        let denied = match &self.deny {
            Some((source, gossip)) => Some((source.read()?, gossip)),
            None => None,
        };
        let now = rustls_pki_types::UnixTime::now();
        let identity = match &self.identity {
            Some(reload) => reload.prepare(now)?.map(|p| (reload, p)),
            None => None,
        };
        self.gateway.install(cfg).await?;
        if let Some((denied, gossip)) = denied {
            if !denied.is_empty() {
                tracing::info!(nodes = ?denied, "cluster deny list in force");
            }
            // The actor lives as long as the node; if it is gone there is no cluster to deny anyone.
            let _ = gossip.cast(GossipMsg::Deny(denied));
        }
        if let Some((reload, prepared)) = identity {
            reload.install(prepared, now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn load(yaml: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, yaml).unwrap();
        crate::config::load(&path).unwrap()
    }

    const ROUTE: &str = r#"apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIGatewayRoute
metadata: {name: r, namespace: default}
spec:
  schema: {name: OpenAI}
  rules:
    - matches: [{headers: [{type: Exact, name: x-ai-eg-model, value: m}]}]
      backendRefs: [{name: b}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {name: b, namespace: default}
spec:
  endpoints: [{ip: {address: 127.0.0.1, port: 9}}]
"#;

    #[test]
    fn configs_without_routes_are_refused_unless_allowed() {
        let backend_only = ROUTE.split("---").nth(1).unwrap().to_string();
        // (name, yaml, allow_empty, refused)
        let rows = [
            ("empty file", String::new(), false, true),
            ("comment only", "# nothing here\n".to_string(), false, true),
            ("no AIGatewayRoute", backend_only, false, true),
            ("empty file, allowed", String::new(), true, false),
            ("one route", ROUTE.to_string(), false, false),
        ];
        for (name, yaml, allow, refused) in rows {
            let cfg = load(&yaml);
            let got = check_routes(&cfg, Path::new("/etc/sy.yaml"), allow);
            assert_eq!(got.is_err(), refused, "{name}");
            if let Err(e) = got {
                let msg = e.to_string();
                assert!(
                    msg.contains("/etc/sy.yaml") && msg.contains("--allow-empty-config"),
                    "{name}: {msg}"
                );
            }
        }
    }
}
