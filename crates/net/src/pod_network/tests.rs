//! Unit tests of the pod network's logic over a recording double of the kernel boundary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::*;

/// A host network stack in memory: links, addresses, routes and namespaces, plus a log of the
/// changing calls, and failure injection by operation name. Clones share the state, so a test
/// keeps a handle after the network is consumed.
#[derive(Default, Clone)]
struct FakeOps {
    state: Arc<Mutex<FakeState>>,
}

#[derive(Default)]
struct FakeState {
    links: BTreeMap<String, Link>,
    addresses: Vec<LinkAddress>,
    routes: Vec<Route>,
    /// Namespace path -> names of the interfaces in it and their configuration.
    namespaces: BTreeMap<PathBuf, BTreeMap<String, Option<PodInterfaceSpec>>>,
    /// Host veth -> (namespace, peer name), so deleting one end removes the other.
    peers: BTreeMap<String, (PathBuf, String)>,
    sysctls: BTreeMap<String, String>,
    calls: Vec<String>,
    fail: BTreeSet<&'static str>,
}

impl FakeOps {
    fn with(f: impl FnOnce(&mut FakeState)) -> Self {
        let ops = FakeOps::default();
        f(&mut ops.state.lock().unwrap());
        ops
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    fn calls(&self) -> Vec<String> {
        std::mem::take(&mut self.state().calls)
    }

    fn add_netns(&self, path: &str) {
        self.state().namespaces.insert(path.into(), BTreeMap::new());
    }

    fn remove_netns(&self, path: &str) {
        let mut s = self.state();
        s.namespaces.remove(Path::new(path));
        // The kernel deletes a veth pair whose peer's namespace goes away.
        let gone: Vec<String> = s
            .peers
            .iter()
            .filter(|(_, (ns, _))| ns == Path::new(path))
            .map(|(host, _)| host.clone())
            .collect();
        for host in gone {
            s.links.remove(&host);
            s.peers.remove(&host);
        }
    }

    fn fail(&self, op: &'static str) {
        self.state().fail.insert(op);
    }

    fn link_names(&self) -> Vec<String> {
        self.state().links.keys().cloned().collect()
    }
}

impl FakeState {
    fn record(&mut self, op: &'static str, call: String) -> Result<(), NetError> {
        self.calls.push(call);
        if self.fail.remove(op) {
            return Err(NetError::Command {
                command: op.into(),
                message: "injected failure".into(),
            });
        }
        Ok(())
    }

    fn add_link(&mut self, link: Link) {
        self.links.insert(link.name.clone(), link);
    }
}

fn link(name: &str, kind: Option<&str>) -> Link {
    Link {
        name: name.into(),
        kind: kind.map(Into::into),
        master: None,
        alias: None,
        mtu: 1500,
        up: true,
        mac: None,
        hairpin: None,
    }
}

impl NetworkOps for FakeOps {
    fn link(&self, name: &str) -> Result<Option<Link>, NetError> {
        Ok(self.state().links.get(name).cloned())
    }

    fn links(&self) -> Result<Vec<Link>, NetError> {
        Ok(self.state().links.values().cloned().collect())
    }

    fn addresses(&self) -> Result<Vec<LinkAddress>, NetError> {
        Ok(self.state().addresses.clone())
    }

    fn routes(&self) -> Result<Vec<Route>, NetError> {
        Ok(self.state().routes.clone())
    }

    fn create_bridge(&self, spec: &BridgeSpec) -> Result<(), NetError> {
        let mut s = self.state();
        s.record(
            "create_bridge",
            format!("create_bridge {} {} mtu {}", spec.name, spec.mac, spec.mtu),
        )?;
        s.add_link(Link {
            mtu: spec.mtu,
            up: false,
            mac: Some(spec.mac),
            ..link(&spec.name, Some("bridge"))
        });
        Ok(())
    }

    fn add_address(&self, name: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), NetError> {
        let mut s = self.state();
        s.record("add_address", format!("add_address {name} {addr}/{prefix}"))?;
        s.addresses.push(LinkAddress {
            link: name.into(),
            addr,
            prefix,
        });
        Ok(())
    }

