//! The scheduler's picture of the cluster, kept current from the watch cache's events: every
//! node with the pods placed on it (bound, or assumed while their binding is written), the
//! namespaces' labels, and counts that make affinity and spreading cheap to evaluate:
//!
//! - for each pod (anti-)affinity or spread term the scheduler has asked about, how many
//!   placed pods it selects in each topology domain (kept up to date as pods come and go, so
//!   a term is counted from scratch once, not once per scheduling cycle);
//! - for each required anti-affinity term of placed pods, the domains those pods are in (so
//!   that an incoming pod can be checked against every existing pod's anti-affinity without
//!   looking at the pods);
//! - for each topology key, the domains and their node counts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::types::{AffinityTerm, NodeInfo, PodInfo};

/// Most terms counted at once; beyond it the counts are dropped and rebuilt on demand.
const MAX_COUNTED_TERMS: usize = 512;

/// Placed pods a term selects, by the topology value of their node.
#[derive(Debug, Clone)]
pub struct TermCount {
    pub term: AffinityTerm,
    /// Shared with the scheduling cycle that asked for them; copied on write afterwards.
    pub counts: Arc<HashMap<String, i64>>,
}

/// Nodes in slots addressed by index (a scheduling cycle looks nodes up by index, not by
/// hashing names), found by name through an index. Slots are never reused: a node that goes
/// becomes a placeholder holding the pods still bound to it.
#[derive(Debug, Default)]
pub struct Nodes {
    slots: Vec<NodeInfo>,
    index: HashMap<String, usize>,
}

impl Nodes {
    pub fn get(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|i| &self.slots[*i])
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut NodeInfo> {
        self.index.get(name).map(|i| &mut self.slots[*i])
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some_and(|n| n.exists)
    }

    /// The slot of a node, made (as a placeholder) if it has none.
    pub fn slot(&mut self, name: &str) -> usize {
        if let Some(i) = self.index.get(name) {
            return *i;
        }
        self.slots.push(NodeInfo {
            name: name.to_string(),
            ..Default::default()
        });
        self.index.insert(name.to_string(), self.slots.len() - 1);
        self.slots.len() - 1
    }

    pub fn at(&self, slot: usize) -> &NodeInfo {
        &self.slots[slot]
    }

    pub fn at_mut(&mut self, slot: usize) -> &mut NodeInfo {
        &mut self.slots[slot]
    }
}

impl std::ops::Index<&str> for Nodes {
    type Output = NodeInfo;

    fn index(&self, name: &str) -> &NodeInfo {
        self.get(name).expect("a known node")
    }
}

#[derive(Debug, Default)]
pub struct Cache {
    pub nodes: Nodes,
    /// Slots of the nodes that exist (not placeholders for pods bound to unknown nodes), in a
    /// stable order for the round-robin start of each search.
    pub order: Vec<usize>,
    placed: HashMap<String, Arc<PodInfo>>,
    assumed: HashSet<String>,
    pub namespaces: HashMap<String, BTreeMap<String, String>>,
    terms: HashMap<String, TermCount>,
    /// Required anti-affinity terms of placed pods: the term and the domains of its owners.
    anti: HashMap<String, TermCount>,
    /// Topology key → domain → number of nodes.
    domains: HashMap<String, Arc<HashMap<String, i64>>>,
    /// Image name → number of nodes that hold it.
    images: HashMap<String, i64>,
}

