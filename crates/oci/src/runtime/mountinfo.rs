//! The mount table as the kernel reports it (`/proc/self/mountinfo`): which cgroup hierarchies
//! exist, and which mounts a pod sandbox left under its run directory.

use std::path::{Path, PathBuf};

/// One line of `/proc/self/mountinfo`, reduced to what this crate needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountEntry {
    pub mount_point: PathBuf,
    pub fs_type: String,
    /// Per-superblock options; for cgroup v1 they name the controllers (`rw,cpu,cpuacct`).
    pub super_options: Vec<String>,
}

/// Whether `path` is the root of a mount in this mount namespace. statx says so directly
/// (Linux 5.8 and later); older kernels fall back to the mount table, which costs a read of
/// every mount on the host (thousands with a few hundred pods).
pub fn is_mount_point(path: &Path) -> bool {
    use rustix::fs::{AtFlags, StatxAttributes, StatxFlags, statx};
    match statx(
        rustix::fs::CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    ) {
        Ok(st) if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) => {
            st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT)
        }
        Ok(_) => read().iter().any(|m| m.mount_point == path),
        Err(_) => false,
    }
}

/// Reads the current mount table. A failure is an empty table: callers use it to find
/// leftovers, and a missing `/proc` means there is nothing they could clean anyway.
pub(crate) fn read() -> Vec<MountEntry> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|text| parse(&text))
        .unwrap_or_default()
}

pub(crate) fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

// Format (proc(5)): id parent major:minor root mount-point options [optional...] - fstype source
// super-options.
fn parse_line(line: &str) -> Option<MountEntry> {
    let (left, right) = line.split_once(" - ")?;
    let mount_point = left.split(' ').nth(4)?;
    let mut right = right.split(' ');
    let fs_type = right.next()?;
    let _source = right.next()?;
    let super_options = right.next().unwrap_or("");
    Some(MountEntry {
        mount_point: PathBuf::from(unescape(mount_point)),
        fs_type: fs_type.to_string(),
        super_options: super_options.split(',').map(str::to_string).collect(),
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value =
                (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points at or below `dir`, deepest first (the order to unmount them in).
pub(crate) fn mounts_under(table: &[MountEntry], dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = table
        .iter()
        .filter(|m| m.mount_point.starts_with(dir))
        .map(|m| m.mount_point.clone())
        .collect();
    // A path mounted twice (stacked) is listed twice and needs two unmounts.
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:5 - cgroup cgroup rw,cpu,cpuacct
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:4 net:[4026532281] /run/maestro/pods/a\\040b/ns/net rw - nsfs nsfs rw
51 23 0:4 ipc:[4026532282] /run/maestro/pods/a\\040b/ns/ipc rw - nsfs nsfs rw
52 23 0:50 / /run/maestro/pods/a\\040b/shm rw - tmpfs shm rw,size=65536k
";

    #[test]
    fn parses_fields_and_optional_tags() {
        let table = parse(SAMPLE);
        assert_eq!(table.len(), 7);
        assert_eq!(
            table[2].mount_point,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(table[2].fs_type, "cgroup");
        assert_eq!(table[2].super_options, ["rw", "cpu", "cpuacct"]);
        assert_eq!(table[3].fs_type, "cgroup2");
    }

    #[test]
    fn unescapes_octal_and_orders_deepest_first() {
        let table = parse(SAMPLE);
        let found = mounts_under(&table, Path::new("/run/maestro/pods/a b"));
        assert_eq!(found.len(), 3);
        assert_eq!(found[2], PathBuf::from("/run/maestro/pods/a b/shm"));
        assert!(found[0].ends_with("ns/net"));
        assert!(mounts_under(&table, Path::new("/run/maestro/pods/a")).is_empty());
    }
}
