//! cgroup v2: one unified tree. Controllers must be enabled in each parent's
//! `cgroup.subtree_control` before a child can be limited, and limits use v2's own files
//! (`cpu.weight`, `cpu.max`, `memory.max`, `pids.max`).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    CgroupManager, CgroupVersion, Result, read_key, shares_to_weight, validate_path, walk, write,
};
use crate::runtime::config::Resources;
use crate::runtime::qos::DEFAULT_CPU_PERIOD;

/// The controllers a pod's limits need, in the order they are enabled.
const WANTED: &[&str] = &["cpuset", "cpu", "io", "memory", "hugetlb", "pids"];

#[derive(Debug, Clone)]
pub struct V2Manager {
    root: PathBuf,
}

impl V2Manager {
    /// The unified hierarchy mounted at `root` (or a directory standing in for it in tests).
    pub fn new(root: &Path) -> Self {
        V2Manager {
            root: root.to_path_buf(),
        }
    }

    fn dir(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// Enables in `dir`'s children every wanted controller `dir` itself has.
    fn enable_controllers(dir: &Path) -> Result<()> {
        let available = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        let enabled = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
        let missing: Vec<&str> = WANTED
            .iter()
            .copied()
            .filter(|c| available.split_whitespace().any(|a| a == *c))
            .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let file = dir.join("cgroup.subtree_control");
        let all = missing
            .iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ");
        if write(&file, &all).is_ok() {
            return Ok(());
        }
        // One controller the kernel refuses here (e.g. cpuset in a threaded subtree) must not
        // cost the others.
        for controller in missing {
            let _ = write(&file, &format!("+{controller}"));
        }
        Ok(())
    }
}

impl CgroupManager for V2Manager {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V2
    }

    fn create(&self, path: &str, resources: &Resources) -> Result<()> {
        let parts = validate_path(path)?;
        let mut dir = self.root.clone();
        for part in parts {
            Self::enable_controllers(&dir)?;
            dir.push(part);
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(super::CgroupError::io("create", &dir)(e)),
            }
        }
        self.apply(path, resources)
    }

    fn apply(&self, path: &str, resources: &Resources) -> Result<()> {
        validate_path(path)?;
        let dir = self.dir(path);
        let r = resources;
        if let Some(shares) = r.cpu_shares {
            write(
                &dir.join("cpu.weight"),
                &shares_to_weight(shares).to_string(),
            )?;
        }
        if r.cpu_quota.is_some() || r.cpu_period.is_some() {
            let quota = match r.cpu_quota {
                Some(q) if q > 0 => q.to_string(),
                _ => "max".to_string(),
            };
            let period = r.cpu_period.unwrap_or(DEFAULT_CPU_PERIOD);
            write(&dir.join("cpu.max"), &format!("{quota} {period}"))?;
        }
        if let Some(limit) = r.memory_limit {
            let value = if limit > 0 {
                limit.to_string()
            } else {
                "max".to_string()
            };
            write(&dir.join("memory.max"), &value)?;
        }
        if let Some(limit) = r.pids_limit {
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
        walk(&self.dir(path))
    }

    fn file(&self, _controller: &str, path: &str, name: &str) -> Option<PathBuf> {
        Some(self.dir(path).join(name))
    }

    fn oom_kills(&self, path: &str) -> Option<u64> {
        // Hierarchical: kills in child cgroups count too, which is what a container whose
        // runtime nests a sub-cgroup needs.
        read_key(&self.dir(path).join("memory.events"), "oom_kill")
    }

    fn kill_all(&self, path: &str, timeout: Duration) -> Result<()> {
        // cgroup.kill (Linux 5.14) kills the whole subtree atomically, forks included.
        let kill = self.dir(path).join("cgroup.kill");
        if kill.exists() {
            let _ = write(&kill, "1");
        }
        super::kill_loop(self, path, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_with_controllers_enabled_and_writes_v2_files() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::write(
            root.join("cgroup.controllers"),
            "cpuset cpu io memory hugetlb pids rdma misc\n",
        )
        .unwrap();
        fs::write(root.join("cgroup.subtree_control"), "").unwrap();
        let m = V2Manager::new(root);
        let r = Resources {
            cpu_shares: Some(1024),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            memory_limit: Some(64 << 20),
            pids_limit: Some(32),
        };
        m.create("/maestro/besteffort/pod1", &r).unwrap();
        let read = |p: &str| fs::read_to_string(root.join(p)).unwrap();
        assert_eq!(
            read("cgroup.subtree_control"),
            "+cpuset +cpu +io +memory +hugetlb +pids"
        );
        let pod = "maestro/besteffort/pod1";
        assert_eq!(read(&format!("{pod}/cpu.weight")), "39");
        assert_eq!(read(&format!("{pod}/cpu.max")), "50000 100000");
        assert_eq!(
            read(&format!("{pod}/memory.max")),
            (64u64 << 20).to_string()
        );
        assert_eq!(read(&format!("{pod}/pids.max")), "32");
        assert_eq!(m.dirs("/maestro").len(), 3);

        let unlimited = Resources {
            cpu_quota: Some(-1),
            memory_limit: Some(0),
            pids_limit: Some(-1),
            ..Default::default()
        };
        m.apply("/maestro/besteffort/pod1", &unlimited).unwrap();
        assert_eq!(read(&format!("{pod}/cpu.max")), "max 100000");
        assert_eq!(read(&format!("{pod}/memory.max")), "max");
        assert_eq!(read(&format!("{pod}/pids.max")), "max");

        // Already enabled controllers are not written again.
        fs::write(
            root.join("cgroup.subtree_control"),
            "cpuset cpu io memory hugetlb pids\n",
        )
        .unwrap();
        m.create("/maestro/other", &Resources::default()).unwrap();
        assert_eq!(
            read("cgroup.subtree_control"),
            "cpuset cpu io memory hugetlb pids\n"
        );
    }

    #[test]
    fn oom_counter_and_files() {
        let tmp = tempfile::tempdir().unwrap();
        let m = V2Manager::new(tmp.path());
        m.create("/p/c", &Resources::default()).unwrap();
        assert_eq!(m.oom_kills("/p/c"), None);
        fs::write(
            tmp.path().join("p/c/memory.events"),
            "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n",
        )
        .unwrap();
        assert_eq!(m.oom_kills("/p/c"), Some(1));
        assert_eq!(
            m.file("memory", "/p/c", "memory.max").unwrap(),
            tmp.path().join("p/c/memory.max")
        );
        assert!(m.exists("/p/c"));
        assert!(!m.exists("/p/d"));
        assert_eq!(m.version(), CgroupVersion::V2);
    }
}
