//! `switchyard status`: fetches a node's `/status` and prints it for an operator (or as JSON).

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::admin_access::Secret;

/// Why the node could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Bad URL.
    #[error("invalid admin URL {0:?}")]
    Url(String),
    /// Connection or HTTP failure.
    #[error("cannot reach the node at {url}: {reason}")]
    Unreachable {
        /// URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Not JSON.
    #[error("the node at {0} did not answer with status JSON")]
    BadAnswer(String),
}

/// Fetches `/status` from an admin URL.
pub async fn fetch(admin: &str) -> Result<Value, StatusError> {
    fetch_with_token(admin, None).await
}

/// Fetches `/status` from an admin URL, sending `token` as `Authorization: Bearer` when given (the node's
/// `--admin-token`).
pub async fn fetch_with_token(admin: &str, token: Option<&Secret>) -> Result<Value, StatusError> {
    let url = format!("{}/status", admin.trim_end_matches('/'));
    let uri: http::Uri = url
        .parse()
        .map_err(|_| StatusError::Url(admin.to_string()))?;
    let mut req = http::Request::get(uri);
    if let Some(token) = token {
        req = req.header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", token.expose()),
        );
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|_| StatusError::Url(admin.to_string()))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let unreachable = |reason: String| StatusError::Unreachable {
        url: url.clone(),
        reason,
    };
    let resp = tokio::time::timeout(Duration::from_secs(5), client.request(req))
        .await
        .map_err(|_| unreachable("timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    if !resp.status().is_success() {
        let hint = if resp.status() == http::StatusCode::UNAUTHORIZED {
            " (the node needs its admin token: --admin-token or SWITCHYARD_ADMIN_TOKEN)"
        } else {
            ""
        };
        return Err(unreachable(format!("HTTP {}{hint}", resp.status())));
    }
    let body = tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect())
        .await
        .map_err(|_| unreachable("timed out reading".into()))?
        .map_err(|e| unreachable(e.to_string()))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|_| StatusError::BadAnswer(url.clone()))
}

/// Renders the status document as a readable table.
pub fn render(v: &Value) -> String {
    let mut out = String::new();
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    let _ = writeln!(
        out,
        "node {}  version {}  uptime {}s  listen {}  ready {}",
        s(&v["node_id"]),
        s(&v["version"]),
        s(&v["uptime_secs"]),
        s(&v["listen"]),
        s(&v["ready"])
    );
    if let Some(c) = v.get("cluster").filter(|c| !c.is_null()) {
        let _ = writeln!(
            out,
            "cluster {}  share-ejections {}",
            s(&c["cluster"]),
            if c["share_ejections"].as_bool().unwrap_or(false) {
                "on"
            } else {
                "off"
            }
        );
        let _ = writeln!(out, "\nMEMBERS");
        let _ = writeln!(
            out,
            "  {:<24} {:<22} {:<8} {:>11} {:>9} {:>11}",
            "NODE", "ADDRESS", "STATE", "INCARNATION", "RTT", "LAST HEARD"
        );
        for m in c["members"].as_array().into_iter().flatten() {
            let rtt = m["rtt_ms"]
                .as_f64()
                .map_or_else(|| "-".into(), |r| format!("{r:.1}ms"));
            let heard = m["last_heard_ms_ago"].as_u64().map_or_else(
                || "-".into(),
                |ms| format!("{:.1}s ago", ms as f64 / 1000.0),
            );
            let _ = writeln!(
                out,
                "  {:<24} {:<22} {:<8} {:>11} {:>9} {:>11}",
                s(&m["node"]),
                s(&m["addr"]),
                s(&m["state"]),
                s(&m["incarnation"]),
                rtt,
                heard
            );
        }
        let k = &c["counters"];
        let _ = writeln!(
            out,
            "  gossip: {} in, {} out, {} malformed, {} skipped, {} refused at hello, {} refused by TLS, {} dropped",
            s(&k["messages_in"]),
            s(&k["messages_out"]),
            s(&k["malformed_frames"]),
            s(&k["skipped_frames"]),
            s(&k["hello_rejected"]),
            s(&k["connections_rejected"]),
            s(&k["frames_dropped"])
        );
    }
    let _ = writeln!(out, "\nROUTES (priority: share of traffic)");
    for r in v["routes"].as_array().into_iter().flatten() {
        for (i, rule) in r["rules"].as_array().into_iter().flatten().enumerate() {
            let loads: Vec<String> = rule
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| format!("P{}: {}%", s(&p[0]), s(&p[1])))
                .collect();
            let _ = writeln!(out, "  {} rule {}  {}", s(&r["route"]), i, loads.join("  "));
        }
    }
    let _ = writeln!(out, "\nBACKENDS");
    let _ = writeln!(
        out,
        "  {:<48} {:>4} {:<8} {:<28} {:>9} {:>5} {:>5} {:>5} {:>5}  CLUSTER VIEW",
        "HOST", "PRIO", "STATE", "REASON", "LEFT", "EJECT", "5XX", "GW", "LOCAL"
    );
    for b in v["backends"].as_array().into_iter().flatten() {
        // `ejected` is any hold on this node; `cluster_ejected` says another node's verdict holds it; `trial`
        // is the single trial at the end of an ejection (DESIGN §6).
        let trial = b.get("trial").filter(|t| !t.is_null());
        let state = if trial.is_some() {
            "trial"
        } else if b["cluster_ejected"].as_bool().unwrap_or(false) {
            "cluster"
        } else if b["ejected"].as_bool().unwrap_or(false) {
            "ejected"
        } else if b["cooldown_ms_left"].as_u64().is_some() {
            // The rate-limit cooldown extension: not chosen until it ends.
            "cooling"
        } else {
            "healthy"
        };
        let cluster = match b.get("cluster").filter(|c| !c.is_null()) {
            None => "-".to_string(),
            Some(c) => {
                let who: Vec<String> = c["observers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|o| format!("{}:{}({})", s(&o["node"]), s(&o["reason"]), s(&o["class"])))
                    .collect();
                let verdict = if c["applied"].as_bool().unwrap_or(false) {
                    let left = c["time_left_ms"].as_u64().unwrap_or(0) as f64 / 1000.0;
                    format!("ejected {left:.1}s")
                } else if c["adopted"].as_bool().unwrap_or(false) {
                    "adopted, not applied".to_string()
                } else if let Some(ms) = c["cooling_ms_left"].as_u64() {
                    format!("rate limited, cooling {:.1}s", ms as f64 / 1000.0)
                } else {
                    format!(
                        "not adopted (network quorum {})",
                        s(&c["network_quorum_needed"])
                    )
                };
                if who.is_empty() {
                    verdict
                } else {
                    format!("{verdict} by {}", who.join(", "))
                }
            }
        };
        let cluster = match trial {
            Some(t) => format!(
                "trial by {} for {:.1}s{}; {cluster}",
                s(&t["node"]),
                t["since_ms"].as_u64().unwrap_or(0) as f64 / 1000.0,
                if t["sent"].as_bool().unwrap_or(false) {
                    ", request sent"
                } else {
                    ""
                }
            ),
            None => cluster,
        };
        let left = b["time_left_ms"]
            .as_u64()
            .or_else(|| b["cooldown_ms_left"].as_u64())
            .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "  {:<48} {:>4} {:<8} {:<28} {:>9} {:>5} {:>5} {:>5} {:>5}  {}",
            s(&b["host"]),
            s(&b["priority"]),
            state,
            if b["ejected"].as_bool().unwrap_or(false) {
                s(&b["reason"])
            } else if state == "cooling" {
                "rate_limited".into()
            } else {
                "-".into()
            },
            left,
            s(&b["ejection_count"]),
            s(&b["consecutive_5xx"]),
            s(&b["consecutive_gateway_errors"]),
            s(&b["consecutive_local_origin_failures"]),
            cluster,
        );
    }
    render_credentials(&mut out, v);
    out
}

