//! Service networking on this node: the proxy (kube-proxy's job), the cluster DNS server and
//! the routes to the other nodes' pod networks, all fed by one set of watches (Services,
//! EndpointSlices, Nodes). Each change wakes one sync loop, which renders everything from the
//! watch caches and applies only what changed; a sync that fails is retried.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use maestro_net::dns::{self, DnsEndpoint, DnsService, ServiceKind, SharedZone, Zone};
use maestro_net::pod_network::Ipv4Cidr;
use maestro_net::proxy::{self, Proxy, ProxyConfig};
use maestro_net::routes::{self, Overlay, Peer};
use tokio::sync::Notify;

/// The ConfigMap in `kube-system` where the server publishes the cluster's network settings.
pub const CLUSTER_NETWORK_CONFIGMAP: &str = "maestro-cluster";

/// Label linking an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// How long changes are gathered before a sync (a rollout changes many slices at once).
const BATCH: Duration = Duration::from_millis(20);

/// How often the whole table is rewritten even without a change (repairs edits by others).
const FULL_RESYNC: Duration = Duration::from_secs(300);

/// The cluster's network settings, as the server publishes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNetwork {
    pub cluster_cidr: Ipv4Cidr,
    pub service_cidr: Ipv4Cidr,
    pub cluster_dns: Ipv4Addr,
    pub cluster_domain: String,
    /// The LoadBalancer address pool (first, last), if the server has one.
    pub load_balancer_pool: Option<(Ipv4Addr, Ipv4Addr)>,
}

fn parse_cidr(text: &str) -> Option<Ipv4Cidr> {
    let (ip, prefix) = text.split_once('/')?;
    Ipv4Cidr::new(ip.parse().ok()?, prefix.parse().ok()?).ok()
}

impl ClusterNetwork {
    fn from_configmap(map: &ConfigMap) -> Option<ClusterNetwork> {
        let data = map.data.as_ref()?;
        Some(ClusterNetwork {
            cluster_cidr: parse_cidr(data.get("clusterCIDR")?)?,
            service_cidr: parse_cidr(data.get("serviceCIDR")?)?,
            cluster_dns: data.get("clusterDNS")?.parse().ok()?,
            cluster_domain: data
                .get("clusterDomain")
                .cloned()
                .unwrap_or_else(|| "cluster.local".into()),
            load_balancer_pool: data.get("loadBalancerPool").and_then(|pool| {
                let (first, last) = pool.split_once('-')?;
                Some((first.parse().ok()?, last.parse().ok()?))
            }),
        })
    }

    /// Read the settings, waiting until the server has published them.
    pub async fn fetch(client: &kube::Client) -> ClusterNetwork {
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
        loop {
            match maps.get_opt(CLUSTER_NETWORK_CONFIGMAP).await {
                Ok(Some(map)) => match ClusterNetwork::from_configmap(&map) {
                    Some(network) => return network,
                    None => tracing::error!(
                        "kube-system/{CLUSTER_NETWORK_CONFIGMAP} does not hold valid network settings"
                    ),
                },
                Ok(None) => tracing::info!(
                    "waiting for the server to publish kube-system/{CLUSTER_NETWORK_CONFIGMAP}"
                ),
                Err(err) => tracing::warn!(%err, "reading the cluster's network settings failed"),
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

/// This node's part in service networking.
#[derive(Debug, Clone)]
pub struct ServiceNetworkConfig {
    pub network: ClusterNetwork,
    pub node_name: String,
    pub bridge: String,
    /// The nftables table the proxy owns.
    pub table: String,
    /// DNS servers for names outside the cluster (none: such queries are refused).
    pub dns_upstreams: Vec<SocketAddr>,
    /// This node's address: LoadBalancer addresses go on the interface that carries it.
    pub node_ip: Option<Ipv4Addr>,
}

/// Watch one kind into a store, waking `changed` on every event.
pub(crate) fn watch<K>(api: Api<K>, changed: Arc<Notify>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => changed.notify_one(),
                Err(err) => tracing::debug!(%err, "watch error (retried)"),
            }
        }
    });
    reader
}

