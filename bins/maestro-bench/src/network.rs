//! `--suite network`: the data path of service networking, on the real kernel.
//!
//! 1. Proxy convergence: the node proxy's nftables table for N Services × M endpoints, in a
//!    network namespace made for the run — the first write, one Service's endpoints changing
//!    (the common case), every Service changing at once, and a full rewrite.
//! 2. The ClusterIP hop: a client and a server in two namespaces on one node's bridge (as two
//!    pods), the proxy in the node's namespace; request round trips to the server's address and
//!    to its ClusterIP, on a new connection each time (every connection meets the DNAT rules)
//!    and on one kept-open connection.
//! 3. Ingress beside nginx: the same backend (an nginx answering a short body) behind nginx as a
//!    reverse proxy (keep-alive upstream) and behind maestro's ingress data path (the agent's
//!    `ingress::proxy`, in this process, with a one-rule table), loaded in turn by wrk.
//!
//! Everything it creates (namespaces, links, tables, nginx processes) is removed at the end,
//! also on failure.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use maestro_net::pod_network::Ipv4Cidr;
use maestro_net::proxy::{Endpoint, Protocol, Proxy, ProxyConfig, Service, ServicePort};

use crate::progress;
use crate::stats::Samples;

#[derive(Debug, Clone)]
pub struct NetworkConfig {
    pub services: usize,
    pub endpoints: usize,
    /// Round trips per path in the ClusterIP benchmark.
    pub round_trips: usize,
    /// Seconds of each wrk run.
    pub wrk_seconds: u64,
    pub wrk_connections: usize,
}

#[derive(Debug, Default)]
pub struct NetworkReport {
    pub first_write: Duration,
    pub first_lines: usize,
    pub one_service: Samples,
    pub one_service_lines: usize,
    pub all_services: Duration,
    pub all_services_lines: usize,
    pub rewrite: Duration,
    pub policy_first: Duration,
    pub policy_change: Samples,
    pub direct_connect: Samples,
    pub cluster_ip_connect: Samples,
    pub direct_kept: Samples,
    pub cluster_ip_kept: Samples,
    pub http: Vec<HttpRun>,
}

