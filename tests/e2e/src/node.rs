//! A server with its embedded node agent, isolated so that several can run on one machine and
//! leave nothing behind: its own runtime directory, cgroup root, bridge and pod CIDR, and a
//! cleanup that removes every container, mount, cgroup and link of the node when the test ends
//! (also when it fails), since containers outlive the server process by design.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What makes one test node distinct, derived from the API port.
#[derive(Debug, Clone)]
pub struct NodeSandbox {
    pub run_dir: PathBuf,
    /// Absolute cgroup path below each hierarchy (`/maestro-e2e-<port>`).
    pub cgroup_root: String,
    pub bridge: String,
    /// `10.<n>.0.0/16`: the node gets its first /24.
    pub cluster_cidr: String,
    /// Where the agent keeps images and logs (inside the server's data directory).
    pub agent_data: PathBuf,
    /// On a node in the machine's own network namespace: the service range (`10.<n>.0.0/16`,
    /// routed locally by the agent) and the proxy's nftables table, both removed by
    /// [`NodeSandbox::cleanup`]. `None` for nodes in a namespace of their own.
    pub service_cidr: Option<String>,
    pub nft_table: Option<String>,
    /// The ingress controller's HTTP, HTTPS and metrics ports on a node in the machine's own
    /// namespace; `None` keeps it off (tests run side by side: port 80 is one).
    pub ingress_ports: Option<[u16; 3]>,
}

impl NodeSandbox {
    pub fn new(dir: &Path, data_dir: &Path, port: u16) -> Self {
        NodeSandbox {
            run_dir: dir.join("run"),
            cgroup_root: format!("/maestro-e2e-{port}"),
            bridge: format!("me{port}"),
            cluster_cidr: format!("10.{}.0.0/16", 100 + port % 100),
            agent_data: data_dir.join("agent"),
            service_cidr: Some(format!("10.{}.0.0/16", 200 + port % 50)),
            nft_table: Some(format!("maestro-e2e-{port}")),
            ingress_ports: None,
        }
    }

    /// The server flags that put the embedded agent in this sandbox.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--agent-port".into(),
            "0".into(),
            "--run-dir".into(),
            self.run_dir.display().to_string(),
            "--cgroup-root".into(),
            self.cgroup_root.clone(),
            "--bridge".into(),
            self.bridge.clone(),
            "--cluster-cidr".into(),
            self.cluster_cidr.clone(),
        ]
        .into_iter()
        .chain(
            self.service_cidr
                .iter()
                .flat_map(|c| ["--service-cidr".into(), c.clone()]),
        )
        .chain(self.agent_network_args())
        .collect()
    }

    /// The agent flags for this sandbox's proxy table and ingress ports (see
    /// [`NodeSandbox::ingress_ports`]).
    pub fn agent_network_args(&self) -> Vec<String> {
        let Some(table) = &self.nft_table else {
            return Vec::new();
        };
        let [http, https, metrics] = self.ingress_ports.unwrap_or([0, 0, 0]);
        let mut args = vec![
            "--nft-table".to_string(),
            table.clone(),
            "--ingress-http-port".into(),
            http.to_string(),
            "--ingress-https-port".into(),
            https.to_string(),
        ];
        if self.ingress_ports.is_some() {
            args.extend(["--ingress-metrics-port".into(), metrics.to_string()]);
        }
        args
    }

    /// The host pid of a running container's main process.
    pub fn container_pid(&self, id: &str) -> Option<u32> {
        let out = Command::new("runc")
            .arg("--root")
            .arg(self.run_dir.join("runc"))
            .args(["state", id])
            .output()
            .ok()?;
        let state: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        state["pid"].as_u64().filter(|p| *p > 0).map(|p| p as u32)
    }

    /// The ids of the containers the node's runc knows.
    pub fn containers(&self) -> Vec<String> {
        let out = Command::new("runc")
            .arg("--root")
            .arg(self.run_dir.join("runc"))
            .args(["list", "-q"])
            .output();
        match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Mount points below the node's directories, deepest first.
    pub fn mounts(&self) -> Vec<String> {
        let roots = [
            self.run_dir.display().to_string(),
            self.agent_data.display().to_string(),
        ];
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut found: Vec<String> = text
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| roots.iter().any(|r| p.starts_with(r.as_str())))
            .map(String::from)
            .collect();
        found.sort_by_key(|p| std::cmp::Reverse(p.len()));
        found.dedup();
        found
    }

    /// The node's cgroup directories (every hierarchy), deepest first.
    pub fn cgroups(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
            return dirs;
        };
        let mut roots: Vec<PathBuf> = hierarchies
            .flatten()
            .map(|h| h.path().join(self.cgroup_root.trim_start_matches('/')))
            .collect();
        roots.push(Path::new("/sys/fs/cgroup").join(self.cgroup_root.trim_start_matches('/')));
        for root in roots {
            collect_dirs(&root, &mut dirs);
        }
        dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        dirs.dedup();
        dirs
    }

    /// Whether the node's bridge exists.
    pub fn bridge_exists(&self) -> bool {
        Path::new("/sys/class/net").join(&self.bridge).exists()
    }

    /// Removes everything the node created on the host.
    pub fn cleanup(&self) {
        for id in self.containers() {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(self.run_dir.join("runc"))
                .args(["delete", "--force", &id])
                .output();
        }
        // A container caught half-created (its agent killed during `runc create`) is in no
        // runc list, but its processes are in the node's cgroups: they are ours to end.
        for _ in 0..20 {
            let pids: Vec<String> = self
                .cgroups()
                .iter()
                .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
                .flat_map(|procs| procs.lines().map(String::from).collect::<Vec<_>>())
                .filter(|p| !p.is_empty())
                .collect();
            if pids.is_empty() {
                break;
            }
            let _ = Command::new("kill").arg("-9").args(&pids).output();
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        for mount in self.mounts() {
            let _ = Command::new("umount").arg("-l").arg(&mount).output();
        }
        for dir in self.cgroups() {
            let _ = std::fs::remove_dir(&dir);
        }
        if self.bridge_exists() {
            let _ = Command::new("ip")
                .args(["link", "del", &self.bridge])
                .output();
        }
        if let Some(table) = &self.nft_table {
            // The proxy's table and the policy table beside it.
            for name in [table.clone(), format!("{table}-policy")] {
                let _ = Command::new("nft")
                    .args(["delete", "table", "ip", &name])
                    .output();
            }
        }
        if let Some(range) = &self.service_cidr {
            let _ = Command::new("ip")
                .args([
                    "route", "del", "local", range, "dev", "lo", "table", "local",
                ])
                .output();
        }
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    if !dir.is_dir() {
        return;
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
    out.push(dir.to_path_buf());
}
