//! Backend TLS: BackendTLSPolicy server names and CAs.

use super::*;

#[test]
fn backend_tls_policy_sets_server_name_and_ca() {
    let pem = "-----BEGIN CERTIFICATE-----\\n  MIIB\\n  -----END CERTIFICATE-----";
    let yaml = format!(
        "{ROUTE}{BACKEND}
---
apiVersion: gateway.networking.k8s.io/v1alpha3
kind: BackendTLSPolicy
metadata:
  name: tls
spec:
  targetRefs:
    - group: gateway.envoyproxy.io
      kind: Backend
      name: b
  validation:
    hostname: internal.example
    caCertificateRefs:
      - group: \"\"
        kind: ConfigMap
        name: ca
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: ca
data:
  ca.crt: \"{pem}\"
"
    );
    let cfg = load_ok(&yaml);
    let tls = cfg.backends["default/b"].tls.as_ref().expect("tls");
    assert_eq!(tls.server_name.as_deref(), Some("internal.example"));
    assert!(tls
        .ca_pem
        .as_deref()
        .is_some_and(|p| p.contains("BEGIN CERTIFICATE")));
    assert_eq!(tls.ca_source.as_deref(), Some("ConfigMap default/ca"));

    let system = yaml.replace(
        "    caCertificateRefs:\n      - group: \"\"\n        kind: ConfigMap\n        name: ca\n",
        "    wellKnownCACertificates: System\n",
    );
    let cfg = load_ok(&system.replace(
        "apiVersion: gateway.networking.k8s.io/v1alpha3",
        "apiVersion: gateway.networking.k8s.io/v1",
    ));
    let tls = cfg.backends["default/b"].tls.as_ref().expect("tls");
    assert_eq!(
        (tls.server_name.as_deref(), tls.ca_pem.as_deref()),
        (Some("internal.example"), None)
    );

    let err = load_err(&yaml.replace("name: ca\ndata", "name: other\ndata"));
    assert!(
        err.contains("BackendTLSPolicy/default/tls")
            && err.contains("spec.validation.caCertificateRefs[0].name"),
        "{err}"
    );
}
