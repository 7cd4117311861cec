//! NodeAffinity: `nodeSelector` and required node affinity decide where a pod may go
//! (filter); preferred node affinity terms add their weights to the nodes they match (score).

use crate::scheduler::cache::Cache;
use crate::scheduler::framework::{Cycle, Lookup, Plugin, Unfit, normalize_by_max};
use crate::scheduler::types::{NodeInfo, PodInfo};

pub struct NodeAffinity;

/// Whether the pod's nodeSelector and required node affinity allow the node.
pub fn required_match(pod: &PodInfo, node: &NodeInfo) -> bool {
    pod.node_selector
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v))
        && pod
            .required_terms
            .as_ref()
            .is_none_or(|terms| terms.iter().any(|t| t.matches(node)))
}

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn pre_filter(&self, cycle: &mut Cycle, _: &mut Cache, _: Lookup<'_>) -> Result<bool, Unfit> {
        Ok(!cycle.pod.node_selector.is_empty() || cycle.pod.required_terms.is_some())
    }

    fn filter(&self, cycle: &Cycle, node: &NodeInfo) -> Result<(), Unfit> {
        if required_match(&cycle.pod, node) {
            Ok(())
        } else {
            Err(Unfit::unresolvable(
                "node(s) didn't match Pod's node affinity/selector",
            ))
        }
    }

    fn pre_score(&self, cycle: &mut Cycle, _: &mut Cache, _: &[usize]) -> bool {
        !cycle.pod.preferred_terms.is_empty()
    }

    fn score(&self, cycle: &Cycle, node: &NodeInfo) -> i64 {
        cycle
            .pod
            .preferred_terms
            .iter()
            .filter(|(_, term)| term.matches(node))
            .map(|(weight, _)| *weight)
            .sum()
    }

    fn normalize(&self, _: &Cycle, scores: &mut [i64]) {
        normalize_by_max(scores, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testing::{node, pod};
    use serde_json::json;

    #[test]
    fn selectors_filter_and_preferences_score() {
        let ssd = node("a", json!({"disk": "ssd", "zone": "z1"}));
        let hdd = node("b", json!({"disk": "hdd", "zone": "z2"}));
        let by_selector = Cycle::new(pod(json!({"nodeSelector": {"disk": "ssd"}})));
        assert!(NodeAffinity.filter(&by_selector, &ssd).is_ok());
        assert!(NodeAffinity.filter(&by_selector, &hdd).is_err());
        let by_terms = Cycle::new(pod(json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z2"]}]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}}})));
        assert!(NodeAffinity.filter(&by_terms, &ssd).is_err());
        assert!(NodeAffinity.filter(&by_terms, &hdd).is_ok());
        let mut scores = [
            NodeAffinity.score(&by_terms, &ssd),
            NodeAffinity.score(&by_terms, &hdd),
        ];
        NodeAffinity.normalize(&by_terms, &mut scores);
        assert_eq!(scores, [100, 0]);
    }
}
