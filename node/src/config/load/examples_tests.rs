//! Envoy AI Gateway v1.1's own examples load unchanged (issue 16 item 1).
//!
//! The fixtures under `node/tests/fixtures/aigw-v1.1/` reproduce every manifest of upstream's `examples/`
//! (see its README). Each test loads them the way upstream's READMEs apply them — `basic/basic.yaml`
//! together with one provider file — and checks what Switchyard made of them: routes, schemas,
//! credentials, retry policy, and a warning for every field it does not act on. Schemas not implemented
//! yet fail with one exact error naming the schema.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::model::{BackendAuth, Config, HeaderMatchValue, RetryTrigger, SchemaName};
use crate::config::{load, ConfigError};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/aigw-v1.1")
        .join(rel)
}

/// Loads the given fixtures together, as one directory (as `kubectl apply -f a -f b` would see them).
fn load_together(files: &[&str]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, f) in files.iter().enumerate() {
        let name = format!("{i:02}-{}", f.replace('/', "-"));
        fs::copy(fixture(f), dir.path().join(name)).expect("copy fixture");
    }
    load(dir.path())
}

fn ok(files: &[&str]) -> Config {
    load_together(files).unwrap_or_else(|e| panic!("{files:?} should load: {e}"))
}

/// The error without the temp-dir file name, which differs per run.
fn err(files: &[&str]) -> String {
    match load_together(files) {
        Ok(_) => panic!("{files:?} should fail"),
        Err(e) => {
            let s = e.to_string();
            s.split_once(".yaml: ")
                .map_or(s.clone(), |(_, r)| r.to_owned())
        }
    }
}

fn warned(cfg: &Config, needle: &str) -> bool {
    cfg.warnings.iter().any(|w| w.contains(needle))
}

fn assert_warned(cfg: &Config, needles: &[&str]) {
    for n in needles {
        assert!(
            warned(cfg, n),
            "no warning with {n:?} in {:#?}",
            cfg.warnings
        );
    }
}

fn route<'c>(cfg: &'c Config, name: &str) -> &'c crate::config::model::Route {
    cfg.routes
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("route {name} missing"))
}

const BASIC: &str = "basic/basic.yaml";

#[test]
fn basic_alone_loads_and_skips_kubernetes_only_kinds() {
    let cfg = ok(&[BASIC]);
    assert_eq!(cfg.routes.len(), 1);
    assert_eq!(cfg.gateway_port, Some(80));
    let r = &route(&cfg, "eg-basic").rules[0];
    assert_eq!(r.backend_refs[0].schema.name, SchemaName::OpenAI);
    assert_eq!(r.request_timeout, Duration::from_secs(60));
    assert_warned(
        &cfg,
        &[
            "kind GatewayClass",
            "kind ClientTrafficPolicy",
            "kind Deployment",
            "kind Service",
            "kind EnvoyProxy",
        ],
    );
}

#[test]
fn basic_openai_loads_with_its_api_key_and_tls_policy() {
    let cfg = ok(&[BASIC, "basic/openai.yaml"]);
    let b = &route(&cfg, "eg-openai").rules[0].backend_refs[0];
    assert_eq!(b.schema.name, SchemaName::OpenAI);
    let backend = &cfg.backends[&b.backend];
    assert!(
        matches!(&backend.auth, Some(BackendAuth::ApiKey { policy, .. }) if policy == "default/eg-openai-apikey")
    );
    assert_eq!(
        backend.tls.as_ref().and_then(|t| t.server_name.as_deref()),
        Some("api.openai.com")
    );
}

#[test]
fn basic_anthropic_loads_with_its_anthropic_key() {
    let cfg = ok(&[BASIC, "basic/anthropic.yaml"]);
    let b = &route(&cfg, "eg-anthropic").rules[0].backend_refs[0];
    assert_eq!(b.schema.name, SchemaName::Anthropic);
    assert!(matches!(
        cfg.backends[&b.backend].auth,
        Some(BackendAuth::AnthropicApiKey { .. })
    ));
}

#[test]
fn basic_cohere_loads_with_its_api_key_and_v2() {
    let cfg = ok(&[BASIC, "basic/cohere.yaml"]);
    let b = &route(&cfg, "eg-cohere").rules[0].backend_refs[0];
    assert_eq!(b.schema.name, SchemaName::Cohere);
    assert_eq!(b.schema.version.as_deref(), Some("v2"));
    assert!(matches!(
        cfg.backends[&b.backend].auth,
        Some(BackendAuth::ApiKey { .. })
    ));
}

