//! The cluster's DNS names as data (the Kubernetes DNS specification, as CoreDNS's kubernetes
//! plugin serves it):
//!
//! - `<svc>.<ns>.svc.<domain>`: A records of the ClusterIP; for a headless Service, of its ready
//!   endpoints (all of them with `publishNotReadyAddresses`); a CNAME for ExternalName.
//! - `<hostname>.<svc>.<ns>.svc.<domain>`: an endpoint with a hostname (a pod whose `hostname`
//!   and `subdomain` name the headless Service — StatefulSet pods).
//! - `_<port>._<proto>.<svc>.<ns>.svc.<domain>`: SRV records of named ports.
//! - `<a-b-c-d>.<ns>.pod.<domain>`: the address written in the name.
//! - PTR records of ClusterIPs and of headless endpoints.
//!
//! Lookups are pure functions of a [`Zone`], which the agent rebuilds whenever Services or
//! EndpointSlices change.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// What kind of name a Service gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    /// ClusterIP, NodePort, LoadBalancer: the virtual addresses.
    Virtual(Vec<Ipv4Addr>),
    /// `clusterIP: None`: the endpoints' addresses.
    Headless,
    /// `type: ExternalName`: a CNAME to that name.
    ExternalName(String),
}

/// An endpoint as DNS sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsEndpoint {
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
    pub ready: bool,
}

/// A named port of a Service: `(name, protocol in lower case, port)`; for a headless Service,
/// the port is the endpoints' (target) port.
pub type NamedPort = (String, String, u16);

/// A Service as DNS sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsService {
    pub namespace: String,
    pub name: String,
    pub kind: ServiceKind,
    pub ports: Vec<NamedPort>,
    pub endpoints: Vec<DnsEndpoint>,
    pub publish_not_ready: bool,
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Answer {
    A(Ipv4Addr),
    Cname(String),
    Srv { port: u16, target: String },
    Ptr(String),
}

/// The record types a query can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryType {
    A,
    Aaaa,
    Srv,
    Ptr,
    Cname,
    Any,
    Other,
}

/// A lookup's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The name exists; the answers of the asked type (possibly none: NODATA).
    Found(Vec<(String, Answer)>),
    /// The name is in the cluster's zone and does not exist (NXDOMAIN).
    NoSuchName,
    /// Not a cluster name: someone else's to answer.
    Outside,
}

/// All names of the cluster, lower case and without the final dot.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    domain: String,
    names: BTreeMap<String, Vec<Answer>>,
    /// Every name that exists, also those that only have names below them
    /// (`ns.svc.cluster.local`): asking them gives NODATA, not NXDOMAIN.
    nodes: BTreeSet<String>,
}

fn reverse_name(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa")
}

impl Zone {
    /// The zone of `services` under `domain` (`cluster.local`).
    pub fn build(domain: &str, services: &[DnsService]) -> Zone {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let mut zone = Zone {
            domain: domain.clone(),
            ..Default::default()
        };
        for service in services {
            let base = format!("{}.{}.svc.{domain}", service.name, service.namespace);
            let published: Vec<&DnsEndpoint> = service
                .endpoints
                .iter()
                .filter(|e| e.ready || service.publish_not_ready)
                .collect();
            match &service.kind {
                ServiceKind::Virtual(ips) => {
                    for ip in ips {
                        zone.add(&base, Answer::A(*ip));
                        zone.add(&reverse_name(*ip), Answer::Ptr(base.clone()));
                    }
                    for (port, proto, number) in &service.ports {
                        zone.add(
                            &format!("_{port}._{proto}.{base}"),
                            Answer::Srv {
                                port: *number,
                                target: base.clone(),
                            },
                        );
                    }
                }
                ServiceKind::Headless => {
                    zone.nodes.insert(base.clone());
                    let mut seen = BTreeSet::new();
                    for endpoint in &published {
                        if !seen.insert(endpoint.ip) {
                            continue;
                        }
                        zone.add(&base, Answer::A(endpoint.ip));
                        let host = endpoint
                            .hostname
                            .clone()
                            .unwrap_or_else(|| endpoint.ip.to_string().replace('.', "-"));
                        let host_name = format!("{host}.{base}");
                        zone.add(&host_name, Answer::A(endpoint.ip));
                        if endpoint.hostname.is_some() {
                            zone.add(&reverse_name(endpoint.ip), Answer::Ptr(host_name.clone()));
                        }
                        for (port, proto, number) in &service.ports {
                            zone.add(
                                &format!("_{port}._{proto}.{base}"),
                                Answer::Srv {
                                    port: *number,
                                    target: host_name.clone(),
                                },
                            );
                        }
                    }
                }
                ServiceKind::ExternalName(target) => {
                    zone.add(
                        &base,
                        Answer::Cname(target.trim_end_matches('.').to_ascii_lowercase()),
                    );
                }
            }
        }
        zone
    }

