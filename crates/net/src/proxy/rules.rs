//! The proxy's nftables rules, written from the Services this node knows (kube-proxy's nftables
//! mode, in the same shape):
//!
//! - `services` (from the nat prerouting and output hooks) looks up `ip daddr . proto . port`
//!   in the `service-ips` verdict map (ClusterIPs → `svc-*`, external and load-balancer IPs →
//!   `ext-*`), then the destination port of traffic to the node's own addresses in
//!   `service-nodeports` (→ `ext-*`).
//! - `svc-*` marks traffic from outside the pod network for masquerading and goes to the
//!   endpoints the internal traffic policy allows; `ext-*` does the same for the external
//!   policy (with `Local`: no masquerading, so the client's address is kept, and only this
//!   node's endpoints).
//! - `cluster-*` / `local-*` pick an endpoint: the client's earlier endpoint under ClientIP
//!   session affinity, else a random one (`numgen random mod N`).
//! - `ep-*` marks hairpin traffic (a pod reaching itself) for masquerading and DNATs.
//! - `nat-postrouting` masquerades marked packets and pod traffic leaving the cluster;
//!   `filter-input` refuses whatever still targets the service range after DNAT (no endpoints,
//!   unknown address or port) except the node's DNS server.
//!
//! A Service port without any usable endpoint gets no map element, so its traffic reaches
//! `filter-input` and is refused (connection refused, as Kubernetes does); with endpoints on
//! other nodes only and a `Local` policy it is dropped, also as Kubernetes does.

use sha2::{Digest, Sha256};

use super::{Endpoint, ProxyConfig, Service, ServicePort};
use crate::nft::ruleset::{Chain, Map, Ruleset};

/// The packet mark bit meaning "masquerade this connection" (kube-proxy's bit).
const MASQUERADE_MARK: &str = "0x4000";

/// The table's fixed part: hooks, dispatch, masquerading, the service-range guard.
fn base(config: &ProxyConfig) -> Ruleset {
    let mut r = Ruleset::new(config.table.clone());
    let cluster = config.cluster_cidr;
    let services = config.service_cidr;
    let chain = |hook: Option<&str>, rules: Vec<String>| Chain {
        hook: hook.map(str::to_string),
        rules,
    };
    r.chains.insert(
        "nat-prerouting".into(),
        chain(
            Some("type nat hook prerouting priority dstnat; policy accept;"),
            vec!["jump services".into()],
        ),
    );
    r.chains.insert(
        "nat-output".into(),
        chain(
            Some("type nat hook output priority -100; policy accept;"),
            vec!["jump services".into()],
        ),
    );
    r.chains.insert(
        "nat-postrouting".into(),
        chain(
            Some("type nat hook postrouting priority srcnat; policy accept;"),
            vec![
                // Pod traffic leaving the cluster takes the node's address.
                format!(
                    "ip saddr {cluster} ip daddr != {cluster} oifname != \"{}\" masquerade",
                    config.bridge
                ),
                "jump masquerading".into(),
            ],
        ),
    );
    r.chains.insert(
        "services".into(),
        chain(
            None,
            vec![
                "ip daddr . meta l4proto . th dport vmap @service-ips".into(),
                format!(
                    "ip daddr != {{ {services}, 127.0.0.0/8 }} fib daddr type local \
                     meta l4proto . th dport vmap @service-nodeports"
                ),
            ],
        ),
    );
    r.chains.insert(
        "mark-for-masquerade".into(),
        chain(
            None,
            vec![format!("meta mark set meta mark | {MASQUERADE_MARK}")],
        ),
    );
    r.chains.insert(
        "masquerading".into(),
        chain(
            None,
            vec![
                format!("meta mark & {MASQUERADE_MARK} == 0 return"),
                format!("meta mark set meta mark ^ {MASQUERADE_MARK}"),
                "masquerade fully-random".into(),
            ],
        ),
    );
    let mut guard = Vec::new();
    if let Some(dns) = config.dns {
        guard.push(format!(
            "ip daddr {dns} meta l4proto {{ tcp, udp }} th dport 53 accept"
        ));
    }
    // Only new connections: a reply to the node's own connection through a Service comes back
    // de-NATed, addressed to the ClusterIP it was sent to (the local route's source).
    guard.push(format!(
        "ip daddr {services} ct state new meta l4proto tcp reject with tcp reset"
    ));
    guard.push(format!("ip daddr {services} ct state new reject"));
    r.chains.insert(
        "filter-input".into(),
        chain(
            Some("type filter hook input priority filter; policy accept;"),
            guard,
        ),
    );
    r.maps.insert(
        "service-ips".into(),
        Map {
            declaration: "type ipv4_addr . inet_proto . inet_service : verdict;".into(),
            elements: Default::default(),
        },
    );
    r.maps.insert(
        "service-nodeports".into(),
        Map {
            declaration: "type inet_proto . inet_service : verdict;".into(),
            elements: Default::default(),
        },
    );
    r
}

/// A short stable tag for a service port, so that chain names stay unique whatever the
/// namespace and name contain (`a-b`/`c` and `a`/`b-c` would otherwise collide).
fn tag(service: &Service, port: &ServicePort) -> String {
    let key = format!(
        "{}/{}/{}/{}",
        service.namespace,
        service.name,
        port.protocol.name(),
        port.port
    );
    let digest = Sha256::digest(key.as_bytes());
    digest[..4].iter().map(|b| format!("{b:02X}")).collect()
}

/// The endpoints traffic may go to: the ready ones; when none is ready, the serving ones that
/// are terminating (so that a rolling restart of the last pod drops no connection).
pub fn usable<'a>(endpoints: impl Iterator<Item = &'a Endpoint> + Clone) -> Vec<&'a Endpoint> {
    let ready: Vec<&Endpoint> = endpoints.clone().filter(|e| e.ready).collect();
    if !ready.is_empty() {
        return ready;
    }
    endpoints.filter(|e| e.serving && e.terminating).collect()
}

