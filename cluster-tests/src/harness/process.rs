//! A child process owned by a test.
//!
//! Tests must never leak processes and must be able to show what a process printed when they fail. A
//! [`Process`] captures stdout and stderr into files in its own temporary directory, signals only its own
//! PID (never by name), and on drop kills and reaps the child, printing its output if the test panicked.
//! Children also get `PR_SET_PDEATHSIG`: if the test process itself dies (SIGKILLed by a CI timeout, or a
//! binary like `local-cluster` killed by its test), the kernel kills what it started, so nothing outlives
//! it. The signal follows the thread that spawned the child, and every spawn here happens on a runtime
//! thread that lives as long as the test (never on a short-lived blocking-pool thread).

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

use super::poll_until;

/// A running child process with captured output; killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Process {
    label: String,
    child: Child,
    exited: Option<ExitStatus>,
    dir: tempfile::TempDir,
}

impl Process {
    /// Spawns `cmd` (args and env already set), with stdin closed and stdout/stderr captured to files.
    /// `label` names the process in messages.
    pub fn spawn(label: &str, mut cmd: Command) -> anyhow::Result<Process> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("switchyard-{label}-"))
            .tempdir()
            .context("temp dir")?;
        let stdout = File::create(dir.path().join("stdout")).context("stdout file")?;
        let stderr = File::create(dir.path().join("stderr")).context("stderr file")?;
        switchyard::child::die_with_parent(&mut cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("spawning {label}: {cmd:?}"))?;
        Ok(Process {
            label: label.to_owned(),
            child,
            exited: None,
            dir,
        })
    }

    /// Spawns `program` with `args` and extra environment variables `env`.
    pub fn start<A, S>(
        label: &str,
        program: &Path,
        args: A,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Process>
    where
        A: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(program);
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Process::spawn(label, cmd)
    }

    /// The label given at spawn.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The child's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The temporary directory holding the captured output (usable for the process's own files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path of the captured stdout.
    pub fn stdout_path(&self) -> PathBuf {
        self.dir.path().join("stdout")
    }

    /// Path of the captured stderr.
    pub fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("stderr")
    }

    /// Captured stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.stdout_path()).unwrap_or_default()
    }

    /// Captured stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    /// Both captured streams, formatted for a failure message.
    pub fn logs(&self) -> String {
        format!(
            "----- {label} (pid {pid}) stdout -----\n{out}\n----- {label} stderr -----\n{err}\n-----",
            label = self.label,
            pid = self.pid(),
            out = self.stdout(),
            err = self.stderr()
        )
    }

    /// The exit status if the child has exited (reaping it), without blocking.
    pub fn try_exit(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().context("try_wait")?;
        }
        Ok(self.exited)
    }

    /// Sends `signal` to the child's PID, unless it has already exited and been reaped (so a recycled
    /// PID is never signalled).
    pub fn signal(&mut self, signal: i32) -> anyhow::Result<()> {
        if self.try_exit()?.is_some() {
            return Ok(());
        }
        let pid = libc::pid_t::try_from(self.pid()).context("pid out of range")?;
        // SAFETY: kill(2) has no memory-safety preconditions; the PID is our own unreaped child.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::kill(pid, signal) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(e).with_context(|| format!("kill({pid}, {signal})"));
            }
        }
        Ok(())
    }

    /// SIGTERM by PID (the process may shut down gracefully; see [`Process::wait_exit`]).
    pub fn terminate(&mut self) -> anyhow::Result<()> {
        self.signal(libc::SIGTERM)
    }

    /// SIGKILL by PID, then reaps the child.
    pub fn kill(&mut self) -> anyhow::Result<ExitStatus> {
        self.signal(libc::SIGKILL)?;
        if let Some(s) = self.exited {
            return Ok(s);
        }
        let s = self.child.wait().context("wait after SIGKILL")?;
        self.exited = Some(s);
        Ok(s)
    }

    /// Waits (polling) until the child exits, failing after `deadline`; the child is left running then.
    pub async fn wait_exit(&mut self, deadline: Duration) -> anyhow::Result<ExitStatus> {
        let every = Duration::from_millis(10);
        let r = poll_until(deadline, every, || {
            let r = self.try_exit();
            async move {
                match r {
                    Ok(Some(s)) => Some(Ok(s)),
                    Ok(None) => None,
                    Err(e) => Some(Err(e)),
                }
            }
        })
        .await;
        match r {
            Ok(r) => r,
            Err(_) => bail!(
                "{} (pid {}) did not exit within {deadline:?}",
                self.label,
                self.pid()
            ),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Err(e) = self.kill() {
            eprintln!("cannot kill {} (pid {}): {e:#}", self.label, self.pid());
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}
