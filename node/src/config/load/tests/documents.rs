//! Files, documents and whole examples: loading, kinds, errors with their field paths, the routing table.

use super::*;

#[test]
fn seed_example_loads_unmodified_with_the_pages_semantics() {
    let cfg = load(&example("provider-fallback.yaml")).expect("seed example loads");
    assert_eq!(cfg.routes.len(), 1);
    let route = &cfg.routes[0];
    assert_eq!(
        (route.namespace.as_str(), route.name.as_str()),
        ("default", "provider-fallback")
    );
    assert_eq!(route.input_schema.name, SchemaName::OpenAI);
    assert_eq!(route.rules.len(), 1);
    let rule = &route.rules[0];
    assert_eq!(rule.request_timeout, Duration::from_secs(60));
    assert_eq!(rule.models_owned_by, "Envoy AI Gateway");
    let h = &rule.matches[0].headers[0];
    assert_eq!(h.name, "x-ai-eg-model");
    assert!(
        matches!(&h.value, HeaderMatchValue::Exact(v) if v == "us.meta.llama3-2-1b-instruct-v1:0")
    );

    // (ref name, priority, weight, schema, source, host)
    let want = [
        (
            "provider-fallback-always-failing-upstream",
            0,
            1,
            SchemaName::OpenAI,
            SchemaSource::RouteInput,
            "provider-fallback-always-failing-upstream.default.svc.cluster.local",
        ),
        (
            "provider-fallback-aws",
            1,
            1,
            SchemaName::AwsBedrock,
            SchemaSource::ProviderHost,
            "bedrock-runtime.us-east-1.amazonaws.com",
        ),
    ];
    assert_eq!(rule.backend_refs.len(), want.len());
    for (b, (name, prio, weight, schema, source, host)) in rule.backend_refs.iter().zip(want) {
        assert_eq!(b.ref_name, name);
        assert_eq!(b.backend, format!("default/{name}"));
        assert_eq!((b.priority, b.weight), (prio, weight), "{name}");
        assert_eq!((b.schema.name, b.schema_source), (schema, source), "{name}");
        let be = &cfg.backends[&b.backend];
        assert_eq!(
            be.endpoints,
            vec![Endpoint::Fqdn {
                hostname: host.into(),
                port: 443
            }]
        );
        assert_eq!(
            be.tls,
            Some(UpstreamTls {
                server_name: None,
                ca_pem: None,
                ca_source: None
            }),
            "port 443 means TLS"
        );
        assert_eq!(be.auth, None);
    }

    assert_eq!(
        route.traffic_policy_name.as_deref(),
        Some("default/passive-health-check")
    );
    let retry = route.traffic.retry.as_ref().expect("retry");
    assert_eq!(
        retry,
        &RetryConfig {
            num_retries: 5,
            triggers: vec![
                RetryTrigger::ConnectFailure,
                RetryTrigger::RetriableStatusCodes
            ],
            http_status_codes: vec![500],
            base_interval: Duration::from_millis(100),
            max_interval: Duration::from_secs(10),
            per_try_timeout: Some(Duration::from_secs(30)),
            num_attempts_per_priority: None,
        }
    );
    assert_eq!(
        route.traffic.passive,
        Some(PassiveHealthConfig {
            base_ejection_time: Duration::from_secs(5),
            interval: Duration::from_secs(2),
            max_ejection_percent: 100,
            consecutive_5xx: 1,
            consecutive_gateway_errors: 0,
            consecutive_local_origin_failures: 1,
            split_external_local_origin_errors: false,
            always_eject_one_endpoint: false,
            max_ejection_time: Duration::from_secs(300),
        })
    );
    assert_eq!(route.traffic.active, None);
    assert_eq!(route.traffic.panic_threshold, 50);
    assert_eq!(cfg.gateway_port, None);
    assert!(
        cfg.warnings
            .iter()
            .any(|w| w
                .contains("AWSBedrock inferred from host bedrock-runtime.us-east-1.amazonaws.com")),
        "{:#?}",
        cfg.warnings
    );
}

#[test]
fn local_example_loads_with_loopback_backends_and_an_api_key() {
    let cfg = load(&example("local-fallback.yaml")).expect("local example loads");
    assert_eq!(cfg.gateway_port, Some(8080));
    let rule = &cfg.routes[0].rules[0];
    let primary = &rule.backend_refs[0];
    let fallback = &rule.backend_refs[1];
    assert_eq!(
        (primary.priority, primary.schema_source),
        (0, SchemaSource::RouteInput)
    );
    assert_eq!(
        (fallback.priority, fallback.schema_source),
        (1, SchemaSource::AiServiceBackend)
    );
    assert_eq!(fallback.schema.name, SchemaName::OpenAI);
    let p = &cfg.backends[&primary.backend];
    let f = &cfg.backends[&fallback.backend];
    assert_eq!(p.endpoints[0].authority(), "127.0.0.1:9001");
    assert_eq!(f.endpoints[0].authority(), "127.0.0.1:9002");
    assert_eq!((p.tls.as_ref(), f.tls.as_ref()), (None, None));
    assert_eq!(p.auth, None);
    match &f.auth {
        Some(BackendAuth::ApiKey { key, policy }) => {
            assert_eq!(key.expose(), "sk-local-mock-key");
            assert_eq!(policy, "default/local-fallback-apikey");
        }
        other => panic!("expected an API key, got {other:?}"),
    }
    assert_eq!(
        cfg.routes[0].traffic.retry.as_ref().map(|r| r.num_retries),
        Some(5)
    );
}