    fn set_mtu(&self, name: &str, mtu: u32) -> Result<(), NetError> {
        let mut s = self.state();
        s.record("set_mtu", format!("set_mtu {name} {mtu}"))?;
        s.links.get_mut(name).expect("link exists").mtu = mtu;
        Ok(())
    }

    fn set_up(&self, name: &str) -> Result<(), NetError> {
        let mut s = self.state();
        s.record("set_up", format!("set_up {name}"))?;
        s.links.get_mut(name).expect("link exists").up = true;
        Ok(())
    }

    fn ensure_unreachable_route(&self, cidr: Ipv4Cidr, metric: u32) -> Result<(), NetError> {
        let mut s = self.state();
        s.record(
            "ensure_unreachable_route",
            format!("unreachable {cidr} metric {metric}"),
        )?;
        s.routes
            .retain(|r| !(r.dst == Some(cidr) && r.metric == Some(metric)));
        s.routes.push(Route {
            dst: Some(cidr),
            dev: None,
            kind: "unreachable".into(),
            metric: Some(metric),
        });
        Ok(())
    }

    fn remove_unreachable_route(&self, cidr: Ipv4Cidr, metric: u32) -> Result<(), NetError> {
        let mut s = self.state();
        s.record(
            "remove_unreachable_route",
            format!("del unreachable {cidr}"),
        )?;
        s.routes.retain(|r| {
            !(r.kind == "unreachable" && r.dst == Some(cidr) && r.metric == Some(metric))
        });
        Ok(())
    }

    fn write_sysctl(&self, key: &str, value: &str) -> Result<(), NetError> {
        let mut s = self.state();
        s.record("write_sysctl", format!("sysctl {key}={value}"))?;
        s.sysctls.insert(key.into(), value.into());
        Ok(())
    }

    fn create_veth(&self, spec: &VethSpec) -> Result<(), NetError> {
        let mut s = self.state();
        s.record(
            "create_veth",
            format!(
                "create_veth {} alias {} master {} hairpin {} mtu {} peer {} {} in {}",
                spec.host_name,
                spec.host_alias,
                spec.bridge,
                spec.hairpin,
                spec.mtu,
                spec.pod_ifname,
                spec.pod_mac,
                spec.netns.display()
            ),
        )?;
        assert!(
            !s.links.contains_key(&spec.host_name),
            "veth already exists"
        );
        let Some(ns) = s.namespaces.get_mut(&spec.netns) else {
            return Err(NetError::Command {
                command: "ip link add".into(),
                message: "No such file or directory".into(),
            });
        };
        assert!(
            !ns.contains_key(&spec.pod_ifname),
            "eth0 already in the namespace"
        );
        ns.insert(spec.pod_ifname.clone(), None);
        s.peers.insert(
            spec.host_name.clone(),
            (spec.netns.clone(), spec.pod_ifname.clone()),
        );
        s.add_link(Link {
            master: Some(spec.bridge.clone()),
            alias: Some(spec.host_alias.clone()),
            mtu: spec.mtu,
            hairpin: Some(spec.hairpin),
            ..link(&spec.host_name, Some("veth"))
        });
        Ok(())
    }

    fn configure_pod(&self, netns: &Path, spec: &PodInterfaceSpec) -> Result<(), NetError> {
        let mut s = self.state();
        s.record(
            "configure_pod",
            format!(
                "configure_pod {} {} {}/{} via {}",
                netns.display(),
                spec.ifname,
                spec.addr,
                spec.prefix,
                spec.gateway
            ),
        )?;
        let ns = s.namespaces.get_mut(netns).expect("namespace exists");
        *ns.get_mut(&spec.ifname).expect("interface exists") = Some(spec.clone());
        Ok(())
    }

