//! The container runtime boundary of a node. The agent describes a container with the neutral
//! [`ContainerConfig`]; [`spec()`] turns it into an OCI runtime spec; an [`OciRuntime`] (today
//! [`RuncCli`], for runc or crun) creates, starts, signals, inspects and deletes it. Pods get a
//! [`PodSandbox`] (shared network/IPC/UTS namespaces without a pause image, a pod cgroup in its
//! QoS tier) from the [`SandboxManager`]; cgroups v1 and v2 sit behind [`CgroupManager`].
//!
//! Everything here is synchronous and reaches the kernel through child processes (`runc`,
//! `crun`, `unshare`, `mount`, the shim) or plain cgroupfs files; the async agent calls it from
//! `spawn_blocking`. Nothing is kept only in memory: after an agent restart, [`OciRuntime::list`]
//! and [`SandboxManager::list`] find what is running and the agent adopts it.
//!
//! On-disk layout (defaults):
//!
//! ```text
//! /run/maestro/pods/<uid>/          sandbox: ns/{net,ipc,uts}, shm/, hostname, sandbox.json
//! /run/maestro/containers/<id>/     bundle: config.json, init.pid, shim.pid, shim.ready,
//!                                   exit.json, runtime.log, shim.log, exec-<n>.{json,pid}
//! /run/maestro/runc/<id>/           runc's own state (--root); /run/maestro/crun for crun
//! /sys/fs/cgroup/<ctrl>/maestro/{burstable,besteffort}/pod<uid>/<id>   (v1; v2 without <ctrl>)
//! ```

pub mod cgroup;
mod config;
pub mod cri_log;
mod error;
mod exec;
mod mountinfo;
pub use mountinfo::is_mount_point;
pub mod qos;
mod runc;
mod sandbox;
pub mod seccomp;
pub mod shim;
mod spec;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

pub use cgroup::{CgroupManager, CgroupVersion};
pub use config::{
    ContainerConfig, ContainerIo, Mount, MountSource, NamespaceMode, Namespaces, Output, ProcMount,
    Propagation, Resources, Rlimit, RlimitKind, SeccompProfile, Security, User,
};
pub use error::{Error, Result};
pub use exec::{ExecConfig, ExecOutput, ExecSession};
pub use qos::{InitContainer, QosClass, ResourceRequirements, pod_resources};
pub use runc::{RuncCli, RuncConfig, RuntimeKind};
pub use sandbox::{
    DEFAULT_CGROUP_ROOT, DEFAULT_PODS_DIR, DEFAULT_SHM_SIZE, POD_UID_ANNOTATION, PodSandbox,
    SandboxConfig, SandboxManager,
};
pub use shim::ShimCommand;
pub use spec::{
    ALL_CAPABILITIES, DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS, capabilities,
    parse_capability, spec,
};

/// A signal number (`SIGTERM` = 15...), as sent by [`OciRuntime::kill`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(pub i32);

impl Signal {
    pub const HUP: Signal = Signal(1);
    pub const INT: Signal = Signal(2);
    pub const QUIT: Signal = Signal(3);
    pub const KILL: Signal = Signal(9);
    pub const USR1: Signal = Signal(10);
    pub const USR2: Signal = Signal(12);
    pub const TERM: Signal = Signal(15);
    pub const WINCH: Signal = Signal(28);

    /// `SIGTERM`, `TERM` or `15` (Kubernetes `stopSignal`, image `StopSignal`).
    pub fn parse(name: &str) -> Option<Signal> {
        if let Ok(n) = name.parse::<i32>() {
            return (1..=64).contains(&n).then_some(Signal(n));
        }
        let upper = name.to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        let n = match bare {
            "HUP" => 1,
            "INT" => 2,
            "QUIT" => 3,
            "ILL" => 4,
            "TRAP" => 5,
            "ABRT" | "IOT" => 6,
            "BUS" => 7,
            "FPE" => 8,
            "KILL" => 9,
            "USR1" => 10,
            "SEGV" => 11,
            "USR2" => 12,
            "PIPE" => 13,
            "ALRM" => 14,
            "TERM" => 15,
            "STKFLT" => 16,
            "CHLD" => 17,
            "CONT" => 18,
            "STOP" => 19,
            "TSTP" => 20,
            "TTIN" => 21,
            "TTOU" => 22,
            "URG" => 23,
            "XCPU" => 24,
            "XFSZ" => 25,
            "VTALRM" => 26,
            "PROF" => 27,
            "WINCH" => 28,
            "IO" | "POLL" => 29,
            "PWR" => 30,
            "SYS" => 31,
            _ => return None,
        };
        Some(Signal(n))
    }
}

/// The lifecycle state of a container, in the OCI runtime's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerState {
    /// The runtime is still setting it up.
    Creating,
    /// Namespaces and cgroup exist; the process waits for `start`.
    Created,
    Running,
    Paused,
    /// The process has exited; the container still exists until `delete`.
    Stopped,
    /// A bundle without runtime state (creation interrupted or failed): delete it.
    Unknown,
}

impl std::fmt::Display for ContainerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ContainerState::Creating => "creating",
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Paused => "paused",
            ContainerState::Stopped => "stopped",
            ContainerState::Unknown => "unknown",
        })
    }
}

