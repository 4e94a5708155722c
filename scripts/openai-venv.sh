#!/usr/bin/env bash
# Creates target/openai-venv with the official `openai` Python package (used by the real-client tests).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/openai-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import openai' 2>/dev/null; then
  mkdir -p target
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'openai>=1.40,<3'
fi
echo "$venv/bin/python"
