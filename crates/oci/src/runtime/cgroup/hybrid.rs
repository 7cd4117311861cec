//! crun's hybrid-layout fix. crun refuses to run ("cgroups in hybrid mode not supported, drop
//! all controllers from cgroupv2") when the cgroup2 mount of a v1 host has controllers — on
//! Debian without systemd, just `hugetlb`. Mounting each such controller as a v1 hierarchy at
//! `<root>/<controller>` moves it off cgroup2, after which runc and crun both work.
//!
//! The fix changes the host for everyone, so it is applied only when crun is chosen, only when
//! needed, and left in place: undoing it would break crun containers still running, and runc
//! does not care either way.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{CgroupError, Result};
use crate::runtime::mountinfo;

/// What [`crun_hybrid_fix`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HybridFix {
    /// Controllers this call mounted as v1 hierarchies (empty when nothing was needed).
    pub mounted: Vec<String>,
    /// Where they were mounted.
    pub mount_points: Vec<PathBuf>,
}

/// Controllers still attached to a cgroup2 mount *below* `root` (none on pure v1 or pure v2).
pub fn hybrid_controllers(root: &Path) -> Vec<(PathBuf, String)> {
    mountinfo::read()
        .into_iter()
        .filter(|m| {
            m.fs_type == "cgroup2" && m.mount_point.starts_with(root) && m.mount_point != root
        })
        .flat_map(|m| {
            let text =
                fs::read_to_string(m.mount_point.join("cgroup.controllers")).unwrap_or_default();
            text.split_whitespace()
                .map(|c| (m.mount_point.clone(), c.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

// Two runtimes set up in one process (tests do) must not race to mount the same controller.
static LOCK: Mutex<()> = Mutex::new(());

/// Moves every controller off a hybrid host's cgroup2 mount; idempotent and a no-op elsewhere.
pub fn crun_hybrid_fix(root: &Path) -> Result<HybridFix> {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut fix = HybridFix::default();
    for (_unified, controller) in hybrid_controllers(root) {
        let target = root.join(&controller);
        let already = mountinfo::read().into_iter().any(|m| {
            m.mount_point == target
                && m.fs_type == "cgroup"
                && m.super_options.contains(&controller)
        });
        if already {
            continue;
        }
        fs::create_dir_all(&target).map_err(CgroupError::io("create", &target))?;
        let output = Command::new("mount")
            .args(["-t", "cgroup", "-o", &controller, "cgroup"])
            .arg(&target)
            .output()
            .map_err(|e| CgroupError::HybridFix {
                controller: controller.clone(),
                message: format!("cannot run mount: {e}"),
            })?;
        if !output.status.success() {
            return Err(CgroupError::HybridFix {
                controller,
                message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        tracing::info!(%controller, target = %target.display(), "moved cgroup controller off cgroup2 for crun");
        fix.mounted.push(controller);
        fix.mount_points.push(target);
        super::v1::cgroup_mounts_changed();
    }
    // The kernel detaches the controller from cgroup2 asynchronously.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !hybrid_controllers(root).is_empty() {
        if Instant::now() >= deadline {
            let left: Vec<String> = hybrid_controllers(root)
                .into_iter()
                .map(|(_, c)| c)
                .collect();
            return Err(CgroupError::HybridFix {
                controller: left.join(","),
                message: "still attached to cgroup2".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(fix)
}
