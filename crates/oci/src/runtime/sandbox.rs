//! The pod sandbox, without a pause container: network, IPC and UTS namespaces that outlive any
//! one container, kept alive by bind mounts of their nsfs files under the pod's run directory,
//! a pod-wide `/dev/shm`, and the pod cgroup in its QoS tier. Containers join by path.
//!
//! ```text
//! <pods dir>/<uid>/                 (default /run/maestro/pods/<uid>)
//!   ns/net ns/ipc ns/uts            nsfs bind mounts (unshare --net=FILE ...)
//!   shm/                            tmpfs shared by the pod's containers as /dev/shm
//!   hostname                        the pod's hostname, bound at /etc/hostname
//!   sandbox.json                    written last: its presence means "complete"
//! cgroup <root>/pod<uid>            guaranteed
//!        <root>/burstable/pod<uid>  burstable
//!        <root>/besteffort/pod<uid> best effort (the tier itself has cpu.shares = 2)
//! ```
//!
//! Teardown needs nothing but the uid, so it also cleans up after a crash halfway through
//! creation, and it is idempotent.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::cgroup::CgroupManager;
use super::config::{ContainerConfig, Mount, NamespaceMode, Namespaces, Resources};
use super::error::{Error, Result, run};
use super::mountinfo;
use super::qos::{MIN_CPU_SHARES, QosClass};
use super::spec::is_valid_id;

/// Set on every container of a pod by [`PodSandbox::configure`]: lets the agent find a pod's
/// containers in [`super::OciRuntime::list`] after a restart.
pub const POD_UID_ANNOTATION: &str = "io.maestro.pod.uid";

pub const DEFAULT_PODS_DIR: &str = "/run/maestro/pods";
pub const DEFAULT_CGROUP_ROOT: &str = "/maestro";
/// Docker's and containerd's `/dev/shm` size.
pub const DEFAULT_SHM_SIZE: u64 = 64 << 20;

/// How long teardown waits for leftover processes to die.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// What the agent knows about a pod when it creates its sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The pod uid; names the run directory and the cgroup (`pod<uid>`).
    pub uid: String,
    /// Set in the UTS namespace (the pod name, or `spec.hostname`).
    pub hostname: String,
    pub qos: QosClass,
    /// Pod-level limits, from [`super::qos::pod_resources`].
    pub resources: Resources,
    /// Size of the pod's `/dev/shm`.
    pub shm_size: u64,
}

impl SandboxConfig {
    pub fn new(uid: impl Into<String>, hostname: impl Into<String>, qos: QosClass) -> Self {
        SandboxConfig {
            uid: uid.into(),
            hostname: hostname.into(),
            qos,
            resources: Resources::default(),
            shm_size: DEFAULT_SHM_SIZE,
        }
    }
}

/// A created sandbox: paths to hand to containers and to the pod network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSandbox {
    pub uid: String,
    pub hostname: String,
    /// `<pods dir>/<uid>`.
    pub dir: PathBuf,
    /// The pod cgroup (`/maestro/burstable/pod<uid>`).
    pub cgroup_path: String,
}

impl PodSandbox {
    /// The network namespace file: the pod network moves a veth end into it
    /// (`ip link set X netns <path>`, `nsenter --net=<path>`).
    pub fn net_ns(&self) -> PathBuf {
        self.dir.join("ns/net")
    }

    pub fn ipc_ns(&self) -> PathBuf {
        self.dir.join("ns/ipc")
    }

    pub fn uts_ns(&self) -> PathBuf {
        self.dir.join("ns/uts")
    }

    /// The pod's shared `/dev/shm` on the host.
    pub fn shm_dir(&self) -> PathBuf {
        self.dir.join("shm")
    }

    pub fn hostname_file(&self) -> PathBuf {
        self.dir.join("hostname")
    }

    /// The namespaces every container of the pod joins (pid stays private per container).
    pub fn namespaces(&self) -> Namespaces {
        Namespaces {
            network: NamespaceMode::Join(self.net_ns()),
            ipc: NamespaceMode::Join(self.ipc_ns()),
            uts: NamespaceMode::Join(self.uts_ns()),
            pid: NamespaceMode::Private,
            cgroup: NamespaceMode::Private,
        }
    }

