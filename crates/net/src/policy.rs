//! NetworkPolicy enforcement on one node: the policies that select this node's pods, already
//! resolved to addresses and ports by the agent, become one nftables table (filter, forward
//! hook). Pod traffic crosses the forward hook whether it is routed (to other nodes, through a
//! Service's DNAT, which has already happened) or bridged between two pods of this node (with
//! `bridge-nf-call-iptables`), so one hook sees all of it, with the final pod addresses.
//!
//! Shape: `forward` lets established and related traffic through, then sends new traffic from
//! an egress-isolated pod through `egress-<pod>` and to an ingress-isolated pod through
//! `ingress-<pod>` (verdict maps keyed by pod address). Each such chain `return`s for traffic one
//! of the pod's policies allows and rejects the rest (ICMP admin-prohibited), so a connection must pass both the
//! sender's egress and the receiver's ingress rules, as NetworkPolicy requires. Traffic between a
//! pod and its own node (probes, node-local DNS) does not cross the forward hook and is always
//! allowed, as Kubernetes requires for probes.

use std::net::Ipv4Addr;

use crate::nft::ruleset::{Chain, Map, Ruleset};
use crate::pod_network::Ipv4Cidr;
use crate::proxy::Protocol;

/// Where allowed traffic may come from (ingress) or go to (egress).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// Pods chosen by selectors, as their addresses (possibly none).
    Pods(Vec<Ipv4Addr>),
    /// An `ipBlock`.
    Block {
        cidr: Ipv4Cidr,
        except: Vec<Ipv4Cidr>,
    },
}

/// Which ports allowed traffic may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ports {
    /// A protocol, any port.
    Protocol(Protocol),
    /// A port or range (`endPort`).
    Range {
        protocol: Protocol,
        first: u16,
        last: u16,
    },
    /// A named egress port: the named port differs from pod to pod, so it is a set of
    /// (pod address, port) pairs — already limited to the rule's peers.
    PerAddress {
        protocol: Protocol,
        pairs: Vec<(Ipv4Addr, u16)>,
    },
}

/// One allow rule: traffic matching any peer and any port (`None`: every peer or port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    pub peers: Option<Vec<Peer>>,
    pub ports: Option<Vec<Ports>>,
}

/// A pod of this node with the rules of the policies that select it; `None` for a direction
/// in which no policy isolates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRules {
    pub namespace: String,
    pub name: String,
    pub ip: Ipv4Addr,
    pub ingress: Option<Vec<Allow>>,
    pub egress: Option<Vec<Allow>>,
}

fn set_of<T: ToString>(items: &[T]) -> String {
    let texts: Vec<String> = items.iter().map(ToString::to_string).collect();
    format!("{{ {} }}", texts.join(", "))
}

/// The nft matches of one peer as seen from the isolated pod (`field`: `saddr` for ingress,
/// `daddr` for egress); `None` when the peer can match nothing.
fn peer_match(peer: &Peer, field: &str) -> Option<String> {
    match peer {
        Peer::Pods(ips) if ips.is_empty() => None,
        Peer::Pods(ips) => Some(format!("ip {field} {}", set_of(ips))),
        Peer::Block { cidr, except } if except.is_empty() => Some(format!("ip {field} {cidr}")),
        Peer::Block { cidr, except } => Some(format!(
            "ip {field} {cidr} ip {field} != {}",
            set_of(except)
        )),
    }
}

/// The nft matches of one port entry; `None` when it can match nothing.
fn ports_match(ports: &Ports) -> Option<String> {
    match ports {
        Ports::Protocol(p) => Some(format!("meta l4proto {}", p.name())),
        Ports::Range {
            protocol,
            first,
            last,
        } if first == last => Some(format!("meta l4proto {} th dport {first}", protocol.name())),
        Ports::Range {
            protocol,
            first,
            last,
        } => Some(format!(
            "meta l4proto {} th dport {first}-{last}",
            protocol.name()
        )),
        Ports::PerAddress { pairs, .. } if pairs.is_empty() => None,
        Ports::PerAddress { protocol, pairs } => {
            let pairs: Vec<String> = pairs
                .iter()
                .map(|(ip, port)| format!("{ip} . {port}"))
                .collect();
            Some(format!(
                "meta l4proto {} ip daddr . th dport {{ {} }}",
                protocol.name(),
                pairs.join(", ")
            ))
        }
    }
}

/// The rules of one isolated direction: `return` for what is allowed, reject the rest.
fn direction_rules(allows: &[Allow], field: &str) -> Vec<String> {
    let mut rules = Vec::new();
    for allow in allows {
        let peers: Vec<Option<String>> = match &allow.peers {
            None => vec![Some(String::new())],
            Some(peers) => peers.iter().map(|p| peer_match(p, field)).collect(),
        };
        let ports: Vec<Option<String>> = match &allow.ports {
            None => vec![Some(String::new())],
            Some(ports) => ports.iter().map(ports_match).collect(),
        };
        for peer in peers.iter().flatten() {
            for port in ports.iter().flatten() {
                let matches: Vec<&str> = [peer.as_str(), port.as_str()]
                    .into_iter()
                    .filter(|m| !m.is_empty())
                    .collect();
                rules.push(if matches.is_empty() {
                    "return".to_string()
                } else {
                    format!("{} return", matches.join(" "))
                });
            }
        }
    }
    // Rejected rather than dropped, so that the client learns at once instead of timing out,
    // and with an ICMP error rather than a TCP reset: the error is translated back through a
    // Service's DNAT (a reset would come from the pod's address, which the client ignores).
    rules.push("reject with icmp type admin-prohibited".into());
    rules
}

