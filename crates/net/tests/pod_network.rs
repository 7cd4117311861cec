//! The pod network against the real kernel: a bridge, network namespaces and veths created with
//! iproute2, and traffic between them (ICMP with `ping`, TCP with python3 listeners). Needs root;
//! skipped (with a message) otherwise.
//!
//! Every test works on its own bridge, with its own /24 that no interface or route of the
//! machine uses (PodNetwork refuses overlapping CIDRs, and the fixture checks `ip route get`
//! before any packet is sent), so nothing can leave the machine. Each fixture removes its
//! namespaces, mounts, bridge, veths, route and state directory when dropped, also on panic.

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use maestro_net::pod_network::{
    IpRoute, Ipv4Cidr, NetError, NetworkOps, PodNetwork, PodNetworkConfig, SAFETY_ROUTE_METRIC,
};

static COUNTER: AtomicU32 = AtomicU32::new(0);
/// Picking a free CIDR and claiming it with a bridge address is one step per process.
static CREATE: Mutex<()> = Mutex::new(());

const MTU: u32 = 1400;

fn privileged() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    let tools = ["ip", "nsenter"].iter().all(|t| {
        Command::new(t)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    });
    if !(root && tools) {
        eprintln!("skipped: needs root, iproute2 and util-linux nsenter");
    }
    root && tools
}

fn python() -> &'static str {
    // The Debian interpreter, not a version manager's shim on PATH (slow to start).
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn have_ping() -> bool {
    Command::new("ping")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"))
}

fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(program: &str, args: &[&str]) -> serde_json::Value {
    let out = run_ok(program, args);
    if out.trim().is_empty() {
        return serde_json::Value::Array(Vec::new());
    }
    serde_json::from_str(&out).unwrap()
}

/// A node for one test: a state directory, a pod network on a fresh bridge and /24, and the
/// namespaces made for its pods. Dropping it removes all of it.
struct TestNode {
    tag: String,
    bridge: String,
    cidr: Ipv4Cidr,
    dir: tempfile::TempDir,
    namespaces: Vec<String>,
    mounts: Vec<PathBuf>,
    children: Vec<Child>,
    net: Option<PodNetwork>,
}

impl TestNode {
    fn new() -> TestNode {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let tag = format!("{:x}{n}", pid & 0xfffff);
        let bridge = format!("mtb{tag}");
        let dir = tempfile::tempdir().unwrap();
        let _guard = CREATE.lock().unwrap_or_else(|e| e.into_inner());
        // Candidates in 10.231.0.0/16, starting at a place that depends on the process so that
        // two test runs at once rarely race for the same /24.
        for attempt in 0..64u32 {
            let third = (pid.wrapping_mul(7) + n * 16 + attempt) % 254 + 1;
            let cidr: Ipv4Cidr = format!("10.231.{third}.0/24").parse().unwrap();
            let config = PodNetworkConfig {
                bridge: bridge.clone(),
                mtu: MTU,
                // The test leaves the host's forwarding setting alone: pods on one bridge need
                // none, and nothing may be forwarded off the machine.
                enable_ip_forward: false,
                ..PodNetworkConfig::new(cidr, dir.path().join("state"))
            };
            match PodNetwork::new(config) {
                Ok(net) => {
                    return TestNode {
                        tag,
                        bridge,
                        cidr,
                        dir,
                        namespaces: Vec::new(),
                        mounts: Vec::new(),
                        children: Vec::new(),
                        net: Some(net),
                    };
                }
                Err(NetError::Overlap { .. }) => {
                    // Nothing was created before the overlap check; try the next /24.
                    continue;
                }
                Err(e) => {
                    let node = TestNode {
                        tag,
                        bridge,
                        cidr,
                        dir,
                        namespaces: Vec::new(),
                        mounts: Vec::new(),
                        children: Vec::new(),
                        net: None,
                    };
                    drop(node);
                    panic!("PodNetwork::new: {e}");
                }
            }
        }
        panic!("no free /24 in 10.231.0.0/16");
    }

    fn net(&self) -> &PodNetwork {
        self.net.as_ref().expect("network is open")
    }

    fn config(&self) -> PodNetworkConfig {
        self.net().config().clone()
    }

    /// Simulates an agent restart: the network is dropped and opened again from its state.
    fn restart(&mut self) {
        let config = self.config();
        self.net = None;
        self.net = Some(PodNetwork::new(config).unwrap());
    }

