//! PodTopologySpread: `topologySpreadConstraints`. A DoNotSchedule constraint rules out nodes
//! where placing the pod would make its domain exceed the least-loaded eligible domain by more
//! than `maxSkew` (filter); ScheduleAnyway constraints prefer the domains with fewer matching
//! pods (score). Eligible domains honour the pod's node affinity unless `nodeAffinityPolicy`
//! is Ignore, and its tolerations when `nodeTaintsPolicy` is Honor; `minDomains` counts missing
//! domains as empty ones.

use std::collections::HashMap;
use std::sync::Arc;

use crate::scheduler::cache::Cache;
use crate::scheduler::framework::{Cycle, Lookup, MAX_NODE_SCORE, Plugin, Unfit};
use crate::scheduler::plugins::node_affinity::required_match;
use crate::scheduler::types::{AffinityTerm, NodeInfo, PodInfo, SpreadConstraint};
use crate::taints::tolerates;

pub struct PodTopologySpread;

struct Hard {
    key: String,
    max_skew: i64,
    counts: Arc<HashMap<String, i64>>,
    /// The least number of matching pods in an eligible domain.
    min: i64,
    /// Whether the pod counts in its own constraint.
    self_match: i64,
}

struct Soft {
    key: String,
    counts: Arc<HashMap<String, i64>>,
    weight: f64,
}

fn term(pod: &PodInfo, constraint: &SpreadConstraint) -> AffinityTerm {
    AffinityTerm {
        selector: constraint.selector.clone(),
        namespaces: vec![pod.namespace.clone()],
        namespace_selector: None,
        topology_key: constraint.topology_key.clone(),
    }
}

/// The eligible domains of a constraint for this pod.
fn domains(cache: &mut Cache, pod: &PodInfo, constraint: &SpreadConstraint) -> Vec<String> {
    let filtered = (constraint.honor_node_affinity
        && (!pod.node_selector.is_empty() || pod.required_terms.is_some()))
        || constraint.honor_taints;
    if !filtered {
        return cache
            .domains(&constraint.topology_key)
            .keys()
            .cloned()
            .collect();
    }
    let mut found: Vec<String> = cache
        .order
        .iter()
        .map(|s| cache.nodes.at(*s))
        .filter(|node| !constraint.honor_node_affinity || required_match(pod, node))
        .filter(|node| {
            !constraint.honor_taints
                || node.taints.iter().all(|t| {
                    !matches!(t["effect"].as_str(), Some("NoSchedule" | "NoExecute"))
                        || tolerates_taint(pod, t)
                })
        })
        .filter_map(|node| node.labels.get(&constraint.topology_key).cloned())
        .collect();
    found.sort();
    found.dedup();
    found
}

