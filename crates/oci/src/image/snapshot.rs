//! Container root filesystems: an overlayfs mount of the image's layer directories (read-only
//! lower dirs) with an upper and work dir of the container's own, under
//! `snapshots/<container id>/`.
//!
//! Snapshots are named by container id so the agent can find and remove them after a crash
//! of its own without any state but the store: [`ImageStore::snapshot_ids`] lists them and
//! [`ImageStore::remove_snapshot`] is idempotent. The `image` file is written before the mount
//! (under the index lock), so garbage collection never takes layers a snapshot uses.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};

use super::error::IoContext;
use super::store::lock;
use super::{Digest, Image, ImageError, ImageStore, Result};

/// The kernel reads mount(2) options from one page.
const MAX_MOUNT_DATA: usize = 4095;

/// A container's root filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub container_id: String,
    /// Manifest digest of the image.
    pub image: Digest,
    /// The merged view to hand to the runtime as `root.path`. A real directory, never a
    /// symlink (runc refuses those).
    pub rootfs: PathBuf,
    /// The container's writes (what `kubectl cp` or a diff would look at).
    pub upper: PathBuf,
}

impl ImageStore {
    fn snapshot_dir(&self, id: &str) -> Result<PathBuf> {
        let valid = !id.is_empty()
            && id.len() <= 128
            && id != "."
            && id != ".."
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid {
            return Err(ImageError::Snapshot {
                id: id.to_owned(),
                message: "invalid container id".into(),
            });
        }
        Ok(self.root().join("snapshots").join(id))
    }

    /// Creates (and mounts) the root filesystem of container `id` from `image`. Calling it
    /// again for the same container and image returns the existing snapshot, mounting it again
    /// if it is not mounted (after a reboot); the container's earlier writes are kept.
    pub fn create_snapshot(&self, id: &str, image: &Image) -> Result<Snapshot> {
        let dir = self.snapshot_dir(id)?;
        let snapshot = Snapshot {
            container_id: id.to_owned(),
            image: image.digest.clone(),
            rootfs: dir.join("rootfs"),
            upper: dir.join("upper"),
        };
        let mut created = false;
        let lowers: Vec<PathBuf> = {
            // Under the index lock: garbage collection sees either the image gone (and we fail
            // here) or our `image` file (and keeps the image).
            let index = lock(&self.inner.index);
            let entry = index
                .images
                .get(&image.digest)
                .ok_or_else(|| ImageError::NotInStore(image.digest.to_string()))?;
            match fs::read_to_string(dir.join("image")) {
                Ok(existing) if existing.trim() == image.digest.as_str() => {}
                Ok(existing) => {
                    return Err(ImageError::Snapshot {
                        id: id.to_owned(),
                        message: format!("exists with image {}", existing.trim()),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    for sub in ["upper", "work", "rootfs"] {
                        let d = dir.join(sub);
                        fs::create_dir_all(&d).ctx("create", &d)?;
                    }
                    fs::write(dir.join("image"), image.digest.as_str())
                        .ctx("write", dir.join("image"))?;
                    created = true;
                }
                Err(e) => return Err(ImageError::io("read", dir.join("image"), e)),
            }
            // overlayfs lists the top layer first.
            entry
                .layers
                .iter()
                .rev()
                .map(|l| self.layer_fs(l))
                .collect()
        };
        if is_mounted(&snapshot.rootfs)? {
            return Ok(snapshot);
        }
        let mut lowers = lowers;
        if lowers.is_empty() {
            // An image without layers (`FROM scratch` plus config) still needs a lower dir.
            lowers.push(self.root().join("empty"));
        }
        if let Err(message) = mount_overlay(
            &lowers,
            &snapshot.upper,
            &dir.join("work"),
            &snapshot.rootfs,
        ) {
            if created {
                // Nothing ran on it: leave no snapshot that would pin the image.
                let _ = self.remove_snapshot(id);
            }
            return Err(ImageError::Snapshot {
                id: id.to_owned(),
                message,
            });
        }
        tracing::debug!(container = id, image = %image.digest, "mounted root filesystem");
        Ok(snapshot)
    }

    /// The snapshot of container `id`, if there is one (mounted or not).
    pub fn snapshot(&self, id: &str) -> Result<Option<Snapshot>> {
        let dir = self.snapshot_dir(id)?;
        match fs::read_to_string(dir.join("image")) {
            Ok(image) => Ok(Some(Snapshot {
                container_id: id.to_owned(),
                image: Digest::parse(image.trim())?,
                rootfs: dir.join("rootfs"),
                upper: dir.join("upper"),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ImageError::io("read", dir.join("image"), e)),
        }
    }

    /// Ids of every container with a snapshot, to reconcile after an agent restart.
    pub fn snapshot_ids(&self) -> Result<Vec<String>> {
        let dir = self.root().join("snapshots");
        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).ctx("list", &dir)? {
            ids.push(
                entry
                    .ctx("list", &dir)?
                    .file_name()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        ids.sort();
        Ok(ids)
    }

    /// Unmounts and deletes the snapshot of container `id`. Succeeds when there is none, so it
    /// can be repeated after a crash at any point.
    pub fn remove_snapshot(&self, id: &str) -> Result<()> {
        let dir = self.snapshot_dir(id)?;
        if !dir.exists() {
            return Ok(());
        }
        let rootfs = dir.join("rootfs");
        // A mount can be stacked more than once (two creates racing); take them all off.
        for _ in 0..8 {
            if !is_mounted(&rootfs)? {
                break;
            }
            if let Err(e) = rustix::mount::unmount(&rootfs, UnmountFlags::empty()) {
                // Busy (a process still has it open): detach it from the tree now; the kernel
                // frees it when the last user goes.
                if e == rustix::io::Errno::BUSY {
                    rustix::mount::unmount(&rootfs, UnmountFlags::DETACH)
                        .map_err(io::Error::from)
                        .ctx("unmount", &rootfs)?;
                } else if e != rustix::io::Errno::INVAL {
                    return Err(ImageError::io("unmount", &rootfs, e.into()));
                }
            }
        }
        if is_mounted(&rootfs)? {
            // Never delete through a mount: that would be the container's (or a lower) data.
            return Err(ImageError::Snapshot {
                id: id.to_owned(),
                message: "root filesystem is still mounted".into(),
            });
        }
        // The `image` file goes last, so a crash midway leaves a snapshot still protecting its
        // image and still listed for cleanup.
        for sub in ["rootfs", "work", "upper"] {
            let d = dir.join(sub);
            match fs::remove_dir_all(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ImageError::io("remove", d, e)),
            }
        }
        fs::remove_dir_all(&dir).ctx("remove", &dir)?;
        tracing::debug!(container = id, "removed root filesystem");
        Ok(())
    }

    /// Container ids whose snapshot uses image `digest` (manifest digest).
    pub(crate) fn snapshot_users(&self, digest: &Digest) -> Result<Vec<String>> {
        let mut users = Vec::new();
        for id in self.snapshot_ids()? {
            if let Ok(Some(s)) = self.snapshot(&id)
                && &s.image == digest
            {
                users.push(id);
            }
        }
        Ok(users)
    }
}

/// Mounts an overlay of `lowers` (top first) with `upper` and `work` on `target`. The classic
/// mount(2) takes all options in one page, which holds about 40 layer paths of a store under
/// `/var/lib`; more layers go through the new mount API, one `lowerdir+` each (Linux 6.8+).
pub(crate) fn mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), String> {
    let text = |p: &Path| {
        p.to_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("path {p:?} is not UTF-8"))
    };
    let lower_text = lowers
        .iter()
        .map(|p| text(p))
        .collect::<Result<Vec<_>, _>>()?;
    let (upper_text, work_text) = (text(upper)?, text(work)?);
    for path in lower_text.iter().chain([&upper_text, &work_text]) {
        if path.contains([',', ':', '\\']) {
            return Err(format!("path {path:?} cannot be an overlay mount option"));
        }
    }
    let data = format!(
        "lowerdir={},upperdir={upper_text},workdir={work_text}",
        lower_text.join(":")
    );
    if data.len() <= MAX_MOUNT_DATA {
        let data = std::ffi::CString::new(data).map_err(|e| e.to_string())?;
        return rustix::mount::mount(
            "overlay",
            target,
            "overlay",
            MountFlags::empty(),
            data.as_c_str(),
        )
        .map_err(|e| format!("mount overlay on {}: {e}", target.display()));
    }
    use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags};
    let fail = |what: &str, e: rustix::io::Errno| {
        format!("mount overlay of {} layers ({what}): {e}", lowers.len())
    };
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| fail("fsopen", e))?;
    for lower in &lower_text {
        rustix::mount::fsconfig_set_string(&fs, "lowerdir+", lower.as_str())
            .map_err(|e| fail("lowerdir+, which needs Linux 6.8", e))?;
    }
    rustix::mount::fsconfig_set_string(&fs, "upperdir", upper_text.as_str())
        .map_err(|e| fail("upperdir", e))?;
    rustix::mount::fsconfig_set_string(&fs, "workdir", work_text.as_str())
        .map_err(|e| fail("workdir", e))?;
    rustix::mount::fsconfig_create(&fs).map_err(|e| fail("create", e))?;
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(|e| fail("fsmount", e))?;
    rustix::mount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| fail("move_mount", e))
}

