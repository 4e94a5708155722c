# syntax=docker/dockerfile:1
# The Switchyard node image, for hosts that can pull base images (a workstation, a CI with registry access):
#   docker build -t switchyard:0.1.0 .        (or: buildah bud -t switchyard:0.1.0 .)
# Offline hosts build the same layout without any base image with scripts/build-image.sh, which is what CI
# runs and what cluster-tests/tests/image.rs starts and checks. Both images: the stripped `switchyard`
# binary as entrypoint, glibc and libgcc only, CA certificates, user 65532 (what deploy/kubernetes runs
# as), ports 8080/tcp (clients), 9901/tcp (admin: /readyz, /metrics), 7946/udp (gossip).

# Build stage: a release build of the gateway only. The cargo registry and target directory are cache
# mounts, so a rebuild after a source change recompiles the workspace crates, not the dependencies.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p switchyard \
    && objcopy --strip-debug target/release/switchyard /switchyard

# Runtime stage: distroless "cc" is glibc + libgcc + CA certificates + /etc/passwd with nonroot (65532), and
# nothing else (no shell, no package manager). Debian 12 matches the build stage's glibc.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /switchyard /usr/local/bin/switchyard
USER 65532:65532
# The admin port binds 127.0.0.1 unless SWITCHYARD_ADMIN says otherwise (the Kubernetes manifests set
# 0.0.0.0:9901 so the kubelet's probes reach it); gossip is used only with --cluster/--seeds.
EXPOSE 8080/tcp 9901/tcp 7946/udp
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/switchyard"]
CMD ["run"]
