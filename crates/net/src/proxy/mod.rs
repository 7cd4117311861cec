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
pub mod ruleset;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::pod_network::{Ipv4Cidr, NetError};
use ruleset::Ruleset;

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

/// What one [`Proxy::sync`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    /// Nothing changed: no script ran.
    pub unchanged: bool,
    /// The whole table was written (first sync, a structural change, or after a failure).
    pub full: bool,
    /// Lines of the script applied.
    pub lines: usize,
    pub elapsed: Duration,
}

/// The proxy of one node: owns its nftables table and the local route of the service range.
#[derive(Debug)]
pub struct Proxy {
    config: ProxyConfig,
    nft: PathBuf,
    /// What the kernel holds, as far as we know; `None` forces a full write.
    applied: Option<Ruleset>,
}

impl Proxy {
    /// Routes the service range locally (before any rule exists) and returns a proxy that has
    /// not written its table yet.
    pub fn new(config: ProxyConfig) -> Result<Self, NetError> {
        if config.table.is_empty()
            || !config
                .table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(NetError::InvalidConfig(format!(
                "nftables table name {:?}: expected [A-Za-z0-9_-]+",
                config.table
            )));
        }
        let range = config.service_cidr.to_string();
        crate::pod_network::run_command(
            Command::new("ip").args(["route", "replace", "local", &range, "dev", "lo"]),
            None,
        )?;
        Ok(Proxy {
            config,
            nft: "nft".into(),
            applied: None,
        })
    }

    /// Forget what the kernel holds, so that the next sync rewrites the whole table (repairing
    /// whatever someone else changed in it).
    pub fn forget_applied(&mut self) {
        self.applied = None;
    }

    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// Make the kernel's table match `services`.
    pub fn sync(&mut self, services: &[Service]) -> Result<SyncOutcome, NetError> {
        let started = Instant::now();
        let desired = rules::render(&self.config, services);
        let diff = self
            .applied
            .as_ref()
            .and_then(|applied| desired.diff_script(applied));
        let (script, full) = match diff {
            Some(script) if script.is_empty() => {
                return Ok(SyncOutcome {
                    unchanged: true,
                    full: false,
                    lines: 0,
                    elapsed: started.elapsed(),
                });
            }
            Some(script) => (script, false),
            None => (desired.full_script(), true),
        };
        // Whatever happens, the kernel's state is unknown until a write succeeds.
        self.applied = None;
        let result = self.apply(&script);
        if result.is_err() && !full {
            // A diff against a table someone else changed can fail: rewrite it whole.
            tracing::warn!(table = %self.config.table, "incremental nftables update failed; rewriting the table");
            self.apply(&desired.full_script())?;
        } else {
            result?;
        }
        self.applied = Some(desired);
        Ok(SyncOutcome {
            unchanged: false,
            full,
            lines: script.lines().count(),
            elapsed: started.elapsed(),
        })
    }

    fn apply(&self, script: &str) -> Result<(), NetError> {
        crate::pod_network::run_command(Command::new(&self.nft).args(["-f", "-"]), Some(script))
            .map(drop)
    }

    /// Remove the table and the local route (for clean-ups; a running node keeps both).
    pub fn remove(config: &ProxyConfig) -> Result<(), NetError> {
        let table = &config.table;
        let _ = crate::pod_network::run_command(
            Command::new("nft").args(["-f", "-"]),
            Some(&format!("add table ip {table}\ndelete table ip {table}\n")),
        )?;
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
