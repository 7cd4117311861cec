//! The node's service proxy (kube-proxy's job): Services and their endpoints in, one nftables
//! table out. The agent turns Service and EndpointSlice objects into [`Service`]s; [`Proxy`]
//! renders them ([`rules`]) and applies the difference to what the kernel holds ([`ruleset`])
//! through `nft -f -`, one transaction per change, so that no packet ever sees half a change.
//!
//! Safety first: before any rule exists, [`Proxy::new`] routes the whole service range to the
//! node itself (`ip route replace local <range> dev lo`). Traffic to a service address that no
//! rule rewrites is then delivered locally and refused by `filter-input` — it can never follow
//! the default route off the machine.

pub mod rules;

use std::net::Ipv4Addr;
use std::process::Command;

use crate::nft::NftTable;
pub use crate::nft::SyncOutcome;
use crate::pod_network::{Ipv4Cidr, NetError};

/// The default table name.
pub const DEFAULT_TABLE: &str = "maestro";

/// What the proxy needs to know about its node and cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The nftables table (family `ip`) the proxy owns; nothing else is touched.
    pub table: String,
    /// All pods' addresses: traffic from elsewhere to a ClusterIP is masqueraded so that replies
    /// come back through this node.
    pub cluster_cidr: Ipv4Cidr,
    /// The ClusterIP range, routed locally on the node.
    pub service_cidr: Ipv4Cidr,
    /// This node's name (endpoints on it are local).
    pub node_name: String,
    /// The pod bridge: pod traffic out of any other interface leaving the cluster range is
    /// masqueraded.
    pub bridge: String,
    /// The cluster DNS address this node answers on itself (inside the service range).
    pub dns: Option<Ipv4Addr>,
}

/// A transport protocol of a Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// From the API's spelling (`TCP`, the default when empty).
    pub fn parse(text: Option<&str>) -> Option<Protocol> {
        match text.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// nftables' name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One endpoint of a Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// The node the endpoint's pod runs on.
    pub node: Option<String>,
}

/// One port of a Service with its endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub node_port: Option<u16>,
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// The port's name, or its number when unnamed (for chain names).
    pub fn name_or_number(&self) -> String {
        if self.name.is_empty() {
            self.port.to_string()
        } else {
            self.name.clone()
        }
    }
}

/// A Service as the proxy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    /// The virtual addresses (none for headless and ExternalName Services).
    pub cluster_ips: Vec<Ipv4Addr>,
    /// `spec.externalIPs` and load-balancer ingress addresses: treated like node ports.
    pub external_ips: Vec<Ipv4Addr>,
    pub ports: Vec<ServicePort>,
    /// `sessionAffinity: ClientIP` with its timeout in seconds.
    pub affinity_timeout: Option<u32>,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// `externalTrafficPolicy: Local`.
    pub external_local: bool,
}

/// The proxy of one node: owns its nftables table and the local route of the service range.
#[derive(Debug)]
pub struct Proxy {
    config: ProxyConfig,
    table: NftTable,
}

impl Proxy {
    /// Routes the service range locally (before any rule exists) and returns a proxy that has
    /// not written its table yet.
    pub fn new(config: ProxyConfig) -> Result<Self, NetError> {
        crate::nft::check_table_name(&config.table)?;
        let range = config.service_cidr.to_string();
        crate::pod_network::run_command(
            Command::new("ip").args(["route", "replace", "local", &range, "dev", "lo"]),
            None,
        )?;
        Ok(Proxy {
            table: NftTable::new(config.table.clone()),
            config,
        })
    }

    /// Forget what the kernel holds, so that the next sync rewrites the whole table (repairing
    /// whatever someone else changed in it).
    pub fn forget_applied(&mut self) {
        self.table.forget_applied();
    }

    /// Make the kernel's table match `services`.
    pub fn sync(&mut self, services: &[Service]) -> Result<SyncOutcome, NetError> {
        self.table.sync(rules::render(&self.config, services))
    }

    /// Remove the table and the local route (for clean-ups; a running node keeps both).
    pub fn remove(config: &ProxyConfig) -> Result<(), NetError> {
        NftTable::remove(&config.table)?;
        let range = config.service_cidr.to_string();
        let route = crate::pod_network::run_command(
            Command::new("ip").args([
                "route", "del", "local", &range, "dev", "lo", "table", "local",
            ]),
            None,
        );
        match route {
            Err(NetError::Command { message, .. }) if message.contains("No such process") => Ok(()),
            other => other.map(drop),
        }
    }
}

#[cfg(test)]
mod tests;