/// Run service networking until the agent stops.
pub async fn run(client: kube::Client, config: ServiceNetworkConfig) {
    let network = &config.network;
    let proxy_config = ProxyConfig {
        table: config.table.clone(),
        cluster_cidr: network.cluster_cidr,
        service_cidr: network.service_cidr,
        node_name: config.node_name.clone(),
        bridge: config.bridge.clone(),
        dns: Some(network.cluster_dns),
    };
    // The service range is routed locally before anything else, so nothing sent to it can
    // leave the node.
    let mut proxy = loop {
        let attempt = proxy_config.clone();
        match tokio::task::spawn_blocking(move || Proxy::new(attempt)).await {
            Ok(Ok(proxy)) => break proxy,
            Ok(Err(err)) => tracing::error!(%err, "setting up the service proxy failed"),
            Err(err) => tracing::error!(%err, "service proxy task failed"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    let zone = SharedZone::default();
    let dns_address = SocketAddr::new(IpAddr::V4(network.cluster_dns), 53);
    let _dns = loop {
        match dns::serve(dns_address, zone.clone(), config.dns_upstreams.clone()).await {
            Ok(task) => break task,
            Err(err) => tracing::error!(%err, "starting the cluster DNS server failed"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    tracing::info!(dns = %dns_address, table = %config.table, "service networking started");

    let changed = Arc::new(Notify::new());
    let services = watch(Api::<Service>::all(client.clone()), changed.clone());
    let slices = watch(Api::<EndpointSlice>::all(client.clone()), changed.clone());
    let nodes = watch(Api::<Node>::all(client.clone()), changed.clone());
    // Rules are only written from complete lists: an agent restarting must not briefly drop
    // every Service while its caches fill.
    for (kind, ready) in [
        ("services", services.wait_until_ready().await),
        ("endpointslices", slices.wait_until_ready().await),
        ("nodes", nodes.wait_until_ready().await),
    ] {
        if let Err(err) = ready {
            tracing::error!(%err, kind, "a watch cache never filled");
            return;
        }
    }
    let mut last_peers: Option<(Vec<Peer>, Option<Overlay>)> = None;
    let mut last_announced: Option<Vec<Ipv4Addr>> = None;
    let mut last_full = Instant::now();
    loop {
        let services = services.state();
        let slices = slices.state();
        let by_service = slices_by_service(&slices);
        let proxied = proxy_services(&services, &by_service);
        if last_full.elapsed() > FULL_RESYNC {
            proxy.forget_applied();
            last_full = Instant::now();
        }
        let outcome = tokio::task::spawn_blocking(move || {
            let result = proxy.sync(&proxied);
            (proxy, result)
        })
        .await;
        let result;
        (proxy, result) = match outcome {
            Ok(pair) => pair,
            Err(err) => {
                tracing::error!(%err, "service proxy task panicked");
                return;
            }
        };
        // Anything that failed is retried within seconds, not at the next change.
        let mut failed = match result {
            Ok(done) => {
                if !done.unchanged {
                    tracing::debug!(lines = done.lines, full = done.full, elapsed = ?done.elapsed, "service rules updated");
                }
                false
            }
            Err(err) => {
                tracing::error!(%err, "updating the service rules failed");
                true
            }
        };
        zone.replace(Zone::build(
            &network.cluster_domain,
            &dns_services(&services, &by_service),
        ));
        let node_list = nodes.state();
        let peers = peers(&node_list, &config.node_name);
        let overlay = overlay(&node_list, &config.node_name, config.node_ip);
        let current = (peers, overlay);
        if last_peers.as_ref() != Some(&current) {
            let (wanted, overlay) = current.clone();
            match tokio::task::spawn_blocking(move || routes::sync(&wanted, overlay.as_ref())).await
            {
                Ok(Ok(outcome)) => {
                    for peer in &outcome.unreachable {
                        tracing::warn!(cidr = %peer.pod_cidr, address = %peer.address, "no shared link to this node: its pods are unreachable from here");
                    }
                    if !outcome.added.is_empty() || !outcome.removed.is_empty() {
                        tracing::info!(added = ?outcome.added, removed = ?outcome.removed, "routes to other nodes updated");
                    }
                    last_peers = Some(current);
                }
                Ok(Err(err)) => {
                    failed = true;
                    tracing::error!(%err, "updating routes to other nodes failed");
                }
                Err(err) => {
                    failed = true;
                    tracing::error!(%err, "route task failed");
                }
            }
        }
        if let (Some(pool), Some(node_ip)) = (network.load_balancer_pool, config.node_ip) {
            let mine = announced_here(&services, &node_list, &config.node_name, pool);
            if last_announced.as_ref() != Some(&mine) {
                let wanted = mine.clone();
                match tokio::task::spawn_blocking(move || routes::announce(node_ip, pool, &wanted))
                    .await
                {
                    Ok(Ok(changes)) => {
                        if !changes.is_empty() {
                            tracing::info!(?changes, "LoadBalancer addresses on this node updated");
                        }
                        last_announced = Some(mine);
                    }
                    Ok(Err(err)) => {
                        failed = true;
                        tracing::error!(%err, "announcing LoadBalancer addresses failed");
                    }
                    Err(err) => {
                        failed = true;
                        tracing::error!(%err, "announce task failed");
                    }
                }
            }
        }
        let wait = if failed {
            Duration::from_secs(5)
        } else {
            FULL_RESYNC
        };
        let _ = tokio::time::timeout(wait, changed.notified()).await;
        tokio::time::sleep(BATCH).await;
    }
}

pub(crate) type SlicesByService = HashMap<(String, String), Vec<Arc<EndpointSlice>>>;

pub(crate) fn slices_by_service(slices: &[Arc<EndpointSlice>]) -> SlicesByService {
    let mut map: SlicesByService = HashMap::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let namespace = slice.metadata.namespace.clone().unwrap_or_default();
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            continue;
        };
        map.entry((namespace, service.clone()))
            .or_default()
            .push(slice.clone());
    }
    map
}

fn ipv4s<'a>(texts: impl IntoIterator<Item = &'a String>) -> Vec<Ipv4Addr> {
    texts.into_iter().filter_map(|t| t.parse().ok()).collect()
}

/// The endpoints of the slice port matching `(name, protocol)`, without duplicates.
pub(crate) fn endpoints_for(
    slices: &[Arc<EndpointSlice>],
    port_name: &str,
    protocol: &str,
) -> Vec<proxy::Endpoint> {
    let mut out: Vec<proxy::Endpoint> = Vec::new();
    for slice in slices {
        let Some(port) = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or_default() == port_name
                && p.protocol.as_deref().unwrap_or("TCP") == protocol
        }) else {
            continue;
        };
        let Some(number) = port.port.and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for endpoint in &slice.endpoints {
            let Some(ip) = endpoint.addresses.first().and_then(|a| a.parse().ok()) else {
                continue;
            };
            let conditions = endpoint.conditions.clone().unwrap_or_default();
            let ready = conditions.ready.unwrap_or(true);
            let candidate = proxy::Endpoint {
                ip,
                port: number,
                ready,
                serving: conditions.serving.unwrap_or(ready),
                terminating: conditions.terminating.unwrap_or(false),
                node: endpoint.node_name.clone(),
            };
            if !out.iter().any(|e| e.ip == ip && e.port == number) {
                out.push(candidate);
            }
        }
    }
    out
}

fn key(service: &Service) -> (String, String) {
    (
        service.metadata.namespace.clone().unwrap_or_default(),
        service.metadata.name.clone().unwrap_or_default(),
    )
}

/// The Services as the proxy sees them.
pub fn proxy_services(services: &[Arc<Service>], slices: &SlicesByService) -> Vec<proxy::Service> {
    let empty = Vec::new();
    let mut out = Vec::new();
    for service in services {
        let Some(spec) = &service.spec else { continue };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let (namespace, name) = key(service);
        let own = slices
            .get(&(namespace.clone(), name.clone()))
            .unwrap_or(&empty);
        let mut cluster_ips = ipv4s(spec.cluster_ips.iter().flatten());
        if cluster_ips.is_empty() {
            cluster_ips = ipv4s(spec.cluster_ip.iter());
        }
        let mut external_ips = ipv4s(spec.external_ips.iter().flatten());
        let balancer_ips = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.as_ref());
        external_ips.extend(ipv4s(balancer_ips));
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|port| {
                let protocol = port.protocol.as_deref().unwrap_or("TCP");
                let name = port.name.clone().unwrap_or_default();
                Some(proxy::ServicePort {
                    protocol: proxy::Protocol::parse(Some(protocol))?,
                    port: u16::try_from(port.port).ok()?,
                    node_port: port.node_port.and_then(|p| u16::try_from(p).ok()),
                    endpoints: endpoints_for(own, &name, protocol),
                    name,
                })
            })
            .collect();
        let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .unwrap_or(10_800)
        });
        out.push(proxy::Service {
            namespace,
            name,
            cluster_ips,
            external_ips,
            ports,
            affinity_timeout,
            internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
            external_local: spec.external_traffic_policy.as_deref() == Some("Local"),
        });
    }
    out
}