    fn delete_link(&self, name: &str) -> Result<bool, NetError> {
        let mut s = self.state();
        s.record("delete_link", format!("delete_link {name}"))?;
        if let Some((ns, peer)) = s.peers.remove(name)
            && let Some(ns) = s.namespaces.get_mut(&ns)
        {
            ns.remove(&peer);
        }
        Ok(s.links.remove(name).is_some())
    }
}

const UID_A: &str = "0b6f3f8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
const UID_B: &str = "1c7a4b9f-2d3e-4f60-9bac-1d2e3f4a5b6c";

fn host() -> FakeOps {
    FakeOps::with(|s| {
        s.add_link(link("lo", None));
        s.add_link(link("eth0", None));
        s.addresses.push(LinkAddress {
            link: "eth0".into(),
            addr: "192.0.2.2".parse().unwrap(),
            prefix: 24,
        });
        s.routes.push(Route {
            dst: None,
            dev: Some("eth0".into()),
            kind: "unicast".into(),
            metric: None,
        });
        s.routes.push(Route {
            dst: Some("192.0.2.0/24".parse().unwrap()),
            dev: Some("eth0".into()),
            kind: "unicast".into(),
            metric: None,
        });
    })
}

fn config(dir: &Path) -> PodNetworkConfig {
    PodNetworkConfig::new("10.42.0.0/24".parse().unwrap(), dir)
}

fn network(dir: &Path, ops: FakeOps) -> PodNetwork<FakeOps> {
    PodNetwork::with_ops(config(dir), ops).unwrap()
}

#[test]
fn new_sets_up_the_bridge_in_a_safe_order() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(dir.path(), host());
    assert_eq!(
        net.ops().calls(),
        [
            format!("unreachable 10.42.0.0/24 metric {SAFETY_ROUTE_METRIC}"),
            "create_bridge maestro0 0a:58:0a:2a:00:01 mtu 1500".to_owned(),
            "add_address maestro0 10.42.0.1/24".to_owned(),
            "set_up maestro0".to_owned(),
            "sysctl net/ipv4/ip_forward=1".to_owned(),
        ]
    );
    assert_eq!(net.gateway(), "10.42.0.1".parse::<Ipv4Addr>().unwrap());
    assert!(dir.path().join("ipam").is_dir());
    // Never a default route or anything through the uplink.
    let s = net.ops().state();
    assert_eq!(s.routes.iter().filter(|r| r.dst.is_none()).count(), 1);
}

#[test]
fn new_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let ops = network(dir.path(), host()).ops().clone();
    ops.calls();
    let net = PodNetwork::with_ops(
        PodNetworkConfig {
            enable_ip_forward: false,
            ..config(dir.path())
        },
        ops,
    )
    .unwrap();
    // Only the (idempotent) route replace: no second bridge, no second address.
    assert_eq!(
        net.ops().calls(),
        [format!(
            "unreachable 10.42.0.0/24 metric {SAFETY_ROUTE_METRIC}"
        )]
    );
}

#[test]
fn new_adopts_an_existing_bridge_and_fixes_it() {
    let dir = tempfile::tempdir().unwrap();
    let ops = host();
    ops.state().add_link(Link {
        mtu: 9000,
        up: false,
        ..link("maestro0", Some("bridge"))
    });
    let net = PodNetwork::with_ops(
        PodNetworkConfig {
            mtu: 1450,
            enable_ip_forward: false,
            ..config(dir.path())
        },
        ops,
    )
    .unwrap();
    assert_eq!(
        net.ops().calls()[1..],
        [
            "set_mtu maestro0 1450",
            "add_address maestro0 10.42.0.1/24",
            "set_up maestro0"
        ]
    );
}