fn tolerates_taint(pod: &PodInfo, taint: &serde_json::Value) -> bool {
    let pod_json = serde_json::json!({"spec": {"tolerations": pod.tolerations}});
    tolerates(&pod_json, taint)
}

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }

    fn pre_filter(
        &self,
        cycle: &mut Cycle,
        cache: &mut Cache,
        _: Lookup<'_>,
    ) -> Result<bool, Unfit> {
        let pod = cycle.pod.clone();
        let mut hard = Vec::new();
        for constraint in pod.spread.iter().filter(|c| c.hard) {
            let counts = cache.term_counts(&term(&pod, constraint));
            let eligible = domains(cache, &pod, constraint);
            let mut min = eligible
                .iter()
                .map(|d| counts.get(d).copied().unwrap_or(0))
                .min()
                .unwrap_or(0);
            if constraint
                .min_domains
                .is_some_and(|m| (eligible.len() as i64) < m)
            {
                min = 0;
            }
            hard.push(Hard {
                key: constraint.topology_key.clone(),
                max_skew: constraint.max_skew,
                counts,
                min,
                self_match: i64::from(constraint.selector.matches_map(&pod.labels)),
            });
        }
        let active = !hard.is_empty();
        cycle.put("PodTopologySpread", hard);
        Ok(active)
    }

    fn filter(&self, cycle: &Cycle, node: &NodeInfo) -> Result<(), Unfit> {
        let Some(hard) = cycle.get::<Vec<Hard>>("PodTopologySpread") else {
            return Ok(());
        };
        for constraint in hard {
            let Some(domain) = node.labels.get(&constraint.key) else {
                return Err(Unfit::unresolvable(
                    "node(s) didn't match pod topology spread constraints (missing required label)",
                ));
            };
            let here = constraint.counts.get(domain).copied().unwrap_or(0);
            if here + constraint.self_match - constraint.min > constraint.max_skew {
                return Err(Unfit::new(
                    "node(s) didn't match pod topology spread constraints",
                ));
            }
        }
        Ok(())
    }

    fn pre_score(&self, cycle: &mut Cycle, cache: &mut Cache, _: &[usize]) -> bool {
        let pod = cycle.pod.clone();
        let mut soft = Vec::new();
        for constraint in pod.spread.iter().filter(|c| !c.hard) {
            let counts = cache.term_counts(&term(&pod, constraint));
            let domain_count = cache.domains(&constraint.topology_key).len();
            soft.push(Soft {
                key: constraint.topology_key.clone(),
                counts,
                // Many small domains (hosts) weigh more than a few large ones (zones).
                weight: ((domain_count + 2) as f64).ln(),
            });
        }
        if soft.is_empty() {
            return false;
        }
        cycle.put("PodTopologySpread.score", soft);
        true
    }

    fn score(&self, cycle: &Cycle, node: &NodeInfo) -> i64 {
        let Some(soft) = cycle.get::<Vec<Soft>>("PodTopologySpread.score") else {
            return 0;
        };
        soft.iter()
            .map(|c| {
                let here = node
                    .labels
                    .get(&c.key)
                    .and_then(|d| c.counts.get(d))
                    .copied()
                    .unwrap_or(0);
                (here as f64 * c.weight * 1000.0) as i64
            })
            .sum()
    }

    /// Fewer matching pods is better.
    fn normalize(&self, _: &Cycle, scores: &mut [i64]) {
        let (min, max) = (
            scores.iter().copied().min().unwrap_or(0),
            scores.iter().copied().max().unwrap_or(0),
        );
        for score in scores.iter_mut() {
            *score = if max == min {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max - *score) / (max - min)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testing::{node, pod_named};
    use serde_json::json;

    fn cache() -> Cache {
        let mut cache = Cache::default();
        cache.set_node(node("a", json!({"zone": "z1"})));
        cache.set_node(node("b", json!({"zone": "z2"})));
        cache.set_node(node("c", json!({"zone": "z2"})));
        cache.set_node(node("d", json!({})));
        for (i, n) in ["a", "a", "b"].iter().enumerate() {
            cache.pod_event(
                &format!("p{i}"),
                Some(pod_named(
                    &format!("p{i}"),
                    n,
                    json!({"app": "web"}),
                    json!({}),
                )),
            );
        }
        cache
    }

    fn spread(when: &str) -> serde_json::Value {
        json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
            "whenUnsatisfiable": when, "labelSelector": {"matchLabels": {"app": "web"}}}]})
    }

    #[test]
    fn hard_constraints_keep_the_skew() {
        let mut cache = cache();
        let mut cycle = Cycle::new(pod_named(
            "new",
            "",
            json!({"app": "web"}),
            spread("DoNotSchedule"),
        ));
        assert_eq!(
            PodTopologySpread.pre_filter(&mut cycle, &mut cache, &|_, _, _| None),
            Ok(true)
        );
        // z1 has 2, z2 has 1: only z2 takes the next pod; d has no zone label.
        let verdict = |n: &str| {
            PodTopologySpread
                .filter(&cycle, &cache.nodes[n])
                .map_err(|u| u.reasons[0].clone())
        };
        assert!(verdict("a").is_err());
        assert!(verdict("b").is_ok() && verdict("c").is_ok());
        assert_eq!(
            verdict("d").unwrap_err(),
            "node(s) didn't match pod topology spread constraints (missing required label)"
        );
    }

    #[test]
    fn min_domains_counts_missing_domains_as_empty() {
        let mut cache = cache();
        let mut spec = spread("DoNotSchedule");
        spec["topologySpreadConstraints"][0]["minDomains"] = json!(3);
        spec["topologySpreadConstraints"][0]["maxSkew"] = json!(2);
        let mut cycle = Cycle::new(pod_named("new", "", json!({"app": "web"}), spec));
        PodTopologySpread
            .pre_filter(&mut cycle, &mut cache, &|_, _, _| None)
            .unwrap();
        // Global minimum 0: z1 (2 + 1 = 3) exceeds maxSkew 2, z2 (1 + 1) does not.
        assert!(PodTopologySpread.filter(&cycle, &cache.nodes["a"]).is_err());
        assert!(PodTopologySpread.filter(&cycle, &cache.nodes["b"]).is_ok());
    }

    #[test]
    fn soft_constraints_prefer_emptier_domains() {
        let mut cache = cache();
        let mut cycle = Cycle::new(pod_named(
            "new",
            "",
            json!({"app": "web"}),
            spread("ScheduleAnyway"),
        ));
        assert_eq!(
            PodTopologySpread.pre_filter(&mut cycle, &mut cache, &|_, _, _| None),
            Ok(false)
        );
        assert!(PodTopologySpread.pre_score(&mut cycle, &mut cache, &[]));
        let mut scores = [
            PodTopologySpread.score(&cycle, &cache.nodes["a"]),
            PodTopologySpread.score(&cycle, &cache.nodes["b"]),
        ];
        PodTopologySpread.normalize(&cycle, &mut scores);
        assert_eq!(scores, [0, 100]);
    }
}
