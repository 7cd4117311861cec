//! The neutral description of one container that the agent fills in from a Pod (after the image
//! module produced a root filesystem and the sandbox gave it namespaces and a cgroup). No
//! Kubernetes types: [`super::spec`] turns it into an OCI runtime spec.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use oci_spec::runtime::PosixRlimitType as RlimitKind;

/// Everything needed to create one container.
#[derive(Debug, Clone, Default)]
pub struct ContainerConfig {
    /// Runtime id: `[A-Za-z0-9][A-Za-z0-9_.-]*`, unique on the node.
    pub id: String,
    /// The root filesystem directory (an overlay snapshot from the image module). Symlinks are
    /// resolved before it reaches runc, which refuses them.
    pub rootfs: PathBuf,
    /// The process: entrypoint + args already merged with the image's config.
    pub args: Vec<String>,
    /// Environment in order; a `PATH` is added when missing, `HOSTNAME` when a hostname is known.
    pub env: Vec<(String, String)>,
    /// Working directory inside the container; empty means `/`.
    pub cwd: PathBuf,
    pub user: User,
    /// The hostname, used for `HOSTNAME` and, when the container has a private UTS namespace, set
    /// by the runtime. In a pod the sandbox's UTS namespace already carries it.
    pub hostname: Option<String>,
    /// Mounts on top of the defaults (`/proc`, `/dev`, `/dev/pts`, `/dev/shm`, `/dev/mqueue`,
    /// `/sys`, `/sys/fs/cgroup`). A mount at the destination of a default replaces it.
    pub mounts: Vec<Mount>,
    pub resources: Resources,
    pub security: Security,
    pub namespaces: Namespaces,
    /// The container's cgroup, absolute within each hierarchy (`/maestro/burstable/pod<uid>/<id>`).
    /// `None` lets the runtime pick one (not what a pod wants).
    pub cgroup_path: Option<String>,
    /// Resource limits; none means the runtime's own limits are inherited. Values above the hard
    /// limits of the agent fail at start (on the test machines, `nofile` ≤ 20000).
    pub rlimits: Vec<Rlimit>,
    /// Namespaced sysctls (`net.*`, `kernel.shm*`...).
    pub sysctls: BTreeMap<String, String>,
    /// OOM score adjustment. Lowering it below the agent's own value needs `CAP_SYS_RESOURCE`.
    pub oom_score_adj: Option<i32>,
    /// Stored in the bundle and returned by `state`/`list`: how the agent recognizes its containers
    /// after a restart (pod uid, container name, attempt...).
    pub annotations: BTreeMap<String, String>,
    /// Where the container's stdin comes from and its stdout/stderr go.
    pub io: ContainerIo,
}

impl ContainerConfig {
    /// A container running `args` in `rootfs` with every other field at its default.
    pub fn new(id: impl Into<String>, rootfs: impl Into<PathBuf>, args: Vec<String>) -> Self {
        ContainerConfig {
            id: id.into(),
            rootfs: rootfs.into(),
            args,
            ..Default::default()
        }
    }

    /// Sets (or replaces) one environment variable.
    pub fn set_env(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        match self.env.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.env.push((key, value)),
        }
    }
}

/// The identity of the container process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (Kubernetes `supplementalGroups`, `fsGroup`).
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
}

/// A mount inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Absolute path inside the container.
    pub destination: PathBuf,
    pub source: MountSource,
    pub read_only: bool,
    pub propagation: Propagation,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// A host directory or file (volumes, `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`,
    /// the pod's `/dev/shm`), bound recursively.
    Bind(PathBuf),
    /// A fresh tmpfs (an `emptyDir` with `medium: Memory`); its pages count against the
    /// container's memory limit.
    Tmpfs {
        size_bytes: Option<u64>,
        mode: Option<u32>,
    },
}

/// Mount propagation, as Kubernetes `mountPropagation` names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Propagation {
    /// Neither side sees the other's later mounts.
    #[default]
    Private,
    /// Mounts made on the host later appear in the container (`rslave`).
    HostToContainer,
    /// Both ways (`rshared`); only for privileged containers in Kubernetes.
    Bidirectional,
}

impl Mount {
    /// A bind mount of a host path (directory or file).
    pub fn bind(
        source: impl Into<PathBuf>,
        destination: impl Into<PathBuf>,
        read_only: bool,
    ) -> Self {
        Mount {
            destination: destination.into(),
            source: MountSource::Bind(source.into()),
            read_only,
            propagation: Propagation::Private,
        }
    }

    /// A tmpfs of at most `size_bytes` (unbounded tmpfs defaults to half the RAM).
    pub fn tmpfs(destination: impl Into<PathBuf>, size_bytes: Option<u64>) -> Self {
        Mount {
            destination: destination.into(),
            source: MountSource::Tmpfs {
                size_bytes,
                mode: None,
            },
            read_only: false,
            propagation: Propagation::Private,
        }
    }
}

