//! The effective routing table `switchyard validate` prints.
//!
//! An operator reading Envoy AI Gateway YAML has to combine five resource kinds in their head to know
//! what happens to a request; this renders the result of that combination — every default filled in,
//! every inference said out loud — so they can check it before traffic depends on it. Secrets are never
//! printed: only the kind of credential and the policy it came from.

use std::fmt::Write as _;

use super::duration::format_duration;
use super::model::{
    AwsSource, AzureSecret, Backend, BackendAuth, BackendRef, Config, Endpoint, GcpSource,
    HeaderMatchValue, Route, SchemaSource, TrafficPolicy,
};

/// Renders the effective routing table of a loaded configuration: per route, each rule's matches and
/// backends (priority, weight, schema and its origin, endpoints, TLS, auth type), the retry policy, health
/// settings and timeouts; then the warnings.
pub fn render_routing_table(cfg: &Config) -> String {
    let mut out = String::new();
    // `write!` to a String cannot fail; the results are ignored on purpose throughout.
    let files: Vec<String> = cfg
        .sources
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let _ = writeln!(out, "Configuration: {}", files.join(", "));
    match cfg.gateway_port {
        Some(p) => {
            let _ = writeln!(out, "Listener port: {p} (from Gateway; --listen overrides)");
        }
        None => {
            let _ = writeln!(
                out,
                "Listener port: not set by a Gateway (--listen decides)"
            );
        }
    }
    for route in &cfg.routes {
        out.push('\n');
        render_route(&mut out, cfg, route);
    }
    out.push('\n');
    if cfg.warnings.is_empty() {
        let _ = writeln!(out, "Warnings: none");
    } else {
        let _ = writeln!(out, "Warnings ({}):", cfg.warnings.len());
        for w in &cfg.warnings {
            let _ = writeln!(out, "  - {w}");
        }
    }
    out
}

/// `switchyard validate --strict`: a config that loads with warnings is refused, so CI catches a field
/// Switchyard accepts but does not act on before it reaches a node. `Err` says how many and why.
pub fn strict_check(cfg: &Config, strict: bool) -> Result<(), String> {
    if strict && !cfg.warnings.is_empty() {
        return Err(format!(
            "{} warning(s) above and --strict: every field must be acted on (fix or remove what is listed)",
            cfg.warnings.len()
        ));
    }
    Ok(())
}

/// The part of the routing table that says how requests are routed — listener port and routes, without
/// the file names and warnings, which differ between nodes running the same routes from different paths.
/// Nodes compare its hash in the cluster's Hello.
pub fn routing_fingerprint(cfg: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:?}", cfg.gateway_port);
    for route in &cfg.routes {
        render_route(&mut out, cfg, route);
    }
    out
}

fn render_route(out: &mut String, cfg: &Config, route: &Route) {
    let _ = writeln!(
        out,
        "Route {}/{} (clients speak {})",
        route.namespace, route.name, route.input_schema.name
    );
    match &route.traffic_policy_name {
        Some(p) => {
            let _ = writeln!(out, "  BackendTrafficPolicy: {p}");
        }
        None => {
            let _ = writeln!(
                out,
                "  BackendTrafficPolicy: none (defaults: no retry, no outlier detection)"
            );
        }
    }
    for (i, rule) in route.rules.iter().enumerate() {
        let _ = writeln!(
            out,
            "  Rule {i}: request timeout {}{}, models owned by {:?}",
            format_duration(rule.request_timeout),
            rule.stream_idle_timeout.map_or(String::new(), |d| format!(
                ", stream idle timeout {}",
                format_duration(d)
            )),
            rule.models_owned_by
        );
        if rule.matches.is_empty() {
            let _ = writeln!(out, "    match: every request");
        }
        for m in &rule.matches {
            let conds: Vec<String> = m
                .headers
                .iter()
                .map(|h| match &h.value {
                    HeaderMatchValue::Exact(v) => format!("{} = {v:?}", h.name),
                    HeaderMatchValue::RegularExpression(re) => {
                        format!("{} ~ /{}/", h.name, re.as_str())
                    }
                })
                .collect();
            let text = if conds.is_empty() {
                "every request".to_owned()
            } else {
                conds.join(" and ")
            };
            let _ = writeln!(out, "    match: {text}");
        }
        let mut refs: Vec<&BackendRef> = rule.backend_refs.iter().collect();
        // Show the order traffic actually takes: priority first, YAML order within a priority.
        refs.sort_by_key(|b| b.priority);
        for b in refs {
            render_backend_ref(out, cfg.backends.get(&b.backend), b);
        }
    }
    render_traffic(out, &route.traffic);
}