#[test]
fn new_refuses_what_is_not_ours_or_overlaps() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, FakeOps, PodNetworkConfig)> = vec![
        (
            "not a bridge",
            FakeOps::with(|s| s.add_link(link("maestro0", Some("veth")))),
            config(dir.path()),
        ),
        (
            "physical device with the name",
            FakeOps::with(|s| s.add_link(link("maestro0", None))),
            config(dir.path()),
        ),
        (
            "address on another link",
            FakeOps::with(|s| {
                s.addresses.push(LinkAddress {
                    link: "eth0".into(),
                    addr: "10.42.0.77".parse().unwrap(),
                    prefix: 16,
                })
            }),
            config(dir.path()),
        ),
        (
            "route through another link",
            FakeOps::with(|s| {
                s.routes.push(Route {
                    dst: Some("10.0.0.0/8".parse().unwrap()),
                    dev: Some("eth0".into()),
                    kind: "unicast".into(),
                    metric: None,
                })
            }),
            config(dir.path()),
        ),
        (
            "bad bridge name",
            host(),
            PodNetworkConfig {
                bridge: "a/b".into(),
                ..config(dir.path())
            },
        ),
        (
            "bridge name with the veth prefix",
            host(),
            PodNetworkConfig {
                bridge: "mae0123456789ab".into(),
                ..config(dir.path())
            },
        ),
        (
            "MTU",
            host(),
            PodNetworkConfig {
                mtu: 10,
                ..config(dir.path())
            },
        ),
        (
            "CIDR too small",
            host(),
            PodNetworkConfig {
                pod_cidr: "10.42.0.0/31".parse().unwrap(),
                ..config(dir.path())
            },
        ),
    ];
    for (name, ops, config) in cases {
        let err = PodNetwork::with_ops(config, ops.clone()).unwrap_err();
        // All checks come before the first change to the host.
        assert_eq!(ops.calls(), Vec::<String>::new(), "{name}");
        assert!(
            matches!(
                err,
                NetError::NotABridge { .. } | NetError::Overlap { .. } | NetError::InvalidConfig(_)
            ),
            "{name}: {err}"
        );
    }
}

#[test]
fn drop_routes_do_not_count_as_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let ops = host();
    ops.state().routes.push(Route {
        dst: Some("10.0.0.0/8".parse().unwrap()),
        dev: None,
        kind: "blackhole".into(),
        metric: None,
    });
    PodNetwork::with_ops(config(dir.path()), ops).unwrap();
}

#[test]
fn attach_creates_the_veth_and_configures_the_pod() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(dir.path(), host());
    net.ops().add_netns("/run/netns/a");
    net.ops().calls();

    let iface = net.attach(UID_A, Path::new("/run/netns/a")).unwrap();
    let veth = naming::host_veth_name(UID_A);
    assert_eq!(
        iface,
        PodInterface {
            ip: "10.42.0.2".parse().unwrap(),
            prefix: 24,
            gateway: "10.42.0.1".parse().unwrap(),
            mac: MacAddr::parse("0a:58:0a:2a:00:02").unwrap(),
            host_veth: veth.clone(),
            ifname: "eth0".into(),
        }
    );
    assert_eq!(
        net.ops().calls(),
        [
            format!(
                "create_veth {veth} alias maestro:maestro0:{UID_A} master maestro0 hairpin true \
                 mtu 1500 peer eth0 0a:58:0a:2a:00:02 in /run/netns/a"
            ),
            "configure_pod /run/netns/a eth0 10.42.0.2/24 via 10.42.0.1".to_owned(),
        ]
    );
    assert_eq!(net.lookup(UID_A), Some(iface.ip));
}

#[test]
fn attach_again_keeps_the_address_and_replaces_the_veth() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(dir.path(), host());
    net.ops().add_netns("/run/netns/a");
    net.ops().add_netns("/run/netns/b");
    let first = net.attach(UID_A, Path::new("/run/netns/a")).unwrap();
    net.attach(UID_B, Path::new("/run/netns/b")).unwrap();
    net.ops().calls();

    // Same namespace (agent retry) ...
    let again = net.attach(UID_A, Path::new("/run/netns/a")).unwrap();
    assert_eq!(again, first);
    let calls = net.ops().calls();
    assert_eq!(calls[0], format!("delete_link {}", first.host_veth));
    assert!(calls[1].starts_with("create_veth"));

    // ... or a new sandbox namespace.
    net.ops().add_netns("/run/netns/a2");
    let moved = net.attach(UID_A, Path::new("/run/netns/a2")).unwrap();
    assert_eq!(moved.ip, first.ip);
    assert!(net.ops().state().namespaces[Path::new("/run/netns/a")].is_empty());
}