/// How a container's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code, or 128 + the signal number when a signal killed it (137 for SIGKILL).
    pub code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// The kernel's OOM killer killed a process of the container (the memory cgroup's
    /// `oom_kill` counter is non-zero). Tells "OOMKilled" from a plain SIGKILL with code 137.
    pub oom_killed: bool,
    pub finished_at: Option<SystemTime>,
}

impl ExitStatus {
    /// The Kubernetes `terminated.reason`.
    pub fn reason(&self) -> &'static str {
        if self.oom_killed {
            "OOMKilled"
        } else if self.code == 0 {
            "Completed"
        } else {
            "Error"
        }
    }
}

/// What the runtime knows about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub id: String,
    pub state: ContainerState,
    /// The init process's pid on the host, while it runs.
    pub pid: Option<u32>,
    pub bundle: PathBuf,
    /// Creation time as the runtime reports it (RFC 3339).
    pub created_at: Option<String>,
    /// The annotations of the config it was created from (pod uid...).
    pub annotations: BTreeMap<String, String>,
    /// Set once the container has stopped and its shim recorded how.
    pub exit: Option<ExitStatus>,
    /// Why creation failed, or why the exit status is unknown.
    pub error: Option<String>,
}

/// An OCI runtime: create/start/state/kill/delete/exec/list, plus waiting and graceful stop
/// built on them. Synchronous: every call may run child processes and sleep.
///
/// Implemented by [`RuncCli`] (runc or crun); another backend (youki as a library, containerd
/// over CRI) implements the same calls.
pub trait OciRuntime: Send + Sync + std::fmt::Debug {
    /// Which runtime this is (`runc`, `crun`).
    fn name(&self) -> &str;

    /// Creates the container: bundle, namespaces, cgroup, the process waiting to be started,
    /// with `config.io` as its stdio. Returns once it is in [`ContainerState::Created`]; a
    /// runtime error (bad rootfs, missing binary...) is [`Error::StartFailed`].
    fn create(&self, config: &ContainerConfig) -> Result<()>;

    /// Lets a created container's process run.
    fn start(&self, id: &str) -> Result<()>;

    fn state(&self, id: &str) -> Result<ContainerStatus>;

    /// Sends `signal` to the container's init process. Signalling a stopped container succeeds.
    fn kill(&self, id: &str, signal: Signal) -> Result<()>;

    /// Removes a stopped (or created) container: runtime state, cgroup, bundle. `force` kills a
    /// running one first. Deleting a container that does not exist succeeds.
    fn delete(&self, id: &str, force: bool) -> Result<()>;

    /// Runs a process inside a running container, streaming its stdio (see [`ExecSession`]).
    fn exec(&self, id: &str, exec: &ExecConfig) -> Result<ExecSession>;

    /// Every container this runtime knows about (running, stopped, half-created): what the agent
    /// re-attaches to after a restart.
    fn list(&self) -> Result<Vec<ContainerStatus>>;

    /// Whether the container has stopped, as cheaply as the backend can tell (no child process):
    /// what the agent polls for every running container. `state` then says how it ended.
    fn stopped(&self, id: &str) -> Result<bool> {
        Ok(self.state(id)?.state == ContainerState::Stopped)
    }

    /// Waits until the container has stopped and its exit status is known; `None` on timeout.
    fn wait(&self, id: &str, timeout: Duration) -> Result<Option<ContainerStatus>> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(2);
        loop {
            let status = self.state(id)?;
            let done = match status.state {
                ContainerState::Stopped => status.exit.is_some() || status.error.is_some(),
                ContainerState::Unknown => status.error.is_some(),
                _ => false,
            };
            if done {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Graceful stop: `signal` (SIGTERM unless the image says otherwise), up to `grace` for the
    /// process to exit, then SIGKILL. Returns the final status; the container is not deleted.
    fn stop(&self, id: &str, signal: Signal, grace: Duration) -> Result<ContainerStatus> {
        let status = self.state(id)?;
        if !matches!(
            status.state,
            ContainerState::Running | ContainerState::Paused | ContainerState::Created
        ) {
            return Ok(status);
        }
        if status.state == ContainerState::Running {
            self.kill(id, signal)?;
            if let Some(status) = self.wait(id, grace)? {
                return Ok(status);
            }
        }
        self.kill(id, Signal::KILL)?;
        let limit = Duration::from_secs(10);
        self.wait(id, limit)?.ok_or_else(|| Error::Timeout {
            what: format!("container {id} to die after SIGKILL"),
            after: limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        for (name, n) in [
            ("SIGTERM", 15),
            ("TERM", 15),
            ("term", 15),
            ("9", 9),
            ("SIGRTMIN+0", 0),
            ("SIGWINCH", 28),
        ] {
            assert_eq!(Signal::parse(name).map(|s| s.0).unwrap_or(0), n, "{name}");
        }
        assert_eq!(Signal::parse("0"), None);
        assert_eq!(Signal::parse("99"), None);
    }

    #[test]
    fn exit_reasons() {
        let exit = |code, oom_killed| ExitStatus {
            code,
            signal: None,
            oom_killed,
            finished_at: None,
        };
        assert_eq!(exit(0, false).reason(), "Completed");
        assert_eq!(exit(137, false).reason(), "Error");
        assert_eq!(exit(137, true).reason(), "OOMKilled");
    }
}