    /// The cgroup of one of the pod's containers.
    pub fn container_cgroup(&self, container_id: &str) -> String {
        format!("{}/{container_id}", self.cgroup_path)
    }

    /// Puts a container into the pod: its namespaces, a cgroup below the pod's, the shared
    /// `/dev/shm` and `/etc/hostname`, the hostname, and the pod-uid annotation. Mounts the
    /// config already has at those destinations win.
    pub fn configure(&self, config: &mut ContainerConfig) {
        config.namespaces = Namespaces {
            pid: config.namespaces.pid.clone(),
            ..self.namespaces()
        };
        config.cgroup_path = Some(self.container_cgroup(&config.id));
        config.hostname = Some(self.hostname.clone());
        config
            .annotations
            .insert(POD_UID_ANNOTATION.into(), self.uid.clone());
        for mount in [
            Mount::bind(self.shm_dir(), "/dev/shm", false),
            Mount::bind(self.hostname_file(), "/etc/hostname", true),
        ] {
            if !config
                .mounts
                .iter()
                .any(|m| m.destination == mount.destination)
            {
                config.mounts.push(mount);
            }
        }
    }
}

/// Creates, finds and tears down pod sandboxes on this node.
#[derive(Debug, Clone)]
pub struct SandboxManager {
    pods_dir: PathBuf,
    cgroup_root: String,
    cgroups: Arc<dyn CgroupManager>,
}

impl SandboxManager {
    /// `pods_dir`: where sandboxes live (default [`DEFAULT_PODS_DIR`]); `cgroup_root`: the node's
    /// cgroup for pods (default [`DEFAULT_CGROUP_ROOT`]).
    pub fn new(
        pods_dir: impl Into<PathBuf>,
        cgroup_root: impl Into<String>,
        cgroups: Arc<dyn CgroupManager>,
    ) -> Self {
        SandboxManager {
            pods_dir: pods_dir.into(),
            cgroup_root: cgroup_root.into().trim_end_matches('/').to_string(),
            cgroups,
        }
    }

    pub fn cgroups(&self) -> &Arc<dyn CgroupManager> {
        &self.cgroups
    }

    /// The cgroup a pod of class `qos` gets.
    pub fn pod_cgroup_path(&self, uid: &str, qos: QosClass) -> String {
        match qos.cgroup_tier() {
            None => format!("{}/pod{uid}", self.cgroup_root),
            Some(tier) => format!("{}/{tier}/pod{uid}", self.cgroup_root),
        }
    }

    fn pod_dir(&self, uid: &str) -> Result<PathBuf> {
        if !is_valid_id(uid) {
            return Err(Error::InvalidConfig(format!(
                "pod uid {uid:?} is not a valid name"
            )));
        }
        Ok(self.pods_dir.join(uid))
    }

    /// Creates the sandbox. A complete sandbox with this uid is an error (use [`Self::get`]);
    /// leftovers of an interrupted creation are torn down first.
    pub fn create(&self, config: &SandboxConfig) -> Result<PodSandbox> {
        let dir = self.pod_dir(&config.uid)?;
        validate_hostname(&config.hostname)?;
        if dir.join("sandbox.json").exists() {
            return Err(Error::AlreadyExists {
                kind: "sandbox",
                id: config.uid.clone(),
            });
        }
        if dir.exists() {
            self.teardown(&config.uid)?;
        }
        let sandbox = PodSandbox {
            uid: config.uid.clone(),
            hostname: config.hostname.clone(),
            dir,
            cgroup_path: self.pod_cgroup_path(&config.uid, config.qos),
        };
        match self.build(&sandbox, config) {
            Ok(()) => Ok(sandbox),
            Err(e) => {
                if let Err(cleanup) = self.teardown(&config.uid) {
                    tracing::warn!(uid = %config.uid, error = %cleanup, "cleanup after failed sandbox creation");
                }
                Err(e)
            }
        }
    }

