#!/usr/bin/env bash
# Creates target/openai-venv with the official `openai` and `anthropic` Python packages (used by the
# real-client tests) and the providers' published definitions the mocks check requests against:
# botocore (the bedrock-runtime service model, for the Bedrock mock), google-api-python-client (Vertex AI's
# discovery document aiplatform.v1.json, for the Gemini mock) and cohere (the official SDK's v2 chat types,
# turned into a JSON schema by cluster-tests/tests/cohere_schema.py, for the Cohere mock).
# A venv that lacks any of them (an older one) is rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/openai-venv
mkdir -p target
# Two tests may ask for the venv at once on a fresh machine: one creates it, the other waits for it.
exec 9>target/openai-venv.lock
flock 9
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import openai, anthropic, botocore, googleapiclient, cohere' 2>/dev/null; then
  python3 -m venv --clear "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'openai>=1.40,<3' 'anthropic>=0.40' 'botocore>=1.40' \
    'google-api-python-client>=2.100' 'cohere>=5.15,<6'
fi
echo "$venv/bin/python"
