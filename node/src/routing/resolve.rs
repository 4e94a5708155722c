//! Resolution of `fqdn` endpoints into addresses, so that each address of a backend is its own host with its
//! own health (DESIGN §2: "an fqdn that resolves to several addresses gives several hosts"), re-resolved
//! periodically by the gateway.
//!
//! A name that does not resolve is not an error at load time (the seed page's hostnames need not resolve):
//! it stays one host dialled by name, so the failure shows up where it belongs — as a connect failure of
//! that backend, retried and ejected like any other.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use crate::config::model::{Config, Endpoint};

/// Addresses per `(hostname, port)`; an empty set means "did not resolve".
pub type Resolved = BTreeMap<(String, u16), BTreeSet<IpAddr>>;

/// Every fqdn endpoint the config references.
pub fn fqdn_endpoints(cfg: &Config) -> BTreeSet<(String, u16)> {
    cfg.backends
        .values()
        .flat_map(|b| b.endpoints.iter())
        .filter_map(|e| match e {
            Endpoint::Fqdn { hostname, port } => Some((hostname.clone(), *port)),
            Endpoint::Ip { .. } => None,
        })
        .collect()
}

/// Resolves every fqdn endpoint of `cfg` concurrently, each bounded by `timeout`.
pub async fn resolve_all(cfg: &Config, timeout: Duration) -> Resolved {
    let lookups = fqdn_endpoints(cfg)
        .into_iter()
        .map(|(host, port)| async move {
            let addrs =
                match tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), port)))
                    .await
                {
                    Ok(Ok(it)) => it.map(|a| a.ip()).collect(),
                    Ok(Err(e)) => {
                        tracing::debug!(host = %host, error = %e, "fqdn endpoint did not resolve");
                        BTreeSet::new()
                    }
                    Err(_) => {
                        tracing::debug!(host = %host, "fqdn endpoint resolution timed out");
                        BTreeSet::new()
                    }
                };
            ((host, port), addrs)
        });
    futures_util::future::join_all(lookups)
        .await
        .into_iter()
        .collect()
}

/// Where one host is dialled.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dial {
    /// A resolved (or literal) address.
    Addr(std::net::SocketAddr),
    /// A name left to the connector's resolver (it did not resolve at the last refresh).
    Name(String, u16),
}

impl Dial {
    /// `host:port` for the request URI.
    pub fn authority(&self) -> String {
        match self {
            Dial::Addr(a) => a.to_string(),
            Dial::Name(h, p) => format!("{h}:{p}"),
        }
    }
}

/// The hosts one endpoint stands for: `(key suffix, dial target)` pairs, in a stable order.
pub fn hosts_of(endpoint: &Endpoint, resolved: &Resolved) -> Vec<(String, Dial)> {
    match endpoint {
        Endpoint::Ip { address, port } => {
            vec![(endpoint.authority(), Dial::Addr((*address, *port).into()))]
        }
        Endpoint::Fqdn { hostname, port } => {
            match resolved
                .get(&(hostname.clone(), *port))
                .filter(|a| !a.is_empty())
            {
                None => vec![(endpoint.authority(), Dial::Name(hostname.clone(), *port))],
                Some(addrs) => addrs
                    .iter()
                    .map(|ip| {
                        let dial = Dial::Addr((*ip, *port).into());
                        (format!("{}@{}", endpoint.authority(), ip), dial)
                    })
                    .collect(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(entries: &[(&str, u16, &[&str])]) -> Resolved {
        entries
            .iter()
            .map(|(h, p, ips)| {
                let set = ips.iter().map(|s| s.parse().expect("test ip")).collect();
                ((h.to_string(), *p), set)
            })
            .collect()
    }

    #[test]
    fn ip_endpoint_is_one_host() {
        let e = Endpoint::Ip {
            address: "127.0.0.1".parse().expect("ip"),
            port: 9001,
        };
        let hosts = hosts_of(&e, &Resolved::new());
        assert_eq!(
            hosts,
            vec![(
                "127.0.0.1:9001".into(),
                Dial::Addr("127.0.0.1:9001".parse().expect("sa"))
            )]
        );
    }

    #[test]
    fn fqdn_with_several_addresses_gives_one_host_each() {
        let e = Endpoint::Fqdn {
            hostname: "api.example".into(),
            port: 443,
        };
        let r = resolved(&[("api.example", 443, &["10.0.0.2", "10.0.0.1"])]);
        let keys: Vec<String> = hosts_of(&e, &r).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            vec!["api.example:443@10.0.0.1", "api.example:443@10.0.0.2"]
        );
    }

    #[test]
    fn unresolved_fqdn_is_dialled_by_name() {
        let e = Endpoint::Fqdn {
            hostname: "nowhere.invalid".into(),
            port: 443,
        };
        let r = resolved(&[("nowhere.invalid", 443, &[])]);
        assert_eq!(
            hosts_of(&e, &r),
            vec![(
                "nowhere.invalid:443".into(),
                Dial::Name("nowhere.invalid".into(), 443)
            )]
        );
    }
}