    fn build(&self, sandbox: &PodSandbox, config: &SandboxConfig) -> Result<()> {
        let ns_dir = sandbox.dir.join("ns");
        fs::create_dir_all(&ns_dir).map_err(Error::io_path("create", &ns_dir))?;
        for file in [sandbox.net_ns(), sandbox.ipc_ns(), sandbox.uts_ns()] {
            fs::File::create(&file).map_err(Error::io_path("create", &file))?;
        }
        // unshare bind-mounts each new namespace onto its file, then runs the command inside
        // them; the namespaces live on after it exits, held by the mounts.
        let mut unshare = Command::new("unshare");
        unshare
            .arg(format!("--net={}", sandbox.net_ns().display()))
            .arg(format!("--ipc={}", sandbox.ipc_ns().display()))
            .arg(format!("--uts={}", sandbox.uts_ns().display()))
            .args([
                "sh",
                "-c",
                "echo \"$1\" > /proc/sys/kernel/hostname && ip link set lo up",
                "maestro-sandbox",
            ])
            .arg(&config.hostname);
        run(&mut unshare)?;

        let shm = sandbox.shm_dir();
        fs::create_dir_all(&shm).map_err(Error::io_path("create", &shm))?;
        let options = std::ffi::CString::new(format!("mode=1777,size={}", config.shm_size))
            .expect("no NUL in numbers");
        rustix::mount::mount(
            "shm",
            &shm,
            "tmpfs",
            rustix::mount::MountFlags::NOSUID
                | rustix::mount::MountFlags::NODEV
                | rustix::mount::MountFlags::NOEXEC,
            options.as_c_str(),
        )
        .map_err(|e| Error::io_path("mount a tmpfs on", &shm)(e.into()))?;

        let hostname = sandbox.hostname_file();
        fs::write(&hostname, format!("{}\n", config.hostname))
            .map_err(Error::io_path("write", &hostname))?;

        self.ensure_tiers(config.qos)?;
        self.cgroups
            .create(&sandbox.cgroup_path, &config.resources)?;

        let json = serde_json::to_vec_pretty(sandbox).expect("sandbox serializes");
        write_atomic(&sandbox.dir.join("sandbox.json"), &json)
    }

    /// The node root and the QoS tier: created on demand and kept (shared by all pods).
    fn ensure_tiers(&self, qos: QosClass) -> Result<()> {
        self.cgroups
            .create(&self.cgroup_root, &Resources::default())?;
        if let Some(tier) = qos.cgroup_tier() {
            // Best-effort pods together weigh as little as one best-effort pod on a kubelet.
            let resources = match qos {
                QosClass::BestEffort => Resources {
                    cpu_shares: Some(MIN_CPU_SHARES),
                    ..Default::default()
                },
                _ => Resources::default(),
            };
            self.cgroups
                .create(&format!("{}/{tier}", self.cgroup_root), &resources)?;
        }
        Ok(())
    }

    /// A complete sandbox, if there is one.
    pub fn get(&self, uid: &str) -> Result<Option<PodSandbox>> {
        let file = self.pod_dir(uid)?.join("sandbox.json");
        match fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| Error::Decode {
                    what: file.display().to_string(),
                    source,
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io_path("read", &file)(e)),
        }
    }

    /// Uids of every directory under the pods dir, complete sandboxes or leftovers: after a
    /// restart the agent keeps the ones it still wants and tears down the rest.
    pub fn list(&self) -> Result<Vec<String>> {
        let entries = match fs::read_dir(&self.pods_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io_path("read", &self.pods_dir)(e)),
        };
        let mut uids: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        uids.sort();
        Ok(uids)
    }

    /// Removes everything the sandbox holds: processes left in the pod cgroup, the pod cgroup
    /// (every tier is tried, so a crash before `sandbox.json` is covered), the namespace and
    /// shm mounts, the run directory. Containers should be deleted from the runtime first, or
    /// their runtime state outlives the processes killed here.
    pub fn teardown(&self, uid: &str) -> Result<()> {
        let dir = self.pod_dir(uid)?;
        let recorded = self.get(uid).ok().flatten().map(|s| s.cgroup_path);
        let candidates = recorded.into_iter().chain(
            [
                QosClass::Guaranteed,
                QosClass::Burstable,
                QosClass::BestEffort,
            ]
            .into_iter()
            .map(|q| self.pod_cgroup_path(uid, q)),
        );
        for path in candidates {
            if self.cgroups.exists(&path) {
                self.cgroups.remove(&path, KILL_TIMEOUT)?;
            }
        }
        unmount_all_under(&dir)?;
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io_path("remove", &dir)(e)),
        }
    }
}

