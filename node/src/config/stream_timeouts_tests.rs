//! Tests of the stream timeouts' configuration: the rule's `streamIdleTimeout` (Envoy AI Gateway v1.1) and
//! the `switchyard.io/first-token-timeout` annotation (a Switchyard extension that leaves the YAML valid
//! for Envoy AI Gateway). Kept beside the loader rather than in it, so that the loader's own tests stay
//! about the upstream kinds.

use std::time::Duration;

use super::{load, Config, ConfigError};

fn load_yaml(yaml: &str) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("test.yaml");
    std::fs::write(&path, yaml).expect("write");
    load(&path)
}

/// One route with `rule_extra` spliced into its rule, and a traffic policy with `annotations`.
fn config(rule_extra: &str, annotations: &str) -> String {
    format!(
        "apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIGatewayRoute
metadata:
  name: r
spec:
  rules:
    - matches:
        - headers:
            - type: Exact
              name: x-ai-eg-model
              value: m
      backendRefs:
        - name: b
{rule_extra}---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: b
spec:
  endpoints:
    - ip:
        address: 127.0.0.1
        port: 9001
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata:
  name: p
{annotations}spec:
  targetRefs:
    - group: gateway.networking.k8s.io
      kind: HTTPRoute
      name: r
  retry:
    numRetries: 1
"
    )
}

#[test]
fn stream_idle_timeout_and_first_token_annotation_are_read() {
    let cfg = load_yaml(&config(
        "      streamIdleTimeout: 5s\n",
        "  annotations:\n    switchyard.io/first-token-timeout: 1500ms\n    other.io/x: kept-out\n",
    ))
    .expect("loads");
    let route = &cfg.routes[0];
    assert_eq!(
        route.rules[0].stream_idle_timeout,
        Some(Duration::from_secs(5))
    );
    assert_eq!(
        route.traffic.first_token_timeout,
        Some(Duration::from_millis(1500))
    );
}

#[test]
fn validate_shows_both() {
    let cfg = load_yaml(&config(
        "      streamIdleTimeout: 5s\n",
        "  annotations:\n    switchyard.io/first-token-timeout: 2s\n",
    ))
    .expect("loads");
    let table = super::render_routing_table(&cfg);
    assert!(table.contains("stream idle timeout 5s"), "{table}");
    assert!(table.contains("First-token timeout"), "{table}");
}

#[test]
fn both_are_off_unless_set() {
    let cfg = load_yaml(&config("", "")).expect("loads");
    assert_eq!(cfg.routes[0].rules[0].stream_idle_timeout, None);
    assert_eq!(cfg.routes[0].traffic.first_token_timeout, None);
}

#[test]
fn bad_values_are_refused_naming_the_field() {
    let rows = [
        (
            config("      streamIdleTimeout: 0s\n", ""),
            "streamIdleTimeout",
        ),
        (
            config(
                "",
                "  annotations:\n    switchyard.io/first-token-timeout: soon\n",
            ),
            "switchyard.io/first-token-timeout",
        ),
        (
            config(
                "",
                "  annotations:\n    switchyard.io/first-token-timeout: 0s\n",
            ),
            "switchyard.io/first-token-timeout",
        ),
    ];
    for (yaml, field) in rows {
        let err = load_yaml(&yaml).expect_err("refused").to_string();
        assert!(err.contains(field), "{field} not named in: {err}");
    }
}
