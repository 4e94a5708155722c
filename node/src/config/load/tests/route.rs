//! AIGatewayRoute resolution: header matches and schema inference.

use super::*;

#[test]
fn regular_expressions_match_the_whole_header_value() {
    let cfg = load_ok(
        &(ROUTE
            .replace("type: Exact", "type: RegularExpression")
            .replace("value: m", "value: \"llama-.*\"")
            + BACKEND),
    );
    let HeaderMatchValue::RegularExpression(re) =
        &cfg.routes[0].rules[0].matches[0].headers[0].value
    else {
        panic!("expected a regex");
    };
    for (value, want) in [
        ("llama-3", true),
        ("llama-", true),
        ("my-llama-3", false),
        ("llama", false),
    ] {
        assert_eq!(re.is_match(value), want, "{value}");
    }
}

#[test]
fn header_names_are_lower_cased() {
    let cfg = load_ok(&(ROUTE.replace("name: x-ai-eg-model", "name: X-AI-EG-Model") + BACKEND));
    assert_eq!(
        cfg.routes[0].rules[0].matches[0].headers[0].name,
        "x-ai-eg-model"
    );
}

#[test]
fn provider_hosts_imply_schemas() {
    let cases = [
        (
            "bedrock-runtime.us-east-1.amazonaws.com",
            Some(SchemaName::AwsBedrock),
        ),
        (
            "bedrock-runtime.eu-west-3.amazonaws.com",
            Some(SchemaName::AwsBedrock),
        ),
        ("bedrock.us-east-1.amazonaws.com", None),
        ("myres.openai.azure.com", Some(SchemaName::AzureOpenAI)),
        ("api.anthropic.com", Some(SchemaName::Anthropic)),
        ("API.Anthropic.com.", Some(SchemaName::Anthropic)),
        ("api.openai.com", None),
        ("evil-api.anthropic.com.example", None),
    ];
    for (host, want) in cases {
        assert_eq!(
            crate::config::load::route::infer_schema_from_host(host),
            want,
            "{host}"
        );
    }
}

/// Audit D11: `GET /v1/models` `created` is `modelsCreatedAt`, else the route's
/// `metadata.creationTimestamp` (Envoy AI Gateway's controller does the same), else unset (the node
/// then reports when it loaded the config); a malformed time is an error naming the field.
#[test]
fn models_created_at_then_creation_timestamp() {
    let with_created = |meta: &str, rule: &str| {
        ROUTE
            .replace("  name: r\n", &format!("  name: r\n{meta}"))
            .replace(
                "      backendRefs:\n",
                &format!("{rule}      backendRefs:\n"),
            )
            + BACKEND
    };
    let created = |yaml: &str| load_ok(yaml).routes[0].rules[0].models_created_at;
    assert_eq!(created(&with_created("", "")), None);
    assert_eq!(
        created(&with_created(
            "",
            "      modelsCreatedAt: \"2025-05-01T00:00:00Z\"\n"
        )),
        Some(1_746_057_600)
    );
    assert_eq!(
        created(&with_created(
            "  creationTimestamp: \"2024-01-01T00:00:00Z\"\n",
            ""
        )),
        Some(1_704_067_200)
    );
    assert_eq!(
        created(&with_created(
            "  creationTimestamp: \"2024-01-01T00:00:00Z\"\n",
            "      modelsCreatedAt: 2025-05-01T02:00:00+02:00\n"
        )),
        Some(1_746_057_600),
        "modelsCreatedAt wins, unquoted and with an offset"
    );
    let err = load_err(&with_created("", "      modelsCreatedAt: yesterday\n"));
    assert!(
        err.contains("spec.rules[0].modelsCreatedAt: \"yesterday\" is not an RFC 3339 time"),
        "{err}"
    );
}
