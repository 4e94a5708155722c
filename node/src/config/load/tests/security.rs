//! BackendSecurityPolicy and Secrets: every credential type, and secret values never shown.

use super::*;
use crate::config::model::{AwsSource, AzureSecret, GcpSource};

const SECRET_VALUE: &str = "sk-very-secret-4242";

fn with_api_key(secret_doc: &str) -> String {
    format!(
        "{ROUTE}
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIServiceBackend
metadata:
  name: b
spec:
  schema:
    name: OpenAI
  backendRef:
    name: be
    kind: Backend
    group: gateway.envoyproxy.io
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: be
spec:
  endpoints:
    - fqdn:
        hostname: api.openai.com
        port: 443
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: BackendSecurityPolicy
metadata:
  name: key
spec:
  type: APIKey
  targetRefs:
    - group: aigateway.envoyproxy.io
      kind: AIServiceBackend
      name: b
  apiKey:
    secretRef:
      name: s
{secret_doc}"
    )
}

#[test]
fn api_keys_resolve_from_string_data_and_base64_data() {
    // "c2stdmVyeS1zZWNyZXQtNDI0Mg==" is base64 of SECRET_VALUE; the second adds the newline `echo` leaves.
    for data in [
        format!("stringData:\n  apiKey: {SECRET_VALUE}"),
        "data:\n  apiKey: c2stdmVyeS1zZWNyZXQtNDI0Mg==".to_owned(),
        "data:\n  apiKey: c2stdmVyeS1zZWNyZXQtNDI0Mgo=".to_owned(),
    ] {
        let cfg = load_ok(&with_api_key(&format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n{data}\n"
        )));
        let be = &cfg.backends["default/be"];
        match &be.auth {
            Some(BackendAuth::ApiKey { key, policy }) => {
                assert_eq!(key.expose(), SECRET_VALUE, "{data}");
                assert_eq!(policy, "default/key");
            }
            other => panic!("{data}: expected an API key, got {other:?}"),
        }
        assert_eq!(
            cfg.routes[0].rules[0].backend_refs[0].schema_source,
            SchemaSource::AiServiceBackend
        );
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains(SECRET_VALUE), "secret in Debug output");
        assert!(
            !render_routing_table_for_test(&cfg).contains(SECRET_VALUE),
            "secret in the table"
        );
    }
}

#[test]
fn missing_secret_is_an_error_naming_the_reference() {
    let err = load_err(&with_api_key(""));
    for f in [
        "BackendSecurityPolicy/default/key",
        "spec.apiKey.secretRef.name",
        "no Secret named \"s\"",
    ] {
        assert!(err.contains(f), "{f:?} not in: {err}");
    }
    let err = load_err(&with_api_key(&format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  token: {SECRET_VALUE}\n"
        )));
    assert!(
        err.contains("has no key apiKey") && err.contains("token"),
        "{err}"
    );
    assert!(!err.contains(SECRET_VALUE), "{err}");
}

#[test]
fn secret_values_never_appear_in_errors() {
    let secret =
        |body: &str| format!("---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n{body}\n");
    let cases = [
        // wrong shapes and types inside the Secret
        secret(&format!("stringData: {SECRET_VALUE}")),
        secret(&format!("data: {SECRET_VALUE}")),
        secret(&format!("stringData:\n  apiKey: [{SECRET_VALUE}]")),
        secret("stringData:\n  apiKey: 4242424242"),
        secret(&format!("data:\n  apiKey: \"{SECRET_VALUE}!!\"")),
        secret(&format!(
            "stringData:\n  apiKey: {SECRET_VALUE}\nextra: {SECRET_VALUE}"
        )),
        // a YAML syntax error inside the Secret
        secret(&format!(
            "stringData:\n  apiKey: \"{SECRET_VALUE}\n  other: ["
        )),
    ];
    for yaml in cases {
        let err = load_yaml(&with_api_key(&yaml)).expect_err("must fail");
        let (shown, dbg) = (err.to_string(), format!("{err:?}"));
        assert!(
            !shown.contains(SECRET_VALUE) && !shown.contains("4242424242"),
            "leak: {shown}"
        );
        assert!(
            !dbg.contains(SECRET_VALUE) && !dbg.contains("4242424242"),
            "leak in Debug: {dbg}"
        );
    }
}

