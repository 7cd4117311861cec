//! The pod network of one node: a bridge (`maestro0`) holding the first address of the node's
//! pod CIDR, and for each pod a veth pair from that bridge into the pod's network namespace with
//! an address from persistent IPAM. It also renders the pod's /etc/hosts, /etc/hostname and
//! /etc/resolv.conf ([`files`]). Services, DNS, NetworkPolicy and routes between nodes build on
//! this module later; nothing else in the agent touches links or addresses.
//!
//! Layers: [`PodNetwork`] holds the logic (what to create, reuse, delete; IPAM; names) and calls
//! the kernel only through the synchronous [`NetworkOps`] trait, implemented by [`IpRoute`]
//! (iproute2 child processes). The agent calls it from a blocking context.
//!
//! Safety rules, enforced here rather than left to callers:
//! - The bridge has no uplink and the host gets no default route; the only route added is an
//!   `unreachable` route for the pod CIDR with the highest metric, so if the bridge is ever down
//!   or gone, traffic for pod addresses is dropped instead of following the default route out.
//! - A pod CIDR that overlaps an address or route of another interface is refused.
//! - Only interfaces we created are changed or deleted: host veths carry an alias naming the
//!   bridge and the pod (see [`naming::veth_alias`]), and the bridge must be a bridge.

mod cidr;
mod error;
pub mod files;
mod ipam;
mod iproute;
pub mod naming;
mod ops;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

pub use cidr::Ipv4Cidr;
pub use error::NetError;
pub use ipam::{Allocation, Ipam};
pub use iproute::IpRoute;
pub(crate) use iproute::run as run_command;
pub use naming::MacAddr;
pub use ops::{BridgeSpec, Link, LinkAddress, NetworkOps, PodInterfaceSpec, Route, VethSpec};

/// The bridge's default name.
pub const DEFAULT_BRIDGE: &str = "maestro0";

/// The default MTU of the bridge and of every veth.
pub const DEFAULT_MTU: u32 = 1500;

/// Metric of the `unreachable` safety route for the pod CIDR: higher than any real route, so
/// the bridge's connected route (metric 0) always wins while the bridge is up.
pub const SAFETY_ROUTE_METRIC: u32 = u32::MAX;

/// Route kinds that only drop traffic: overlapping them hijacks nothing.
const DROP_ROUTE_KINDS: [&str; 3] = ["unreachable", "blackhole", "prohibit"];

/// How the node's pod network is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNetworkConfig {
    /// The node bridge's name ([`DEFAULT_BRIDGE`]).
    pub bridge: String,
    /// The node's pod CIDR; its first address is the gateway, on the bridge.
    pub pod_cidr: Ipv4Cidr,
    /// MTU of the bridge and of both ends of every veth ([`DEFAULT_MTU`]).
    pub mtu: u32,
    /// Persistent state: the IPAM records go to `<state_dir>/ipam`.
    pub state_dir: PathBuf,
    /// Turn on `net.ipv4.ip_forward` (needed for Services and for traffic between nodes).
    /// Tests on a shared machine turn it off to leave the host's setting alone.
    pub enable_ip_forward: bool,
}

impl PodNetworkConfig {
    /// The defaults: bridge `maestro0`, MTU 1500, IP forwarding on.
    pub fn new(pod_cidr: Ipv4Cidr, state_dir: impl Into<PathBuf>) -> Self {
        PodNetworkConfig {
            bridge: DEFAULT_BRIDGE.to_owned(),
            pod_cidr,
            mtu: DEFAULT_MTU,
            state_dir: state_dir.into(),
            enable_ip_forward: true,
        }
    }

    /// The gateway: the first address of the pod CIDR, on the bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        self.pod_cidr.nth(1).unwrap_or(self.pod_cidr.network())
    }

    fn ipam_dir(&self) -> PathBuf {
        self.state_dir.join("ipam")
    }

    fn validate(&self) -> Result<(), NetError> {
        if !naming::valid_ifname(&self.bridge) {
            return Err(NetError::InvalidConfig(format!(
                "bridge name {:?}: expected 1 to 15 characters of [A-Za-z0-9._-]",
                self.bridge
            )));
        }
        if naming::looks_like_host_veth(&self.bridge) {
            return Err(NetError::InvalidConfig(format!(
                "bridge name {:?} has the form of a pod veth name",
                self.bridge
            )));
        }
        if !(68..=65535).contains(&self.mtu) {
            return Err(NetError::InvalidConfig(format!(
                "MTU {} is outside 68..=65535",
                self.mtu
            )));
        }
        if self.pod_cidr.prefix() > 30 {
            return Err(NetError::InvalidConfig(format!(
                "pod CIDR {} is too small: it needs a gateway and at least one pod address",
                self.pod_cidr
            )));
        }
        Ok(())
    }
}

