//! cgroup v1: one hierarchy per controller (or per group of co-mounted controllers), each with
//! its own copy of the tree. A cgroup is created and removed in every hierarchy, because runc
//! places a container in all of them, named ones (`name=systemd`) and a hybrid host's cgroup2
//! mount included.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{
    CgroupError, CgroupManager, CgroupVersion, Result, read_key, validate_path, walk, write,
};
use crate::runtime::config::Resources;
use crate::runtime::mountinfo;

/// Bumped whenever this crate mounts or moves a cgroup hierarchy, so that managers read the
/// mount table again.
static MOUNTS_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Tells every [`V1Manager`] that the cgroup mounts changed.
pub(crate) fn cgroup_mounts_changed() {
    MOUNTS_GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// One mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mount_point: PathBuf,
    /// Controllers bound to it (`cpu`, `cpuacct`...); empty for named and cgroup2 hierarchies.
    pub controllers: Vec<String>,
}

/// The hierarchies read at one [`MOUNTS_GENERATION`].
type CachedHierarchies = (u64, Vec<Hierarchy>);

#[derive(Debug, Clone)]
enum Source {
    /// Read from the mount table, again whenever this crate changed the cgroup mounts:
    /// controllers can be moved between versions while the agent runs (crun's hybrid fix does
    /// exactly that). Not at every call: with hundreds of pods the mount table holds thousands
    /// of lines, and reading it for each cgroup operation made a burst of pod starts quadratic.
    MountTable(PathBuf, Arc<Mutex<Option<CachedHierarchies>>>),
    /// A fixed list, for tests over a plain directory.
    Fixed(Vec<Hierarchy>),
}

#[derive(Debug, Clone)]
pub struct V1Manager {
    source: Source,
}

impl V1Manager {
    /// The hierarchies mounted under `root`.
    pub fn new(root: &Path) -> Self {
        V1Manager {
            source: Source::MountTable(root.to_path_buf(), Arc::default()),
        }
    }

    /// A manager over the given hierarchies (directories standing in for mounts in tests).
    pub fn with_hierarchies(hierarchies: Vec<Hierarchy>) -> Self {
        V1Manager {
            source: Source::Fixed(hierarchies),
        }
    }

    pub fn hierarchies(&self) -> Vec<Hierarchy> {
        match &self.source {
            Source::Fixed(list) => list.clone(),
            Source::MountTable(root, cache) => {
                let generation = MOUNTS_GENERATION.load(Ordering::Acquire);
                let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
                match &*cache {
                    Some((seen, list)) if *seen == generation => list.clone(),
                    _ => {
                        let list = hierarchies_in(&mountinfo::read(), root);
                        *cache = Some((generation, list.clone()));
                        list
                    }
                }
            }
        }
    }

    fn dir_for(&self, controller: &str, path: &str) -> Option<PathBuf> {
        let relative = path.trim_start_matches('/');
        self.hierarchies()
            .into_iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
            .map(|h| h.mount_point.join(relative))
    }
}

/// Every cgroup (v1 or v2) mount strictly below `root`.
pub(super) fn hierarchies_in(table: &[mountinfo::MountEntry], root: &Path) -> Vec<Hierarchy> {
    let mut list: Vec<Hierarchy> = Vec::new();
    for m in table {
        if !m.mount_point.starts_with(root) || m.mount_point == root {
            continue;
        }
        let controllers = match m.fs_type.as_str() {
            "cgroup" => m
                .super_options
                .iter()
                .filter(|o| is_controller(o))
                .cloned()
                .collect(),
            "cgroup2" => Vec::new(),
            _ => continue,
        };
        // A mount point listed twice (stacked mounts) counts once; the same hierarchy mounted at
        // two places is harmless twice (create and remove are idempotent).
        if !list.iter().any(|h| h.mount_point == m.mount_point) {
            list.push(Hierarchy {
                mount_point: m.mount_point.clone(),
                controllers,
            });
        }
    }
    list
}

