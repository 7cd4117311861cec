//! What the scheduler reads from pods and nodes, parsed once per object version: requests,
//! ports, node selection, tolerations, pod (anti-)affinity terms, topology spread constraints
//! for pods; allocatable resources, labels, taints and images for nodes, plus what the pods on
//! a node use.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use maestro_api::quantity;
use maestro_api::selector::{LabelSelector, Op, Requirement};
use serde_json::Value;

/// Amounts of resources in milli-units (millicores, milli-bytes, milli-pods).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu: i128,
    pub memory: i128,
    pub ephemeral_storage: i128,
    pub pods: i128,
    /// Extended resources (`example.com/gpu`, hugepages) by name.
    pub scalar: BTreeMap<String, i128>,
}

impl Resources {
    pub fn from_map(map: Option<&serde_json::Map<String, Value>>) -> Resources {
        let mut r = Resources::default();
        for (name, value) in map.into_iter().flatten() {
            let Some(amount) = value.as_str().and_then(quantity::milli) else {
                continue;
            };
            r.set(name, amount);
        }
        r
    }

    fn set(&mut self, name: &str, amount: i128) {
        match name {
            "cpu" => self.cpu = amount,
            "memory" => self.memory = amount,
            "ephemeral-storage" => self.ephemeral_storage = amount,
            "pods" => self.pods = amount,
            other => {
                self.scalar.insert(other.to_string(), amount);
            }
        }
    }

    pub fn get(&self, name: &str) -> i128 {
        match name {
            "cpu" => self.cpu,
            "memory" => self.memory,
            "ephemeral-storage" => self.ephemeral_storage,
            "pods" => self.pods,
            other => self.scalar.get(other).copied().unwrap_or(0),
        }
    }