/// The table enforcing `pods`' policies.
pub fn render(table: &str, pods: &[PodRules]) -> Ruleset {
    let mut r = Ruleset::new(table);
    let verdict_map = || Map {
        declaration: "type ipv4_addr : verdict;".into(),
        elements: Default::default(),
    };
    r.maps.insert("ingress-pods".into(), verdict_map());
    r.maps.insert("egress-pods".into(), verdict_map());
    r.chains.insert(
        "forward".into(),
        Chain {
            hook: Some("type filter hook forward priority filter; policy accept;".into()),
            rules: vec![
                "ct state established,related accept".into(),
                "ip saddr vmap @egress-pods".into(),
                "ip daddr vmap @ingress-pods".into(),
            ],
        },
    );
    for pod in pods {
        let id = format!("{}/{}", pod.namespace, pod.name);
        for (direction, allows, field, map) in [
            ("ingress", &pod.ingress, "saddr", "ingress-pods"),
            ("egress", &pod.egress, "daddr", "egress-pods"),
        ] {
            let Some(allows) = allows else { continue };
            let chain = format!("{direction}-{id}");
            r.chains.insert(
                chain.clone(),
                Chain {
                    hook: None,
                    rules: direction_rules(allows, field),
                },
            );
            r.maps
                .get_mut(map)
                .expect("declared above")
                .elements
                .insert(pod.ip.to_string(), format!("jump {chain}"));
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 42, 1, last)
    }

    #[test]
    fn isolated_directions_allow_their_peers_and_reject_the_rest() {
        let db = PodRules {
            namespace: "shop".into(),
            name: "db-0".into(),
            ip: ip(9),
            // The database accepts the API on 5432 only.
            ingress: Some(vec![Allow {
                peers: Some(vec![Peer::Pods(vec![ip(5), ip(6)])]),
                ports: Some(vec![Ports::Range {
                    protocol: Protocol::Tcp,
                    first: 5432,
                    last: 5432,
                }]),
            }]),
            egress: None,
        };
        let frontend = PodRules {
            namespace: "shop".into(),
            name: "web".into(),
            ip: ip(2),
            ingress: Some(vec![Allow {
                peers: None,
                ports: None,
            }]),
            egress: Some(vec![Allow {
                peers: Some(vec![
                    Peer::Block {
                        cidr: Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 0), 8).unwrap(),
                        except: vec![Ipv4Cidr::new(Ipv4Addr::new(10, 42, 1, 8), 29).unwrap()],
                    },
                    Peer::Pods(vec![]),
                ]),
                ports: Some(vec![Ports::PerAddress {
                    protocol: Protocol::Tcp,
                    pairs: vec![(ip(5), 8080)],
                }]),
            }]),
        };
        let r = render("t", &[db, frontend]);
        assert_eq!(
            r.chains["ingress-shop/db-0"].rules[0],
            "ip saddr { 10.42.1.5, 10.42.1.6 } meta l4proto tcp th dport 5432 return"
        );
        assert_eq!(
            r.chains["ingress-shop/db-0"].rules[1..],
            ["reject with icmp type admin-prohibited"]
        );
        assert_eq!(r.chains["ingress-shop/web"].rules[0], "return");
        assert_eq!(
            r.chains["egress-shop/web"].rules[0],
            "ip daddr 10.0.0.0/8 ip daddr != { 10.42.1.8/29 } meta l4proto tcp \
             ip daddr . th dport { 10.42.1.5 . 8080 } return",
            "a peer matching no pod adds nothing"
        );
        assert_eq!(r.chains["egress-shop/web"].rules.len(), 2);
        assert_eq!(
            r.maps["ingress-pods"].elements["10.42.1.9"],
            "jump ingress-shop/db-0"
        );
        assert!(!r.maps["egress-pods"].elements.contains_key("10.42.1.9"));
    }

    /// nft itself checks the syntax (`nft -c` parses and validates without changing anything).
    #[test]
    fn nft_accepts_the_table() {
        let pod = PodRules {
            namespace: "a".into(),
            name: "p".into(),
            ip: ip(3),
            ingress: Some(vec![Allow {
                peers: Some(vec![
                    Peer::Pods(vec![ip(4)]),
                    Peer::Block {
                        cidr: Ipv4Cidr::new(Ipv4Addr::new(192, 168, 0, 0), 16).unwrap(),
                        except: vec![Ipv4Cidr::new(Ipv4Addr::new(192, 168, 1, 0), 24).unwrap()],
                    },
                ]),
                ports: Some(vec![
                    Ports::Protocol(Protocol::Udp),
                    Ports::Range {
                        protocol: Protocol::Tcp,
                        first: 8000,
                        last: 8080,
                    },
                ]),
            }]),
            egress: Some(vec![Allow {
                peers: None,
                ports: Some(vec![Ports::PerAddress {
                    protocol: Protocol::Tcp,
                    pairs: vec![(ip(5), 8080), (ip(6), 9090)],
                }]),
            }]),
        };
        let script = render("maestro-policy-check", &[pod]).full_script();
        let out = crate::pod_network::run_command(
            std::process::Command::new("nft").args(["-c", "-f", "-"]),
            Some(&script),
        );
        assert!(out.is_ok(), "{out:?}\n{script}");
    }

    #[test]
    fn a_policy_without_rules_denies_everything() {
        let pod = PodRules {
            namespace: "a".into(),
            name: "p".into(),
            ip: ip(3),
            ingress: Some(vec![]),
            egress: None,
        };
        let r = render("t", &[pod]);
        assert!(
            r.chains["ingress-a/p"]
                .rules
                .iter()
                .all(|r| r.contains("reject"))
        );
    }
}
