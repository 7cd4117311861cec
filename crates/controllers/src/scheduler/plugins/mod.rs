//! The scheduling plugins, one per module, and the default plugin sets and weights of a
//! profile (kube-scheduler's defaults).

pub mod balanced_allocation;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod taint_toleration;
pub mod volume_binding;

use std::sync::Arc;

use super::framework::Plugin;

/// PreFilter/Filter plugins of the default profile, in kube-scheduler's order.
pub const DEFAULT_FILTERS: [&str; 9] = [
    "NodeUnschedulable",
    "NodeName",
    "TaintToleration",
    "NodeAffinity",
    "NodePorts",
    "NodeResourcesFit",
    "VolumeBinding",
    "PodTopologySpread",
    "InterPodAffinity",
];

/// Score plugins of the default profile with their weights.
pub const DEFAULT_SCORERS: [(&str, i64); 7] = [
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodeResourcesFit", 1),
    ("NodeResourcesBalancedAllocation", 1),
    ("ImageLocality", 1),
    ("InterPodAffinity", 2),
    ("PodTopologySpread", 2),
];

/// A plugin by name, with NodeResourcesFit's scoring configured by `fit`.
pub fn by_name(name: &str, fit: &node_resources::NodeResourcesFit) -> Option<Arc<dyn Plugin>> {
    Some(match name {
        "NodeUnschedulable" => Arc::new(node_unschedulable::NodeUnschedulable),
        "NodeName" => Arc::new(node_name::NodeName),
        "TaintToleration" => Arc::new(taint_toleration::TaintToleration),
        "NodeAffinity" => Arc::new(node_affinity::NodeAffinity),
        "NodePorts" => Arc::new(node_ports::NodePorts),
        "NodeResourcesFit" => Arc::new(fit.clone()),
        "NodeResourcesBalancedAllocation" => Arc::new(balanced_allocation::BalancedAllocation),
        "ImageLocality" => Arc::new(image_locality::ImageLocality),
        "VolumeBinding" => Arc::new(volume_binding::VolumeBinding),
        "PodTopologySpread" => Arc::new(pod_topology_spread::PodTopologySpread),
        "InterPodAffinity" => Arc::new(inter_pod_affinity::InterPodAffinity),
        _ => return None,
    })
}

#[cfg(test)]
pub mod testing {
    //! Nodes and pods for the plugins' table tests.

    use std::sync::Arc;

    use serde_json::{Value, json};

    use crate::scheduler::types::{NodeInfo, PodInfo};

    /// A node of 4 cpu, 16Gi and 110 pods with these labels.
    pub fn node(name: &str, labels: Value) -> NodeInfo {
        NodeInfo::parse(&json!({"metadata": {"name": name, "labels": labels},
            "status": {"allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}]}}))
    }

    /// An unbound pod in `default` with this spec.
    pub fn pod(spec: Value) -> Arc<PodInfo> {
        pod_named("p", "", json!({}), spec)
    }

    /// A pod with a name, a node (empty: unbound), labels and a spec.
    pub fn pod_named(name: &str, node: &str, labels: Value, mut spec: Value) -> Arc<PodInfo> {
        if !node.is_empty() {
            spec["nodeName"] = json!(node);
        }
        Arc::new(PodInfo::parse(
            name,
            &json!({"metadata": {"name": name, "namespace": "default", "labels": labels}, "spec": spec}),
        ))
    }
}
