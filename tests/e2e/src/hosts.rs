//! Several machines on one: each host is a network namespace joined by a veth to a bridge in
//! the root namespace, whose address (the gateway) is where the server and the registry listen.
//! A real `maestro agent` runs in each host (`nsenter --net`: only the network is separate, so
//! its mounts and cgroups stay visible to the cleanup), with its own [`NodeSandbox`]. The
//! namespaces have no route beyond the bridge, so nothing they send can leave the machine.
//!
//! Dropping [`Hosts`] kills the agents and removes every container, mount and cgroup of every
//! host, then the namespaces (with the pod bridges and veths inside them) and the bridge.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};

use std::time::Duration;

use serde_json::Value;

use crate::node::NodeSandbox;
use crate::registry::{Registry, RegistryAuth};
use crate::{Cluster, Kubectl, checker, condition, eventually, free_port, run, tail};

/// One host: a network namespace with an address on the shared bridge and an agent.
#[derive(Debug)]
pub struct Host {
    /// The node's name in the cluster.
    pub name: String,
    pub netns: String,
    pub ip: Ipv4Addr,
    pub sandbox: NodeSandbox,
    log: PathBuf,
    agent: Option<Child>,
}

impl Host {
    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL the agent (its containers keep running, as on a machine whose agent crashed).
    pub fn kill_agent(&mut self) {
        if let Some(mut child) = self.agent.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the agent process is running.
    pub fn agent_running(&mut self) -> bool {
        self.agent
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

/// The agent settings every host shares.
#[derive(Debug, Clone)]
pub struct AgentSetup {
    pub binary: PathBuf,
    /// The API server as the hosts reach it (`https://<gateway>:<port>`).
    pub server: String,
    pub token: String,
    /// Registries the agents may reach over plain HTTP (`host:port`).
    pub insecure_registries: Vec<String>,
}

/// A set of hosts on one bridge, or on two (even-numbered hosts on the second, its own
/// subnet, routed through the root namespace: no link shared with the odd-numbered ones).
#[derive(Debug)]
pub struct Hosts {
    pub bridge: String,
    pub gateway: Ipv4Addr,
    /// The second bridge and its gateway, when the hosts are split.
    pub second: Option<(String, Ipv4Addr)>,
    pub hosts: Vec<Host>,
}

fn ip(args: &[&str]) -> Result<String> {
    run(Command::new("ip").args(args))
}

impl Hosts {
    /// Create `count` hosts named `node-1`.. below `dir`; `tag` (a port number of the test)
    /// keeps interface, namespace and cgroup names apart from other tests'.
    pub fn create(dir: &Path, tag: u16, count: usize) -> Result<Hosts> {
        Self::create_split(dir, tag, count, false)
    }

    /// [`Hosts::create`]; with `split`, the even-numbered hosts go on a second bridge and
    /// subnet (10.250.x.0/24), reaching the others only through the root namespace, which
    /// routes between the two bridges (IP forwarding on, as a node agent also sets it).
    pub fn create_split(dir: &Path, tag: u16, count: usize, split: bool) -> Result<Hosts> {
        let bridge = format!("mh{tag}");
        let n = (tag % 250) as u8;
        let gateway = Ipv4Addr::new(10, 251, n, 1);
        let mut hosts = Hosts {
            bridge: bridge.clone(),
            gateway,
            second: None,
            hosts: Vec::new(),
        };
        // From here on, Drop removes whatever was made.
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{gateway}/24"), "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        if split {
            let second = format!("mg{tag}");
            let second_gateway = Ipv4Addr::new(10, 250, n, 1);
            hosts.second = Some((second.clone(), second_gateway));
            ip(&["link", "add", &second, "type", "bridge"])?;
            ip(&[
                "addr",
                "add",
                &format!("{second_gateway}/24"),
                "dev",
                &second,
            ])?;
            ip(&["link", "set", &second, "up"])?;
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")?;
        }
        for i in 1..=count {
            let netns = format!("mh{tag}-{i}");
            let on_second = split && i % 2 == 0;
            let (host_ip, host_bridge, host_gateway, other_subnet) = match &hosts.second {
                Some((second, second_gateway)) if on_second => (
                    Ipv4Addr::new(10, 250, n, 10 + i as u8),
                    second.clone(),
                    *second_gateway,
                    format!("10.251.{n}.0/24"),
                ),
                _ => (
                    Ipv4Addr::new(10, 251, n, 10 + i as u8),
                    bridge.clone(),
                    gateway,
                    format!("10.250.{n}.0/24"),
                ),
            };
            let outer = format!("mh{tag}v{i}");
            let dir = dir.join(format!("node-{i}"));
            std::fs::create_dir_all(&dir)?;
            let sandbox = NodeSandbox {
                run_dir: dir.join("run"),
                cgroup_root: format!("/maestro-e2e-{tag}-{i}"),
                bridge: format!("mb{tag}n{i}"),
                cluster_cidr: String::new(),
                agent_data: dir.join("agent"),
                // Inside the host's namespace, gone with it.
                service_cidr: None,
                nft_table: None,
                ingress_ports: None,
            };
            ip(&["netns", "add", &netns])?;
            hosts.hosts.push(Host {
                name: format!("node-{i}"),
                netns: netns.clone(),
                ip: host_ip,
                sandbox,
                log: dir.join("agent.log"),
                agent: None,
            });
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", "eth0", "netns", &netns,
            ])?;
            ip(&["link", "set", &outer, "master", &host_bridge, "up"])?;
            ip(&[
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{host_ip}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &netns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &netns, "link", "set", "lo", "up"])?;
            if split {
                let via = host_gateway.to_string();
                ip(&["-n", &netns, "route", "add", &other_subnet, "via", &via])?;
            }
        }
        Ok(hosts)
    }

    /// Start the agent of host `index` (again, after [`Host::kill_agent`]).
    pub fn start_agent(&mut self, index: usize, setup: &AgentSetup) -> Result<()> {
        let host = &mut self.hosts[index];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&host.log)?;
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", host.netns))
            .arg(&setup.binary)
            .args(["agent", "--server", &setup.server, "--token", &setup.token])
            .args(["--node-name", &host.name, "--node-ip", &host.ip.to_string()])
            .arg("--data-dir")
            .arg(&host.sandbox.agent_data)
            .arg("--run-dir")
            .arg(&host.sandbox.run_dir)
            .args(["--cgroup-root", &host.sandbox.cgroup_root])
            .args(["--bridge", &host.sandbox.bridge]);
        for registry in &setup.insecure_registries {
            cmd.args(["--insecure-registry", registry]);
        }
        let child = cmd
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .stdin(Stdio::null())
            .spawn()
            .context("starting an agent under nsenter")?;
        host.agent = Some(child);
        Ok(())
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for host in &mut self.hosts {
            host.kill_agent();
            host.sandbox.cleanup();
            let _ = ip(&["netns", "del", &host.netns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
        if let Some((second, _)) = &self.second {
            let _ = ip(&["link", "del", second]);
        }
    }
}

/// The cluster, its hosts and the registry (dropped in this order: agents first).
pub struct HostCluster {
    pub hosts: Hosts,
    pub cluster: Cluster,
    _registry: Registry,
    /// The checker image in the registry.
    pub image: String,
    pub setup: AgentSetup,
    _dir: tempfile::TempDir,
}

impl HostCluster {
    /// A server on the bridge's address (control plane only, with LoadBalancer addresses
    /// .200-.207 of the bridge's network) and `count` hosts with agents, all Ready, with the
    /// checker image in a registry on the bridge; `binary` is the maestro executable.
    pub fn start(binary: &str, count: usize, server_args: &[&str]) -> HostCluster {
        Self::start_split(binary, count, server_args, false)
    }

    /// [`HostCluster::start`] with the hosts split over two subnets ([`Hosts::create_split`]).
    pub fn start_split(
        binary: &str,
        count: usize,
        server_args: &[&str],
        split: bool,
    ) -> HostCluster {
        let dir = tempfile::Builder::new()
            .prefix("maestro-hosts-")
            .tempdir()
            .unwrap();
        let tag = free_port();
        let hosts = Hosts::create_split(dir.path(), tag, count, split).expect("creating the hosts");
        let gateway = hosts.gateway.to_string();
        let cidr = format!("10.{}.0.0/16", 100 + tag % 100);
        // LoadBalancer addresses on the hosts' own network, above the hosts' addresses.
        let [a, b, c, _] = hosts.gateway.octets();
        let pool = format!("{a}.{b}.{c}.200-{a}.{b}.{c}.207");
        let mut args = vec![
            "--bind-address",
            "0.0.0.0",
            "--tls-san",
            &gateway,
            "--cluster-cidr",
            &cidr,
            "--load-balancer-pool",
            &pool,
        ];
        args.extend_from_slice(server_args);
        let cluster = Cluster::start_with(binary, Kubectl::v1_33(), &args);
        let registry =
            Registry::start_on(&dir.path().join("registry"), &RegistryAuth::None, &gateway)
                .unwrap();
        let image = checker::image()
            .unwrap()
            .build(&dir.path().join("layout"), "1")
            .unwrap();
        let image = registry.push_image(&image, "checker:1").unwrap();
        let token = run(std::process::Command::new(binary)
            .args(["token", "create", "--data-dir"])
            .arg(cluster.data_dir()))
        .unwrap();
        let setup = AgentSetup {
            binary: binary.into(),
            server: format!("https://{gateway}:{}", cluster.port),
            token: token.trim().to_string(),
            insecure_registries: vec![registry.host()],
        };
        let mut nodes = HostCluster {
            hosts,
            cluster,
            _registry: registry,
            image,
            setup,
            _dir: dir,
        };
        for i in 0..count {
            nodes.hosts.start_agent(i, &nodes.setup).unwrap();
        }
        assert!(
            eventually(Duration::from_secs(60), || nodes.ready_nodes().len()
                == count),
            "{count} nodes did not become Ready:\n{}\n{}",
            nodes.cluster.ok(&["get", "nodes"]),
            nodes.hosts.hosts[0].log()
        );
        nodes
    }

    /// `kubectl apply` of a manifest, with `IMAGE` standing for the checker image.
    pub fn apply(&self, yaml: &str) {
        self.cluster.ok_stdin(
            &["apply", "-f", "-"],
            Some(&yaml.replace("IMAGE", &self.image)),
        );
    }

    pub fn ready_nodes(&self) -> Vec<String> {
        let out = self.cluster.run(&["get", "nodes", "-o", "json"]);
        let Ok(list) = serde_json::from_slice::<Value>(&out.stdout) else {
            return Vec::new();
        };
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| condition(n, "Ready") == Some("True"))
            .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// The pods with this label that are not being deleted.
    pub fn live_pods(&self, selector: &str) -> Vec<Value> {
        self.cluster.live_pods("default", selector)
    }

    /// `kubectl rollout status`, failing with the cluster's state if it does not complete.
    pub fn rollout(&self, deployment: &str) -> String {
        let out = self.cluster.run(&[
            "rollout",
            "status",
            &format!("deploy/{deployment}"),
            "--timeout=120s",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "rollout of {deployment} did not finish: {text}{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.debug()
        );
        text
    }

    /// Nodes, workloads and pods, with the server log's tail, for failure messages.
    pub fn debug(&self) -> String {
        format!(
            "{}\n--- server log tail ---\n{}",
            self.cluster
                .run(&["get", "nodes,deploy,rs,pods,pdb", "-o", "wide"])
                .stdout
                .iter()
                .map(|b| *b as char)
                .collect::<String>(),
            tail(&self.cluster.log(), 30)
        )
    }
}
