//! The kernel boundary of the pod network: what [`super::PodNetwork`] asks of the node's
//! network stack, as one synchronous trait. [`super::IpRoute`] implements it with iproute2
//! commands; the unit tests use a recording double, so the logic (IPAM, naming, what to create
//! and delete) is tested without privileges.

use std::net::Ipv4Addr;
use std::path::Path;

use super::cidr::Ipv4Cidr;
use super::error::NetError;
use super::naming::MacAddr;

/// A network interface of the host namespace, as much of it as the pod network needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    /// `linkinfo.info_kind`: "bridge", "veth", ...; `None` for physical devices and loopback.
    pub kind: Option<String>,
    /// The bridge this interface is a port of.
    pub master: Option<String>,
    /// IFLA_IFALIAS, where we mark the veths we create.
    pub alias: Option<String>,
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    pub mac: Option<MacAddr>,
    /// Hairpin mode of a bridge port; `None` when the link is not a bridge port.
    pub hairpin: Option<bool>,
}

/// An IPv4 address assigned to a host interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkAddress {
    pub link: String,
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

/// An IPv4 route of the host's main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `None` for the default route.
    pub dst: Option<Ipv4Cidr>,
    pub dev: Option<String>,
    /// "unicast" when `ip` prints no type; otherwise "unreachable", "blackhole", "local", ...
    pub kind: String,
    pub metric: Option<u32>,
}

/// The node's bridge as [`NetworkOps::create_bridge`] creates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    pub name: String,
    /// Set explicitly: a bridge without an assigned MAC takes the lowest MAC of its ports and
    /// changes it as pods come and go, which breaks the pods' ARP entry for the gateway.
    pub mac: MacAddr,
    pub mtu: u32,
}

/// A pod's veth pair as [`NetworkOps::create_veth`] creates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethSpec {
    /// Host side, in the host namespace, a port of `bridge`.
    pub host_name: String,
    /// Marks the host side as ours (see [`super::naming::veth_alias`]).
    pub host_alias: String,
    pub bridge: String,
    /// Hairpin on the host side's bridge port, so a pod can reach itself through a Service
    /// address once the proxy DNATs it back to the pod.
    pub hairpin: bool,
    pub mtu: u32,
    /// Name of the peer, created directly inside the pod's namespace (no rename step).
    pub pod_ifname: String,
    pub pod_mac: MacAddr,
    /// The pod's network namespace, as a file path (bind-mounted nsfs file).
    pub netns: std::path::PathBuf,
}

/// The configuration applied inside the pod's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInterfaceSpec {
    pub ifname: String,
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

/// What the pod network needs from the kernel. Every method is synchronous and either does all
/// of its work or returns an error; callers in async code call it from a blocking context.
pub trait NetworkOps: Send + Sync {
    /// One host interface, `None` if there is none of that name.
    fn link(&self, name: &str) -> Result<Option<Link>, NetError>;

    /// All host interfaces.
    fn links(&self) -> Result<Vec<Link>, NetError>;

    /// All IPv4 addresses of host interfaces.
    fn addresses(&self) -> Result<Vec<LinkAddress>, NetError>;

    /// The IPv4 routes of the host's main table.
    fn routes(&self) -> Result<Vec<Route>, NetError>;

    /// Creates a bridge (down, no address).
    fn create_bridge(&self, spec: &BridgeSpec) -> Result<(), NetError>;

    fn add_address(&self, link: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), NetError>;

    fn set_mtu(&self, link: &str, mtu: u32) -> Result<(), NetError>;

    fn set_up(&self, link: &str) -> Result<(), NetError>;

    /// Adds or replaces an `unreachable` route for `cidr` with the given metric.
    fn ensure_unreachable_route(&self, cidr: Ipv4Cidr, metric: u32) -> Result<(), NetError>;

    /// Removes the route added by [`NetworkOps::ensure_unreachable_route`]; no error if absent.
    fn remove_unreachable_route(&self, cidr: Ipv4Cidr, metric: u32) -> Result<(), NetError>;

    /// Writes a sysctl, `key` as a path under /proc/sys (`net/ipv4/ip_forward`).
    fn write_sysctl(&self, key: &str, value: &str) -> Result<(), NetError>;

    /// Creates the veth pair with its peer already in the pod's namespace, attaches the host
    /// side to the bridge and brings it up.
    fn create_veth(&self, spec: &VethSpec) -> Result<(), NetError>;

    /// Inside the namespace: loopback up, the address on the interface, the interface up, the
    /// default route through the gateway.
    fn configure_pod(&self, netns: &Path, spec: &PodInterfaceSpec) -> Result<(), NetError>;

    /// Deletes a host interface (a veth takes its peer with it). `Ok(false)` if it did not exist.
    fn delete_link(&self, name: &str) -> Result<bool, NetError>;
}