#[test]
fn attach_survives_a_restart_with_the_same_address() {
    let dir = tempfile::tempdir().unwrap();
    let ip = {
        let net = network(dir.path(), host());
        net.ops().add_netns("/run/netns/a");
        net.attach(UID_A, Path::new("/run/netns/a")).unwrap().ip
    };
    let net = network(dir.path(), host());
    net.ops().add_netns("/run/netns/a");
    assert_eq!(net.lookup(UID_A), Some(ip));
    assert_eq!(net.attach(UID_A, Path::new("/run/netns/a")).unwrap().ip, ip);
    net.ops().add_netns("/run/netns/b");
    assert_ne!(net.attach(UID_B, Path::new("/run/netns/b")).unwrap().ip, ip);
}

#[test]
fn failed_attach_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(dir.path(), host());
    net.ops().add_netns("/run/netns/a");
    net.ops().calls();

    net.ops().fail("configure_pod");
    net.attach(UID_A, Path::new("/run/netns/a")).unwrap_err();
    assert_eq!(net.lookup(UID_A), None);
    assert!(
        !net.ops()
            .link_names()
            .contains(&naming::host_veth_name(UID_A))
    );
    assert!(net.ops().state().namespaces[Path::new("/run/netns/a")].is_empty());

    // A namespace that does not exist.
    let err = net
        .attach(UID_A, Path::new("/run/netns/missing"))
        .unwrap_err();
    assert!(matches!(err, NetError::Command { .. }), "{err}");
    assert_eq!(net.lookup(UID_A), None);
    assert!(dir.path().join("ipam").read_dir().unwrap().next().is_none());
}

#[test]
fn failed_reattach_keeps_the_address_the_pod_had() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(dir.path(), host());
    net.ops().add_netns("/run/netns/a");
    let ip = net.attach(UID_A, Path::new("/run/netns/a")).unwrap().ip;
    net.ops().fail("create_veth");
    net.attach(UID_A, Path::new("/run/netns/a")).unwrap_err();
    assert_eq!(net.lookup(UID_A), Some(ip));
}

#[test]
fn attach_rejects_bad_input_and_foreign_interfaces() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(dir.path(), host());
    net.ops().add_netns("/run/netns/a");
    assert!(matches!(
        net.attach("../x", Path::new("/run/netns/a")),
        Err(NetError::InvalidPodUid(_))
    ));
    assert!(matches!(
        net.attach(UID_A, Path::new("a")),
        Err(NetError::InvalidConfig(_))
    ));

    // Same name, but marked for another pod (a hash collision) or not ours at all.
    let name = naming::host_veth_name(UID_A);
    for alias in [
        Some(naming::veth_alias("maestro0", UID_B)),
        Some("docker".into()),
        None,
    ] {
        net.ops().state().add_link(Link {
            alias: alias.clone(),
            ..link(&name, Some("veth"))
        });
        let err = net.attach(UID_A, Path::new("/run/netns/a")).unwrap_err();
        assert!(
            matches!(err, NetError::ForeignInterface { .. }),
            "{alias:?}: {err}"
        );
        assert!(net.ops().link_names().contains(&name), "left alone");
        assert_eq!(net.lookup(UID_A), None);
    }
}

#[test]
fn exhaustion_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let net = PodNetwork::with_ops(
        PodNetworkConfig {
            pod_cidr: "10.42.0.0/30".parse().unwrap(),
            ..config(dir.path())
        },
        host(),
    )
    .unwrap();
    net.ops().add_netns("/run/netns/a");
    net.ops().add_netns("/run/netns/b");
    net.attach(UID_A, Path::new("/run/netns/a")).unwrap();
    let err = net.attach(UID_B, Path::new("/run/netns/b")).unwrap_err();
    assert!(matches!(err, NetError::Exhausted { .. }), "{err}");
    assert!(net.ops().state().namespaces[Path::new("/run/netns/b")].is_empty());
}

