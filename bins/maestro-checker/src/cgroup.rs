//! Finds this process's cgroup files from inside a container, on cgroup v1, v2 and hybrid hosts.
//! A controller's directory is the mount of its hierarchy (from mountinfo) plus the process's
//! path in it (from `/proc/self/cgroup`) minus the mount's root: with a cgroup namespace the
//! path is `/` and the mount shows the container's own cgroup; without one the runtime bind
//! mounts the container's directory and the mount's root strips the host part.

use std::io;
use std::path::{Path, PathBuf};

use crate::procfs::{self, MountInfo};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// The process's cgroup membership and the cgroup mounts it can see.
#[derive(Debug)]
pub struct Cgroups {
    /// Where `/` is: `/` in a container, a fake tree in unit tests.
    root: PathBuf,
    mounts: Vec<MountInfo>,
    /// `(controllers, path)` per line of `/proc/self/cgroup`; v2's line has no controllers.
    membership: Vec<(Vec<String>, String)>,
}

impl Cgroups {
    pub fn read(root: &Path) -> io::Result<Cgroups> {
        let mountinfo = std::fs::read_to_string(root.join("proc/self/mountinfo"))?;
        let cgroup = std::fs::read_to_string(root.join("proc/self/cgroup"))?;
        Ok(Cgroups::parse(root, &mountinfo, &cgroup))
    }

    pub fn parse(root: &Path, mountinfo: &str, cgroup: &str) -> Cgroups {
        let membership = cgroup
            .lines()
            .filter_map(|line| {
                let mut parts = line.splitn(3, ':');
                let _id = parts.next()?;
                let controllers = parts.next()?;
                let path = parts.next()?;
                let controllers = controllers
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect();
                Some((controllers, path.to_owned()))
            })
            .collect();
        Cgroups {
            root: root.to_path_buf(),
            mounts: procfs::parse_mountinfo(mountinfo),
            membership,
        }
    }

    /// The directory with `controller`'s files: its v1 hierarchy if it has one (a hybrid
    /// host's cgroup2 mount lacks the controllers that v1 holds), else the v2 hierarchy.
    pub fn dir(&self, controller: &str) -> Option<(PathBuf, Version)> {
        let v1 = self.membership.iter().find_map(|(controllers, path)| {
            controllers.iter().any(|c| c == controller).then_some(path)
        });
        if let Some(path) = v1
            && let Some(mount) =
                self.mounts.iter().rev().find(|m| {
                    m.fs_type == "cgroup" && m.super_options.iter().any(|o| o == controller)
                })
        {
            return Some((self.resolve(mount, path), Version::V1));
        }
        let path = self
            .membership
            .iter()
            .find_map(|(controllers, path)| controllers.is_empty().then_some(path))?;
        let mount = self.mounts.iter().rev().find(|m| m.fs_type == "cgroup2")?;
        Some((self.resolve(mount, path), Version::V2))
    }

    fn resolve(&self, mount: &MountInfo, path: &str) -> PathBuf {
        let base = self.root.join(mount.mount_point.trim_start_matches('/'));
        let rel = if mount.root == "/" {
            Some(path)
        } else {
            path.strip_prefix(mount.root.as_str())
                .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        match rel.map(|r| r.trim_start_matches('/')) {
            Some(rel) if !rel.is_empty() && base.join(rel).is_dir() => base.join(rel),
            // The path lies outside what the mount shows (or is its root): the mount itself
            // is the process's cgroup, as runtimes arrange it.
            _ => base,
        }
    }

    /// Reads `controller`'s `v1_file` or `v2_file`, whichever applies; returns the trimmed
    /// value, the version and the file read.
    pub fn read_file(
        &self,
        controller: &str,
        v1_file: &str,
        v2_file: &str,
    ) -> Result<(String, Version, PathBuf), String> {
        let (dir, version) = self
            .dir(controller)
            .ok_or_else(|| format!("no cgroup hierarchy with the {controller} controller"))?;
        let file = dir.join(match version {
            Version::V1 => v1_file,
            Version::V2 => v2_file,
        });
        let value = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        Ok((value.trim().to_owned(), version, file))
    }
}

/// cgroup v1 reports "no memory limit" as the largest page-aligned counter value.
pub fn is_unlimited_v1_memory(value: u64) -> bool {
    value >= 1 << 62
}

/// The cpu.weight runc and crun write for a cpu.shares value on cgroup v2.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn v1_with_a_cgroup_namespace_reads_the_mount() {
        let root = tempdir();
        let r = root.path();
        write(
            &r.join("sys/fs/cgroup/memory/memory.limit_in_bytes"),
            "67108864\n",
        );
        let cg = Cgroups::parse(
            r,
            "30 20 0:30 / /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n\
             31 20 0:31 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
            "4:memory:/\n0::/\n",
        );
        let (value, version, _) = cg
            .read_file("memory", "memory.limit_in_bytes", "memory.max")
            .unwrap();
        assert_eq!((value.as_str(), version), ("67108864", Version::V1));
        // A controller v1 does not have goes to the unified hierarchy.
        assert_eq!(
            cg.dir("hugetlb"),
            Some((r.join("sys/fs/cgroup/unified"), Version::V2))
        );
    }

    #[test]
    fn v1_without_namespace_strips_the_bind_mount_root() {
        let root = tempdir();
        let r = root.path();
        write(
            &r.join("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us"),
            "50000\n",
        );
        let cg = Cgroups::parse(
            r,
            "30 20 0:30 /maestro/pod1/c1 /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct\n",
            "5:cpu,cpuacct:/maestro/pod1/c1\n",
        );
        let (value, version, file) = cg.read_file("cpu", "cpu.cfs_quota_us", "cpu.max").unwrap();
        assert_eq!((value.as_str(), version), ("50000", Version::V1));
        assert_eq!(file, r.join("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us"));
    }

    #[test]
    fn v2_host_view_follows_the_path() {
        let root = tempdir();
        let r = root.path();
        write(&r.join("sys/fs/cgroup/maestro/pod1/c1/memory.max"), "max\n");
        let cg = Cgroups::parse(
            r,
            "30 20 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            "0::/maestro/pod1/c1\n",
        );
        let (value, version, _) = cg
            .read_file("memory", "memory.limit_in_bytes", "memory.max")
            .unwrap();
        assert_eq!((value.as_str(), version), ("max", Version::V2));
        assert!(cg.read_file("pids", "pids.max", "pids.max").is_err());
    }

    #[test]
    fn conversions() {
        assert!(is_unlimited_v1_memory(9_223_372_036_854_771_712));
        assert!(!is_unlimited_v1_memory(64 << 20));
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
    }

    fn tempdir() -> TempDir {
        TempDir::new()
    }

    /// A temp dir removed on drop (std only: this crate has no dev-dependencies to build).
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "maestro-checker-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}