/// A pod's interface after [`PodNetwork::attach`], for the pod's status and the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInterface {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: MacAddr,
    /// The host side of the veth pair, a port of the bridge.
    pub host_veth: String,
    /// The interface name inside the pod (`eth0`).
    pub ifname: String,
}

/// What [`PodNetwork::repair`] cleaned up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Host veths deleted.
    pub deleted_links: Vec<String>,
    /// Addresses released, with the pod uid that held them.
    pub released: Vec<(Ipv4Addr, String)>,
}

/// The node's pod network. Methods take `&self` and may be called concurrently for different
/// pods; calls for the same pod must not overlap (the agent serialises work per pod).
pub struct PodNetwork<O: NetworkOps = IpRoute> {
    config: PodNetworkConfig,
    ops: O,
    ipam: Mutex<Ipam>,
}

impl<O: NetworkOps> std::fmt::Debug for PodNetwork<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodNetwork")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl PodNetwork<IpRoute> {
    /// Sets up the node's bridge (idempotently) and opens IPAM, with iproute2.
    pub fn new(config: PodNetworkConfig) -> Result<Self, NetError> {
        Self::with_ops(config, IpRoute::new())
    }
}

impl<O: NetworkOps> PodNetwork<O> {
    /// Like [`PodNetwork::new`] over any [`NetworkOps`].
    ///
    /// Converges the host to: a bridge of that name (created if missing, with a MAC derived
    /// from the gateway so it never changes as ports come and go), the configured MTU, the
    /// gateway address (whose connected route makes pods reachable from the node), up; the
    /// safety route; IP forwarding if configured.
    pub fn with_ops(config: PodNetworkConfig, ops: O) -> Result<Self, NetError> {
        config.validate()?;
        let gateway = config.gateway();
        let cidr = config.pod_cidr;
        let bridge = config.bridge.as_str();
        // First, so that an unreadable state directory fails before the host is changed.
        let ipam = Ipam::open(config.ipam_dir(), cidr, gateway)?;

        let addresses = ops.addresses()?;
        for a in &addresses {
            let net = Ipv4Cidr::containing(a.addr, a.prefix).map_err(NetError::InvalidConfig)?;
            if a.link != bridge && net.overlaps(&cidr) {
                return Err(NetError::Overlap {
                    cidr: cidr.to_string(),
                    what: format!("address {}/{} on {}", a.addr, a.prefix, a.link),
                });
            }
        }
        for r in ops.routes()? {
            let Some(dst) = r.dst else { continue };
            if r.dev.as_deref() == Some(bridge) || DROP_ROUTE_KINDS.contains(&r.kind.as_str()) {
                continue;
            }
            if dst.overlaps(&cidr) {
                return Err(NetError::Overlap {
                    cidr: cidr.to_string(),
                    what: format!(
                        "{} route {dst} via {}",
                        r.kind,
                        r.dev.as_deref().unwrap_or("no device")
                    ),
                });
            }
        }

        let existing = ops.link(bridge)?;
        if let Some(link) = &existing
            && link.kind.as_deref() != Some("bridge")
        {
            return Err(NetError::NotABridge {
                name: bridge.to_owned(),
                kind: link.kind.clone().unwrap_or_else(|| "device".into()),
            });
        }

        // All checks are done: from here on the host is changed. The safety route goes in
        // before the bridge can carry the CIDR, so there is no moment in which pod addresses
        // are routed but could fall through to the default route.
        ops.ensure_unreachable_route(cidr, SAFETY_ROUTE_METRIC)?;
        match existing {
            None => ops.create_bridge(&BridgeSpec {
                name: bridge.to_owned(),
                mac: MacAddr::from_ip(gateway),
                mtu: config.mtu,
            })?,
            Some(link) if link.mtu != config.mtu => ops.set_mtu(bridge, config.mtu)?,
            Some(_) => {}
        }
        let has_gateway = addresses
            .iter()
            .any(|a| a.link == bridge && a.addr == gateway && a.prefix == cidr.prefix());
        if !has_gateway {
            ops.add_address(bridge, gateway, cidr.prefix())?;
        }
        if !ops.link(bridge)?.is_some_and(|l| l.up) {
            ops.set_up(bridge)?;
        }
        if config.enable_ip_forward {
            ops.write_sysctl("net/ipv4/ip_forward", "1")?;
        }

        tracing::info!(bridge, %cidr, %gateway, "pod network ready");
        Ok(PodNetwork {
            config,
            ops,
            ipam: Mutex::new(ipam),
        })
    }

    pub fn config(&self) -> &PodNetworkConfig {
        &self.config
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.config.gateway()
    }