/// The nftables table for these Services on this node.
pub fn render(config: &ProxyConfig, services: &[Service]) -> Ruleset {
    let mut r = base(config);
    let cluster_cidr = config.cluster_cidr;
    for service in services {
        for port in &service.ports {
            let tag = tag(service, port);
            let id = format!(
                "{}-{}/{}/{}/{}",
                tag,
                service.namespace,
                service.name,
                port.protocol.name(),
                port.name_or_number()
            );
            let proto = port.protocol.name();
            let all = usable(port.endpoints.iter());
            if all.is_empty() {
                continue;
            }
            let local = usable(
                port.endpoints
                    .iter()
                    .filter(|e| e.node.as_deref() == Some(config.node_name.as_str())),
            );
            let mut pickers = Vec::new();
            let cluster_chain = format!("cluster-{id}");
            let local_chain = format!("local-{id}");
            // Traffic to the ClusterIPs.
            let svc_chain = format!("svc-{id}");
            let internal = if service.internal_local {
                &local_chain
            } else {
                &cluster_chain
            };
            pickers.push(internal.clone());
            r.chains.insert(
                svc_chain.clone(),
                Chain {
                    hook: None,
                    rules: vec![
                        format!("ip saddr != {cluster_cidr} jump mark-for-masquerade"),
                        format!("goto {internal}"),
                    ],
                },
            );
            let map = &mut r.maps.get_mut("service-ips").expect("in base").elements;
            for ip in &service.cluster_ips {
                map.insert(
                    format!("{ip} . {proto} . {}", port.port),
                    format!("goto {svc_chain}"),
                );
            }
            // Traffic from outside: node ports, external and load-balancer addresses.
            let external = !service.external_ips.is_empty() || port.node_port.is_some();
            if external {
                let ext_chain = format!("ext-{id}");
                let rules = if service.external_local {
                    pickers.push(local_chain.clone());
                    pickers.push(cluster_chain.clone());
                    // Pods reaching a node port are cluster traffic (kube-proxy does the same).
                    vec![
                        format!("ip saddr {cluster_cidr} goto {cluster_chain}"),
                        format!("goto {local_chain}"),
                    ]
                } else {
                    pickers.push(cluster_chain.clone());
                    vec![
                        "jump mark-for-masquerade".into(),
                        format!("goto {cluster_chain}"),
                    ]
                };
                r.chains
                    .insert(ext_chain.clone(), Chain { hook: None, rules });
                for ip in &service.external_ips {
                    r.maps
                        .get_mut("service-ips")
                        .expect("in base")
                        .elements
                        .insert(
                            format!("{ip} . {proto} . {}", port.port),
                            format!("goto {ext_chain}"),
                        );
                }
                if let Some(node_port) = port.node_port {
                    r.maps
                        .get_mut("service-nodeports")
                        .expect("in base")
                        .elements
                        .insert(
                            format!("{proto} . {node_port}"),
                            format!("goto {ext_chain}"),
                        );
                }
            }
            // The endpoint pickers that something above refers to, and their endpoints.
            pickers.sort();
            pickers.dedup();
            for picker in pickers {
                let endpoints = if picker == local_chain { &local } else { &all };
                let rules = pick_rules(endpoints, &tag, service.affinity_timeout.is_some());
                r.chains.insert(picker, Chain { hook: None, rules });
                for endpoint in endpoints {
                    let name = endpoint_chain(&tag, endpoint);
                    let mut rules =
                        vec![format!("ip saddr {} jump mark-for-masquerade", endpoint.ip)];
                    if let Some(timeout) = service.affinity_timeout {
                        let set = affinity_set(&tag, endpoint);
                        r.sets.insert(
                            set.clone(),
                            format!("type ipv4_addr; flags dynamic,timeout; timeout {timeout}s;"),
                        );
                        rules.push(format!("update @{set} {{ ip saddr }}"));
                    }
                    rules.push(format!(
                        "meta l4proto {proto} dnat to {}:{}",
                        endpoint.ip, endpoint.port
                    ));
                    r.chains.insert(name, Chain { hook: None, rules });
                }
            }
        }
    }
    r
}

fn endpoint_chain(tag: &str, endpoint: &Endpoint) -> String {
    format!("ep-{tag}-{}/{}", endpoint.ip, endpoint.port)
}

fn affinity_set(tag: &str, endpoint: &Endpoint) -> String {
    format!("affinity-{tag}-{}/{}", endpoint.ip, endpoint.port)
}

/// The rules that choose one of `endpoints` (none: the packet is dropped, as Kubernetes does
/// for a `Local` policy without a local endpoint).
fn pick_rules(endpoints: &[&Endpoint], tag: &str, affinity: bool) -> Vec<String> {
    let mut rules = Vec::new();
    if affinity {
        for endpoint in endpoints {
            rules.push(format!(
                "ip saddr @{} goto {}",
                affinity_set(tag, endpoint),
                endpoint_chain(tag, endpoint)
            ));
        }
    }
    match endpoints {
        [] => rules.push("drop".into()),
        [only] => rules.push(format!("goto {}", endpoint_chain(tag, only))),
        many => {
            let choices: Vec<String> = many
                .iter()
                .enumerate()
                .map(|(i, e)| format!("{i} : goto {}", endpoint_chain(tag, e)))
                .collect();
            rules.push(format!(
                "numgen random mod {} vmap {{ {} }}",
                many.len(),
                choices.join(", ")
            ));
        }
    }
    rules
}