/// The Services as DNS sees them.
pub fn dns_services(services: &[Arc<Service>], slices: &SlicesByService) -> Vec<DnsService> {
    let empty = Vec::new();
    let mut out = Vec::new();
    for service in services {
        let Some(spec) = &service.spec else { continue };
        let (namespace, name) = key(service);
        let own = slices
            .get(&(namespace.clone(), name.clone()))
            .unwrap_or(&empty);
        let headless = spec.cluster_ip.as_deref() == Some("None");
        let kind = if spec.type_.as_deref() == Some("ExternalName") {
            match &spec.external_name {
                Some(target) => ServiceKind::ExternalName(target.clone()),
                None => continue,
            }
        } else if headless {
            ServiceKind::Headless
        } else {
            let mut ips = ipv4s(spec.cluster_ips.iter().flatten());
            if ips.is_empty() {
                ips = ipv4s(spec.cluster_ip.iter());
            }
            ServiceKind::Virtual(ips)
        };
        let mut ports = Vec::new();
        for port in spec.ports.iter().flatten() {
            let Some(port_name) = port.name.clone().filter(|n| !n.is_empty()) else {
                continue;
            };
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            // A headless Service's SRV records carry the endpoints' own port.
            let number = if headless {
                endpoints_for(own, &port_name, protocol)
                    .first()
                    .map(|e| e.port)
            } else {
                u16::try_from(port.port).ok()
            };
            if let Some(number) = number {
                ports.push((port_name, protocol.to_ascii_lowercase(), number));
            }
        }
        let mut endpoints = Vec::new();
        for slice in own {
            for endpoint in &slice.endpoints {
                let Some(ip) = endpoint.addresses.first().and_then(|a| a.parse().ok()) else {
                    continue;
                };
                let ready = endpoint
                    .conditions
                    .as_ref()
                    .and_then(|c| c.ready)
                    .unwrap_or(true);
                endpoints.push(DnsEndpoint {
                    ip,
                    hostname: endpoint.hostname.clone(),
                    ready,
                });
            }
        }
        out.push(DnsService {
            namespace,
            name,
            kind,
            ports,
            endpoints,
            publish_not_ready: spec.publish_not_ready_addresses == Some(true),
        });
    }
    out
}

