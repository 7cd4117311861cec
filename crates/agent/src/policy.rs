//! NetworkPolicy on this node: watches NetworkPolicies, Pods and Namespaces, resolves the
//! policies that select this node's pods into addresses and ports (selectors, named ports,
//! ipBlocks) and hands them to [`maestro_net::policy`], whose nftables table
//! (`<proxy table>-policy`) is updated within a moment of any change.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as ApiSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use maestro_api::selector::LabelSelector;
use maestro_net::nft::NftTable;
use maestro_net::pod_network::Ipv4Cidr;
use maestro_net::policy::{self, Allow, Peer, PodRules, Ports};
use maestro_net::proxy::Protocol;
use tokio::sync::Notify;

use crate::services::watch;

/// How long changes are gathered before a sync.
const BATCH: Duration = Duration::from_millis(20);

/// The policy table's name beside the proxy's.
pub fn table_name(proxy_table: &str) -> String {
    format!("{proxy_table}-policy")
}

/// A pod as policies see it.
struct PodView {
    namespace: String,
    name: String,
    node: Option<String>,
    ip: Ipv4Addr,
    labels: BTreeMap<String, String>,
    /// Named container ports: (name, protocol, number).
    ports: Vec<(String, String, u16)>,
}

fn pod_view(pod: &Pod) -> Option<PodView> {
    let spec = pod.spec.as_ref()?;
    if spec.host_network == Some(true) {
        return None;
    }
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let ip = status.pod_ip.as_deref()?.parse().ok()?;
    let ports = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            Some((
                p.name.clone()?,
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                u16::try_from(p.container_port).ok()?,
            ))
        })
        .collect();
    Some(PodView {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        node: spec.node_name.clone(),
        ip,
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        ports,
    })
}

/// A selector from the API's form; one that does not parse selects nothing (the API server
/// validates selectors, so this is a corrupt object, not a user error).
fn selector(api: &ApiSelector) -> Option<LabelSelector> {
    let value = serde_json::to_value(api).ok()?;
    LabelSelector::from_object(&value).ok()
}

fn parse_cidr(text: &str) -> Option<Ipv4Cidr> {
    let (ip, prefix) = text.split_once('/')?;
    Ipv4Cidr::new(ip.parse().ok()?, prefix.parse().ok()?).ok()
}

/// Everything a resolution needs.
struct Cluster<'a> {
    pods: &'a [PodView],
    namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
}

impl Cluster<'_> {
    /// The pods a peer with selectors stands for (`policy_namespace` for a bare podSelector).
    fn peer_pods(&self, peer: &NetworkPolicyPeer, policy_namespace: &str) -> Vec<&PodView> {
        let pod_selector = peer.pod_selector.as_ref().map(selector);
        let namespace_selector = peer.namespace_selector.as_ref().map(selector);
        self.pods
            .iter()
            .filter(|pod| match &namespace_selector {
                None => pod.namespace == policy_namespace,
                Some(None) => false,
                Some(Some(sel)) => self
                    .namespace_labels
                    .get(&pod.namespace)
                    .is_some_and(|labels| sel.matches_map(labels)),
            })
            .filter(|pod| match &pod_selector {
                None => true,
                Some(None) => false,
                Some(Some(sel)) => sel.matches_map(&pod.labels),
            })
            .collect()
    }
}

fn protocol(port: &NetworkPolicyPort) -> (String, Option<Protocol>) {
    let name = port.protocol.clone().unwrap_or_else(|| "TCP".into());
    let parsed = Protocol::parse(Some(&name));
    (name, parsed)
}

/// One ingress or egress rule of a policy: its peers (`from`/`to`) and ports.
type RuleRef<'a> = (
    Option<&'a Vec<NetworkPolicyPeer>>,
    Option<&'a Vec<NetworkPolicyPort>>,
);