#[test]
fn detach_is_idempotent_and_survives_a_vanished_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(dir.path(), host());
    net.ops().add_netns("/run/netns/a");
    net.ops().add_netns("/run/netns/b");
    let a = net.attach(UID_A, Path::new("/run/netns/a")).unwrap();
    net.attach(UID_B, Path::new("/run/netns/b")).unwrap();

    net.detach(UID_A).unwrap();
    assert!(!net.ops().link_names().contains(&a.host_veth));
    assert_eq!(net.lookup(UID_A), None);
    net.detach(UID_A).unwrap();

    // The namespace went first (the pod's sandbox was destroyed, or a crash).
    net.ops().remove_netns("/run/netns/b");
    net.ops().calls();
    net.detach(UID_B).unwrap();
    assert_eq!(net.ops().calls(), Vec::<String>::new());
    assert_eq!(net.lookup(UID_B), None);
    assert!(net.allocations().is_empty());
}

#[test]
fn detach_leaves_foreign_interfaces_alone() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(dir.path(), host());
    let name = naming::host_veth_name(UID_A);
    net.ops().state().add_link(Link {
        alias: Some("someone else".into()),
        ..link(&name, Some("veth"))
    });
    net.detach(UID_A).unwrap();
    assert!(net.ops().link_names().contains(&name));
}

#[test]
fn repair_removes_only_stale_pods_of_this_network() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(dir.path(), host());
    net.ops().add_netns("/run/netns/a");
    net.ops().add_netns("/run/netns/b");
    let a = net.attach(UID_A, Path::new("/run/netns/a")).unwrap();
    let b = net.attach(UID_B, Path::new("/run/netns/b")).unwrap();
    {
        let mut s = net.ops().state();
        // Another maestro network's veth, someone's veth, a stray veth of ours (crash between
        // creation and marking), a stray veth with our prefix on no bridge.
        s.add_link(Link {
            alias: Some(naming::veth_alias("other0", "gone")),
            master: Some("other0".into()),
            ..link("mae000000000001", Some("veth"))
        });
        s.add_link(link("vethdocker", Some("veth")));
        s.add_link(Link {
            master: Some("maestro0".into()),
            ..link("mae000000000002", Some("veth"))
        });
        s.add_link(link("mae000000000003", Some("veth")));
    }
    // An address whose pod is gone and whose veth is gone too.
    net.ipam().allocate("gone-pod").unwrap();

    let report = net.repair([UID_A]).unwrap();
    assert_eq!(
        report.deleted_links,
        vec!["mae000000000002".to_owned(), b.host_veth.clone()]
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    let mut released = report.released.clone();
    released.sort();
    assert_eq!(
        released,
        vec![
            (b.ip, UID_B.to_owned()),
            ("10.42.0.4".parse().unwrap(), "gone-pod".to_owned())
        ]
    );
    assert_eq!(net.lookup(UID_A), Some(a.ip));
    let names = net.ops().link_names();
    for kept in [
        &a.host_veth,
        "mae000000000001",
        "vethdocker",
        "mae000000000003",
        "eth0",
    ] {
        assert!(names.iter().any(|n| n == kept), "{kept} kept");
    }
    // Nothing left to do the second time.
    assert_eq!(net.repair([UID_A]).unwrap(), RepairReport::default());
}

#[test]
fn repair_keeps_an_unmarked_veth_of_a_known_pod() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(dir.path(), host());
    let name = naming::host_veth_name(UID_A);
    net.ops().state().add_link(Link {
        master: Some("maestro0".into()),
        ..link(&name, Some("veth"))
    });
    assert_eq!(net.repair([UID_A]).unwrap(), RepairReport::default());
    assert!(net.ops().link_names().contains(&name));
}

#[test]
fn teardown_removes_everything_it_made() {
    let dir = tempfile::tempdir().unwrap();
    let ops = host();
    ops.state().add_link(link("vethdocker", Some("veth")));
    let net = network(dir.path(), ops.clone());
    ops.add_netns("/run/netns/a");
    ops.add_netns("/run/netns/b");
    net.attach(UID_A, Path::new("/run/netns/a")).unwrap();
    net.attach(UID_B, Path::new("/run/netns/b")).unwrap();
    net.teardown().unwrap();
    assert_eq!(ops.link_names(), ["eth0", "lo", "vethdocker"]);
    assert!(ops.state().routes.iter().all(|r| r.kind != "unreachable"));
    assert!(!dir.path().join("ipam").exists());
    assert!(dir.path().exists());
}
