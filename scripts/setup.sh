#!/usr/bin/env bash
# Installs everything `cargo test --workspace` and the README's commands need on a fresh Debian machine, as
# root; .ci/run calls it before testing, and a developer runs it once (README, first lines). Idempotent.
#
#   python3-venv     the official-client tests and the providers' published definitions the mocks check
#                    against (scripts/openai-venv.sh builds the venv)
#   haproxy          the L4 load-balancer tests (cluster-tests/tests/lb.rs, deploy.rs) and `just cluster`
#   iptables         partition tests (cluster-tests/tests/cluster.rs)
#   faketime         the clock-skew test
#   buildah          the offline container image (scripts/build-image.sh, cluster-tests/tests/image.rs)
#   binutils         objcopy, to strip the binary for the image
#   prometheus       promtool: `check rules` / `test rules` on deploy/prometheus (cluster-tests/tests/observability.rs)
#   kubernetes-client  kubectl, for `kubectl kustomize deploy/kubernetes` (only when no kubectl is installed)
#   just             the justfile's aliases (`cargo install just --locked`; crates.io, not a Debian package)
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  packages=(python3-venv ca-certificates haproxy iptables faketime buildah binutils prometheus)
  if ! command -v kubectl >/dev/null; then
    packages+=(kubernetes-client)
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
else
  echo "setup.sh: no apt-get; install by hand: ${0##*/} lists the packages" >&2
fi

# The official OpenAI/Anthropic Python clients (the real-client tests) and botocore,
# google-api-python-client and cohere (the Bedrock, Gemini and Cohere mocks' definitions); the tests build
# this venv themselves when it is missing or old; doing it here keeps the install out of their time budget.
./scripts/openai-venv.sh >/dev/null

if ! command -v just >/dev/null; then
  cargo install just --locked
fi