/// One wrk run.
#[derive(Debug, Clone)]
pub struct HttpRun {
    pub target: &'static str,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

fn run_cmd(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

fn ip(args: &[&str]) -> anyhow::Result<String> {
    run_cmd(Command::new("ip").args(args))
}

/// Network namespaces made by this run, deleted on drop.
struct Namespaces(Vec<String>);

impl Namespaces {
    fn add(&mut self, name: &str) -> anyhow::Result<()> {
        ip(&["netns", "add", name])?;
        self.0.push(name.to_string());
        Ok(())
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.0.drain(..) {
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}

/// Run `f` on a thread inside network namespace `name`.
fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    let path = format!("/run/netns/{name}");
    std::thread::scope(|s| {
        s.spawn(|| -> anyhow::Result<T> {
            let file = std::fs::File::open(&path).with_context(|| path.clone())?;
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
                .context("entering the namespace")?;
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("benchmark thread panicked"))?
    })
}

fn cidr(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Cidr {
    Ipv4Cidr::new(Ipv4Addr::new(a, b, c, d), prefix).expect("a valid network")
}

fn proxy_config(table: &str) -> ProxyConfig {
    ProxyConfig {
        table: table.into(),
        cluster_cidr: cidr(10, 99, 0, 0, 16),
        service_cidr: cidr(10, 98, 0, 0, 16),
        node_name: "bench".into(),
        bridge: "br0".into(),
        dns: None,
    }
}

/// N services × M endpoints; `generation` shifts every endpoint address.
fn services(n: usize, m: usize, generation: u8) -> Vec<Service> {
    (0..n)
        .map(|i| Service {
            namespace: "bench".into(),
            name: format!("svc-{i}"),
            cluster_ips: vec![Ipv4Addr::new(10, 98, (i / 250) as u8, (i % 250) as u8 + 2)],
            external_ips: vec![],
            ports: vec![ServicePort {
                name: "http".into(),
                protocol: Protocol::Tcp,
                port: 80,
                node_port: None,
                endpoints: (0..m)
                    .map(|j| Endpoint {
                        ip: Ipv4Addr::new(
                            10,
                            99,
                            (j + generation as usize) as u8,
                            (i % 250) as u8 + 2,
                        ),
                        port: 8080 + (i / 250) as u16,
                        ready: true,
                        serving: true,
                        terminating: false,
                        node: Some(format!("node-{}", j % 3)),
                    })
                    .collect(),
            }],
            affinity_timeout: None,
            internal_local: false,
            external_local: false,
        })
        .collect()
}

/// The policy table for `pods` isolated pods of one node, each allowed from `peers` addresses
/// on two ports; `shift` changes every peer address of pod 0 (one policy's peers changing).
fn policy_pods(pods: usize, peers: usize, shift: u8) -> Vec<maestro_net::policy::PodRules> {
    use maestro_net::policy::{Allow, Peer, PodRules, Ports};
    (0..pods)
        .map(|i| PodRules {
            namespace: "bench".into(),
            name: format!("pod-{i}"),
            ip: Ipv4Addr::new(10, 99, 250, (i % 250) as u8 + 1),
            ingress: Some(vec![Allow {
                peers: Some(vec![Peer::Pods(
                    (0..peers)
                        .map(|j| {
                            let moved = if i == 0 { shift } else { 0 };
                            Ipv4Addr::new(10, 99, (j / 250) as u8 + moved, (j % 250) as u8 + 1)
                        })
                        .collect(),
                )]),
                ports: Some(vec![
                    Ports::Range {
                        protocol: Protocol::Tcp,
                        first: 8080,
                        last: 8080,
                    },
                    Ports::Range {
                        protocol: Protocol::Tcp,
                        first: 9090,
                        last: 9100,
                    },
                ]),
            }]),
            egress: None,
        })
        .collect()
}

/// The NetworkPolicy table: 100 isolated pods of one node, each allowed from 100 peers.
fn policy_convergence(report: &mut NetworkReport) -> anyhow::Result<()> {
    let mut namespaces = Namespaces(Vec::new());
    let name = format!("mbench-policy-{}", std::process::id());
    namespaces.add(&name)?;
    in_netns(&name, || -> anyhow::Result<()> {
        let mut table = maestro_net::nft::NftTable::new("maestro-bench-policy");
        let render = |shift| {
            maestro_net::policy::render("maestro-bench-policy", &policy_pods(100, 100, shift))
        };
        report.policy_first = table.sync(render(0))?.elapsed;
        for round in 1..=20u8 {
            let done = table.sync(render(round % 2 + 1))?;
            ensure!(
                !done.full && !done.unchanged,
                "expected an incremental change"
            );
            report.policy_change.push(done.elapsed);
        }
        Ok(())
    })??;
    Ok(())
}

fn convergence(cfg: &NetworkConfig, report: &mut NetworkReport) -> anyhow::Result<()> {
    let mut namespaces = Namespaces(Vec::new());
    let name = format!("mbench-proxy-{}", std::process::id());
    namespaces.add(&name)?;
    let (n, m) = (cfg.services, cfg.endpoints);
    in_netns(&name, || -> anyhow::Result<()> {
        let mut proxy = Proxy::new(proxy_config("maestro-bench"))?;
        let mut state = services(n, m, 0);
        let first = proxy.sync(&state)?;
        report.first_write = first.elapsed;
        report.first_lines = first.lines;
        // One Service's endpoints change (one replaced), twenty times.
        for round in 0..20 {
            let service = &mut state[(round * 37) % n];
            let endpoint = &mut service.ports[0].endpoints[0];
            endpoint.ip = Ipv4Addr::new(10, 99, 200, (round % 250) as u8 + 1);
            let done = proxy.sync(&state)?;
            ensure!(
                !done.full && !done.unchanged,
                "expected an incremental change"
            );
            report.one_service.push(done.elapsed);
            report.one_service_lines = done.lines;
        }
        // Every Service's endpoints move at once (a whole-cluster rollout).
        let moved = services(n, m, 1);
        let done = proxy.sync(&moved)?;
        report.all_services = done.elapsed;
        report.all_services_lines = done.lines;
        proxy.forget_applied();
        report.rewrite = proxy.sync(&moved)?.elapsed;
        Ok(())
    })??;
    Ok(())
}

/// The two-pod node for the ClusterIP benchmark.
struct Node {
    namespaces: Namespaces,
    node: String,
    client: String,
    server: String,
}

const SERVER_IP: &str = "10.99.0.3";
const CLUSTER_IP: &str = "10.98.0.10";
const SERVER_PORT: u16 = 7000;

fn build_node() -> anyhow::Result<Node> {
    let pid = std::process::id();
    let mut namespaces = Namespaces(Vec::new());
    let (node, client, server) = (
        format!("mbench-node-{pid}"),
        format!("mbench-client-{pid}"),
        format!("mbench-server-{pid}"),
    );
    for ns in [&node, &client, &server] {
        namespaces.add(ns)?;
    }
    ip(&["-n", &node, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", &node, "addr", "add", "10.99.0.1/24", "dev", "br0"])?;
    ip(&["-n", &node, "link", "set", "br0", "up"])?;
    ip(&["-n", &node, "link", "set", "lo", "up"])?;
    for (ns, address, veth) in [
        (&client, "10.99.0.2/24", "vc"),
        (&server, "10.99.0.3/24", "vs"),
    ] {
        ip(&[
            "-n", &node, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ])?;
        ip(&["-n", &node, "link", "set", veth, "master", "br0", "up"])?;
        ip(&["-n", ns, "addr", "add", address, "dev", "eth0"])?;
        ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        ip(&["-n", ns, "route", "add", "default", "via", "10.99.0.1"])?;
    }
    run_cmd(Command::new("ip").args([
        "netns",
        "exec",
        &node,
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
        "net.bridge.bridge-nf-call-iptables=1",
    ]))?;
    Ok(Node {
        namespaces,
        node,
        client,
        server,
    })
}

fn echo_server(listener: TcpListener) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        std::thread::spawn(move || {
            let mut byte = [0u8; 1];
            while let Ok(1) = stream.read(&mut byte) {
                if stream.write_all(&byte).is_err() {
                    break;
                }
            }
        });
    }
}

fn round_trips(target: SocketAddr, count: usize, reuse: bool) -> anyhow::Result<Samples> {
    let mut samples = Samples::default();
    let mut kept: Option<TcpStream> = None;
    let mut byte = [7u8; 1];
    for _ in 0..count {
        let started = Instant::now();
        let mut stream = match kept.take() {
            Some(s) => s,
            None => {
                let s = TcpStream::connect_timeout(&target, Duration::from_secs(2))
                    .with_context(|| format!("connecting to {target}"))?;
                s.set_nodelay(true)?;
                s
            }
        };
        stream.write_all(&byte)?;
        stream.read_exact(&mut byte)?;
        samples.push(started.elapsed());
        if reuse {
            kept = Some(stream);
        }
    }
    Ok(samples)
}

fn cluster_ip_hop(cfg: &NetworkConfig, report: &mut NetworkReport) -> anyhow::Result<()> {
    let node = build_node()?;
    let mut config = proxy_config("maestro-bench");
    config.node_name = "bench".into();
    in_netns(&node.node, || -> anyhow::Result<()> {
        let mut proxy = Proxy::new(config)?;
        let service = Service {
            namespace: "bench".into(),
            name: "echo".into(),
            cluster_ips: vec![CLUSTER_IP.parse()?],
            external_ips: vec![],
            ports: vec![ServicePort {
                name: String::new(),
                protocol: Protocol::Tcp,
                port: 80,
                node_port: None,
                endpoints: vec![Endpoint {
                    ip: SERVER_IP.parse()?,
                    port: SERVER_PORT,
                    ready: true,
                    serving: true,
                    terminating: false,
                    node: Some("bench".into()),
                }],
            }],
            affinity_timeout: None,
            internal_local: false,
            external_local: false,
        };
        proxy.sync(&[service])?;
        Ok(())
    })??;
    // The server runs on a thread that stays in its namespace until the process ends (the
    // namespace is deleted under it; its listener simply stops receiving).
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server_path = format!("/run/netns/{}", node.server);
    std::thread::spawn(move || {
        let entered = std::fs::File::open(&server_path)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| e.to_string())
            })
            .and_then(|_| {
                TcpListener::bind((Ipv4Addr::UNSPECIFIED, SERVER_PORT)).map_err(|e| e.to_string())
            });
        match entered {
            Ok(listener) => {
                let _ = ready_tx.send(Ok(()));
                echo_server(listener);
            }
            Err(err) => {
                let _ = ready_tx.send(Err(err));
            }
        }
    });
    ready_rx
        .recv()
        .context("the echo server thread")?
        .map_err(|e| anyhow::anyhow!("starting the echo server: {e}"))?;
    let direct: SocketAddr = (SERVER_IP.parse::<Ipv4Addr>()?, SERVER_PORT).into();
    let virtual_ip: SocketAddr = (CLUSTER_IP.parse::<Ipv4Addr>()?, 80).into();
    let n = cfg.round_trips;
    in_netns(&node.client, || -> anyhow::Result<()> {
        // Warm up both paths (ARP, conntrack), then alternate blocks so that drift hits both.
        round_trips(direct, 100, false)?;
        round_trips(virtual_ip, 100, false)?;
        for _ in 0..5 {
            report
                .direct_connect
                .extend(round_trips(direct, n / 5, false)?);
            report
                .cluster_ip_connect
                .extend(round_trips(virtual_ip, n / 5, false)?);
            report.direct_kept.extend(round_trips(direct, n / 5, true)?);
            report
                .cluster_ip_kept
                .extend(round_trips(virtual_ip, n / 5, true)?);
        }
        Ok(())
    })??;
    drop(node.namespaces);
    Ok(())
}

/// Install Debian packages the suite needs when they are missing.
fn ensure_packages(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg")
                .args(["-s", p])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    progress(&format!("apt-get install {}", missing.join(" ")));
    let status = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    ensure!(status.success(), "apt-get install {missing:?} failed");
    Ok(())
}

/// An nginx process killed on drop.
struct Nginx {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    /// SIGTERM to the master, which stops its workers (SIGKILL would leave them running).
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_listening(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        ensure!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// nginx with two servers: the backend (a short body) and a reverse proxy in front of it.
fn start_nginx(backend: u16, proxy: u16) -> anyhow::Result<Nginx> {
    let dir = tempfile::Builder::new().prefix("nginx-bench-").tempdir()?;
    let root = dir.path().display().to_string();
    let config = format!(
        "daemon off;\nmaster_process on;\nworker_processes 2;\npid {root}/nginx.pid;\n\
         error_log {root}/error.log warn;\nevents {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {root}/body;\n  \
         proxy_temp_path {root}/proxy;\n  fastcgi_temp_path {root}/fastcgi;\n  \
         uwsgi_temp_path {root}/uwsgi;\n  scgi_temp_path {root}/scgi;\n  \
         upstream backend {{ server 127.0.0.1:{backend}; keepalive 128; }}\n  \
         server {{ listen 127.0.0.1:{backend}; location / {{ return 200 \"hello from the backend\\n\"; }} }}\n  \
         server {{ listen 127.0.0.1:{proxy}; location / {{ proxy_pass http://backend; \
         proxy_http_version 1.1; proxy_set_header Connection \"\"; \
         proxy_set_header Host $host; proxy_set_header X-Forwarded-For $remote_addr; }} }}\n}}\n"
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, config)?;
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nginx")?;
    let nginx = Nginx { child, _dir: dir };
    wait_listening(backend)?;
    wait_listening(proxy)?;
    Ok(nginx)
}

/// A wrk run against `port`: requests per second and latency quantiles.
fn wrk(target: &'static str, port: u16, cfg: &NetworkConfig) -> anyhow::Result<HttpRun> {
    let out = run_cmd(Command::new("wrk").args([
        "-t2",
        &format!("-c{}", cfg.wrk_connections),
        &format!("-d{}s", cfg.wrk_seconds),
        "--latency",
        &format!("http://127.0.0.1:{port}/"),
    ]))?;
    let value = |prefix: &str| -> Option<String> {
        out.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
    };
    let millis = |text: String| -> anyhow::Result<f64> {
        let (number, scale) = if let Some(v) = text.strip_suffix("us") {
            (v, 1e-3)
        } else if let Some(v) = text.strip_suffix("ms") {
            (v, 1.0)
        } else if let Some(v) = text.strip_suffix('s') {
            (v, 1e3)
        } else {
            bail!("unexpected wrk latency {text:?}")
        };
        Ok(number.parse::<f64>()? * scale)
    };
    ensure!(
        !out.contains("Non-2xx"),
        "wrk saw error responses from {target}:\n{out}"
    );
    Ok(HttpRun {
        target,
        requests_per_second: value("Requests/sec:")
            .context("no Requests/sec in wrk's output")?
            .parse()?,
        p50_ms: millis(value("50%").context("no 50% line")?)?,
        p99_ms: millis(value("99%").context("no 99% line")?)?,
    })
}

async fn ingress_vs_nginx(cfg: &NetworkConfig, report: &mut NetworkReport) -> anyhow::Result<()> {
    ensure_packages(&["nginx", "wrk"])?;
    let (backend, proxy, ingress) = (free_port()?, free_port()?, free_port()?);
    let _nginx = start_nginx(backend, proxy)?;
    use maestro_agent::ingress::routes::{Backend, PathRule, PathType, RouteTable};
    let mut table = RouteTable::default();
    table.add(
        "",
        PathRule {
            path: "/".into(),
            path_type: PathType::Prefix,
            backend: Backend {
                name: "bench/backend:80".into(),
                endpoints: vec![(Ipv4Addr::LOCALHOST, backend).into()],
            },
        },
    );
    let routes = maestro_agent::ingress::proxy::SharedRoutes::default();
    routes.replace(table);
    maestro_agent::ingress::proxy::serve(
        &maestro_agent::ingress::IngressConfig {
            http: (Ipv4Addr::LOCALHOST, ingress).into(),
            https: (Ipv4Addr::LOCALHOST, 0).into(),
            metrics: (Ipv4Addr::LOCALHOST, 0).into(),
        },
        routes,
    )
    .await?;
    wait_listening(ingress)?;
    // Warm-up, then three alternating rounds.
    let quick = NetworkConfig {
        wrk_seconds: 2,
        ..cfg.clone()
    };
    wrk("warm-up", proxy, &quick)?;
    wrk("warm-up", ingress, &quick)?;
    for round in 0..3 {
        progress(&format!("ingress vs nginx: round {}", round + 1));
        report.http.push(wrk("backend directly", backend, cfg)?);
        report.http.push(wrk("nginx", proxy, cfg)?);
        report.http.push(wrk("maestro ingress", ingress, cfg)?);
    }
    Ok(())
}

pub async fn run(cfg: &NetworkConfig) -> anyhow::Result<NetworkReport> {
    let mut report = NetworkReport::default();
    progress(&format!(
        "proxy convergence: {} services x {} endpoints",
        cfg.services, cfg.endpoints
    ));
    convergence(cfg, &mut report)?;
    progress("policy convergence: 100 isolated pods x 100 peers");
    policy_convergence(&mut report)?;
    progress("ClusterIP hop");
    cluster_ip_hop(cfg, &mut report)?;
    progress("ingress vs nginx");
    ingress_vs_nginx(cfg, &mut report).await?;
    Ok(report)
}

fn median_of(runs: &[&HttpRun], f: impl Fn(&HttpRun) -> f64) -> f64 {
    let mut values: Vec<f64> = runs.iter().map(|r| f(r)).collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

pub fn render(report: &NetworkReport, cfg: &NetworkConfig) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let us = |s: &Samples, q: f64| s.quantile(q) * 1e3;
    let mut out = String::new();
    out.push_str(&format!(
        "### Proxy convergence: {} Services x {} endpoints\n\n\
         | change | nft script lines | time to applied |\n|---|---:|---:|\n\
         | first write of the table | {} | {:.0} ms |\n\
         | one Service's endpoints change (p50 / max of 20) | {} | {:.1} / {:.1} ms |\n\
         | every Service's endpoints change at once | {} | {:.0} ms |\n\
         | full rewrite of the table | - | {:.0} ms |\n\n",
        cfg.services,
        cfg.endpoints,
        report.first_lines,
        ms(report.first_write),
        report.one_service_lines,
        report.one_service.p50(),
        report.one_service.max(),
        report.all_services_lines,
        ms(report.all_services),
        ms(report.rewrite),
    ));
    out.push_str(&format!(
        "### NetworkPolicy convergence: 100 isolated pods x 100 allowed peers, 2 ports\n\n\
         | change | time to applied |\n|---|---:|\n\
         | first write of the table | {:.0} ms |\n\
         | one pod's allowed peers change (p50 / max of 20) | {:.1} / {:.1} ms |\n\n",
        ms(report.policy_first),
        report.policy_change.p50(),
        report.policy_change.max(),
    ));
    out.push_str(&format!(
        "### The ClusterIP hop ({} round trips per path)\n\n\
         | path | p50 | p99 |\n|---|---:|---:|\n\
         | pod IP, new connection each time | {:.1} µs | {:.1} µs |\n\
         | ClusterIP, new connection each time | {:.1} µs | {:.1} µs |\n\
         | pod IP, one open connection | {:.1} µs | {:.1} µs |\n\
         | ClusterIP, one open connection | {:.1} µs | {:.1} µs |\n\n\
         Added by the ClusterIP (p50): {:.1} µs per new connection, {:.1} µs per round trip on an \
         open one.\n\n",
        cfg.round_trips,
        us(&report.direct_connect, 0.5),
        us(&report.direct_connect, 0.99),
        us(&report.cluster_ip_connect, 0.5),
        us(&report.cluster_ip_connect, 0.99),
        us(&report.direct_kept, 0.5),
        us(&report.direct_kept, 0.99),
        us(&report.cluster_ip_kept, 0.5),
        us(&report.cluster_ip_kept, 0.99),
        us(&report.cluster_ip_connect, 0.5) - us(&report.direct_connect, 0.5),
        us(&report.cluster_ip_kept, 0.5) - us(&report.direct_kept, 0.5),
    ));
    out.push_str(&format!(
        "### Ingress beside nginx (wrk, 2 threads, {} connections, {} s per run; median of 3)\n\n\
         | target | requests/s | p50 | p99 |\n|---|---:|---:|---:|\n",
        cfg.wrk_connections, cfg.wrk_seconds
    ));
    for target in ["backend directly", "nginx", "maestro ingress"] {
        let runs: Vec<&HttpRun> = report.http.iter().filter(|r| r.target == target).collect();
        out.push_str(&format!(
            "| {target} | {:.0} | {:.2} ms | {:.2} ms |\n",
            median_of(&runs, |r| r.requests_per_second),
            median_of(&runs, |r| r.p50_ms),
            median_of(&runs, |r| r.p99_ms),
        ));
    }
    let all: Vec<String> = report
        .http
        .iter()
        .map(|r| {
            format!(
                "{} {:.0}/s p99 {:.2} ms",
                r.target, r.requests_per_second, r.p99_ms
            )
        })
        .collect();
    out.push_str(&format!("\nEvery run: {}.\n", all.join("; ")));
    out
}
