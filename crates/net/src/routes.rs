//! Routes to the other nodes' pod networks. A node whose address is on a link this node shares
//! gets a direct route (`<its pod CIDR> via <its address>`), as flannel's host-gw backend does;
//! the routes carry their own protocol number, so that the ones this module added — and only
//! those — are found and removed when a node goes. Nodes that are not on a shared link are
//! reported back: they need an overlay.

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

/// What [`sync`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutesOutcome {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Peers with no shared link (no route added).
    pub unreachable: Vec<Peer>,
}

#[derive(Deserialize)]
struct JsonRoute {
    dst: String,
    gateway: Option<String>,
}

fn ip(args: &[&str]) -> Result<String, NetError> {
    run_command(Command::new("ip").args(args), None)
}

/// Whether `address` is on a directly connected network of this node (no gateway between).
fn on_link(address: Ipv4Addr) -> Result<bool, NetError> {
    let text = ip(&["-j", "route", "get", &address.to_string()])?;
    let routes: Vec<JsonRoute> = serde_json::from_str(&text).map_err(|e| NetError::Parse {
        command: format!("ip -j route get {address}"),
        message: e.to_string(),
    })?;
    Ok(routes.first().is_some_and(|r| r.gateway.is_none()))
}

/// Make this node's routes to the other nodes' pod networks match `peers`.
pub fn sync(peers: &[Peer]) -> Result<RoutesOutcome, NetError> {
    let text = ip(&["-j", "route", "show", "proto", ROUTE_PROTOCOL])?;
    let text = if text.trim().is_empty() { "[]" } else { &text };
    let existing: Vec<JsonRoute> = serde_json::from_str(text).map_err(|e| NetError::Parse {
        command: format!("ip -j route show proto {ROUTE_PROTOCOL}"),
        message: e.to_string(),
    })?;
    let existing: BTreeMap<String, Option<String>> =
        existing.into_iter().map(|r| (r.dst, r.gateway)).collect();
    let mut outcome = RoutesOutcome::default();
    let mut wanted = BTreeMap::new();
    for peer in peers {
        if !on_link(peer.address)? {
            outcome.unreachable.push(peer.clone());
            continue;
        }
        wanted.insert(peer.pod_cidr.to_string(), peer.address.to_string());
    }
    for (dst, via) in &wanted {
        if existing.get(dst) == Some(&Some(via.clone())) {
            continue;
        }
        ip(&["route", "replace", dst, "via", via, "proto", ROUTE_PROTOCOL])?;
        outcome.added.push(format!("{dst} via {via}"));
    }
    for dst in existing.keys() {
        if !wanted.contains_key(dst) {
            ip(&["route", "del", dst, "proto", ROUTE_PROTOCOL])?;
            outcome.removed.push(dst.clone());
        }
    }
    Ok(outcome)
}
