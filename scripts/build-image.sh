#!/usr/bin/env bash
# Builds the Switchyard container image OFFLINE with Debian's buildah: no base image is pulled. The image is
# `scratch` plus exactly what the binary needs at run time (the shared libraries `ldd` names, with their
# loader), CA certificates, a passwd/group naming the non-root user 65532 the Kubernetes manifests run as,
# and /tmp. The Dockerfile at the repository root builds the same layout from a registry base image; this
# script is the one that works on machines without registry access (CI, air-gapped build hosts).
#
#   scripts/build-image.sh                          # image from target/release/switchyard (cargo build --release first)
#   scripts/build-image.sh --binary PATH            # from another build of the binary
#   scripts/build-image.sh --root DIR               # private buildah storage under DIR (vfs driver), e.g. tests
#   scripts/build-image.sh --oci DIR                # also where the OCI image layout goes (default target/image/oci)
#   scripts/build-image.sh --print-ref              # print the image reference it produces and exit
#
# Result: the image `localhost/switchyard:<workspace version>` in buildah's local storage, and the same image
# as an OCI image layout in --oci DIR (tag = the version). Push it to your registry with either
#   buildah push localhost/switchyard:0.1.0 docker://registry.example.com/switchyard:0.1.0
#   skopeo copy oci:target/image/oci:0.1.0 docker://registry.example.com/switchyard:0.1.0
# and point deploy/kubernetes at it (deploy/kubernetes/kustomization.yaml says how).
set -euo pipefail
cd "$(dirname "$0")/.."

version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)"
if [ -z "$version" ]; then
  echo "build-image.sh: no [workspace.package] version in Cargo.toml" >&2
  exit 1
fi
name="localhost/switchyard"
ref="$name:$version"

binary=""
oci="target/image/oci"
root=""
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --oci) oci="$2"; shift 2 ;;
    --root) root="$2"; shift 2 ;;
    --print-ref) echo "$ref"; exit 0 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "build-image.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

for tool in buildah ldd objcopy; do
  if ! command -v "$tool" >/dev/null; then
    echo "build-image.sh: '$tool' not found; scripts/setup.sh installs it (Debian: buildah, libc-bin, binutils)" >&2
    exit 1
  fi
done
certs=/etc/ssl/certs/ca-certificates.crt
if [ ! -s "$certs" ]; then
  echo "build-image.sh: $certs missing; install Debian's ca-certificates" >&2
  exit 1
fi

if [ -z "$binary" ]; then
  # Always through cargo: a no-op when the binary is fresh, and never an image of a stale build.
  cargo build --release -p switchyard
  binary=target/release/switchyard
fi
if [ ! -x "$binary" ]; then
  echo "build-image.sh: $binary is not an executable" >&2
  exit 1
fi

buildah=(buildah)
if [ -n "$root" ]; then
  # vfs needs no kernel overlay support, so this works inside containers and in tests; the default storage
  # stays untouched.
  buildah+=(--root "$root/storage" --runroot "$root/run" --storage-driver vfs)
fi

stage="$(mktemp -d)"
container=""
cleanup() {
  if [ -n "$container" ]; then "${buildah[@]}" rm "$container" >/dev/null 2>&1 || true; fi
  rm -rf "$stage"
}
trap cleanup EXIT

# The binary, without its DWARF sections (symbol names stay, so a backtrace still names functions).
install -d -m 0755 "$stage/usr/local/bin"
objcopy --strip-debug "$binary" "$stage/usr/local/bin/switchyard"
chmod 0755 "$stage/usr/local/bin/switchyard"

# Every shared object the dynamic loader will map, at the path it looks for it, plus the loader itself.
# ldd prints `name => /path (0x…)` for libraries and `/path (0x…)` for the loader; vdso has no file.
libs="$(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')"
if [ -z "$libs" ]; then
  echo "build-image.sh: ldd lists no shared library for $binary (a static binary needs no loader; not handled)" >&2
  exit 1
fi
if ldd "$binary" | grep -q 'not found'; then
  echo "build-image.sh: a library of $binary is missing on this machine:" >&2
  ldd "$binary" >&2
  exit 1
fi
for lib in $libs; do
  install -D -m 0755 "$(readlink -f "$lib")" "$stage$lib"
done

# glibc resolves names itself (files, dns are built into libc since 2.34); nsswitch.conf says so explicitly
# so that no libnss module is looked for.
install -d -m 0755 "$stage/etc/ssl/certs"
install -m 0644 "$certs" "$stage/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$stage/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$stage/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$stage/etc/nsswitch.conf"
chmod 0644 "$stage/etc/passwd" "$stage/etc/group" "$stage/etc/nsswitch.conf"
install -d -m 1777 "$stage/tmp"
install -d -m 0755 "$stage/etc/switchyard"

container="$("${buildah[@]}" from --quiet scratch)"
"${buildah[@]}" copy --quiet "$container" "$stage/" / >/dev/null
"${buildah[@]}" config \
  --user 65532:65532 \
  --workingdir / \
  --entrypoint '["/usr/local/bin/switchyard"]' \
  --cmd '["run"]' \
  --port 8080/tcp --port 9901/tcp --port 7946/udp \
  --stop-signal SIGTERM \
  --label org.opencontainers.image.title=switchyard \
  --label org.opencontainers.image.description="Switchyard AI/LLM gateway node" \
  --label org.opencontainers.image.version="$version" \
  --label org.opencontainers.image.licenses="$(sed -n '/^\[workspace.package\]/,/^\[/s/^license = "\(.*\)"/\1/p' Cargo.toml)" \
  "$container"
"${buildah[@]}" commit --quiet --rm "$container" "$ref" >/dev/null
container=""

rm -rf "$oci"
mkdir -p "$(dirname "$oci")"
"${buildah[@]}" push --quiet "$ref" "oci:$oci:$version"
size="$(du -sh "$oci" | cut -f1)"
echo "built $ref (OCI layout $oci:$version, $size)"
