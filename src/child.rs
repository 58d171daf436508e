//! Running a program of the configuration (`on_change`, a command probe)
//! in a process group of its own, without the configuration's secrets in
//! its environment, and stopping the whole group when it runs too long.

use std::process::Stdio;
use std::time::Duration;

/// How long a killed process group gets between SIGTERM and SIGKILL, and how
/// long it is waited for after SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(1);

/// Sends `signal` (`TERM`, `KILL`) to every process of the group `pgid`.
/// `kill(1)` does it: this crate has no `unsafe` to call kill(2) itself.
pub(crate) async fn signal_group(pgid: u32, signal: &str) {
    let sent = tokio::process::Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if let Err(e) = sent {
        tracing::error!("cannot run `kill` to stop the process group {pgid}: {e}");
    }
}

/// Stops `child` and everything it started: SIGTERM to its process group,
/// then, after `KILL_GRACE`, SIGKILL to whatever is left of the group.
pub async fn kill_group(child: &mut tokio::process::Child) {
    let Some(pgid) = child.id() else {
        return; // already reaped
    };
    signal_group(pgid, "TERM").await;
    let _ = tokio::time::timeout(KILL_GRACE, child.wait()).await;
    // The group outlives its leader while any member runs, and its id is not
    // given to a new process meanwhile.
    signal_group(pgid, "KILL").await;
    let _ = child.start_kill();
    let _ = tokio::time::timeout(KILL_GRACE, child.wait()).await;
}

/// Kills a process group with SIGKILL when dropped, unless disarmed: a task
/// running a command that is aborted (the service stops) leaves no process
/// of the group behind. `kill(1)` is started and not waited for, since a
/// drop cannot wait.
#[derive(Debug)]
pub struct GroupGuard(Option<u32>);

impl GroupGuard {
    /// Guards the group led by `child` (spawned with `process_group(0)`).
    pub fn new(child: &tokio::process::Child) -> GroupGuard {
        GroupGuard(child.id())
    }

    /// The group ended or was killed: nothing left to do.
    pub fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = std::process::Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{pgid}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
        }
    }
}
