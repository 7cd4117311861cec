//! The machine and software a run measured on, read from /proc, /sys and the tools themselves,
//! so that every figure carries its context.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub ram: String,
    pub kernel: String,
    pub os: String,
    pub disk: String,
    pub fsync: String,
    pub maestro: String,
    pub etcd: String,
    pub kubectl: String,
    pub load_start: String,
    pub load_end: String,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// First line of a command's stdout, or "unknown".
fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// "etcd 3.4.23" from `etcd --version` ("etcd Version: 3.4.23").
pub fn short_version(etcd: &str) -> String {
    let line = first_line(etcd, &["--version"]);
    match line.rsplit_once(' ') {
        Some((_, v)) => format!("etcd {v}"),
        None => "etcd".into(),
    }
}

pub fn load_average() -> String {
    read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The filesystem and block device that hold `dir` (where both servers keep their data).
fn disk_of(dir: &Path) -> String {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mounts = read("/proc/mounts");
    let Some((device, mount, fstype)) = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?, f.next()?, f.next()?))
        })
        .filter(|(_, mount, _)| dir.starts_with(mount))
        .max_by_key(|(_, mount, _)| mount.len())
    else {
        return "unknown".into();
    };
    let name = device.trim_start_matches("/dev/");
    let block = Path::new("/sys/block").join(name);
    let mut out = format!("{fstype} on {device} (mounted at {mount})");
    if let Ok(driver) = std::fs::read_link(block.join("device/driver")) {
        let driver = driver.file_name().map(|n| n.to_string_lossy().to_string());
        if let Some(driver) = driver {
            let _ = write!(out, ", driver {driver}");
        }
    }
    let rotational = read(&format!("/sys/block/{name}/queue/rotational"));
    if !rotational.trim().is_empty() {
        let _ = write!(out, ", rotational flag {}", rotational.trim());
    }
    out
}

/// What one durable write costs on this disk: 200 × (write 4 KiB at the end of a file, then
/// fdatasync), the floor under every store's commit latency.
fn fsync_cost(dir: &Path) -> String {
    let probe = || -> std::io::Result<Vec<f64>> {
        use std::io::Write as _;
        let tmp = tempfile::NamedTempFile::new_in(dir)?;
        let mut file = tmp.as_file();
        let block = [0x5a_u8; 4096];
        let mut took = Vec::with_capacity(200);
        for _ in 0..200 {
            let t = std::time::Instant::now();
            file.write_all(&block)?;
            file.sync_data()?;
            took.push(t.elapsed().as_secs_f64() * 1e3);
        }
        took.sort_by(f64::total_cmp);
        Ok(took)
    };
    match probe() {
        Ok(t) => format!(
            "4 KiB append + fdatasync: p50 {:.2} ms, p99 {:.2} ms",
            t[t.len() / 2],
            t[t.len() * 99 / 100]
        ),
        Err(err) => format!("fsync probe failed: {err}"),
    }
}

impl Machine {
    pub fn probe(maestro: &Path, etcd: &str, kubectl: &str, data_dir: &Path) -> Machine {
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_else(|| "unknown".into());
        let virtualized = cpuinfo.contains(" hypervisor");
        let ram_kib: u64 = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        let os = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "unknown".into());
        // The binary sits in the workspace's target/ folder, so its git tree is the source.
        let repo = maestro
            .parent()
            .map(|p| p.to_string_lossy().to_string())
            .unwrap_or_else(|| ".".into());
        let commit = first_line("git", &["-C", &repo, "describe", "--always", "--dirty"]);
        Machine {
            cpu: if virtualized {
                format!("{cpu} (virtual machine)")
            } else {
                cpu
            },
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            ram: format!("{:.1} GiB", ram_kib as f64 / (1024.0 * 1024.0)),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            os,
            disk: disk_of(data_dir),
            fsync: fsync_cost(data_dir),
            maestro: format!("{} at commit {commit}", maestro.display()),
            etcd: short_version(etcd),
            kubectl: first_line(kubectl, &["version", "--client"]),
            load_start: load_average(),
            load_end: String::new(),
        }
    }

    pub fn markdown(&self) -> String {
        format!(
            "- CPU: {} × {}\n- RAM: {}\n- OS: {}, kernel {}\n- data directories: {}\n- durable write cost: {}\n- maestro: {}\n- etcd: {}\n- kubectl: {}\n- load average (1/5/15 min) at start: {}, at end: {}\n",
            self.cores,
            self.cpu,
            self.ram,
            self.os,
            self.kernel,
            self.disk,
            self.fsync,
            self.maestro,
            self.etcd,
            self.kubectl,
            self.load_start,
            self.load_end
        )
    }
}