    /// The kernel boundary (for tests and diagnostics).
    pub fn ops(&self) -> &O {
        &self.ops
    }

    /// The pod's address, if it has one.
    pub fn lookup(&self, pod_uid: &str) -> Option<Ipv4Addr> {
        self.ipam().lookup(pod_uid)
    }

    /// Every allocated address with its pod uid.
    pub fn allocations(&self) -> Vec<(Ipv4Addr, String)> {
        self.ipam()
            .allocations()
            .map(|(ip, uid)| (ip, uid.to_owned()))
            .collect()
    }

    fn ipam(&self) -> MutexGuard<'_, Ipam> {
        // The map is only changed after its file operation succeeded, so it is consistent
        // even if a holder panicked.
        self.ipam.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connects the pod's network namespace (an absolute path to an nsfs file, e.g.
    /// `/run/maestro/pods/<uid>/ns/net` or `/run/netns/<name>`) to the bridge: an address (the
    /// pod's existing one if it has one), a veth pair whose peer appears in the namespace as
    /// `eth0` with the address and a default route via the gateway, loopback up.
    ///
    /// Attaching a pod again (a new sandbox, or after an agent restart) keeps its address and
    /// replaces its veth. On failure nothing is left behind except an address the pod already
    /// had before this call.
    pub fn attach(&self, pod_uid: &str, netns: &Path) -> Result<PodInterface, NetError> {
        if !naming::valid_pod_uid(pod_uid) {
            return Err(NetError::InvalidPodUid(pod_uid.to_owned()));
        }
        // A relative name would be read by `ip` as a name under /run/netns.
        if !netns.is_absolute() {
            return Err(NetError::InvalidConfig(format!(
                "network namespace {} is not an absolute path",
                netns.display()
            )));
        }
        let allocation = self.ipam().allocate(pod_uid)?;
        let result = self.connect(pod_uid, netns, allocation.ip);
        if result.is_err()
            && !allocation.existing
            && let Err(e) = self.ipam().release(pod_uid)
        {
            tracing::warn!(pod_uid, error = %e, "releasing the address of a failed attach");
        }
        result
    }

    fn connect(&self, pod_uid: &str, netns: &Path, ip: Ipv4Addr) -> Result<PodInterface, NetError> {
        let host_veth = naming::host_veth_name(pod_uid);
        if let Some(link) = self.ops.link(&host_veth)? {
            match self.owner(&link) {
                Owner::Pod(uid) if uid == pod_uid => {}
                Owner::Unmarked if link.master.as_deref() == Some(self.config.bridge.as_str()) => {}
                other => {
                    return Err(NetError::ForeignInterface {
                        name: host_veth,
                        uid: pod_uid.to_owned(),
                        owner: other.describe(),
                    });
                }
            }
            // A veth from an earlier attach (old sandbox, or a crash midway): start clean.
            self.ops.delete_link(&host_veth)?;
        }

        let interface = PodInterface {
            ip,
            prefix: self.config.pod_cidr.prefix(),
            gateway: self.gateway(),
            mac: MacAddr::from_ip(ip),
            host_veth: host_veth.clone(),
            ifname: naming::POD_IFNAME.to_owned(),
        };
        let veth = VethSpec {
            host_name: host_veth.clone(),
            host_alias: naming::veth_alias(&self.config.bridge, pod_uid),
            bridge: self.config.bridge.clone(),
            hairpin: true,
            mtu: self.config.mtu,
            pod_ifname: interface.ifname.clone(),
            pod_mac: interface.mac,
            netns: netns.to_owned(),
        };
        let configured = self.ops.create_veth(&veth).and_then(|()| {
            self.ops.configure_pod(
                netns,
                &PodInterfaceSpec {
                    ifname: interface.ifname.clone(),
                    addr: ip,
                    prefix: interface.prefix,
                    gateway: interface.gateway,
                },
            )
        });
        if let Err(e) = configured {
            // The veth may exist (with or without its peer configured); remove it so a retry
            // starts from nothing.
            if let Err(cleanup) = self.ops.delete_link(&host_veth) {
                tracing::warn!(pod_uid, error = %cleanup, "deleting the veth of a failed attach");
            }
            return Err(e);
        }
        tracing::info!(pod_uid, %ip, host_veth, "pod attached");
        Ok(interface)
    }

