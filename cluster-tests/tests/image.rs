//! The container image (issue 19) holds what the node needs and nothing it does not: the test builds the
//! image with `scripts/build-image.sh` (buildah, offline, from scratch) from the binary under test into
//! private buildah storage, unpacks the OCI image layout the script wrote, checks the image config (user
//! 65532, entrypoint, the ports the Kubernetes manifests use), then starts the binary from the unpacked root
//! filesystem with `chroot` as user 65532 — so a library `ldd` missed, a wrong loader path or a file only
//! root can read fails here — and checks `/readyz`, a chat request through it to a mock provider, and a clean
//! exit on SIGTERM.
//!
//! Needs root (chroot) and Debian's buildah; fails, never skips, without them (`.ci/run` installs it through
//! `scripts/setup.sh`). `IMAGE_TEST_BINARY=PATH` builds the image from that binary instead of the one under
//! test (.ci/run: the release binary).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use serde_json::{json, Value};
use switchyard_cluster_tests::harness::{
    bin_path, fallback_config, free_port, http_get, http_post_json, poll_until, repo_root,
    run_bounded, MockProvider, Process,
};

const MODEL: &str = "image-model";
/// The user the image runs as and the Kubernetes manifests expect (`runAsUser`).
const NONROOT: &str = "65532:65532";

fn require_tools() -> anyhow::Result<()> {
    for tool in ["/usr/bin/buildah", "/usr/sbin/chroot"] {
        ensure!(
            Path::new(tool).exists(),
            "{tool} is missing: the image test needs Debian's buildah and coreutils' chroot \
             (`scripts/setup.sh` installs them; .ci/run calls it)"
        );
    }
    ensure!(
        uids(std::process::id())?.get(1).is_some_and(|u| u == "0"),
        "the image test needs root (chroot, buildah storage); CI runs as root"
    );
    Ok(())
}

/// Real, effective, saved and filesystem uid of process `pid` (from `/proc`, no unsafe code).
fn uids(pid: u32) -> anyhow::Result<Vec<String>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .context("no Uid line")?;
    Ok(line.split_whitespace().map(String::from).collect())
}