    /// A named namespace (`ip netns add`), returned as its path under /run/netns.
    fn netns(&mut self, label: &str) -> (String, PathBuf) {
        let name = format!("mtn-{}-{label}", self.tag);
        run_ok("ip", &["netns", "add", &name]);
        self.namespaces.push(name.clone());
        let path = PathBuf::from(format!("/run/netns/{name}"));
        (name, path)
    }

    /// A namespace referenced only by a bind-mounted file outside /run/netns, as the runtime
    /// will do (`/run/maestro/pods/<uid>/ns/net`).
    fn netns_at_path(&mut self, label: &str) -> (String, PathBuf) {
        let (name, netns) = self.netns(label);
        let dir = self.dir.path().join("pods").join(label).join("ns");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("net");
        std::fs::write(&path, "").unwrap();
        run_ok(
            "mount",
            &["--bind", netns.to_str().unwrap(), path.to_str().unwrap()],
        );
        self.mounts.push(path.clone());
        (name, path)
    }

    fn uid(&self, label: &str) -> String {
        format!("{}-{label}-0000-4000-8000-000000000000", self.tag)
    }

    /// Panics unless `ip` is routed through this test's bridge: checked before sending
    /// anything, so that a bug cannot send a packet along the default route.
    fn assert_local(&self, ip: Ipv4Addr) {
        assert!(self.cidr.contains(ip), "{ip} is outside {}", self.cidr);
        let route = json("ip", &["-j", "route", "get", &ip.to_string()]);
        assert_eq!(
            route[0]["dev"].as_str(),
            Some(self.bridge.as_str()),
            "route to {ip}: {route}"
        );
    }

