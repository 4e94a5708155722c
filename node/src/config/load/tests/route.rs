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
