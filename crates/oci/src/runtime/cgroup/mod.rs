//! cgroup v1 and v2 behind one interface: pod and QoS-tier cgroups the node creates itself
//! (containers' own cgroups are created by runc/crun from the spec's `cgroupsPath`), limits in
//! either version's files, OOM-kill counters, and removal that leaves nothing behind.
//!
//! Paths are absolute within a hierarchy (`/maestro/burstable/pod<uid>`), the same strings the
//! OCI spec's `cgroupsPath` uses. The version is detected at runtime ([`detect`]); a hybrid host
//! (v1 controllers plus a cgroup2 mount below the root, like Debian without systemd) is driven
//! as v1, its cgroup2 hierarchy included so nothing is left there either.

mod hybrid;
mod v1;
mod v2;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

pub use hybrid::{HybridFix, crun_hybrid_fix, hybrid_controllers};
pub use v1::{Hierarchy, V1Manager};
pub use v2::V2Manager;

use super::config::Resources;
use super::mountinfo;

/// Where cgroup filesystems are mounted on every distribution we know of.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A cgroup file or directory operation failed.
    #[error("cgroup {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// No cgroup filesystem is mounted where we looked.
    #[error("no cgroup hierarchy is mounted under {0}")]
    NotMounted(PathBuf),
    /// Paths must be absolute, without `.`/`..`.
    #[error("invalid cgroup path {0:?}")]
    InvalidPath(String),
    /// Processes survived SIGKILL (e.g. stuck in uninterruptible sleep).
    #[error("processes {pids:?} still in cgroup {path} after {after:?}")]
    Busy {
        path: String,
        pids: Vec<u32>,
        after: Duration,
    },
    /// Mounting a controller for crun's hybrid-layout fix failed.
    #[error("cannot move cgroup controller {controller} to cgroup v1: {message}")]
    HybridFix { controller: String, message: String },
}

impl CgroupError {
    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CgroupError {
        let path = path.to_path_buf();
        move |source| CgroupError::Io { op, path, source }
    }
}

type Result<T, E = CgroupError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// Node-side cgroup operations; both versions implement all of them.
pub trait CgroupManager: Send + Sync + fmt::Debug {
    fn version(&self) -> CgroupVersion;

    /// Creates `path` and any missing parent in every hierarchy, then applies `resources` to it.
    /// Existing directories are kept (and re-limited): creating is idempotent.
    fn create(&self, path: &str, resources: &Resources) -> Result<()>;

    /// Writes `resources` into an existing cgroup; `None` fields are left as they are.
    fn apply(&self, path: &str, resources: &Resources) -> Result<()>;

    /// Whether the cgroup exists in at least one hierarchy.
    fn exists(&self, path: &str) -> bool {
        !self.dirs(path).is_empty()
    }

    /// Every directory of this cgroup and its descendants, in every hierarchy.
    fn dirs(&self, path: &str) -> Vec<PathBuf>;

    /// The file `name` of `path` in the hierarchy holding `controller` (`"cpu"`, `"memory"`...;
    /// ignored on v2), whether or not it exists.
    fn file(&self, controller: &str, path: &str, name: &str) -> Option<PathBuf>;