    fn add(&mut self, name: &str, answer: Answer) {
        let name = name.to_ascii_lowercase();
        // Every parent inside the zone exists too (empty non-terminals).
        let mut parent = name.as_str();
        while let Some((_, rest)) = parent.split_once('.') {
            if rest.len() < self.domain.len() {
                break;
            }
            self.nodes.insert(rest.to_string());
            parent = rest;
        }
        self.nodes.insert(name.clone());
        let answers = self.names.entry(name).or_default();
        if !answers.contains(&answer) {
            answers.push(answer);
        }
    }

    /// Whether `name` belongs to this server: the cluster domain or a reverse name.
    fn is_ours(&self, name: &str) -> bool {
        name == self.domain
            || name.ends_with(&format!(".{}", self.domain))
            || name.ends_with(".in-addr.arpa")
    }

    /// Answer a query for `name` (any case, with or without the final dot).
    pub fn lookup(&self, name: &str, qtype: QueryType) -> Lookup {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if !self.is_ours(&name) {
            return Lookup::Outside;
        }
        if let Some(ip) = self.pod_address(&name) {
            let answers = match qtype {
                QueryType::A | QueryType::Any => vec![(name, Answer::A(ip))],
                _ => vec![],
            };
            return Lookup::Found(answers);
        }
        let Some(answers) = self.names.get(&name) else {
            if self.nodes.contains(&name) {
                return Lookup::Found(vec![]);
            }
            if name.ends_with(".in-addr.arpa") {
                // Reverse names of addresses we do not know: not ours to deny.
                return Lookup::Outside;
            }
            return Lookup::NoSuchName;
        };
        // A CNAME answers every type.
        let wanted = |a: &Answer| {
            matches!(
                (a, qtype),
                (_, QueryType::Any)
                    | (Answer::Cname(_), _)
                    | (Answer::A(_), QueryType::A)
                    | (Answer::Srv { .. }, QueryType::Srv)
                    | (Answer::Ptr(_), QueryType::Ptr)
            )
        };
        let mut found: Vec<(String, Answer)> = answers
            .iter()
            .filter(|a| wanted(a))
            .map(|a| (name.clone(), a.clone()))
            .collect();
        found.sort();
        Lookup::Found(found)
    }