fn render_backend_ref(out: &mut String, backend: Option<&Backend>, b: &BackendRef) {
    let _ = writeln!(
        out,
        "    priority {} weight {}: {} -> Backend {}",
        b.priority, b.weight, b.ref_name, b.backend
    );
    let schema = match &b.schema.version {
        Some(v) => format!("{} (version {v})", b.schema.name),
        None => b.schema.name.to_string(),
    };
    let origin = match b.schema_source {
        SchemaSource::AiServiceBackend => "from AIServiceBackend".to_owned(),
        SchemaSource::ProviderHost => {
            let host = backend
                .and_then(|be| be.endpoints.first())
                .map(Endpoint::host)
                .unwrap_or_default();
            format!("inferred from host {host}")
        }
        SchemaSource::RouteInput => "the route's input schema".to_owned(),
    };
    let _ = writeln!(out, "      schema:    {schema} ({origin})");
    let model = match &b.model_name_override {
        Some(m) => format!("{m} (modelNameOverride)"),
        None => "the client's model".to_owned(),
    };
    let _ = writeln!(out, "      model:     {model}");
    let Some(be) = backend else {
        return;
    };
    let eps: Vec<String> = be.endpoints.iter().map(Endpoint::authority).collect();
    let _ = writeln!(out, "      endpoints: {}", eps.join(", "));
    let tls = match &be.tls {
        None => "off (plain HTTP)".to_owned(),
        Some(t) => {
            let name = t
                .server_name
                .clone()
                .unwrap_or_else(|| "the endpoint host".to_owned());
            let ca = t
                .ca_source
                .clone()
                .unwrap_or_else(|| "webpki roots".to_owned());
            format!("on, verify {name}, trust {ca}")
        }
    };
    let _ = writeln!(out, "      tls:       {tls}");
    let auth = match &be.auth {
        None => "none".to_owned(),
        Some(BackendAuth::ApiKey { policy, .. }) => {
            format!("API key (Authorization: Bearer) from BackendSecurityPolicy {policy}")
        }
        Some(BackendAuth::AzureApiKey { policy, .. }) => {
            format!("Azure API key (api-key) from BackendSecurityPolicy {policy}")
        }
        Some(BackendAuth::AnthropicApiKey { policy, .. }) => {
            format!("Anthropic API key (x-api-key) from BackendSecurityPolicy {policy}")
        }
        Some(BackendAuth::AwsCredentials {
            region,
            policy,
            source,
        }) => format!(
            "AWS SigV4 (service bedrock, region {}) from BackendSecurityPolicy {policy}: {}",
            region.as_deref().unwrap_or("from the host"),
            match source {
                AwsSource::Keys(_) => "credentials file".to_owned(),
                AwsSource::OidcExchange { oidc, role_arn } => format!(
                    "OIDC client {} at {} exchanged at STS for role {role_arn}, refreshed before expiry",
                    oidc.client_id, oidc.issuer
                ),
                AwsSource::DefaultChain => {
                    "the node's default AWS chain, refreshed before expiry".to_owned()
                }
            }
        ),
        Some(BackendAuth::AzureCredentials {
            client_id,
            tenant_id,
            secret,
            policy,
        }) => format!(
            "Entra ID token (Authorization: Bearer) for client {client_id} in tenant {tenant_id} with {}, from BackendSecurityPolicy {policy}, refreshed before expiry",
            match secret {
                AzureSecret::ClientSecret(_) => "a client secret".to_owned(),
                AzureSecret::Oidc(o) => format!("a federated token of OIDC client {} at {}", o.client_id, o.issuer),
            }
        ),
        Some(BackendAuth::GcpCredentials {
            project,
            region,
            source,
            policy,
        }) => format!(
            "Google OAuth2 token (Authorization: Bearer) {}, project {project}, region {region}, from BackendSecurityPolicy {policy}, refreshed before expiry",
            match source {
                GcpSource::ServiceAccount(a) => format!("for service account {} from {}", a.client_email, a.token_uri),
                GcpSource::Federation(f) => format!(
                    "by workload identity federation: a token of OIDC client {} at {} exchanged at Google STS for {}{}",
                    f.oidc.client_id,
                    f.oidc.issuer,
                    f.audience,
                    f.impersonate.as_ref().map(|sa| format!(", impersonating {sa}")).unwrap_or_default()
                ),
                GcpSource::ApplicationDefault => "from the node's Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's file, the metadata server)".to_owned(),
            }
        ),
        Some(BackendAuth::Unavailable { reason, policy }) => {
            format!("UNAVAILABLE: {reason} (BackendSecurityPolicy {policy}); requests answer 401")
        }
    };
    let _ = writeln!(out, "      auth:      {auth}");
}

