//! BackendTrafficPolicy: retry and limit defaults as Envoy and Envoy Gateway have them.

use super::*;

#[test]
fn no_retry_block_means_no_retry_and_default_limits() {
    let yaml = format!(
        "{ROUTE}{BACKEND}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata:
  name: p
spec:
  targetRef:
    group: gateway.networking.k8s.io
    kind: AIGatewayRoute
    name: r
  healthCheck:
    passive: {{}}
"
    );
    let cfg = load_ok(&yaml);
    let t = &cfg.routes[0].traffic;
    assert_eq!(t.retry, None);
    assert_eq!(t.passive, Some(PassiveHealthConfig::default()));
    assert_eq!(
        cfg.routes[0].traffic_policy_name.as_deref(),
        Some("default/p")
    );

    let bare = load_ok(&format!("{ROUTE}{BACKEND}"));
    assert_eq!(bare.routes[0].traffic, TrafficPolicy::default());
    assert_eq!(bare.routes[0].traffic_policy_name, None);
}

#[test]
fn retry_defaults_follow_envoy() {
    let policy = |retry: &str| {
        format!(
            "{ROUTE}{BACKEND}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata:
  name: p
spec:
  targetRefs:
    - group: gateway.networking.k8s.io
      kind: HTTPRoute
      name: r
  retry:
{retry}"
        )
    };
    let d = RetryConfig::default();
    // (retry block, expected)
    let cases = [
        ("    numRetries: 2\n", d.clone()),
        (
            "    perRetry:\n      backOff:\n        baseInterval: 1s\n",
            RetryConfig {
                base_interval: Duration::from_secs(1),
                max_interval: Duration::from_secs(10),
                ..d.clone()
            },
        ),
        (
            "    retryOn:\n      triggers: [5xx]\n",
            RetryConfig {
                triggers: vec![RetryTrigger::FiveXx],
                http_status_codes: vec![],
                ..d.clone()
            },
        ),
        (
            "    numRetries: 0\n    numAttemptsPerPriority: 1\n",
            RetryConfig {
                num_retries: 0,
                num_attempts_per_priority: Some(1),
                ..d.clone()
            },
        ),
    ];
    for (block, want) in cases {
        let cfg = load_ok(&policy(block));
        assert_eq!(cfg.routes[0].traffic.retry.as_ref(), Some(&want), "{block}");
    }
    // and the invalid ones
    for (block, field) in [
        ("    numRetries: 1000\n", "spec.retry.numRetries"),
        ("    numRetries: -1\n", "spec.retry.numRetries"),
        (
            "    retryOn:\n      triggers: [on-error]\n",
            "spec.retry.retryOn.triggers[0]",
        ),
        (
            "    retryOn:\n      httpStatusCodes: [99]\n",
            "spec.retry.retryOn.httpStatusCodes[0]",
        ),
        (
            "    perRetry:\n      backOff:\n        baseInterval: 1s\n        maxInterval: 100ms\n",
            "spec.retry.perRetry.backOff.maxInterval",
        ),
        ("    numRetry: 3\n", "numRetry"),
    ] {
        let err = load_err(&policy(block));
        assert!(
            err.contains(field) && err.contains("BackendTrafficPolicy/default/p"),
            "{block}: {err}"
        );
    }
}
