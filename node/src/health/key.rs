//! The identity of one backend host as health, gossip, `/status` and the metrics name it.
//!
//! Envoy scopes outlier detection per cluster, and Envoy Gateway makes every route rule its own cluster, so
//! one host's identity is (route, rule, backend, resolved address) (DESIGN §5 "Scope"): the same Backend
//! named by two rules has two independent health states, and one model's outage at a provider does not
//! eject that provider for the other models. The key is spelled once, here, as
//! `namespace/route#rule|namespace/backend|address`, readable in logs and stable across reloads as long as
//! the rule keeps its place.

use std::fmt;
use std::sync::Arc;

/// One backend host of one route rule. Cheap to clone (shared string).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostKey(Arc<str>);

impl HostKey {
    /// The host `address` (an endpoint's `host:port`, with `@ip` when it is one of several resolved
    /// addresses) of `backend` (`namespace/name`) in rule `rule` (its index) of route `route`
    /// (`namespace/name`).
    pub fn new(route: &str, rule: usize, backend: &str, address: &str) -> Self {
        HostKey(Arc::from(format!("{route}#{rule}|{backend}|{address}")))
    }

    /// The key as text (the `backend` metric label, gossip's host key).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as a shared string, for metric labels that must not allocate per request.
    pub fn shared(&self) -> Arc<str> {
        self.0.clone()
    }

    /// `namespace/route#rule`: the route rule the host belongs to.
    pub fn rule(&self) -> &str {
        self.0.split('|').next().unwrap_or_default()
    }
}

impl fmt::Display for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for HostKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_route_rule_backend_and_address() {
        let k = HostKey::new(
            "default/chat",
            1,
            "default/openai",
            "api.openai.com:443@1.2.3.4",
        );
        assert_eq!(
            k.as_str(),
            "default/chat#1|default/openai|api.openai.com:443@1.2.3.4"
        );
        assert_eq!(k.rule(), "default/chat#1");
        assert_ne!(
            k,
            HostKey::new(
                "default/chat",
                0,
                "default/openai",
                "api.openai.com:443@1.2.3.4"
            ),
            "the same backend in another rule is another host"
        );
    }
}