#[test]
fn basic_anthropic_openai_local_uses_the_openai_backend_and_leaves_its_own_unused() {
    let cfg = ok(&[
        BASIC,
        "basic/openai.yaml",
        "basic/anthropic-openai-local.yaml",
    ]);
    let b = &route(&cfg, "eg-anthropic-openai").rules[0].backend_refs[0];
    assert_eq!(b.backend, "default/eg-openai");
    assert_warned(
        &cfg,
        &["Backend/default/eg-anthropic-openai: metadata.name: not referenced by any route"],
    );
}

#[test]
fn basic_azure_openai_loads_with_its_api_version_and_entra_credentials() {
    let cfg = ok(&[BASIC, "basic/azure_openai.yaml"]);
    let b = &route(&cfg, "eg-azure").rules[0].backend_refs[0];
    assert_eq!(b.schema.name, SchemaName::AzureOpenAI);
    assert_eq!(b.schema.version.as_deref(), Some("2025-01-01-preview"));
    assert!(matches!(
        cfg.backends[&b.backend].auth,
        Some(BackendAuth::AzureCredentials { .. })
    ));
}

#[test]
fn basic_tars_matches_every_model_with_a_longer_timeout() {
    let cfg = ok(&[BASIC, "basic/tars.yaml"]);
    let rule = &route(&cfg, "eg-tars").rules[0];
    assert!(matches!(
        &rule.matches[0].headers[0].value,
        HeaderMatchValue::RegularExpression(re) if re.is_match("anything-at-all")
    ));
    assert_eq!(rule.request_timeout, Duration::from_secs(120));
}

#[test]
fn basic_aws_irsa_and_pod_identity_load_with_the_aws_default_chain() {
    for file in ["basic/aws-irsa.yaml", "basic/aws-pod-identity.yaml"] {
        // Each replaces basic.yaml's Gateway (same name) to attach its EnvoyProxy, so it loads alone.
        let cfg = ok(&[file]);
        let b = &route(&cfg, "eg-aws").rules[0].backend_refs[0];
        assert_eq!(b.schema.name, SchemaName::AwsBedrock, "{file}");
        let auth = cfg.backends[&b.backend].auth.as_ref().expect("auth");
        assert_eq!(auth.policy(), "default/eg-aws", "{file}");
        // Neither credentialsFile nor oidcExchangeToken: the chain finds the pod's IRSA token or Pod
        // Identity endpoint at run time.
        assert!(
            matches!(
                auth,
                BackendAuth::AwsCredentials {
                    source: crate::config::model::AwsSource::DefaultChain,
                    ..
                }
            ),
            "{file}: {auth:?}"
        );
        assert_warned(
            &cfg,
            &["kind ServiceAccount", "kind Role", "kind RoleBinding"],
        );
    }
}

/// Envoy AI Gateway v1.1's GCP example: Gemini (`GCPVertexAI`) and Claude on Vertex (`GCPAnthropic`, its
/// `schema.version` the body's `anthropic_version`) behind one GCPCredentials policy. Its Secret is a
/// placeholder without a key, so the policy loads with a warning and its backends answer 401 naming why.
#[test]
fn basic_gcp_vertex_loads_both_schemas_with_their_policy() {
    let cfg = ok(&[BASIC, "basic/gcp_vertex.yaml"]);
    let refs: Vec<_> = cfg
        .routes
        .iter()
        .flat_map(|r| &r.rules)
        .flat_map(|r| &r.backend_refs)
        .collect();
    let gemini = refs
        .iter()
        .find(|b| b.schema.name == SchemaName::GcpVertexAI)
        .expect("a GCPVertexAI backendRef");
    let claude = refs
        .iter()
        .find(|b| b.schema.name == SchemaName::GcpAnthropic)
        .expect("a GCPAnthropic backendRef");
    assert_eq!(claude.schema.version.as_deref(), Some("vertex-2023-10-16"));
    for b in [gemini, claude] {
        match &cfg.backends[&b.backend].auth {
            Some(BackendAuth::Unavailable { reason, .. }) => {
                assert!(reason.contains("service_account.json"), "{reason}")
            }
            other => panic!("expected the placeholder key to be unusable, got {other:?}"),
        }
    }
    assert!(
        warned(&cfg, "the key file has no client_email"),
        "{:?}",
        cfg.warnings
    );
}

