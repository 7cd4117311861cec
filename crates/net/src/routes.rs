//! Routes to the other nodes' pod networks. A node whose address is on a link this node shares
//! gets a direct route (`<its pod CIDR> via <its address>`), as flannel's host-gw backend does;
//! the routes carry their own protocol number, so that the ones this module added — and only
//! those — are found and removed when a node goes. Nodes that are not on a shared link are
//! reached through a VXLAN overlay (`maestro.vxlan`, VNI 77, UDP 8472, as flannel's vxlan
//! backend): a peer's tunnel end is the network address of its pod CIDR with a MAC derived
//! from its node address, so every node can program every peer from the Node objects alone
//! (static neighbour and forwarding entries, no learning). [`announce`] puts the LoadBalancer
//! addresses this node answers for on its interface.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Command;

use serde::Deserialize;

use crate::pod_network::{Ipv4Cidr, NetError, run_command};

/// The routing protocol number marking maestro's node routes (`proto 77` in `ip route`).
pub const ROUTE_PROTOCOL: &str = "77";

/// Another node's pod network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub pod_cidr: Ipv4Cidr,
    pub address: Ipv4Addr,
}

/// This node's end of the VXLAN overlay, used for peers without a shared link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    /// The node's address: the tunnel's outer source.
    pub node_ip: Ipv4Addr,
    /// The node's pod CIDR (the device carries no address: the bridge holds the pod range's
    /// gateway, and the node's own traffic into the tunnel leaves from its node address).
    pub pod_cidr: Ipv4Cidr,
}

/// The overlay device.
pub const VXLAN_DEVICE: &str = "maestro.vxlan";
/// VXLAN network identifier and UDP port (flannel's port).
const VXLAN_ID: &str = "77";
const VXLAN_PORT: &str = "8472";
/// Outer IPv4, UDP and VXLAN headers plus the inner Ethernet header.
const VXLAN_OVERHEAD: u32 = 50;

