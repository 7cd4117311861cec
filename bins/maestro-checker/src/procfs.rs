//! Parsers for the kernel's views of the process: `/proc/self/status` (ids, groups,
//! capabilities, no_new_privs, seccomp, umask), `/proc/self/mountinfo` and `/proc/self/limits`.
//! Pure functions over text, so they are unit-tested on samples.

/// The `Key:\tvalue` lines of `/proc/self/status`.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == key).then(|| v.trim())
    })
}

/// Linux capability names by bit number (`capability.h`), without the `CAP_` prefix.
pub const CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The bit of a capability named `NET_RAW`, `net_raw` or `CAP_NET_RAW`.
pub fn capability_bit(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    CAPABILITIES
        .iter()
        .position(|c| *c == bare)
        .map(|bit| bit as u32)
}

/// The names in a hex capability mask such as `CapEff:\t00000000a80425fb`.
pub fn capability_names(mask: u64) -> Vec<String> {
    (0..64)
        .filter(|bit| mask & (1u64 << bit) != 0)
        .map(|bit| {
            CAPABILITIES
                .get(bit)
                .map_or_else(|| format!("CAP_{bit}"), |n| (*n).to_owned())
        })
        .collect()
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// The directory of the mounted filesystem that appears at `mount_point`.
    pub root: String,
    pub mount_point: String,
    /// Per-mount options: `ro`/`rw`, `nosuid`, ...
    pub options: Vec<String>,
    pub fs_type: String,
    pub source: String,
    /// Per-superblock options: cgroup controllers, tmpfs `size=`.
    pub super_options: Vec<String>,
}

impl MountInfo {
    pub fn read_only(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }
}

/// Parses mountinfo (`man 5 proc`): `id parent major:minor root mount-point options
/// [optional...] - fstype source super-options`, paths with octal escapes (`\040`).
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|line| {
            let (head, tail) = line.split_once(" - ")?;
            let head: Vec<&str> = head.split(' ').collect();
            let tail: Vec<&str> = tail.split(' ').collect();
            if head.len() < 6 || tail.len() < 3 {
                return None;
            }
            Some(MountInfo {
                root: unescape(head[3]),
                mount_point: unescape(head[4]),
                options: head[5].split(',').map(str::to_owned).collect(),
                fs_type: tail[0].to_owned(),
                source: unescape(tail[1]),
                super_options: tail[2].split(',').map(str::to_owned).collect(),
            })
        })
        .collect()
}

/// The mount visible at `path`: the last one listed there (later mounts hide earlier ones).
pub fn mount_at<'a>(mounts: &'a [MountInfo], path: &str) -> Option<&'a MountInfo> {
    let path = normalize(path);
    mounts.iter().rev().find(|m| m.mount_point == path)
}

fn normalize(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.into()
    }
}

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
            let digit = |k: usize| u32::from(bytes[i + k] - b'0');
            out.push((digit(1) * 64 + digit(2) * 8 + digit(3)) as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `/proc/self/limits` row names by the short names `ulimit` and Kubernetes use.
pub fn limit_row(name: &str) -> Option<&'static str> {
    Some(match name {
        "nofile" => "Max open files",
        "nproc" => "Max processes",
        "core" => "Max core file size",
        "stack" => "Max stack size",
        "memlock" => "Max locked memory",
        "as" => "Max address space",
        "fsize" => "Max file size",
        "cpu" => "Max cpu time",
        "data" => "Max data size",
        "rss" => "Max resident set",
        "locks" => "Max file locks",
        "sigpending" => "Max pending signals",
        "msgqueue" => "Max msgqueue size",
        "nice" => "Max nice priority",
        "rtprio" => "Max realtime priority",
        _ => return None,
    })
}

/// The soft and hard values of a `/proc/self/limits` row (`unlimited` or a number).
pub fn parse_limit<'a>(limits: &'a str, row: &str) -> Option<(&'a str, &'a str)> {
    let line = limits.lines().find(|l| l.starts_with(row))?;
    let mut values = line[row.len()..].split_whitespace();
    Some((values.next()?, values.next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tmaestro-checker\nUmask:\t0022\nState:\tR (running)\n\
        Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nGroups:\t1000 2000 \n\
        CapEff:\t00000000a80425fb\nNoNewPrivs:\t1\nSeccomp:\t2\n";

    #[test]
    fn status_fields() {
        assert_eq!(status_field(STATUS, "Uid"), Some("1000\t1000\t1000\t1000"));
        assert_eq!(status_field(STATUS, "Groups"), Some("1000 2000"));
        assert_eq!(status_field(STATUS, "NoNewPrivs"), Some("1"));
        assert_eq!(status_field(STATUS, "Umask"), Some("0022"));
        assert_eq!(status_field(STATUS, "Nope"), None);
    }

    #[test]
    fn capabilities_by_name_and_mask() {
        assert_eq!(capability_bit("NET_RAW"), Some(13));
        assert_eq!(capability_bit("cap_sys_admin"), Some(21));
        assert_eq!(capability_bit("CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(capability_bit("NOPE"), None);
        // Docker's default set.
        let names = capability_names(0xa80425fb);
        assert!(names.contains(&"NET_RAW".to_owned()));
        assert!(names.contains(&"NET_BIND_SERVICE".to_owned()));
        assert!(!names.contains(&"SYS_ADMIN".to_owned()));
        assert_eq!(names.len(), 14);
    }

    #[test]
    fn mountinfo_lines() {
        let text = "\
1 0 0:1 / / ro,relatime - overlay overlay rw,lowerdir=/a\n\
2 1 0:2 / /proc rw,nosuid - proc proc rw\n\
3 1 0:3 /pods/x/shm /dev/shm rw shared:3 - tmpfs shm rw,size=65536k\n\
4 1 0:4 / /etc/my\\040config ro master:1 - ext4 /dev/vda rw\n\
5 1 0:5 /maestro/pod1/c /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n\
6 1 0:6 / /etc/my\\040config rw - tmpfs tmpfs rw\n";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 6);
        assert!(mount_at(&mounts, "/").unwrap().read_only());
        let shm = mount_at(&mounts, "/dev/shm/").unwrap();
        assert_eq!(shm.fs_type, "tmpfs");
        assert!(shm.super_options.contains(&"size=65536k".to_owned()));
        // The later mount hides the earlier one at the same place.
        let config = mount_at(&mounts, "/etc/my config").unwrap();
        assert_eq!(
            (config.fs_type.as_str(), config.read_only()),
            ("tmpfs", false)
        );
        let memory = &mounts[4];
        assert_eq!(memory.root, "/maestro/pod1/c");
        assert!(memory.super_options.contains(&"memory".to_owned()));
        assert!(mount_at(&mounts, "/nope").is_none());
    }

    #[test]
    fn limits_rows() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
Max open files            1000                 2000                 files     \n\
Max core file size        0                    unlimited            bytes     \n";
        assert_eq!(
            parse_limit(text, limit_row("nofile").unwrap()),
            Some(("1000", "2000"))
        );
        assert_eq!(
            parse_limit(text, limit_row("core").unwrap()),
            Some(("0", "unlimited"))
        );
        assert_eq!(parse_limit(text, limit_row("nproc").unwrap()), None);
        assert_eq!(limit_row("bogus"), None);
    }
}