#[test]
fn directory_loads_every_yaml_file_in_sorted_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let second_route = ROUTE.replace("name: r\n", "name: r2\n");
    fs::write(dir.path().join("b-route.yml"), &second_route).expect("write");
    fs::write(dir.path().join("a-route.yaml"), ROUTE).expect("write");
    fs::write(dir.path().join("c-backend.yaml"), BACKEND).expect("write");
    fs::write(dir.path().join("notes.txt"), "not: [yaml").expect("write");
    let cfg = load(dir.path()).expect("directory loads");
    let names: Vec<&str> = cfg.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["r", "r2"]);
    let files: Vec<String> = cfg
        .sources
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["a-route.yaml", "b-route.yml", "c-backend.yaml"]);
    assert_eq!(cfg.backends.len(), 1);
}

#[test]
fn empty_directory_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = load(dir.path()).expect_err("empty dir").to_string();
    assert!(err.contains("no *.yaml or *.yml files"), "{err}");
}

#[test]
fn unknown_kinds_and_foreign_api_groups_warn_and_are_skipped() {
    let yaml = format!(
        "{ROUTE}{BACKEND}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: other
spec:
  whatever: [1, 2]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: istio
spec:
  servers: []
---
---
"
    );
    let cfg = load_ok(&yaml);
    assert_eq!(cfg.routes.len(), 1);
    assert!(
        cfg.warnings
            .iter()
            .any(|w| w.contains("HTTPRoute/default/other") && w.contains("skipped")),
        "{:#?}",
        cfg.warnings
    );
    assert!(
        cfg.warnings
            .iter()
            .any(|w| w.contains("Gateway/default/istio") && w.contains("skipped")),
        "{:#?}",
        cfg.warnings
    );
    assert_eq!(cfg.gateway_port, None);
}

#[test]
fn invalid_resources_are_errors_naming_file_resource_and_field() {
    // (what, yaml, expected fragments of the message)
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "unknown field in a rule",
            ROUTE.replace(
                "      backendRefs:",
                "      backendRefz: []\n      backendRefs:",
            ) + BACKEND,
            vec![
                "test.yaml",
                "AIGatewayRoute/default/r",
                "spec.rules[0]",
                "backendRefz",
            ],
        ),
        (
            "unknown field in a backendRef",
            ROUTE.replace(
                "        - name: b\n",
                "        - name: b\n          prority: 1\n",
            ) + BACKEND,
            vec![
                "test.yaml",
                "AIGatewayRoute/default/r",
                "spec.rules[0].backendRefs[0]",
                "prority",
            ],
        ),
        (
            "negative priority",
            ROUTE.replace(
                "        - name: b\n",
                "        - name: b\n          priority: -1\n",
            ) + BACKEND,
            vec![
                "AIGatewayRoute/default/r",
                "spec.rules[0].backendRefs[0].priority",
            ],
        ),
        (
            "negative weight",
            ROUTE.replace(
                "        - name: b\n",
                "        - name: b\n          weight: -3\n",
            ) + BACKEND,
            vec!["spec.rules[0].backendRefs[0].weight"],
        ),
        (
            "dangling backendRef",
            ROUTE.replace(
                "        - name: b\n",
                "        - name: b\n        - name: nope\n",
            ) + BACKEND,
            vec![
                "AIGatewayRoute/default/r",
                "spec.rules[0].backendRefs[1].name",
                "\"nope\"",
            ],
        ),
        (
            "no backendRefs",
            ROUTE.replace(
                "      backendRefs:\n        - name: b\n",
                "      backendRefs: []\n",
            ) + BACKEND,
            vec!["spec.rules[0].backendRefs", "at least one backendRef"],
        ),
        (
            "bad regex",
            ROUTE
                .replace("type: Exact", "type: RegularExpression")
                .replace("value: m", "value: \"llama(\"")
                + BACKEND,
            vec![
                "AIGatewayRoute/default/r",
                "spec.rules[0].matches[0].headers[0].value",
                "invalid regular expression",
            ],
        ),
        (
            "unknown header match type",
            ROUTE.replace("type: Exact", "type: Prefix") + BACKEND,
            vec!["spec.rules[0].matches[0].headers[0].type"],
        ),
        (
            "port 0",
            format!("{ROUTE}{}", BACKEND.replace("port: 9001", "port: 0")),
            vec![
                "Backend/default/b",
                "spec.endpoints[0].ip.port",
                "1..=65535",
            ],
        ),
        (
            "port too large",
            format!("{ROUTE}{}", BACKEND.replace("port: 9001", "port: 70000")),
            vec!["spec.endpoints[0].ip.port"],
        ),
        (
            "not an IP",
            format!("{ROUTE}{}", BACKEND.replace("127.0.0.1", "localhost")),
            vec!["spec.endpoints[0].ip.address"],
        ),
        (
            "unknown schema",
            ROUTE.replace("name: OpenAI", "name: Cohere") + BACKEND,
            vec!["spec.schema.name", "Cohere"],
        ),
        (
            "wrong apiVersion of a known group",
            ROUTE.replace("v1alpha1", "v1beta9") + BACKEND,
            vec![
                "AIGatewayRoute/default/r",
                "apiVersion",
                "aigateway.envoyproxy.io/v1alpha1",
            ],
        ),
        (
            "missing metadata.name",
            ROUTE.replace("  name: r\n", "  namespace: x\n") + BACKEND,
            vec!["test.yaml", "document 1", "metadata.name"],
        ),
        (
            "duplicate resource",
            format!("{ROUTE}{BACKEND}{BACKEND}"),
            vec!["Backend/default/b", "duplicate"],
        ),
    ];
    for (what, yaml, fragments) in cases {
        let err = load_err(&yaml);
        for f in fragments {
            assert!(err.contains(f), "{what}: {f:?} not in: {err}");
        }
    }
}

