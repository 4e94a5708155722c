//! Locating the workspace binaries a test runs.
//!
//! Integration tests only get `CARGO_BIN_EXE_<name>` for binaries of their own crate, and only at compile
//! time; tests here also run `switchyard` from the `node` crate. So binaries are looked up next to the
//! running test executable: a test runs as `<target>/<profile>/deps/<test>-<hash>`, its binaries are in
//! `<target>/<profile>/`. If a binary is missing there, `cargo build -p <package> --bin <name>` is run
//! once per process (guarded by a `OnceLock` per binary) with the same profile and target directory.
//!
//! Limitation: a binary that exists but is stale is *not* rebuilt; `cargo test --workspace` or
//! `cargo build` first keeps it fresh (the `mock-provider` binary of this crate is always rebuilt by cargo
//! before this crate's tests run). Cross builds (`--target <triple>`) are not handled.

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
            if !path.exists() {
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
