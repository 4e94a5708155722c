//! A real client: the official `openai` Python package completes a chat request and a streaming request
//! through the gateway, and reads the gateway's own error JSON as the SDK's typed error.
//!
//! The package lives in `target/openai-venv`, made by `scripts/openai-venv.sh` (which `.ci/run` calls; this
//! test calls it too when the venv is missing, so `cargo test` works on a fresh machine with PyPI access).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use switchyard_cluster_tests::harness::{
    fallback_config, MockProvider, SwitchyardNode, SEED_POLICY,
};

const MODEL: &str = "us.meta.llama3-2-1b-instruct-v1:0";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".."))
}

fn python() -> PathBuf {
    let out = Command::new(repo_root().join("scripts/openai-venv.sh"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/openai-venv.sh: {e}"));
    assert!(
        out.status.success(),
        "scripts/openai-venv.sh failed (needs python3 with venv and PyPI access):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    repo_root().join(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_python_client_chats_and_streams_through_the_gateway() {
    let python = tokio::task::spawn_blocking(python)
        .await
        .expect("venv task");
    let result = tokio::time::timeout(Duration::from_secs(120), async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        primary
            .set_mode(serde_json::json!({"mode": "status", "status": 500}))
            .await?;
        let node = SwitchyardNode::start(&fallback_config(
            MODEL,
            primary.data_addr,
            fallback.data_addr,
            SEED_POLICY,
        ))
        .await?;
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openai_client.py");
        let out = tokio::process::Command::new(&python)
            .arg(&script)
            .arg(node.url("/v1"))
            .arg(MODEL)
            .kill_on_drop(true)
            .output()
            .await?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        anyhow::ensure!(
            out.status.success(),
            "python client failed:\n{stdout}\n{}\n--- gateway ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            node.logs()
        );
        anyhow::ensure!(stdout.contains("chat: hello from fallback"), "{stdout}");
        anyhow::ensure!(stdout.contains("stream: "), "{stdout}");
        anyhow::ensure!(stdout.contains("not found: 404"), "{stdout}");
        // The client's own key never reaches a provider.
        for r in fallback.requests().await? {
            let auth = r.headers.get("authorization").cloned().unwrap_or_default();
            anyhow::ensure!(
                !auth.contains("client-key-not-forwarded"),
                "client credential leaked upstream"
            );
        }
        Ok(())
    })
    .await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e:#}"),
        Err(_) => panic!("test exceeded its time bound"),
    }
}