    /// Pids of every process in the cgroup or below it.
    fn procs(&self, path: &str) -> Result<Vec<u32>> {
        let mut pids: Vec<u32> = Vec::new();
        for dir in self.dirs(path) {
            let file = dir.join("cgroup.procs");
            match fs::read_to_string(&file) {
                Ok(text) => pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(CgroupError::io("read", &file)(e)),
            }
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// How many processes the kernel OOM-killed in this cgroup (v1 `memory.oom_control`,
    /// v2 `memory.events`); `None` when the cgroup or the counter does not exist.
    fn oom_kills(&self, path: &str) -> Option<u64>;

    /// SIGKILLs every process left in the cgroup and waits until it is empty.
    fn kill_all(&self, path: &str, timeout: Duration) -> Result<()> {
        kill_loop(self, path, timeout)
    }

    /// Kills what is left inside, then removes the cgroup and its descendants from every
    /// hierarchy, deepest first. Removing a cgroup that does not exist succeeds.
    fn remove(&self, path: &str, timeout: Duration) -> Result<()> {
        validate_path(path)?;
        self.kill_all(path, timeout)?;
        remove_dirs(self.dirs(path), timeout)
    }
}

/// Finds the cgroup layout under `root` (normally [`DEFAULT_ROOT`]) from the mount table.
pub fn detect(root: &Path) -> Result<Arc<dyn CgroupManager>> {
    match version_in(&mountinfo::read(), root)? {
        CgroupVersion::V2 => Ok(Arc::new(V2Manager::new(root))),
        CgroupVersion::V1 => Ok(Arc::new(V1Manager::new(root))),
    }
}

/// cgroup2 mounted at the root itself is a unified host; v1 hierarchies below it (with or
/// without a cgroup2 mount next to them) is v1 or hybrid, driven as v1.
fn version_in(table: &[mountinfo::MountEntry], root: &Path) -> Result<CgroupVersion> {
    if table
        .iter()
        .any(|m| m.mount_point == root && m.fs_type == "cgroup2")
    {
        Ok(CgroupVersion::V2)
    } else if table
        .iter()
        .any(|m| m.fs_type == "cgroup" && m.mount_point.starts_with(root))
    {
        Ok(CgroupVersion::V1)
    } else {
        Err(CgroupError::NotMounted(root.to_path_buf()))
    }
}

/// Checks a cgroup path and returns its components.
pub(crate) fn validate_path(path: &str) -> Result<Vec<&str>> {
    let invalid = || CgroupError::InvalidPath(path.to_string());
    let rest = path.strip_prefix('/').ok_or_else(invalid)?;
    let parts: Vec<&str> = rest.split('/').collect();
    // The root cgroup is never ours to limit or remove; `.`, `..` and `//` would let a path
    // name something other than what it spells.
    if rest.is_empty()
        || parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(invalid());
    }
    Ok(parts)
}

/// `dir` and every directory below it, parents first.
pub(crate) fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(entries) = fs::read_dir(&d) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(entry.path());
                }
            }
        }
        out.push(d);
    }
    out.sort_by_key(|p| p.components().count());
    out
}

pub(crate) fn write(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).map_err(CgroupError::io("write", path))
}

/// Reads a `key value` line from a flat-keyed file (`memory.events`, `memory.oom_control`).
pub(crate) fn read_key(path: &Path, key: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn kill_loop<M: CgroupManager + ?Sized>(manager: &M, path: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let pids = manager.procs(path)?;
        if pids.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(CgroupError::Busy {
                path: path.to_string(),
                pids,
                after: timeout,
            });
        }
        for pid in pids {
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                // ESRCH: it exited between the read and the kill.
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// rmdir deepest first. A cgroup whose last task is still exiting answers EBUSY for a moment.
fn remove_dirs(mut dirs: Vec<PathBuf>, timeout: Duration) -> Result<()> {
    dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    let deadline = Instant::now() + timeout;
    for dir in dirs {
        loop {
            match fs::remove_dir(&dir) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) if e.raw_os_error() == Some(16) && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(CgroupError::io("remove", &dir)(e)),
            }
        }
    }
    Ok(())
}

/// cgroup v1 `cpu.shares` → cgroup v2 `cpu.weight`: the linear map of [2, 262144] onto
/// [1, 10000] that runc, crun and systemd agree on.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_validated() {
        assert_eq!(validate_path("/maestro/pod1").unwrap(), ["maestro", "pod1"]);
        for bad in ["", "/", "maestro", "/a/../b", "/a/./b", "/a//b", "/a/"] {
            assert!(validate_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn detects_the_version_from_the_mount_table() {
        let hybrid = mountinfo::parse(
            "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
",
        );
        let unified = mountinfo::parse(
            "31 23 0:28 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        let root = Path::new(DEFAULT_ROOT);
        assert_eq!(version_in(&hybrid, root).unwrap(), CgroupVersion::V1);
        assert_eq!(version_in(&unified, root).unwrap(), CgroupVersion::V2);
        assert!(matches!(
            version_in(&[], root),
            Err(CgroupError::NotMounted(_))
        ));
        assert!(matches!(
            version_in(&hybrid, Path::new("/elsewhere")),
            Err(CgroupError::NotMounted(_))
        ));
        let hierarchies = v1::hierarchies_in(&hybrid, root);
        let names: Vec<(String, Vec<String>)> = hierarchies
            .iter()
            .map(|h| (h.mount_point.display().to_string(), h.controllers.clone()))
            .collect();
        assert_eq!(
            names,
            [
                ("/sys/fs/cgroup/cpu".to_string(), vec!["cpu".to_string()]),
                ("/sys/fs/cgroup/systemd".to_string(), vec![]),
                ("/sys/fs/cgroup/unified".to_string(), vec![]),
            ]
        );
    }

    #[test]
    fn weight_conversion() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 1);
    }

    #[test]
    fn flat_keyed_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("memory.events");
        fs::write(&file, "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\n").unwrap();
        assert_eq!(read_key(&file, "oom_kill"), Some(1));
        assert_eq!(read_key(&file, "oom"), Some(2));
        assert_eq!(read_key(&file, "missing"), None);
    }
}
