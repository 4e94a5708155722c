# Thin aliases over cargo and scripts. `just --list` shows them.

# Run one node on the local example with mock providers (the single-node demo; = cargo run --release -p switchyard-cluster-tests --bin local-demo).
run:
    cargo run --release -p switchyard-cluster-tests --bin local-demo

# Every test (the README's test command).
test:
    cargo test --workspace

# Format and lint as CI expects.
fmt:
    cargo fmt --all

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Validate a config and print the effective routing table.
validate config="deploy/examples/provider-fallback.yaml":
    cargo run -q -p switchyard -- validate --config {{config}}

# Install test prerequisites (what .ci/run does before testing; root, Debian).
setup:
    ./scripts/setup.sh

# The container image, offline with buildah (localhost/switchyard:VERSION and target/image/oci).
image:
    ./scripts/build-image.sh

# N nodes on loopback behind a real HAProxy with mock providers (needs `haproxy`; Ctrl-C stops everything).
cluster n="3":
    cargo run -p switchyard-cluster-tests --bin local-cluster -- {{n}}

# Benchmarks (docs/BENCHMARKS.md): direct vs nginx vs Switchyard (1 worker thread and default), then
# failover on 1 node and 3-node clusters with sharing on/off. Installs nginx (apt-get) and oha (cargo
# install) when missing. Quick run: `just bench --quick`. Not part of `cargo test`.
bench *args:
    cargo build --release -p switchyard -p switchyard-cluster-tests --bin switchyard --bin mock-provider --bin bench
    target/release/bench {{args}}