fn render_traffic(out: &mut String, t: &TrafficPolicy) {
    match &t.retry {
        None => {
            let _ = writeln!(out, "  Retry: none (a failure goes straight to the client)");
        }
        Some(r) => {
            let triggers: Vec<&str> = r.triggers.iter().map(|t| t.as_str()).collect();
            let codes: Vec<String> = r.http_status_codes.iter().map(u16::to_string).collect();
            let _ = writeln!(
                out,
                "  Retry: numRetries {} (at most {} attempts) on [{}], retriable status codes [{}]",
                r.num_retries,
                u64::from(r.num_retries) + 1,
                triggers.join(", "),
                codes.join(", ")
            );
            let per_try = r
                .per_try_timeout
                .map(format_duration)
                .unwrap_or_else(|| "none".to_owned());
            let per_prio = r
                .num_attempts_per_priority
                .map(|n| n.to_string())
                .unwrap_or_else(|| "unlimited".to_owned());
            let _ = writeln!(
                out,
                "         backoff base {} max {}, per-try timeout {}, attempts per priority {}",
                format_duration(r.base_interval),
                format_duration(r.max_interval),
                per_try,
                per_prio
            );
        }
    }
    if let Some(d) = t.first_token_timeout {
        let _ = writeln!(
            out,
            "  First-token timeout (switchyard.io/first-token-timeout, extension): {}; its expiry is retried",
            format_duration(d)
        );
    }
    if let Some(d) = t.rate_limit_cooldown {
        let _ = writeln!(
            out,
            "  Rate-limit cooldown (switchyard.io/rate-limit-cooldown, extension): a 429's Retry-After, at most {}, on every node; the 429 is retried elsewhere",
            format_duration(d)
        );
    }
    match &t.passive {
        None => {
            let _ = writeln!(out, "  Passive health: off (no healthCheck.passive)");
        }
        Some(p) => {
            let gw = if p.consecutive_gateway_errors == 0 {
                "0 (off)".to_owned()
            } else {
                p.consecutive_gateway_errors.to_string()
            };
            let _ = writeln!(
                out,
                "  Passive health: consecutive5XxErrors {}, consecutiveGatewayErrors {gw}, consecutiveLocalOriginFailures {}, splitExternalLocalOriginErrors {}",
                p.consecutive_5xx, p.consecutive_local_origin_failures, p.split_external_local_origin_errors
            );
            let _ = writeln!(
                out,
                "                  interval {}, baseEjectionTime {}, maxEjectionPercent {}%, alwaysEjectOneEndpoint {}, max ejection {}",
                format_duration(p.interval),
                format_duration(p.base_ejection_time),
                p.max_ejection_percent,
                p.always_eject_one_endpoint,
                format_duration(p.max_ejection_time)
            );
        }
    }
    match &t.active {
        None => {
            let _ = writeln!(out, "  Active health: off");
        }
        Some(a) => {
            let statuses: Vec<String> = a.expected_statuses.iter().map(u16::to_string).collect();
            let _ = writeln!(
                out,
                "  Active health: GET {} every {} (timeout {}), unhealthy after {}, healthy after {}, expect [{}]",
                a.path,
                format_duration(a.interval),
                format_duration(a.timeout),
                a.unhealthy_threshold,
                a.healthy_threshold,
                statuses.join(", ")
            );
        }
    }
    let _ = writeln!(
        out,
        "  Limits: panic threshold {}%, maxParallelRetries {}, connect timeout {}",
        t.panic_threshold,
        t.max_parallel_retries,
        format_duration(t.connect_timeout)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_name_overrides_are_kept_and_shown_per_backend_ref() {
        let yaml = "
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIGatewayRoute
metadata:
  name: r
spec:
  schema:
    name: OpenAI
  rules:
    - matches:
        - headers:
            - type: Exact
              name: x-ai-eg-model
              value: gpt-4o
      backendRefs:
        - name: primary
        - name: fallback
          priority: 1
          modelNameOverride: anthropic.claude-sonnet-4-v1:0
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: primary
spec:
  endpoints:
    - ip:
        address: 127.0.0.1
        port: 9001
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: fallback
spec:
  endpoints:
    - ip:
        address: 127.0.0.1
        port: 9002
";
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("override.yaml");
        std::fs::write(&path, yaml).expect("write");
        let cfg = crate::config::load(&path).expect("loads");
        let refs = &cfg.routes[0].rules[0].backend_refs;
        assert_eq!(refs[0].model_name_override, None);
        assert_eq!(
            refs[1].model_name_override.as_deref(),
            Some("anthropic.claude-sonnet-4-v1:0")
        );
        assert!(
            !cfg.warnings.iter().any(|w| w.contains("modelNameOverride")),
            "{:?}",
            cfg.warnings
        );
        let table = render_routing_table(&cfg);
        assert!(table.contains("model:     the client's model"), "{table}");
        assert!(
            table.contains("model:     anthropic.claude-sonnet-4-v1:0 (modelNameOverride)"),
            "{table}"
        );
    }
}
