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

fn with_traffic_policy(policy_spec: &str) -> String {
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
{policy_spec}"
    )
}

/// Audit D5: Envoy Gateway keeps its default triggers (connect-failure, refused-stream,
/// retriable-status-codes) when `retryOn` lists none, and its default code 503 only when `retryOn` sets
/// nothing at all. One row per shape of `retryOn`.
#[test]
fn retry_on_without_triggers_keeps_envoy_gateways_defaults() {
    use RetryTrigger::*;
    let defaults = vec![ConnectFailure, RefusedStream, RetriableStatusCodes];
    let rows: [(&str, &str, Vec<RetryTrigger>, Vec<u16>); 5] = [
        ("absent", "", defaults.clone(), vec![503]),
        ("empty", "    retryOn: {}\n", defaults.clone(), vec![503]),
        (
            "codes only",
            "    retryOn:\n      httpStatusCodes: [500, 502]\n",
            defaults.clone(),
            vec![500, 502],
        ),
        (
            "empty trigger list with codes",
            "    retryOn:\n      triggers: []\n      httpStatusCodes: [429]\n",
            defaults.clone(),
            vec![429],
        ),
        (
            "triggers only: no codes",
            "    retryOn:\n      triggers: [5xx]\n",
            vec![FiveXx],
            vec![],
        ),
    ];
    for (name, retry_on, triggers, codes) in rows {
        let cfg = load_ok(&with_traffic_policy(&format!(
            "  retry:\n    numRetries: 2\n{retry_on}"
        )));
        let r = cfg.routes[0].traffic.retry.as_ref().expect("retry");
        assert_eq!(
            (&r.triggers, &r.http_status_codes),
            (&triggers, &codes),
            "{name}"
        );
    }
}

/// Audit D8 and D9: Envoy's max ejection time is max(300 s, baseEjectionTime); `maxEjectionPercent: 0`
/// is omitted by Envoy Gateway, so Envoy's 10 % applies.
#[test]
fn passive_health_limits_follow_envoy_and_envoy_gateway() {
    let rows = [
        ("base 30s", "baseEjectionTime: 30s", 300, 10),
        ("base above 300s", "baseEjectionTime: 10m", 600, 10),
        ("percent 0 is the default", "maxEjectionPercent: 0", 300, 10),
        ("percent 100", "maxEjectionPercent: 100", 300, 100),
    ];
    for (name, field, max_secs, percent) in rows {
        let cfg = load_ok(&with_traffic_policy(&format!(
            "  healthCheck:\n    passive:\n      {field}\n"
        )));
        let p = cfg.routes[0].traffic.passive.as_ref().expect("passive");
        assert_eq!(
            (p.max_ejection_time, p.max_ejection_percent),
            (Duration::from_secs(max_secs), percent),
            "{name}"
        );
    }
}
