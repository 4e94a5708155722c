//! The providers' published definitions that the mocks check requests against, taken from the test
//! venv (`scripts/openai-venv.sh`): botocore's bedrock-runtime service model, Vertex AI's discovery
//! document as google-api-python-client ships it, and Cohere's v2 Chat schema as `cluster-tests/tests/cohere_schema.py` derives it from the official
//! `cohere` SDK. A test that starts a Vertex or Cohere mock starts it with [`MockProvider::start_checked`]
//! so that a translation the provider would refuse fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::{repo_root, venv_python, MockOptions, MockProvider};

/// botocore's bedrock-runtime service model (`service-2.json`), written out by botocore's own loader from
/// the venv, once per test process. It is written under a temporary name and renamed, so that test
/// binaries running at once never read a half-written file.
pub fn bedrock_service_model(python: &Path) -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = repo_root().join("target/bedrock-runtime-service-2.json");
        let partial = path.with_extension(format!("json.{}", std::process::id()));
        let out = Command::new(python)
            .args([
                "-c",
                "import json, sys, botocore.session\n\
                 loader = botocore.session.get_session().get_component('data_loader')\n\
                 json.dump(loader.load_service_model('bedrock-runtime', 'service-2'), open(sys.argv[1], 'w'))",
            ])
            .arg(&partial)
            .output()
            .unwrap_or_else(|e| panic!("cannot run the venv's python: {e}"));
        assert!(
            out.status.success(),
            "botocore could not load the bedrock-runtime model:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::rename(&partial, &path)
            .unwrap_or_else(|e| panic!("cannot move {} into place: {e}", partial.display()));
        path
    })
    .clone()
}

/// `aiplatform.v1.json` inside the venv's google-api-python-client.
pub fn vertex_discovery(python: &Path) -> PathBuf {
    let out = Command::new(python)
        .args([
            "-c",
            "import os, googleapiclient\n\
             print(os.path.join(os.path.dirname(googleapiclient.__file__),\
             'discovery_cache', 'documents', 'aiplatform.v1.json'))",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run the venv's python: {e}"));
    assert!(
        out.status.success(),
        "google-api-python-client is not in the venv:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(path.is_file(), "{} does not exist", path.display());
    path
}

/// Cohere's v2 Chat schema, written by `cohere_schema.py` from the venv's `cohere` SDK.
pub fn cohere_schema(python: &Path) -> PathBuf {
    let path = repo_root().join("target/cohere-v2-chat.schema.json");
    let script = repo_root().join("cluster-tests/tests/cohere_schema.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the venv's python: {e}"));
    assert!(
        out.status.success(),
        "cohere_schema.py could not derive the schema from the cohere SDK:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// The mock-provider flags that hand it both definitions (made once per test process).
pub fn definition_args() -> Vec<String> {
    static ARGS: OnceLock<Vec<String>> = OnceLock::new();
    ARGS.get_or_init(|| {
        let python = venv_python();
        vec![
            "--vertex-discovery".to_owned(),
            vertex_discovery(&python).display().to_string(),
            "--cohere-schema".to_owned(),
            cohere_schema(&python).display().to_string(),
        ]
    })
    .clone()
}

impl MockProvider {
    /// Starts a provider named `name` that checks Gemini and Cohere requests against the providers'
    /// published definitions.
    pub async fn start_checked(name: &str) -> anyhow::Result<MockProvider> {
        let extra_args = tokio::task::spawn_blocking(definition_args).await?;
        MockProvider::start_with(MockOptions {
            name: Some(name.to_owned()),
            extra_args,
            ..MockOptions::default()
        })
        .await
    }
}