/// A node's tunnel MAC, derived from its address so that no node has to publish it.
pub fn vtep_mac(node_ip: Ipv4Addr) -> String {
    let [a, b, c, d] = node_ip.octets();
    format!("0e:6d:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// What [`sync`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutesOutcome {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Peers with no shared link and no overlay (no route added).
    pub unreachable: Vec<Peer>,
}

#[derive(Deserialize)]
struct JsonRoute {
    dst: String,
    gateway: Option<String>,
    dev: Option<String>,
}

fn ip(args: &[&str]) -> Result<String, NetError> {
    run_command(Command::new("ip").args(args), None)
}

fn parse<T: for<'de> Deserialize<'de>>(command: &str, text: &str) -> Result<T, NetError> {
    let text = if text.trim().is_empty() { "[]" } else { text };
    serde_json::from_str(text).map_err(|e| NetError::Parse {
        command: command.to_string(),
        message: e.to_string(),
    })
}

/// Whether `address` is on a directly connected network of this node (no gateway between).
fn on_link(address: Ipv4Addr) -> Result<bool, NetError> {
    let text = ip(&["-j", "route", "get", &address.to_string()])?;
    let routes: Vec<JsonRoute> = parse(&format!("ip -j route get {address}"), &text)?;
    Ok(routes.first().is_some_and(|r| r.gateway.is_none()))
}

/// The interface carrying `address`.
fn interface_of(address: Ipv4Addr) -> Result<JsonInterface, NetError> {
    let text = ip(&["-j", "addr", "show"])?;
    let interfaces: Vec<JsonInterface> = parse("ip -j addr show", &text)?;
    let wanted = address.to_string();
    interfaces
        .into_iter()
        .find(|i| {
            i.addr_info
                .iter()
                .any(|a| a.family == "inet" && a.local == wanted)
        })
        .ok_or_else(|| {
            NetError::InvalidConfig(format!("no interface carries the node address {address}"))
        })
}

/// Create the overlay device if it is missing (MTU: the node interface's less the overhead).
fn ensure_vxlan(overlay: &Overlay) -> Result<(), NetError> {
    if ip(&["link", "show", "dev", VXLAN_DEVICE]).is_ok() {
        return Ok(());
    }
    let underlay = interface_of(overlay.node_ip)?;
    let mtu = underlay.mtu.unwrap_or(1500).saturating_sub(VXLAN_OVERHEAD);
    let local = overlay.node_ip.to_string();
    ip(&[
        "link",
        "add",
        VXLAN_DEVICE,
        "type",
        "vxlan",
        "id",
        VXLAN_ID,
        "local",
        &local,
        "dstport",
        VXLAN_PORT,
        "dev",
        &underlay.ifname,
        "nolearning",
    ])?;
    let mac = vtep_mac(overlay.node_ip);
    ip(&[
        "link",
        "set",
        VXLAN_DEVICE,
        "address",
        &mac,
        "mtu",
        &mtu.to_string(),
        "up",
    ])?;
    Ok(())
}

#[derive(Deserialize)]
struct JsonFdb {
    mac: String,
    dst: Option<String>,
}

#[derive(Deserialize)]
struct JsonNeighbor {
    dst: String,
}

/// Point the overlay at exactly `peers`: a permanent neighbour entry (tunnel address → MAC)
/// and a forwarding entry (MAC → node address) each; entries of other peers go.
fn program_vxlan(peers: &[&Peer]) -> Result<(), NetError> {
    let macs: Vec<String> = peers.iter().map(|p| vtep_mac(p.address)).collect();
    let ends: Vec<String> = peers
        .iter()
        .map(|p| p.pod_cidr.network().to_string())
        .collect();
    let fdb: Vec<JsonFdb> = parse(
        "bridge -j fdb show",
        &run_command(
            Command::new("bridge").args(["-j", "fdb", "show", "dev", VXLAN_DEVICE]),
            None,
        )?,
    )?;
    for entry in fdb {
        if let Some(dst) = entry.dst
            && !macs.contains(&entry.mac)
        {
            let _ = run_command(
                Command::new("bridge").args([
                    "fdb",
                    "del",
                    &entry.mac,
                    "dev",
                    VXLAN_DEVICE,
                    "dst",
                    &dst,
                ]),
                None,
            );
        }
    }
    let neighbors: Vec<JsonNeighbor> = parse(
        "ip -j neigh show",
        &ip(&["-j", "neigh", "show", "dev", VXLAN_DEVICE])?,
    )?;
    for neighbor in neighbors {
        if !ends.contains(&neighbor.dst) {
            let _ = ip(&["neigh", "del", &neighbor.dst, "dev", VXLAN_DEVICE]);
        }
    }
    for ((peer, mac), end) in peers.iter().zip(&macs).zip(&ends) {
        ip(&[
            "neigh",
            "replace",
            end,
            "lladdr",
            mac,
            "dev",
            VXLAN_DEVICE,
            "nud",
            "permanent",
        ])?;
        let address = peer.address.to_string();
        run_command(
            Command::new("bridge").args([
                "fdb",
                "replace",
                mac,
                "dev",
                VXLAN_DEVICE,
                "dst",
                &address,
                "self",
                "permanent",
            ]),
            None,
        )?;
    }
    Ok(())
}

/// Make this node's routes to the other nodes' pod networks match `peers`: direct routes to
/// peers on a shared link, routes through the VXLAN overlay to the others when `overlay` is
/// given (else they are reported unreachable).
pub fn sync(peers: &[Peer], overlay: Option<&Overlay>) -> Result<RoutesOutcome, NetError> {
    let text = ip(&["-j", "route", "show", "proto", ROUTE_PROTOCOL])?;
    let existing: Vec<JsonRoute> =
        parse(&format!("ip -j route show proto {ROUTE_PROTOCOL}"), &text)?;
    let existing: BTreeMap<String, (Option<String>, Option<String>)> = existing
        .into_iter()
        .map(|r| (r.dst, (r.gateway, r.dev)))
        .collect();
    let mut outcome = RoutesOutcome::default();
    // Destination → (gateway, device for the overlay).
    let mut wanted: BTreeMap<String, (String, Option<&str>)> = BTreeMap::new();
    let mut tunneled = Vec::new();
    for peer in peers {
        if on_link(peer.address)? {
            wanted.insert(peer.pod_cidr.to_string(), (peer.address.to_string(), None));
        } else if overlay.is_some() {
            wanted.insert(
                peer.pod_cidr.to_string(),
                (peer.pod_cidr.network().to_string(), Some(VXLAN_DEVICE)),
            );
            tunneled.push(peer);
        } else {
            outcome.unreachable.push(peer.clone());
        }
    }
    if let Some(overlay) = overlay
        && !tunneled.is_empty()
    {
        ensure_vxlan(overlay)?;
        program_vxlan(&tunneled)?;
    }
    for (dst, (via, device)) in &wanted {
        let current = existing.get(dst);
        let same = current.is_some_and(|(gateway, dev)| {
            gateway.as_deref() == Some(via.as_str())
                && (device.is_none() || dev.as_deref() == *device)
        });
        if same {
            continue;
        }
        let mut args = vec!["route", "replace", dst.as_str(), "via", via.as_str()];
        if let Some(device) = device {
            args.extend(["dev", device, "onlink"]);
        }
        args.extend(["proto", ROUTE_PROTOCOL]);
        ip(&args)?;
        outcome.added.push(format!(
            "{dst} via {via}{}",
            device.map(|d| format!(" dev {d}")).unwrap_or_default()
        ));
    }
    for dst in existing.keys() {
        if !wanted.contains_key(dst) {
            ip(&["route", "del", dst, "proto", ROUTE_PROTOCOL])?;
            outcome.removed.push(dst.clone());
        }
    }
    if tunneled.is_empty() && ip(&["link", "show", "dev", VXLAN_DEVICE]).is_ok() {
        ip(&["link", "del", VXLAN_DEVICE])?;
        outcome.removed.push(VXLAN_DEVICE.to_string());
    }
    Ok(outcome)
}

#[derive(Deserialize)]
struct JsonAddress {
    family: String,
    local: String,
    prefixlen: u8,
}

#[derive(Deserialize)]
struct JsonInterface {
    ifname: String,
    mtu: Option<u32>,
    #[serde(default)]
    addr_info: Vec<JsonAddress>,
}

/// Hold exactly `wanted` of the LoadBalancer pool `(first, last)` as /32 addresses on the
/// interface that carries `node_ip`, so that this node answers ARP for them and the proxy's
/// rules (which match them like external IPs) take the traffic. Returns what changed.
pub fn announce(
    node_ip: Ipv4Addr,
    (first, last): (Ipv4Addr, Ipv4Addr),
    wanted: &[Ipv4Addr],
) -> Result<Vec<String>, NetError> {
    let interface = interface_of(node_ip)?;
    let held: Vec<Ipv4Addr> = interface
        .addr_info
        .iter()
        .filter(|a| a.family == "inet" && a.prefixlen == 32)
        .filter_map(|a| a.local.parse::<Ipv4Addr>().ok())
        .filter(|ip| first <= *ip && *ip <= last)
        .collect();
    let mut changes = Vec::new();
    for address in wanted.iter().filter(|a| !held.contains(a)) {
        let cidr = format!("{address}/32");
        ip(&["addr", "add", &cidr, "dev", &interface.ifname])?;
        changes.push(format!("+{address} on {}", interface.ifname));
    }
    for address in held.iter().filter(|a| !wanted.contains(a)) {
        let cidr = format!("{address}/32");
        ip(&["addr", "del", &cidr, "dev", &interface.ifname])?;
        changes.push(format!("-{address} on {}", interface.ifname));
    }
    Ok(changes)
}
