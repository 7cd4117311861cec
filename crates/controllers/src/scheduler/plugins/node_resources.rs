//! NodeResourcesFit: a pod fits a node when the node's allocatable resources cover what its
//! pods request plus this pod's requests, resource by resource, and it has room for one more
//! pod (filter). Scoring follows the profile's strategy over weighted resources (cpu and
//! memory by default), on requests where containers without any count kube-scheduler's
//! defaults:
//! - LeastAllocated (default): free share after placing the pod — spreads pods;
//! - MostAllocated: used share — packs nodes (bin packing);
//! - RequestedToCapacityRatio: a piecewise-linear function of the used share.

use crate::scheduler::cache::Cache;
use crate::scheduler::framework::{Cycle, Lookup, MAX_NODE_SCORE, Plugin, Unfit};
use crate::scheduler::types::{NodeInfo, PodInfo};

/// How NodeResourcesFit scores.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    LeastAllocated,
    MostAllocated,
    /// (utilization percent, score 0..=10) points, by increasing utilization.
    RequestedToCapacityRatio(Vec<(i64, i64)>),
}

#[derive(Debug, Clone)]
pub struct NodeResourcesFit {
    pub strategy: Strategy,
    /// Resources scored, with weights.
    pub resources: Vec<(String, i64)>,
}

impl Default for NodeResourcesFit {
    fn default() -> Self {
        NodeResourcesFit {
            strategy: Strategy::LeastAllocated,
            resources: vec![("cpu".into(), 1), ("memory".into(), 1)],
        }
    }
}

/// What the node would have requested with the pod on it, and its allocatable amount.
pub fn requested_and_allocatable(pod: &PodInfo, node: &NodeInfo, resource: &str) -> (i128, i128) {
    let requested = match resource {
        "cpu" => node.non_zero_requested.0 + pod.non_zero.0,
        "memory" => node.non_zero_requested.1 + pod.non_zero.1,
        other => node.requested.get(other) + pod.requests.get(other),
    };
    (requested, node.allocatable.get(resource))
}

fn interpolate(points: &[(i64, i64)], utilization: i64) -> i64 {
    let scale = MAX_NODE_SCORE / 10;
    let Some(first) = points.first() else {
        return 0;
    };
    if utilization <= first.0 {
        return first.1 * scale;
    }
    for pair in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        if utilization <= x1 {
            let y = y0 * scale + (y1 - y0) * scale * (utilization - x0) / (x1 - x0).max(1);
            return y;
        }
    }
    points.last().map_or(0, |p| p.1 * scale)
}

impl NodeResourcesFit {
    fn resource_score(&self, requested: i128, allocatable: i128) -> i64 {
        if allocatable <= 0 {
            return 0;
        }
        match &self.strategy {
            Strategy::LeastAllocated => {
                if requested > allocatable {
                    0
                } else {
                    ((allocatable - requested) * MAX_NODE_SCORE as i128 / allocatable) as i64
                }
            }
            Strategy::MostAllocated => {
                (requested.min(allocatable) * MAX_NODE_SCORE as i128 / allocatable) as i64
            }
            Strategy::RequestedToCapacityRatio(points) => {
                let utilization = (requested.min(allocatable) * 100 / allocatable) as i64;
                interpolate(points, utilization)
            }
        }
    }
}

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn pre_filter(&self, _: &mut Cycle, _: &mut Cache, _: Lookup<'_>) -> Result<bool, Unfit> {
        Ok(true)
    }

    fn filter(&self, cycle: &Cycle, node: &NodeInfo) -> Result<(), Unfit> {
        let pod = &cycle.pod;
        let mut reasons = Vec::new();
        if (node.pods.len() as i128 + 1) * 1000 > node.allocatable.pods {
            reasons.push("Too many pods".to_string());
        }
        for name in pod.requests.names() {
            let want = pod.requests.get(name);
            if want > node.allocatable.get(name) - node.requested.get(name) {
                reasons.push(format!("Insufficient {name}"));
            }
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(Unfit {
                reasons,
                unresolvable: false,
            })
        }
    }

    fn score(&self, cycle: &Cycle, node: &NodeInfo) -> i64 {
        let (mut total, mut weights) = (0, 0);
        for (resource, weight) in &self.resources {
            let (requested, allocatable) = requested_and_allocatable(&cycle.pod, node, resource);
            total += self.resource_score(requested, allocatable) * weight;
            weights += weight;
        }
        if weights == 0 { 0 } else { total / weights }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testing::{node, pod};
    use serde_json::json;

    fn cpu_pod(cpu: &str) -> std::sync::Arc<PodInfo> {
        pod(json!({"containers": [{"resources": {"requests": {"cpu": cpu, "memory": "1Gi"}}}]}))
    }

    #[test]
    fn fit_reports_each_missing_resource() {
        let mut full = node("a", json!({}));
        full.add_pod(cpu_pod("3500m"));
        let cycle = Cycle::new(cpu_pod("1"));
        let fit = NodeResourcesFit::default();
        assert_eq!(
            fit.filter(&cycle, &full).unwrap_err().reasons,
            ["Insufficient cpu"]
        );
        assert!(fit.filter(&cycle, &node("b", json!({}))).is_ok());
        let gpu = Cycle::new(pod(
            json!({"containers": [{"resources": {"requests": {"example.com/gpu": "1"}}}]}),
        ));
        assert_eq!(
            fit.filter(&gpu, &node("b", json!({}))).unwrap_err().reasons,
            ["Insufficient example.com/gpu"]
        );
        let mut crowded = node("c", json!({}));
        crowded.allocatable.pods = 1000;
        crowded.add_pod(cpu_pod("0"));
        assert_eq!(
            fit.filter(&cycle, &crowded).unwrap_err().reasons,
            ["Too many pods"]
        );
    }

    #[test]
    fn strategies_spread_pack_or_follow_a_shape() {
        // Nodes of 4 cpu and 16Gi; one already runs 2 cpu and 8Gi.
        let mut busy = node("a", json!({}));
        busy.add_pod(pod(
            json!({"containers": [{"resources": {"requests": {"cpu": "2", "memory": "8Gi"}}}]}),
        ));
        let empty = node("b", json!({}));
        let cycle = Cycle::new(cpu_pod("1"));
        let least = NodeResourcesFit::default();
        assert!(least.score(&cycle, &empty) > least.score(&cycle, &busy));
        let most = NodeResourcesFit {
            strategy: Strategy::MostAllocated,
            ..Default::default()
        };
        assert!(most.score(&cycle, &busy) > most.score(&cycle, &empty));
        // cpu 3/4 = 75 %, memory 9/16 = 56 %: MostAllocated averages the shares.
        assert_eq!(most.score(&cycle, &busy), (75 + 56) / 2);
        let shaped = NodeResourcesFit {
            strategy: Strategy::RequestedToCapacityRatio(vec![(0, 0), (100, 10)]),
            resources: vec![("cpu".into(), 1)],
        };
        assert_eq!(shaped.score(&cycle, &busy), 75);
        assert_eq!(interpolate(&[(0, 10), (50, 0)], 25), 50);
        assert_eq!(interpolate(&[(0, 10), (50, 0)], 90), 0);
    }
}