/// The CREDENTIALS table: each backend's credential kind and state (never the secret).
fn render_credentials(out: &mut String, v: &Value) {
    let Some(creds) = v["credentials"].as_array().filter(|c| !c.is_empty()) else {
        return;
    };
    let _ = writeln!(out, "\nCREDENTIALS");
    let _ = writeln!(
        out,
        "  {:<32} {:<36} {:<10} {:>9}  DETAIL",
        "BACKEND", "KIND", "STATE", "VALID FOR"
    );
    for c in creds {
        let text = |k: &str| c[k].as_str().unwrap_or("-").to_owned();
        let valid = c["expires_in_secs"]
            .as_u64()
            .map_or_else(|| "-".to_owned(), |s| format!("{s}s"));
        let mut detail = text("credential");
        if let Some(e) = c["error"].as_str() {
            let failures = c["failures"].as_u64().unwrap_or(0);
            let tries = if failures > 0 {
                format!(" after {failures} attempt(s)")
            } else {
                String::new()
            };
            detail = format!("{detail}; {}{tries}: {e}", text("state"));
        }
        let _ = writeln!(
            out,
            "  {:<32} {:<36} {:<10} {:>9}  {detail}",
            text("backend"),
            text("kind"),
            text("state"),
            valid
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_render_kind_state_validity_and_why() {
        let v = serde_json::json!({"credentials": [
            {"backend": "default/vertex", "credential": "BackendSecurityPolicy default/gcp",
             "kind": "GCP workload identity federation", "state": "valid", "expires_in_secs": 3541,
             "failures": 0, "error": null},
            {"backend": "default/bedrock", "credential": "BackendSecurityPolicy default/aws",
             "kind": "AWS OIDC token exchanged at STS", "state": "failed", "expires_in_secs": null,
             "failures": 3, "error": "STS AssumeRoleWithWebIdentity for arn: denied"},
            {"backend": "default/openai", "credential": "BackendSecurityPolicy default/key",
             "kind": "API key", "state": "static", "failures": 0},
        ]});
        let out = render(&v);
        let table = out
            .split("CREDENTIALS")
            .nth(1)
            .expect("a CREDENTIALS table");
        let line = |backend: &str| {
            table
                .lines()
                .find(|l| l.contains(backend))
                .unwrap_or_default()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert!(
            line("default/vertex").contains(
                "GCP workload identity federation valid 3541s BackendSecurityPolicy default/gcp"
            ),
            "{table}"
        );
        assert!(
            line("default/bedrock").ends_with(
                "failed after 3 attempt(s): STS AssumeRoleWithWebIdentity for arn: denied"
            ),
            "{table}"
        );
        assert!(
            line("default/openai").contains("API key static -"),
            "{table}"
        );
        // No credentials: no table.
        assert!(!render(&serde_json::json!({})).contains("CREDENTIALS"));
    }
}