/// The pool addresses Services hold that this node answers for: each goes to one of the Ready
/// nodes, the same one on every node (the address modulo their number, in name order).
fn announced_here(
    services: &[Arc<Service>],
    nodes: &[Arc<Node>],
    own: &str,
    (first, last): (Ipv4Addr, Ipv4Addr),
) -> Vec<Ipv4Addr> {
    let mut ready: Vec<&str> = nodes
        .iter()
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    ready.sort();
    if ready.is_empty() {
        return vec![];
    }
    let mut mine: Vec<Ipv4Addr> = services
        .iter()
        .filter_map(|s| s.status.as_ref()?.load_balancer.as_ref()?.ingress.as_ref())
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok())
        .filter(|ip| first <= *ip && *ip <= last)
        .filter(|ip| ready[u32::from(*ip) as usize % ready.len()] == own)
        .collect();
    mine.sort();
    mine.dedup();
    mine
}

/// This node's end of the overlay: its address and pod CIDR (none until it has both).
fn overlay(nodes: &[Arc<Node>], own: &str, node_ip: Option<Ipv4Addr>) -> Option<Overlay> {
    let node = nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(own))?;
    let pod_cidr = parse_cidr(node.spec.as_ref()?.pod_cidr.as_deref()?)?;
    Some(Overlay {
        node_ip: node_ip?,
        pod_cidr,
    })
}

/// The other nodes' pod networks.
fn peers(nodes: &[Arc<Node>], own: &str) -> Vec<Peer> {
    let mut peers: Vec<Peer> = nodes
        .iter()
        .filter(|n| n.metadata.name.as_deref() != Some(own))
        .filter_map(|node| {
            let pod_cidr = parse_cidr(node.spec.as_ref()?.pod_cidr.as_deref()?)?;
            let address = node
                .status
                .as_ref()?
                .addresses
                .iter()
                .flatten()
                .find(|a| a.type_ == "InternalIP")?
                .address
                .parse()
                .ok()?;
            Some(Peer { pod_cidr, address })
        })
        .collect();
    peers.sort_by_key(|p| (p.pod_cidr.network(), p.address));
    peers
}
