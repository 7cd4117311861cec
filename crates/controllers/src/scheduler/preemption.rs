//! DefaultPreemption: when a pod fits no node, find the node where evicting pods of lower
//! priority would make room, evicting as few and as unimportant pods as possible. Lower-priority
//! pods are removed from a copy of each candidate node; if the pod then passes the filters, the
//! pods are added back from the most important down while it still fits, and those that could
//! not come back are the victims. The node whose victims have the lowest top priority, then the
//! fewest victims, then the lowest total priority, wins. The victims are deleted by the
//! scheduler and the pod is nominated to the node; it is scheduled once they are gone.
//!
//! Simplifications: the pod's affinity and spreading state is not recomputed without the
//! victims (resources, ports and taints are what preemption frees in practice), and
//! PodDisruptionBudgets of victims are not weighed.

use std::sync::Arc;

use super::cache::Cache;
use super::framework::{Cycle, Failure, Profile};
use super::types::{NodeInfo, PodInfo};

/// Most candidate nodes examined per attempt.
const MAX_CANDIDATES: usize = 100;

/// Where to make room and whom to evict.
#[derive(Debug, Clone)]
pub struct Preemption {
    pub node: String,
    pub victims: Vec<Arc<PodInfo>>,
}

fn fits(profile: &Profile, cycle: &Cycle, node: &NodeInfo) -> bool {
    let active = cycle
        .get::<Vec<&'static str>>("framework.active")
        .cloned()
        .unwrap_or_default();
    profile
        .filters
        .iter()
        .filter(|p| active.contains(&p.name()))
        .all(|p| p.filter(cycle, node).is_ok())
}

/// A preemption that lets the cycle's pod in, if one exists.
pub fn find(
    profile: &Profile,
    cycle: &Cycle,
    cache: &Cache,
    failure: &Failure,
) -> Option<Preemption> {
    let pod = &cycle.pod;
    if pod.preempt_never {
        return None;
    }
    let mut best: Option<((i64, usize, i64), Preemption)> = None;
    let candidates = cache
        .order
        .iter()
        .map(|s| cache.nodes.at(*s))
        .filter(|n| !failure.unresolvable.contains(&n.name))
        .filter(|n| n.pods.iter().any(|p| p.priority < pod.priority))
        .take(MAX_CANDIDATES);
    for node in candidates {
        let name = &node.name;
        let mut lower: Vec<Arc<PodInfo>> = node
            .pods
            .iter()
            .filter(|p| p.priority < pod.priority && !p.deleting)
            .cloned()
            .collect();
        let mut trial = node.clone();
        for victim in &lower {
            trial.remove_pod(&victim.key);
        }
        if !fits(profile, cycle, &trial) {
            continue;
        }
        // Bring back the most important pods first; whatever cannot come back is evicted.
        lower.sort_by_key(|p| std::cmp::Reverse(p.priority));
        let mut victims = Vec::new();
        for candidate in lower {
            trial.add_pod(candidate.clone());
            if !fits(profile, cycle, &trial) {
                trial.remove_pod(&candidate.key);
                victims.push(candidate);
            }
        }
        if victims.is_empty() {
            continue;
        }
        let rank = (
            victims.iter().map(|v| v.priority).max().unwrap_or(0),
            victims.len(),
            victims.iter().map(|v| v.priority).sum::<i64>(),
        );
        if best.as_ref().is_none_or(|(r, _)| rank < *r) {
            best = Some((
                rank,
                Preemption {
                    node: name.clone(),
                    victims,
                },
            ));
        }
    }
    best.map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::config::default_profiles;
    use crate::scheduler::framework::Rng;
    use crate::scheduler::framework::SearchState;
    use crate::scheduler::plugins::testing::{node, pod_named};
    use serde_json::json;

    fn with(cpu: &str, priority: i64) -> serde_json::Value {
        json!({"priority": priority, "containers": [{"resources": {"requests": {"cpu": cpu}}}]})
    }

    #[test]
    fn the_fewest_least_important_pods_make_room() {
        let mut cache = Cache::default();
        cache.set_node(node("a", json!({})));
        cache.set_node(node("b", json!({})));
        // a: two pods of priority 10 (2 cpu each); b: one of priority 50 (3 cpu) and one of 1.
        cache.pod_event("a1", Some(pod_named("a1", "a", json!({}), with("2", 10))));
        cache.pod_event("a2", Some(pod_named("a2", "a", json!({}), with("2", 10))));
        cache.pod_event("b1", Some(pod_named("b1", "b", json!({}), with("3", 50))));
        cache.pod_event("b2", Some(pod_named("b2", "b", json!({}), with("1", 1))));
        let profile = &default_profiles()[0];
        let mut search = SearchState {
            next_start: 0,
            rng: Rng::new(1),
        };
        let mut cycle = Cycle::new(pod_named("urgent", "", json!({}), with("2", 100)));
        let failure = profile
            .find_nodes(&mut cycle, &mut cache, &|_, _, _| None, &mut search)
            .unwrap_err();
        let chosen = find(profile, &cycle, &cache, &failure).unwrap();
        // Evicting one priority-10 pod on a beats evicting the priority-50 pod on b.
        assert_eq!(chosen.node, "a");
        assert_eq!(chosen.victims.len(), 1);
        assert_eq!(chosen.victims[0].priority, 10);
        // Nothing of lower priority: no preemption.
        let mut modest = Cycle::new(pod_named("modest", "", json!({}), with("2", 0)));
        let failure = profile
            .find_nodes(&mut modest, &mut cache, &|_, _, _| None, &mut search)
            .unwrap_err();
        assert!(find(profile, &modest, &cache, &failure).is_none());
    }
}