/// Claude on Bedrock through InvokeModel (`AWSAnthropic`), as Envoy AI Gateway v1.1's examples configure
/// it: the schema version is the body's `anthropic_version`, the AWS credentials sign it.
#[test]
fn aws_anthropic_examples_load_with_their_credentials() {
    for (file, route_name, backend) in [
        (
            "basic/aws.yaml",
            "eg-aws-bedrock-anthropic",
            "eg-aws-bedrock-anthropic",
        ),
        (
            "basic/aws-bedrock-openai-anthropic.yaml",
            "eg-aws-claude-openai",
            "eg-aws-claude-openai",
        ),
    ] {
        let cfg = ok(&[BASIC, file]);
        let b = route(&cfg, route_name)
            .rules
            .iter()
            .flat_map(|r| &r.backend_refs)
            .find(|b| b.ref_name == backend)
            .unwrap_or_else(|| panic!("{file}: no backendRef {backend}"));
        assert_eq!(b.schema.name, SchemaName::AwsAnthropic, "{file}");
        assert_eq!(
            b.schema.version.as_deref(),
            Some("bedrock-2023-05-31"),
            "{file}"
        );
        assert!(
            matches!(
                cfg.backends[&b.backend].auth,
                Some(BackendAuth::AwsCredentials { .. })
            ),
            "{file}"
        ); // Its host is Bedrock's runtime host, as for Converse: nothing to warn about.
        assert!(
            !cfg.warnings.iter().any(|w| w.contains("looks like")),
            "{file}: {:?}",
            cfg.warnings
        );
    }
}

#[test]
fn provider_fallback_loads_with_the_pages_retry_policy() {
    let cfg = ok(&[
        "provider_fallback/base.yaml",
        "provider_fallback/fallback.yaml",
    ]);
    let r = route(&cfg, "provider-fallback");
    let refs = &r.rules[0].backend_refs;
    assert_eq!(
        refs.iter()
            .map(|b| (b.ref_name.as_str(), b.priority, b.schema.name))
            .collect::<Vec<_>>(),
        vec![
            ("provider-fallback-failing", 0, SchemaName::OpenAI),
            ("provider-fallback-aws", 1, SchemaName::AwsBedrock),
        ]
    );
    assert!(matches!(
        cfg.backends[&refs[1].backend].auth,
        Some(BackendAuth::AwsCredentials { .. })
    ));
    let retry = r.traffic.retry.as_ref().expect("retry");
    assert_eq!(retry.num_retries, 5);
    assert_eq!(retry.num_attempts_per_priority, Some(1));
    assert_eq!(
        retry.triggers,
        vec![
            RetryTrigger::ConnectFailure,
            RetryTrigger::RetriableStatusCodes
        ]
    );
    assert_eq!(retry.http_status_codes, vec![500]);
    assert_eq!(retry.per_try_timeout, Some(Duration::from_secs(30)));
    assert_eq!(retry.base_interval, Duration::from_millis(100));
    assert_eq!(retry.max_interval, Duration::from_secs(10));
}

#[test]
fn stream_idle_timeout_loads_both_rules_and_its_retry_policy() {
    let cfg = ok(&[
        "stream_idle_timeout/backends.yaml",
        "stream_idle_timeout/base.yaml",
    ]);
    let r = route(&cfg, "stream-idle-timeout");
    assert_eq!(r.rules.len(), 2);
    for rule in &r.rules {
        assert_eq!(rule.request_timeout, Duration::from_secs(30));
        assert_eq!(rule.backend_refs.len(), 2);
    }
    let retry = r.traffic.retry.as_ref().expect("retry");
    assert_eq!(
        retry.triggers,
        vec![
            RetryTrigger::Reset,
            RetryTrigger::ConnectFailure,
            RetryTrigger::RetriableStatusCodes
        ]
    );
    assert_eq!(retry.http_status_codes, vec![502, 503, 504]);
    assert_eq!(retry.max_interval, Duration::from_secs(1));
    // The rule field is honoured (the stream's idle cut), so it is not warned about.
    assert!(
        cfg.warnings
            .iter()
            .all(|w| !w.contains("streamIdleTimeout")),
        "{:?}",
        cfg.warnings
    );
    assert!(cfg.routes[0].rules[0].stream_idle_timeout.is_some());
}