/// A blob of the OCI image layout at `oci`, by digest (`sha256:…`).
fn blob(oci: &Path, digest: &str) -> anyhow::Result<PathBuf> {
    let hex = digest
        .strip_prefix("sha256:")
        .with_context(|| format!("digest {digest} is not sha256"))?;
    Ok(oci.join("blobs/sha256").join(hex))
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Builds the image into `work` and returns (image config, unpacked root filesystem).
fn build_and_unpack(binary: &Path, work: &Path) -> anyhow::Result<(Value, PathBuf)> {
    let oci = work.join("oci");
    // Bounded by itself too: a build still running when the test gives up would write into a removed dir.
    let out = Command::new("timeout")
        .args(["120", "bash"])
        .arg(repo_root().join("scripts/build-image.sh"))
        .arg("--binary")
        .arg(binary)
        .arg("--root")
        .arg(work.join("buildah"))
        .arg("--oci")
        .arg(&oci)
        .output()
        .context("running scripts/build-image.sh")?;
    ensure!(
        out.status.success(),
        "build-image.sh failed: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let version = env!("CARGO_PKG_VERSION");
    let index = read_json(&oci.join("index.json"))?;
    let manifests = index["manifests"].as_array().context("index manifests")?;
    ensure!(manifests.len() == 1, "want one image in the layout");
    ensure!(
        manifests[0]["annotations"]["org.opencontainers.image.ref.name"] == version,
        "image tag is not the workspace version {version}: {index}"
    );
    let manifest = read_json(&blob(
        &oci,
        manifests[0]["digest"].as_str().context("digest")?,
    )?)?;
    let config = read_json(&blob(
        &oci,
        manifest["config"]["digest"].as_str().context("config")?,
    )?)?;

    let rootfs = work.join("rootfs");
    std::fs::create_dir_all(&rootfs)?;
    for layer in manifest["layers"].as_array().context("layers")? {
        let path = blob(&oci, layer["digest"].as_str().context("layer digest")?)?;
        let st = Command::new("tar")
            .arg("-xf")
            .arg(&path)
            .arg("-C")
            .arg(&rootfs)
            .status()?;
        ensure!(st.success(), "tar -xf {} failed", path.display());
    }
    Ok((config, rootfs))
}

/// Every regular file in the image, relative to its root.
fn files(root: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            files(root, &path, out)?;
        } else {
            out.push(format!("/{}", path.strip_prefix(root)?.display()));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_starts_from_its_root_filesystem_as_nonroot() {
    // Building the binaries (when cargo has not yet) is not what this test bounds. CI points
    // IMAGE_TEST_BINARY at the release binary it built the shipped image from; by default the image is
    // built from the binary under test.
    let binary = std::env::var_os("IMAGE_TEST_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| bin_path("switchyard"));
    bin_path("mock-provider");
    run_bounded(Duration::from_secs(180), async {
        require_tools()?;
        let work = tempfile::Builder::new()
            .prefix("switchyard-image-")
            .tempdir()?;
        let (config, rootfs) = tokio::task::spawn_blocking({
            let work = work.path().to_path_buf();
            move || build_and_unpack(&binary, &work)
        })
        .await??;

        // The image config: what a container runtime (and the manifests) rely on.
        let c = &config["config"];
        ensure!(c["User"] == NONROOT, "image user: {c}");
        ensure!(
            c["Entrypoint"] == json!(["/usr/local/bin/switchyard"]),
            "{c}"
        );
        ensure!(c["Cmd"] == json!(["run"]), "{c}");
        for port in ["8080/tcp", "9901/tcp", "7946/udp"] {
            ensure!(
                c["ExposedPorts"].get(port).is_some(),
                "port {port} not exposed: {c}"
            );
        }

        // Exactly the binary, its libraries and loader, and the small /etc the script writes.
        let mut all = Vec::new();
        files(&rootfs, &rootfs, &mut all)?;
        all.sort();
        for must in [
            "/usr/local/bin/switchyard",
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/passwd",
            "/lib64/ld-linux-x86-64.so.2",
        ] {
            ensure!(
                all.iter().any(|f| f == must),
                "{must} not in the image: {all:?}"
            );
        }
        let unexpected: Vec<&String> = all
            .iter()
            .filter(|f| {
                !(f.starts_with("/lib/") && f.contains(".so")
                    || f.starts_with("/lib64/")
                    || f.starts_with("/usr/local/bin/switchyard")
                    || f.starts_with("/etc/"))
            })
            .collect();
        ensure!(
            unexpected.is_empty(),
            "unexpected files in the image: {unexpected:?}"
        );
        let passwd = std::fs::read_to_string(rootfs.join("etc/passwd"))?;
        ensure!(
            passwd.contains(":65532:65532:"),
            "no user 65532 in /etc/passwd"
        );

        // Run it from the image's root filesystem, as the image's user, with a route to a mock provider
        // outside (chroot shares the network).
        let provider = MockProvider::start("image-upstream").await?;
        let routes = fallback_config(MODEL, provider.data_addr, provider.data_addr, "");
        std::fs::write(rootfs.join("etc/switchyard/routes.yaml"), routes)?;
        let listen = format!("127.0.0.1:{}", free_port());
        let admin = format!("127.0.0.1:{}", free_port());
        let chroot_args = [
            format!("--userspec={NONROOT}"),
            rootfs.display().to_string(),
            "/usr/local/bin/switchyard".into(),
            "run".into(),
            "--config".into(),
            "/etc/switchyard/routes.yaml".into(),
            "--listen".into(),
            listen.clone(),
            "--admin".into(),
            admin.clone(),
            "--node-id".into(),
            "image-node".into(),
            "--drain-delay".into(),
            "0s".into(),
        ];
        let mut node = Process::start(
            "switchyard-image",
            Path::new("/usr/sbin/chroot"),
            &chroot_args,
            &[("SWITCHYARD_LOG", "info")],
        )?;
        let readyz = format!("http://{admin}/readyz");
        let ready = poll_until(
            Duration::from_secs(30),
            Duration::from_millis(50),
            || async {
                http_get(&readyz)
                    .await
                    .ok()
                    .filter(|r| r.status.is_success())
            },
        )
        .await;
        if ready.is_err() {
            bail!(
                "the image's switchyard never answered /readyz 200:\n{}",
                node.logs()
            );
        }

        let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]});
        let r = http_post_json(&format!("http://{listen}/v1/chat/completions"), &body).await?;
        ensure!(
            r.status.as_u16() == 200,
            "chat through the image's node: {} {}\n{}",
            r.status,
            r.text(),
            node.logs()
        );
        ensure!(
            provider.request_count().await? == 1,
            "the mock provider saw no request"
        );

        // The process really runs as 65532 (not only asked to).
        let uid = uids(node.pid())?;
        ensure!(
            uid.iter().all(|u| u == "65532"),
            "node runs as uids {uid:?}"
        );

        node.terminate()?;
        let exit = node.wait_exit(Duration::from_secs(20)).await?;
        ensure!(exit.success(), "exit on SIGTERM: {exit}\n{}", node.logs());
        Ok(())
    })
    .await;
}