/// One direction's allow rules for `target`, from the rules of one policy.
fn allows(
    cluster: &Cluster<'_>,
    policy_namespace: &str,
    target: &PodView,
    rules: &[RuleRef<'_>],
    egress: bool,
) -> Vec<Allow> {
    let mut out = Vec::new();
    for (peers, ports) in rules {
        let peer_list = peers.filter(|p| !p.is_empty());
        let mut peer_pods: Option<Vec<&PodView>> = None;
        let resolved_peers = peer_list.map(|peers| {
            let mut all_pods = Vec::new();
            let list: Vec<Peer> = peers
                .iter()
                .filter_map(|peer| {
                    if let Some(block) = &peer.ip_block {
                        let cidr = parse_cidr(&block.cidr)?;
                        let except = block
                            .except
                            .iter()
                            .flatten()
                            .filter_map(|e| parse_cidr(e))
                            .collect();
                        return Some(Peer::Block { cidr, except });
                    }
                    let pods = cluster.peer_pods(peer, policy_namespace);
                    let ips = pods.iter().map(|p| p.ip).collect();
                    all_pods.extend(pods);
                    Some(Peer::Pods(ips))
                })
                .collect();
            peer_pods = Some(all_pods);
            list
        });
        let resolved_ports = ports.filter(|p| !p.is_empty()).map(|ports| {
            ports
                .iter()
                .filter_map(|port| {
                    let (protocol_name, protocol) = protocol(port);
                    let protocol = protocol?;
                    Some(match &port.port {
                        None => Ports::Protocol(protocol),
                        Some(IntOrString::Int(first)) => {
                            let first = u16::try_from(*first).ok()?;
                            let last = port
                                .end_port
                                .and_then(|e| u16::try_from(e).ok())
                                .unwrap_or(first);
                            Ports::Range {
                                protocol,
                                first,
                                last,
                            }
                        }
                        Some(IntOrString::String(name)) => {
                            let named = |pod: &PodView| {
                                pod.ports
                                    .iter()
                                    .find(|(n, p, _)| n == name && *p == protocol_name)
                                    .map(|(_, _, number)| *number)
                            };
                            if egress {
                                // Named on each destination pod: pairs of address and port.
                                let candidates: Vec<&PodView> = match &peer_pods {
                                    Some(pods) => pods.clone(),
                                    None => cluster.pods.iter().collect(),
                                };
                                let pairs = candidates
                                    .iter()
                                    .filter_map(|pod| Some((pod.ip, named(pod)?)))
                                    .collect();
                                Ports::PerAddress { protocol, pairs }
                            } else {
                                match named(target) {
                                    Some(number) => Ports::Range {
                                        protocol,
                                        first: number,
                                        last: number,
                                    },
                                    None => Ports::PerAddress {
                                        protocol,
                                        pairs: vec![],
                                    },
                                }
                            }
                        }
                    })
                })
                .collect()
        });
        out.push(Allow {
            peers: resolved_peers,
            ports: resolved_ports,
        });
    }
    out
}

/// The rules of this node's pods under `policies`.
fn resolve(
    node: &str,
    policies: &[Arc<NetworkPolicy>],
    pods: &[PodView],
    namespaces: &[Arc<Namespace>],
) -> Vec<PodRules> {
    let namespace_labels = namespaces
        .iter()
        .map(|ns| {
            let name = ns.metadata.name.clone().unwrap_or_default();
            let mut labels = ns.metadata.labels.clone().unwrap_or_default();
            labels
                .entry("kubernetes.io/metadata.name".into())
                .or_insert_with(|| name.clone());
            (name, labels)
        })
        .collect();
    let cluster = Cluster {
        pods,
        namespace_labels,
    };
    let mut out = Vec::new();
    for pod in pods.iter().filter(|p| p.node.as_deref() == Some(node)) {
        let mut ingress: Option<Vec<Allow>> = None;
        let mut egress: Option<Vec<Allow>> = None;
        for policy in policies {
            let namespace = policy.metadata.namespace.as_deref().unwrap_or_default();
            let Some(spec) = &policy.spec else { continue };
            if namespace != pod.namespace
                || !spec
                    .pod_selector
                    .as_ref()
                    .map_or(Some(LabelSelector::everything()), selector)
                    .is_some_and(|s| s.matches_map(&pod.labels))
            {
                continue;
            }
            let types: Vec<String> = spec.policy_types.clone().unwrap_or_else(|| {
                let mut types = vec!["Ingress".to_string()];
                if spec.egress.is_some() {
                    types.push("Egress".into());
                }
                types
            });
            if types.iter().any(|t| t == "Ingress") {
                let rules: Vec<_> = spec
                    .ingress
                    .iter()
                    .flatten()
                    .map(|r| (r.from.as_ref(), r.ports.as_ref()))
                    .collect();
                ingress
                    .get_or_insert_with(Vec::new)
                    .extend(allows(&cluster, namespace, pod, &rules, false));
            }
            if types.iter().any(|t| t == "Egress") {
                let rules: Vec<_> = spec
                    .egress
                    .iter()
                    .flatten()
                    .map(|r| (r.to.as_ref(), r.ports.as_ref()))
                    .collect();
                egress
                    .get_or_insert_with(Vec::new)
                    .extend(allows(&cluster, namespace, pod, &rules, true));
            }
        }
        if ingress.is_some() || egress.is_some() {
            out.push(PodRules {
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
                ip: pod.ip,
                ingress,
                egress,
            });
        }
    }
    out
}

/// Bridged traffic between two pods of this node must cross the IP forward hook for policies
/// to see it; the setting belongs to the network namespace.
fn bridged_traffic_through_netfilter() {
    let path = "/proc/sys/net/bridge/bridge-nf-call-iptables";
    match std::fs::read_to_string(path) {
        Ok(value) if value.trim() == "1" => {}
        Ok(_) => {
            if let Err(err) = std::fs::write(path, "1") {
                tracing::error!(%err, "cannot turn on {path}: policies miss traffic between pods of this node");
            }
        }
        Err(err) => {
            tracing::error!(%err, "{path} is missing (br_netfilter): policies miss traffic between pods of this node")
        }
    }
}

/// Enforce NetworkPolicies for this node's pods until the agent stops.
pub async fn run(client: kube::Client, node: String, proxy_table: String) {
    let name = table_name(&proxy_table);
    if let Err(err) = maestro_net::nft::check_table_name(&name) {
        tracing::error!(%err, "network policies are not enforced");
        return;
    }
    bridged_traffic_through_netfilter();
    let changed = Arc::new(Notify::new());
    let policies = watch(Api::<NetworkPolicy>::all(client.clone()), changed.clone());
    let pods = watch(Api::<Pod>::all(client.clone()), changed.clone());
    let namespaces = watch(Api::<Namespace>::all(client.clone()), changed.clone());
    for (kind, ready) in [
        ("networkpolicies", policies.wait_until_ready().await),
        ("pods", pods.wait_until_ready().await),
        ("namespaces", namespaces.wait_until_ready().await),
    ] {
        if let Err(err) = ready {
            tracing::error!(%err, kind, "a watch cache never filled");
            return;
        }
    }
    let mut table = NftTable::new(name);
    loop {
        let views: Vec<PodView> = pods.state().iter().filter_map(|p| pod_view(p)).collect();
        let rules = resolve(&node, &policies.state(), &views, &namespaces.state());
        let desired = policy::render(table.name(), &rules);
        let outcome = tokio::task::spawn_blocking(move || {
            let result = table.sync(desired);
            (table, result)
        })
        .await;
        let result;
        (table, result) = match outcome {
            Ok(pair) => pair,
            Err(err) => {
                tracing::error!(%err, "policy task panicked");
                return;
            }
        };
        let wait = match result {
            Ok(done) => {
                if !done.unchanged {
                    tracing::debug!(pods = rules.len(), elapsed = ?done.elapsed, "network policy rules updated");
                }
                Duration::from_secs(300)
            }
            Err(err) => {
                tracing::error!(%err, "updating the network policy rules failed");
                Duration::from_secs(5)
            }
        };
        let _ = tokio::time::timeout(wait, changed.notified()).await;
        tokio::time::sleep(BATCH).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ns: &str, name: &str, node: &str, ip: u8, labels: serde_json::Value) -> PodView {
        PodView {
            namespace: ns.into(),
            name: name.into(),
            node: Some(node.into()),
            ip: Ipv4Addr::new(10, 42, 0, ip),
            labels: serde_json::from_value(labels).unwrap(),
            ports: vec![("pg".into(), "TCP".into(), 5432)],
        }
    }

    fn policy(ns: &str, spec: serde_json::Value) -> Arc<NetworkPolicy> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "p", "namespace": ns}, "spec": spec
            }))
            .unwrap(),
        )
    }

    fn namespace(name: &str, labels: serde_json::Value) -> Arc<Namespace> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap(),
        )
    }

    #[test]
    fn the_database_accepts_only_the_api() {
        let pods = vec![
            pod("shop", "db", "n1", 9, json!({"tier": "db"})),
            pod("shop", "api", "n2", 5, json!({"tier": "api"})),
            pod("shop", "web", "n1", 2, json!({"tier": "web"})),
            pod("ops", "backup", "n2", 7, json!({"tier": "api"})),
        ];
        let namespaces = vec![
            namespace("shop", json!({})),
            namespace("ops", json!({"team": "ops"})),
        ];
        let policies = vec![
            policy(
                "shop",
                json!({"podSelector": {"matchLabels": {"tier": "db"}},
                  "ingress": [{"from": [
                      {"podSelector": {"matchLabels": {"tier": "api"}}},
                      {"namespaceSelector": {"matchLabels": {"team": "ops"}}}],
                    "ports": [{"port": "pg"}]}]}),
            ),
            policy(
                "shop",
                json!({"podSelector": {"matchLabels": {"tier": "web"}}, "policyTypes": ["Egress"],
                  "egress": [{"to": [{"podSelector": {"matchLabels": {"tier": "api"}}}]}]}),
            ),
        ];
        let rules = resolve("n1", &policies, &pods, &namespaces);
        assert_eq!(rules.len(), 2, "db and web run on n1: {rules:?}");
        let db = rules.iter().find(|r| r.name == "db").unwrap();
        assert!(db.egress.is_none());
        let allow = &db.ingress.as_ref().unwrap()[0];
        assert_eq!(
            allow.peers.as_ref().unwrap(),
            &[
                Peer::Pods(vec![Ipv4Addr::new(10, 42, 0, 5)]),
                Peer::Pods(vec![Ipv4Addr::new(10, 42, 0, 7)])
            ],
            "the api pod of its namespace and every pod of the ops namespace"
        );
        assert_eq!(
            allow.ports.as_ref().unwrap(),
            &[Ports::Range {
                protocol: Protocol::Tcp,
                first: 5432,
                last: 5432
            }],
            "the named port, resolved on the database pod"
        );
        let web = rules.iter().find(|r| r.name == "web").unwrap();
        assert!(web.ingress.is_none(), "only Egress in policyTypes");
        assert_eq!(
            web.egress.as_ref().unwrap()[0].peers.as_ref().unwrap(),
            &[Peer::Pods(vec![Ipv4Addr::new(10, 42, 0, 5)])]
        );
        assert!(resolve("n2", &policies, &pods, &namespaces).is_empty());
    }
}
