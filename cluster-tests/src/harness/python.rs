//! The Python the official-client tests run: `target/openai-venv` with the `openai` and `anthropic`
//! packages and the providers' published definitions (`botocore`, `google-api-python-client`, `cohere`),
//! made (once, under a lock) by `scripts/openai-venv.sh`, which `.ci/run` also calls.

use std::path::PathBuf;
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