/// Super-options that are mount flags rather than controller names.
fn is_controller(option: &str) -> bool {
    !matches!(
        option,
        "rw" | "ro"
            | "relatime"
            | "noatime"
            | "nosuid"
            | "nodev"
            | "noexec"
            | "xattr"
            | "clone_children"
            | "noprefix"
            | "cpuset_v2_mode"
    ) && !option.starts_with("name=")
        && !option.starts_with("release_agent=")
}

impl CgroupManager for V1Manager {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V1
    }

    fn create(&self, path: &str, resources: &Resources) -> Result<()> {
        let parts = validate_path(path)?;
        for h in self.hierarchies() {
            let is_cpuset = h.controllers.iter().any(|c| c == "cpuset");
            let mut dir = h.mount_point.clone();
            for part in &parts {
                let parent = dir.clone();
                dir.push(part);
                match fs::create_dir(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(CgroupError::io("create", &dir)(e)),
                }
                // A new cpuset starts with no CPUs and no memory nodes, and no task can join it:
                // inherit the parent's.
                if is_cpuset {
                    for file in ["cpuset.cpus", "cpuset.mems"] {
                        let current = fs::read_to_string(dir.join(file)).unwrap_or_default();
                        if current.trim().is_empty() {
                            let inherited =
                                fs::read_to_string(parent.join(file)).unwrap_or_default();
                            if !inherited.trim().is_empty() {
                                write(&dir.join(file), inherited.trim())?;
                            }
                        }
                    }
                }
            }
        }
        self.apply(path, resources)
    }

    fn apply(&self, path: &str, resources: &Resources) -> Result<()> {
        validate_path(path)?;
        let r = resources;
        let wants_cpu = r.cpu_shares.is_some() || r.cpu_quota.is_some() || r.cpu_period.is_some();
        if wants_cpu && let Some(dir) = self.dir_for("cpu", path) {
            if let Some(shares) = r.cpu_shares {
                write(&dir.join("cpu.shares"), &shares.to_string())?;
            }
            // The period first: the kernel checks the quota against the current period.
            if let Some(period) = r.cpu_period {
                write(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
            }
            if let Some(quota) = r.cpu_quota {
                let quota = if quota > 0 { quota } else { -1 };
                write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
        }
        if let (Some(limit), Some(dir)) = (r.memory_limit, self.dir_for("memory", path)) {
            let limit = if limit > 0 { limit } else { -1 };
            write(&dir.join("memory.limit_in_bytes"), &limit.to_string())?;
        }
        if let (Some(limit), Some(dir)) = (r.pids_limit, self.dir_for("pids", path)) {
            let value = if limit > 0 {
                limit.to_string()
            } else {
                "max".to_string()
            };
            write(&dir.join("pids.max"), &value)?;
        }
        Ok(())
    }

    fn dirs(&self, path: &str) -> Vec<PathBuf> {
        if validate_path(path).is_err() {
            return Vec::new();
        }
        let relative = path.trim_start_matches('/');
        self.hierarchies()
            .iter()
            .flat_map(|h| walk(&h.mount_point.join(relative)))
            .collect()
    }

    fn file(&self, controller: &str, path: &str, name: &str) -> Option<PathBuf> {
        self.dir_for(controller, path).map(|d| d.join(name))
    }

    fn oom_kills(&self, path: &str) -> Option<u64> {
        read_key(
            &self.dir_for("memory", path)?.join("memory.oom_control"),
            "oom_kill",
        )
    }

    fn kill_all(&self, path: &str, timeout: Duration) -> Result<()> {
        // Freezing first stops a fork loop from outrunning the kills; SIGKILL is delivered to
        // frozen tasks as soon as they thaw.
        let freezer = self.dir_for("freezer", path).filter(|d| d.is_dir());
        if let Some(dir) = &freezer {
            let _ = write(&dir.join("freezer.state"), "FROZEN");
        }
        let pids = self.procs(path)?;
        for pid in pids
            .iter()
            .filter_map(|&p| rustix::process::Pid::from_raw(p as i32))
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        if let Some(dir) = &freezer {
            let _ = write(&dir.join("freezer.state"), "THAWED");
        }
        super::kill_loop(self, path, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(root: &Path) -> V1Manager {
        let mut list = Vec::new();
        for (dir, controllers) in [
            ("cpu", vec!["cpu"]),
            ("memory", vec!["memory"]),
            ("pids", vec!["pids"]),
            ("cpuset", vec!["cpuset"]),
            ("systemd", vec![]),
        ] {
            let mount_point = root.join(dir);
            fs::create_dir_all(&mount_point).unwrap();
            list.push(Hierarchy {
                mount_point,
                controllers: controllers.into_iter().map(String::from).collect(),
            });
        }
        fs::write(root.join("cpuset/cpuset.cpus"), "0-1\n").unwrap();
        fs::write(root.join("cpuset/cpuset.mems"), "0\n").unwrap();
        V1Manager::with_hierarchies(list)
    }

    #[test]
    fn creates_everywhere_and_writes_v1_files() {
        let tmp = tempfile::tempdir().unwrap();
        let m = fake(tmp.path());
        let r = Resources {
            cpu_shares: Some(512),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            memory_limit: Some(64 << 20),
            pids_limit: Some(32),
        };
        m.create("/maestro/burstable/pod1", &r).unwrap();
        let read = |p: &str| fs::read_to_string(tmp.path().join(p)).unwrap();
        assert_eq!(read("cpu/maestro/burstable/pod1/cpu.shares"), "512");
        assert_eq!(read("cpu/maestro/burstable/pod1/cpu.cfs_quota_us"), "50000");
        assert_eq!(
            read("cpu/maestro/burstable/pod1/cpu.cfs_period_us"),
            "100000"
        );
        assert_eq!(
            read("memory/maestro/burstable/pod1/memory.limit_in_bytes"),
            (64u64 << 20).to_string()
        );
        assert_eq!(read("pids/maestro/burstable/pod1/pids.max"), "32");
        // Each new cpuset level inherits the parent's CPUs and memory nodes.
        assert_eq!(read("cpuset/maestro/cpuset.cpus"), "0-1");
        assert_eq!(read("cpuset/maestro/burstable/pod1/cpuset.mems"), "0");
        assert!(tmp.path().join("systemd/maestro/burstable/pod1").is_dir());
        assert_eq!(m.dirs("/maestro/burstable/pod1").len(), 5);
        assert_eq!(
            m.file("memory", "/maestro/x", "memory.oom_control")
                .unwrap(),
            tmp.path().join("memory/maestro/x/memory.oom_control")
        );

        // Unlimited values use v1's spellings.
        let unlimited = Resources {
            cpu_quota: Some(-1),
            memory_limit: Some(-1),
            pids_limit: Some(0),
            ..Default::default()
        };
        m.apply("/maestro/burstable/pod1", &unlimited).unwrap();
        assert_eq!(read("cpu/maestro/burstable/pod1/cpu.cfs_quota_us"), "-1");
        assert_eq!(
            read("memory/maestro/burstable/pod1/memory.limit_in_bytes"),
            "-1"
        );
        assert_eq!(read("pids/maestro/burstable/pod1/pids.max"), "max");
    }

    #[test]
    fn oom_counter_from_oom_control() {
        let tmp = tempfile::tempdir().unwrap();
        let m = fake(tmp.path());
        m.create("/p/c", &Resources::default()).unwrap();
        assert_eq!(m.oom_kills("/p/c"), None);
        fs::write(
            tmp.path().join("memory/p/c/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        assert_eq!(m.oom_kills("/p/c"), Some(2));
    }

    #[test]
    fn controller_options() {
        assert!(is_controller("cpuacct"));
        assert!(!is_controller("name=systemd"));
        assert!(!is_controller("rw"));
    }
}