    /// A TCP server in the namespace that answers every connection with `reply`, for 20 s at
    /// most; killed with the fixture.
    fn listen(&mut self, netns: &str, port: u16, reply: &str) {
        let script = "import socket, sys\n\
            s = socket.socket()\n\
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
            s.bind(('0.0.0.0', int(sys.argv[1])))\n\
            s.listen(16)\n\
            s.settimeout(20)\n\
            print('ready', flush=True)\n\
            while True:\n\
            \x20   c, _ = s.accept()\n\
            \x20   c.sendall(sys.argv[2].encode())\n\
            \x20   c.close()\n";
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns, python(), "-c", script])
            .arg(port.to_string())
            .arg(reply)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        self.children.push(child);
        assert_eq!(line.trim(), "ready", "listener in {netns}");
    }

    fn cleanup(&mut self) {
        for mut child in self.children.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(net) = self.net.take()
            && let Err(e) = net.teardown()
        {
            eprintln!("teardown: {e}");
        }
        for mount in self.mounts.drain(..) {
            let _ = run("umount", &[mount.to_str().unwrap()]);
        }
        for ns in self.namespaces.drain(..) {
            let _ = run("ip", &["netns", "del", &ns]);
        }
        // In case teardown did not run or failed: everything that carries our names.
        let ops = IpRoute::new();
        if let Ok(links) = ops.links() {
            let alias = format!("maestro:{}:", self.bridge);
            for link in links {
                let ours = link.name == self.bridge
                    || link.alias.as_deref().is_some_and(|a| a.starts_with(&alias))
                    || link.master.as_deref() == Some(self.bridge.as_str());
                if ours {
                    let _ = ops.delete_link(&link.name);
                }
            }
        }
        let _ = ops.remove_unreachable_route(self.cidr, SAFETY_ROUTE_METRIC);
    }

    /// Cleans up, then proves that nothing is left: bridge, veths, namespaces, mounts, route.
    fn finish(mut self) {
        let dir = self.dir.path().to_owned();
        let namespaces = self.namespaces.clone();
        self.cleanup();
        let links = json("ip", &["-j", "-d", "link", "show"]);
        for link in links.as_array().unwrap() {
            let name = link["ifname"].as_str().unwrap_or_default();
            let alias = link["ifalias"].as_str().unwrap_or_default();
            assert_ne!(name, self.bridge, "bridge left behind");
            assert!(!alias.contains(&self.bridge), "veth {name} left behind");
        }
        let netns = run_ok("ip", &["netns", "list"]);
        for ns in namespaces {
            assert!(!netns.contains(&ns), "namespace {ns} left behind");
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mountinfo.contains(dir.to_str().unwrap()),
            "mount left behind"
        );
        let routes = run_ok("ip", &["-4", "route", "show", "table", "main"]);
        assert!(
            !routes.contains(&self.cidr.to_string()),
            "route left behind: {routes}"
        );
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn ns_run(netns: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["netns", "exec", netns];
    all.extend_from_slice(args);
    run("ip", &all)
}

fn ping(netns: &str, ip: Ipv4Addr) {
    if !have_ping() {
        eprintln!("ping not installed (iputils-ping): ICMP check from {netns} to {ip} skipped");
        return;
    }
    let out = ns_run(netns, &["ping", "-n", "-c1", "-W2", &ip.to_string()]);
    assert!(
        out.status.success(),
        "ping {ip} from {netns}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Connects from inside `netns` and returns what the server sent.
fn tcp_from(netns: &str, ip: IpAddr, port: u16) -> String {
    let script = "import socket, sys\n\
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n\
        print(s.recv(100).decode(), end='')\n";
    let out = ns_run(
        netns,
        &[python(), "-c", script, &ip.to_string(), &port.to_string()],
    );
    assert!(
        out.status.success(),
        "TCP {ip}:{port} from {netns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Connects from the host (this process) and returns what the server sent.
fn tcp_from_host(ip: Ipv4Addr, port: u16) -> String {
    let mut stream =
        TcpStream::connect_timeout(&SocketAddr::from((ip, port)), Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("TCP {ip}:{port} from the host: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn link_exists(name: &str) -> bool {
    IpRoute::new().link(name).unwrap().is_some()
}

#[test]
fn pods_reach_each_other_the_node_and_the_gateway() {
    if !privileged() {
        return;
    }
    let started = Instant::now();
    let forward_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let mut node = TestNode::new();
    let gateway = node.net().gateway();
    let (ns_a, path_a) = node.netns("a");
    let (ns_b, path_b) = node.netns_at_path("b");
    let (uid_a, uid_b) = (node.uid("a"), node.uid("b"));

    let a = node.net().attach(&uid_a, &path_a).unwrap();
    let b = node.net().attach(&uid_b, &path_b).unwrap();
    assert_ne!(a.ip, b.ip);
    assert_eq!(a.gateway, gateway);
    assert_eq!(a.prefix, 24);
    assert!(a.host_veth.len() <= 15);

    // The host side: a port of the bridge, marked, hairpin on, up, with our MTU.
    let host_a = IpRoute::new().link(&a.host_veth).unwrap().unwrap();
    assert_eq!(host_a.master.as_deref(), Some(node.bridge.as_str()));
    assert_eq!(host_a.hairpin, Some(true));
    assert_eq!(host_a.mtu, MTU);
    assert!(host_a.up);
    assert_eq!(
        host_a.alias.as_deref(),
        Some(format!("maestro:{}:{uid_a}", node.bridge).as_str())
    );
    let bridge = IpRoute::new().link(&node.bridge).unwrap().unwrap();
    assert_eq!(
        bridge.mac,
        Some(maestro_net::pod_network::MacAddr::from_ip(gateway))
    );

    // The pod side: eth0 with address, MAC and MTU, lo up, default route via the gateway.
    let links = json("ip", &["-n", &ns_a, "-j", "addr", "show"]);
    let eth0 = links
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["ifname"] == "eth0")
        .expect("eth0 in the pod");
    assert_eq!(eth0["address"], a.mac.to_string());
    assert_eq!(eth0["mtu"], MTU);
    assert!(
        eth0["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["local"] == a.ip.to_string() && i["prefixlen"] == 24)
    );
    let lo = links
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["ifname"] == "lo")
        .unwrap();
    assert!(lo["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    let routes = json("ip", &["-n", &ns_a, "-j", "route", "show"]);
    assert!(
        routes
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["dst"] == "default" && r["gateway"] == gateway.to_string()),
        "{routes}"
    );

    // Traffic. Every destination is first proven to be on this bridge.
    node.assert_local(a.ip);
    node.assert_local(b.ip);
    node.listen(&ns_a, 8080, "from-a");
    node.listen(&ns_b, 8080, "from-b");
    ping(&ns_a, b.ip);
    ping(&ns_a, gateway);
    ping(&ns_a, Ipv4Addr::LOCALHOST);
    assert_eq!(tcp_from(&ns_a, b.ip.into(), 8080), "from-b");
    assert_eq!(tcp_from(&ns_b, a.ip.into(), 8080), "from-a");
    assert_eq!(tcp_from_host(b.ip, 8080), "from-b");
    assert_eq!(tcp_from_host(a.ip, 8080), "from-a");
    // Loopback inside the pod.
    assert_eq!(tcp_from(&ns_a, Ipv4Addr::LOCALHOST.into(), 8080), "from-a");
    // The pod reaches the node through the gateway address.
    let on_gateway = TcpListener::bind((gateway, 0)).unwrap();
    let port = on_gateway.local_addr().unwrap().port();
    let accept = std::thread::spawn(move || {
        use std::io::Write;
        let (mut conn, peer) = on_gateway.accept().unwrap();
        conn.write_all(b"from-node").unwrap();
        peer.ip()
    });
    assert_eq!(tcp_from(&ns_a, gateway.into(), port), "from-node");
    assert_eq!(accept.join().unwrap(), IpAddr::from(a.ip));

    // Attaching again keeps the address and works again.
    let again = node.net().attach(&uid_a, &path_a).unwrap();
    assert_eq!(again, a);
    ping(&ns_a, b.ip);
    assert_eq!(tcp_from(&ns_a, b.ip.into(), 8080), "from-b");

    // An agent restart: addresses come back from the state directory.
    node.restart();
    assert_eq!(node.net().lookup(&uid_a), Some(a.ip));
    assert_eq!(node.net().attach(&uid_b, &path_b).unwrap().ip, b.ip);
    assert_eq!(tcp_from_host(b.ip, 8080), "from-b");

    // Detach removes the veth pair (eth0 leaves the pod) and releases the address.
    node.net().detach(&uid_a).unwrap();
    assert!(!link_exists(&a.host_veth));
    assert_eq!(node.net().lookup(&uid_a), None);
    let links = json("ip", &["-n", &ns_a, "-j", "link", "show"]);
    assert!(
        links
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["ifname"] != "eth0")
    );
    node.net().detach(&uid_a).unwrap();

    node.finish();
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        forward_before
    );
    eprintln!("took {:?}", started.elapsed());
}

#[test]
fn detach_after_the_namespace_is_gone() {
    if !privileged() {
        return;
    }
    let mut node = TestNode::new();
    let (ns, path) = node.netns("c");
    let uid = node.uid("c");
    let c = node.net().attach(&uid, &path).unwrap();
    assert!(link_exists(&c.host_veth));

    // The sandbox is destroyed before the agent gets to detach (or the agent crashed).
    run_ok("ip", &["netns", "del", &ns]);
    node.namespaces.retain(|n| n != &ns);
    wait_until("the kernel to delete the veth pair", || {
        !link_exists(&c.host_veth)
    });
    node.net().detach(&uid).unwrap();
    assert_eq!(node.net().lookup(&uid), None);
    assert!(node.net().allocations().is_empty());

    // An attach into a namespace path that does not exist fails cleanly.
    let missing = node.dir.path().join("no-such-netns");
    node.net().attach(&uid, &missing).unwrap_err();
    assert_eq!(node.net().lookup(&uid), None);
    assert!(!link_exists(&c.host_veth));
    node.finish();
}

#[test]
fn repair_after_restart_removes_pods_that_are_gone() {
    if !privileged() {
        return;
    }
    let mut node = TestNode::new();
    let (_, path_d) = node.netns("d");
    let (ns_e, path_e) = node.netns("e");
    let (uid_d, uid_e) = (node.uid("d"), node.uid("e"));
    let d = node.net().attach(&uid_d, &path_d).unwrap();
    let e = node.net().attach(&uid_e, &path_e).unwrap();

    node.restart();
    let report = node.net().repair([uid_d.as_str()]).unwrap();
    assert_eq!(report.deleted_links, vec![e.host_veth.clone()]);
    assert_eq!(report.released, vec![(e.ip, uid_e.clone())]);
    assert!(!link_exists(&e.host_veth));
    let links = json("ip", &["-n", &ns_e, "-j", "link", "show"]);
    assert!(
        links
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["ifname"] != "eth0")
    );

    // The known pod is untouched and still reachable from the node.
    assert!(link_exists(&d.host_veth));
    assert_eq!(node.net().lookup(&uid_d), Some(d.ip));
    node.assert_local(d.ip);
    if have_ping() {
        run_ok("ping", &["-n", "-c1", "-W2", &d.ip.to_string()]);
    }
    assert_eq!(
        node.net().repair([uid_d.as_str()]).unwrap(),
        Default::default()
    );
    node.finish();
}