fn with_policy(policy_spec: &str, secret_doc: &str) -> String {
    with_api_key(secret_doc)
        .replace(
            "  type: APIKey\n  targetRefs:",
            &format!("{policy_spec}  targetRefs:"),
        )
        .replace("  apiKey:\n    secretRef:\n      name: s\n", "")
}

#[test]
fn aws_credentials_resolve_from_a_credentials_file_profile() {
    let file = format!("# comment\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = nope\n\n[test]\naws_access_key_id=AKIDTEST\naws_secret_access_key = {SECRET_VALUE}\naws_session_token = tok\n");
    let secret = format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: aws\nstringData:\n  credentials: |\n{}",
            file.lines().map(|l| format!("    {l}\n")).collect::<String>()
        );
    let policy = "  type: AWSCredentials\n  awsCredentials:\n    region: eu-west-3\n    credentialsFile:\n      secretRef:\n        name: aws\n      profile: test\n";
    let cfg = load_ok(&with_policy(policy, &secret));
    match &cfg.backends["default/be"].auth {
        Some(BackendAuth::AwsCredentials {
            source: AwsSource::Keys(keys),
            region,
            policy,
        }) => {
            assert_eq!(keys.access_key_id.expose(), "AKIDTEST");
            assert_eq!(keys.secret_access_key.expose(), SECRET_VALUE);
            assert_eq!(
                keys.session_token.as_ref().map(SecretString::expose),
                Some("tok")
            );
            assert_eq!(region.as_deref(), Some("eu-west-3"));
            assert_eq!(policy, "default/key");
            assert!(!format!("{keys:?}").contains(SECRET_VALUE));
        }
        other => panic!("expected AwsCredentials, got {other:?}"),
    }
    // A profile the file lacks: 401 at request time, with a reason that names no value.
    let cfg = load_ok(&with_policy(
        &policy.replace("profile: test", "profile: other"),
        &secret,
    ));
    match &cfg.backends["default/be"].auth {
        Some(BackendAuth::Unavailable { reason, .. }) => {
            assert!(reason.contains("no profile [other]"), "{reason}");
            assert!(!reason.contains(SECRET_VALUE));
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[test]
fn azure_and_anthropic_keys_resolve() {
    let secret = format!("---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  apiKey: {SECRET_VALUE}\n");
    let azure = "  type: AzureAPIKey\n  azureAPIKey:\n    secretRef:\n      name: s\n";
    match &load_ok(&with_policy(azure, &secret)).backends["default/be"].auth {
        Some(BackendAuth::AzureApiKey { key, .. }) => assert_eq!(key.expose(), SECRET_VALUE),
        other => panic!("expected AzureApiKey, got {other:?}"),
    }
    let anthropic = "  type: AnthropicAPIKey\n  anthropicAPIKey:\n    secretRef:\n      name: s\n";
    match &load_ok(&with_policy(anthropic, &secret)).backends["default/be"].auth {
        Some(BackendAuth::AnthropicApiKey { key, .. }) => {
            assert_eq!(key.expose(), SECRET_VALUE)
        }
        other => panic!("expected AnthropicApiKey, got {other:?}"),
    }
}

/// A Secret holding a service account key file under `service_account.json`, as upstream stores it.
fn gcp_secret(key_file: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: sa\nstringData:\n  service_account.json: |\n    {}\n",
        key_file
    )
}

const GCP_POLICY: &str = "  type: GCPCredentials\n  gcpCredentials:\n    projectName: proj-1\n    region: us-east5\n    credentialsFile:\n      secretRef:\n        name: sa\n";

#[test]
fn gcp_credentials_resolve_a_service_account_key_file() {
    let key = crate::credentials::google::tests::key_file("https://oauth2.googleapis.com/token");
    let cfg = load_ok(&with_policy(GCP_POLICY, &gcp_secret(&key)));
    match &cfg.backends["default/be"].auth {
        Some(BackendAuth::GcpCredentials {
            project,
            region,
            source: GcpSource::ServiceAccount(account),
            policy,
        }) => {
            assert_eq!((project.as_str(), region.as_str()), ("proj-1", "us-east5"));
            assert_eq!(
                account.client_email,
                "gateway@test-project.iam.gserviceaccount.com"
            );
            assert_eq!(account.token_uri, "https://oauth2.googleapis.com/token");
            assert_eq!(policy, "default/key");
        }
        other => panic!("expected GcpCredentials, got {other:?}"),
    }
    let shown = format!("{:?}{}", cfg, render_routing_table_for_test(&cfg));
    assert!(!shown.contains("PRIVATE KEY"), "key material shown");
}

#[test]
fn gcp_credentials_errors_name_the_field_and_never_the_key() {
    let key = crate::credentials::google::tests::key_file("https://oauth2.googleapis.com/token");
    for (name, policy, secret, want) in [
        (
            "no project",
            GCP_POLICY.replace("projectName: proj-1", "projectName: \"\""),
            gcp_secret(&key),
            "spec.gcpCredentials.projectName: required",
        ),
        (
            "no region",
            GCP_POLICY.replace("    region: us-east5\n", ""),
            gcp_secret(&key),
            "spec.gcpCredentials.region: required",
        ),
        (
            "no secret",
            GCP_POLICY.to_owned(),
            String::new(),
            "spec.gcpCredentials.credentialsFile.secretRef.name: no Secret named \"sa\"",
        ),
        (
            "wrong secret key",
            GCP_POLICY.to_owned(),
            gcp_secret(&key).replace("service_account.json", "key.json"),
            "has no key service_account.json",
        ),
        (
            "both sources",
            format!("{GCP_POLICY}{GCP_WIF}"),
            format!("{}{OIDC_SECRET}", gcp_secret(&key)),
            "at most one of credentialsFile and workloadIdentityFederationConfig",
        ),
        (
            "unknown field",
            format!("{GCP_POLICY}    zone: x\n"),
            gcp_secret(&key),
            "zone",
        ),
    ] {
        let err = load_err(&with_policy(&policy, &secret));
        assert!(err.contains(want), "{name}: {err}");
        assert!(
            err.contains("BackendSecurityPolicy/default/key"),
            "{name}: {err}"
        );
        assert!(
            !err.contains("PRIVATE KEY") && !err.contains("MII"),
            "{name}: key in {err}"
        );
    }
}

/// A `workloadIdentityFederationConfig` as upstream's CRD spells it (under `gcpCredentials`).
const GCP_WIF: &str = "    workloadIdentityFederationConfig:\n      projectID: wif-proj\n      workloadIdentityPoolName: pool-1\n      workloadIdentityProviderName: prov-1\n      serviceAccountImpersonation:\n        serviceAccountName: vertex-caller\n      oidcExchangeToken:\n        aud: ignored\n        oidc:\n          provider:\n            issuer: https://idp.example.com\n          clientID: c1\n          clientSecret:\n            name: oidc\n          redirectURL: https://x/cb\n";
const GCP_NO_FILE: &str =
    "  type: GCPCredentials\n  gcpCredentials:\n    projectName: proj-1\n    region: us-east5\n";

#[test]
fn gcp_workload_identity_federation_resolves_audience_client_and_account() {
    let cfg = load_ok(&with_policy(
        &format!("{GCP_NO_FILE}{GCP_WIF}"),
        OIDC_SECRET,
    ));
    match &cfg.backends["default/be"].auth {
        Some(BackendAuth::GcpCredentials {
            source: GcpSource::Federation(f),
            project,
            ..
        }) => {
            assert_eq!(project, "proj-1");
            assert_eq!(
                f.audience,
                "//iam.googleapis.com/projects/wif-proj/locations/global/workloadIdentityPools/pool-1/providers/prov-1"
            );
            // Upstream's email: the name at the policy's projectName.
            assert_eq!(
                f.impersonate.as_deref(),
                Some("vertex-caller@proj-1.iam.gserviceaccount.com")
            );
            assert_eq!(f.oidc.client_id, "c1");
            assert_eq!(f.oidc.client_secret.expose(), SECRET_VALUE);
        }
        other => panic!("expected federation, got {other:?}"),
    }
    let warned = cfg.warnings.join("\n");
    for field in ["oidcExchangeToken.aud", "oidc.redirectURL"] {
        assert!(warned.contains(field), "{field} not warned: {warned}");
    }
    let shown = format!("{:?}{}", cfg, render_routing_table_for_test(&cfg));
    assert!(!shown.contains(SECRET_VALUE), "client secret shown");
    assert!(shown.contains("exchanged at Google STS"), "{shown}");
    // No impersonation: the STS token is used as is; an email is kept as given.
    for (edit, want) in [
        (
            GCP_WIF.replace(
                "      serviceAccountImpersonation:\n        serviceAccountName: vertex-caller\n",
                "",
            ),
            None,
        ),
        (
            GCP_WIF.replace("vertex-caller", "sa@other.iam.gserviceaccount.com"),
            Some("sa@other.iam.gserviceaccount.com"),
        ),
    ] {
        let cfg = load_ok(&with_policy(&format!("{GCP_NO_FILE}{edit}"), OIDC_SECRET));
        match &cfg.backends["default/be"].auth {
            Some(BackendAuth::GcpCredentials {
                source: GcpSource::Federation(f),
                ..
            }) => assert_eq!(f.impersonate.as_deref(), want),
            other => panic!("expected federation, got {other:?}"),
        }
    }
    // Refusals name the field, never the secret.
    for (name, edit, want) in [
        (
            "no pool",
            GCP_WIF.replace("      workloadIdentityPoolName: pool-1\n", ""),
            "workloadIdentityFederationConfig.workloadIdentityPoolName: required",
        ),
        (
            "a slash in the provider",
            GCP_WIF.replace("prov-1", "a/b"),
            "workloadIdentityFederationConfig.workloadIdentityProviderName",
        ),
        (
            "empty account name",
            GCP_WIF.replace("vertex-caller", "\"\""),
            "serviceAccountImpersonation.serviceAccountName: required",
        ),
        (
            "no oidcExchangeToken",
            GCP_WIF
                .split("      oidcExchangeToken:")
                .next()
                .unwrap_or_default()
                .to_owned(),
            "oidcExchangeToken",
        ),
        (
            "not an http issuer",
            GCP_WIF.replace("https://idp.example.com", "idp.example.com"),
            "oidcExchangeToken.oidc.provider.issuer: must be an http(s) URL",
        ),
        (
            "an unknown field",
            GCP_WIF.replace(
                "projectID: wif-proj",
                "projectID: wif-proj\n      projectNumber: 1",
            ),
            "projectNumber",
        ),
        (
            "an AWS field",
            GCP_WIF.replace(
                "        aud: ignored\n",
                "        awsRoleArn: arn:aws:iam::1:role/r\n",
            ),
            "oidcExchangeToken.awsRoleArn",
        ),
    ] {
        let err = load_err(&with_policy(&format!("{GCP_NO_FILE}{edit}"), OIDC_SECRET));
        assert!(err.contains(want), "{name}: {err}");
        assert!(
            err.contains("BackendSecurityPolicy/default/key"),
            "{name}: {err}"
        );
        assert!(!err.contains(SECRET_VALUE), "{name}: secret in {err}");
    }
}

#[test]
fn gcp_credentials_without_a_source_use_application_default_credentials() {
    let cfg = load_ok(&with_policy(GCP_NO_FILE, ""));
    assert!(
        matches!(
            &cfg.backends["default/be"].auth,
            Some(BackendAuth::GcpCredentials {
                source: GcpSource::ApplicationDefault,
                ..
            })
        ),
        "{:?}",
        cfg.backends["default/be"].auth
    );
    assert!(render_routing_table_for_test(&cfg).contains("Application Default Credentials"));
}

#[test]
fn unusable_gcp_keys_answer_401_naming_why() {
    let key = crate::credentials::google::tests::key_file("https://oauth2.googleapis.com/token");
    let broken = gcp_secret(&key.replace("MII", "XXX"));
    let placeholder = gcp_secret(r#"{"type": "service_account"}"#);
    for (policy, secret, want) in [
        (
            GCP_POLICY,
            broken.as_str(),
            "Secret default/sa key service_account.json: private_key is not an RSA private key",
        ),
        (
            GCP_POLICY,
            placeholder.as_str(),
            "Secret default/sa key service_account.json: the key file has no client_email",
        ),
    ] {
        let cfg = load_ok(&with_policy(policy, secret));
        assert!(
            cfg.warnings.iter().any(|w| w.contains(want)),
            "{:?}",
            cfg.warnings
        );
        assert!(
            !format!("{:?}", cfg.warnings).contains("MII"),
            "key material in a warning"
        );
        match &cfg.backends["default/be"].auth {
            Some(BackendAuth::Unavailable { reason, policy }) => {
                assert!(reason.contains(want), "{reason}");
                assert_eq!(policy, "default/key");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
}

#[test]
fn aws_credentials_without_a_file_use_the_default_chain() {
    let policy = "  type: AWSCredentials\n  awsCredentials:\n    region: us-east-1\n";
    let cfg = load_ok(&with_policy(policy, ""));
    assert!(matches!(
        &cfg.backends["default/be"].auth,
        Some(BackendAuth::AwsCredentials { source: AwsSource::DefaultChain, region: Some(r), .. }) if r == "us-east-1"
    ));
}

const OIDC_SECRET: &str = "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: oidc\nstringData:\n  client-secret: sk-very-secret-4242\n  client-id: from-secret\n";

#[test]
fn aws_oidc_exchange_resolves_its_client_and_ignores_browser_settings() {
    let policy = "  type: AWSCredentials\n  awsCredentials:\n    region: us-east-1\n    oidcExchangeToken:\n      awsRoleArn: arn:aws:iam::123456789012:role/r\n      aud: sts.amazonaws.com\n      oidc:\n        provider:\n          issuer: https://idp.example.com/\n          tokenEndpoint: https://idp.example.com/token\n        clientID: c1\n        clientSecret:\n          name: oidc\n        scopes: [a, b]\n        redirectURL: https://x/cb\n        logoutPath: /logout\n";
    let cfg = load_ok(&with_policy(policy, OIDC_SECRET));
    match &cfg.backends["default/be"].auth {
        Some(BackendAuth::AwsCredentials {
            source: AwsSource::OidcExchange { oidc, role_arn },
            ..
        }) => {
            assert_eq!(role_arn, "arn:aws:iam::123456789012:role/r");
            assert_eq!(oidc.issuer, "https://idp.example.com");
            assert_eq!(
                oidc.token_endpoint.as_deref(),
                Some("https://idp.example.com/token")
            );
            assert_eq!(oidc.client_id, "c1");
            assert_eq!(oidc.client_secret.expose(), SECRET_VALUE);
            assert_eq!(oidc.scopes, ["a", "b"]);
        }
        other => panic!("expected an OIDC exchange, got {other:?}"),
    }
    let warned = cfg.warnings.join("\n");
    for field in [
        "oidcExchangeToken.aud",
        "oidc.redirectURL",
        "oidc.logoutPath",
    ] {
        assert!(warned.contains(field), "{field} not warned: {warned}");
    }
    assert!(!warned.contains("plain HTTP"), "{warned}");
    // A plain-HTTP provider off loopback is accepted with a warning; on loopback silently.
    for (endpoint, warns) in [
        ("http://idp.example.com/token", true),
        ("http://127.0.0.1:9/token", false),
    ] {
        let p = policy.replace("https://idp.example.com/token", endpoint);
        let warned = load_ok(&with_policy(&p, OIDC_SECRET)).warnings.join("\n");
        assert_eq!(warned.contains("plain HTTP"), warns, "{endpoint}: {warned}");
    }
    // Refusals name the field.
    for (edit, field) in [
        (
            policy.replace("      awsRoleArn: arn:aws:iam::123456789012:role/r\n", ""),
            "awsRoleArn",
        ),
        (
            policy.replace("clientID: c1", "clientIDRef:\n          name: nope"),
            "clientIDRef.name",
        ),
        (
            policy.replace(
                "issuer: https://idp.example.com/",
                "issuer: idp.example.com",
            ),
            "provider.issuer",
        ),
        (
            policy.replace("aud: sts.amazonaws.com", "grantType: authorization_code"),
            "grantType",
        ),
    ] {
        let err = load_yaml(&with_policy(&edit, OIDC_SECRET))
            .expect_err(field)
            .to_string();
        assert!(err.contains(field), "{field}: {err}");
        assert!(!err.contains(SECRET_VALUE), "leak: {err}");
    }
}

#[test]
fn azure_credentials_with_a_client_secret_or_oidc_federation() {
    let secret = "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: az\nstringData:\n  client-secret: sk-very-secret-4242\n";
    let policy = "  type: AzureCredentials\n  azureCredentials:\n    clientID: app\n    tenantID: tenant\n    clientSecretRef:\n      name: az\n";
    match &load_ok(&with_policy(policy, secret)).backends["default/be"].auth {
        Some(BackendAuth::AzureCredentials {
            client_id,
            tenant_id,
            secret: AzureSecret::ClientSecret(s),
            ..
        }) => {
            assert_eq!(
                (client_id.as_str(), tenant_id.as_str(), s.expose()),
                ("app", "tenant", SECRET_VALUE)
            );
        }
        other => panic!("expected a client secret, got {other:?}"),
    }
    let federated = "  type: AzureCredentials\n  azureCredentials:\n    clientID: app\n    tenantID: tenant\n    oidcExchangeToken:\n      oidc:\n        provider:\n          issuer: https://idp.example.com\n        clientIDRef:\n          name: oidc\n        clientSecret:\n          name: oidc\n";
    match &load_ok(&with_policy(federated, OIDC_SECRET)).backends["default/be"].auth {
        Some(BackendAuth::AzureCredentials {
            secret: AzureSecret::Oidc(o),
            ..
        }) => {
            assert_eq!(o.client_id, "from-secret");
            assert_eq!(o.token_endpoint, None);
        }
        other => panic!("expected OIDC federation, got {other:?}"),
    }
    // Neither, or both: an error naming the field.
    let neither =
        "  type: AzureCredentials\n  azureCredentials:\n    clientID: app\n    tenantID: tenant\n";
    let err = load_yaml(&with_policy(neither, secret))
        .expect_err("neither")
        .to_string();
    assert!(
        err.contains("spec.azureCredentials") && err.contains("exactly one"),
        "{err}"
    );
    let shown = format!(
        "{:?}",
        load_ok(&with_policy(policy, secret)).backends["default/be"].auth
    );
    assert!(!shown.contains(SECRET_VALUE), "leak in Debug: {shown}");
}

#[test]
fn base64_decodes_like_kubernetes_data() {
    let cases: [(&str, Option<&[u8]>); 6] = [
        ("", Some(b"")),
        ("YQ==", Some(b"a")),
        ("YWI=", Some(b"ab")),
        ("YWJj", Some(b"abc")),
        ("YWJj\nZA==", Some(b"abcd")),
        ("Y*==", None),
    ];
    for (input, want) in cases {
        assert_eq!(
            crate::config::load::security::decode_base64(input).as_deref(),
            want,
            "{input}"
        );
    }
}

/// Issue 18: a key holding CR/LF (or another byte a header cannot carry) fails the load — so `validate`
/// and a reload both refuse it — naming the policy and Secret, never the key; a trailing newline alone
/// is still trimmed.
#[test]
fn api_keys_a_header_cannot_carry_fail_naming_the_secret_not_the_key() {
    // base64 of "sk-very-secret-4242\r\nX-Evil: 1", and of it with a DEL byte (0x7f) inside.
    for data in [
        "stringData:\n  apiKey: \"sk-very-secret-4242\\r\\nX-Evil: 1\"",
        "data:\n  apiKey: c2stdmVyeS1zZWNyZXQtNDI0Mg0KWC1FdmlsOiAx",
        "data:\n  apiKey: c2stdmVyeS1zZWNyZXQtNDI0Mn8=",
    ] {
        let err = load_err(&with_api_key(&format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n{data}\n"
        )));
        assert!(
            err.contains("BackendSecurityPolicy/default/key: spec.apiKey.secretRef.name: Secret default/s key apiKey holds a character an HTTP header value cannot carry"),
            "{data}: {err}"
        );
        assert!(!err.contains("sk-very"), "{data}: the key leaked: {err}");
    }
}

#[test]
fn gcp_schemas_without_a_gcp_policy_are_warned_about() {
    let key = crate::credentials::google::tests::key_file("https://oauth2.googleapis.com/token");
    let needs = "needs a GCPCredentials BackendSecurityPolicy";
    for schema in ["GCPVertexAI", "GCPAnthropic"] {
        let gcp = |yaml: String| {
            yaml.replace(
                "    name: OpenAI\n  backendRef:",
                &format!("    name: {schema}\n  backendRef:"),
            )
        };
        let cfg = load_ok(&gcp(with_api_key(
            "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  apiKey: k\n",
        )));
        assert!(
            cfg.warnings
                .iter()
                .any(|w| w.contains(needs) && w.contains(schema)),
            "{schema}: {:?}",
            cfg.warnings
        );
        let cfg = load_ok(&gcp(with_policy(GCP_POLICY, &gcp_secret(&key))));
        assert!(
            !cfg.warnings.iter().any(|w| w.contains(needs)),
            "{schema}: {:?}",
            cfg.warnings
        );
    }
}