    /// Disconnects the pod: deletes its host veth (the peer in the namespace goes with it) and
    /// releases its address. Idempotent, and fine when the namespace is already gone (the
    /// kernel then deleted the pair already).
    pub fn detach(&self, pod_uid: &str) -> Result<(), NetError> {
        if !naming::valid_pod_uid(pod_uid) {
            return Err(NetError::InvalidPodUid(pod_uid.to_owned()));
        }
        let host_veth = naming::host_veth_name(pod_uid);
        if let Some(link) = self.ops.link(&host_veth)? {
            match self.owner(&link) {
                Owner::Pod(uid) if uid == pod_uid => {
                    self.ops.delete_link(&host_veth)?;
                }
                Owner::Unmarked if link.master.as_deref() == Some(self.config.bridge.as_str()) => {
                    self.ops.delete_link(&host_veth)?;
                }
                other => tracing::warn!(
                    pod_uid,
                    host_veth,
                    owner = other.describe(),
                    "interface with the pod's veth name is not the pod's; left alone"
                ),
            }
        }
        // After the link: the address must not be handed out while a pod may still use it.
        if let Some(ip) = self.ipam().release(pod_uid)? {
            tracing::info!(pod_uid, %ip, "pod detached");
        }
        Ok(())
    }

    /// After an agent restart: deletes the veths and releases the addresses of pods not in
    /// `known_pods` (the pods this node should still run). Only veths marked as ours for this
    /// bridge are considered, plus unmarked veths on our bridge with our name prefix (an attach
    /// interrupted between creating the veth and marking it).
    pub fn repair<'a>(
        &self,
        known_pods: impl IntoIterator<Item = &'a str>,
    ) -> Result<RepairReport, NetError> {
        let known: HashSet<&str> = known_pods.into_iter().collect();
        let known_names: HashSet<String> = known
            .iter()
            .map(|uid| naming::host_veth_name(uid))
            .collect();
        let mut report = RepairReport::default();
        for link in self.ops.links()? {
            let stale = match self.owner(&link) {
                Owner::Pod(uid) => !known.contains(uid) && !known_names.contains(&link.name),
                Owner::Unmarked => {
                    link.master.as_deref() == Some(self.config.bridge.as_str())
                        && !known_names.contains(&link.name)
                }
                Owner::Foreign(_) => false,
            };
            if stale && self.ops.delete_link(&link.name)? {
                report.deleted_links.push(link.name);
            }
        }
        let mut ipam = self.ipam();
        let stale: Vec<(Ipv4Addr, String)> = ipam
            .allocations()
            .filter(|(_, uid)| !known.contains(uid))
            .map(|(ip, uid)| (ip, uid.to_owned()))
            .collect();
        for (ip, uid) in stale {
            ipam.release_ip(ip)?;
            report.released.push((ip, uid));
        }
        if report != RepairReport::default() {
            tracing::info!(?report, "pod network repaired");
        }
        Ok(report)
    }

    /// Removes the whole pod network of this node: every pod veth of this bridge, the bridge,
    /// the safety route and the IPAM records. For node decommissioning and tests.
    pub fn teardown(self) -> Result<(), NetError> {
        for link in self.ops.links()? {
            let ours = match self.owner(&link) {
                Owner::Pod(_) => true,
                Owner::Unmarked => link.master.as_deref() == Some(self.config.bridge.as_str()),
                Owner::Foreign(_) => false,
            };
            if ours {
                self.ops.delete_link(&link.name)?;
            }
        }
        if let Some(link) = self.ops.link(&self.config.bridge)?
            && link.kind.as_deref() == Some("bridge")
        {
            self.ops.delete_link(&self.config.bridge)?;
        }
        self.ops
            .remove_unreachable_route(self.config.pod_cidr, SAFETY_ROUTE_METRIC)?;
        let dir = self.config.ipam_dir();
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NetError::io(dir, e)),
            _ => Ok(()),
        }
    }

    /// Who a host link belongs to, as far as this network can tell.
    fn owner<'l>(&self, link: &'l Link) -> Owner<'l> {
        if let Some(alias) = &link.alias {
            return match naming::alias_pod_uid(&self.config.bridge, alias) {
                Some(uid) if link.kind.as_deref() == Some("veth") => Owner::Pod(uid),
                _ => Owner::Foreign(format!("alias {alias:?}")),
            };
        }
        if link.kind.as_deref() == Some("veth") && link.name.starts_with(naming::HOST_VETH_PREFIX) {
            return Owner::Unmarked;
        }
        Owner::Foreign(format!(
            "a {} without our mark",
            link.kind.as_deref().unwrap_or("device")
        ))
    }
}

enum Owner<'a> {
    /// Marked as the veth of this pod on this bridge.
    Pod(&'a str),
    /// A veth with our prefix and no alias: ours only if it is also a port of our bridge.
    Unmarked,
    Foreign(String),
}

impl Owner<'_> {
    fn describe(&self) -> String {
        match self {
            Owner::Pod(uid) => format!("the veth of pod {uid}"),
            Owner::Unmarked => "an unmarked veth not on this bridge".into(),
            Owner::Foreign(what) => what.clone(),
        }
    }
}