    /// `a-b-c-d.<ns>.pod.<domain>` → a.b.c.d.
    fn pod_address(&self, name: &str) -> Option<Ipv4Addr> {
        let rest = name.strip_suffix(&format!(".pod.{}", self.domain))?;
        let (dashed, namespace) = rest.split_once('.')?;
        if namespace.is_empty() || namespace.contains('.') {
            return None;
        }
        dashed.replace('-', ".").parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services() -> Vec<DnsService> {
        vec![
            DnsService {
                namespace: "shop".into(),
                name: "api".into(),
                kind: ServiceKind::Virtual(vec![Ipv4Addr::new(10, 43, 0, 20)]),
                ports: vec![("http".into(), "tcp".into(), 80)],
                endpoints: vec![],
                publish_not_ready: false,
            },
            DnsService {
                namespace: "shop".into(),
                name: "db".into(),
                kind: ServiceKind::Headless,
                ports: vec![("pg".into(), "tcp".into(), 5432)],
                endpoints: vec![
                    DnsEndpoint {
                        ip: Ipv4Addr::new(10, 42, 1, 7),
                        hostname: Some("db-0".into()),
                        ready: true,
                    },
                    DnsEndpoint {
                        ip: Ipv4Addr::new(10, 42, 2, 8),
                        hostname: None,
                        ready: true,
                    },
                    DnsEndpoint {
                        ip: Ipv4Addr::new(10, 42, 2, 9),
                        hostname: Some("db-2".into()),
                        ready: false,
                    },
                ],
                publish_not_ready: false,
            },
            DnsService {
                namespace: "shop".into(),
                name: "docs".into(),
                kind: ServiceKind::ExternalName("Docs.Example.COM.".into()),
                ports: vec![],
                endpoints: vec![],
                publish_not_ready: false,
            },
        ]
    }

    fn found(lookup: Lookup) -> Vec<Answer> {
        match lookup {
            Lookup::Found(answers) => answers.into_iter().map(|(_, a)| a).collect(),
            other => panic!("expected answers, got {other:?}"),
        }
    }

    #[test]
    fn services_endpoints_pods_and_reverse_names() {
        let zone = Zone::build("cluster.local", &services());
        assert_eq!(
            found(zone.lookup("API.shop.svc.cluster.local.", QueryType::A)),
            [Answer::A(Ipv4Addr::new(10, 43, 0, 20))]
        );
        assert_eq!(
            found(zone.lookup("api.shop.svc.cluster.local", QueryType::Aaaa)),
            [],
            "an existing name without IPv6 is NODATA, never NXDOMAIN"
        );
        assert_eq!(
            found(zone.lookup("_http._tcp.api.shop.svc.cluster.local", QueryType::Srv)),
            [Answer::Srv {
                port: 80,
                target: "api.shop.svc.cluster.local".into()
            }]
        );
        // Headless: ready endpoints only, hostnames, SRV per endpoint.
        assert_eq!(
            found(zone.lookup("db.shop.svc.cluster.local", QueryType::A)),
            [
                Answer::A(Ipv4Addr::new(10, 42, 1, 7)),
                Answer::A(Ipv4Addr::new(10, 42, 2, 8))
            ]
        );
        assert_eq!(
            found(zone.lookup("db-0.db.shop.svc.cluster.local", QueryType::A)),
            [Answer::A(Ipv4Addr::new(10, 42, 1, 7))]
        );
        assert_eq!(
            zone.lookup("db-2.db.shop.svc.cluster.local", QueryType::A),
            Lookup::NoSuchName,
            "not ready, not published"
        );
        assert_eq!(
            found(zone.lookup("_pg._tcp.db.shop.svc.cluster.local", QueryType::Srv)).len(),
            2
        );
        assert_eq!(
            found(zone.lookup("docs.shop.svc.cluster.local", QueryType::A)),
            [Answer::Cname("docs.example.com".into())]
        );
        assert_eq!(
            found(zone.lookup("10-42-3-4.shop.pod.cluster.local", QueryType::A)),
            [Answer::A(Ipv4Addr::new(10, 42, 3, 4))]
        );
        assert_eq!(
            found(zone.lookup("20.0.43.10.in-addr.arpa", QueryType::Ptr)),
            [Answer::Ptr("api.shop.svc.cluster.local".into())]
        );
        // Empty non-terminals exist; unknown names do not; the rest of the world is not ours.
        assert_eq!(
            found(zone.lookup("shop.svc.cluster.local", QueryType::A)),
            []
        );
        assert_eq!(
            zone.lookup("nope.shop.svc.cluster.local", QueryType::A),
            Lookup::NoSuchName
        );
        assert_eq!(
            zone.lookup(
                "api.shop.svc.cluster.local.shop.svc.cluster.local",
                QueryType::A
            ),
            Lookup::NoSuchName
        );
        assert_eq!(zone.lookup("example.com", QueryType::A), Lookup::Outside);
        assert_eq!(
            zone.lookup("9.9.9.9.in-addr.arpa", QueryType::Ptr),
            Lookup::Outside
        );
    }
}