    pub fn add(&mut self, other: &Resources) {
        self.cpu += other.cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.pods += other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    pub fn sub(&mut self, other: &Resources) {
        self.cpu -= other.cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.pods -= other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    fn max_with(&mut self, other: &Resources) {
        self.cpu = self.cpu.max(other.cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (k, v) in &other.scalar {
            let slot = self.scalar.entry(k.clone()).or_default();
            *slot = (*slot).max(*v);
        }
    }

    /// The resource names with a non-zero amount.
    pub fn names(&self) -> Vec<&str> {
        let mut names = Vec::new();
        for (name, amount) in [
            ("cpu", self.cpu),
            ("memory", self.memory),
            ("ephemeral-storage", self.ephemeral_storage),
        ] {
            if amount > 0 {
                names.push(name);
            }
        }
        names.extend(
            self.scalar
                .iter()
                .filter(|(_, v)| **v > 0)
                .map(|(k, _)| k.as_str()),
        );
        names
    }
}

/// Requests counted for scoring when a container states none, as kube-scheduler does, so that
/// best-effort pods still spread: 100 millicores and 200 MiB.
pub const DEFAULT_MILLI_CPU_REQUEST: i128 = 100;
pub const DEFAULT_MEMORY_REQUEST: i128 = 200 * 1024 * 1024 * 1000;

/// A host port a pod binds (protocol, host IP, port).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub protocol: String,
    pub ip: String,
    pub port: i64,
}

impl HostPort {
    /// Whether two host ports collide (a wildcard IP collides with every IP).
    pub fn conflicts(&self, other: &HostPort) -> bool {
        let wildcard = |ip: &str| ip.is_empty() || ip == "0.0.0.0" || ip == "::";
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || wildcard(&self.ip) || wildcard(&other.ip))
    }
}

/// One node selector term: requirements on labels and on fields (`metadata.name`).
#[derive(Debug, Clone, Default)]
pub struct NodeSelectorTerm {
    pub labels: Vec<Requirement>,
    pub fields: Vec<Requirement>,
}

fn node_requirements(list: Option<&Value>) -> Vec<Requirement> {
    list.and_then(Value::as_array)
        .map(|exprs| {
            exprs
                .iter()
                .filter_map(|e| {
                    let op = match e["operator"].as_str()? {
                        "In" => Op::In,
                        "NotIn" => Op::NotIn,
                        "Exists" => Op::Exists,
                        "DoesNotExist" => Op::DoesNotExist,
                        "Gt" => Op::GreaterThan,
                        "Lt" => Op::LessThan,
                        _ => return None,
                    };
                    Some(Requirement {
                        key: e["key"].as_str()?.to_string(),
                        op,
                        values: e["values"]
                            .as_array()
                            .map(|v| {
                                v.iter()
                                    .filter_map(|x| x.as_str().map(String::from))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

impl NodeSelectorTerm {
    pub fn parse(term: &Value) -> NodeSelectorTerm {
        NodeSelectorTerm {
            labels: node_requirements(term.get("matchExpressions")),
            fields: node_requirements(term.get("matchFields")),
        }
    }

    /// Whether a node matches; a term with no requirements matches nothing (as in Kubernetes).
    pub fn matches(&self, node: &NodeInfo) -> bool {
        if self.labels.is_empty() && self.fields.is_empty() {
            return false;
        }
        let labels = LabelSelector {
            requirements: self.labels.clone(),
        };
        let fields_ok = self.fields.iter().all(|r| {
            let value = (r.key == "metadata.name").then(|| node.name.clone());
            let single = LabelSelector {
                requirements: vec![Requirement {
                    key: "f".into(),
                    op: r.op.clone(),
                    values: r.values.clone(),
                }],
            };
            let mut map = BTreeMap::new();
            if let Some(v) = value {
                map.insert("f".to_string(), v);
            }
            single.matches_map(&map)
        });
        fields_ok && labels.matches_map(&node.labels)
    }
}

/// A pod (anti-)affinity term: which pods (namespaces and labels) in which topology.
#[derive(Debug, Clone)]
pub struct AffinityTerm {
    pub selector: LabelSelector,
    /// Namespaces named by the term; with no namespace selector and none named, the pod's own.
    pub namespaces: Vec<String>,
    /// A namespace selector; `Some(everything)` for `{}` (all namespaces).
    pub namespace_selector: Option<LabelSelector>,
    pub topology_key: String,
}

impl AffinityTerm {
    pub fn parse(term: &Value, pod_namespace: &str) -> Option<AffinityTerm> {
        let selector = match term.get("labelSelector") {
            Some(s) if !s.is_null() => LabelSelector::from_object(s).ok()?,
            // No selector matches no pod.
            _ => LabelSelector {
                requirements: vec![Requirement {
                    key: "maestro.internal/never".into(),
                    op: Op::Exists,
                    values: vec![],
                }],
            },
        };
        let namespace_selector = match term.get("namespaceSelector") {
            Some(s) if !s.is_null() => Some(LabelSelector::from_object(s).ok()?),
            _ => None,
        };
        let mut namespaces: Vec<String> = term["namespaces"]
            .as_array()
            .map(|n| {
                n.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if namespaces.is_empty() && namespace_selector.is_none() {
            namespaces.push(pod_namespace.to_string());
        }
        Some(AffinityTerm {
            selector,
            namespaces,
            namespace_selector,
            topology_key: term["topologyKey"].as_str().unwrap_or_default().to_string(),
        })
    }

    /// A key that is equal for terms that select the same pods in the same topology.
    pub fn signature(&self) -> String {
        let mut namespaces = self.namespaces.clone();
        namespaces.sort();
        format!(
            "{}|{}|{}|{}",
            self.selector,
            namespaces.join(","),
            self.namespace_selector
                .as_ref()
                .map_or("-".to_string(), |s| format!("[{s}]")),
            self.topology_key
        )
    }

    /// Whether the term selects `pod` (`namespace_labels` gives a namespace's labels).
    pub fn matches(
        &self,
        pod: &PodInfo,
        namespace_labels: &dyn Fn(&str) -> Option<BTreeMap<String, String>>,
    ) -> bool {
        let in_namespace = self.namespaces.contains(&pod.namespace)
            || self.namespace_selector.as_ref().is_some_and(|s| {
                s.is_empty()
                    || namespace_labels(&pod.namespace).is_some_and(|labels| s.matches_map(&labels))
            });
        in_namespace && self.selector.matches_map(&pod.labels)
    }
}

/// One topology spread constraint.
#[derive(Debug, Clone)]
pub struct SpreadConstraint {
    pub max_skew: i64,
    pub topology_key: String,
    /// DoNotSchedule (a filter) or ScheduleAnyway (a score).
    pub hard: bool,
    pub selector: LabelSelector,
    pub min_domains: Option<i64>,
    /// nodeAffinityPolicy Honor (the default): only nodes the pod may go to count.
    pub honor_node_affinity: bool,
    /// nodeTaintsPolicy Honor: only nodes whose taints the pod tolerates count.
    pub honor_taints: bool,
}

/// A pod as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub key: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub node_name: String,
    pub nominated_node: String,
    pub scheduler_name: String,
    pub priority: i64,
    pub preempt_never: bool,
    pub created: String,
    pub requests: Resources,
    /// cpu and memory requests with the scoring defaults for containers that state none.
    pub non_zero: (i128, i128),
    pub host_ports: Vec<HostPort>,
    pub node_selector: BTreeMap<String, String>,
    pub required_terms: Option<Vec<NodeSelectorTerm>>,
    pub preferred_terms: Vec<(i64, NodeSelectorTerm)>,
    pub tolerations: Vec<Value>,
    pub affinity: Vec<AffinityTerm>,
    pub anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<(i64, AffinityTerm)>,
    pub preferred_anti_affinity: Vec<(i64, AffinityTerm)>,
    pub spread: Vec<SpreadConstraint>,
    pub images: Vec<String>,
    /// Names of the PersistentVolumeClaims the pod mounts.
    pub claims: Vec<String>,
    pub finished: bool,
    pub deleting: bool,
    pub scheduling_gated: bool,
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn weighted<T>(list: &Value, parse: impl Fn(&Value) -> Option<T>, inner: &str) -> Vec<(i64, T)> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| Some((item["weight"].as_i64()?, parse(&item[inner])?)))
                .collect()
        })
        .unwrap_or_default()
}

impl PodInfo {
    pub fn parse(key: &str, pod: &Value) -> PodInfo {
        let spec = &pod["spec"];
        let metadata = &pod["metadata"];
        let namespace = metadata["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let container_requests = |list: &str| -> Vec<Resources> {
            spec[list]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .map(|c| {
                            Resources::from_map(
                                c.pointer("/resources/requests").and_then(Value::as_object),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        // Requests: the sum over app containers (and restartable init containers, which run
        // alongside them), or the largest regular init container if that is more.
        let mut requests = Resources::default();
        let mut non_zero = (0, 0);
        for r in container_requests("containers") {
            non_zero.0 += if r.cpu == 0 {
                DEFAULT_MILLI_CPU_REQUEST
            } else {
                r.cpu
            };
            non_zero.1 += if r.memory == 0 {
                DEFAULT_MEMORY_REQUEST
            } else {
                r.memory
            };
            requests.add(&r);
        }
        let inits = spec["initContainers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut init_peak = Resources::default();
        for (init, r) in inits.iter().zip(container_requests("initContainers")) {
            if init["restartPolicy"] == "Always" {
                requests.add(&r);
            } else {
                init_peak.max_with(&r);
            }
        }
        requests.max_with(&init_peak);
        if let Some(overhead) = spec["overhead"].as_object() {
            requests.add(&Resources::from_map(Some(overhead)));
        }
        requests.pods = 1000;
        let host_ports = spec["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| {
                let port = p["hostPort"].as_i64().filter(|p| *p > 0)?;
                Some(HostPort {
                    protocol: p["protocol"].as_str().unwrap_or("TCP").to_string(),
                    ip: p["hostIP"].as_str().unwrap_or_default().to_string(),
                    port,
                })
            })
            .collect();
        let node_affinity = &spec["affinity"]["nodeAffinity"];
        let required_terms = node_affinity
            .pointer("/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
            .and_then(Value::as_array)
            .map(|terms| terms.iter().map(NodeSelectorTerm::parse).collect());
        let preferred_terms = weighted(
            &node_affinity["preferredDuringSchedulingIgnoredDuringExecution"],
            |t| Some(NodeSelectorTerm::parse(t)),
            "preference",
        );
        let terms = |value: &Value| -> Vec<AffinityTerm> {
            value
                .as_array()
                .map(|ts| {
                    ts.iter()
                        .filter_map(|t| AffinityTerm::parse(t, &namespace))
                        .collect()
                })
                .unwrap_or_default()
        };
        let pod_affinity = &spec["affinity"]["podAffinity"];
        let pod_anti_affinity = &spec["affinity"]["podAntiAffinity"];
        let labels = string_map(&metadata["labels"]);
        let spread = spec["topologySpreadConstraints"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| {
                        let mut selector = match c.get("labelSelector") {
                            Some(s) if !s.is_null() => LabelSelector::from_object(s).ok()?,
                            _ => LabelSelector {
                                requirements: vec![Requirement {
                                    key: "maestro.internal/never".into(),
                                    op: Op::Exists,
                                    values: vec![],
                                }],
                            },
                        };
                        // matchLabelKeys: the pod's own values of those keys join the selector.
                        for key in c["matchLabelKeys"].as_array().into_iter().flatten() {
                            if let Some(value) = key.as_str().and_then(|k| labels.get(k)) {
                                selector.requirements.push(Requirement {
                                    key: key.as_str().unwrap_or_default().to_string(),
                                    op: Op::In,
                                    values: vec![value.clone()],
                                });
                            }
                        }
                        Some(SpreadConstraint {
                            max_skew: c["maxSkew"].as_i64().unwrap_or(1).max(1),
                            topology_key: c["topologyKey"].as_str()?.to_string(),
                            hard: c["whenUnsatisfiable"].as_str() != Some("ScheduleAnyway"),
                            selector,
                            min_domains: c["minDomains"].as_i64(),
                            honor_node_affinity: c["nodeAffinityPolicy"].as_str() != Some("Ignore"),
                            honor_taints: c["nodeTaintsPolicy"].as_str() == Some("Honor"),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        PodInfo {
            key: key.to_string(),
            name: metadata["name"].as_str().unwrap_or_default().to_string(),
            uid: metadata["uid"].as_str().unwrap_or_default().to_string(),
            labels,
            node_name: spec["nodeName"].as_str().unwrap_or_default().to_string(),
            nominated_node: pod["status"]["nominatedNodeName"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            scheduler_name: spec["schedulerName"]
                .as_str()
                .unwrap_or("default-scheduler")
                .to_string(),
            priority: spec["priority"].as_i64().unwrap_or(0),
            preempt_never: spec["preemptionPolicy"] == "Never",
            created: metadata["creationTimestamp"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            requests,
            non_zero,
            host_ports,
            node_selector: string_map(&spec["nodeSelector"]),
            required_terms,
            preferred_terms,
            tolerations: spec["tolerations"].as_array().cloned().unwrap_or_default(),
            affinity: terms(&pod_affinity["requiredDuringSchedulingIgnoredDuringExecution"]),
            anti_affinity: terms(
                &pod_anti_affinity["requiredDuringSchedulingIgnoredDuringExecution"],
            ),
            preferred_affinity: weighted(
                &pod_affinity["preferredDuringSchedulingIgnoredDuringExecution"],
                |t| AffinityTerm::parse(t, &namespace),
                "podAffinityTerm",
            ),
            preferred_anti_affinity: weighted(
                &pod_anti_affinity["preferredDuringSchedulingIgnoredDuringExecution"],
                |t| AffinityTerm::parse(t, &namespace),
                "podAffinityTerm",
            ),
            spread,
            images: spec["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["image"].as_str().map(String::from))
                .collect(),
            claims: spec["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| {
                    v.pointer("/persistentVolumeClaim/claimName")
                        .and_then(Value::as_str)
                        .map(String::from)
                })
                .collect(),
            finished: matches!(
                pod["status"]["phase"].as_str(),
                Some("Succeeded" | "Failed")
            ),
            deleting: metadata
                .get("deletionTimestamp")
                .is_some_and(|d| !d.is_null()),
            scheduling_gated: spec["schedulingGates"]
                .as_array()
                .is_some_and(|g| !g.is_empty()),
            namespace,
        }
    }

    /// Whether the pod waits for this scheduler profile.
    pub fn unscheduled(&self) -> bool {
        self.node_name.is_empty() && !self.finished && !self.deleting
    }
}

/// A node with what its pods use.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    pub name: String,
    /// The Node object exists (not a placeholder for pods bound to an unknown node).
    pub exists: bool,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Value>,
    pub unschedulable: bool,
    pub ready: bool,
    pub allocatable: Resources,
    /// Images on the node by name (every tag and digest name) with their size in bytes.
    pub images: HashMap<String, i64>,
    pub requested: Resources,
    pub non_zero_requested: (i128, i128),
    pub pods: Vec<Arc<PodInfo>>,
    pub used_ports: Vec<HostPort>,
}

impl NodeInfo {
    pub fn parse(node: &Value) -> NodeInfo {
        let mut images = HashMap::new();
        for image in node["status"]["images"].as_array().into_iter().flatten() {
            let size = image["sizeBytes"].as_i64().unwrap_or(0);
            for name in image["names"].as_array().into_iter().flatten() {
                if let Some(name) = name.as_str() {
                    images.insert(name.to_string(), size);
                }
            }
        }
        NodeInfo {
            name: node["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            labels: string_map(&node["metadata"]["labels"]),
            taints: node["spec"]["taints"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            unschedulable: node["spec"]["unschedulable"] == true,
            ready: node["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .is_some_and(|c| c["status"] == "True"),
            allocatable: Resources::from_map(node["status"]["allocatable"].as_object()),
            images,
            ..Default::default()
        }
    }

    /// Take over the pods and their usage from the previous version of this node.
    pub fn inherit(&mut self, previous: NodeInfo) {
        self.requested = previous.requested;
        self.non_zero_requested = previous.non_zero_requested;
        self.pods = previous.pods;
        self.used_ports = previous.used_ports;
    }

    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.non_zero_requested.0 += pod.non_zero.0;
        self.non_zero_requested.1 += pod.non_zero.1;
        self.used_ports.extend(pod.host_ports.iter().cloned());
        self.pods.push(pod);
    }

    pub fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let index = self.pods.iter().position(|p| p.key == key)?;
        let pod = self.pods.swap_remove(index);
        self.requested.sub(&pod.requests);
        self.non_zero_requested.0 -= pod.non_zero.0;
        self.non_zero_requested.1 -= pod.non_zero.1;
        for port in &pod.host_ports {
            if let Some(i) = self.used_ports.iter().position(|p| p == port) {
                self.used_ports.swap_remove(i);
            }
        }
        Some(pod)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_take_the_larger_of_containers_and_init_containers() {
        let pod = json!({"metadata": {"name": "p", "namespace": "n"}, "spec": {
            "containers": [
                {"resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                {"resources": {"requests": {"cpu": "200m"}}}],
            "initContainers": [
                {"resources": {"requests": {"cpu": "500m", "example.com/gpu": "1"}}},
                {"restartPolicy": "Always", "resources": {"requests": {"memory": "32Mi"}}}],
            "overhead": {"cpu": "10m"}}});
        let info = PodInfo::parse("k", &pod);
        assert_eq!(info.requests.cpu, 510);
        assert_eq!(info.requests.memory, 96 * 1024 * 1024 * 1000);
        assert_eq!(info.requests.scalar["example.com/gpu"], 1000);
        assert_eq!(info.requests.pods, 1000);
        // The second container states no memory: the scoring default stands in for it.
        assert_eq!(
            info.non_zero,
            (300, 64 * 1024 * 1024 * 1000 + DEFAULT_MEMORY_REQUEST)
        );
    }

    #[test]
    fn node_selector_terms_use_labels_fields_and_numeric_operators() {
        let mut node = NodeInfo {
            name: "n1".into(),
            ..Default::default()
        };
        node.labels.insert("cores".into(), "8".into());
        let term = |t: Value| NodeSelectorTerm::parse(&t);
        assert!(
            term(
                json!({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]})
            )
            .matches(&node)
        );
        assert!(
            !term(
                json!({"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["4"]}]})
            )
            .matches(&node)
        );
        assert!(term(json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]})).matches(&node));
        assert!(!term(json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]})).matches(&node));
        assert!(!term(json!({})).matches(&node));
    }

    #[test]
    fn host_ports_conflict_on_wildcard_addresses() {
        let port = |ip: &str| HostPort {
            protocol: "TCP".into(),
            ip: ip.into(),
            port: 80,
        };
        assert!(port("").conflicts(&port("10.0.0.1")));
        assert!(port("10.0.0.1").conflicts(&port("10.0.0.1")));
        assert!(!port("10.0.0.1").conflicts(&port("10.0.0.2")));
    }
}
