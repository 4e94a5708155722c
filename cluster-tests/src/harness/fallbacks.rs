//! The config of the multi-provider agent tests (`openai_client_agent.rs`, `thinking.rs`): one route whose
//! every rule sends one client model to a failing OpenAI primary first and then to one fallback provider,
//! under a `modelNameOverride`, with the credential each schema takes from the mocks' test keys.

use std::net::SocketAddr;

use super::SEED_POLICY;
use crate::mock::bedrock::{TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};
use crate::mock::credentials::gcp_key_file;

/// One fallback provider of a test: the model a client asks for, the backend's schema, its name, and the
/// model it is sent (the override).
pub struct Fallback {
    /// The `model` a client sends.
    pub client_model: &'static str,
    /// The AIServiceBackend's schema.
    pub schema: &'static str,
    /// The backend's name (its Backend is `{name}-be`).
    pub name: &'static str,
    /// What the backend is sent as the model.
    pub override_model: &'static str,
}

fn backend(name: &str, addr: SocketAddr) -> String {
    format!("---\napiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata:\n  name: {name}-be\nspec:\n  endpoints:\n    - ip:\n        address: {}\n        port: {}\n", addr.ip(), addr.port())
}

/// The config: AIGatewayRoute `route` with a rule per fallback (`primary` at priority 0, the fallback at
/// 1), each fallback's backend and BackendSecurityPolicy (a Vertex mock is Google's token endpoint for the
/// service-account key made for it), the shared Secrets, and the seed page's retry policy.
pub fn fallback_per_model_config(
    route: &str,
    primary: SocketAddr,
    fallbacks: &[(&Fallback, SocketAddr)],
) -> String {
    let mut rules = String::new();
    let mut rest = backend("primary", primary);
    for (f, addr) in fallbacks {
        rules.push_str(&format!(
            "    - matches:\n        - headers:\n            - type: Exact\n              name: x-ai-eg-model\n              value: {}\n      backendRefs:\n        - name: primary-be\n          kind: Backend\n          priority: 0\n        - name: {}\n          priority: 1\n          modelNameOverride: \"{}\"\n",
            f.client_model, f.name, f.override_model
        ));
        rest.push_str(&format!("---\napiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: AIServiceBackend\nmetadata:\n  name: {n}\nspec:\n  schema:\n    name: {s}\n  backendRef:\n    name: {n}-be\n    kind: Backend\n    group: gateway.envoyproxy.io\n", n = f.name, s = f.schema));
        rest.push_str(&backend(f.name, *addr));
        let auth = match f.schema {
            "AWSBedrock" | "AWSAnthropic" => "  type: AWSCredentials\n  awsCredentials:\n    region: us-east-1\n    credentialsFile:\n      secretRef:\n        name: aws\n".to_owned(),
            "Anthropic" => "  type: AnthropicAPIKey\n  anthropicAPIKey:\n    secretRef:\n      name: keys\n".to_owned(),
            "Cohere" => "  type: APIKey\n  apiKey:\n    secretRef:\n      name: keys\n".to_owned(),
            "AzureOpenAI" => "  type: AzureAPIKey\n  azureAPIKey:\n    secretRef:\n      name: keys\n".to_owned(),
            "GCPAnthropic" | "GCPVertexAI" => {
                rest.push_str(&format!(
                    "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {n}-sa\nstringData:\n  service_account.json: '{key}'\n",
                    n = f.name,
                    key = gcp_key_file(&addr.to_string())
                ));
                format!("  type: GCPCredentials\n  gcpCredentials:\n    projectName: test-project\n    region: us-east5\n    credentialsFile:\n      secretRef:\n        name: {}-sa\n", f.name)
            }
            other => panic!("fallback_per_model_config: no test credential for schema {other}"),
        };
        rest.push_str(&format!("---\napiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: BackendSecurityPolicy\nmetadata:\n  name: {n}-auth\nspec:\n  targetRefs:\n    - group: aigateway.envoyproxy.io\n      kind: AIServiceBackend\n      name: {n}\n{auth}", n = f.name));
    }
    format!(
        "apiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: AIGatewayRoute\nmetadata:\n  name: {route}\nspec:\n  schema:\n    name: OpenAI\n  rules:\n{rules}{rest}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: aws\nstringData:\n  credentials: |\n    [default]\n    aws_access_key_id = {TEST_ACCESS_KEY_ID}\n    aws_secret_access_key = {TEST_SECRET_ACCESS_KEY}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: keys\nstringData:\n  apiKey: test-key\n---\napiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata:\n  name: {route}-policy\nspec:\n  targetRefs:\n    - group: gateway.networking.k8s.io\n      kind: HTTPRoute\n      name: {route}\n{SEED_POLICY}"
    )
}