#[test]
fn token_ratelimit_loads_and_says_what_it_does_not_do() {
    let cfg = ok(&[
        "token_ratelimit/token_ratelimit.yaml",
        "token_ratelimit/redis.yaml",
    ]);
    assert_eq!(cfg.routes.len(), 1);
    assert!(cfg.routes[0].traffic.retry.is_none());
    assert_warned(
        &cfg,
        &[
            "spec.llmRequestCosts: ignored: token-cost accounting",
            "spec.rateLimit: ignored: rate limiting is not implemented",
            "policies attached to a Gateway are not applied",
            "kind Namespace",
        ],
    );
}

#[test]
fn gateway_config_comprehensive_loads_with_the_first_listener() {
    let cfg = ok(&["gateway-config/comprehensive.yaml"]);
    assert_eq!(cfg.gateway_port, Some(8080));
    let rule = &route(&cfg, "example-route").rules[0];
    assert!(rule.matches.is_empty(), "no matches: every model");
    assert_eq!(rule.backend_refs[0].schema.version.as_deref(), Some("v1"));
    assert_warned(
        &cfg,
        &["kind GatewayConfig", "listener http (port 8081) ignored"],
    );
}

#[test]
fn access_log_loads() {
    let cfg = ok(&["access-log/basic.yaml"]);
    assert_eq!(cfg.routes.len(), 1);
    assert_warned(&cfg, &["spec.llmRequestCosts: ignored"]);
}

#[test]
fn aigw_ollama_and_mcp_openai_github_load_with_the_backend_timeout_warned() {
    for file in ["aigw/ollama.yaml", "mcp/openai-github.yaml"] {
        let cfg = ok(&[file]);
        assert_eq!(cfg.gateway_port, Some(1975), "{file}");
        let rule = &route(&cfg, "aigw-run").rules[0];
        assert_eq!(rule.request_timeout, Duration::from_secs(120), "{file}");
        let b = &cfg.backends[&rule.backend_refs[0].backend];
        assert!(
            matches!(&b.auth, Some(BackendAuth::ApiKey { .. })),
            "{file}"
        );
        assert_warned(
            &cfg,
            &[
                "AIServiceBackend/default/openai: spec.timeouts: ignored",
                "kind MCPRoute",
            ][..if file.starts_with("mcp") { 2 } else { 1 }],
        );
    }
}

#[test]
fn mcp_only_manifests_load_with_their_backends_unused() {
    for file in [
        "mcp/mcp_example.yaml",
        "mcp/mcp_oauth_example.yaml",
        "mcp/mcp_oauth_keycloak.yaml",
    ] {
        let cfg = ok(&[file]);
        assert!(cfg.routes.is_empty(), "{file}");
        assert_warned(&cfg, &["kind MCPRoute", "not referenced by any route"]);
    }
}

#[test]
fn inference_pool_backends_are_refused_naming_the_field() {
    assert_eq!(
        err(&["inference-pool/aigwroute.yaml", "inference-pool/base.yaml"]),
        "AIGatewayRoute/default/inference-pool-with-aigwroute: spec.rules[0].backendRefs[0].kind: InferencePool backends are not supported (expected AIServiceBackend, or a Backend)"
    );
    // The other manifests of that example hold no AIGatewayRoute and load.
    for file in [
        "inference-pool/httproute.yaml",
        "inference-pool/with-annotations.yaml",
    ] {
        assert!(ok(&[file]).routes.is_empty(), "{file}");
    }
}

#[test]
fn monitoring_has_no_switchyard_kind_and_loads_empty() {
    let cfg = ok(&["monitoring/monitoring.yaml"]);
    assert!(cfg.routes.is_empty());
    assert_warned(&cfg, &["kind Deployment"]);
}

/// The same resources spelled v1alpha1 load to the same routing table as v1beta1.
#[test]
fn v1alpha1_and_v1beta1_mean_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tables = Vec::new();
    for version in ["v1beta1", "v1alpha1"] {
        let sub = dir.path().join(version);
        fs::create_dir(&sub).expect("mkdir");
        for f in [
            "provider_fallback/base.yaml",
            "provider_fallback/fallback.yaml",
        ] {
            let text = fs::read_to_string(fixture(f)).expect("read");
            let text = text.replace(
                "aigateway.envoyproxy.io/v1beta1",
                &format!("aigateway.envoyproxy.io/{version}"),
            );
            fs::write(sub.join(f.replace('/', "-")), text).expect("write");
        }
        let cfg = load(&sub).expect("loads");
        let table = crate::config::render_routing_table(&cfg);
        tables.push(table.replace(&sub.display().to_string(), "DIR"));
    }
    assert_eq!(tables[0], tables[1]);
}
