//! NodeResourcesBalancedAllocation: prefers nodes whose cpu and memory would be used in
//! similar shares after placing the pod (one minus the standard deviation of the shares).

use crate::scheduler::framework::{Cycle, MAX_NODE_SCORE, Plugin};
use crate::scheduler::plugins::node_resources::requested_and_allocatable;
use crate::scheduler::types::NodeInfo;

pub struct BalancedAllocation;

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        "NodeResourcesBalancedAllocation"
    }

    fn score(&self, cycle: &Cycle, node: &NodeInfo) -> i64 {
        let shares: Vec<f64> = ["cpu", "memory"]
            .iter()
            .filter_map(|r| {
                let (requested, allocatable) = requested_and_allocatable(&cycle.pod, node, r);
                (allocatable > 0).then(|| (requested as f64 / allocatable as f64).min(1.0))
            })
            .collect();
        if shares.len() < 2 {
            return MAX_NODE_SCORE;
        }
        let mean = shares.iter().sum::<f64>() / shares.len() as f64;
        let variance = shares.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / shares.len() as f64;
        ((1.0 - variance.sqrt()) * MAX_NODE_SCORE as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testing::{node, pod};
    use serde_json::json;

    #[test]
    fn balanced_use_scores_higher() {
        // 4 cpu / 16Gi nodes; the pod asks 2 cpu and 8Gi (half of each).
        let cycle = Cycle::new(pod(
            json!({"containers": [{"resources": {"requests": {"cpu": "2", "memory": "8Gi"}}}]}),
        ));
        let mut cpu_heavy = node("a", json!({}));
        cpu_heavy.add_pod(pod(
            json!({"containers": [{"resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}]}),
        ));
        let empty = node("b", json!({}));
        assert_eq!(BalancedAllocation.score(&cycle, &empty), 100);
        assert!(BalancedAllocation.score(&cycle, &cpu_heavy) < 100);
    }
}
