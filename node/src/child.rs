//! Child processes that cannot outlive their parent: `switchyard demo` and the multi-process tests start
//! nodes, mocks and load balancers, and none of them may be left running when the parent dies — even by
//! SIGKILL, which runs no cleanup.

use std::process::Command;

/// Makes the kernel SIGKILL the child `cmd` starts when the thread that spawned it exits
/// (`PR_SET_PDEATHSIG`). Spawn from a thread that lives as long as the parent needs the child (a runtime
/// worker or the main thread, not a short-lived blocking-pool thread). Not inherited by the child's own
/// children.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec and only calls prctl(2), which is
    // async-signal-safe and touches no memory shared with the parent.
    #[allow(unsafe_code)]
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