/// cgroup limits of a container or a pod, already in kernel units. See
/// [`super::qos::ResourceRequirements`] for the Kubernetes requests/limits mapping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Relative CPU weight in cgroup v1 units (2..=262144; 1024 = one CPU's request). Converted
    /// to `cpu.weight` on cgroup v2.
    pub cpu_shares: Option<u64>,
    /// CFS quota in microseconds per period; `None` (or negative) means unlimited.
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds (default 100000).
    pub cpu_period: Option<u64>,
    /// Memory limit in bytes (swap is disabled at the same value).
    pub memory_limit: Option<i64>,
    /// Maximum number of processes/threads.
    pub pids_limit: Option<i64>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        *self == Resources::default()
    }
}

/// The security context, after the agent resolved pod-level defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// All host capabilities, every device allowed, no seccomp, no masked paths, writable
    /// `/sys`. Overrides the other fields except `readonly_rootfs` and `no_new_privileges`.
    pub privileged: bool,
    /// Capabilities added to the default set (`NET_ADMIN` or `CAP_NET_ADMIN`; `ALL` for all).
    pub cap_add: Vec<String>,
    /// Capabilities removed from the default set (`ALL` for all). Drop wins over add, except that
    /// `drop: [ALL]` + `add: [X]` keeps exactly `X` (the Kubernetes idiom).
    pub cap_drop: Vec<String>,
    /// `allowPrivilegeEscalation: false`.
    pub no_new_privileges: bool,
    pub readonly_rootfs: bool,
    /// Refuse to run as uid 0 (`runAsNonRoot`); checked against [`User::uid`].
    pub run_as_non_root: bool,
    pub seccomp: SeccompProfile,
    pub proc_mount: ProcMount,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SeccompProfile {
    /// The built-in deny-list profile ([`super::seccomp::runtime_default`]).
    #[default]
    RuntimeDefault,
    Unconfined,
}

/// Kubernetes `procMount`: whether the usual `/proc` and `/sys` paths are masked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProcMount {
    #[default]
    Default,
    Unmasked,
}

/// How the container gets each namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NamespaceMode {
    /// A new namespace of its own.
    #[default]
    Private,
    /// Join an existing namespace (a pod sandbox's `ns/net`, another container's
    /// `/proc/<pid>/ns/pid`).
    Join(PathBuf),
    /// Stay in the host's namespace (`hostNetwork`, `hostIPC`, `hostPID`).
    Host,
}

/// The namespaces a container is created with; mount namespaces are always private.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    pub network: NamespaceMode,
    pub ipc: NamespaceMode,
    pub uts: NamespaceMode,
    pub pid: NamespaceMode,
    pub cgroup: NamespaceMode,
}

/// One resource limit (`RLIMIT_NOFILE`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub kind: RlimitKind,
    pub soft: u64,
    pub hard: u64,
}

/// The container's standard streams. The runtime hands them to the container as its fds 0, 1
/// and 2, so they stay valid however long the container runs and whether or not the agent does.
#[derive(Debug, Clone, Default)]
pub struct ContainerIo {
    /// `None` is `/dev/null`. A pipe here is how `stdin: true` containers get their input.
    pub stdin: Option<Arc<OwnedFd>>,
    pub stdout: Output,
    pub stderr: Output,
}

impl ContainerIo {
    /// stdout and stderr appended to one log file (created if missing).
    pub fn log_file(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref().to_path_buf();
        ContainerIo {
            stdin: None,
            stdout: Output::File(path.clone()),
            stderr: Output::File(path),
        }
    }

    /// stdout and stderr appended to two files.
    pub fn log_files(stdout: impl Into<PathBuf>, stderr: impl Into<PathBuf>) -> Self {
        ContainerIo {
            stdin: None,
            stdout: Output::File(stdout.into()),
            stderr: Output::File(stderr.into()),
        }
    }
}

/// Where an output stream goes.
#[derive(Debug, Clone, Default)]
pub enum Output {
    /// `/dev/null`.
    #[default]
    Null,
    /// A file opened for appending and created (mode 0640) if missing. Survives agent restarts,
    /// which a pipe to the agent does not: prefer it for logs.
    File(PathBuf),
    /// A descriptor the caller opened (a pipe the agent reads, a pre-opened file).
    Fd(Arc<OwnedFd>),
    /// Both streams as CRI log entries (timestamped, tagged stdout/stderr) appended to this
    /// file; the shim reads the container's output and writes it, so the file stays correct
    /// while the agent restarts. Give the same path for stdout and stderr.
    CriLog(PathBuf),
}
