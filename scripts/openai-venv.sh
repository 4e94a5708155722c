#!/usr/bin/env bash
# Creates target/openai-venv with the official `openai` and `anthropic` Python packages (used by the
# real-client tests) and
# botocore (whose bedrock-runtime service model the Bedrock mock checks requests against).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/openai-venv
mkdir -p target
# Two tests may ask for the venv at once on a fresh machine: one creates it, the other waits for it.
exec 9>target/openai-venv.lock
flock 9
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import openai, anthropic, botocore' 2>/dev/null; then
  python3 -m venv --clear "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'openai>=1.40,<3' 'anthropic>=0.40' 'botocore>=1.40'
fi
echo "$venv/bin/python"