/// Whether `path` is a mount point in this mount namespace.
pub(crate) fn is_mounted(path: &Path) -> Result<bool> {
    Ok(crate::runtime::is_mount_point(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More layers than one page of mount options holds (needs root, as the crate's tests do).
    #[test]
    fn overlay_of_many_layers() {
        let dir = tempfile::tempdir().unwrap();
        let long = "l".repeat(100);
        let mut lowers = Vec::new();
        for i in 0..60 {
            let d = dir.path().join(format!("{long}-{i:02}"));
            fs::create_dir(&d).unwrap();
            fs::write(d.join(format!("f{i}")), i.to_string()).unwrap();
            fs::write(d.join("top"), i.to_string()).unwrap();
            lowers.push(d);
        }
        let (upper, work, target) = (
            dir.path().join("u"),
            dir.path().join("w"),
            dir.path().join("m"),
        );
        for d in [&upper, &work, &target] {
            fs::create_dir(d).unwrap();
        }
        match mount_overlay(&lowers, &upper, &work, &target) {
            Err(e) if e.contains("needs Linux 6.8") => {
                return eprintln!("skipped on this kernel: {e}");
            }
            r => r.unwrap(),
        }
        let mounted = is_mounted(&target).unwrap();
        let (first, last, top) = (
            fs::read_to_string(target.join("f0")),
            fs::read_to_string(target.join("f59")),
            fs::read_to_string(target.join("top")),
        );
        rustix::mount::unmount(&target, UnmountFlags::DETACH).unwrap();
        assert!(mounted);
        assert_eq!(
            (first.unwrap(), last.unwrap(), top.unwrap()),
            ("0".into(), "59".into(), "0".into())
        );
        assert!(!is_mounted(&target).unwrap());
    }
}
