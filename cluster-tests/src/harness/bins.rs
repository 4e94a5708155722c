//! Locating the workspace binaries a test runs.
//!
//! Integration tests only get `CARGO_BIN_EXE_<name>` for binaries of their own crate, and only at compile
//! time; tests here also run `switchyard` from the `node` crate. So binaries are looked up next to the
//! running test executable: a test runs as `<target>/<profile>/deps/<test>-<hash>`, its binaries are in
//! `<target>/<profile>/`. Binaries of this crate are rebuilt by cargo before its tests run; binaries of
//! other packages (`switchyard`) are not, so for those `cargo build -p <package> --bin <name>` runs once per
//! test process (guarded by a `OnceLock` per binary, with the same profile and target directory) whenever
//! the test runs under cargo — a no-op when fresh, and the guarantee that `cargo test -p
//! switchyard-cluster-tests` never tests a stale gateway. Cross builds (`--target <triple>`) are not
//! handled.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{bail, Context};

/// The Cargo package that owns a binary.
fn package_of(name: &str) -> &'static str {
    match name {
        "switchyard" => "switchyard",
        _ => "switchyard-cluster-tests",
    }
}

/// `<target>/<profile>` of the running executable.
fn profile_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("current_exe")?;
    let mut dir = exe
        .parent()
        .context("executable has no directory")?
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    Ok(dir)
}

fn build(name: &str, profile_dir: &Path) -> anyhow::Result<()> {
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("profile directory name")?
        .to_owned();
    let target_dir = profile_dir.parent().context("target directory")?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    // Cargo gives a running test its package's identity (CARGO_PKG_*, CARGO_MANIFEST_DIR, …). Passed on to
    // a nested cargo, build scripts that watch those variables rerun, and the outer and nested builds keep
    // invalidating each other; the nested build must see a plain environment.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let from_test_runner = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_PRIMARY_",
            "CARGO_TARGET_TMPDIR",
            "OUT_DIR",
        ]
        .iter()
        .any(|p| key.starts_with(p));
        if from_test_runner {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(workspace)
        .args([
            "build",
            "-p",
            package_of(name),
            "--bin",
            name,
            "--target-dir",
        ])
        .arg(target_dir);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

type Built = Arc<OnceLock<Result<PathBuf, String>>>;

/// Path of workspace binary `name` (e.g. `switchyard`, `mock-provider`) in the running test's target
/// directory, building it once if it is missing.
pub fn try_bin_path(name: &str) -> anyhow::Result<PathBuf> {
    static CELLS: OnceLock<Mutex<HashMap<String, Built>>> = OnceLock::new();
    let cell: Built = {
        let mut map = CELLS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.entry(name.to_owned()).or_default().clone()
    };
    let result = cell.get_or_init(|| {
        let run = || -> anyhow::Result<PathBuf> {
            let dir = profile_dir()?;
            let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
            let foreign = package_of(name) != env!("CARGO_PKG_NAME");
            let under_cargo = std::env::var_os("CARGO").is_some();
            if !path.exists() || (foreign && under_cargo) {
                build(name, &dir)?;
                if !path.exists() {
                    bail!("{} still missing after building it", path.display());
                }
            }
            Ok(path)
        };
        run().map_err(|e| format!("{e:#}"))
    });
    match result {
        Ok(p) => Ok(p.clone()),
        Err(e) => bail!("binary {name}: {e}"),
    }
}

/// Like [`try_bin_path`], panicking with the reason when the binary cannot be found or built.
pub fn bin_path(name: &str) -> PathBuf {
    try_bin_path(name).unwrap_or_else(|e| panic!("{e:#}"))
}
