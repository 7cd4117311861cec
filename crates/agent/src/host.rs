//! What the node is: capacity, pressure and identity read from the host (`/proc`, `/sys`,
//! `statvfs` of the data directory), in the shapes the Node object carries.

use std::path::Path;

/// The version the agent reports as `nodeInfo.kubeletVersion`.
pub const AGENT_VERSION: &str = concat!("v1.33.0+maestro-", env!("CARGO_PKG_VERSION"));

/// A snapshot of the host's resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostResources {
    pub cpus: u64,
    pub memory_bytes: u64,
    pub memory_available_bytes: u64,
    pub disk_bytes: u64,
    pub disk_available_bytes: u64,
    pub pid_max: u64,
    pub pids: u64,
}

fn meminfo_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

/// Read the host's resources; `data_dir` is where pods' ephemeral storage lives.
pub fn resources(data_dir: &Path) -> Result<HostResources, String> {
    let meminfo =
        std::fs::read_to_string("/proc/meminfo").map_err(|e| format!("/proc/meminfo: {e}"))?;
    let memory_bytes =
        meminfo_field(&meminfo, "MemTotal").ok_or("MemTotal missing from /proc/meminfo")?;
    let memory_available_bytes = meminfo_field(&meminfo, "MemAvailable").unwrap_or(memory_bytes);
    let fs = nix::sys::statvfs::statvfs(data_dir)
        .map_err(|e| format!("statvfs {}: {e}", data_dir.display()))?;
    let block = fs.fragment_size();
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    let pids = std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .count() as u64
        })
        .unwrap_or(0);
    Ok(HostResources {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
        memory_bytes,
        memory_available_bytes,
        disk_bytes: fs.blocks() * block,
        disk_available_bytes: fs.blocks_available() * block,
        pid_max,
        pids,
    })
}

/// Kubernetes quantity of bytes in Ki, as the kubelet reports memory (`24591932Ki`).
pub fn kibibytes(bytes: u64) -> String {
    format!("{}Ki", bytes / 1024)
}

/// Node identity fields (`status.nodeInfo`).
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
    pub kernel_version: String,
    pub os_image: String,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn node_info() -> NodeInfo {
    let os_image = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".into());
    let machine_id = read_trimmed("/etc/machine-id");
    let product_uuid = read_trimmed("/sys/class/dmi/id/product_uuid");
    NodeInfo {
        system_uuid: if product_uuid.is_empty() {
            machine_id.clone()
        } else {
            product_uuid
        },
        machine_id,
        boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
        kernel_version: read_trimmed("/proc/sys/kernel/osrelease"),
        os_image,
    }
}

/// The host name (the default node name).
pub fn hostname() -> String {
    let name = read_trimmed("/proc/sys/kernel/hostname");
    if name.is_empty() {
        "localhost".into()
    } else {
        name.to_lowercase()
    }
}

/// The address this host uses to reach others: the source address of its route to a public
/// address. Looking up a route sends nothing.
pub fn primary_ip() -> Option<std::net::IpAddr> {
    let out = std::process::Command::new("ip")
        .args(["-j", "-4", "route", "get", "1.1.1.1"])
        .output()
        .ok()?;
    let routes: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    routes.get(0)?.get("prefsrc")?.as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_host() {
        let dir = tempfile::tempdir().unwrap();
        let r = resources(dir.path()).unwrap();
        assert!(r.cpus >= 1);
        assert!(r.memory_bytes > r.memory_available_bytes / 2);
        assert!(r.disk_bytes >= r.disk_available_bytes);
        assert!(r.pids > 0 && r.pid_max > r.pids);
        assert_eq!(kibibytes(2048), "2Ki");
        assert!(!node_info().kernel_version.is_empty());
    }

    #[test]
    fn meminfo_parsing() {
        let text =
            "MemTotal:       24591932 kB\nMemFree:        1000 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(meminfo_field(text, "MemTotal"), Some(24591932 * 1024));
        assert_eq!(meminfo_field(text, "MemAvailable"), Some(20000000 * 1024));
        assert_eq!(meminfo_field(text, "Mem"), None);
    }
}