#[test]
fn bad_durations_are_errors_with_the_field_path() {
    let yaml = format!(
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
    perRetry:
      timeout: 30 seconds
"
    );
    let err = load_err(&yaml);
    for f in [
        "test.yaml",
        "BackendTrafficPolicy/default/p",
        "spec.retry.perRetry.timeout",
        "invalid duration \"30 seconds\"",
    ] {
        assert!(err.contains(f), "{f:?} not in: {err}");
    }
}

#[test]
fn yaml_syntax_errors_name_the_file_and_line() {
    let err = load_yaml("apiVersion: v1\nkind: Secret\nmetadata: {name: [unclosed\n")
        .expect_err("bad yaml");
    match &err {
        ConfigError::Yaml { file, line, .. } => {
            assert!(file.ends_with("test.yaml"));
            assert!(*line >= 3, "line {line}");
        }
        other => panic!("expected a YAML error, got {other}"),
    }
    assert!(err.to_string().contains("test.yaml:"), "{err}");
}

#[test]
fn gateway_listener_port_is_read() {
    let gw = |port: &str| {
        format!(
            "{ROUTE}{BACKEND}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  gatewayClassName: eg
  listeners:
    - name: http
      protocol: HTTP
      port: {port}
"
        )
    };
    assert_eq!(load_ok(&gw("8081")).gateway_port, Some(8081));
    let err = load_err(&gw("0"));
    assert!(
        err.contains("Gateway/default/gw") && err.contains("spec.listeners[0].port"),
        "{err}"
    );
}

#[test]
fn accepted_but_ignored_fields_warn() {
    let yaml = format!(
        "{}{BACKEND}
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
  loadBalancer:
    type: RoundRobin
  rateLimit:
    type: Global
  timeout:
    tcp:
      connectTimeout: 3s
    http:
      requestTimeout: 10s
",
        ROUTE.replace(
            "  rules:\n",
            "  llmRequestCosts:\n    - metadataKey: t\n      type: TotalToken\n  rules:\n",
        )
    );
    let cfg = load_ok(&yaml);
    for f in [
        "spec.llmRequestCosts",
        "spec.loadBalancer",
        "spec.rateLimit",
        "spec.timeout.http",
    ] {
        assert!(
            cfg.warnings.iter().any(|w| w.contains(f)),
            "{f}: {:#?}",
            cfg.warnings
        );
    }
    assert_eq!(
        cfg.routes[0].traffic.connect_timeout,
        Duration::from_secs(3)
    );
}

#[test]
fn routing_table_shows_the_effective_configuration() {
    let cfg = load(&example("provider-fallback.yaml")).expect("seed loads");
    let table = crate::config::render_routing_table(&cfg);
    for f in [
        "Route default/provider-fallback",
        "BackendTrafficPolicy: default/passive-health-check",
        "x-ai-eg-model = \"us.meta.llama3-2-1b-instruct-v1:0\"",
        "priority 0 weight 1: provider-fallback-always-failing-upstream",
        "priority 1 weight 1: provider-fallback-aws",
        "AWSBedrock (inferred from host bedrock-runtime.us-east-1.amazonaws.com)",
        "OpenAI (the route's input schema)",
        "bedrock-runtime.us-east-1.amazonaws.com:443",
        "tls:       on",
        "numRetries 5",
        "[connect-failure, retriable-status-codes]",
        "[500]",
        "backoff base 100ms max 10s, per-try timeout 30s",
        "consecutive5XxErrors 1, consecutiveGatewayErrors 0 (off)",
        "interval 2s, baseEjectionTime 5s, maxEjectionPercent 100%",
        "request timeout 1m",
        "Warnings (",
    ] {
        assert!(table.contains(f), "{f:?} not in:\n{table}");
    }
}
