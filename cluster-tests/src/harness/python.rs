//! The Python the official-client tests run: `target/openai-venv` with the `openai` and `anthropic`
//! packages and the providers' published definitions (`botocore`, `google-api-python-client`, `cohere`),
//! made (once, under a lock) by `scripts/openai-venv.sh`, which `.ci/run` also calls.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::repo_root;

/// The venv's interpreter, creating the venv first if needed. Panics with the script's output when it
/// cannot be made (python3 with venv and PyPI access are needed).
pub fn venv_python() -> PathBuf {
    let out = Command::new(repo_root().join("scripts/openai-venv.sh"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/openai-venv.sh: {e}"));
    assert!(
        out.status.success(),
        "scripts/openai-venv.sh failed (needs python3 with venv and PyPI access):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    repo_root().join(String::from_utf8_lossy(&out.stdout).trim())
}

/// Runs `script` of `cluster-tests/tests/` under the venv's `python` with `args` (killed if the test ends
/// first): its stdout when it exits 0; otherwise an error with its stdout, stderr and `logs` (the
/// gateway's).
pub async fn run_client_script(
    python: &Path,
    script: &str,
    args: &[&str],
    logs: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    let out = tokio::process::Command::new(python)
        .arg(repo_root().join("cluster-tests/tests").join(script))
        .args(args)
        .kill_on_drop(true)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(
        out.status.success(),
        "{script} {args:?} failed:\n{stdout}\n{}\n--- gateway ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
    Ok(stdout)
}

/// Runs an agent-loop script (`openai_client_agent.py`, `openai_client_thinking.py`) with the official
/// client against the gateway at `base_url`, for `model`, labelled `label`: both its loops (streamed and
/// not) must end with the answer built from the two tool results. Its stdout.
pub async fn run_agent_loop(
    python: &Path,
    script: &str,
    base_url: &str,
    model: &str,
    label: &str,
    logs: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    let stdout = run_client_script(python, script, &[base_url, model, label], logs).await?;
    for stream in ["False", "True"] {
        anyhow::ensure!(
            stdout.contains(&format!(
                "{label} stream={stream} answer: tool said: get_weather ok; get_time ok"
            )),
            "{stdout}"
        );
    }
    Ok(stdout)
}