impl Cache {
    pub fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.namespaces.get(namespace).cloned()
    }

    fn domain_of(&self, pod: &PodInfo, key: &str) -> Option<String> {
        self.nodes.get(&pod.node_name)?.labels.get(key).cloned()
    }

    // ---- nodes ----

    pub fn set_node(&mut self, mut node: NodeInfo) {
        for image in node.images.keys() {
            *self.images.entry(image.clone()).or_default() += 1;
        }
        let slot = self.nodes.slot(&node.name);
        let previous = std::mem::take(self.nodes.at_mut(slot));
        let labels_changed = !previous.exists || previous.labels != node.labels;
        if previous.exists {
            self.forget_images(&previous);
        } else {
            self.order.push(slot);
        }
        node.exists = true;
        node.inherit(previous);
        *self.nodes.at_mut(slot) = node;
        if labels_changed {
            self.relabelled();
        }
    }

    pub fn remove_node(&mut self, name: &str) {
        let Some(slot) = self.nodes.index.get(name).copied() else {
            return;
        };
        self.order.retain(|s| *s != slot);
        // Pods still bound to a node that is gone keep a placeholder (as in Kubernetes) until
        // they are deleted.
        let previous = std::mem::take(self.nodes.at_mut(slot));
        if previous.exists {
            self.forget_images(&previous);
        }
        let mut placeholder = NodeInfo {
            name: name.to_string(),
            ..Default::default()
        };
        for pod in previous.pods {
            placeholder.add_pod(pod);
        }
        *self.nodes.at_mut(slot) = placeholder;
        self.relabelled();
    }

    fn forget_images(&mut self, node: &NodeInfo) {
        for image in node.images.keys() {
            if let Some(count) = self.images.get_mut(image) {
                *count -= 1;
                if *count <= 0 {
                    self.images.remove(image);
                }
            }
        }
    }

    /// How many nodes hold an image (by one of its names).
    pub fn image_holders(&self, image: &str) -> i64 {
        self.images.get(image).copied().unwrap_or(0)
    }

    /// Node labels decide domains: recount what depends on them.
    fn relabelled(&mut self) {
        self.terms.clear();
        self.domains.clear();
        self.anti.clear();
        let pods: Vec<Arc<PodInfo>> = self.placed.values().cloned().collect();
        for pod in pods {
            self.count_anti(&pod, 1);
        }
    }

    /// Domains of a topology key over all nodes that exist: value → number of nodes.
    pub fn domains(&mut self, key: &str) -> Arc<HashMap<String, i64>> {
        if !self.domains.contains_key(key) {
            let mut domains: HashMap<String, i64> = HashMap::new();
            for slot in &self.order {
                if let Some(value) = self.nodes.at(*slot).labels.get(key) {
                    *domains.entry(value.clone()).or_default() += 1;
                }
            }
            self.domains.insert(key.to_string(), Arc::new(domains));
        }
        self.domains[key].clone()
    }

    // ---- pods ----

    /// A bound pod seen in the store (or gone from it: `None`).
    pub fn pod_event(&mut self, key: &str, pod: Option<Arc<PodInfo>>) {
        let placed = pod.filter(|p| !p.node_name.is_empty() && !p.finished);
        match placed {
            Some(pod) => {
                self.assumed.remove(key);
                if let Some(previous) = self.placed.get(key) {
                    if previous.node_name == pod.node_name
                        && previous.labels == pod.labels
                        && previous.requests == pod.requests
                        && previous.deleting == pod.deleting
                    {
                        return;
                    }
                    self.remove(key);
                }
                self.add(pod);
            }
            None => {
                // An assumed pod stays until its binding's outcome is known.
                if !self.assumed.contains(key) {
                    self.remove(key);
                }
            }
        }
    }

    /// Count a pod on the node it was just assigned to, before its binding is written.
    pub fn assume(&mut self, pod: Arc<PodInfo>) {
        self.assumed.insert(pod.key.clone());
        self.remove(&pod.key);
        self.add(pod);
    }

    /// A binding failed: the assumed pod no longer counts.
    pub fn forget(&mut self, key: &str) {
        if self.assumed.remove(key) {
            self.remove(key);
        }
    }

    /// The pod as counted, if it is placed.
    pub fn placed_pod(&self, key: &str) -> Option<&Arc<PodInfo>> {
        self.placed.get(key)
    }

    /// The store confirms an assumed placement.
    pub fn confirm(&mut self, key: &str) {
        self.assumed.remove(key);
    }

    pub fn is_placed(&self, key: &str) -> bool {
        self.placed.contains_key(key)
    }

    fn add(&mut self, pod: Arc<PodInfo>) {
        let slot = self.nodes.slot(&pod.node_name);
        self.nodes.at_mut(slot).add_pod(pod.clone());
        self.count_terms(&pod, 1);
        self.count_anti(&pod, 1);
        self.placed.insert(pod.key.clone(), pod);
    }

    fn remove(&mut self, key: &str) {
        let Some(pod) = self.placed.remove(key) else {
            return;
        };
        self.count_terms(&pod, -1);
        self.count_anti(&pod, -1);
        if let Some(node) = self.nodes.get_mut(&pod.node_name) {
            node.remove_pod(key);
        }
    }

    fn count_terms(&mut self, pod: &PodInfo, delta: i64) {
        let namespaces = &self.namespaces;
        let lookup = |ns: &str| namespaces.get(ns).cloned();
        let Some(node) = self.nodes.get(&pod.node_name) else {
            return;
        };
        for count in self.terms.values_mut() {
            if let Some(value) = node.labels.get(&count.term.topology_key)
                && count.term.matches(pod, &lookup)
            {
                *Arc::make_mut(&mut count.counts)
                    .entry(value.clone())
                    .or_default() += delta;
            }
        }
    }

    fn count_anti(&mut self, pod: &PodInfo, delta: i64) {
        for term in &pod.anti_affinity {
            let Some(value) = self.domain_of(pod, &term.topology_key) else {
                continue;
            };
            let entry = self
                .anti
                .entry(term.signature())
                .or_insert_with(|| TermCount {
                    term: term.clone(),
                    counts: Arc::default(),
                });
            *Arc::make_mut(&mut entry.counts).entry(value).or_default() += delta;
        }
    }

    /// Placed pods `term` selects, by domain; counted once, then kept current.
    pub fn term_counts(&mut self, term: &AffinityTerm) -> Arc<HashMap<String, i64>> {
        let signature = term.signature();
        if !self.terms.contains_key(&signature) {
            if self.terms.len() >= MAX_COUNTED_TERMS {
                self.terms.clear();
            }
            let mut counts: HashMap<String, i64> = HashMap::new();
            let lookup = |ns: &str| self.namespaces.get(ns).cloned();
            for pod in self.placed.values() {
                if let Some(value) = self
                    .nodes
                    .get(&pod.node_name)
                    .and_then(|n| n.labels.get(&term.topology_key))
                    && term.matches(pod, &lookup)
                {
                    *counts.entry(value.clone()).or_default() += 1;
                }
            }
            self.terms.insert(
                signature.clone(),
                TermCount {
                    term: term.clone(),
                    counts: Arc::new(counts),
                },
            );
        }
        self.terms[&signature].counts.clone()
    }

    /// The required anti-affinity terms of placed pods that select `pod`, each with the
    /// domains where pods holding it are.
    pub fn anti_affinity_against(&self, pod: &PodInfo) -> Vec<TermCount> {
        let lookup = |ns: &str| self.namespaces.get(ns).cloned();
        self.anti
            .values()
            .filter(|t| t.counts.values().any(|c| *c > 0) && t.term.matches(pod, &lookup))
            .cloned()
            .collect()
    }

    /// Placed pods, for the preemption search.
    pub fn placed(&self) -> impl Iterator<Item = &Arc<PodInfo>> {
        self.placed.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, zone: &str) -> NodeInfo {
        NodeInfo::parse(&json!({"metadata": {"name": name,
            "labels": {"kubernetes.io/hostname": name, "zone": zone}},
            "status": {"allocatable": {"cpu": "4", "pods": "110"}}}))
    }

    fn pod(name: &str, node: &str, app: &str) -> Arc<PodInfo> {
        Arc::new(PodInfo::parse(
            &format!("/registry/pods/default/{name}"),
            &json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
                "spec": {"nodeName": node, "containers": [{"resources": {"requests": {"cpu": "1"}}}],
                    "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "zone"}]}}}}),
        ))
    }

    #[test]
    fn counts_follow_pods_and_assumptions() {
        let mut cache = Cache::default();
        cache.set_node(node("a", "z1"));
        cache.set_node(node("b", "z2"));
        let term = pod("x", "", "web").anti_affinity[0].clone();
        assert!(cache.term_counts(&term).is_empty());
        cache.pod_event("/registry/pods/default/p1", Some(pod("p1", "a", "web")));
        assert_eq!(cache.term_counts(&term)["z1"], 1);
        assert_eq!(cache.nodes["a"].requested.cpu, 1000);
        // Assumed: counted at once; a failed binding takes it back.
        cache.assume(pod("p2", "b", "web"));
        assert_eq!(cache.term_counts(&term)["z2"], 1);
        assert_eq!(cache.anti_affinity_against(&pod("p3", "", "web")).len(), 1);
        cache.forget("/registry/pods/default/p2");
        assert_eq!(cache.term_counts(&term)["z2"], 0);
        assert_eq!(cache.nodes["b"].requested.cpu, 0);
        // Deleted from the store.
        cache.pod_event("/registry/pods/default/p1", None);
        assert_eq!(cache.term_counts(&term)["z1"], 0);
        assert!(
            cache
                .anti_affinity_against(&pod("p3", "", "web"))
                .is_empty()
        );
        assert_eq!(cache.domains("zone").len(), 2);
    }

    #[test]
    fn relabelling_a_node_moves_its_pods_to_the_new_domain() {
        let mut cache = Cache::default();
        cache.set_node(node("a", "z1"));
        cache.pod_event("/registry/pods/default/p1", Some(pod("p1", "a", "web")));
        let term = pod("x", "", "web").anti_affinity[0].clone();
        assert_eq!(cache.term_counts(&term)["z1"], 1);
        cache.set_node(node("a", "z9"));
        assert_eq!(cache.term_counts(&term).get("z1"), None);
        assert_eq!(cache.term_counts(&term)["z9"], 1);
        assert_eq!(cache.nodes["a"].pods.len(), 1);
    }
}