fn validate_hostname(hostname: &str) -> Result<()> {
    let ok = !hostname.is_empty()
        && hostname.len() <= 64
        && hostname
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "hostname {hostname:?} is not a valid host name"
        )))
    }
}

/// Unmounts every mount at or below `dir`, deepest first; a busy one is detached lazily.
pub(crate) fn unmount_all_under(dir: &Path) -> Result<()> {
    for mount_point in mountinfo::mounts_under(&mountinfo::read(), dir) {
        use rustix::mount::{UnmountFlags, unmount};
        if unmount(&mount_point, UnmountFlags::empty()).is_err() {
            unmount(&mount_point, UnmountFlags::DETACH)
                .map_err(|e| Error::io_path("unmount", &mount_point)(e.into()))?;
        }
    }
    Ok(())
}

/// Writes through a temporary file and a rename, so readers never see half a file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).map_err(Error::io_path("write", &tmp))?;
    fs::rename(&tmp, path).map_err(Error::io_path("rename", &tmp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::cgroup::V2Manager;

    fn sandbox() -> PodSandbox {
        PodSandbox {
            uid: "u1".into(),
            hostname: "web-0".into(),
            dir: "/run/maestro/pods/u1".into(),
            cgroup_path: "/maestro/burstable/podu1".into(),
        }
    }

    #[test]
    fn configure_puts_a_container_into_the_pod() {
        let s = sandbox();
        let mut c = ContainerConfig::new("app", "/rootfs", vec!["sh".into()]);
        c.mounts.push(Mount::bind("/custom/shm", "/dev/shm", false));
        s.configure(&mut c);
        assert_eq!(
            c.namespaces.network,
            NamespaceMode::Join("/run/maestro/pods/u1/ns/net".into())
        );
        assert_eq!(
            c.namespaces.uts,
            NamespaceMode::Join("/run/maestro/pods/u1/ns/uts".into())
        );
        assert_eq!(c.namespaces.pid, NamespaceMode::Private);
        assert_eq!(
            c.cgroup_path.as_deref(),
            Some("/maestro/burstable/podu1/app")
        );
        assert_eq!(c.annotations[POD_UID_ANNOTATION], "u1");
        assert_eq!(c.hostname.as_deref(), Some("web-0"));
        // The container's own /dev/shm wins; /etc/hostname is added.
        let shm: Vec<_> = c
            .mounts
            .iter()
            .filter(|m| m.destination == Path::new("/dev/shm"))
            .collect();
        assert_eq!(shm.len(), 1);
        assert!(
            c.mounts
                .iter()
                .any(|m| m.destination == Path::new("/etc/hostname") && m.read_only)
        );
    }

    #[test]
    fn cgroup_paths_by_qos() {
        let tmp = tempfile::tempdir().unwrap();
        let m = SandboxManager::new(
            tmp.path().join("pods"),
            "/maestro/",
            Arc::new(V2Manager::new(tmp.path())),
        );
        assert_eq!(
            m.pod_cgroup_path("u", QosClass::Guaranteed),
            "/maestro/podu"
        );
        assert_eq!(
            m.pod_cgroup_path("u", QosClass::Burstable),
            "/maestro/burstable/podu"
        );
        assert_eq!(
            m.pod_cgroup_path("u", QosClass::BestEffort),
            "/maestro/besteffort/podu"
        );
        assert!(matches!(
            m.create(&SandboxConfig::new("../x", "h", QosClass::Burstable)),
            Err(Error::InvalidConfig(_))
        ));
        assert!(matches!(
            m.create(&SandboxConfig::new("u", "bad host", QosClass::Burstable)),
            Err(Error::InvalidConfig(_))
        ));
        assert_eq!(m.list().unwrap(), Vec::<String>::new());
        assert_eq!(m.get("u").unwrap(), None);
        // Nothing to tear down is fine.
        m.teardown("u").unwrap();
    }
}
